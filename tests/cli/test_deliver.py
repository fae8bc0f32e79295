"""The delivery sinks (``--deliver-dir``, ``--deliver-cmd``) and ``rotate TOKEN_ID``.

The secret reaches the sink and nothing else: no output, error, or file outside it
(README "Rotating tokens").
"""

from __future__ import annotations

import asyncio
import json
import shlex
import stat
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cellcast_async import CreatedToken, Secret
from cellcast_async._cli._context import CliUsageError
from cellcast_async._cli._deliver import (
    CommandSink,
    DeliveryError,
    DirectorySink,
    file_name,
    make_sink,
)
from cellcast_async.sandbox import Faults

from .._schemas import assert_valid
from ._support import FULL_SECRET, LiveSandbox

SECRET = "ccst_" + "A1b2" * 10
CREATED = datetime(2026, 12, 4, tzinfo=timezone.utc)


def created(
    name: str = "Production API", token_id: str = "6877b1234567890abcdef123"
) -> CreatedToken:
    return CreatedToken(
        id=token_id,
        name=name,
        token=Secret(SECRET),
        status="active",
        created_at=CREATED,
        sub_account_id="6877a383d68781beb3b14110",
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "secrets"
    target.mkdir(mode=0o700)
    return target


def deliver(sink: DirectorySink | CommandSink, token: CreatedToken) -> None:
    asyncio.run(sink(token))


class TestDirectorySink:
    """One 0600 file per token, never overwritten, never through a symlink."""

    def test_writes_one_private_file(self, folder: Path) -> None:
        """The value alone, mode 0600, named by the token's name and id."""
        sink = DirectorySink(str(folder))
        token = created()
        assert sink.delivered(token.id, token.name) is False

        deliver(sink, token)

        (path,) = folder.iterdir()
        assert path.name == "Production_API.6877b1234567890abcdef123.token"
        assert path.read_text() == SECRET
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert sink.delivered(token.id, token.name) is True
        sink.close()

    def test_never_overwrites(self, folder: Path) -> None:
        """A file already there is kept as it is; delivery fails naming it."""
        token = created()
        existing = folder / file_name(token.id, token.name)
        existing.write_text("keep me")
        sink = DirectorySink(str(folder))

        with pytest.raises(DeliveryError, match=r"already exists in .*: not overwritten"):
            deliver(sink, token)

        assert existing.read_text() == "keep me"
        assert [p.name for p in folder.iterdir()] == [existing.name]

    def test_never_follows_a_symlink(self, folder: Path, tmp_path: Path) -> None:
        """A symlink planted at the final name is not followed, nor at the partial name."""
        token = created()
        victim = tmp_path / "victim"
        victim.write_text("untouched")
        (folder / file_name(token.id, token.name)).symlink_to(victim)
        sink = DirectorySink(str(folder))
        (folder / f".cellcast-partial-{token.id}").symlink_to(victim)

        with pytest.raises(DeliveryError, match="already exists"):
            deliver(sink, token)

        assert victim.read_text() == "untouched"
        assert not any(p.name.startswith(".cellcast-partial-") for p in folder.iterdir())

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("../../etc/passwd", "_.._etc_passwd"),
            ("a/b\\c", "a_b_c"),
            ("\x1b[31mred\x07", "_31mred_"),
            ("evil\u202etxt.exe", "evil_txt.exe"),
            ("...", "_"),
            ("Café Zürich", "Café_Zürich"),
        ],
    )
    def test_hostile_names(self, folder: Path, name: str, expected: str) -> None:
        """Separators, controls, format characters and leading dots never reach the name."""
        token = created(name=name, token_id="id/../x")
        sink = DirectorySink(str(folder))

        deliver(sink, token)

        (path,) = folder.iterdir()
        assert path.name == f"{expected}.id_.._x.token"
        assert path.parent == folder

    def test_long_name_is_bounded(self, folder: Path) -> None:
        """A 500-character name: the file name stays within 255 bytes, id kept."""
        token = created(name="é" * 500)
        sink = DirectorySink(str(folder))
        deliver(sink, token)
        (path,) = folder.iterdir()
        assert len(path.name.encode()) <= 255
        assert path.name.endswith(f".{token.id}.token")

    def test_sweeps_partials(self, folder: Path) -> None:
        """A partial file left by a killed run is removed before the first delivery, and
        only then (a dry run opens the sink and delivers nothing)."""
        leftover = folder / ".cellcast-partial-abc"
        leftover.write_text(SECRET)
        sink = DirectorySink(str(folder))
        assert leftover.exists()
        assert sink.delivered("abc", "Production API") is False
        deliver(sink, created())
        assert not leftover.exists()
        sink.close()

    def test_delivered_by_id(self, folder: Path) -> None:
        """A restart asks by id: a file under the server's name for the token counts."""
        sink = DirectorySink(str(folder))
        deliver(sink, created(name="Renamed by the server"))
        assert sink.delivered("6877b1234567890abcdef123", "Production API") is True
        assert sink.delivered("6877b1234567890abcdef12", "Production API") is False

    def test_folder_checks(self, folder: Path, tmp_path: Path) -> None:
        """Missing, a symlink, a file, or writable by others: each a usage error."""
        link = tmp_path / "link"
        link.symlink_to(folder)
        plain = tmp_path / "plain"
        plain.write_text("")
        with pytest.raises(CliUsageError, match="is not a usable folder"):
            DirectorySink(str(tmp_path / "missing"))
        with pytest.raises(CliUsageError, match="is not a usable folder"):
            DirectorySink(str(link))
        with pytest.raises(CliUsageError, match="is not a usable folder"):
            DirectorySink(str(plain))
        folder.chmod(0o770)
        with pytest.raises(CliUsageError, match=r"is writable by others \(mode 770\)"):
            DirectorySink(str(folder))


def python_cmd(code: str) -> str:
    return shlex.join([sys.executable, "-c", code])


class TestCommandSink:
    """The command gets the secret on stdin and the token in its environment."""

    def test_delivers(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Exit 0 counts; the child sees the token's id, name and sub-account, not the key."""
        monkeypatch.setenv("CELLCAST_API_KEY", "cc_should_not_leak")
        out = tmp_path / "got.json"
        code = (
            "import json, os, sys; json.dump({'stdin': sys.stdin.read(), "
            "'env': {k: v for k, v in os.environ.items() if k.startswith('CELLCAST_')}}, "
            f"open({str(out)!r}, 'w'))"
        )
        sink = CommandSink(python_cmd(code))
        assert sink.delivered("x", "y") is None

        deliver(sink, created(name="Prod\x00API"))

        got = json.loads(out.read_text())
        assert got["stdin"] == SECRET
        assert got["env"] == {
            "CELLCAST_TOKEN_ID": "6877b1234567890abcdef123",
            "CELLCAST_TOKEN_NAME": "Prod\ufffdAPI",
            "CELLCAST_SUB_ACCOUNT_ID": "6877a383d68781beb3b14110",
        }

    def test_failure_names_the_status(self) -> None:
        """A non-zero exit fails delivery; the output (which echoes the secret) is dropped."""
        code = "import sys; s = sys.stdin.read(); print(s); print(s, file=sys.stderr); sys.exit(3)"
        sink = CommandSink(python_cmd(code))
        with pytest.raises(DeliveryError) as caught:
            deliver(sink, created())
        assert str(caught.value) == f"{sys.executable!r} exited with status 3"

    def test_timeout(self) -> None:
        """A command past --deliver-timeout is killed; delivery fails."""
        sink = CommandSink(python_cmd("import time; time.sleep(30)"), timeout=0.3)
        with pytest.raises(DeliveryError, match=r"timed out after 0\.3 s"):
            deliver(sink, created())

    def test_cannot_start(self, tmp_path: Path) -> None:
        sink = CommandSink(str(tmp_path / "no-such-program"))
        with pytest.raises(DeliveryError, match="could not start: No such file or directory"):
            deliver(sink, created())

    @pytest.mark.parametrize(
        ("command", "message"),
        [("", "--deliver-cmd is empty"), ("vault 'put", "cannot be split into words")],
    )
    def test_bad_command(self, command: str, message: str) -> None:
        with pytest.raises(CliUsageError, match=message):
            CommandSink(command)

    def test_one_sink_only(self, folder: Path) -> None:
        with pytest.raises(CliUsageError, match="give one of --deliver-dir and --deliver-cmd"):
            make_sink(str(folder), "true", 1.0)
        assert make_sink(None, None, 1.0) is None


# ------------------------------------------------------------------------ rotate command


def active_token(live: LiveSandbox) -> dict[str, str]:
    return live.items(status="active")[0]


def no_secret(*texts: str) -> None:
    for text in texts:
        assert not FULL_SECRET.search(text)


class TestRotateCommand:
    """``rotate TOKEN_ID`` with a sink: exit codes, output, and where the secret goes."""

    def test_to_a_folder(self, live: LiveSandbox, folder: Path) -> None:
        """The secret in one 0600 file; --json and --debug show ids and names only."""
        old = active_token(live)
        run = live.cli("rotate", old["_id"], "--deliver-dir", str(folder), "--json", "--debug")

        assert run.code == 0, run.err
        view = json.loads(run.out)
        assert assert_valid("rotated.schema.json", [view]) == 1
        assert view["old_id"] == old["_id"]
        assert view["retiring_name"].startswith(old["name"] + " (retired ")
        (path,) = folder.iterdir()
        assert path.name == file_name(view["new_id"], old["name"])
        assert FULL_SECRET.fullmatch(path.read_text())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        no_secret(run.out, run.err)

    def test_needs_a_sink(self, live: LiveSandbox) -> None:
        """No sink: a usage error, nothing sent."""
        run = live.cli("rotate", active_token(live)["_id"])
        assert run.code == 2
        assert "rotate needs --deliver-dir or --deliver-cmd" in run.err
        assert live.cli_requests() == []

    def test_failed_command(self, live: LiveSandbox) -> None:
        """The command fails: exit 1, the old token back under its name, no secret shown."""
        old = active_token(live)
        command = python_cmd("import sys; print(sys.stdin.read()); sys.exit(4)")
        run = live.cli("rotate", old["_id"], "--deliver-cmd", command, "--debug")

        assert run.code == 1
        assert "failed at deliver: DeliveryError:" in run.err
        assert "exited with status 4" in run.err
        no_secret(run.out, run.err)
        _, body = live.token(old["_id"])
        assert (body["data"]["name"], body["data"]["status"]) == (old["name"], "active")
        names = [t["name"] for t in live.items(search=old["name"])]
        assert names.count(old["name"]) == 1


def test_rotate_under_faults(folder: Path) -> None:
    """Every 4th write failing: each rotation ends with one file and one active token."""
    with LiveSandbox(seed=0, tokens=60, faults=Faults(every=4, mutations_only=True)) as live:
        olds = live.items(status="active")[:5]
        for old in olds:
            run = live.cli("rotate", old["_id"], "--deliver-dir", str(folder))
            assert run.code == 0, run.err
            no_secret(run.out, run.err)
        files = sorted(folder.iterdir())
        assert len(files) == 5
        assert len({p.read_text() for p in files}) == 5
        for old in olds:
            holders = [
                t
                for t in live.items(subAccountId=old["subAccount"]["_id"], search=old["name"])
                if t["name"] == old["name"]
            ]
            assert len(holders) == 1
            assert holders[0]["status"] == "active"
            assert any(p.name == file_name(holders[0]["_id"], old["name"]) for p in files)
