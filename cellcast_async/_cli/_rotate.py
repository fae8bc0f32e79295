"""``rotate TOKEN_ID``: one token replaced by a new one, the secret to a sink (README
"Rotating tokens")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from .._rotate import RotationResult
from ._context import EXIT_OK, CliUsageError, Connection, Settings
from ._deliver import deliver_options, make_sink
from ._errors import run_async
from ._options import Timestamp, global_options
from ._output import dump_json, shown

__all__ = ["rotate_command", "rotation_view"]


def rotation_view(result: RotationResult) -> dict[str, Any]:
    """A finished rotation as ``--json`` prints it: ids and names, never the secret."""
    return {
        "old_id": result.old_token_id,
        "new_id": result.new_token_id,
        "name": result.name,
        "retiring_name": result.retiring_name,
        "sub_account_id": result.sub_account_id,
        "discarded": list(result.discarded),
    }


@click.command("rotate")
@click.argument("token_id", metavar="TOKEN_ID")
@deliver_options
@click.option(
    "--as-of",
    type=Timestamp(),
    metavar="TIME",
    help="The day the retiring name carries.",
    show_default="now",
)
@global_options()
@click.pass_obj
def rotate_command(
    settings: Settings,
    token_id: str,
    deliver_dir: str | None,
    deliver_cmd: str | None,
    deliver_timeout: float,
    as_of: datetime | None,
) -> int:
    """Replace a token by a new one under its name; the old one is renamed, still active.

    The new secret goes to --deliver-dir or --deliver-cmd only, once.
    """

    async def work(conn: Connection) -> int:
        sink = make_sink(deliver_dir, deliver_cmd, deliver_timeout)
        if sink is None:
            raise CliUsageError(
                "rotate needs --deliver-dir or --deliver-cmd: the new secret goes there only"
            )
        try:
            result = await conn.cc.tokens.rotate(token_id, deliver=sink, as_of=as_of)
        finally:
            sink.close()
        if settings.json:
            dump_json(rotation_view(result), settings.out)
        else:
            settings.out.write(
                f"Rotated {shown(result.old_token_id)} ({shown(repr(result.name))}): "
                f"new token {shown(result.new_token_id)}, secret delivered; the old one is "
                f"now {shown(repr(result.retiring_name))}, still active: deactivate it "
                "after a grace period.\n"
            )
        return EXIT_OK

    return run_async(settings, work)
