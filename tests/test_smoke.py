"""The package imports and exposes the public contract (README, "Using the SDK")."""

from __future__ import annotations

import cellcast_async

# The public contract: users and the acceptance checks import exactly these.
CONTRACT = [
    *("CellcastSession", "Pager", "Page", "ApiToken", "CreatedToken", "SubAccount"),
    *("TokenStatus", "Secret", "CellcastError", "APIError", "BadRequestError"),
    *("AuthenticationError", "PermissionDeniedError", "NotFoundError", "RateLimitError"),
    *("ServerError", "TransportError", "TimeoutError", "DecodeError", "ResponseEvent"),
]


def test_every_contract_name_is_exported() -> None:
    """Every name the contract promises is importable and listed in __all__."""
    for name in CONTRACT:
        assert hasattr(cellcast_async, name), name
        assert name in cellcast_async.__all__, name
