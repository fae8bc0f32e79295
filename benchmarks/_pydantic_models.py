"""Pydantic v2 models equivalent to cellcast_async's, for the side-by-side benchmarks.

What a user who picked httpx + pydantic (openai-python's stack) would write for the
same JSON (seed 000): aliases for ``_id`` and the camelCase keys, the token as a
``SecretStr``, an aware ``datetime``, the status as an enum or the server's own
string, the nested sub-account, and the same ``sub_account_id`` fallback. Everything
is validated, as cellcast_async's converter does: no ``model_construct`` shortcuts.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, model_validator

T = TypeVar("T")


class TokenStatus(str, enum.Enum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class SubAccount(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    id: str = Field(alias="_id")
    name: str | None = None
    email: str | None = None
    company_name: str | None = Field(default=None, alias="companyName")


class ApiToken(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    id: str = Field(alias="_id")
    name: str
    token: SecretStr
    # left_to_right: a known status becomes the enum, anything else stays a str.
    status: TokenStatus | str = Field(union_mode="left_to_right")
    created_at: datetime = Field(alias="createdAt")
    sub_account: SubAccount | None = Field(default=None, alias="subAccount")
    sub_account_id: str | None = Field(default=None, alias="subAccountId")

    @model_validator(mode="after")
    def _sub_account_id_from_nested(self) -> ApiToken:
        # The same rule as cellcast_async: subAccountId, else subAccount._id.
        if "sub_account_id" not in self.model_fields_set and self.sub_account is not None:
            object.__setattr__(self, "sub_account_id", self.sub_account.id)
        return self


class TokenPage(BaseModel, Generic[T]):
    """``data`` of a listing (seed 000)."""

    items: list[T]
    total: int | None = None
    page: int
    limit: int | None = None
    total_pages: int | None = Field(default=None, alias="totalPages")
    has_next_page: bool = Field(alias="hasNextPage")
    has_prev_page: bool = Field(default=False, alias="hasPrevPage")


class Envelope(BaseModel, Generic[T]):
    """The envelope every answer comes in (seed 000); unknown keys are ignored."""

    status: bool
    message: str | None = None
    data: T


TokenListEnvelope = Envelope[TokenPage[ApiToken]]
TOKEN_LIST = TypeAdapter(list[ApiToken])


def validate_page_json(body: bytes) -> TokenPage[ApiToken]:
    """The fastest honest pydantic path: parse and validate in one Rust call."""
    return TokenListEnvelope.model_validate_json(body).data


def check_equivalent(ours: Any, theirs: ApiToken) -> None:
    """Fail loudly if the two libraries disagree on a token (the comparison is fair)."""
    assert ours.id == theirs.id
    assert ours.name == theirs.name
    assert ours.token.reveal() == theirs.token.get_secret_value()
    assert str(ours.status) == str(getattr(theirs.status, "value", theirs.status))
    assert ours.created_at == theirs.created_at
    assert ours.sub_account_id == theirs.sub_account_id
    if ours.sub_account is None:
        assert theirs.sub_account is None
    else:
        assert theirs.sub_account is not None
        assert ours.sub_account.company_name == theirs.sub_account.company_name
