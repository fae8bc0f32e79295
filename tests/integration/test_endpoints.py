"""The SDK end to end against the embedded sandbox, through the package's own pytest plugin.

Every test here takes the plugin's fixtures (``cellcast_sandbox``, ``cellcast_session``)
exactly as a user's test suite would, so these double as the plugin's acceptance tests.
"""

from __future__ import annotations

from datetime import timezone

import pytest

from cellcast_async import (
    ApiToken,
    AuthenticationError,
    BadRequestError,
    CellcastSession,
    CreatedToken,
    NotFoundError,
    PermissionDeniedError,
    TokenStatus,
)
from cellcast_async.sandbox import Faults, Sandbox

from .._wire import TOKENS_PATH


class TestList:
    """`cc.tokens.list` walks the sandbox's listing with every filter the seed names."""

    async def test_every_token_once_in_order(
        self, cellcast_session: CellcastSession, cellcast_sandbox: Sandbox
    ) -> None:
        """A walk in pages of 7 yields all 60 demo tokens, newest first, none twice."""
        tokens = await cellcast_session.tokens.list(limit=7).collect()

        assert len(tokens) == cellcast_sandbox.token_count() == 60
        assert len({t.id for t in tokens}) == 60
        stamps = [t.created_at for t in tokens]
        assert stamps == sorted(stamps, reverse=True)
        assert all(t.created_at.tzinfo is timezone.utc for t in tokens)
        assert [r.query["page"] for r in cellcast_sandbox.requests] == [
            str(n) for n in range(1, 10)
        ]

    async def test_filters_ride_on_every_page(
        self, cellcast_session: CellcastSession, cellcast_sandbox: Sandbox
    ) -> None:
        """sub-account and status filters reach every page request and hold in the result."""
        sub = cellcast_sandbox.sub_account_ids[0]
        pager = cellcast_session.tokens.list(sub_account_id=sub, status="active", limit=3)
        tokens = await pager.collect()

        assert tokens
        assert {t.sub_account_id for t in tokens} == {sub}
        assert {t.status for t in tokens} == {TokenStatus.ACTIVE}
        for request in cellcast_sandbox.requests:
            assert request.query["subAccountId"] == sub
            assert request.query["status"] == "active"
            assert request.query["limit"] == "3"
            assert request.headers["authorization"] == f"Bearer {cellcast_sandbox.api_key}"

    async def test_search_is_sent_and_applied(self, cellcast_session: CellcastSession) -> None:
        """`search` narrows the listing to names containing it."""
        everything = await cellcast_session.tokens.list(limit=100).collect()
        word = everything[0].name.split()[0]
        found = await cellcast_session.tokens.list(search=word.upper(), limit=100).collect()

        assert found
        assert all(word.lower() in t.name.lower() for t in found)

    async def test_await_is_one_request_and_tells_the_counts(
        self, cellcast_session: CellcastSession, cellcast_sandbox: Sandbox
    ) -> None:
        """`await pager` is page 1 alone, with total, totalPages and hasNextPage."""
        page = await cellcast_session.tokens.list(limit=25)

        assert (page.total, page.total_pages, page.page) == (60, 3, 1)
        assert (page.has_next_page, page.has_prev_page) == (True, False)
        assert len(page.items) == 25
        assert len(cellcast_sandbox.requests) == 1

    async def test_concurrency_gives_the_same_walk(self, cellcast_session: CellcastSession) -> None:
        """Eight pages in flight yield exactly what one at a time yields."""
        one = await cellcast_session.tokens.list(limit=4).collect()
        eight = await cellcast_session.tokens.list(limit=4, concurrency=8).collect()

        assert [t.id for t in eight] == [t.id for t in one]

    async def test_max_items_and_resume(self, cellcast_session: CellcastSession) -> None:
        """Stopping at max_items and resuming from next_page loses and repeats nothing."""
        pager = cellcast_session.tokens.list(limit=10, max_items=25)
        head = await pager.collect()
        rest = await cellcast_session.tokens.list(limit=10, page=pager.next_page).collect()
        everything = await cellcast_session.tokens.list(limit=10).collect()

        assert len(head) == 25
        assert pager.next_page == 3
        assert [t.id for t in head[:20] + rest] == [t.id for t in everything]

    async def test_another_keys_sub_account_is_forbidden(
        self, cellcast_session: CellcastSession, cellcast_sandbox: Sandbox
    ) -> None:
        """seeds/000 403: a sub-account that is not yours."""
        other = cellcast_sandbox.other_sub_account_ids[0]
        with pytest.raises(PermissionDeniedError) as info:
            await cellcast_session.tokens.list(sub_account_id=other)

        assert info.value.detail == "Sub account does not belong to you or does not exist"
        assert str(info.value) == (
            f"GET {TOKENS_PATH} -> 403 Forbidden:"
            " Sub account does not belong to you or does not exist"
        )


class TestListForSubAccount:
    """`cc.tokens.list_for_sub_account` reads `/token/sub-account/:id`."""

    async def test_one_sub_accounts_tokens(
        self, cellcast_session: CellcastSession, cellcast_sandbox: Sandbox
    ) -> None:
        """Every token of that sub-account, and the path carries its id."""
        sub = cellcast_sandbox.sub_account_ids[1]
        tokens = await cellcast_session.tokens.list_for_sub_account(sub, limit=5).collect()

        assert len(tokens) == cellcast_sandbox.token_count(sub)
        assert {t.sub_account_id for t in tokens} == {sub}
        assert {r.path for r in cellcast_sandbox.requests} == {f"{TOKENS_PATH}/sub-account/{sub}"}


class TestMutations:
    """create, get, update and delete, as a user's service would chain them."""

    async def test_create_get_update_delete(
        self, cellcast_session: CellcastSession, cellcast_sandbox: Sandbox
    ) -> None:
        """The full life of a token, each step checked on the server's side too."""
        tokens = cellcast_session.tokens
        sub = cellcast_sandbox.sub_account_ids[0]

        created = await tokens.create(name="Integration API", sub_account_id=sub)
        assert type(created) is CreatedToken
        assert (created.name, created.status, created.sub_account_id) == (
            "Integration API",
            TokenStatus.ACTIVE,
            sub,
        )
        full = created.token.reveal()
        assert full not in repr(created)
        assert cellcast_sandbox.tokens_created == 1

        fetched = await tokens.get(created.id)
        assert type(fetched) is ApiToken
        assert fetched.id == created.id
        assert fetched.token.reveal() != full  # masked on every read after create
        assert fetched.sub_account is not None
        assert fetched.sub_account.id == sub

        updated = await tokens.update(created.id, status=TokenStatus.INACTIVE, name="Renamed")
        assert (updated.name, updated.status) == ("Renamed", TokenStatus.INACTIVE)
        assert cellcast_sandbox.requests[-1].json == {"name": "Renamed", "status": "inactive"}

        assert await tokens.delete(created.id) is None
        with pytest.raises(NotFoundError) as info:
            await tokens.get(created.id)
        assert info.value.detail == "API token not found"

    async def test_duplicate_name_is_a_bad_request(
        self, cellcast_session: CellcastSession, cellcast_sandbox: Sandbox
    ) -> None:
        """seeds/001 400: the same name twice in one sub-account."""
        sub = cellcast_sandbox.sub_account_ids[0]
        await cellcast_session.tokens.create(name="Twice", sub_account_id=sub)
        with pytest.raises(BadRequestError) as info:
            await cellcast_session.tokens.create(name="Twice", sub_account_id=sub)

        assert info.value.detail == "Token name already exists for this sub-account"
        assert cellcast_sandbox.tokens_created == 1

    async def test_delete_of_a_missing_token(self, cellcast_session: CellcastSession) -> None:
        """seeds/003 404."""
        with pytest.raises(NotFoundError) as info:
            await cellcast_session.tokens.delete("0" * 24)

        assert (
            str(info.value)
            == f"DELETE {TOKENS_PATH}/{'0' * 24} -> 404 Not found: API token not found"
        )

    async def test_an_odd_id_stays_one_segment(
        self, cellcast_session: CellcastSession, cellcast_sandbox: Sandbox
    ) -> None:
        """`../admin` is one encoded segment under /token/, so it is just a missing token."""
        with pytest.raises(NotFoundError):
            await cellcast_session.tokens.get("../admin")

        assert cellcast_sandbox.requests[-1].path == f"{TOKENS_PATH}/..%2Fadmin"


class TestAuthentication:
    """A key the server does not know is a 401 in the seed's own shape."""

    async def test_unknown_key(self, cellcast_sandbox: Sandbox) -> None:
        """seeds/000 401: `{code, message, stack}`; the key shows nowhere in the error."""
        key = "not-a-real-key-0123456789abcdef"
        async with CellcastSession(api_key=key, base_url=cellcast_sandbox.url) as cc:
            with pytest.raises(AuthenticationError) as info:
                await cc.tokens.list()

        assert info.value.status_code == 401
        assert info.value.message == "Token expired"
        assert key not in str(info.value)
        assert key not in repr(info.value)


class TestUnderFaults:
    """The marker configures the sandbox: faults injected, the walk still whole."""

    @pytest.mark.cellcast_sandbox(tokens=300, faults=Faults(error_rate=0.3, seed=4))
    async def test_a_flaky_walk_is_whole(self, cellcast_sandbox: Sandbox) -> None:
        """30% of requests fail (5xx, 429, dropped); enough retries bring every token."""
        async with CellcastSession(
            api_key=cellcast_sandbox.api_key, base_url=cellcast_sandbox.url, max_retries=10
        ) as cc:
            tokens = await cc.tokens.list(limit=20, concurrency=4).collect()

        assert len(tokens) == 300
        assert len({t.id for t in tokens}) == 300
        assert len(cellcast_sandbox.requests) > 15  # the faults did happen, and were retried
