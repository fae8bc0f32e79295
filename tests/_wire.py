"""Cellcast's wire format as seeds 000-003 show it, for every fake server of the suite.

One home for what a fake answer is made of: the token path, the success envelope, a
token as a listing sends it, and a listing page's ``data``. The fakes on aioresponses
(``tests/unit/_support.py``), the raw servers of ``tests/reliability`` and the hostile
servers of ``tests/adversarial`` all build their answers from these; what is verbatim
from a seed is in ``tests/seed_samples.py``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

TOKENS_PATH: Final = "/api/v1/apiClient/token"
# The ids seed 000 shows.
TOKEN_ID: Final = "6877b1234567890abcdef123"
SUB_ID: Final = "6877a383d68781beb3b14110"
# A listing shows a token's value masked (seed 000); this one is the sandbox's shape.
MASKED_TOKEN: Final = "ccst_****************************************abcd"


def envelope(data: Any, **overrides: Any) -> dict[str, Any]:
    """Cellcast's success envelope (seeds 000-003) around ``data``; ``overrides`` replace
    any of its fields (``message=``, ``status=False``, ...)."""
    body: dict[str, Any] = {
        "app_type": "web",
        "status": True,
        "message": "OK",
        "message_type": "toast",
        "data": data,
        "error": {},
    }
    body.update(overrides)
    return body


def token_item(n: int = 1, **overrides: Any) -> dict[str, Any]:
    """Token number ``n`` as seed 000's listing sends it; its id sorts like ``n``."""
    item: dict[str, Any] = {
        "_id": f"{n:024x}",
        "name": f"Token {n}",
        "token": MASKED_TOKEN,
        "status": "active",
        "createdAt": "2024-01-15T10:30:00.000Z",
        "subAccount": {
            "_id": SUB_ID,
            "name": "Sub Client Name",
            "email": "sub@example.com",
            "companyName": "Sub Client Company",
        },
    }
    item.update(overrides)
    return item


def list_data(
    items: Sequence[Any],
    *,
    page: int = 1,
    limit: int = 10,
    total: int | None = None,
    total_pages: int | None = 1,
    has_next: bool | None = None,
) -> dict[str, Any]:
    """The ``data`` object of a Cellcast listing page (seed 000).

    ``total`` defaults to the items given; ``total_pages=None`` leaves ``totalPages``
    out (a server that does not say), and ``has_next`` defaults to "a page follows".
    """
    data: dict[str, Any] = {
        "items": list(items),
        "total": len(items) if total is None else total,
        "page": page,
        "limit": limit,
        "totalPages": total_pages,
        "hasNextPage": (total_pages is not None and page < total_pages)
        if has_next is None
        else has_next,
        "hasPrevPage": page > 1,
    }
    if total_pages is None:
        del data["totalPages"]
    return data


def dumps(obj: Any) -> bytes:
    """``obj`` as a JSON body."""
    return json.dumps(obj).encode()
