"""Models, the converter factory, Page, and the exception tree."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import attrs
import cattrs
import pytest

import cellcast_async
from cellcast_async import (
    APIError,
    ApiToken,
    AuthenticationError,
    BadRequestError,
    CellcastError,
    CreatedToken,
    DecodeError,
    NotFoundError,
    Page,
    PermissionDeniedError,
    RateLimitError,
    Secret,
    ServerError,
    SubAccount,
    TimeoutError,
    TokenStatus,
    TransportError,
    make_converter,
)
from cellcast_async._protocol import ShapeError

from ..seed_samples import CREATE_201, LIST_200, UPDATE_200

WHEN = datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)


def a_token(**overrides: Any) -> ApiToken:
    fields: dict[str, Any] = {
        "id": "t1",
        "name": "n",
        "token": Secret("x" * 20),
        "status": TokenStatus.ACTIVE,
        "created_at": WHEN,
    }
    fields.update(overrides)
    return ApiToken(**fields)


class TestFrozen:
    """Models and pages are frozen: assignment raises."""

    @pytest.mark.parametrize(
        ("obj", "field"),
        [
            (a_token(), "name"),
            (a_token(), "status"),
            (CreatedToken(**attrs.asdict(a_token(), recurse=False)), "token"),
            (SubAccount(id="s"), "email"),
            (
                Page(
                    items=(),
                    total=0,
                    page=1,
                    limit=10,
                    total_pages=0,
                    has_next_page=False,
                    has_prev_page=False,
                ),
                "items",
            ),
        ],
    )
    def test_assignment_raises(self, obj: Any, field: str) -> None:
        before = getattr(obj, field)

        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(obj, field, "changed")

        assert getattr(obj, field) == before

    def test_evolve_makes_a_new_one(self) -> None:
        token = a_token()

        renamed = attrs.evolve(token, name="m")

        assert (token.name, renamed.name) == ("n", "m")

    def test_equal_and_hashable_by_value(self) -> None:
        assert a_token() == a_token()
        assert hash(a_token()) == hash(a_token())
        assert a_token() != a_token(status="inactive")

    def test_created_token_is_an_api_token(self) -> None:
        assert issubclass(CreatedToken, ApiToken)
        assert [f.name for f in attrs.fields(CreatedToken)] == [
            "id",
            "name",
            "token",
            "status",
            "created_at",
            "sub_account",
            "sub_account_id",
        ]

    def test_defaults_are_none(self) -> None:
        token = a_token()

        assert (token.sub_account, token.sub_account_id) == (None, None)
        assert SubAccount(id="s") == SubAccount(id="s", name=None, email=None, company_name=None)


class TestTokenStatus:
    """A str enum with exactly the seed's two values."""

    def test_lookup_by_value_is_the_member(self) -> None:
        assert TokenStatus("active") is TokenStatus.ACTIVE
        assert TokenStatus("inactive") is TokenStatus.INACTIVE

    def test_is_a_str(self) -> None:
        assert isinstance(TokenStatus.ACTIVE, str)
        assert TokenStatus.ACTIVE == "active"  # type: ignore[comparison-overlap]  # a str enum
        assert str(TokenStatus.INACTIVE) == "inactive"
        assert f"{TokenStatus.ACTIVE}" == "active"
        assert [s.value for s in TokenStatus] == ["active", "inactive"]

    def test_unknown_value_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match="'suspended' is not a valid TokenStatus"):
            TokenStatus("suspended")


class TestMakeConverter:
    """``make_converter()`` builds a fresh, independent converter with the seed rules."""

    def test_each_call_is_a_new_converter(self) -> None:
        first, second = make_converter(), make_converter()

        assert isinstance(first, cattrs.Converter)
        assert first is not second

    def test_converters_are_independent(self) -> None:
        first, second = make_converter(), make_converter()
        first.register_structure_hook(SubAccount, lambda obj, _: SubAccount(id="patched"))

        data = LIST_200["data"]["items"][0]
        assert first.structure(data, ApiToken).sub_account == SubAccount(id="patched")
        assert second.structure(data, ApiToken).sub_account == SubAccount(
            id="6877a383d68781beb3b14110",
            name="Sub Client Name",
            email=data["subAccount"]["email"],
            company_name="Sub Client Company",
        )
        assert make_converter().structure(data, ApiToken).sub_account != SubAccount(id="patched")

    def test_structures_the_seed_token_shapes(self) -> None:
        converter = make_converter()

        listed = converter.structure(LIST_200["data"]["items"][1], ApiToken)
        created = converter.structure(CREATE_201["data"], CreatedToken)
        updated = converter.structure(UPDATE_200["data"], ApiToken)

        assert (listed.id, listed.created_at) == (
            "6877b1234567890abcdef456",
            datetime(2024, 1, 14, 8, 0, tzinfo=timezone.utc),
        )
        assert type(created) is CreatedToken
        assert (created.sub_account_id, created.sub_account) == ("6877a383d68781beb3b14110", None)
        assert (updated.status, updated.sub_account_id) == (
            TokenStatus.INACTIVE,
            "6877a383d68781beb3b14110",
        )

    def test_does_not_mutate_its_input(self) -> None:
        data = dict(UPDATE_200["data"])
        before = dict(data)

        make_converter().structure(data, ApiToken)

        assert data == before
        assert "subAccountId" not in data

    def test_never_coerces_strings(self) -> None:
        data = {**CREATE_201["data"], "name": 123}

        with pytest.raises(ShapeError, match="expected a string, got a number"):
            make_converter().structure(data, CreatedToken)


class TestPage:
    """``Page`` holds a tuple of items and the server's facts about the list."""

    def test_len_and_iter(self) -> None:
        page = Page(
            items=("a", "b"),
            total=2,
            page=1,
            limit=10,
            total_pages=1,
            has_next_page=False,
            has_prev_page=False,
        )

        assert len(page) == 2
        assert list(page) == ["a", "b"]


class TestExceptionTree:
    """The hierarchy drawn in README "Errors", and ValueError kept outside it."""

    @pytest.mark.parametrize(
        ("cls", "parent"),
        [
            (APIError, CellcastError),
            (BadRequestError, APIError),
            (AuthenticationError, APIError),
            (PermissionDeniedError, APIError),
            (NotFoundError, APIError),
            (RateLimitError, APIError),
            (ServerError, APIError),
            (TransportError, CellcastError),
            (TimeoutError, TransportError),
            (DecodeError, CellcastError),
            (CellcastError, Exception),
        ],
    )
    def test_parent(self, cls: type[Exception], parent: type[Exception]) -> None:
        assert cls.__mro__[1] is parent

    def test_timeout_error_is_ours_not_the_builtin(self) -> None:
        assert cellcast_async.TimeoutError is TimeoutError
        assert not issubclass(TimeoutError, OSError)

    def test_api_error_str_without_detail_repetition(self) -> None:
        exc = NotFoundError(
            "API token not found",
            status_code=404,
            detail="API token not found",
            method="GET",
            path="/p",
        )

        assert str(exc) == "GET /p -> 404 API token not found"
        assert repr(exc) == "NotFoundError('GET /p -> 404 API token not found')"

    def test_rate_limit_error_defaults(self) -> None:
        exc = RateLimitError("slow down", retry_after=2.5)

        assert (exc.status_code, exc.retry_after, exc.detail, exc.body) == (429, 2.5, None, None)
        assert str(exc) == "429 slow down"

    def test_errors_without_a_request(self) -> None:
        assert str(CellcastError("boom")) == "boom"
        assert str(DecodeError("bad", status_code=200)) == "200: bad"
        assert DecodeError("bad").status_code == 0

    def test_misuse_is_not_a_cellcast_error(self) -> None:
        assert not issubclass(ValueError, CellcastError)
        assert not issubclass(CellcastError, ValueError)
