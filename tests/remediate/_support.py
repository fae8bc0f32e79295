"""Helpers of the plan/apply/undo tests: a sandbox with tokens of chosen ages, sessions,
plans made from a full listing, and applying a plan to the end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cellcast_async import (
    ApiToken,
    CellcastSession,
    Outcome,
    Plan,
    apply_plan,
    build_plan,
)
from cellcast_async.sandbox import Sandbox

FAST = 1000.0
"""A write rate that never slows a test down."""


def session(sb: Sandbox, key: str | None = None, **options: Any) -> CellcastSession:
    return CellcastSession(api_key=key or sb.api_key, base_url=sb.url, **options)


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    """An :func:`aged_sandbox`, serving."""
    async with aged_sandbox() as sandbox:
        yield sandbox


@pytest.fixture
async def cc(sb: Sandbox) -> AsyncIterator[CellcastSession]:
    """A session on ``sb`` with its key."""
    async with session(sb) as cc:
        yield cc


def aged_sandbox(**kwargs: Any) -> Sandbox:
    """A sandbox without demo tokens: 4 old active (400 days), 3 young active (10 days),
    2 old inactive (500 days), in its first sub-account."""
    sb = Sandbox(tokens=0, sub_accounts=2, **kwargs)
    sub = sb.sub_account_ids[0]
    sb.add_tokens(4, sub, "active", age_days=400)
    sb.add_tokens(3, sub, "active", age_days=10)
    sb.add_tokens(2, sub, "inactive", age_days=500)
    return sb


async def tokens_of(cc: CellcastSession) -> list[ApiToken]:
    return await cc.tokens.list(limit=100).collect()


async def deactivate_plan(cc: CellcastSession, sb: Sandbox, **options: Any) -> Plan:
    return build_plan(
        await tokens_of(cc),
        action="deactivate",
        stale_days=365,
        as_of=sb.reference_time,
        account=cc,
        **options,
    )


async def run_all(cc: CellcastSession, plan: Plan, journal: Path, **options: Any) -> list[Outcome]:
    options.setdefault("write_rate", FAST)
    return [o async for o in apply_plan(cc, plan, journal_path=journal, **options)]


async def collect(outcomes: AsyncIterator[Outcome]) -> list[Outcome]:
    return [o async for o in outcomes]


def later(sb: Sandbox, days: int) -> Any:
    return sb.reference_time + timedelta(days=days)
