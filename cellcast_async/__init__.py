"""cellcast_async: the async-first Python SDK for Cellcast's sub-client API tokens.

async with CellcastSession() as cc:          # $CELLCAST_API_KEY
    async for token in cc.tokens.list(status="active"):
        print(token.name, token.status, token.token)   # the token prints masked
"""

from ._converters import make_converter
from ._exceptions import (
    APIError,
    AuthenticationError,
    BadRequestError,
    CellcastError,
    DecodeError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TimeoutError,
    TransportError,
    TransportErrorKind,
)
from ._governor import GovernorReason, GovernorState
from ._journal import Journal, JournalRecord
from ._models import ApiToken, CreatedToken, Secret, SubAccount, TokenStatus
from ._pager import Page, Pager, RawPage, cellcast_page_format, meta_pagination_page_format
from ._pipeline import RequestEvent, ResponseEvent
from ._plan import Plan, PlanError, PlanItem, build_plan
from ._remediate import DEFAULT_WRITE_BURST, DEFAULT_WRITE_RATE, Outcome, apply_plan, undo_plan
from ._rotate import RotationError, RotationResult, RotationStep
from ._rotate_plan import build_retire_plan, build_rotate_plan, finished_rotations
from ._session import CellcastSession
from ._tokens import TokensResource
from ._transport import Response as TransportResponse
from ._transport import Transport
from ._version import __version__
from ._walk import WalkStats

__all__ = [
    "APIError",
    "ApiToken",
    "AuthenticationError",
    "BadRequestError",
    "CellcastError",
    "CellcastSession",
    "CreatedToken",
    "DEFAULT_WRITE_BURST",
    "DEFAULT_WRITE_RATE",
    "DecodeError",
    "GovernorReason",
    "GovernorState",
    "Journal",
    "JournalRecord",
    "NotFoundError",
    "Outcome",
    "Page",
    "Pager",
    "PermissionDeniedError",
    "Plan",
    "PlanError",
    "PlanItem",
    "RateLimitError",
    "RawPage",
    "RequestEvent",
    "ResponseEvent",
    "RotationError",
    "RotationResult",
    "RotationStep",
    "Secret",
    "ServerError",
    "SubAccount",
    "TimeoutError",
    "TokenStatus",
    "TokensResource",
    "Transport",
    "TransportError",
    "TransportErrorKind",
    "TransportResponse",
    "WalkStats",
    "__version__",
    "apply_plan",
    "build_plan",
    "build_retire_plan",
    "build_rotate_plan",
    "cellcast_page_format",
    "finished_rotations",
    "make_converter",
    "meta_pagination_page_format",
    "undo_plan",
]
