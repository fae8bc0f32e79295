"""Progress of a walk on stderr: a rich bar on a terminal, plain lines otherwise, or nothing.

All three share one small interface so the audit does not care which it has:
``advance(done, total)`` after each page, ``status(text)`` for a state worth showing
beside the count (a pause for a 429 once the rate governor reports one; README
"Command line"), and use as a context manager that closes the display.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ._output import shown

__all__ = ["PlainProgress", "Reporter", "RichProgress", "make_reporter"]


class Reporter:
    """The interface, and the reporter that shows nothing (``--quiet``)."""

    def advance(self, done: int, total: int | None) -> None:
        """``done`` items so far of ``total`` (None until the first page has said)."""

    def status(self, text: str | None) -> None:
        """A state shown beside the count until replaced; None clears it."""

    def close(self) -> None:
        """The walk is over (or failed): finish the display."""

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _rate(done: int, elapsed: float) -> str:
    return f"{done / elapsed:,.0f}/s" if elapsed > 0 else "-/s"


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class PlainProgress(Reporter):
    """One line every ``interval`` seconds and one at the end, for logs and pipes."""

    def __init__(
        self,
        stream: TextIO,
        *,
        label: str = "audit",
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._label = label
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._last_line: float | None = None
        self._done = 0
        self._total: int | None = None
        self._status: str | None = None
        self._printed: tuple[int, int | None] | None = None

    def advance(self, done: int, total: int | None) -> None:
        self._done, self._total = done, total
        now = self._clock()
        if self._last_line is None or now - self._last_line >= self._interval:
            self._line(now)

    def status(self, text: str | None) -> None:
        self._status = text
        if text:
            self._line(self._clock())

    def close(self) -> None:
        # The closing line, unless the last one already said exactly this or the walk
        # failed before its first page (the error line says enough).
        if self._last_line is not None and self._printed != (self._done, self._total):
            self._line(self._clock())

    def _line(self, now: float) -> None:
        self._last_line = now
        self._printed = (self._done, self._total)
        elapsed = now - self._started
        count = f"{self._done:,}" if self._total is None else f"{self._done:,}/{self._total:,}"
        line = f"{self._label}: {count} tokens, {_rate(self._done, elapsed)}"
        line += f", {_clock(elapsed)} elapsed"
        if self._status:
            line += f" ({self._status})"
        self._stream.write(shown(line) + "\n")
        self._stream.flush()


class _RateColumn(ProgressColumn):
    """Items per second over the whole walk (rich's own speed column is for bytes)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        return Text(_rate(int(task.completed), elapsed), style="progress.data.speed")


class _CountColumn(ProgressColumn):
    """``12,300/300,000`` with thousands separators; just the count while the total is unknown."""

    def render(self, task: Task) -> Text:
        done = int(task.completed)
        if task.total is None:
            return Text(f"{done:,} tokens", style="progress.download")
        return Text(f"{done:,}/{int(task.total):,} tokens", style="progress.download")


class RichProgress(Reporter):
    """rich's live progress bar: count, rate, elapsed, ETA and the status text."""

    def __init__(self, console: Console, *, label: str = "audit") -> None:
        self._progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            _CountColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            # The status is data: formatted into the column, never parsed as markup.
            TextColumn("{task.fields[status]}", style="yellow", markup=False),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task(shown(label), total=None, status="")
        self._progress.start()

    def advance(self, done: int, total: int | None) -> None:
        self._progress.update(self._task, completed=done, total=total)

    def status(self, text: str | None) -> None:
        self._progress.update(self._task, status=shown(text or ""))

    def close(self) -> None:
        self._progress.stop()


def make_reporter(stream: TextIO, *, quiet: bool, label: str = "audit") -> Reporter:
    """Nothing with ``--quiet``, a bar on a terminal, plain lines elsewhere."""
    if quiet:
        return Reporter()
    console = Console(file=stream, highlight=False)
    if console.is_terminal:
        return RichProgress(console, label=label)
    return PlainProgress(stream, label=label)
