"""pytest plugin (entry point ``pytest11: cellcast_async``): sandbox fixtures for SDK users.

Fixtures:

- ``cellcast_sandbox``: a started :class:`~cellcast_async.sandbox.Sandbox` (seed 0, 60 tokens),
  one per test. Customise it with ``@pytest.mark.cellcast_sandbox(tokens=500, seed=3,
  faults=Faults(...))``; the marker's keyword arguments go straight to ``Sandbox(...)``.
- ``cellcast_session``: a ``CellcastSession`` pointed at that sandbox.

Every pytest run in an environment with this package imports this module, so it imports
nothing heavy at module level: the sandbox (and aiohttp) load when a fixture is first used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from cellcast_async.sandbox import Sandbox

__all__ = ["cellcast_sandbox", "cellcast_session"]

_MARKER = "cellcast_sandbox"
_DEFAULTS: dict[str, Any] = {"seed": 0, "tokens": 60}
_NEEDS_PYTEST_ASYNCIO = (
    "the cellcast_sandbox and cellcast_session fixtures are async and need pytest-asyncio: "
    "pip install pytest-asyncio (or pip install 'cellcast-async[test]')"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**kwargs): keyword arguments for the cellcast_sandbox fixture's Sandbox "
        "(seed, tokens, sub_accounts, faults, api_key).",
    )


def _sandbox_kwargs(request: pytest.FixtureRequest) -> dict[str, Any]:
    kwargs = dict(_DEFAULTS)
    marker = request.node.get_closest_marker(_MARKER)
    if marker is not None:
        if marker.args:
            raise pytest.UsageError(
                f"@pytest.mark.{_MARKER} takes keyword arguments only, e.g. tokens=500"
            )
        kwargs.update(marker.kwargs)
    return kwargs


def _fixtures() -> tuple[Any, Any]:
    """The two fixtures: async ones via pytest-asyncio, or ones that explain it is missing."""
    try:
        import pytest_asyncio
    except ImportError:

        @pytest.fixture(name="cellcast_sandbox")
        def missing_sandbox() -> Any:
            """A started sandbox (needs pytest-asyncio, which is not installed)."""
            pytest.fail(_NEEDS_PYTEST_ASYNCIO, pytrace=False)

        @pytest.fixture(name="cellcast_session")
        def missing_session() -> Any:
            """A CellcastSession on the sandbox (needs pytest-asyncio, not installed)."""
            pytest.fail(_NEEDS_PYTEST_ASYNCIO, pytrace=False)

        return missing_sandbox, missing_session

    @pytest_asyncio.fixture
    async def cellcast_sandbox(request: pytest.FixtureRequest) -> AsyncIterator[Sandbox]:
        """A started sandbox with demo data; see ``@pytest.mark.cellcast_sandbox``."""
        from cellcast_async.sandbox import Sandbox

        async with Sandbox(**_sandbox_kwargs(request)) as sb:
            yield sb

    @pytest_asyncio.fixture
    async def cellcast_session(cellcast_sandbox: Sandbox) -> AsyncIterator[Any]:
        """``CellcastSession(api_key=sb.api_key, base_url=sb.url)``, closed after the test."""
        # Imported only when used: the SDK core must not load for runs that never ask.
        from cellcast_async import CellcastSession

        async with CellcastSession(
            api_key=cellcast_sandbox.api_key, base_url=cellcast_sandbox.url
        ) as session:
            yield session

    return cellcast_sandbox, cellcast_session


cellcast_sandbox, cellcast_session = _fixtures()
