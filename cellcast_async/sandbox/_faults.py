"""Fault injection: which request fails, how, and how late every answer comes.

Decisions come from a ``random.Random`` owned by the sandbox and seeded from ``Faults.seed``,
so the same seed and the same request sequence give the same faults. Scripted faults (by
1-based request number) win over guaranteed ones (``first_n``, ``every``), which win over
random ones (``error_rate``).

Two faults stand at the door instead, before the rate limit, and answer 429 at once: a
``storm`` (every request, for a while) and a ``challenge`` (the first attempt of every
request). They imitate a gateway, so they take no place in the queue and no latency.
"""

from __future__ import annotations

import math
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias, cast, get_args

__all__ = [
    "FAULT_KINDS",
    "MUTATIONS",
    "FaultKind",
    "FaultAction",
    "FaultPlan",
    "Faults",
    "ScriptEntry",
    "format_retry_after",
]

# "drop": close the connection without an answer. "hang": accept and never answer.
# "malformed": 200 with a truncated JSON body. The rest are HTTP statuses.
FaultKind: TypeAlias = Literal["500", "502", "503", "504", "429", "drop", "hang", "malformed"]
FAULT_KINDS: Final = frozenset(get_args(FaultKind))
MUTATIONS: Final = frozenset({"POST", "PUT", "DELETE", "PATCH"})
_MAX_CHALLENGED: Final = 100_000  # requests remembered as challenged; the oldest go first

ScriptEntry: TypeAlias = "str | tuple[str, float]"


@dataclass(frozen=True)
class Faults:
    """How the sandbox misbehaves. The default misbehaves not at all."""

    latency: float = 0.0
    """Seconds added to every request."""
    latency_jitter: float = 0.0
    """Up to this many extra seconds, uniformly, per request (its own RNG stream)."""
    error_rate: float = 0.0
    """Fraction of (eligible) requests that fail, 0.0-1.0."""
    kinds: tuple[str, ...] = ("500", "502", "503", "429", "drop")
    """A failing request fails as one of these, chosen uniformly."""
    retry_after: float = 0.0
    """Seconds sent in ``Retry-After`` on injected 429s."""
    seed: int = 0
    """Seeds the fault RNG; same seed, same request sequence -> same faults."""
    mutations_only: bool = False
    """Only POST/PUT/DELETE can fail at random (GETs still get latency)."""
    drop_before_apply: bool = False
    """A dropped mutation is lost before it is applied (default: applied, answer lost)."""
    first_n: int = 0
    """The first this-many eligible requests fail, whatever ``error_rate`` says."""
    every: int = 0
    """Every this-many-th eligible request fails (3: the 3rd, 6th, ...); 0 for none.

    ``error_rate`` only makes faults likely: a short test can draw none at all (README
    "Testing your code"). ``first_n`` and ``every`` guarantee them."""
    storm: float = 0.0
    """For this many seconds from the first request after these faults are set, every
    request is answered 429 at once (``Retry-After: retry_after``); healthy afterwards."""
    challenge: bool = False
    """The first attempt of every request is answered 429 at once (``Retry-After:
    retry_after``); the same request sent again (method, path, query, key and body alike)
    passes, and the one after that is challenged anew."""

    def __post_init__(self) -> None:
        # Seconds: a nan or inf here would make every answer wait forever (or crash it).
        for name in ("latency", "latency_jitter", "retry_after", "storm"):
            value = getattr(self, name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be between 0.0 and 1.0")
        if not isinstance(self.challenge, bool):
            raise ValueError(f"challenge must be True or False, got {self.challenge!r}")
        if not isinstance(self.kinds, tuple):
            object.__setattr__(self, "kinds", tuple(self.kinds))
        unknown = [k for k in self.kinds if k not in FAULT_KINDS]
        if unknown:
            raise ValueError(
                f"unknown fault kinds {unknown}; expected some of {sorted(FAULT_KINDS)}"
            )
        for name in ("first_n", "every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
        if (self.error_rate > 0 or self.first_n or self.every) and not self.kinds:
            raise ValueError("error_rate, first_n or every needs at least one fault kind")


@dataclass(frozen=True, slots=True)
class FaultAction:
    kind: FaultKind
    retry_after: float = 0.0


def format_retry_after(seconds: float) -> str:
    """An integer-valued string when whole ("1", "0"), as HTTP specifies; else the decimal."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return repr(float(seconds))


def _parse_entry(number: int, entry: ScriptEntry, default_retry_after: float) -> FaultAction:
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"script keys are 1-based request numbers, got {number!r}")
    if isinstance(entry, str):
        kind, retry_after = entry, default_retry_after
    elif (
        isinstance(entry, tuple)
        and len(entry) == 2
        and isinstance(entry[1], (int, float))
        and entry[0] == "429"
    ):
        kind, retry_after = entry[0], float(entry[1])
    else:
        raise ValueError(f"script entry {entry!r}: expected a fault kind or ('429', seconds)")
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
    if retry_after < 0:
        raise ValueError("retry_after must be >= 0")
    return FaultAction(cast(FaultKind, kind), retry_after)


class FaultPlan:
    """The sandbox's fault state: the current ``Faults``, its RNGs, and the script."""

    def __init__(
        self, faults: Faults | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        self._script: dict[int, FaultAction] = {}
        self._clock = clock if clock is not None else time.monotonic
        self.faults = faults or Faults()

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        # A new Faults restarts its sequence, so determinism holds from the swap on.
        self._faults = faults
        self._eligible = 0
        self._rng = random.Random(faults.seed)
        self._jitter_rng = random.Random(f"jitter:{faults.seed}")
        self._storm_ends: float | None = None  # set by the first request after the swap
        self._challenged: OrderedDict[Hashable, None] = OrderedDict()

    @property
    def storm_ends(self) -> float | None:
        """When (on the plan's clock) the storm ends; None before its first request."""
        return self._storm_ends

    @property
    def guards_door(self) -> bool:
        """Whether a storm or a challenge is set (so ``at_the_door`` can say no)."""
        return self._faults.storm > 0 or self._faults.challenge

    def at_the_door(self, identity: Hashable) -> FaultAction | None:
        """A 429 from the storm or the challenge for this request, or None to let it in.

        ``identity`` is what makes two requests "the same request" for the challenge.
        """
        faults = self._faults
        if faults.storm > 0:
            now = self._clock()
            if self._storm_ends is None:
                self._storm_ends = now + faults.storm
            if now < self._storm_ends:
                return FaultAction("429", faults.retry_after)
        if faults.challenge:
            if identity in self._challenged:
                del self._challenged[identity]
                return None
            if len(self._challenged) >= _MAX_CHALLENGED:
                self._challenged.popitem(last=False)
            self._challenged[identity] = None
            return FaultAction("429", faults.retry_after)
        return None

    def script(self, entries: Mapping[int, ScriptEntry]) -> None:
        parsed = {n: _parse_entry(n, e, self._faults.retry_after) for n, e in entries.items()}
        self._script.update(parsed)

    def clear_script(self) -> None:
        self._script.clear()

    def decide(self, number: int, method: str) -> FaultAction | None:
        """The fault for request ``number`` (1-based), or None. Scripted entries fire once."""
        scripted = self._script.pop(number, None)
        if scripted is not None:
            return scripted
        faults = self._faults
        if not (faults.error_rate > 0 or faults.first_n or faults.every):
            return None
        if faults.mutations_only and method.upper() not in MUTATIONS:
            return None
        self._eligible += 1
        guaranteed = self._eligible <= faults.first_n or (
            faults.every > 0 and self._eligible % faults.every == 0
        )
        if not guaranteed and self._rng.random() >= faults.error_rate:
            return None
        kind = faults.kinds[self._rng.randrange(len(faults.kinds))]
        return FaultAction(cast(FaultKind, kind), faults.retry_after)  # checked in Faults

    def delay(self) -> float:
        faults = self._faults
        delay = faults.latency
        if faults.latency_jitter > 0:
            delay += self._jitter_rng.random() * faults.latency_jitter
        return delay
