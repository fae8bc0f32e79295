"""The options module: every session option checked once, in one place; ``with_options``
written once (CallOptions.changed); nothing it keeps shows the key."""

from __future__ import annotations

from typing import Any

import pytest

from cellcast_async._options import (
    UNSET,
    CallOptions,
    SessionOptions,
    default_clock,
    default_sleep,
)

from ._support import API_KEY


def checked(**overrides: Any) -> SessionOptions:
    arguments: dict[str, Any] = {
        "api_key": API_KEY,
        "base_url": None,
        "timeout": 30.0,
        "max_retries": 2,
        "deadline": None,
        "user_agent": None,
        "connection_limit": 100,
        "max_response_bytes": 1024,
        "event_hooks": None,
        "trust_env": True,
        "clock": None,
        "sleep": None,
        "rate_limit": None,
        "rate_store": None,
    }
    arguments.update(overrides)
    return SessionOptions.check(**arguments)


class TestSessionOptions:
    """SessionOptions.check validates every option and fills the defaults."""

    def test_defaults(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("CELLCAST_BASE_URL", raising=False)
        options = checked()
        assert options.base_url == "https://api.cellcast.com"
        assert options.call == CallOptions(timeout=30.0, deadline=None)
        assert options.hooks == {"request": (), "response": ()}
        assert options.clock is default_clock
        assert options.sleep is default_sleep

    def test_repr_never_shows_the_key_or_a_store_password(self) -> None:
        options = checked(rate_store="redis://:s3cretpass@127.0.0.1:6379/0")
        assert API_KEY not in repr(options)
        assert "s3cretpass" not in repr(options)

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"connection_limit": 0}, "connection_limit must be an int >= 1, got 0"),
            ({"connection_limit": True}, "connection_limit must be an int >= 1, got True"),
            (
                {"max_response_bytes": 0},
                "max_response_bytes must be an int >= 1 or None, got 0",
            ),
            ({"user_agent": "a\nb"}, "user_agent must be printable text"),
            ({"timeout": -1}, "timeout must be a positive number of seconds or None, got -1"),
            ({"max_retries": -1}, "max_retries must be an int >= 0, got -1"),
        ],
    )
    def test_bad_option(self, overrides: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=f"^{message}$"):
            checked(**overrides)

    def test_the_key_is_checked_before_anything_else(self) -> None:
        with pytest.raises(ValueError, match=r"^api_key is empty$"):
            checked(api_key=" ", connection_limit=0)


class TestCallOptionsChanged:
    """CallOptions.changed is the one with_options: checked, merged, the rest kept."""

    def test_unset_keeps_everything(self) -> None:
        options = CallOptions(timeout=5.0, headers={"X-A": "1"})
        assert options.changed() == options
        assert options.changed(timeout=UNSET) == options

    def test_changes_and_merges_headers(self) -> None:
        options = CallOptions(timeout=5.0, headers={"X-A": "1"})
        view = options.changed(timeout=None, max_retries=0, deadline=2, headers={"X-B": "2"})
        assert view.timeout is None
        assert view.policy.max_retries == 0
        assert view.policy.backoff_base == options.policy.backoff_base
        assert view.deadline == 2.0
        assert view.headers == {"X-A": "1", "X-B": "2"}
        assert options.headers == {"X-A": "1"}  # the original is untouched

    def test_bad_value_changes_nothing(self) -> None:
        options = CallOptions()
        with pytest.raises(ValueError, match=r"^deadline must be a positive number"):
            options.changed(timeout=1.0, deadline=0)
        assert options == CallOptions()


class TestHelp:
    """``help(CellcastSession)`` names ``.tokens`` and every parameter and property."""

    def test_every_parameter_and_property_is_documented(self) -> None:
        import inspect
        import pydoc

        from cellcast_async import CellcastSession

        text = pydoc.render_doc(CellcastSession, renderer=pydoc.plaintext)  # type: ignore[attr-defined]
        doc = inspect.getdoc(CellcastSession) or ""
        parameters = list(inspect.signature(CellcastSession).parameters)
        properties = [
            name for name, value in vars(CellcastSession).items() if isinstance(value, property)
        ]
        assert "transport" in parameters
        assert "tokens" in text
        missing = [n for n in [*parameters, *properties, "tokens"] if f"``{n}``" not in doc]
        assert missing == []
