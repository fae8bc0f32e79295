"""The server-rate estimator (README "Rate limits"), driven on exact times: a simulated
server admits at its rate and refuses the rest, and the pace must settle just under it,
recover quickly after a storm, and never jump in one burst. No test waits for real."""

from __future__ import annotations

import random

import pytest

from cellcast_async._rate_estimate import BETA, RECOVER, START_RATE, ServerRate


class Bucket:
    """A token bucket: ``rate`` per second, ``burst`` deep; refused requests cost nothing."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.when = burst, 0.0
        self.closed_until = 0.0  # a storm: everything refused until then

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.when) * self.rate)
        self.when = now
        if now < self.closed_until or self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


def drive(
    est: ServerRate,
    server: Bucket,
    start: float,
    end: float,
    *,
    rtt: float = 0.02,
    demand: float = 1000.0,
) -> tuple[list[float], int, int]:
    """Send at the estimator's pace (at most ``demand``/s) from ``start`` to ``end``, holding
    when it says so; answers come ``rtt`` later. Returns send times, sent, refused."""
    now, sent, refused, times = start, 0, 0, []
    pending: list[tuple[float, float, bool]] = []  # (answer at, sent at, admitted)
    hold_until = start
    while now < end:
        pending.sort()
        while pending and pending[0][0] <= now:
            at, was_sent, ok = pending.pop(0)
            if ok:
                est.admitted(at, was_sent)
            else:
                hold = est.refused(at, was_sent, 1.0)
                hold_until = max(hold_until, at + hold)
        if now >= hold_until:
            pace = est.pace(now)
            rate = demand if pace is None else min(pace, demand)
            ok = server.take(now)
            pending.append((now + rtt, now, ok))
            times.append(now)
            sent += 1
            refused += not ok
            now += 1.0 / rate
        else:
            now = min(hold_until, now + 0.001)
    return times, sent, refused


class TestSettles:
    """Against a bucket it has never seen, the pace settles just under its rate."""

    @pytest.mark.parametrize(("rate", "burst"), [(50.0, 10.0), (100.0, 10.0), (100.0, 100.0)])
    def test_pace_just_under_the_rate(self, rate: float, burst: float) -> None:
        est = ServerRate(rng=random.Random(0))
        server = Bucket(rate, burst)
        times, sent, refused = drive(est, server, 0.0, 6.0)
        late = [t for t in times if t >= 4.0]
        achieved = len(late) / 2.0
        assert 0.85 * rate <= achieved <= 1.12 * rate  # sends: a probe above R is refused
        assert est.estimate == pytest.approx(rate, rel=0.15)
        # A round of requests at 1000/s is in flight when the first 429 comes back.
        assert refused / sent <= 0.10

    def test_no_limit_stays_unpaced(self) -> None:
        """A server that never refuses: never paced, nothing learnt."""
        est = ServerRate()
        for i in range(1000):
            est.admitted(i * 0.001, i * 0.001 - 0.02)
        assert est.pace(1.0) is None
        assert est.phase == "free"
        assert est.estimate is None


class TestTooFast:
    """A 429 among admitted answers is a cut, never a hold."""

    def test_cut_not_hold(self) -> None:
        est = ServerRate()
        for i in range(100):
            est.admitted(i / 100, i / 100 - 0.02)
        assert est.refused(1.0, 0.99, 30.0) == 0.0
        assert est.phase == "probe"
        assert est.pace(1.0) == pytest.approx(BETA * 100.0, rel=0.02)

    def test_one_cut_per_round(self) -> None:
        """429s for requests sent before the cut change nothing more."""
        est = ServerRate()
        for i in range(100):
            est.admitted(i / 100, i / 100 - 0.02)
        est.refused(1.0, 0.98, None)
        pace = est.pace(1.0)
        for k in range(10):
            assert est.refused(1.0 + k * 0.001, 0.99, None) == 0.0
        assert est.pace(1.0) == pace
        assert est.cuts == 1


class TestMeasuredCut:
    """Cuts after the first are measured on the requests sent since the previous cut."""

    @staticmethod
    def _after_first_cut(est: ServerRate) -> None:
        """A second at 100/s, then a 429 at t = 1: the first cut, probing from ~95/s."""
        for i in range(100):
            est.admitted(i / 100, i / 100 - 0.02)
        est.refused(1.0, 0.99, None)
        assert est.phase == "probe"

    @staticmethod
    def _overloaded(est: ServerRate, start: float, seconds: float) -> float:
        """Asked 100/s for ``seconds``, the server admits every other request (50/s); the
        answers reach ``est`` in the order they arrive. Returns the last answer's time."""
        events = []
        for k in range(round(seconds * 100)):
            sent = start + k * 0.01
            events.append((sent + 0.02, sent, True) if k % 2 == 0 else (sent + 0.001, sent, False))
        events.sort()
        for at, sent, ok in events:
            if ok:
                est.admitted(at, sent)
            else:
                est.refused(at, sent, None)
        return events[-1][0]

    def test_refusals_measure_the_admitted_rate(self) -> None:
        """Asked 100/s, the server admitted 50/s and refused the rest: pace just under 50."""
        est = ServerRate()
        self._after_first_cut(est)
        now = self._overloaded(est, 1.0, 0.3)
        assert est.phase == "cruise"
        estimate = est.estimate
        assert estimate == pytest.approx(50.0, rel=0.15)
        assert estimate is not None
        assert est.pace(now) == pytest.approx(BETA * estimate, rel=0.05)

    def test_stray_429s_under_one_percent_cut_nothing(self) -> None:
        """One 429 in two hundred answers is jitter: the pace is left alone."""
        est = ServerRate()
        self._after_first_cut(est)
        for i in range(100):
            sent = 1.0 + i / 100
            est.admitted(sent + 0.02, sent)
        cuts, pace = est.cuts, est.pace(2.05)
        assert est.refused(2.05, 2.04, None) == 0.0
        assert est.cuts == cuts
        assert est.pace(2.05) == pace

    def test_lone_429s_over_one_percent_step_back_a_little(self) -> None:
        """Stray 429s above the tolerated share: each costs a 2% step from the rate asked,
        never the halving of AIMD."""
        est = ServerRate()
        self._after_first_cut(est)
        now = 1.0
        for i in range(100):
            sent = 1.0 + i / 100
            if i % 20 == 10:
                est.refused(sent + 0.001, sent, None)
            else:
                est.admitted(sent + 0.02, sent)
            now = sent + 0.02
        assert est.cuts >= 2
        pace = est.pace(now)
        assert pace is not None
        assert pace >= 0.75 * 95.0  # never a halving
        assert est.estimate is not None
        assert est.estimate >= 60.0

    def test_cruise_regains_the_measured_rate_within_a_second(self) -> None:
        """After a measured cut the pace is back at the measured rate after RECOVER
        seconds, leveling off there, then probes above it slowly."""
        est = ServerRate()
        self._after_first_cut(est)
        self._overloaded(est, 1.0, 0.3)
        cut_at, measured = est._last_cut, est.estimate
        assert measured is not None
        paces = [est.pace(cut_at + dt) for dt in (0.0, 0.25, 0.5, RECOVER, RECOVER + 1.0)]
        assert all(p is not None for p in paces)
        values = [p for p in paces if p is not None]
        assert values == sorted(values)
        assert values[0] == pytest.approx(BETA * measured, rel=0.05)
        assert values[2] >= BETA * measured + 0.8 * (1 - BETA) * measured  # fast at first
        assert values[3] == pytest.approx(measured, rel=0.01)
        assert values[4] == pytest.approx(measured * 1.08, rel=0.01)  # 1 + 0.04 + 0.04


class TestStormAndRecovery:
    """README "Rate limits": a server that refuses everything holds the session; once it
    admits again the pace climbs back to the rate known before within a second."""

    def test_recovers_to_the_pre_storm_rate(self) -> None:
        est = ServerRate(rng=random.Random(1))
        server = Bucket(100.0, 10.0)
        drive(est, server, 0.0, 5.0)
        before = est.estimate
        assert before is not None
        assert before == pytest.approx(100.0, rel=0.15)
        server.closed_until = 10.0  # a 5-second storm
        _, storm_sent, storm_refused = drive(est, server, 5.0, 10.0)
        assert storm_refused == storm_sent
        assert storm_sent <= 60  # probes, not a flood: one at a time, holds growing
        times, _, _ = drive(est, server, 10.0, 13.0)
        pace_after = est.pace(11.5)
        assert pace_after is not None
        assert pace_after >= 0.8 * BETA * before
        # Never one burst: no 50 ms after the storm holds more than the old rate allows.
        after = [t for t in times if t >= 10.0]
        for t in after:
            assert sum(1 for u in after if t <= u < t + 0.05) <= 0.05 * 100.0 * 1.5 + 1

    def test_unknown_rate_probes_up_from_start_rate(self) -> None:
        """A storm from the first request: probing starts at 20/s and grows 1.5x per 0.1 s."""
        est = ServerRate(rng=random.Random(2))
        assert est.refused(0.02, 0.0, 1.0) > 0.0
        assert est.phase == "closed"
        assert est.pace(0.05) == START_RATE
        est.admitted(1.0, 0.98)
        assert est.phase == "probe"  # type: ignore[comparison-overlap]  # changed by admitted()
        assert est.pace(1.0) == pytest.approx(START_RATE)
        assert est.pace(1.2) == pytest.approx(START_RATE * 1.5**2)

    def test_holds_grow_but_stay_under_retry_after(self) -> None:
        est = ServerRate(rng=random.Random(3))
        holds = []
        now = 0.0
        for _ in range(10):
            hold = est.refused(now + 0.02, now, 0.5)
            holds.append(hold)
            now += hold + 0.03
        assert holds[0] <= 0.1
        assert max(holds) <= 0.5
        assert holds[3] > holds[0]


class TestChallenge:
    """README "Rate limits": a server that refuses the first attempt of every request and
    admits its retry (a challenge) is not a closed server: no hold, no cut."""

    def test_first_attempts_refused_retries_admitted(self) -> None:
        est = ServerRate(rng=random.Random(4))
        # The very first answer is a refusal: nothing known yet, a short hold.
        assert 0.0 < est.refused(0.02, 0.0, 1.0) <= 0.1
        assert not est.challenged
        est.admitted(0.14, 0.12, retry=True)  # its retry passes
        assert est.challenged
        assert est.phase == "probe"
        # Eight new pages: every first attempt refused, in a row. Neither a hold nor a cut.
        for i in range(8):
            t = 0.2 + i * 0.001
            assert est.refused(t + 0.02, t, 1.0) == 0.0
        assert est.phase == "probe"
        assert est.cuts == 0
        assert est.pace(0.4) == pytest.approx(START_RATE * 1.5 ** ((0.4 - 0.14) / 0.1))

    def test_a_refused_retry_is_a_closed_server(self) -> None:
        """Retries refused too (a storm): the refusals in a row hold the session."""
        est = ServerRate(rng=random.Random(5))
        est.refused(0.02, 0.0, 1.0)
        est.admitted(0.14, 0.12, retry=True)
        est.refused(0.20, 0.18, 1.0, retry=True)
        assert not est.challenged
        # Each sent after the last 429 came back: news every time. The third in a row closes.
        holds = [est.refused(0.27 + i * 0.05, 0.25 + i * 0.05, 1.0) for i in range(3)]
        assert est.phase == "closed"
        assert holds[-1] > 0.0

    def test_admitted_first_attempts_are_no_challenge(self) -> None:
        """A rate limiter admits most first attempts: its 429s still cut the pace."""
        est = ServerRate(rng=random.Random(6))
        for i in range(50):
            est.admitted(i / 50 + 0.02, i / 50)
        est.refused(1.0, 0.98, 1.0)
        est.admitted(1.01, 0.99, retry=True)
        assert not est.challenged
        assert est.cuts == 1

    def test_forgets_after_two_seconds(self) -> None:
        """What tells a challenge is kept 2 s: a later storm is closed again."""
        est = ServerRate(rng=random.Random(7))
        est.refused(0.02, 0.0, 1.0)
        est.admitted(0.14, 0.12, retry=True)
        assert est.challenged
        holds = [est.refused(2.5 + i * 0.1, 2.48 + i * 0.1, 1.0) for i in range(3)]
        assert not est.challenged
        assert est.phase == "closed"
        assert holds[-1] > 0.0


class TestSpent:
    """Headers saying the budget is spent cut like a 429, without the refused request."""

    def test_spent_cuts(self) -> None:
        est = ServerRate()
        for i in range(50):
            est.admitted(i / 50, i / 50 - 0.02)
        est.spent(1.0)
        assert est.pace(1.0) == pytest.approx(BETA * 50.0, rel=0.05)

    def test_spent_once_paced_changes_nothing(self) -> None:
        """A bucket one request deep says "0 left" after every request: once paced, that
        never slows the pace (it once slowed a walk 91-fold)."""
        est = ServerRate()
        for i in range(50):
            est.admitted(i / 50, i / 50 - 0.02)
        est.spent(1.0)
        pace = est.pace(1.0)
        for k in range(1, 200):
            est.admitted(1.0 + k / 40, 1.0 + k / 40 - 0.02)
            est.spent(1.0 + k / 40)
        later = est.pace(6.0)
        assert pace is not None
        assert later is not None
        assert later >= pace
