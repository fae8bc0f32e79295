"""``cc.tokens``: one thin method per endpoint of seeds 000-003."""

from __future__ import annotations

import asyncio
import operator
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Literal, TypeVar

import attrs

from . import _protocol as proto
from ._exceptions import ShapeError
from ._models import ApiToken, CreatedToken, TokenStatus
from ._pager import Page, Pager, Resume, build_page, cellcast_page_format
from ._pipeline import Pipeline
from ._protocol import TOKENS_PATH
from ._transport import Response
from ._walk import Listing, decode_checkpoint
from ._walk_auto import AdaptiveConcurrency, check_concurrency

__all__ = ["TokensResource"]

M = TypeVar("M", bound=ApiToken)
T = TypeVar("T")

# Items structured between two yields to the event loop: about 2 ms of work (4 us a
# token), so a 10,000-token page never holds the loop longer than its JSON parse
# (README, "Performance"; benchmarks/loop_stall.py).
STRUCTURE_SLICE: Final = 500


def _data_object(envelope: dict[str, Any]) -> Any:
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise ShapeError("'data' must be the token object")
    return data


async def structure_items(items: Sequence[Any], structure: Callable[[Any], T]) -> list[T]:
    """``items`` structured, yielding to the event loop between slices.

    A service shares its loop with everything else it does: structuring a large page in
    one go would stall it for tens of milliseconds (README, "Performance").
    """
    if len(items) <= STRUCTURE_SLICE:
        return list(map(structure, items))
    done: list[T] = []
    for start in range(0, len(items), STRUCTURE_SLICE):
        if start:
            await asyncio.sleep(0)
        done.extend(map(structure, items[start : start + STRUCTURE_SLICE]))
    return done


def _as_is(item: Any) -> Any:
    return item


class TokensResource:
    """List, get, create, update and delete sub-client API tokens."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        converter = pipeline.converter
        # Hooks resolved once here, not per item.
        self._token_hook = converter.get_structure_hook(ApiToken)
        self._created_hook = converter.get_structure_hook(CreatedToken)

    def __repr__(self) -> str:
        return "<TokensResource>"

    def _structure_token(self, item: Any) -> ApiToken:
        return self._token_hook(item, ApiToken)  # type: ignore[no-any-return]

    def _one(
        self, cls: type[M], hook: Callable[[Any, Any], Any]
    ) -> Callable[[dict[str, Any]], Awaitable[M]]:
        async def decode(envelope: dict[str, Any]) -> M:
            return hook(_data_object(envelope), cls)  # type: ignore[no-any-return]

        return decode

    async def _call_one(
        self, operation: str, method: str, path: str, cls: type[M], **kwargs: Any
    ) -> M:
        hook = self._created_hook if cls is CreatedToken else self._token_hook
        decode = self._one(cls, hook)
        result = await self._pipeline.call(operation, method, path, decode, **kwargs)
        assert result is not None  # no `done` given: every answer is decoded
        return result

    def list(
        self,
        sub_account_id: str | None = None,
        status: TokenStatus | str | None = None,
        search: str | None = None,
        page: int = 1,
        limit: int = 10,
        concurrency: int | Literal["auto"] = 1,
        max_items: int | None = None,
    ) -> Pager[ApiToken]:
        """Your tokens, optionally filtered (``GET /api/v1/apiClient/token``, seed 000).

        Returns a :class:`Pager` and sends nothing yet. ``limit`` is the page size;
        ``max_items`` caps the total across pages; ``concurrency`` pages in flight.
        """
        params = proto.list_params(
            sub_account_id=sub_account_id, status=status, search=search, page=page, limit=limit
        )
        return self._pager("tokens.list", TOKENS_PATH, params, page, limit, concurrency, max_items)

    def list_for_sub_account(
        self,
        sub_account_id: str,
        page: int = 1,
        limit: int = 10,
        concurrency: int | Literal["auto"] = 1,
        max_items: int | None = None,
        *,
        status: TokenStatus | str | None = None,
        search: str | None = None,
    ) -> Pager[ApiToken]:
        """One sub-account's tokens (``GET .../token/sub-account/:subAccountId``, seed 000)."""
        path = proto.sub_account_tokens_path(sub_account_id)
        params = proto.list_params(status=status, search=search, page=page, limit=limit)
        return self._pager(
            "tokens.list_for_sub_account", path, params, page, limit, concurrency, max_items
        )

    def resume(
        self, checkpoint: str, concurrency: int | Literal["auto"] | None = None
    ) -> Pager[ApiToken]:
        """Continue a walk from ``pager.checkpoint()``, in this or another process.

        Same listing, filters, ``limit`` and what is left of ``max_items``; ``concurrency``
        None keeps the original walk's. A checkpoint that is mangled, from another SDK
        version or for another endpoint is a ``ValueError`` naming what is wrong; nothing
        is sent (README "Long audits").
        """
        resume = decode_checkpoint(checkpoint)
        state = resume[0]
        listing = state.listing
        if listing is None:
            raise ValueError("checkpoint is not from cc.tokens: it names no listing")
        params = dict(listing.params)
        if listing.path != TOKENS_PATH and not _SUB_ACCOUNT_LISTING.fullmatch(listing.path):
            raise ValueError(f"checkpoint is for {listing.path!r}, not a token listing")
        unknown = set(params) - _LISTING_PARAMS
        if unknown:
            raise ValueError(f"checkpoint has unknown listing parameters: {sorted(unknown)}")
        if params.get("limit") != str(state.limit):
            raise ValueError("checkpoint's 'limit' does not match its listing's")
        if "status" in params:
            proto.check_status(params["status"])
        width = state.concurrency if concurrency is None else concurrency
        operation = "tokens.list" if listing.path == TOKENS_PATH else "tokens.list_for_sub_account"
        return self._pager(
            operation, listing.path, params, state.page, state.limit, width, state.remaining, resume
        )

    def _pager(
        self,
        operation: str,
        path: str,
        params: dict[str, str],
        page: int,
        limit: int,
        concurrency: int | Literal["auto"],
        max_items: int | None,
        resume: Resume | None = None,
    ) -> Pager[ApiToken]:
        check_concurrency(concurrency)
        proto.check_max_items(max_items)
        filters = {k: v for k, v in params.items() if k != "page"}
        if resume is not None and resume[0].concurrency != concurrency:
            resume = (attrs.evolve(resume[0], concurrency=concurrency), *resume[1:])
        # "auto": pages in flight grow while answers come back fast and clean, and halve
        # on a 503, a lost answer or rising latency; the rate (429s) is the governor's
        # (README "Rate limits"). The walk's recorder feeds it every attempt.
        pipeline = self._pipeline
        width: int | AdaptiveConcurrency = (
            concurrency if concurrency != "auto" else (AdaptiveConcurrency(clock=pipeline.clock))
        )
        if isinstance(width, AdaptiveConcurrency) and pipeline.governor is not None:
            pipeline.governor.track(width)  # governor_state shows the width in force
        structure = self._structure_token

        async def fetch(number: int) -> Page[ApiToken]:
            async def decode(envelope: dict[str, Any]) -> Page[ApiToken]:
                raw = cellcast_page_format(envelope)
                items = await structure_items(raw.items, structure)
                return build_page(attrs.evolve(raw, items=items), number, _as_is)

            # Filters and credentials ride on every page request (README, "Pages").
            query = {**params, "page": str(number)}
            page = await pipeline.call(operation, "GET", path, decode, params=query)
            assert page is not None
            return page

        return Pager(
            fetch,
            page=page,
            limit=limit,
            concurrency=width,
            max_items=max_items,
            key=_token_id,
            listing=Listing(path, tuple(sorted(filters.items()))),
            # Newest first (the sandbox's order; README "Reliability"), except where a
            # token can re-enter the filtered list mid-way: a status or name change.
            order=None if "status" in filters or "search" in filters else "newest_first",
            order_key=_token_rank,
            resume=resume,
            span=lambda: pipeline.tracing.walk(operation, path),
        )

    async def get(self, token_id: str) -> ApiToken:
        """One token by id (``GET /api/v1/apiClient/token/:id``, seed 000)."""
        return await self._call_one("tokens.get", "GET", proto.token_path(token_id), ApiToken)

    async def create(self, name: str, sub_account_id: str) -> CreatedToken:
        """Create a token (``POST /api/v1/apiClient/token``, seed 001).

        The answer's ``token`` is the full secret, returned only this once: store it.
        Sent once, retried only on 429, so it never creates a token twice.
        """
        body = proto.create_body(name, sub_account_id)
        return await self._call_one("tokens.create", "POST", TOKENS_PATH, CreatedToken, json=body)

    async def update(
        self,
        token_id: str,
        name: str | None = None,
        status: TokenStatus | str | None = None,
    ) -> ApiToken:
        """Rename a token or set its status (``PUT /api/v1/apiClient/token/:id``, seed 002)."""
        path = proto.token_path(token_id)
        body = proto.update_body(name, status)
        return await self._call_one("tokens.update", "PUT", path, ApiToken, json=body)

    async def delete(self, token_id: str) -> None:
        """Delete a token for good (``DELETE /api/v1/apiClient/token/:id``, seed 003).

        A 404 on a retry after an attempt whose answer was lost counts as done: that
        attempt deleted it. A 2xx with no body at all (``204 No Content``) counts as done too.
        """
        path = proto.token_path(token_id)
        await self._pipeline.call("tokens.delete", "DELETE", path, _ignore, done=_deleted)


# De-duplication key of a token walk: always an ApiToken, so no Mapping check per item.
_token_id: Callable[[ApiToken], str] = operator.attrgetter("id")


# Where a token sits in a newest-first listing: by ``createdAt`` (ties, which the sandbox
# breaks by id, are let through). attrgetter runs in C: it is called for every token.
_token_rank: Callable[[ApiToken], Any] = operator.attrgetter("created_at")


_SUB_ACCOUNT_LISTING: Final = re.compile(re.escape(TOKENS_PATH) + r"/sub-account/[^/?#]+")
_LISTING_PARAMS: Final = frozenset({"subAccountId", "status", "search", "limit"})


async def _ignore(envelope: dict[str, Any]) -> None:
    return None


def _deleted(response: Response, answer_lost: bool) -> bool:
    return proto.delete_done(response.status, response.body, answer_lost=answer_lost)
