"""``audit``: walk every token, write one record each, and report what needs action.

The command only reads its options; the walk is :mod:`._audit_run`'s, the report
:mod:`._audit_report`'s and its drawing :mod:`._audit_render`'s, the ``--html`` page
:mod:`._audit_html`'s (README "Command line").
"""

from __future__ import annotations

from typing import Any

import click

from ._audit_run import AuditOptions, check_html, infer_format, run_audit
from ._context import CliUsageError, Connection, Settings
from ._errors import run_async, usage_error
from ._options import DAYS, Timestamp, global_options, listing_options

__all__ = ["audit_command"]


@click.command("audit")
@listing_options
@click.option(
    "--format",
    "record_format",
    type=click.Choice(["csv", "jsonl", "ocsf"]),
    help=(
        "Write one record per token in this format (to stdout unless --output); ocsf: OCSF"
        " Compliance Findings instead, one per token per rule.  [default: from --output's"
        " extension (.csv, .jsonl, .ocsf.jsonl), else csv]"
    ),
)
@click.option(
    "--output",
    metavar="FILE",
    help="Write the records to FILE ('-' = stdout; the report then goes to stderr).",
)
@click.option(
    "--stale-days",
    type=DAYS,
    default=365,
    metavar="N",
    help="A token older than this is stale.",
)
@click.option(
    "--as-of",
    type=Timestamp(),
    help="Judge ages as of this time.  [default: now; the demo's own time with --sandbox]",
)
@click.option(
    "--html",
    metavar="FILE",
    help=(
        "Also write the report as one self-contained HTML page with charts and every row"
        ' (needs the report extra: pip install "cellcast-async[report]").'
    ),
)
@click.option("--verbose", "-v", is_flag=True, help="Also list names used in several sub-accounts.")
@click.option(
    "--checkpoint",
    metavar="FILE",
    help=(
        "Save progress to FILE after every page; when FILE exists, resume from it and append"
        " to --output (which it needs). Removed once the audit finishes."
    ),
)
@global_options()
@click.pass_obj
def audit_command(settings: Settings, /, **params: Any) -> int:
    """Walk every token and report what needs action.

    The report names the stale and the inactive tokens (the 20 oldest of each on screen,
    all of them with --json), splits statuses per sub-account and warns about a name used
    twice in one sub-account. Progress goes to stderr.
    """
    try:
        params["record_format"] = infer_format(params["output"], params["record_format"])
        options = AuditOptions(**params)
        check_html(options)  # before the walk: nothing is sent for a page it cannot write
    except CliUsageError as exc:
        return usage_error(settings, str(exc))

    async def work(conn: Connection) -> int:
        return await run_audit(conn, options, settings)

    return run_async(settings, work)
