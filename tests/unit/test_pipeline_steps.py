"""The pipeline's steps that are pure functions, each tested alone: the deadline, the
attempt's timeout, the deadline's message, and how an outcome reads to the retry decision."""

from __future__ import annotations

from cellcast_async import TransportError
from cellcast_async._pipeline import (
    RateLimitWait,
    RetryWait,
    _Passed,
    _status_of,
    attempt_timeout,
    deadline_at,
    deadline_message,
)
from cellcast_async._transport import Response


class TestDeadlineAt:
    """A call's deadline is counted from the moment it starts."""

    def test_none_is_never(self) -> None:
        assert deadline_at(None, 100.0) is None

    def test_seconds_from_now(self) -> None:
        assert deadline_at(2.5, 100.0) == 102.5


class TestAttemptTimeout:
    """The attempt's timeout is its own, cut to what is left of the deadline."""

    def test_no_deadline_keeps_the_timeout(self) -> None:
        assert attempt_timeout(30.0, None, 100.0) == 30.0
        assert attempt_timeout(None, None, 100.0) is None

    def test_cut_to_the_remaining_deadline(self) -> None:
        assert attempt_timeout(30.0, 101.5, 100.0) == 1.5

    def test_shorter_timeout_wins(self) -> None:
        assert attempt_timeout(1.0, 110.0, 100.0) == 1.0

    def test_no_timeout_takes_the_remaining_deadline(self) -> None:
        assert attempt_timeout(None, 104.0, 100.0) == 4.0

    def test_passed_deadline_is_a_typed_marker(self) -> None:
        assert isinstance(attempt_timeout(30.0, 100.0, 100.0), _Passed)
        assert isinstance(attempt_timeout(None, 99.0, 100.0), _Passed)


class TestDeadlineMessage:
    """The deadline's TimeoutError says which wait it would not start."""

    def test_passed(self) -> None:
        assert deadline_message(1.5, None) == "the call's deadline of 1.5 s passed"

    def test_rate_limit_wait(self) -> None:
        assert deadline_message(2, RateLimitWait(3.25)) == (
            "the call's deadline of 2 s would pass during the 3.25 s wait for the rate limit"
        )

    def test_retry_wait_names_the_last_outcome(self) -> None:
        assert deadline_message(2, RetryWait(4.0, 503)) == (
            "the call's deadline of 2 s would pass during the 4 s wait to retry (last attempt: 503)"
        )
        assert deadline_message(2, RetryWait(0.5, "reset")).endswith("(last attempt: reset)")

    def test_a_governor_refusal_without_a_deadline(self) -> None:
        assert deadline_message(None, RateLimitWait(90.0)) == (
            "the rate governor refused the call: it needs a wait of 90 s"
        )

    def test_a_string_outcome_is_not_the_rate_limit(self) -> None:
        # The old sentinel was the string "rate limit": a retry's outcome can no longer
        # be mistaken for the governor's wait.
        message = deadline_message(2, RetryWait(1.0, "rate limit"))
        assert "wait to retry" in message


class TestStatusOf:
    """An answer reads as its status and headers; a failure as its kind and no headers."""

    def test_response(self) -> None:
        response = Response(status=503, reason=None, headers={"Retry-After": "1"}, body=b"")
        assert _status_of(response) == (503, {"Retry-After": "1"})

    def test_failure(self) -> None:
        failure = TransportError("reset", method="GET", path="/x", kind="reset")
        assert _status_of(failure) == ("reset", {})
