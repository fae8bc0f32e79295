"""``audit --checkpoint FILE`` when someone else can write the folder (README "Long audits").

The audit's checkpoint is sealed like the pager's, its walk must be the command's, the
records read back must be those the walk counted, every file it replaces is replaced
through a fresh private temporary, it never shares a file with ``--output``, and one audit
at a time holds it. Each refusal is a usage error (exit 2, one line), with nothing sent
and neither file touched.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cellcast_async.sandbox import Faults

from .._checkpoint_seal import reseal_audit
from .._wire import TOKENS_PATH
from ..cli._support import (
    AS_OF,
    PAGE,
    LiveSandbox,
    audit_argv,
    checkpoint_body,
    cli_env,
    ids,
    interrupted,
    refused,
    stopped_audit,
)

NOT_AUTHENTIC = "not authentic: it was changed after it was written; delete it to start over"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file of the user's that a planted symlink points at: it must stay as it is."""
    path = tmp_path / "victim.txt"
    path.write_text("precious\n", encoding="utf-8")
    return path


class TestSealed:
    """An edited audit checkpoint is refused; so is one sealed under another key."""

    @pytest.mark.parametrize(
        "edit",
        [
            # A `--status active` walk passed off as an unfiltered audit.
            lambda body: body["options"].update(status=None),
            lambda body: body["options"].update(stale_days=1),
            lambda body: body.update(output_bytes=body["output_bytes"] - 2000),
            lambda body: body.update(as_of="2020-01-01T00:00:00+00:00"),
            lambda body: body.update(pager=body["pager"].replace('"page":3', '"page":4')),
        ],
        ids=["status", "stale-days", "output-bytes", "as-of", "pager"],
    )
    def test_edited(self, live: LiveSandbox, paths: tuple[Path, Path], edit: object) -> None:
        out, ck = paths
        argv = audit_argv(out, ck, "jsonl", "--as-of", AS_OF, "--status", "active")
        interrupted(live, argv, 3)
        body = checkpoint_body(ck)
        edit(body)  # type: ignore[operator]
        ck.write_text(json.dumps(body), encoding="utf-8")
        refused(
            live,
            audit_argv(out, ck, "jsonl", "--status", "active"),
            f"{ck}: {NOT_AUTHENTIC}",
            out,
            ck,
        )
        refused(live, audit_argv(out, ck, "jsonl"), f"{ck}: {NOT_AUTHENTIC}", out, ck)

    def test_another_accounts_key(self, live: LiveSandbox, paths: tuple[Path, Path]) -> None:
        out, ck = stopped_audit(live, paths, "jsonl", 3)
        live.script({})
        result = live.cli(*audit_argv(out, ck, "jsonl"), key="ck_live_another_account_key_0123")
        assert (result.code, result.out) == (2, "")
        assert result.err == (
            f"usage error: {ck}: written by an audit under another API key: resume it with"
            " that key, or delete it to start over\n"
        )
        assert live.cli_requests() == []

    def test_no_key_in_the_file(self, live: LiveSandbox, paths: tuple[Path, Path]) -> None:
        _, ck = stopped_audit(live, paths, "jsonl", 3)
        text = ck.read_text(encoding="utf-8")
        assert live.api_key not in text
        assert live.api_key[-8:] not in text
        assert set(json.loads(text)) == {
            "format", "version", "key", "pager", "options", "as_of", "output",
            "output_bytes", "mac",
        }  # fmt: skip
        assert ck.stat().st_mode & 0o777 == 0o600

    def test_a_100_mb_checkpoint_is_not_read(
        self, live: LiveSandbox, paths: tuple[Path, Path]
    ) -> None:
        out, ck = paths
        with ck.open("wb") as handle:
            handle.truncate(100 * 2**20)  # sparse: costs no disk
        out.write_text("", encoding="utf-8")
        began = time.perf_counter()
        refused(
            live,
            audit_argv(out, ck, "jsonl"),
            f"{ck}: not an audit checkpoint (larger than 8,454,144 bytes)",
            out,
        )
        assert time.perf_counter() - began < 10


class TestTheWalkIsTheCommands:
    """Sealed by the key's holder, a checkpoint still resumes only the walk it was made for."""

    def test_a_filtered_walk_is_not_an_unfiltered_audit(
        self, live: LiveSandbox, paths: tuple[Path, Path]
    ) -> None:
        out, ck = stopped_audit(live, paths, "jsonl", 3, "--status", "active")
        body = checkpoint_body(ck)
        body["options"]["status"] = None
        ck.write_text(reseal_audit(body, live.api_key), encoding="utf-8")
        path = TOKENS_PATH
        refused(
            live,
            audit_argv(out, ck, "jsonl"),
            f"{ck}: its walk lists {path}?limit={PAGE}&status=active, this audit lists"
            f" {path}?limit={PAGE}: delete {ck} to start over",
            out,
            ck,
        )

    @pytest.mark.parametrize("fmt", ["csv", "jsonl"])
    def test_output_bytes_cut_at_a_record_boundary(
        self, live: LiveSandbox, paths: tuple[Path, Path], fmt: str
    ) -> None:
        """Records dropped while the report would say complete: the count tells."""
        out, ck = stopped_audit(live, paths, fmt, 3)
        body = checkpoint_body(ck)
        lines = out.read_bytes().splitlines(keepends=True)
        assert len(lines) == 2 * PAGE + (fmt == "csv")
        body["output_bytes"] -= sum(len(line) for line in lines[-25:])
        ck.write_text(reseal_audit(body, live.api_key), encoding="utf-8")
        refused(
            live,
            audit_argv(out, ck, fmt),
            f"{out} holds 75 records where {ck} counted 100: delete the checkpoint to start over",
            out,
            ck,
        )

    def test_records_taken_out_of_the_output(
        self, live: LiveSandbox, paths: tuple[Path, Path]
    ) -> None:
        out, ck = stopped_audit(live, paths, "jsonl", 3)
        lines = out.read_bytes().splitlines(keepends=True)
        # Ten records fewer, the same length: padded with copies of the first record.
        kept = lines[10:]
        pad = b"".join(lines[:10])
        out.write_bytes(b"".join(kept) + pad)
        assert len(ids(out, "jsonl")) == 100
        body = checkpoint_body(ck)
        body["output_bytes"] = len(b"".join(kept))
        ck.write_text(reseal_audit(body, live.api_key), encoding="utf-8")
        refused(
            live,
            audit_argv(out, ck, "jsonl"),
            f"{out} holds 90 records where {ck} counted 100: delete the checkpoint to start over",
            out,
            ck,
        )


class TestFiles:
    """Temporaries, one file under two names, and one audit at a time."""

    def test_a_symlink_at_the_old_temporary_name_is_not_followed(
        self, live: LiveSandbox, paths: tuple[Path, Path], tmp_path: Path, victim: Path
    ) -> None:
        out, ck = paths
        planted = tmp_path / f".{ck.name}.tmp"
        planted.symlink_to(victim)
        interrupted(live, audit_argv(out, ck, "jsonl", "--as-of", AS_OF), 3)
        assert ck.exists()
        assert not ck.is_symlink()
        live.script({})
        assert live.cli(*audit_argv(out, ck, "jsonl")).code == 0
        assert victim.read_text(encoding="utf-8") == "precious\n"
        assert planted.is_symlink()
        assert planted.resolve() == victim
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [out.name, victim.name, planted.name]
        )

    def test_a_symlink_at_the_checkpoint_is_replaced_not_followed(
        self, live: LiveSandbox, paths: tuple[Path, Path], tmp_path: Path, victim: Path
    ) -> None:
        out, ck = stopped_audit(live, paths, "jsonl", 3)
        text = ck.read_bytes()
        ck.unlink()
        (tmp_path / "real.ckpt").write_bytes(text)
        ck.symlink_to(tmp_path / "real.ckpt")
        interrupted(live, audit_argv(out, ck, "jsonl"), 2)  # reads it, writes one more
        assert not ck.is_symlink()
        assert (tmp_path / "real.ckpt").read_bytes() == text
        assert victim.read_text(encoding="utf-8") == "precious\n"

    def test_temporaries_a_kill_left_are_removed(
        self, live: LiveSandbox, paths: tuple[Path, Path], tmp_path: Path
    ) -> None:
        out, ck = stopped_audit(live, paths, "jsonl", 3)
        left = tmp_path / f".{ck.name}.k1ll3d_x.tmp"
        left.write_text("half", encoding="utf-8")
        live.script({})
        assert live.cli(*audit_argv(out, ck, "jsonl")).code == 0
        assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]

    @pytest.mark.parametrize("spelling", ["same", "dotted", "symlink", "hardlink", "new"])
    def test_checkpoint_and_output_are_one_file(
        self, live: LiveSandbox, tmp_path: Path, spelling: str
    ) -> None:
        out = tmp_path / "tokens.jsonl"
        ck = {
            "same": out,
            "new": out,
            "dotted": tmp_path / "sub" / ".." / "tokens.jsonl",
            "symlink": tmp_path / "link.ckpt",
            "hardlink": tmp_path / "hard.ckpt",
        }[spelling]
        (tmp_path / "sub").mkdir()
        if spelling != "new":
            out.write_text('{"id": "kept"}\n', encoding="utf-8")
        if spelling == "symlink":
            ck.symlink_to(out)
        elif spelling == "hardlink":
            os.link(out, ck)
        before = sorted(p.name for p in tmp_path.iterdir())
        refused(
            live,
            audit_argv(out, ck, "jsonl"),
            f"--checkpoint and --output name the same file ({ck}): the checkpoint would"
            " overwrite the records",
            out,
        )
        assert sorted(p.name for p in tmp_path.iterdir()) == before

    def test_a_second_audit_on_the_same_checkpoint(
        self, live: LiveSandbox, paths: tuple[Path, Path], tmp_path: Path
    ) -> None:
        out, ck = stopped_audit(live, paths, "jsonl", 3)
        lock = tmp_path / f".{ck.name}.lock"
        # The first audit, still running: it holds the lock.
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            refused(
                live,
                audit_argv(out, ck, "jsonl"),
                f"{ck} is in use by another audit: wait for it to end, or use another --checkpoint",
                out,
                ck,
            )
            other = tmp_path / "other.jsonl"
            refused(
                live,
                audit_argv(other, ck, "jsonl", "--as-of", AS_OF),
                f"{ck} is in use by another audit: wait for it to end, or use another --checkpoint",
                out,
                ck,
            )
            assert not other.exists()
        finally:
            os.close(fd)
        # The first one is gone: the same command goes on, and leaves no lock behind.
        live.script({})
        assert live.cli(*audit_argv(out, ck, "jsonl")).code == 0
        assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]

    def test_a_symlink_at_the_lock_name(
        self, live: LiveSandbox, paths: tuple[Path, Path], tmp_path: Path, victim: Path
    ) -> None:
        out, ck = paths
        lock = tmp_path / f".{ck.name}.lock"
        lock.symlink_to(victim)
        refused(
            live,
            audit_argv(out, ck, "jsonl", "--as-of", AS_OF),
            f"cannot lock {ck} ({lock}): Too many levels of symbolic links",
            victim,
        )
        assert not out.exists()
        assert not ck.exists()
        assert lock.is_symlink()


def test_two_audit_processes_on_one_checkpoint(tmp_path: Path) -> None:
    """A real second process, while the first walks: refused at once; the first finishes."""
    with LiveSandbox(seed=1, tokens=2000, faults=Faults(latency=0.02)) as big:
        out, ck = tmp_path / "tokens.jsonl", tmp_path / "audit.ckpt"
        argv = audit_argv(out, ck, "jsonl", "--as-of", AS_OF)
        first = subprocess.Popen(
            [sys.executable, "-m", "cellcast_async", *big.args(*argv)],
            cwd=tmp_path,
            env=cli_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            while not ck.exists() and first.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert first.poll() is None, "the first audit ended before the second started"
            # The second audit talks to a server of its own: what it sends is its own.
            with LiveSandbox(seed=2, tokens=10) as other:
                second = other.cli(*argv, key=big.api_key)
                assert other.cli_requests() == []
            assert (second.code, second.out) == (2, "")
            assert second.err == (
                f"usage error: {ck} is in use by another audit: wait for it to end, or use"
                " another --checkpoint\n"
            )
            _, err = first.communicate(timeout=60)
        finally:
            if first.poll() is None:
                first.kill()
                first.communicate()
        assert (first.returncode, err) == (0, b"")
        found = ids(out, "jsonl")
        assert found == [item["_id"] for item in big.items()]
        assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


class TestNotRegularFiles:
    """A FIFO or a device under the checkpoint's or the output's name never hangs the audit."""

    def test_a_fifo_as_the_checkpoint(self, live: LiveSandbox, paths: tuple[Path, Path]) -> None:
        out, ck = paths
        os.mkfifo(ck)
        out.write_text("", encoding="utf-8")
        live.script({})
        run = live.cli_beside_fifo(ck, *audit_argv(out, ck, "jsonl"))
        assert (run.code, run.out) == (2, "")
        assert run.err == f"usage error: {ck}: not an audit checkpoint (not a regular file)\n"
        assert live.cli_requests() == []

    def test_dev_zero_as_the_checkpoint(
        self, live: LiveSandbox, paths: tuple[Path, Path], tmp_path: Path
    ) -> None:
        out, _ = paths
        ck = tmp_path / "zero.ckpt"
        ck.symlink_to("/dev/zero")
        out.write_text("", encoding="utf-8")
        refused(
            live,
            audit_argv(out, ck, "jsonl"),
            f"{ck}: not an audit checkpoint (not a regular file)",
            out,
        )

    def test_a_fifo_as_the_output(self, live: LiveSandbox, paths: tuple[Path, Path]) -> None:
        out, ck = stopped_audit(live, paths, "jsonl", 3)
        body = checkpoint_body(ck)
        # What the checkpoint counted is still there: the output is what was swapped.
        out.unlink()
        os.mkfifo(out)
        live.script({})
        run = live.cli_beside_fifo(out, *audit_argv(out, ck, "jsonl"))
        assert (run.code, run.out) == (2, "")
        assert run.err == (
            f"usage error: the checkpoint's output {out} is not a regular file: delete the"
            " checkpoint to start over\n"
        )
        assert live.cli_requests() == []
        assert checkpoint_body(ck) == body
