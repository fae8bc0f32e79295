"""The Cellcast token API as pure functions: (store, request) -> (status, JSON payload).

No aiohttp here; ``_server.py`` feeds requests in and writes answers out. Every shape and every
text below follows the seed documents (copies in ``tests/seeds/``: 000 list/get/by-sub-account,
001 create, 002 update, 003 delete); behaviour the seeds leave open is marked "not in the seeds".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote

from ._state import STATUSES, Store, StoredSubAccount, StoredToken, View

__all__ = [
    "MAX_JSON_DEPTH",
    "ApiRequest",
    "ApiResponse",
    "BASE_PATH",
    "failure",
    "handle",
    "json_bytes",
    "loads_body",
]

BASE_PATH: Final = "/api/v1/apiClient/token"
_BASE_SEGMENTS: Final = ("api", "v1", "apiClient", "token")
MAX_LIMIT: Final = 1000  # not in the seeds; generous, and keeps one page's JSON bounded
# Digits only; capped so int() never meets a 5000-digit "page" (that would be a 500).
_POSITIVE_INT: Final = re.compile(r"[0-9]{1,15}")

# seeds/000-003 401 Unauthorized, verbatim: the gateway's shape, not the envelope.
UNAUTHORIZED_BODY: Final[Mapping[str, Any]] = {
    "code": 401,
    "message": "Token expired",
    "stack": "APIError: Token expired...",
}


@dataclass(frozen=True, slots=True)
class ApiRequest:
    method: str
    raw_path: str  # as received: still percent-encoded, no query string
    query: Mapping[str, str] = field(default_factory=dict)  # decoded, first value per name
    authorization: str | None = None
    content_type: str = ""
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class ApiResponse:
    status: int
    payload: Any  # JSON-able; dict insertion order is the wire order


def json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ----------------------------------------------------------------------------- shapes


def success(message: str, data: Any, status: int = 200) -> ApiResponse:
    # seeds/000-003 200/201: the whole envelope, these keys in this order.
    return ApiResponse(
        status,
        {
            "app_type": "web",
            "app_version": "1.0",
            "maintainence": 0,  # sic, seeds/000
            "new_version": 0,
            "force_update": 0,
            "invalid_token": 0,
            "refresh_token": "",
            "show_message": 0,
            "is_enc": False,
            "status": True,
            "message": message,
            "message_type": "toast",
            "data": data,
            "error": {},
        },
    )


def failure(status: int, message: str, detail: str) -> ApiResponse:
    # seeds/000-003 400/403/404: a shorter envelope, with the specifics in error.message.
    return ApiResponse(
        status,
        {
            "status": False,
            "message": message,
            "message_type": "toast",
            "data": {},
            "error": {"message": detail},
        },
    )


def validation_error(detail: str) -> ApiResponse:
    return failure(400, "Validation error", detail)


def forbidden() -> ApiResponse:
    return failure(403, "Forbidden", "Sub account does not belong to you or does not exist")


def token_not_found() -> ApiResponse:
    return failure(404, "Not found", "API token not found")


def route_not_found() -> ApiResponse:
    return failure(404, "Not found", "Route not found")  # not in the seeds


def unauthorized() -> ApiResponse:
    return ApiResponse(401, dict(UNAUTHORIZED_BODY))


def sub_account_json(sub: StoredSubAccount) -> dict[str, Any]:
    # seeds/000 items[].subAccount
    return {"_id": sub.id, "name": sub.name, "email": sub.email, "companyName": sub.company_name}


def _token_head(token: StoredToken, value: str) -> dict[str, Any]:
    # The fields every token answer opens with, in the seeds' order.
    return {"_id": token.id, "name": token.name, "token": value, "status": token.status}


def token_json(token: StoredToken, store: Store) -> dict[str, Any]:
    # seeds/000 items[] and seeds/002 data: the token masked, the sub-account nested.
    return {
        **_token_head(token, store.masked(token)),
        "createdAt": token.created_at,
        "subAccount": sub_account_json(store.sub_accounts[token.sub_account_id]),
    }


def created_token_json(token: StoredToken, store: Store) -> dict[str, Any]:
    # seeds/001 201 data: the full token (only time it is shown), a flat subAccountId.
    return {
        **_token_head(token, store.secret(token)),
        "subAccountId": token.sub_account_id,
        "createdAt": token.created_at,
    }


# ----------------------------------------------------------------------------- routing


def handle(store: Store, request: ApiRequest) -> ApiResponse:
    """Route on the raw path, authenticate, and run one endpoint."""
    route = _route(request.method.upper(), request.raw_path)
    if route is None:
        return route_not_found()
    owner = _authenticate(store, request.authorization)
    if owner is None:
        return unauthorized()
    endpoint, argument = route
    if endpoint == "list":
        return _list(store, owner, request.query, path_sub_account_id=None)
    if endpoint == "list_sub":
        return _list(store, owner, request.query, path_sub_account_id=argument)
    if endpoint == "create":
        return _create(store, owner, request)
    assert argument is not None
    if endpoint == "get":
        return _get(store, owner, argument)
    if endpoint == "update":
        return _update(store, owner, argument, request)
    return _delete(store, owner, argument)


def _route(method: str, raw_path: str) -> tuple[str, str | None] | None:
    """Match on raw segments, so ``..%2Fadmin`` or ``%2E%2E`` stay one id segment.

    A single trailing slash is ignored (Express's default, non-strict routing).
    """
    if raw_path.endswith("/") and raw_path != "/":
        raw_path = raw_path[:-1]
    segments = raw_path.split("/")
    if segments[0] != "" or tuple(segments[1:5]) != _BASE_SEGMENTS:
        return None
    rest = segments[5:]
    if not rest:
        return {"GET": ("list", None), "POST": ("create", None)}.get(method)
    if len(rest) == 1 and rest[0]:
        ident = unquote(rest[0])
        return {
            "GET": ("get", ident),
            "PUT": ("update", ident),
            "DELETE": ("delete", ident),
        }.get(method)
    if len(rest) == 2 and rest[0] == "sub-account" and rest[1] and method == "GET":
        return ("list_sub", unquote(rest[1]))
    return None


def _authenticate(store: Store, header: str | None) -> str | None:
    # seeds/000: "Authorization: Bearer {{API_KEY}}" (the curl samples send it lower-case).
    if not header:
        return None
    scheme, _, key = header.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or not store.is_key(key):
        return None
    return key


# ----------------------------------------------------------------------------- endpoints


def _list(
    store: Store, owner: str, query: Mapping[str, str], *, path_sub_account_id: str | None
) -> ApiResponse:
    # seeds/000: page (default 1), limit (default 10), status, search, subAccountId.
    page_raw = query.get("page")
    page = 1
    if page_raw is not None:
        if not _POSITIVE_INT.fullmatch(page_raw) or int(page_raw) < 1:
            return validation_error("page must be a positive integer")
        page = int(page_raw)
    limit_raw = query.get("limit")
    limit = 10
    if limit_raw is not None:
        if not _POSITIVE_INT.fullmatch(limit_raw) or not 1 <= int(limit_raw) <= MAX_LIMIT:
            return validation_error(f"limit must be an integer between 1 and {MAX_LIMIT}")
        limit = int(limit_raw)
    status = query.get("status") or None
    if status is not None and status not in STATUSES:
        return validation_error("status must be one of: active, inactive")
    search = (query.get("search") or "").strip().lower() or None

    sub_account_id = path_sub_account_id
    if sub_account_id is None:
        sub_account_id = query.get("subAccountId") or None
    if sub_account_id is not None and not store.owns(owner, sub_account_id):
        return forbidden()

    items = store.view(View(owner, sub_account_id, status, search))
    total = len(items)
    total_pages = -(-total // limit)
    start = (page - 1) * limit
    window = items[start : start + limit]
    data = {
        "items": [token_json(t, store) for t in window],
        "total": total,
        "page": page,
        "limit": limit,
        "totalPages": total_pages,
        "hasNextPage": page < total_pages,
        "hasPrevPage": page > 1,
    }
    return success(f"Found {total} API token(s)", data)


def _get(store: Store, owner: str, token_id: str) -> ApiResponse:
    # seeds/000 "Get Single Token by ID": the response is not shown; the list item shape is used.
    token = store.get_owned(owner, token_id)
    if token is None:
        return token_not_found()
    return success("API token retrieved successfully", token_json(token, store))


# Deeper JSON is "not valid JSON" (README "The sandbox"). Python's own parser gives up
# near its recursion limit on 3.10 and 3.11 but reads 1,000 levels on 3.12+, so the
# sandbox sets its own limit, below all of them, for the same answer on every Python.
MAX_JSON_DEPTH: Final = 512


def loads_body(body: bytes) -> Any:
    """``body`` parsed as JSON; a :class:`ValueError` if it is not JSON (bad UTF-8, too
    deep for the parser) or nests arrays and objects more than :data:`MAX_JSON_DEPTH` deep."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        value = _TOO_DEEP
    if value is _TOO_DEEP or _too_deep(value, body):
        # Raised outside the except block: no parser error (and its text) is chained.
        raise ValueError("not JSON, or nested too deep")
    return value


_TOO_DEEP: Final = object()


def _too_deep(value: Any, body: bytes) -> bool:
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return False  # too few brackets to nest that deep: the common case, no walk
    level: list[tuple[Any, int]] = [(value, 1)]
    while level:
        node, depth = level.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        children = node.values() if isinstance(node, dict) else node
        level.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _read_body(request: ApiRequest) -> dict[str, Any] | ApiResponse:
    """The JSON object body, ``{}`` when there is none, or a 400.

    Like Express's ``express.json()``, a body that is not sent as JSON is not read at all
    (so it then fails the field checks), and an empty body is ``{}``.
    """
    media_type = request.content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        return {}
    if not request.body.strip():
        return {}
    try:
        body = loads_body(request.body)
    except ValueError:
        return validation_error("Request body must be valid JSON")
    if not isinstance(body, dict):
        return validation_error("Request body must be a JSON object")
    return body


def _create(store: Store, owner: str, request: ApiRequest) -> ApiResponse:
    body = _read_body(request)
    if isinstance(body, ApiResponse):
        return body
    # seeds/001: the checks, in the order the seed lists them.
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        return validation_error("API name is required")
    sub_account_id = body.get("subAccountId")
    if not isinstance(sub_account_id, str) or not sub_account_id.strip():
        return validation_error("Sub account ID is required")
    if not store.owns(owner, sub_account_id):
        return forbidden()
    name = name.strip()
    if store.name_taken(sub_account_id, name):
        return validation_error("Token name already exists for this sub-account")
    token = store.create(owner, sub_account_id, name)
    return success("API token created successfully", created_token_json(token, store), status=201)


def _update(store: Store, owner: str, token_id: str, request: ApiRequest) -> ApiResponse:
    body = _read_body(request)
    if isinstance(body, ApiResponse):
        return body
    # seeds/002: name and status are both optional, at least one must be usable.
    status = body.get("status")
    if status is not None and status not in STATUSES:
        return validation_error("Status must be either active or inactive")
    name = body.get("name")
    new_name = name.strip() if isinstance(name, str) and name.strip() else None
    if new_name is None and status is None:
        return validation_error("No valid fields to update")
    token = store.get_owned(owner, token_id)
    if token is None:
        return token_not_found()
    if new_name is not None and store.name_taken(
        token.sub_account_id, new_name, except_id=token.id
    ):
        return validation_error("Token name already exists for this sub-account")
    store.update(token, name=new_name, status=status)
    return success("API token updated successfully", token_json(token, store))


def _delete(store: Store, owner: str, token_id: str) -> ApiResponse:
    token = store.get_owned(owner, token_id)
    if token is None:
        return token_not_found()
    store.delete(token)
    # seeds/003 200: "data": null.
    return success("API token deleted successfully", None)
