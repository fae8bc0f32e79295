"""JSON -> models: the cattrs rules, built by one factory.

There is no module-level converter to mutate: ``make_converter()`` returns a fresh one,
and each ``CellcastSession`` owns its own (cattrs ``preconf`` style).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import cattrs
from cattrs.gen import make_dict_structure_fn, override

from ._models import ApiToken, CreatedToken, Secret, SubAccount, TokenStatus
from ._protocol import ShapeError

__all__ = ["describe_failure", "make_converter", "parse_datetime"]

_STATUS_BY_VALUE: dict[str, TokenStatus] = {s.value: s for s in TokenStatus}


def _structure_str(value: Any, _: type) -> str:
    if isinstance(value, str):
        return value
    raise ShapeError(f"expected a string, got {_json_type(value)}")


def _structure_secret(value: Any, _: type) -> Secret:
    if isinstance(value, str):
        return Secret(value)
    # Never echo the value: it may be a secret in the wrong wrapping.
    raise ShapeError(f"expected the token as a string, got {_json_type(value)}")


def _structure_status(value: Any, _: Any) -> TokenStatus | str:
    if isinstance(value, str):
        # An unknown status is kept as the server's own string (DESIGN.md, models).
        return _STATUS_BY_VALUE.get(value, value)
    raise ShapeError(f"expected the status as a string, got {_json_type(value)}")


def parse_datetime(value: Any) -> datetime:
    """Parse an ISO-8601 timestamp into an aware ``datetime`` (naive ones are UTC).

    Seeds 000-002 send ``2024-01-15T10:30:00.000Z``; seed 004 sends ``+00:00`` offsets.
    """
    if not isinstance(value, str):
        raise ShapeError(f"expected an ISO-8601 timestamp string, got {_json_type(value)}")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ShapeError(f"not an ISO-8601 timestamp: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def _structure_datetime(value: Any, _: type) -> datetime:
    return parse_datetime(value)


def _is_status_union(tp: Any) -> bool:
    return set(typing.get_args(tp)) == {TokenStatus, str}


def _token_hook(
    converter: cattrs.Converter, cls: type[ApiToken]
) -> Callable[[Any, type[ApiToken]], ApiToken]:
    base = make_dict_structure_fn(
        cls,
        converter,
        id=override(rename="_id"),
        created_at=override(rename="createdAt"),
        sub_account=override(rename="subAccount"),
        sub_account_id=override(rename="subAccountId"),
    )

    def structure_token(obj: Any, tp: type[ApiToken]) -> ApiToken:
        if type(obj) is not dict:
            raise ShapeError(f"expected a token object, got {_json_type(obj)}")
        if "subAccountId" not in obj:
            # seeds/000 and 002 send only the nested subAccount; 001 sends only subAccountId.
            nested = obj.get("subAccount")
            if type(nested) is dict and "_id" in nested:
                obj = {**obj, "subAccountId": nested["_id"]}
        return base(obj, tp)

    return structure_token


def make_converter() -> cattrs.Converter:
    """Build the converter that turns Cellcast's JSON into the SDK's models.

    Rules:

    - ``_id`` -> ``id``; camelCase keys -> snake_case fields (``createdAt``,
      ``companyName``, ``subAccount``, ``subAccountId``).
    - ``createdAt`` -> an aware ``datetime``; a trailing ``Z`` and naive times are UTC.
    - ``token`` -> :class:`Secret`, so the value never shows in a repr.
    - ``status`` -> :class:`TokenStatus`, or the server's own string if it is unknown.
    - ``sub_account_id`` <- ``subAccountId``, else the nested ``subAccount._id``.
    - Unknown keys are ignored; missing optional keys become ``None``; a missing required
      key or a value of the wrong JSON type raises (``structure()`` makes it a ``ShapeError``).
    - Strings are never coerced: ``123`` is not a name.
    """
    converter = cattrs.Converter(detailed_validation=False)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(Secret, _structure_secret)
    converter.register_structure_hook(datetime, _structure_datetime)
    converter.register_structure_hook_func(_is_status_union, _structure_status)
    converter.register_structure_hook(
        SubAccount,
        make_dict_structure_fn(
            SubAccount,
            converter,
            id=override(rename="_id"),
            company_name=override(rename="companyName"),
        ),
    )
    converter.register_structure_hook(ApiToken, _token_hook(converter, ApiToken))
    converter.register_structure_hook(CreatedToken, _token_hook(converter, CreatedToken))
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
