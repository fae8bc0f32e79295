"""Files read back from disk are untrusted: a capped, non-blocking read of a regular file.

Plans, journals, exemption lists and the CLI's audit checkpoints are all read through
:func:`read_capped`, which refuses what is not a regular file (a FIFO planted under the
name must not hang the caller, a device must not be read forever) and what is larger than
the caller's cap, each with one message naming the file and what it should have been.
"""

from __future__ import annotations

import os
import stat

__all__ = ["read_capped"]


def read_capped(
    path: str | os.PathLike[str], limit: int, what: str, *, error: type[Exception]
) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    ``what`` names the file in messages (``"plan"``: ``"cannot read plan P: ..."``,
    ``"P: not a plan (not a regular file)"``); every refusal is an ``error``.
    """
    name = os.fspath(path)
    article = "an" if what[:1] in "aeiou" else "a"
    try:
        # Non-blocking: a FIFO planted under the name must not hang the open.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise error(f"cannot read {what} {name}: {exc.strerror or exc}") from None
    # Checked before ``open(fd)``, which refuses a folder with an error naming the fd.
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise error(f"{name}: not {article} {what} (not a regular file)")
    with open(fd, "rb") as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise error(f"cannot read {what} {name}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{name}: not {article} {what} (larger than {limit:,} bytes)")
    return data
