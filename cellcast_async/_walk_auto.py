"""``concurrency="auto"``: how many pages a walk keeps in flight (README "Rate limits",
"Adaptive concurrency"). The width answers to the server's capacity (latency, 503s, lost
answers); the request rate is the rate governor's business (``_governor.py``), so a 429
never narrows the width.
"""

from __future__ import annotations

import math
import time
from typing import Final

from ._options import Clock

__all__ = ["AdaptiveConcurrency"]


class AdaptiveConcurrency:
    """AIMD pages in flight for ``concurrency="auto"``, as TCP congestion control does.

    - Slow start: +1 per clean answer (doubling per round) up to 8 pages in flight or until
      the first congestion signal.
    - Then additive increase: +1 per four rounds (a round is ``limit`` answers).
    - Multiplicative decrease (halve) on a 503, no answer, or a latency that rises well
      above the floor seen (twice the floor and at least 20 ms more); at most once per
      round, so one burst of failures counts once. A 429 changes nothing here: the rate
      is the governor's control (README "Rate limits").
    """

    LATENCY_FACTOR: Final = 2.0
    LATENCY_MARGIN: Final = 0.020
    FLOOR_PERIOD: Final = 30.0  # the latency floor is re-learnt every 30 s of clock time
    # Slow start doubles per round up to 8 pages in flight, then +1 per round: past 8 a
    # latency-bound walk gains little, and a walk that meets a rate limiter's saved-up
    # burst at full speed would have a round of requests in flight to be refused at once.
    SLOW_START_LIMIT: Final = 8.0
    GROWTH: Final = 0.25  # past slow start: +1 page in flight per four rounds

    def __init__(
        self,
        *,
        initial: int = 2,
        minimum: int = 1,
        maximum: int = 32,
        clock: Clock = time.monotonic,
    ) -> None:
        if minimum < 1 or maximum < minimum or not minimum <= initial <= maximum:
            raise ValueError(
                "AdaptiveConcurrency needs 1 <= minimum <= initial <= maximum, got "
                f"minimum={minimum}, initial={initial}, maximum={maximum}"
            )
        self._window = float(initial)
        self._minimum = minimum
        self._maximum = maximum
        self._clock = clock
        self._slow_start = True
        self._answers = 0
        self._guard_until = 0  # no decrease before this many answers (one round)
        self._floor: float | None = None
        self._period_floor: float | None = None
        self._period_start = clock()
        self._smoothed: float | None = None
        self.decreases = 0

    @property
    def limit(self) -> int:
        return int(self._window)

    def on_attempt(self, status: int | None, elapsed: float) -> None:
        """Grow on a clean, fast answer; shrink on a 503, no answer or rising latency.

        A 429 leaves the width alone: the request rate is the governor's control (it paces
        at what the server admits), and a narrower walk would only cap the rate below it.
        """
        self._answers += 1
        if status == 429:
            return
        if status is None or status == 503:
            self._decrease()
            return
        if status >= 500:
            return  # a server error that says nothing about load: neither grow nor shrink
        if self._slow_latency(elapsed):
            self._decrease()
            return
        if self._slow_start and self._window < self.SLOW_START_LIMIT:
            self._window = min(float(self._maximum), self._window + 1.0)
        else:
            self._window = min(float(self._maximum), self._window + self.GROWTH / self._window)

    def _slow_latency(self, elapsed: float) -> bool:
        if not math.isfinite(elapsed) or elapsed < 0:
            return False
        now = self._clock()
        if now - self._period_start >= self.FLOOR_PERIOD:
            # Forget an old floor slowly: the next period starts from the last period's.
            self._floor = self._period_floor if self._period_floor is not None else self._floor
            self._period_floor = None
            self._period_start = now
        self._period_floor = (
            elapsed if self._period_floor is None else min(self._period_floor, elapsed)
        )
        self._floor = elapsed if self._floor is None else min(self._floor, elapsed)
        smoothed = elapsed if self._smoothed is None else 0.8 * self._smoothed + 0.2 * elapsed
        self._smoothed = smoothed
        threshold = max(self._floor * self.LATENCY_FACTOR, self._floor + self.LATENCY_MARGIN)
        return smoothed > threshold

    def _decrease(self) -> None:
        if self._answers < self._guard_until:
            return
        self._slow_start = False
        self._window = max(float(self._minimum), self._window / 2.0)
        self._guard_until = self._answers + max(1, math.ceil(self._window * 2))
        # Latency measured in the old window is not the new window's: start smoothing anew.
        self._smoothed = None
        self.decreases += 1
