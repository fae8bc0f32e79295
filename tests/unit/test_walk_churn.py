"""``stats.complete`` never lies: walks over lists that change under them (issue 11).

Ground truth comes from :class:`ChurningList`, an in-memory list (no HTTP) whose items are
created and deleted between and during page reads, for hundreds of random seeds.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from cellcast_async import DecodeError, Page, Pager
from cellcast_async._walk import Order

from ._churn import ChurningList

SEEDS = 300


def pager_over(
    world: ChurningList, limit: int, concurrency: int, declared: Order | None
) -> Pager[dict[str, Any]]:
    async def fetch(number: int) -> Any:
        return await world.fetch(number, limit)

    return Pager(
        fetch,
        limit=limit,
        concurrency=concurrency,
        key=lambda item: item["id"],
        order=declared,
        order_key=lambda item: item["id"],
    )


async def walk(
    seed: int, order: Order, concurrency: int, declared: Order | None
) -> tuple[ChurningList, list[int], Pager[dict[str, Any]]] | None:
    rng = random.Random(seed)
    quiet = seed % 4 == 0
    world = ChurningList(
        rng,
        size=rng.randrange(0, 60),
        order=order,
        create=0.0 if quiet else rng.choice([0.0, 0.05, 0.2, 0.5]),
        delete=0.0 if quiet else rng.choice([0.0, 0.05, 0.2, 0.5]),
    )
    pager = pager_over(world, rng.randrange(1, 8), concurrency, declared)
    yielded: list[int] = []
    try:
        async for item in pager:
            yielded.append(item["id"])
    except DecodeError:
        return None  # whole pages shifting three reads in a row: checked below
    return world, yielded, pager


class TestCompleteNeverLies:
    """Every survivor is yielded whenever ``complete`` is True; nothing is yielded twice."""

    @pytest.mark.parametrize("concurrency", [1, 8])
    @pytest.mark.parametrize(
        ("order", "declared"),
        [
            ("newest_first", "newest_first"),
            ("oldest_first", "newest_first"),  # declared wrong: the sort check must notice
            ("oldest_first", "oldest_first"),
            ("newest_first", None),
            ("oldest_first", None),
        ],
    )
    async def test_simulation(self, order: Order, declared: Order | None, concurrency: int) -> None:
        outcomes: Counter[str] = Counter()
        for seed in range(SEEDS):
            result = await walk(seed, order, concurrency, declared)
            if result is None:
                outcomes["no progress"] += 1
                continue
            world, yielded, pager = result
            assert len(yielded) == len(set(yielded)), seed
            assert pager.stats.items == len(yielded)
            missed = world.survivors() - set(yielded)
            if pager.stats.complete:
                assert not missed, (seed, sorted(missed))
                outcomes["complete"] += 1
            else:
                outcomes["missed" if missed else "unproven"] += 1
        # The proof is not vacuous: every quiet list (a quarter of the seeds) is proven
        # complete when its order is known, and newest first at concurrency 1 repairs more.
        if declared == order == "newest_first":
            assert outcomes["complete"] >= SEEDS // 4
        if declared == order == "newest_first" and concurrency == 1:
            assert outcomes["complete"] > SEEDS // 2
        # A DecodeError only where items were created faster than a page per read, three
        # reads in a row (pages of 1 to 7 items here): the walk cannot tell that from a
        # server that ignores ``page``.
        assert outcomes["no progress"] < SEEDS // 8

    async def test_a_quiet_list_costs_no_extra_request_at_concurrency_1(self) -> None:
        for seed in range(50):
            rng = random.Random(seed)
            world = ChurningList(rng, size=rng.randrange(1, 80), order="newest_first")
            limit = rng.randrange(1, 9)
            pager = pager_over(world, limit, 1, "newest_first")
            yielded = [item["id"] async for item in pager]
            assert yielded == world.listing()
            assert pager.stats.complete is True
            assert pager.stats.requests == -(-len(yielded) // limit)
            assert pager.stats.refetched_pages == 0

    async def test_a_quiet_list_costs_one_extra_request_at_concurrency_8(self) -> None:
        world = ChurningList(random.Random(1), size=50, order="newest_first")
        pager = pager_over(world, 5, 8, "newest_first")
        yielded = [item["id"] async for item in pager]
        assert yielded == world.listing()
        assert pager.stats.complete is True
        assert pager.stats.requests == 10 + 1  # page 1 once more, after every other answer

    async def test_a_quiet_oldest_first_list_is_not_claimed_complete(self) -> None:
        """Oldest first, pages that do not overlap prove nothing: ``False``, not a guess."""
        world = ChurningList(random.Random(1), size=50, order="oldest_first")
        pager = pager_over(world, 5, 1, "oldest_first")
        yielded = [item["id"] async for item in pager]
        assert yielded == world.listing()
        assert pager.stats.complete is False


class TestRepair:
    """At concurrency 1 a shrinking total sends the walk back over the pages it may have missed."""

    @staticmethod
    def shrinking(deletions: dict[int, int]) -> tuple[list[int], Any]:
        """30 items newest first; before read number ``r``, delete ``deletions[r]`` at the front."""
        listing = list(range(30, 0, -1))
        reads = 0

        async def fetch(number: int) -> Any:
            nonlocal reads
            reads += 1
            del listing[: deletions.get(reads, 0)]
            pages = -(-len(listing) // 3)
            return Page(
                items=tuple({"id": n} for n in listing[(number - 1) * 3 : number * 3]),
                total=len(listing),
                page=number,
                limit=3,
                total_pages=pages,
                has_next_page=number < pages,
                has_prev_page=number > 1,
            )

        return listing, fetch

    async def test_one_shrink_costs_two_pages_and_loses_nothing(self) -> None:
        listing, fetch = self.shrinking({4: 2})  # two of page 1 go before page 4 is read
        pager = Pager(fetch, limit=3, key=lambda i: i["id"], order="newest_first")
        yielded = [item["id"] async for item in pager]
        assert set(listing) <= set(yielded)
        assert len(yielded) == len(set(yielded)) == 30
        assert pager.stats.refetched_pages == 2  # page 3 again, then page 4 again
        assert pager.stats.complete is True

    async def test_a_shrink_without_the_order_is_not_repaired(self) -> None:
        listing, fetch = self.shrinking({4: 2})
        pager = Pager(fetch, limit=3, key=lambda i: i["id"])
        yielded = [item["id"] async for item in pager]
        assert set(listing) - set(yielded) == {20, 21}  # slid back onto page 3, never seen
        assert pager.stats.refetched_pages == 0
        assert pager.stats.complete is False

    async def test_churn_faster_than_the_walk_runs_out_of_budget(self) -> None:
        _, fetch = self.shrinking(dict.fromkeys(range(2, 200), 1))
        pager = Pager(fetch, limit=3, key=lambda i: i["id"], order="newest_first")
        yielded = [item["id"] async for item in pager]
        assert len(yielded) == len(set(yielded))
        assert pager.stats.refetched_pages <= 8 + pager.stats.pages // 2
        assert pager.stats.complete is False
