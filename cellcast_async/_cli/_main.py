"""The ``cellcast-tokens`` group, and the one place every command is registered.

The arrows point one way: ``cellcast_async.cli`` imports this module, this module imports
the commands, and the commands import the bottom (``_context``, ``_options``,
``_errors``) and what they render with; no command imports the group (README "Design").
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Final, TextIO

import click

from .._version import __version__
from ._audit import audit_command
from ._commands import create_command, delete_command, get_command, list_command, update_command
from ._context import Settings
from ._diff import diff_command
from ._errors import invoke
from ._options import global_options
from ._remediate import apply_command, plan_group, show_command, undo_command
from ._rotate import rotate_command
from ._sandbox import sandbox_command

__all__ = ["CONTEXT_SETTINGS", "cli", "run"]

CONTEXT_SETTINGS: Final = {
    "help_option_names": ["-h", "--help"],
    "show_default": True,
    "max_content_width": 100,
}


@click.group(
    context_settings=CONTEXT_SETTINGS,
    epilog="Exit codes: 0 ok, 1 API or network error, 2 usage error "
    "(diff: 0 no change, 1 changes).",
)
@click.version_option(
    __version__, "--version", prog_name="cellcast-tokens", message="%(prog)s %(version)s"
)
@global_options()
def cli() -> None:
    """Manage and audit Cellcast sub-client API tokens.

    Try it without an account: cellcast-tokens --sandbox audit
    """


for _command in (
    list_command,
    get_command,
    create_command,
    update_command,
    delete_command,
    rotate_command,
    audit_command,
    diff_command,
    plan_group,
    show_command,
    apply_command,
    undo_command,
    sandbox_command,
):
    cli.add_command(_command)


def run(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> int:
    """Parse ``argv`` and run the command; returns the exit code."""
    args = list(argv) if argv is not None else sys.argv[1:]
    settings = Settings(out=out, err=err, argv=tuple(args))
    return invoke(cli, args, settings, prog_name="cellcast-tokens")
