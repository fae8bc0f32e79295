"""An in-memory listing whose items come and go between and during page reads.

Not HTTP: a ``fetch`` for :class:`cellcast_async.Pager` that keeps the ground truth of
which items existed when, so a test can check what a walk claims (README "Reliability").
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, Literal

from cellcast_async import Page
from cellcast_async._walk import current_walk

Order = Literal["newest_first", "oldest_first"]


class ChurningList:
    """Items ``{"id": n}``, ``n`` growing with creation time, listed in ``order``.

    Before, at and after each read, each of ``steps`` moments creates an item with
    probability ``create`` and deletes a random one with probability ``delete``. Reads
    interleave: each read awaits the loop a few times around its snapshot.
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        size: int,
        order: Order,
        create: float = 0.0,
        delete: float = 0.0,
        steps: int = 2,
        churn_reads: int = 40,
    ) -> None:
        self.rng = rng
        self.order = order
        self.create = create
        self.delete = delete
        self.steps = steps
        self.clock = 0
        self.next_id = size
        self.present: list[int] = list(range(size))  # ascending id: oldest first
        self.created_at: dict[int, int] = dict.fromkeys(range(size), -1)
        self.deleted_at: dict[int, int] = {}
        self.snapshots: list[int] = []
        self.churn_reads = churn_reads

    @property
    def churning(self) -> bool:
        """Churn stops after ``churn_reads`` reads, so that even an oldest-first list that
        grows faster than the walk reads it ends."""
        return len(self.snapshots) < self.churn_reads

    def _tick(self) -> int:
        self.clock += 1
        return self.clock

    def mutate(self) -> None:
        if not self.churning:
            return
        for _ in range(self.steps):
            if self.rng.random() < self.create:
                self.present.append(self.next_id)
                self.created_at[self.next_id] = self._tick()
                self.next_id += 1
            if self.present and self.rng.random() < self.delete:
                victim = self.present.pop(self.rng.randrange(len(self.present)))
                self.deleted_at[victim] = self._tick()

    def listing(self) -> list[int]:
        return self.present[::-1] if self.order == "newest_first" else list(self.present)

    async def fetch(self, number: int, limit: int) -> Page[dict[str, Any]]:
        recorder = current_walk.get()
        assert recorder is not None  # the pager sets it around every page fetch
        self.mutate()
        for _ in range(self.rng.randrange(3)):
            await asyncio.sleep(0)
            self.mutate()
        listing = self.listing()
        self.snapshots.append(self._tick())
        total = len(listing)
        chunk = listing[(number - 1) * limit : number * limit]
        for _ in range(self.rng.randrange(3)):
            self.mutate()
            await asyncio.sleep(0)
        recorder.attempt(status=200, elapsed=0.0, retry=False)
        pages = -(-total // limit)
        return Page(
            items=tuple({"id": n} for n in chunk),
            total=total,
            page=number,
            limit=limit,
            total_pages=pages,
            has_next_page=number < pages,
            has_prev_page=number > 1,
        )

    def survivors(self) -> set[int]:
        """Items that existed from the walk's first read to its last."""
        first, last = min(self.snapshots), max(self.snapshots)
        return {
            n
            for n, born in self.created_at.items()
            if born < first and self.deleted_at.get(n, last + 1) > last
        }
