"""The SDK's value types: frozen attrs classes with snake_case fields.

Field names and the JSON keys they come from (seeds 000-002):

    SubAccount:  _id -> id, name, email, companyName -> company_name
    ApiToken:    _id -> id, name, token -> Secret, status -> TokenStatus | str,
                 createdAt -> created_at (tz-aware), subAccount -> sub_account,
                 subAccountId (or subAccount._id) -> sub_account_id

How JSON becomes these classes lives in ``_converters.make_converter()``.
"""

from __future__ import annotations

import enum
import hmac
from datetime import datetime
from typing import Any, Final, final

import attrs

__all__ = [
    "ApiToken",
    "CreatedToken",
    "Secret",
    "SubAccount",
    "TokenStatus",
    "secret_from_str",
]

_MASK: Final = "****"
# A value shorter than this shows no characters at all: four of eight would be half of it.
_MIN_LEN_TO_HINT: Final = 12


@final
class Secret:
    """A secret string (an API token) that does not show itself.

    ``repr()`` and ``str()`` show at most the last 4 characters, e.g. ``****f00d``;
    ``reveal()`` returns the whole value. Two secrets are equal when their values are.
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret takes a str, not {type(value).__name__}")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """Return the whole secret. Handle with care: store it, never log it."""
        return self._value

    @property
    def masked(self) -> str:
        """The value as it is safe to show: ``****`` plus at most the last 4 characters."""
        if len(self._value) < _MIN_LEN_TO_HINT:
            return _MASK
        return _MASK + self._value[-4:]

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"Secret('{self.masked}')"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # surrogatepass: JSON can carry a lone surrogate ("\ud800") that strict UTF-8
        # refuses, and comparing two tokens must not raise UnicodeEncodeError.
        return hmac.compare_digest(
            self._value.encode("utf-8", "surrogatepass"),
            other._value.encode("utf-8", "surrogatepass"),
        )

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Secret is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Secret is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (self._value,))


_new_secret: Final = object.__new__
# The slot's own setter: Secret.__setattr__ refuses every assignment, on purpose.
_set_secret_value: Final[Any] = vars(Secret)["_value"].__set__


def secret_from_str(value: str) -> Secret:
    """A :class:`Secret` from a value the caller has already checked is a ``str``.

    The converter's hot path: the same object ``Secret(value)`` makes, at half the cost
    (no ``__init__`` call, no second type check).
    """
    secret: Secret = _new_secret(Secret)
    _set_secret_value(secret, value)
    return secret


class TokenStatus(str, enum.Enum):
    """A token's status (seed 002, "Token Status").

    A status the server sends that is not listed here is kept as the plain string.
    """

    ACTIVE = "active"
    INACTIVE = "inactive"

    def __str__(self) -> str:
        return self.value


@attrs.frozen(slots=True)
class SubAccount:
    """A sub-client account, as nested in a token (seed 000 ``subAccount``).

    ``id`` is the account's ``_id``; ``name``, ``email`` and ``company_name``
    (``companyName``) are ``None`` when the server leaves them out.
    """

    id: str
    name: str | None = None
    email: str | None = None
    company_name: str | None = None


@attrs.frozen(slots=True)
class ApiToken:
    """A sub-client API token.

    ``token`` is masked by the server on every read but ``create``. ``status`` is a
    :class:`TokenStatus`, or the server's own string when it is one the SDK does not know.
    ``sub_account_id`` comes from ``subAccountId`` or, failing that, ``subAccount._id``.
    """

    id: str
    name: str
    token: Secret = attrs.field(repr=True)
    status: TokenStatus | str
    created_at: datetime
    sub_account: SubAccount | None = None
    sub_account_id: str | None = None


@attrs.frozen(slots=True)
class CreatedToken(ApiToken):
    """The answer to ``create``: ``token`` holds the full secret, returned only this once."""
