"""What the completeness bookkeeping costs a walk (issue 11), in microseconds per token.

    python benchmarks/walk_overhead.py [--tokens 100000] [--page-size 100] [--rounds 7]

Walks pages already in memory (no HTTP, no decoding: only the pager's own work) two ways,
taking turns in each round: a ``Pager`` with no declared order (de-duplication, stats,
checkpoint state) and one declared newest first with the tokens' rank (what
``cc.tokens.list`` builds: the sort check on every page as well). Prints the best round of
each and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from cellcast_async import ApiToken, Page, Pager, Secret

START = datetime(2025, 1, 1, tzinfo=timezone.utc)


def pages(count: int, size: int) -> list[Page[ApiToken]]:
    tokens = [
        ApiToken(
            id=f"{n:024x}",
            name=f"token {n}",
            token=Secret(f"ck_{n:040x}"),
            status="active",
            created_at=START - timedelta(seconds=n),
            sub_account=None,
            sub_account_id=None,
        )
        for n in range(count)
    ]
    total_pages = -(-count // size)
    return [
        Page(
            items=tuple(tokens[i * size : (i + 1) * size]),
            total=count,
            page=i + 1,
            limit=size,
            total_pages=total_pages,
            has_next_page=i + 1 < total_pages,
            has_prev_page=i > 0,
        )
        for i in range(total_pages)
    ]


async def walk(book: list[Page[ApiToken]], size: int, **options: Any) -> float:
    async def fetch(number: int) -> Page[ApiToken]:
        return book[number - 1]

    pager = Pager(fetch, limit=size, key=lambda t: t.id, **options)
    began = time.perf_counter()
    count = 0
    async for _ in pager:
        count += 1
    elapsed = time.perf_counter() - began
    assert count == book[0].total
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    book = pages(args.tokens, args.page_size)
    plain: list[float] = []
    ordered: list[float] = []
    for _ in range(args.rounds):
        plain.append(await walk(book, args.page_size))
        ordered.append(
            await walk(
                book,
                args.page_size,
                order="newest_first",
                order_key=operator.attrgetter("created_at"),
            )
        )
    per = 1e6 / args.tokens
    best_plain, best_ordered = min(plain) * per, min(ordered) * per
    print(f"no declared order : {best_plain:.3f} us/token")
    print(f"newest first      : {best_ordered:.3f} us/token")
    print(f"ratio             : {best_ordered / best_plain:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
