"""Where the command line writes: rich consoles on the run's streams, tables, JSON, records.

Every writer here takes the run's own streams (``main(stdout=, stderr=)``), never
``sys.stdout`` directly, so a run is testable and embeddable.

Text from outside (a token's name or id, a sub-account's name, a server's error message,
a file's records) is data, never markup or a terminal control (README "Command line",
"What the command line prints"): it reaches rich only as :func:`data` (a ``Text``, which
rich never parses), through :class:`DataTable`, or as :func:`shown` on a plain stream;
:func:`dump_json` escapes the same characters in JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import IO, Any, Final, TextIO

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .._models import ApiToken

__all__ = [
    "MAX_CELL",
    "PIPED_WIDTH",
    "TOKEN_HEADERS",
    "DataTable",
    "cell_text",
    "column_widths",
    "console_for",
    "data",
    "dump_json",
    "json_text",
    "make_table",
    "plural",
    "shown",
    "shown_lines",
    "silence_stdout",
    "token_rows",
    "token_columns",
    "token_table",
    "token_view",
]


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def shown(value: object) -> str:
    """``value`` as a person may read it on a terminal: every character Python's
    ``str.isprintable()`` rejects is written as its escape, as ``repr()`` would.

    That covers C0 and C1 controls with ESC (so no CSI, OSC 52 or OSC 8 sequence), BEL
    and DEL, newlines and tabs (a name cannot forge a table row), bidi overrides and
    isolates (U+202A-U+202E, U+2066-U+2069) and every other format character, U+2028 and
    U+2029, spaces other than the plain one, lone surrogates, private-use and unassigned
    code points. Backslashes are left as they are (README "What the command line prints").
    """
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # the usual case, in C
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def shown_lines(text: str) -> str:
    """Several lines (a traceback, a log record): each line :func:`shown`, the newlines kept."""
    return "\n".join(shown(line) for line in text.split("\n"))


MAX_CELL: Final = 200
"""The most characters of one server text a table cell shows (terminal and HTML report);
then "… (N more characters)". Records and ``--json`` hold the exact values."""


def cell_text(value: object) -> str:
    """``value`` for a table cell: :func:`shown`, cut at :data:`MAX_CELL` characters."""
    seen = shown(value)
    if len(seen) > MAX_CELL:
        return f"{seen[:MAX_CELL]}\u2026 ({len(seen) - MAX_CELL:,} more characters)"
    return seen


def data(value: object, style: str = "") -> Text:
    """Outside text for rich: escaped (:func:`shown`) and never parsed as markup or emoji."""
    return Text(shown(value), style=style)


class DataTable(Table):
    """A rich table whose string cells are data (:func:`data`), never markup, each cut at
    :data:`MAX_CELL` characters (:func:`cell_text`)."""

    def add_row(
        self,
        *renderables: Any,
        style: Any = None,
        end_section: bool = False,
    ) -> None:
        cells = [Text(cell_text(cell)) if isinstance(cell, str) else cell for cell in renderables]
        super().add_row(*cells, style=style, end_section=end_section)


class _Console(Console):
    """rich's console, but a closed pipe is the CLI's to handle: rich's own handling
    exits with 1 (``audit | head -3``), where the CLI ends quietly with 0."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


PIPED_WIDTH: Final = 100_000
"""Off a terminal (and no ``$COLUMNS``): wide enough that no row ever wraps, so
``list | grep`` sees one row a line."""


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def console_for(stream: TextIO) -> Console:
    """A rich console on ``stream``: colour and the terminal's width on a terminal.

    Off a terminal: ``$COLUMNS`` if set, else no width limit (one row a line) and no
    colour; ``NO_COLOR`` is honoured. ``highlight=False``: numbers and ids keep the colour
    we give them, or none.
    """
    width = None if _is_terminal(stream) or os.environ.get("COLUMNS") else PIPED_WIDTH
    return _Console(file=stream, highlight=False, soft_wrap=True, width=width)


_NUMERIC = frozenset({"TOKENS", "ACTIVE", "INACTIVE", "TOTAL", "AGE", "COUNT"})
# Ids and dates are copied and pasted: rich wraps the names to fit, never these.
_WHOLE = frozenset({"ID", "CREATED", "TOKEN", "STATUS", "CHANGE"}) | _NUMERIC


def make_table(
    *headers: str,
    title: str | None = None,
    whole: Iterable[str] = (),
    widths: Sequence[int] = (),
    fixed: bool = False,
    show_header: bool = True,
) -> DataTable:
    """A compact table that rich fits to the console's width by wrapping the text columns.

    ``whole``: more headers whose cells are never wrapped (``SUB-ACCOUNT`` when it holds ids).
    ``widths``: each column's least width, or with ``fixed`` its width (a listing printed
    page by page keeps the first page's columns). Its string cells are data
    (:class:`DataTable`).
    """
    keep = _WHOLE | set(whole)
    table = DataTable(
        box=box.SIMPLE_HEAD,
        title=title,
        title_justify="left",
        title_style="bold",
        pad_edge=False,
        show_edge=False,
        collapse_padding=True,
        show_header=show_header,
    )
    for at, header in enumerate(headers):
        table.add_column(
            data(header),  # a header may be a status the server sent
            justify="right" if header in _NUMERIC else "left",
            no_wrap=header in keep,
            overflow="fold",
            min_width=widths[at] if at < len(widths) and not fixed else None,
            width=widths[at] if at < len(widths) and fixed else None,
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

# The least width each column of a token table needs (ids and dates whole, names at
# least this much before they wrap), and the order columns are dropped in on a narrow
# terminal: the masked token first, the columns that identify a token (ID, NAME,
# SUB-ACCOUNT) never.
_LEAST_WIDTH: Final = {
    "ID": 24,
    "NAME": 14,
    "STATUS": 8,
    "SUB-ACCOUNT": 12,
    "CREATED": 10,
    "TOKEN": 8,
}
_DROPPED_FIRST: Final = ("TOKEN", "CREATED", "STATUS")


def token_columns(width: int) -> tuple[str, ...]:
    """The token table's columns that fit ``width`` characters (two between columns)."""
    columns = list(TOKEN_HEADERS)
    for header in _DROPPED_FIRST:
        if sum(_LEAST_WIDTH[c] for c in columns) + 2 * (len(columns) - 1) <= width:
            break
        columns.remove(header)
    return tuple(columns)


def _sub_account(token: ApiToken) -> str:
    # The name reads better and fits a terminal; the id when the answer carried no name
    # (create's answer, seed 001). --json always has both.
    sub = token.sub_account
    return (sub.name if sub is not None and sub.name else None) or token.sub_account_id or ""


def token_rows(
    tokens: Iterable[ApiToken], columns: Sequence[str] = TOKEN_HEADERS
) -> list[list[str]]:
    def cells(t: ApiToken) -> dict[str, str]:
        return {
            "ID": t.id,
            "NAME": t.name,
            "STATUS": str(t.status),
            "SUB-ACCOUNT": _sub_account(t),
            "CREATED": t.created_at.strftime("%Y-%m-%d"),
            "TOKEN": t.token.masked,
        }

    return [[row[c] for c in columns] for row in map(cells, tokens)]


def token_table(
    tokens: Sequence[ApiToken],
    columns: Sequence[str] = TOKEN_HEADERS,
    *,
    widths: Sequence[int] = (),
    fixed: bool = False,
    show_header: bool = True,
) -> DataTable:
    table = make_table(*columns, widths=widths, fixed=fixed, show_header=show_header)
    for row in token_rows(tokens, columns):
        table.add_row(*row)
    return table


def column_widths(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> list[int]:
    """Each column's width as its header and these rows (shown) need it, the names'
    columns narrowed (not below their least width) until the table fits ``width``."""
    widths = [
        max([cell_len(header), *(cell_len(cell_text(row[at])) for row in rows)])
        for at, header in enumerate(headers)
    ]
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    for at in sorted(range(len(headers)), key=lambda i: -widths[i]):
        if excess <= 0:
            break
        if headers[at] in _WHOLE:
            continue
        cut = min(excess, widths[at] - _LEAST_WIDTH.get(headers[at], 10))
        if cut > 0:
            widths[at] -= cut
            excess -= cut
    return widths


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``noun`` for 1, ``nouns`` (default ``noun + "s"``) otherwise: "1 retry", "2 retries"."""
    return noun if count == 1 else (nouns or noun + "s")


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON spells a code point past U+FFFF
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


_ONE_LINE: Final = json.JSONEncoder(ensure_ascii=False)


def json_text(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON, readable UTF-8, with every character :func:`shown` escapes
    written as a ``\\u`` escape (U+2028, U+202E, U+0085 and the other C1 controls, DEL,
    lone surrogates...): still valid JSON that decodes to the same value, and safe on a
    terminal or in a JavaScript string."""
    # One encoder for the one-line case: json.dumps makes a new one per call when given
    # options, a cost a 100,000-record audit pays per record.
    text = (
        _ONE_LINE.encode(value)
        if indent is None
        else json.dumps(value, ensure_ascii=False, indent=indent)
    )
    if text.isprintable():
        return text
    # A raw newline is only ever the indentation's: json.dumps escapes those in strings.
    return "\n".join(
        line
        if line.isprintable()
        else "".join(char if char.isprintable() else _json_escape(char) for char in line)
        for line in text.split("\n")
    )


def dump_json(value: Any, stream: IO[str], *, indent: int | None = None) -> None:
    stream.write(json_text(value, indent=indent) + "\n")


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
