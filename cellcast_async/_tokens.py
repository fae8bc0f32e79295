"""``cc.tokens``: one thin method per endpoint of seeds 000-003."""

from __future__ import annotations

import asyncio
import operator
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Final, Literal, TypeVar
from urllib.parse import unquote

import attrs

from . import _protocol as proto
from ._exceptions import ShapeError
from ._models import ApiToken, CreatedToken, TokenStatus
from ._options import check_concurrency, check_max_items, check_max_pages
from ._pager import Page, Pager, Resume, build_page, cellcast_page_format
from ._pipeline import Pipeline
from ._protocol import TOKENS_PATH
from ._rotate import Deliver, RotationResult, rotate_token
from ._seal import CheckpointKey
from ._transport import Response
from ._walk import Listing, decode_checkpoint
from ._walk_auto import AdaptiveConcurrency

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
    """List, get, create, update and delete sub-client API tokens.

    A session makes one: use it as ``cc.tokens``; it is not built directly.
    """

    def __init__(self, pipeline: Pipeline, checkpoint_key: CheckpointKey) -> None:
        self._pipeline = pipeline
        # Seals and checks this session's checkpoints (README "Long audits").
        self._checkpoint_key = checkpoint_key
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
        *,
        max_pages: int | None = None,
    ) -> Pager[ApiToken]:
        """Your tokens, optionally filtered (``GET /api/v1/apiClient/token``, seed 000).

        Returns a :class:`Pager` and sends nothing yet. ``limit`` is the page size;
        ``max_items`` caps the total across pages; ``concurrency`` pages in flight;
        ``max_pages`` bounds the pages read forward (None: derived from the first
        ``total``; README "Paging").
        """
        params = proto.list_params(
            sub_account_id=sub_account_id, status=status, search=search, page=page, limit=limit
        )
        return self._pager(
            _listing(None), params, page, limit, concurrency, max_items, max_pages=max_pages
        )

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
        max_pages: int | None = None,
    ) -> Pager[ApiToken]:
        """One sub-account's tokens (``GET .../token/sub-account/:subAccountId``, seed 000)."""
        listing = _listing(sub_account_id)  # the id checked first
        params = proto.list_params(status=status, search=search, page=page, limit=limit)
        return self._pager(
            listing, params, page, limit, concurrency, max_items, max_pages=max_pages
        )

    def resume(
        self,
        checkpoint: str,
        concurrency: int | Literal["auto"] | None = None,
        *,
        max_pages: int | None = None,
    ) -> Pager[ApiToken]:
        """Continue a walk from ``pager.checkpoint()``, in this or another process.

        Same listing, filters, ``limit`` and what is left of ``max_items``; ``concurrency``
        None keeps the original walk's. A checkpoint that is mangled, edited, made under
        another API key, too large, from another SDK version or for another endpoint is
        a ``ValueError`` naming what is wrong; nothing is sent (README "Long audits").
        """
        resume = decode_checkpoint(checkpoint, self._checkpoint_key)
        state = resume[0]
        listing = state.listing
        if listing is None:
            raise ValueError("checkpoint is not from cc.tokens: it names no listing")
        # Sealed, so written by this SDK under this key; still, nothing of it is sent as
        # read: the path and the query are rebuilt from checked parts, the sub-account
        # id encoded as one segment as every id is, the filters checked as list() checks
        # them (README "Long audits").
        sub_account = _listing_sub_account(listing.path)
        params = dict(listing.params)
        allowed = _LISTING_PARAMS if sub_account is None else _LISTING_PARAMS - {"subAccountId"}
        unknown = set(params) - allowed
        if unknown:
            raise ValueError(f"checkpoint has unknown listing parameters: {sorted(unknown)}")
        if params.get("limit") != str(state.limit):
            raise ValueError("checkpoint's 'limit' does not match its listing's")
        try:
            rebuilt = proto.list_params(
                sub_account_id=params.get("subAccountId"),
                status=params.get("status"),
                search=params.get("search"),
                page=state.page,
                limit=state.limit,
            )
        except ValueError as exc:
            raise ValueError(f"checkpoint's listing is not one cc.tokens makes: {exc}") from None
        width = state.concurrency if concurrency is None else concurrency
        return self._pager(
            _listing(sub_account),
            rebuilt,
            state.page,
            state.limit,
            width,
            state.remaining,
            resume,
            max_pages=max_pages,
        )

    def _pager(
        self,
        listing: tuple[str, str],
        params: dict[str, str],
        page: int,
        limit: int,
        concurrency: int | Literal["auto"],
        max_items: int | None,
        resume: Resume | None = None,
        *,
        max_pages: int | None = None,
    ) -> Pager[ApiToken]:
        check_concurrency(concurrency)
        check_max_items(max_items)
        check_max_pages(max_pages)
        operation, path = listing
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

        return Pager._wired(
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
            checkpoint_key=self._checkpoint_key,
            max_pages=max_pages,
            # The pipeline's clock, so that ``waited`` and ``elapsed`` share one time line.
            clock=pipeline.clock,
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

    async def rotate(
        self, token_id: str, *, deliver: Deliver, as_of: datetime | None = None
    ) -> RotationResult:
        """Replace a token by a new one under the same name (README "Rotating tokens").

        The old token is renamed ``"<name> (retired YYYY-MM-DD)"`` (the day of ``as_of``,
        default now) and stays active; a new token is created under the original name in
        the same sub-account; ``deliver`` (an async callable) receives the new
        :class:`CreatedToken`, whose full value exists only there; the new token is read
        back active under the original name. Retire the old one after a grace period.

        A create whose answer is lost is found by name and deleted (its secret is
        unknowable), then made again: never two new tokens. When ``deliver`` raises, the
        new token is deleted and the old one gets its name back. Either way the old token
        stays active, and a rotation that cannot complete raises :class:`RotationError`
        (``.step``, ``.reason``, ``.restored``), which never holds the secret.
        """
        return await rotate_token(self, token_id, deliver=deliver, as_of=as_of)


# De-duplication key of a token walk: always an ApiToken, so no Mapping check per item.
_token_id: Callable[[ApiToken], str] = operator.attrgetter("id")


# Where a token sits in a newest-first listing: by ``createdAt`` (ties, which the sandbox
# breaks by id, are let through). attrgetter runs in C: it is called for every token.
_token_rank: Callable[[ApiToken], Any] = operator.attrgetter("created_at")


_SUB_ACCOUNT_PREFIX: Final = f"{TOKENS_PATH}/sub-account/"
_LISTING_PARAMS: Final = frozenset({"subAccountId", "status", "search", "limit"})
# C0 controls, DEL and C1 controls: no sub-account id holds one. (Filters are query
# values, percent-encoded whatever they hold.)
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _shown(text: str) -> str:
    """``text`` for an error message: quoted, control characters escaped, cut short."""
    return repr(text) if len(text) <= 80 else f"{text[:80]!r}..."


def _check_checkpoint_text(value: str, what: str) -> None:
    if _CONTROL.search(value):
        raise ValueError(f"checkpoint's {what} holds a control character: {_shown(value)}")


def _listing(sub_account_id: str | None) -> tuple[str, str]:
    """``(operation, path)`` of a token listing (seed 000): the whole list (None), or one
    sub-account's (its id checked and encoded as one segment)."""
    if sub_account_id is None:
        return "tokens.list", TOKENS_PATH
    return "tokens.list_for_sub_account", proto.sub_account_tokens_path(sub_account_id)


def _listing_sub_account(path: str) -> str | None:
    """The sub-account id of a checkpoint's listing path (None: the whole token list).

    Only the two listing paths of seed 000 are accepted, and the id is percent-decoded
    to be encoded again as one segment by :func:`sub_account_tokens_path`.
    """
    if path == TOKENS_PATH:
        return None
    if not path.startswith(_SUB_ACCOUNT_PREFIX):
        raise ValueError(f"checkpoint is for {_shown(path)}, not a token listing")
    encoded = path[len(_SUB_ACCOUNT_PREFIX) :]
    if "/" in encoded or "?" in encoded or "#" in encoded:
        raise ValueError(f"checkpoint is for {_shown(path)}, not a token listing")
    try:
        sub_account = unquote(encoded, errors="strict")
    except UnicodeDecodeError:
        raise ValueError(
            f"checkpoint's sub-account id is not percent-encoded UTF-8: {_shown(encoded)}"
        ) from None
    _check_checkpoint_text(sub_account, "sub-account id")
    if not sub_account.strip():
        raise ValueError("checkpoint's sub-account id is empty")
    if not sub_account.strip("."):
        raise ValueError(f"checkpoint's sub-account id is a dot segment: {_shown(sub_account)}")
    return sub_account


async def _ignore(envelope: dict[str, Any]) -> None:
    return None


def _deleted(response: Response, answer_lost: bool) -> bool:
    return proto.delete_done(response.status, response.body, answer_lost=answer_lost)
