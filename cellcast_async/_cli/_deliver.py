"""Where a rotation's new secret goes, and nowhere else (README "Rotating tokens").

- ``--deliver-dir DIR``: one file per token, ``<name>.<id>.token``, created exclusively with
  mode 0600 and never overwritten. It is written under a hidden partial name first
  (``O_CREAT | O_EXCL | O_NOFOLLOW``, fsynced), then hard-linked to its final name (which
  fails rather than replace anything, and never follows a symlink), so a file under a
  final name is always whole: a restart tells a delivered token by it.
- ``--deliver-cmd "COMMAND"``: the command, split as a shell would split words
  (``shlex``) but run without a shell, receives the secret on its standard input (the
  value alone, no newline) and the token's id, name and sub-account in
  ``CELLCAST_TOKEN_ID``, ``CELLCAST_TOKEN_NAME`` and ``CELLCAST_SUB_ACCOUNT_ID``. It
  counts only when it exits 0 within ``--deliver-timeout``. Its output is discarded (it
  could echo the secret), and it never sees this run's ``CELLCAST_*`` settings, the API
  key among them.

Only the sink sees the secret: a failure names the file or the exit status, never the value.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import stat
import unicodedata
from typing import Final, Protocol

import click

from .._models import CreatedToken
from ._context import CliUsageError
from ._options import POSITIVE, option_group

__all__ = [
    "DEFAULT_DELIVER_TIMEOUT",
    "CommandSink",
    "DeliveryError",
    "DirectorySink",
    "Sink",
    "deliver_options",
    "file_name",
    "make_sink",
    "safe_part",
]


DEFAULT_DELIVER_TIMEOUT: Final = 60.0
# A file name's parts, in UTF-8 bytes: well under the 255 most file systems allow.
_NAME_BYTES: Final = 120
_ID_BYTES: Final = 64
_SUFFIX: Final = ".token"
_PARTIAL_PREFIX: Final = ".cellcast-partial-"
_KEPT: Final = frozenset("-_.()#+@")


class DeliveryError(Exception):
    """A sink could not take the secret; the message never holds it."""


class Sink(Protocol):
    """An async callable taking the new token, and whether it already holds a token's
    secret (None: it cannot tell)."""

    async def __call__(self, token: CreatedToken) -> None: ...

    def delivered(self, token_id: str, name: str) -> bool | None: ...

    def close(self) -> None: ...


def safe_part(text: str, limit: int) -> str:
    """``text`` as part of a file name a person can read: letters, digits and ``-_.()#+@``
    kept, anything else (path separators, control and format characters, spaces) made
    ``_``, no leading dot, at most ``limit`` UTF-8 bytes."""
    kept = "".join(
        char if (char.isalnum() and unicodedata.category(char)[0] in "LN") or char in _KEPT else "_"
        for char in text
    )
    while "__" in kept:
        kept = kept.replace("__", "_")
    kept = kept.lstrip(".")
    encoded = kept.encode("utf-8")
    if len(encoded) > limit:
        kept = encoded[:limit].decode("utf-8", "ignore")
    return kept or "_"


def file_name(token_id: str, name: str) -> str:
    """The file a token's secret is delivered to: ``<name>.<id>.token``, both sanitised."""
    return f"{safe_part(name, _NAME_BYTES)}.{safe_part(token_id, _ID_BYTES)}{_SUFFIX}"


def _partial_name(token_id: str) -> str:
    return f"{_PARTIAL_PREFIX}{safe_part(token_id, _ID_BYTES)}"


class DirectorySink:
    """``--deliver-dir``: one 0600 file per token, never overwritten (module docstring)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            self._fd = os.open(directory, flags)
        except OSError as exc:
            raise CliUsageError(
                f"--deliver-dir {directory!r} is not a usable folder "
                f"(a symlink, missing or not a folder): {exc.strerror}"
            ) from None
        self._swept = False
        try:
            self._check()
        except BaseException:
            os.close(self._fd)
            raise

    def _check(self) -> None:
        info = os.fstat(self._fd)
        if not stat.S_ISDIR(info.st_mode):
            raise CliUsageError(f"--deliver-dir {self.directory!r} is not a folder")
        if info.st_uid != os.geteuid():
            raise CliUsageError(f"--deliver-dir {self.directory!r} is not owned by you")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise CliUsageError(
                f"--deliver-dir {self.directory!r} is writable by others "
                f"(mode {stat.S_IMODE(info.st_mode):o}): chmod go-w it first"
            )

    def _sweep(self) -> None:
        """Partial files a killed run left behind: their tokens were never delivered (and
        are deleted by the restart), so they go, before the first delivery (a dry run,
        which delivers nothing, leaves the folder as it is)."""
        self._swept = True
        for entry in os.listdir(self._fd):
            if not entry.startswith(_PARTIAL_PREFIX):
                continue
            with contextlib.suppress(FileNotFoundError):
                # Only what a run leaves: a file (or a link in its place), never a folder
                # that happens to have the prefix, which must not fail this delivery.
                if stat.S_ISDIR(os.stat(entry, dir_fd=self._fd, follow_symlinks=False).st_mode):
                    continue
                os.unlink(entry, dir_fd=self._fd)

    def delivered(self, token_id: str, name: str) -> bool:
        """Whether a file for ``token_id`` is there (by id: the name the server gave the
        new token may differ from the one asked for); only a whole file has its name."""
        ending = f".{safe_part(token_id, _ID_BYTES)}{_SUFFIX}"
        for entry in os.listdir(self._fd):
            if entry.endswith(ending) and not entry.startswith(_PARTIAL_PREFIX):
                try:
                    info = os.stat(entry, dir_fd=self._fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    return True
        return False

    async def __call__(self, token: CreatedToken) -> None:
        self._write(token)

    def _write(self, token: CreatedToken) -> None:
        if not self._swept:
            self._sweep()
        final, partial = file_name(token.id, token.name), _partial_name(token.id)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial, dir_fd=self._fd)
        fd = os.open(partial, flags, 0o600, dir_fd=self._fd)
        try:
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, token.token.reveal().encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(
                    partial, final, src_dir_fd=self._fd, dst_dir_fd=self._fd, follow_symlinks=False
                )
            except FileExistsError:
                raise DeliveryError(
                    f"{final!r} already exists in {self.directory!r}: not overwritten"
                ) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial, dir_fd=self._fd)
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _child_environment(token: CreatedToken) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLCAST_")}

    def value(text: str | None) -> str:
        # An environment value cannot hold NUL or a lone surrogate: replaced, not refused.
        clean = (text or "").replace("\x00", "\ufffd")
        return clean.encode("utf-8", "replace").decode("utf-8")

    env["CELLCAST_TOKEN_ID"] = value(token.id)
    env["CELLCAST_TOKEN_NAME"] = value(token.name)
    env["CELLCAST_SUB_ACCOUNT_ID"] = value(token.sub_account_id)
    return env


class CommandSink:
    """``--deliver-cmd``: a command per token, the secret on its stdin (module docstring)."""

    def __init__(self, command: str, timeout: float = DEFAULT_DELIVER_TIMEOUT) -> None:
        try:
            self.argv = shlex.split(command)
        except ValueError as exc:
            raise CliUsageError(f"--deliver-cmd cannot be split into words: {exc}") from None
        if not self.argv:
            raise CliUsageError("--deliver-cmd is empty")
        self.timeout = timeout

    def delivered(self, token_id: str, name: str) -> None:
        return None  # a command keeps no record this run can read

    def close(self) -> None:
        pass

    async def __call__(self, token: CreatedToken) -> None:
        program = self.argv[0]
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                env=_child_environment(token),
                start_new_session=True,
            )
        except OSError as exc:
            raise DeliveryError(f"{program!r} could not start: {exc.strerror}") from None
        try:
            await asyncio.wait_for(
                process.communicate(token.token.reveal().encode("utf-8")), self.timeout
            )
        except asyncio.TimeoutError:
            raise DeliveryError(f"{program!r} timed out after {self.timeout:g} s") from None
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        code = process.returncode
        assert code is not None  # waited for above
        if code != 0:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            raise DeliveryError(f"{program!r} {how}")


def make_sink(
    deliver_dir: str | None, deliver_cmd: str | None, timeout: float
) -> DirectorySink | CommandSink | None:
    """The sink the options name (None: none given); both at once is a usage error."""
    if deliver_dir is not None and deliver_cmd is not None:
        raise CliUsageError("give one of --deliver-dir and --deliver-cmd, not both")
    if deliver_dir is not None:
        return DirectorySink(deliver_dir)
    if deliver_cmd is not None:
        return CommandSink(deliver_cmd, timeout)
    return None


#: ``--deliver-dir``, ``--deliver-cmd`` and ``--deliver-timeout``.
deliver_options: Final = option_group(
    click.option(
        "--deliver-dir",
        metavar="DIR",
        help="Write each new secret to its own 0600 file in DIR (never overwritten).",
    ),
    click.option(
        "--deliver-cmd",
        metavar="COMMAND",
        help="Run COMMAND (no shell) per new token, the secret on its stdin and "
        "CELLCAST_TOKEN_ID, CELLCAST_TOKEN_NAME, CELLCAST_SUB_ACCOUNT_ID set; "
        "counts when it exits 0.",
    ),
    click.option(
        "--deliver-timeout",
        type=POSITIVE,
        default=DEFAULT_DELIVER_TIMEOUT,
        metavar="SECONDS",
        help="How long --deliver-cmd may run per token.",
    ),
)
