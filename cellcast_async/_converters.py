"""JSON -> models: the cattrs rules, built by one factory.

There is no module-level converter to mutate: ``make_converter()`` returns a fresh one,
and each ``CellcastSession`` owns its own (cattrs ``preconf`` style).

This is the hot path of a bulk audit (README "Performance"): every hook is specialised for its type
once, when the converter first needs it, so structuring a token is one generated
function calling a handful of small ones, with no per-item dispatch.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Final

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from ._exceptions import ShapeError
from ._models import ApiToken, CreatedToken, Secret, SubAccount, TokenStatus, secret_from_str

__all__ = ["describe_failure", "make_converter", "parse_datetime"]

_STATUS_BY_VALUE: dict[str, TokenStatus] = {s.value: s for s in TokenStatus}

# Python 3.11+ reads a trailing "Z" itself; 3.10 needs it spelled "+00:00".
_FROMISOFORMAT_READS_Z: Final = sys.version_info >= (3, 11)

# Distinct sub-accounts remembered per converter (see _optional_sub_account_hook).
_SUB_ACCOUNT_CACHE_SIZE: Final = 1024

_Hook = Callable[[Any, Any], Any]

# ApiToken's fields, in the order _token_hook passes them.
_TOKEN_FIELDS: Final = (
    "id",
    "name",
    "token",
    "status",
    "created_at",
    "sub_account",
    "sub_account_id",
)


def _structure_str(value: Any, _: type) -> str:
    if isinstance(value, str):
        return value
    raise ShapeError(f"expected a string, got {_json_type(value)}")


def _structure_optional_str(value: Any, _: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ShapeError(f"expected a string, got {_json_type(value)}")


def _structure_secret(value: Any, _: type) -> Secret:
    if isinstance(value, str):
        return secret_from_str(value)
    # Never echo the value: it may be a secret in the wrong wrapping.
    raise ShapeError(f"expected the token as a string, got {_json_type(value)}")


def _structure_status(value: Any, _: Any) -> TokenStatus | str:
    if isinstance(value, str):
        # An unknown status is kept as the server's own string (README, "Models").
        return _STATUS_BY_VALUE.get(value, value)
    raise ShapeError(f"expected the status as a string, got {_json_type(value)}")


def parse_datetime(value: Any) -> datetime:
    """Parse an ISO-8601 timestamp into an aware ``datetime`` (naive ones are UTC).

    Seeds 000-002 send ``2024-01-15T10:30:00.000Z``; seed 004 sends ``+00:00`` offsets.
    """
    return _structure_datetime(value, datetime)


def _structure_datetime(value: Any, _: Any) -> datetime:
    # parse_datetime's body, registered as the hook itself: one call less per token.
    if not isinstance(value, str):
        raise ShapeError(f"expected an ISO-8601 timestamp string, got {_json_type(value)}")
    try:
        # Fast path: one C call for the seeds' own form on 3.11+.
        parsed = datetime.fromisoformat(value) if _FROMISOFORMAT_READS_Z else None
    except ValueError:
        parsed = None
    if parsed is None:
        # The portable path: the only one on 3.10, and whatever 3.11 turned down above
        # (a lower-case "z", "2024-01-15Z"), so every version accepts the same strings.
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = None
        if parsed is None:  # raised out here: the ValueError's text quotes the value
            raise ShapeError(_not_a_timestamp(value))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    elif parsed.tzinfo is not timezone.utc:
        # "+05:30" is kept as the same instant in UTC: README promises UTC datetimes.
        try:
            parsed = parsed.astimezone(timezone.utc)
        except OverflowError:
            # 0001-01-01T00:00+05:00 is in year 0 in UTC, 9999-12-31T23:59-05:00 in
            # 10000: neither is a datetime (README "Models").
            parsed = None
        if parsed is None:
            raise ShapeError(_out_of_range(value))
    return parsed


# Characters a timestamp is made of: only such a value is quoted back in an error, so
# that a token sent in the wrong field never shows, not even in part (README, secrets).
_TIMESTAMP_CHARS: Final = frozenset("0123456789-:.+TZtz ")


def _not_a_timestamp(value: str) -> str:
    if len(value) <= 40 and _TIMESTAMP_CHARS.issuperset(value):
        return f"not an ISO-8601 timestamp: {value!r}"
    return f"not an ISO-8601 timestamp (a string of {len(value)} characters)"


def _out_of_range(value: str) -> str:
    # Only a string that parsed as a timestamp gets here: quoting it shows no secret.
    return f"timestamp out of range once in UTC (years 1 to 9999): {value!r}"


def _is_status_union(tp: Any) -> bool:
    return set(typing.get_args(tp)) == {TokenStatus, str}


def _is_optional_sub_account(tp: Any) -> bool:
    return set(typing.get_args(tp)) == {SubAccount, type(None)}


def _optional_sub_account_hook(structure_sub: _Hook) -> _Hook:
    """``SubAccount | None``, sharing one instance per distinct sub-account.

    A listing repeats the same few sub-accounts on every token (seed 000). SubAccount is
    frozen, so equal instances can be shared: a hit costs one dict lookup instead of a
    structure and an attrs ``__init__``, and 100k tokens hold a handful of sub-accounts.
    The key is every field the hook reads; only sub-accounts that structured cleanly
    are remembered, so a hit is exactly what structuring would have returned.
    """
    cache: dict[tuple[Any, ...], SubAccount] = {}

    def structure_optional_sub_account(value: Any, _: Any) -> SubAccount | None:
        if value is None:
            return None
        if type(value) is not dict:
            raise ShapeError(f"expected the sub-account as an object, got {_json_type(value)}")
        key = (value.get("_id"), value.get("name"), value.get("email"), value.get("companyName"))
        try:
            return cache[key]
        except (KeyError, TypeError):  # TypeError: an unhashable value, rejected below
            pass
        sub: SubAccount = structure_sub(value, SubAccount)
        if len(cache) >= _SUB_ACCOUNT_CACHE_SIZE:
            cache.clear()
        cache[key] = sub
        return sub

    return structure_optional_sub_account


def _token_hook(converter: cattrs.Converter, cls: type[ApiToken]) -> _Hook:
    """``ApiToken``/``CreatedToken`` from one list item: the hot loop of a bulk audit.

    Written out rather than generated by ``make_dict_structure_fn``: the generated one
    collects the optional fields in a dict and calls ``cls(**res)``, and the
    ``subAccount._id`` fallback then needs a copy of the item. This version reads each
    key once and calls ``cls`` positionally, about a quarter faster (benchmarks/decode.py),
    with the same field hooks, the same order and the same errors
    (tests/perf/test_decode_equivalence.py holds it to the generated one).
    """
    structure_str = converter.get_structure_hook(str)
    structure_secret = converter.get_structure_hook(Secret)
    structure_status = converter.get_structure_hook(TokenStatus | str)
    structure_datetime = converter.get_structure_hook(datetime)
    structure_sub_account = converter.get_structure_hook(SubAccount | None)
    structure_optional_str = converter.get_structure_hook(str | None)
    names = tuple(field.name for field in attrs.fields(cls))
    if names != _TOKEN_FIELDS:  # a new field must be read here too
        raise TypeError(f"{cls.__name__} has fields {names}, the hook reads {_TOKEN_FIELDS}")

    def structure_token(obj: Any, tp: Any = cls) -> ApiToken:
        if type(obj) is not dict:
            raise ShapeError(f"expected a token object, got {_json_type(obj)}")
        # Optional fields first, then the required ones in field order: the order the
        # generated hook used, so the first error reported is the same.
        nested = obj.get("subAccount")
        sub_account = None if nested is None else structure_sub_account(nested, SubAccount)
        sub_account_id = structure_optional_str(obj.get("subAccountId"), str)
        if sub_account_id is None and sub_account is not None:
            # seeds/000 and 002 send only the nested subAccount; 001 only subAccountId.
            sub_account_id = sub_account.id
        token_id = structure_str(obj["_id"], str)
        if not token_id:
            # No call can name such a token, a walk's duplicate check keys on it and the
            # audit's records need it (README "Models").
            raise ShapeError("expected a token id, got an empty string")
        return tp(  # type: ignore[no-any-return]
            token_id,
            structure_str(obj["name"], str),
            structure_secret(obj["token"], Secret),
            structure_status(obj["status"], str),
            structure_datetime(obj["createdAt"], datetime),
            sub_account,
            sub_account_id,
        )

    return structure_token


def make_converter() -> cattrs.Converter:
    """Build the converter that turns Cellcast's JSON into the SDK's models.

    Rules:

    - ``_id`` -> ``id``; camelCase keys -> snake_case fields (``createdAt``,
      ``companyName``, ``subAccount``, ``subAccountId``).
    - ``createdAt`` -> an aware ``datetime``; a trailing ``Z`` and naive times are UTC.
    - ``token`` -> :class:`Secret`, so the value never shows in a repr.
    - ``status`` -> :class:`TokenStatus`, or the server's own string if it is unknown.
    - ``sub_account_id`` <- ``subAccountId``, else (missing or null) the nested
      ``subAccount._id``.
    - Unknown keys are ignored; missing optional keys become ``None``; a missing required
      key or a value of the wrong JSON type raises (``structure()`` makes it a ``ShapeError``).
    - Strings are never coerced: ``123`` is not a name.

    The model hooks are factories: each is generated when first asked for, from the
    hooks registered at that moment, and again after any later registration.
    """
    converter = cattrs.Converter(detailed_validation=False)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(typing.Optional[str], _structure_optional_str)  # noqa: UP045
    converter.register_structure_hook(Secret, _structure_secret)
    converter.register_structure_hook(datetime, _structure_datetime)
    converter.register_structure_hook_func(_is_status_union, _structure_status)
    converter.register_structure_hook_factory(
        lambda tp: tp is SubAccount,
        lambda _: make_dict_structure_fn(
            SubAccount,
            converter,
            _cattrs_detailed_validation=False,
            id=override(rename="_id"),
            company_name=override(rename="companyName"),
        ),
    )
    converter.register_structure_hook_factory(
        _is_optional_sub_account,
        lambda _: _optional_sub_account_hook(converter.get_structure_hook(SubAccount)),
    )
    converter.register_structure_hook_factory(
        lambda tp: tp is ApiToken, lambda _: _token_hook(converter, ApiToken)
    )
    converter.register_structure_hook_factory(
        lambda tp: tp is CreatedToken, lambda _: _token_hook(converter, CreatedToken)
    )
    return converter


def describe_failure(exc: Exception) -> str:
    """Say why structuring failed without quoting any value (it could be a secret)."""
    if isinstance(exc, ShapeError):
        return str(exc)
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        return f"missing required field {exc.args[0]!r}"
    return f"{type(exc).__name__} while decoding"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
