"""``stats.complete`` never lies: walks over lists that change under them (issue 11).

Ground truth comes from :class:`ChurningList`, an in-memory list (no HTTP) whose items are
created and deleted between and during page reads, for hundreds of random seeds.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from cellcast_async import DecodeError, Page, Pager, WalkStats
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


async def quiet_walk(
    rng: random.Random, size: int, limit: int, concurrency: int, order: Order
) -> WalkStats:
    """Walk a list nothing changes during the walk, in its own declared order: every item
    is yielded once, in order; the walk's stats."""
    world = ChurningList(rng, size=size, order=order)
    pager = pager_over(world, limit, concurrency, order)
    yielded = [item["id"] async for item in pager]
    assert yielded == world.listing()
    return pager.stats


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
        # No DecodeError: a page of ids already seen under a moved total is a list that
        # grew or shrank, not a server that ignores ``page`` (README "Paging").
        assert outcomes["no progress"] == 0

    async def test_a_quiet_list_costs_no_extra_request_at_concurrency_1(self) -> None:
        for seed in range(50):
            rng = random.Random(seed)
            size, limit = rng.randrange(1, 80), rng.randrange(1, 9)
            stats = await quiet_walk(rng, size, limit, 1, "newest_first")
            assert stats.complete is True
            assert stats.requests == -(-size // limit)
            assert stats.refetched_pages == 0

    async def test_a_quiet_list_costs_one_extra_request_at_concurrency_8(self) -> None:
        stats = await quiet_walk(random.Random(1), 50, 5, 8, "newest_first")
        assert stats.complete is True
        assert stats.requests == 10 + 1  # page 1 once more, after every other answer

    async def test_a_quiet_oldest_first_list_is_not_claimed_complete(self) -> None:
        """Oldest first, pages that do not overlap prove nothing: ``False``, not a guess."""
        stats = await quiet_walk(random.Random(1), 50, 5, 1, "oldest_first")
        assert stats.complete is False


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


class TestGrowingList:
    """A newest-first list that gains a page of items before each read is no repeat."""

    @staticmethod
    def growing(size: int, limit: int, busy: int | None) -> tuple[list[int], Any]:
        """``size`` items newest first; ``limit`` new ones in front before each of the
        first ``busy`` reads (None: every read)."""
        listing = list(range(size, 0, -1))
        reads = 0

        async def fetch(number: int) -> Any:
            nonlocal reads
            reads += 1
            if busy is None or reads <= busy:
                top = listing[0] if listing else 0
                listing[:0] = range(top + limit, top, -1)
            chunk = listing[(number - 1) * limit : number * limit]
            pages = -(-len(listing) // limit)
            return Page(
                items=tuple({"id": n} for n in chunk),
                total=len(listing),
                page=number,
                limit=limit,
                total_pages=pages,
                has_next_page=number < pages,
                has_prev_page=number > 1,
            )

        return listing, fetch

    @pytest.mark.parametrize("concurrency", [1, 8])
    async def test_a_page_gained_before_each_read_is_walked(self, concurrency: int) -> None:
        _, fetch = self.growing(30, 3, busy=12)
        pager = Pager(
            fetch,
            limit=3,
            concurrency=concurrency,
            key=lambda i: i["id"],
            order="newest_first",
            order_key=lambda i: i["id"],
        )
        seen = [item["id"] async for item in pager]
        assert len(seen) == len(set(seen))
        if concurrency == 1:  # one read at a time: every item there all along is yielded
            assert set(range(1, 31)) <= set(seen)
        assert pager.stats.duplicates_dropped > 0

    @pytest.mark.parametrize("concurrency", [1, 8])
    async def test_growing_for_ever_ends_at_the_bound(self, concurrency: int) -> None:
        _, fetch = self.growing(30, 3, busy=None)
        pager = Pager(fetch, limit=3, concurrency=concurrency, key=lambda i: i["id"])
        with pytest.raises(DecodeError) as info:
            await pager.collect()
        # The first answer's total is 33 (a page was created before it): 11 pages, twice
        # that plus 100.
        assert str(info.value) == (
            "GET: the server still says there are more pages after 122 (the default max_pages):"
            " the list grows as fast as it is read, or the server keeps inventing items"
        )
        assert pager.next_page == 123
        assert pager.stats.pages == 122
        assert pager.stats.complete is False

    @pytest.mark.parametrize("concurrency", [1, 8])
    async def test_creation_only_churn_never_looks_like_an_ignored_page(
        self, concurrency: int
    ) -> None:
        for seed in range(200):
            rng = random.Random(seed)
            world = ChurningList(rng, size=rng.randrange(0, 40), order="newest_first", create=0.3)
            pager = pager_over(world, rng.randrange(1, 4), concurrency, "newest_first")
            seen = [item["id"] async for item in pager]  # no DecodeError
            assert len(seen) == len(set(seen)), seed
            if pager.stats.complete:
                assert not world.survivors() - set(seen), seed
