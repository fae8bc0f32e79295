"""The server's sustainable rate, learnt from what its answers say (README "Rate limits").

Pure bookkeeping on times the caller passes in: no clock, no I/O, so the estimator and the
recovery are tested on exact virtual times. The governor (``_governor.py``) feeds it every
answer and paces its releases at :meth:`ServerRate.pace`.

The idea is BBR's, in one dimension: the rate a server *admits* while it is asked for
more is its bottleneck rate, so measure the admitted answers and pace just under them,
instead of halving and creeping back (AIMD) or obeying a pessimistic reading of headers.

- ``free``: nothing learnt, nothing paced (a server with no limit never leaves it).
- A 429 while the server still admits other requests says "a little too fast", at most
  once per round (a 429 for a request sent before the last cut says nothing new). No
  pause. The first cut only bounds the rate from below (a burst the server had saved up
  must not read as its rate), so the pace probes upward from it. Every later cut is
  *measured* on the requests sent since the previous cut (at most the last 0.25 s,
  answered ones only): when the server refused more than one of them, what it admitted
  is its rate, and the pace goes to just under it (``BETA``); a lone 429 among admitted
  ones is two requests that met a little too close (jitter) at about the server's rate,
  and costs a 2% step back from the rate asked (``BETA_JITTER``), or nothing at all while
  429s are at most 1% of the answers of the last 2 s (BBR's loss tolerance: a stray 429
  costs one retry, a slower pace costs every request).
- ``cruise``: after a cut the pace is back at the rate measured at the cut within 1 s
  (fast at first, levelling off: CUBIC's shape), then grows above it, slowly at first and
  faster the longer no 429 comes (``1 + 0.04 t + 0.04 t^2``), to follow a limit that rises.
- ``closed``: a 429 for a request sent after the previous 429 arrived, with nothing
  admitted in between, says the server refuses everything for now (a window that is
  full, a storm). The session holds, then sends one request to probe: after 0.1 s, then
  half as long again each time, never longer than ``Retry-After`` nor than 5 s; a
  ``Retry-After`` over 1 s is held in full (a server that says so means it).
- A challenge is not a closed server: when lately every first attempt was refused while
  every retry was admitted (a gateway that answers the first attempt of each request with
  a 429), a refused first attempt neither holds nor cuts anything: its retry passes.
- ``probe``: once a probe is admitted, the pace grows 1.5x every 0.1 s (from just under
  the rate known before, or from 20/s when none is known) until it is back at the known
  rate or meets the next 429: quick, and never one burst.
"""

from __future__ import annotations

import collections
import math
import random
from typing import Final, Literal

__all__ = ["BETA", "ServerRate"]

Phase = Literal["free", "probe", "cruise", "closed"]

BETA: Final = 0.95  # after a cut, pace at this share of the rate the server admitted
BETA_JITTER: Final = 0.98  # ... or of the pace, when the server admitted about all of it
ADMITTED_ALL: Final = 0.95  # "about all": this share of the pace
PROBE_PERIOD: Final = 0.1  # seconds per growth step while probing
PROBE_GAIN: Final = 1.5  # growth per probe step
RECOVER: Final = 1.0  # cruise: seconds to regain the rate measured at the cut ...
CRUISE_LINEAR: Final = 0.04  # ... then + 4% per second ...
CRUISE_SQUARE: Final = 0.04  # ... + 4% per second squared
START_RATE: Final = 20.0  # probing from nothing known starts here (requests/s)
MIN_RATE: Final = 1.0  # no learnt pace is slower than this
MAX_RATE: Final = 1e6  # nor faster (a float that never overflows)
FIRST_SPAN: Final = 1.0  # the first cut counts over at least this long
MEASURE_SPAN: Final = 1.0  # cruise cuts measure over the last second
MIN_SPAN: Final = 0.05  # a cut shows what it brought after this long
HOLD_FIRST: Final = 0.1  # closed: the first hold, in seconds ...
HOLD_GROWTH: Final = 1.5  # ... then half as long again each time ...
HOLD_CAP: Final = 5.0  # ... at most this, and never beyond Retry-After
NEAR_RETRY_AFTER: Final = 1.0  # a longer Retry-After is held in full (capped at 60 s)
_KEEP: Final = 2.0  # seconds of admitted answers kept
CLOSED_AFTER: Final = 3  # this many 429s in a row with nothing admitted: closed
WINDOW_SPAN: Final = 0.25  # a cut measures the requests sent over at most this long
TOLERATED: Final = 0.01  # stray 429s up to this share of the answers cut nothing
MIN_ANSWERS: Final = 8  # a cut's window needs this many answers (a count of a few is noise)
ASKED_LEAST: Final = 0.75  # a lone 429 reads the rate asked as at least this share of the pace
JITTER_REFUSALS: Final = 1  # this many 429s in a cut's window (or fewer): jitter
_GRACE: Final = 0.0005  # a request sent this soon after a cut was released before it
CHALLENGE_SPAN: Final = 2.0  # seconds of first attempts and retries kept to tell a challenge
CHALLENGE_RETRIES: Final = 1  # a retry admitted (and none refused) makes a challenge
_FIRST_OK, _FIRST_REFUSED, _RETRY_OK, _RETRY_REFUSED = range(4)


class ServerRate:
    """What the server admits, and the pace that follows from it. Times in seconds."""

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.Random()
        # (answered, sent) of admitted requests over the last _KEEP seconds
        self._admits: collections.deque[tuple[float, float]] = collections.deque()
        # send times of refused requests over the last _KEEP seconds
        self._refusals: collections.deque[float] = collections.deque()
        self._first_admit: float | None = None
        self.phase: Phase = "free"
        self.estimate: float | None = None  # the server's sustainable rate, last measured
        self._base = 0.0  # the pace the current phase started from
        self._ceiling = 0.0  # cruise: the rate measured at the cut, regained first
        self._since = 0.0  # when the current phase started
        self._target: float | None = None  # probing: back in cruise at this pace
        self._last_cut = -math.inf  # requests sent before this said nothing new
        self._last_429: float | None = None  # when the last 429 arrived
        self._admitted_since_429 = 0
        self._refused_in_row = 0  # 429s in a row, nothing admitted between
        self._rtt = 0.0  # seconds from sending to an answer, smoothed
        self._holds = 0  # closed holds in a row
        self.cuts = 0
        # (answered, kind) of answers over the last CHALLENGE_SPAN, and counts per kind
        self._attempts: collections.deque[tuple[float, int]] = collections.deque()
        self._kinds = [0, 0, 0, 0]

    # -- what answers say ------------------------------------------------------------

    def admitted(self, now: float, sent_at: float | None = None, *, retry: bool = False) -> None:
        """A request sent at ``sent_at`` was admitted (any answer but a 429); ``retry``: the
        attempt was a retry of a refused one."""
        self._note(now, _RETRY_OK if retry else _FIRST_OK)
        admits = self._admits
        sent = now if sent_at is None else min(now, sent_at)
        admits.append((now, sent))
        self._rtt = 0.8 * self._rtt + 0.2 * (now - sent) if self._rtt else now - sent
        while admits and admits[0][0] <= now - _KEEP:
            admits.popleft()
        if self._first_admit is None:
            self._first_admit = now
        self._admitted_since_429 += 1
        if self.phase == "closed":
            # A probe got through: the server admits again; climb back quickly.
            self._start_probe(now)
        self._holds = 0

    def refused(
        self, now: float, sent_at: float, retry_after: float | None, *, retry: bool = False
    ) -> float:
        """A 429 arrived for a request sent at ``sent_at`` (``retry``: a retry of a refused
        attempt): the seconds to hold every request for (0: none, only a slower pace)."""
        self._note(now, _RETRY_REFUSED if retry else _FIRST_REFUSED)
        refusals = self._refusals
        refusals.append(min(now, sent_at))
        while refusals and refusals[0] <= now - _KEEP:
            refusals.popleft()
        if not retry and self.challenged:
            # Every retry passes and no first attempt does: a challenge, not a rate. The
            # retry of this request will pass; neither a hold nor a cut would help.
            return 0.0
        first = self._last_429 is None
        admitted_between = self._admitted_since_429
        self._last_429 = now
        self._admitted_since_429 = 0
        self._refused_in_row = 1 if admitted_between else self._refused_in_row + 1
        if sent_at < self._last_cut + _GRACE:
            return 0.0  # sent before we slowed down: the same round, already answered
        if (
            self.phase == "closed"
            or self._refused_in_row >= CLOSED_AFTER
            or (first and self._count(now, MEASURE_SPAN) == 0)
        ):
            # Refused again while closed, refusals in a row with nothing admitted between
            # (a full window, a storm), or a first answer that is a refusal: closed.
            return self._close(now, retry_after)
        if now - self._last_cut < MIN_SPAN + self._rtt:
            return 0.0  # the last cut has not had time to show what it brought
        self._cut(now, sent_at=sent_at)
        return 0.0

    def spent(self, now: float) -> None:
        """The server's headers say its budget is spent: on a session not yet paced, the
        first cut without the cost of a 429. Once paced, the pace's own measurement
        governs: a bucket one request deep says "0 left" after every admitted request,
        and reading that as "too fast" each time would slow the pace to nothing."""
        if self.phase != "free":
            return
        self._cut(now)

    @property
    def challenged(self) -> bool:
        """Lately every first attempt was refused and every retry admitted: a challenge
        (a gateway that refuses the first attempt of each request), not a closed server."""
        kinds = self._kinds
        return (
            kinds[_RETRY_OK] >= CHALLENGE_RETRIES
            and kinds[_RETRY_REFUSED] == 0
            and kinds[_FIRST_OK] == 0
        )

    # -- the pace ----------------------------------------------------------------------

    def pace(self, now: float) -> float | None:
        """Requests per second to release now; ``None`` when nothing limits."""
        rate = self.pace_at(now)
        target = self._target
        if self.phase == "probe" and target is not None and rate is not None and rate >= target:
            # Back at the known rate: cruise on from there.
            self.phase, self._base, self._since = "cruise", target, now
            self._ceiling = target
        return rate

    # -- inside ------------------------------------------------------------------------

    def _note(self, now: float, kind: int) -> None:
        """Keep what answered over the last CHALLENGE_SPAN: first attempt or retry, and
        whether it was admitted."""
        attempts, kinds = self._attempts, self._kinds
        attempts.append((now, kind))
        kinds[kind] += 1
        while attempts and attempts[0][0] <= now - CHALLENGE_SPAN:
            kinds[attempts.popleft()[1]] -= 1

    def _count(self, now: float, span: float) -> int:
        """Admitted answers that arrived over the last ``span`` seconds."""
        start = now - span
        return sum(1 for t, _ in self._admits if t > start)

    def _sent_since_cut(self, until: float = math.inf) -> int:
        """Admitted answers to requests sent since the last cut (at the pace it set)."""
        start = self._last_cut + _GRACE
        return sum(1 for _, sent in self._admits if start <= sent < until)

    def _measure(self, now: float) -> float:
        """Requests per second the server admitted lately."""
        if self.phase == "free":
            # The first 429: what came before may have been a burst the server had saved
            # up; count it over a whole second however young the session, so a
            # burst does not read as a rate (a lower bound: the probe finds the rest).
            young = now - self._first_admit if self._first_admit is not None else 0.0
            return self._count(now, MEASURE_SPAN) / max(FIRST_SPAN, min(MEASURE_SPAN, young))
        # Since the last cut: the server's saved-up burst went before it (it is what drew
        # the 429), so what it admitted since is its rate. At least MIN_SPAN (a count of a
        # few is noise), at most a second (a limit may change); while probing, only the
        # last two steps (the pace grew 2.25x over them: older answers read too low).
        if self.phase == "probe":
            # Growing fast: only the last two steps tell the rate the server stopped at.
            span = 2 * PROBE_PERIOD
            return self._count(now, span) / span
        answered_until = now - self._rtt  # later requests have no answer yet
        span = answered_until - (self._last_cut + _GRACE)
        if MIN_SPAN <= span <= MEASURE_SPAN:
            # Only requests sent since the cut: the ones before it went at the old pace.
            return self._sent_since_cut(answered_until) / span
        return self._count(now, MEASURE_SPAN) / MEASURE_SPAN

    def _cut(self, now: float, sent_at: float | None = None) -> None:
        if sent_at is not None and self.phase != "free":
            window = self._window(min(sent_at, now - self._rtt))
            if window is None:
                return  # too few answers since the last cut to tell: the next 429 will
            self._cut_to(now, *window)
            return
        measured = self._measure(now)
        current = self.pace(now)
        if current is not None and measured > current and self.phase == "probe":
            # The server admitted more than we asked since the last cut: this 429 is not
            # about our pace (a request the probe had not yet slowed). Keep probing.
            return
        basis = measured if current is None else min(measured, current)
        if self.phase == "free":
            basis = max(basis, START_RATE)  # a young session has seen too little to go slower
        beta = BETA
        if current is not None and measured >= ADMITTED_ALL * current:
            # The server admitted about all we sent: a lone 429 from two requests that met
            # too close together (jitter), not a pace above its rate. A small step back.
            beta = BETA_JITTER
        # The first cut only bounds the rate from below (a young session has seen little):
        # probe upward from there until the next 429 measures it. Later cuts cruise.
        self._settle(now, basis, beta, "probe" if self.phase == "free" else "cruise")

    def _window(self, sent_at: float) -> tuple[float, float, int] | None:
        """(pace when ``sent_at`` was sent, admitted per second, refused) over the requests
        sent since the last cut, at most WINDOW_SPAN before ``sent_at`` (the caller passes
        a time whose admitted requests have had their answers); ``None`` when too few
        seconds have gone by to tell."""
        start = max(self._last_cut + _GRACE, sent_at - WINDOW_SPAN)
        span = sent_at - start
        if span < MIN_SPAN:
            return None
        admitted = sum(1 for _, sent in self._admits if start <= sent < sent_at)
        refused = sum(1 for sent in self._refusals if start <= sent <= sent_at)
        if admitted + refused < MIN_ANSWERS:
            return None
        pace = self.pace_at(sent_at)
        sending = (admitted + refused) / span
        if pace is None:
            pace = sending
        elif sending < pace:
            # Fewer were sent than the pace allowed (a probe's ramp, a busy client): the
            # rate asked, but never under a share of the pace (a count of a few is noise).
            pace = max(sending, ASKED_LEAST * pace)
        return pace, admitted / span, refused

    def _cut_to(self, now: float, pace: float, admitted: float, refused: int) -> None:
        """A cut measured on the requests sent since the last one: while the server refuses
        some of them it admits its rate, so the admitted rate is the estimate; a lone 429
        among admitted ones is two requests that met a little too close (jitter) at about
        the server's rate: a small step back from the rate asked."""
        if refused <= JITTER_REFUSALS:
            if self._refused_share() <= TOLERATED:
                return  # BBR's loss tolerance: a few stray 429s cost less than a slower pace
            self._settle(now, pace, BETA_JITTER, "cruise")
        else:
            self._settle(now, admitted, BETA, "cruise")

    def _refused_share(self) -> float:
        """The share of the answers of the last _KEEP seconds that were 429s."""
        refused = len(self._refusals)
        return refused / max(1, refused + len(self._admits))

    def _settle(self, now: float, basis: float, beta: float, phase: Phase) -> None:
        self.estimate = max(MIN_RATE, basis)
        self._ceiling = min(MAX_RATE, self.estimate)
        self.phase = phase
        self._target = None
        self._base = min(MAX_RATE, max(MIN_RATE, beta * basis))
        self._since = now
        self._last_cut = now
        self.cuts += 1

    def _cruise(self, elapsed: float) -> float:
        """The pace ``elapsed`` seconds into a cruise: back at the rate measured at the cut
        within RECOVER seconds (fast at first, levelling off), then a slow probe above it
        that speeds up the longer no 429 comes, to follow a limit that rises (CUBIC's
        shape, on a rate)."""
        base, ceiling = self._base, max(self._base, self._ceiling)
        if elapsed < RECOVER:
            left = 1.0 - elapsed / RECOVER
            return base + (ceiling - base) * (1.0 - left * left * left)
        beyond = elapsed - RECOVER
        growth = 1.0 + CRUISE_LINEAR * beyond + CRUISE_SQUARE * beyond * beyond
        return min(ceiling * growth, MAX_RATE)

    def pace_at(self, when: float) -> float | None:
        """The pace in force at ``when`` (not before the current phase began), without
        the change of phase :meth:`pace` makes when a probe is back at its target."""
        phase = self.phase
        if phase == "free":
            return None
        elapsed = max(0.0, when - self._since)
        if phase == "probe":
            rate = self._base * float(PROBE_GAIN ** min(elapsed / PROBE_PERIOD, 100.0))
            return min(rate, self._target or MAX_RATE, MAX_RATE)
        if phase == "cruise":
            return self._cruise(elapsed)
        return START_RATE

    def _close(self, now: float, retry_after: float | None) -> float:
        if self.phase != "closed":
            # What the server admitted over the last second before it closed: the rate to
            # come back to (a window that admitted R in its second admits R again).
            known = self._count(now, MEASURE_SPAN) / MEASURE_SPAN
            if known >= MIN_RATE:
                self.estimate = known if self.estimate is None else max(known, self.estimate)
            self.phase = "closed"
            self._base = START_RATE if self.estimate is None else BETA * self.estimate
            self._since = now
        self._last_cut = now
        hold = min(HOLD_CAP, HOLD_FIRST * HOLD_GROWTH**self._holds)
        self._holds = min(self._holds + 1, 64)
        if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
            if retry_after > NEAR_RETRY_AFTER:
                # A server that says "come back in 2 s or more" means it: no probe before.
                return retry_after
            # 1 s or less is the granularity of a slot that may be milliseconds away.
            hold = min(hold, retry_after)
        # Jitter, so sessions that met the same storm do not probe together.
        return hold * (0.8 + 0.2 * self._rng.random())

    def _start_probe(self, now: float) -> None:
        estimate = self.estimate
        self.phase = "probe"
        self._since = now
        if estimate is None:
            self._base, self._target = START_RATE, None
        else:
            self._base = max(START_RATE, min(self._base, BETA * estimate) / 2.0)
            self._target = max(START_RATE, BETA * estimate)
