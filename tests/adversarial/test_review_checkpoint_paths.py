"""``audit --checkpoint`` with odd paths: a folder, an empty name, a name ending in ``/``,
a name too long for its temporary (README "Command line": each is a usage error).

Each is a one-line usage error (exit 2) with nothing sent and the output untouched.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..cli._support import LiveSandbox, audit_argv


def refused(live: LiveSandbox, argv: list[str], message: str, out: Path) -> None:
    live.script({})
    result = live.cli(*argv)
    assert (result.code, result.out, result.err) == (2, "", f"usage error: {message}\n")
    assert live.cli_requests() == []
    assert not out.exists()


class TestCheckpointPaths:
    """What ``--checkpoint`` cannot be a file at."""

    def test_a_folder(self, live: LiveSandbox, tmp_path: Path) -> None:
        out, ck = tmp_path / "tokens.jsonl", tmp_path / "ck"
        ck.mkdir()
        refused(
            live,
            audit_argv(out, ck, "jsonl"),
            f"{ck}: not an audit checkpoint (not a regular file)",
            out,
        )
        assert ck.is_dir()
        assert list(ck.iterdir()) == []

    def test_an_empty_name(self, live: LiveSandbox, tmp_path: Path) -> None:
        out = tmp_path / "tokens.jsonl"
        argv = audit_argv(out, tmp_path, "jsonl")
        argv[argv.index("--checkpoint") + 1] = ""
        refused(live, argv, "--checkpoint needs a file name, got ''", out)

    def test_a_name_ending_in_a_slash(self, live: LiveSandbox, tmp_path: Path) -> None:
        out = tmp_path / "tokens.jsonl"
        argv = audit_argv(out, tmp_path, "jsonl")
        argv[argv.index("--checkpoint") + 1] = f"{tmp_path}/nothing/"
        refused(live, argv, f"--checkpoint needs a file name, got '{tmp_path}/nothing/'", out)

    def test_a_name_too_long_for_its_temporary(self, live: LiveSandbox, tmp_path: Path) -> None:
        """``.FILE.lock`` fits, ``.FILE.XXXXXXXX.tmp`` does not: refused before the walk,
        not after its first page (it wrote records and then failed with exit 1)."""
        if os.pathconf(tmp_path, "PC_NAME_MAX") != 255:  # pragma: no cover
            pytest.skip("the lengths below assume NAME_MAX 255")
        out, ck = tmp_path / "tokens.jsonl", tmp_path / ("c" * 245)
        refused(
            live,
            audit_argv(out, ck, "jsonl"),
            f"cannot write {ck} (through a temporary beside it): File name too long",
            out,
        )
        assert list(tmp_path.iterdir()) == []  # no lock, no temporary, no checkpoint
