"""Checkpoints and resume against the embedded sandbox (issue 11).

A walk stopped anywhere (at a page boundary or mid-page, at concurrency 1 or 8, with or
without ``max_items``), checkpointed, and resumed with a new session yields exactly what
one uninterrupted walk does: each item once, in order.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator

import pytest

from cellcast_async import ApiToken, CellcastSession, Pager
from cellcast_async.sandbox import Sandbox

LIMIT = 7
TOKENS = 40  # 6 pages of 7 and one of 5


def session(sb: Sandbox) -> CellcastSession:
    return CellcastSession(api_key=sb.api_key, base_url=sb.url)


@pytest.fixture
async def sandbox() -> Sandbox:  # type: ignore[misc]
    async with Sandbox(seed=5, tokens=TOKENS, sub_accounts=2) as sb:
        yield sb


async def first_part(
    sb: Sandbox, stop: int, concurrency: int, max_items: int | None
) -> tuple[list[str], str]:
    """The ids of a walk stopped after ``stop`` items, and its checkpoint then."""
    async with session(sb) as cc:
        pager = cc.tokens.list(limit=LIMIT, concurrency=concurrency, max_items=max_items)
        taken: list[str] = []
        if stop:
            async for token in pager:
                taken.append(token.id)
                if len(taken) == stop:
                    break
        return taken, pager.checkpoint()


class TestResume:
    """Walk, stop, checkpoint, resume in a new session: one uninterrupted walk."""

    @pytest.mark.parametrize("max_items", [None, 30])
    @pytest.mark.parametrize("concurrency", [1, 8])
    async def test_at_every_boundary_and_mid_page(
        self, sandbox: Sandbox, concurrency: int, max_items: int | None
    ) -> None:
        async with session(sandbox) as cc:
            whole = [t.id for t in await cc.tokens.list(limit=LIMIT, max_items=max_items).collect()]
        assert len(whole) == (max_items or TOKENS)
        stops = sorted({*range(0, len(whole) + 1, LIMIT), *range(3, len(whole), LIMIT), len(whole)})
        for stop in stops:
            taken, checkpoint = await first_part(sandbox, stop, concurrency, max_items)
            async with session(sandbox) as cc:
                pager = cc.tokens.resume(checkpoint)
                rest = [t.id for t in await pager.collect()]
            assert taken + rest == whole, stop
            assert pager.stats.items == len(whole)
            assert pager.stats.complete is (max_items is None), (stop, pager._committed)

    async def test_a_checkpoint_right_after_a_page_resumes_at_the_next_page(
        self, sandbox: Sandbox
    ) -> None:
        """What ``audit --checkpoint`` does: write it after each page whose records are out."""
        async with session(sandbox) as cc:
            pager = cc.tokens.list(limit=LIMIT)
            pages = pager.pages()
            first = await pages.__anext__()
            checkpoint = pager.checkpoint()
            await pages.aclose()
        sandbox.reset_requests()
        async with session(sandbox) as cc:
            rest = await cc.tokens.resume(checkpoint, concurrency=1).collect()
        assert len(first.items) + len(rest) == TOKENS
        assert [int(r.query["page"]) for r in sandbox.requests] == [2, 3, 4, 5, 6]

    async def test_a_finished_walk_resumes_to_nothing(self, sandbox: Sandbox) -> None:
        async with session(sandbox) as cc:
            pager = cc.tokens.list(limit=LIMIT)
            await pager.collect()
            sandbox.reset_requests()
            resumed = cc.tokens.resume(pager.checkpoint())
            assert await resumed.collect() == []
        assert sandbox.requests == []
        assert resumed.stats.complete is True
        assert resumed.stats.items == TOKENS

    async def test_filters_and_limit_ride_along(self, sandbox: Sandbox) -> None:
        sub = sandbox.sub_account_ids[1]
        async with session(sandbox) as cc:
            whole = [
                t.id
                for t in await cc.tokens.list_for_sub_account(
                    sub, limit=3, status="active"
                ).collect()
            ]
            pager = cc.tokens.list_for_sub_account(sub, limit=3, status="active")
            taken = [t.id async for t in _take(pager, 4)]
            sandbox.reset_requests()
            rest = [t.id for t in await cc.tokens.resume(pager.checkpoint()).collect()]
        assert taken + rest == whole
        assert {r.path for r in sandbox.requests} == {f"/api/v1/apiClient/token/sub-account/{sub}"}
        assert {(r.query["status"], r.query["limit"]) for r in sandbox.requests} == {
            ("active", "3")
        }

    async def test_no_key_no_token_no_host_in_a_checkpoint(self, sandbox: Sandbox) -> None:
        async with session(sandbox) as cc:
            pager = cc.tokens.list(limit=LIMIT)
            tokens = [t async for t in _take(pager, 10)]
            checkpoint = pager.checkpoint()
        assert sandbox.api_key not in checkpoint
        assert sandbox.url not in checkpoint
        assert "127.0.0.1" not in checkpoint
        for token in tokens:
            assert token.token.reveal() not in checkpoint
        assert set(json.loads(checkpoint)) == {"format", "version", "key", "state", "mac"}

    async def test_size_grows_with_the_page_not_the_walk(self, sandbox: Sandbox) -> None:
        sizes = []
        async with session(sandbox) as cc:
            pager = cc.tokens.list(limit=5)
            async for _page in pager.pages():
                sizes.append(len(pager.checkpoint()))
        assert max(sizes) - min(sizes) < 200  # one page of ids, some counters


async def _take(pager: Pager[ApiToken], count: int) -> AsyncIterator[ApiToken]:
    async for token in pager:
        yield token
        count -= 1
        if not count:
            return


class TestResumeInAnotherProcess:
    """A checkpoint written by one process is resumed by another, with its own session."""

    async def test_subprocess(self, sandbox: Sandbox) -> None:
        async with session(sandbox) as cc:
            whole = [t.id for t in await cc.tokens.list(limit=LIMIT).collect()]
        taken, checkpoint = await first_part(sandbox, 17, 1, None)
        script = textwrap.dedent(
            """
            import asyncio, json, sys
            from cellcast_async import CellcastSession

            async def main():
                args = json.loads(sys.stdin.read())
                async with CellcastSession(api_key=args["key"], base_url=args["url"]) as cc:
                    pager = cc.tokens.resume(args["checkpoint"], concurrency=8)
                    ids = [t.id async for t in pager]
                print(json.dumps({"ids": ids, "complete": pager.stats.complete}))

            asyncio.run(main())
            """
        )
        stdin = json.dumps({"key": sandbox.api_key, "url": sandbox.url, "checkpoint": checkpoint})
        # The sandbox serves from this process's loop: run the child without blocking it.
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
        assert proc.returncode == 0, err.decode()
        result = json.loads(out)
        assert taken + result["ids"] == whole
        assert result["complete"] is True


class TestResumeTwice:
    """A resumed walk's own checkpoints count what it inherited once, not twice."""

    async def test_max_items_across_two_mid_page_resumes(self, sandbox: Sandbox) -> None:
        async with session(sandbox) as cc:
            everything = [t.id for t in await cc.tokens.list(limit=10, max_items=35).collect()]
            taken: list[str] = []
            pager = cc.tokens.list(limit=10, max_items=35)
            for stop in (13, 15):  # mid-page both times, the second inside a resumed walk
                async for token in pager:
                    taken.append(token.id)
                    if len(taken) == stop:
                        break
                pager = cc.tokens.resume(pager.checkpoint())
            taken += [t.id for t in await pager.collect()]
        assert len(everything) == 35
        assert taken == everything

    async def test_auto_survives_a_checkpoint(self, sandbox: Sandbox) -> None:
        async with session(sandbox) as cc:
            pager = cc.tokens.list(limit=10, concurrency="auto")
            async for _ in pager:
                break
            resumed = cc.tokens.resume(pager.checkpoint())
            assert json.loads(pager.checkpoint())["state"]["concurrency"] == "auto"
            assert "concurrency=auto" in repr(resumed)
            fixed = cc.tokens.resume(pager.checkpoint(), concurrency=3)
            assert "concurrency=3" in repr(fixed)
