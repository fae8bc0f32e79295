"""CellcastSession configuration and lifecycle, and misuse caught before anything is sent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from cellcast_async import CellcastSession, NotFoundError, TokenStatus, __version__

from ..seed_samples import LIST_200, NOT_FOUND_404
from ._support import (
    ANY_TOKEN_URL,
    API_KEY,
    LISTING_URL,
    OK,
    TOKENS_PATH,
    TOKENS_URL,
    exactly,
    sent,
    session,
)


@pytest.fixture
def m() -> Iterator[aioresponses]:
    """A mock that answers everything, so that a test can prove nothing was sent."""
    with aioresponses() as mock:
        mock.get(LISTING_URL, payload=LIST_200, repeat=True)
        mock.get(ANY_TOKEN_URL, payload=OK, repeat=True)
        yield mock


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> list[aiohttp.ClientSession]:
    """Every aiohttp.ClientSession created during the test, in order."""
    sessions: list[aiohttp.ClientSession] = []
    original_init: Callable[..., None] = aiohttp.ClientSession.__init__

    def spy(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        sessions.append(self)

    monkeypatch.setattr(aiohttp.ClientSession, "__init__", spy)
    return sessions


class TestApiKey:
    """The key comes from ``api_key=`` or ``$CELLCAST_API_KEY`` and must be one clean line."""

    def test_missing_names_the_variable(self) -> None:
        with pytest.raises(
            ValueError, match=exactly("no API key: pass api_key=... or set $CELLCAST_API_KEY")
        ):
            CellcastSession()

    @pytest.mark.parametrize(
        ("passed", "sent_key"),
        [(None, "env-key-123"), (API_KEY, API_KEY)],
        ids=["read from the environment", "the argument wins over the environment"],
    )
    async def test_key_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch, m: aioresponses, passed: str | None, sent_key: str
    ) -> None:
        monkeypatch.setenv("CELLCAST_API_KEY", "env-key-123")

        async with CellcastSession(api_key=passed) as cc:
            await cc.tokens.get("tok001")

        ((_, _, kwargs),) = sent(m)
        assert kwargs["headers"]["Authorization"] == f"Bearer {sent_key}"

    @pytest.mark.parametrize(
        ("key", "message"),
        [
            ("", "api_key is empty"),
            ("   ", "api_key is empty"),
            (123, "api_key must be a str, not int"),
        ],
    )
    def test_refused(self, key: Any, message: str) -> None:
        with pytest.raises(ValueError, match=exactly(message)):
            CellcastSession(api_key=key)

    def test_empty_environment_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CELLCAST_API_KEY", "")

        with pytest.raises(ValueError, match=exactly("$CELLCAST_API_KEY is empty")):
            CellcastSession()

    @pytest.mark.parametrize(
        "key",
        [
            API_KEY + "\r\nX-Injected: 1",
            API_KEY + "\n",
            "\r" + API_KEY,
            API_KEY + "\x00",
            API_KEY + "\t",
        ],
    )
    def test_control_characters_refused_without_quoting_the_key(self, key: str) -> None:
        message = "api_key must not contain CR, LF or other control characters"

        with pytest.raises(ValueError, match=exactly(message)) as info:
            CellcastSession(api_key=key)

        assert API_KEY not in str(info.value)
        assert API_KEY not in repr(info.value)

    def test_control_characters_in_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CELLCAST_API_KEY", API_KEY + "\nX: y")
        message = "$CELLCAST_API_KEY must not contain CR, LF or other control characters"

        with pytest.raises(ValueError, match=exactly(message)) as info:
            CellcastSession()

        assert API_KEY not in str(info.value)


class TestBaseUrl:
    """HTTPS anywhere, plain HTTP only to loopback, never credentials in the URL."""

    def test_default(self) -> None:
        assert session().base_url == "https://api.cellcast.com"

    @pytest.mark.parametrize(
        ("base_url", "expected"),
        [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://127.0.0.2", "http://127.0.0.2"),
            ("http://localhost", "http://localhost"),
            ("http://LOCALHOST:3000/", "http://LOCALHOST:3000"),
            ("http://[::1]:9000", "http://[::1]:9000"),
            ("https://example.com/", "https://example.com"),
            ("https://proxy.example.com/cellcast/", "https://proxy.example.com/cellcast"),
        ],
    )
    def test_accepted(self, base_url: str, expected: str) -> None:
        assert session(base_url=base_url).base_url == expected

    async def test_requests_go_to_the_base_url(self) -> None:
        with aioresponses() as mock:
            mock.get(f"http://127.0.0.1:8080{TOKENS_PATH}/tok001", payload=OK)
            async with session(base_url="http://127.0.0.1:8080/") as cc:
                token = await cc.tokens.get("tok001")

        assert token.id == "tok001"

    @pytest.mark.parametrize(
        ("base_url", "host"),
        [
            ("http://example.com", "example.com"),
            ("http://api.cellcast.com", "api.cellcast.com"),
            ("http://localhost.evil.example", "localhost.evil.example"),
            ("http://0.0.0.0:8080", "0.0.0.0"),
            ("http://10.0.0.1", "10.0.0.1"),
        ],
    )
    def test_plain_http_refused(self, base_url: str, host: str) -> None:
        message = (
            f"refusing plain http:// to {host!r}: the API key would travel in the clear; "
            "use https:// (plain http is allowed only for loopback hosts)"
        )

        with pytest.raises(ValueError, match=exactly(message)):
            session(base_url=base_url)

    @pytest.mark.parametrize(
        "base_url",
        [
            "https://user:hunter2@api.cellcast.com",
            "https://user@api.cellcast.com",
            "http://user:hunter2@127.0.0.1:8080",
        ],
    )
    def test_credentials_refused(self, base_url: str) -> None:
        message = "base_url must not carry credentials; pass api_key= instead"

        with pytest.raises(ValueError, match=exactly(message)) as info:
            session(base_url=base_url)

        assert "hunter2" not in str(info.value)

    @pytest.mark.parametrize(
        ("base_url", "message"),
        [
            (
                "ftp://api.cellcast.com",
                "base_url must be an http(s) URL with a host, got 'ftp://api.cellcast.com'",
            ),
            (
                "api.cellcast.com",
                "base_url must be an http(s) URL with a host, got 16 characters with no scheme"
                " (not quoted: it may be a key)",
            ),
            ("https://", "base_url must be an http(s) URL with a host, got 'https://'"),
            ("https://api.cellcast.com/?x=1", "base_url must not have a query string or fragment"),
            ("https://api.cellcast.com/#x", "base_url must not have a query string or fragment"),
        ],
    )
    def test_malformed_refused(self, base_url: str, message: str) -> None:
        with pytest.raises(ValueError, match=exactly(message)):
            session(base_url=base_url)

    @pytest.mark.parametrize(
        "base_url", ["https://api.cellcast.com:99999", "https://api.cellcast.com:abc"]
    )
    def test_bad_port_refused_up_front(self, base_url: str) -> None:
        message = f"base_url has an invalid port, got {base_url!r}"

        with pytest.raises(ValueError, match=exactly(message)):
            session(base_url=base_url)

    def test_credentials_never_quoted_even_with_a_bad_scheme(self) -> None:
        message = "base_url must not carry credentials; pass api_key= instead"

        with pytest.raises(ValueError, match=exactly(message)) as info:
            session(base_url="ftp://user:hunter2@api.cellcast.com")

        assert "hunter2" not in str(info.value)

    async def test_environment_variable_is_honoured(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CELLCAST_BASE_URL", "http://127.0.0.1:9999/")

        with aioresponses() as mock:
            mock.get(f"http://127.0.0.1:9999{TOKENS_PATH}/tok001", payload=OK)
            async with session() as cc:
                assert cc.base_url == "http://127.0.0.1:9999"
                await cc.tokens.get("tok001")

        assert len(sent(mock)) == 1

    def test_environment_variable_is_checked_too(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CELLCAST_BASE_URL", "http://example.com")

        with pytest.raises(ValueError, match=r"^refusing plain http:// to 'example\.com'"):
            session()

    def test_argument_wins_over_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CELLCAST_BASE_URL", "http://127.0.0.1:9999")

        assert session(base_url="https://api.cellcast.com").base_url == "https://api.cellcast.com"


class TestOptions:
    """timeout and max_retries are checked; the User-Agent names the SDK and its version."""

    @pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), True, "30"])
    def test_bad_timeout(self, timeout: Any) -> None:
        message = f"timeout must be a positive number of seconds or None, got {timeout!r}"

        with pytest.raises(ValueError, match=exactly(message)):
            session(timeout=timeout)

    @pytest.mark.parametrize("max_retries", [-1, 1.5, True, None])
    def test_bad_max_retries(self, max_retries: Any) -> None:
        with pytest.raises(
            ValueError, match=exactly(f"max_retries must be an int >= 0, got {max_retries!r}")
        ):
            session(max_retries=max_retries)

    def test_properties(self) -> None:
        cc = session(timeout=None, max_retries=0)

        assert (cc.timeout, cc.max_retries, cc.closed) == (None, 0, False)

    async def test_headers(self, m: aioresponses) -> None:
        async with session() as cc:
            await cc.tokens.get("tok001")

        ((_, _, kwargs),) = sent(m)
        headers = kwargs["headers"]
        assert headers["Authorization"] == f"Bearer {API_KEY}"
        assert headers["User-Agent"].startswith(f"cellcast-async/{__version__} python/")
        assert f"aiohttp/{aiohttp.__version__}" in headers["User-Agent"]
        assert headers["Accept"] == "application/json"


class TestLifecycle:
    """A closed session refuses calls; an injected aiohttp session is never closed by us."""

    async def test_call_after_close_raises_and_sends_nothing(self, m: aioresponses) -> None:
        async with session() as cc:
            pass

        assert cc.closed
        with pytest.raises(
            RuntimeError, match=exactly("this CellcastSession is closed; open a new one")
        ):
            await cc.tokens.get("tok001")
        with pytest.raises(RuntimeError, match="is closed"):
            await cc.tokens.list()
        with pytest.raises(RuntimeError, match="is closed"):
            await cc.tokens.delete("tok001")
        assert sent(m) == []

    async def test_repr_shows_base_url_and_state_only(self) -> None:
        cc = session()
        assert repr(cc) == "<CellcastSession https://api.cellcast.com open>"
        await cc.aclose()
        assert repr(cc) == "<CellcastSession https://api.cellcast.com closed>"

    async def test_one_session_shared_by_many_tasks(
        self, m: aioresponses, created: list[aiohttp.ClientSession]
    ) -> None:
        async with session() as cc:
            tokens = await asyncio.gather(*(cc.tokens.get(f"t{n}") for n in range(300)))

        assert len(tokens) == 300
        assert all(t.id == "tok001" for t in tokens)
        assert len(created) == 1
        assert len(sent(m)) == 300

    async def test_reentering_a_closed_session_raises(self) -> None:
        cc = session()
        await cc.aclose()

        with pytest.raises(RuntimeError, match="is closed"):
            async with cc:
                pass

    async def test_aclose_twice_is_fine(self) -> None:
        cc = session()
        await cc.aclose()
        await cc.aclose()

        assert cc.closed

    async def test_injected_session_is_used_and_not_closed(self, m: aioresponses) -> None:
        async with aiohttp.ClientSession() as client:
            async with session(session=client) as cc:
                await cc.tokens.get("tok001")

            assert not client.closed
            assert cc.closed
        assert len(sent(m)) == 1

    async def test_injected_session_raising_for_status_still_maps_errors(self) -> None:
        with aioresponses() as mock:
            mock.get(TOKENS_URL + "/gone", status=404, payload=NOT_FOUND_404)
            async with (
                aiohttp.ClientSession(raise_for_status=True) as client,
                session(session=client) as cc,
            ):
                with pytest.raises(NotFoundError) as info:
                    await cc.tokens.get("gone")

            assert info.value.detail == "API token not found"
            assert len(sent(mock)) == 1

    async def test_owned_session_is_closed_on_exit(
        self, m: aioresponses, created: list[aiohttp.ClientSession]
    ) -> None:
        async with session() as cc:
            await cc.tokens.get("tok001")
            await cc.tokens.get("tok002")
            (client,) = created
            assert not client.closed

        assert client.closed
        assert len(created) == 1

    async def test_no_session_is_created_without_a_request(
        self, created: list[aiohttp.ClientSession]
    ) -> None:
        async with session() as cc:
            cc.tokens.list()

        assert created == []


MISUSE: list[tuple[str, Callable[[CellcastSession], Any], str]] = [
    (
        "create empty name",
        lambda cc: cc.tokens.create(name="", sub_account_id="s"),
        "name must not be empty or blank",
    ),
    (
        "create blank name",
        lambda cc: cc.tokens.create(name=" \t ", sub_account_id="s"),
        "name must not be empty or blank",
    ),
    (
        "create int name",
        lambda cc: cc.tokens.create(name=5, sub_account_id="s"),  # type: ignore[arg-type]
        "name must be a str, not int",
    ),
    (
        "create None name",
        lambda cc: cc.tokens.create(name=None, sub_account_id="s"),  # type: ignore[arg-type]
        "name must be a str, not NoneType",
    ),
    (
        "create empty sub",
        lambda cc: cc.tokens.create(name="n", sub_account_id=""),
        "sub_account_id must not be empty",
    ),
    (
        "create blank sub",
        lambda cc: cc.tokens.create(name="n", sub_account_id="  "),
        "sub_account_id must not be empty",
    ),
    ("get empty id", lambda cc: cc.tokens.get(""), "token_id must not be empty"),
    ("get int id", lambda cc: cc.tokens.get(7), "token_id must be a str, not int"),  # type: ignore[arg-type]
    ("update empty id", lambda cc: cc.tokens.update("", name="n"), "token_id must not be empty"),
    (
        "update no fields",
        lambda cc: cc.tokens.update("tok001"),
        "update needs at least one of name= or status=",
    ),
    (
        "update blank name",
        lambda cc: cc.tokens.update("tok001", name=" "),
        "name must not be empty or blank",
    ),
    (
        "update status maybe",
        lambda cc: cc.tokens.update("tok001", status="maybe"),
        "status must be 'active' or 'inactive' (or a TokenStatus), got 'maybe'",
    ),
    (
        "update status ACTIVE",
        lambda cc: cc.tokens.update("tok001", status="ACTIVE"),
        "status must be 'active' or 'inactive' (or a TokenStatus), got 'ACTIVE'",
    ),
    ("delete empty id", lambda cc: cc.tokens.delete(""), "token_id must not be empty"),
    ("delete None id", lambda cc: cc.tokens.delete(None), "token_id must be a str, not NoneType"),  # type: ignore[arg-type]
    ("list page 0", lambda cc: cc.tokens.list(page=0), "page must be >= 1, got 0"),
    ("list page -1", lambda cc: cc.tokens.list(page=-1), "page must be >= 1, got -1"),
    ("list page bool", lambda cc: cc.tokens.list(page=True), "page must be an int, not bool"),
    ("list page str", lambda cc: cc.tokens.list(page="1"), "page must be an int, not str"),  # type: ignore[arg-type]
    ("list limit 0", lambda cc: cc.tokens.list(limit=0), "limit must be >= 1, got 0"),
    ("list limit float", lambda cc: cc.tokens.list(limit=2.0), "limit must be an int, not float"),  # type: ignore[arg-type]
    (
        "list status maybe",
        lambda cc: cc.tokens.list(status="maybe"),
        "status must be 'active' or 'inactive' (or a TokenStatus), got 'maybe'",
    ),
    (
        "list empty sub",
        lambda cc: cc.tokens.list(sub_account_id=""),
        "sub_account_id must not be empty",
    ),
    ("list int search", lambda cc: cc.tokens.list(search=5), "search must be a str, not int"),  # type: ignore[arg-type]
    (
        "list concurrency 0",
        lambda cc: cc.tokens.list(concurrency=0),
        "concurrency must be a positive integer or 'auto', got 0",
    ),
    (
        "list concurrency 'fast'",
        lambda cc: cc.tokens.list(concurrency="fast"),  # type: ignore[arg-type]
        "concurrency must be a positive integer or 'auto', got 'fast'",
    ),
    (
        "list concurrency 2.5",
        lambda cc: cc.tokens.list(concurrency=2.5),  # type: ignore[arg-type]
        "concurrency must be a positive integer or 'auto', got 2.5",
    ),
    (
        "list max_items -1",
        lambda cc: cc.tokens.list(max_items=-1),
        "max_items must be >= 0, got -1",
    ),
    (
        "list max_items bool",
        lambda cc: cc.tokens.list(max_items=False),
        "max_items must be an int, not bool",
    ),
    (
        "for sub empty",
        lambda cc: cc.tokens.list_for_sub_account(""),
        "sub_account_id must not be empty",
    ),
    (
        "for sub page 0",
        lambda cc: cc.tokens.list_for_sub_account("s", page=0),
        "page must be >= 1, got 0",
    ),
    (
        "for sub limit 0",
        lambda cc: cc.tokens.list_for_sub_account("s", limit=0),
        "limit must be >= 1, got 0",
    ),
    (
        "for sub concurrency 0",
        lambda cc: cc.tokens.list_for_sub_account("s", concurrency=0),
        "concurrency must be a positive integer or 'auto', got 0",
    ),
    (
        "for sub max_items -1",
        lambda cc: cc.tokens.list_for_sub_account("s", max_items=-1),
        "max_items must be >= 0, got -1",
    ),
]


class TestMisuse:
    """Misuse is a ValueError with a message that says what to fix, and nothing is sent."""

    @pytest.mark.parametrize(
        ("call", "message"), [c[1:] for c in MISUSE], ids=[c[0] for c in MISUSE]
    )
    async def test_value_error_and_nothing_sent(
        self, call: Callable[[CellcastSession], Any], message: str
    ) -> None:
        with aioresponses() as mock:
            mock.add(ANY_TOKEN_URL, "GET", payload=LIST_200, repeat=True)
            async with session() as cc:
                with pytest.raises(ValueError, match=exactly(message)):
                    await call(cc)

        assert mock.requests == {}

    @pytest.mark.parametrize(
        "status", ["active", "inactive", TokenStatus.ACTIVE, TokenStatus.INACTIVE]
    )
    async def test_accepted_statuses(self, status: Any, m: aioresponses) -> None:
        async with session() as cc:
            await cc.tokens.list(status=status)

        ((_, url, _),) = sent(m)
        assert url.query["status"] == str(status)

    async def test_max_items_zero_and_a_blank_search_are_allowed(self, m: aioresponses) -> None:
        async with session() as cc:
            assert await cc.tokens.list(max_items=0, search="").collect() == []
            await cc.tokens.list(search="")

        ((_, url, _),) = sent(m)
        assert url.query["search"] == ""


class TestArgumentsSwapped:
    """``CellcastSession(url, key)`` by mistake: the key never shows in the error."""

    def test_key_in_the_base_url_place(self) -> None:
        key = "ck_live_swapped_0123456789abcdef0123456789"
        with pytest.raises(ValueError, match="no scheme") as info:
            CellcastSession("https://api.cellcast.com", key)
        assert key not in str(info.value)
        assert key not in repr(info.value.args)
