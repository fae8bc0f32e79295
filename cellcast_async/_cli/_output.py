"""Where the command line writes: rich consoles on the run's streams, tables, JSON, records.

Every writer here takes the run's own streams (``main(stdout=, stderr=)``), never
``sys.stdout`` directly, so a run is testable and embeddable.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, TextIO

from rich import box
from rich.console import Console
from rich.table import Table

from .._models import ApiToken

__all__ = [
    "console_for",
    "csv_cell",
    "dump_json",
    "make_table",
    "silence_stdout",
    "token_rows",
    "token_table",
    "token_view",
]


def console_for(stream: TextIO) -> Console:
    """A rich console on ``stream``: colour and the terminal's width on a terminal.

    Off a terminal rich uses ``$COLUMNS`` or 80 columns and no colour; ``NO_COLOR`` is
    honoured. ``highlight=False``: numbers and ids keep the colour we give them, or none.
    """
    return Console(file=stream, highlight=False, soft_wrap=True)


_NUMERIC = frozenset({"TOKENS", "ACTIVE", "INACTIVE", "TOTAL", "AGE", "COUNT"})
# Ids and dates are copied and pasted: rich wraps the names to fit, never these.
_WHOLE = frozenset({"ID", "CREATED", "TOKEN", "STATUS", "CHANGE"}) | _NUMERIC


def make_table(*headers: str, title: str | None = None, whole: Iterable[str] = ()) -> Table:
    """A compact table that rich fits to the console's width by wrapping the text columns.

    ``whole``: more headers whose cells are never wrapped (``SUB-ACCOUNT`` when it holds ids).
    """
    keep = _WHOLE | set(whole)
    table = Table(
        box=box.SIMPLE_HEAD,
        title=title,
        title_justify="left",
        title_style="bold",
        pad_edge=False,
        show_edge=False,
        collapse_padding=True,
    )
    for header in headers:
        table.add_column(
            header,
            justify="right" if header in _NUMERIC else "left",
            no_wrap=header in keep,
            overflow="fold",
        )
    return table


def token_view(token: ApiToken) -> dict[str, Any]:
    """A token as ``--json`` prints it, its value masked (``create`` adds the secret itself)."""
    sub = token.sub_account
    return {
        "id": token.id,
        "name": token.name,
        "status": str(token.status),
        "created_at": token.created_at.isoformat(),
        "sub_account_id": token.sub_account_id,
        "sub_account": (
            {
                "id": sub.id,
                "name": sub.name,
                "email": sub.email,
                "company_name": sub.company_name,
            }
            if sub is not None
            else None
        ),
        "token": token.token.masked,
    }


TOKEN_HEADERS = ("ID", "NAME", "STATUS", "SUB-ACCOUNT", "CREATED", "TOKEN")


def _sub_account(token: ApiToken) -> str:
    # The name reads better and fits a terminal; the id when the answer carried no name
    # (create's answer, seed 001). --json always has both.
    sub = token.sub_account
    return (sub.name if sub is not None and sub.name else None) or token.sub_account_id or ""


def token_rows(tokens: Iterable[ApiToken]) -> list[list[str]]:
    return [
        [
            t.id,
            t.name,
            str(t.status),
            _sub_account(t),
            t.created_at.strftime("%Y-%m-%d"),
            t.token.masked,
        ]
        for t in tokens
    ]


def token_table(tokens: Sequence[ApiToken]) -> Table:
    table = make_table(*TOKEN_HEADERS)
    for row in token_rows(tokens):
        table.add_row(*row)
    return table


def dump_json(value: Any, stream: IO[str], *, indent: int | None = None) -> None:
    stream.write(json.dumps(value, ensure_ascii=False, indent=indent) + "\n")


def csv_cell(value: Any) -> Any:
    """CSV cells as other tools read them: booleans ``true``/``false``, not Python's."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def csv_writer(stream: IO[str], fields: Sequence[str], *, header: bool = True) -> Any:
    """A writer of one dict per row with ``true``/``false`` booleans."""
    writer = csv.DictWriter(stream, fieldnames=list(fields))
    if header:
        writer.writeheader()

    def write(record: Mapping[str, Any]) -> None:
        writer.writerow({key: csv_cell(value) for key, value in record.items()})

    return write


def silence_stdout(stream: TextIO) -> None:
    """After a broken pipe: point the stream's descriptor at /dev/null.

    Python flushes stdout once more at exit; on a closed pipe that flush fails again and
    prints "Exception ignored ...". The recipe from the ``signal`` module's documentation
    ("Note on SIGPIPE") swaps the descriptor so the last flush goes nowhere.
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (tests pass a StringIO): nothing will flush at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
