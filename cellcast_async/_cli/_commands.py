"""``list``, ``get``, ``create``, ``update`` and ``delete``: one endpoint each (seeds 000-003)."""

from __future__ import annotations

import sys
from typing import Final, Literal

import click

from .._models import ApiToken, CreatedToken
from .._pager import Pager
from ._context import EXIT_API, EXIT_OK, Connection, Settings
from ._errors import run_async, usage_error
from ._options import COUNT, STATUS, global_options, listing_options
from ._output import (
    PIPED_WIDTH,
    column_widths,
    console_for,
    dump_json,
    shown,
    token_columns,
    token_rows,
    token_table,
    token_view,
)

__all__ = [
    "WARNING",
    "create_command",
    "delete_command",
    "get_command",
    "list_command",
    "update_command",
]


def _show(settings: Settings, tokens: list[ApiToken]) -> None:
    console = console_for(settings.out)
    console.print(token_table(tokens, token_columns(console.width)))


async def _stream_table(settings: Settings, pager: Pager[ApiToken]) -> int:
    """The listing as a table, a page at a time as pages arrive (20,000 tokens show from
    the first page on, not after the last); every page keeps the first one's columns."""
    console = console_for(settings.out)
    columns = token_columns(console.width)
    # Piped: each column at least the first page's width, wider for a longer cell (no
    # row ever wraps). On a terminal: the first page's widths, fitted to it, for all pages.
    fixed = console.width < PIPED_WIDTH
    widths: list[int] = []
    count = 0
    async for page in pager.pages():
        if not page.items:
            continue
        if not widths:
            widths = column_widths(columns, token_rows(page.items, columns), console.width)
        table = token_table(page.items, columns, widths=widths, fixed=fixed, show_header=count == 0)
        console.print(table)
        settings.out.flush()
        count += len(page.items)
    if count == 0:
        console.print(token_table([], columns))  # the headers say what was looked for
    settings.out.write(f"{count:,} token(s)\n")
    return EXIT_OK


@click.command("list")
@listing_options
@click.option("--search", help="Only tokens whose name contains this (any case).")
@click.option("--max-items", type=COUNT, metavar="N", help="Stop after this many tokens.")
@click.option(
    "--jsonl",
    is_flag=True,
    help="With --json: JSON Lines, one object per token, instead of one JSON array.",
)
@global_options()
@click.pass_obj
def list_command(
    settings: Settings,
    sub_account: str | None,
    status: str | None,
    page_size: int,
    concurrency: int | Literal["auto"],
    search: str | None,
    max_items: int | None,
    jsonl: bool,
) -> int:
    """List tokens, newest first: a table, or with --json one JSON array."""

    async def work(conn: Connection) -> int:
        pager = conn.cc.tokens.list(
            sub_account_id=sub_account,
            status=status,
            search=search,
            limit=page_size,
            concurrency=concurrency,
            max_items=max_items,
        )
        if jsonl:
            # JSON Lines stream as pages arrive: memory stays flat on a long listing.
            async for token in pager:
                dump_json(token_view(token), settings.out)
            return EXIT_OK
        if not settings.json:
            return await _stream_table(settings, pager)
        dump_json([token_view(t) for t in await pager.collect()], settings.out)
        return EXIT_OK

    return run_async(settings, work)


@click.command("get")
@click.argument("token_id", metavar="TOKEN_ID")
@global_options()
@click.pass_obj
def get_command(settings: Settings, token_id: str) -> int:
    """Show one token, its value masked."""

    async def work(conn: Connection) -> int:
        _print_one(settings, await conn.cc.tokens.get(token_id))
        return EXIT_OK

    return run_async(settings, work)


def _print_one(settings: Settings, token: ApiToken) -> None:
    if settings.json:
        dump_json(token_view(token), settings.out)
    else:
        _show(settings, [token])


WARNING: Final = "warning: this is the only time the full token is shown; store it securely now.\n"


@click.command("create")
@click.option("--name", required=True, help="The new token's name (unique in its sub-account).")
@click.option(
    "--sub-account",
    required=True,
    metavar="ID",
    help="The sub-account to create it in (with --sandbox, 'demo' means the first one).",
)
@global_options()
@click.pass_obj
def create_command(settings: Settings, name: str, sub_account: str) -> int:
    """Create a token and print its full value, once."""

    async def work(conn: Connection) -> int:
        target = sub_account
        if conn.sandbox is not None and sub_account == "demo":
            target = conn.sandbox.sub_account_ids[0]
        created: CreatedToken = await conn.cc.tokens.create(name=name, sub_account_id=target)
        secret = created.token.reveal()
        # The one place a full token is ever printed (seed 001: it is returned only once).
        settings.err.write(WARNING)
        if settings.json:
            view = token_view(created)
            view["token"] = secret
            dump_json(view, settings.out)
        else:
            # Server text is escaped (shown(); repr() escapes the name alike).
            settings.out.write(
                f"Created token {shown(created.id)} ({created.name!r})"
                f" for {shown(created.sub_account_id)}\n"
            )
            settings.out.write(f"token: {secret}\n")
        return EXIT_OK

    return run_async(settings, work)


@click.command("update")
@click.argument("token_id", metavar="TOKEN_ID")
@click.option("--name", help="A new name.")
@click.option("--status", type=STATUS, help="A new status.")
@global_options()
@click.pass_obj
def update_command(settings: Settings, token_id: str, name: str | None, status: str | None) -> int:
    """Rename a token or set its status (at least one of --name, --status)."""

    if name is None and status is None:
        # Said in the CLI's words, before a session or request exists.
        return usage_error(settings, "update needs at least one of --name or --status")

    async def work(conn: Connection) -> int:
        _print_one(settings, await conn.cc.tokens.update(token_id, name=name, status=status))
        return EXIT_OK

    return run_async(settings, work)


def _interactive(settings: Settings) -> bool:
    """A person at a terminal can answer: stdin and the run's stderr are terminals."""
    try:
        return sys.stdin is not None and sys.stdin.isatty() and settings.err.isatty()
    except (AttributeError, ValueError):
        return False


def _confirmed(settings: Settings, token_id: str) -> bool:
    """Ask on the terminal; only "y" or "yes" deletes (Enter, EOF or anything else: no)."""
    settings.err.write(f"Delete token {shown(token_id)} for good? [y/N] ")
    settings.err.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


@click.command("delete")
@click.argument("token_id", metavar="TOKEN_ID")
@click.option("--yes", "-y", is_flag=True, help="Do not ask (needed when not run on a terminal).")
@global_options()
@click.pass_obj
def delete_command(settings: Settings, token_id: str, yes: bool) -> int:
    """Delete a token for good: asks first on a terminal, needs --yes elsewhere."""

    if not yes:
        if not _interactive(settings):
            return usage_error(
                settings, "delete needs --yes when not run on a terminal (nothing was deleted)"
            )
        if not _confirmed(settings, token_id):
            settings.err.write("Not deleted.\n")
            return EXIT_API

    async def work(conn: Connection) -> int:
        await conn.cc.tokens.delete(token_id)
        if settings.json:
            dump_json({"id": token_id, "deleted": True}, settings.out)
        else:
            settings.out.write(f"Deleted token {shown(token_id)}\n")
        return EXIT_OK

    return run_async(settings, work)
