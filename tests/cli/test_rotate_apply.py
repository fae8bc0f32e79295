"""``plan rotate``, ``apply`` of a rotate plan with a sink, ``plan deactivate
--rotated-by``, and a real ``apply`` killed with SIGKILL at random moments (README
"Rotating tokens").

After every trial: each sub-account has exactly one active token under each rotated name,
each old token is renamed and active, the sink folder holds exactly one 0600 file, with a
distinct secret, per rotated token (the secret of the token now under the name), the
journal holds one final outcome per token, and no secret is anywhere but the sink: not in
any output, the plan or the journal.
"""

from __future__ import annotations

import json
import random
import shlex
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cellcast_async._cli._deliver import file_name
from cellcast_async.sandbox import Faults

from .._rotation import FULL_SECRET
from .._schemas import assert_valid
from ._support import LiveSandbox, Run, cli_env

FAST = ("--write-rate", "1000")
"""A write budget that never slows a test down."""
PER_SUB = 3
"""Old active tokens per sub-account, all rotated by the plan."""


def rotation_sandbox(latency: float = 0.0) -> LiveSandbox:
    """Two sub-accounts, each with 3 old active tokens (400 days) and a young one; every
    4th write fails (answers lost after the change, 5xx, 429)."""
    live = LiveSandbox(
        seed=0,
        tokens=0,
        sub_accounts=2,
        faults=Faults(every=4, mutations_only=True, latency=latency),
    )

    def add() -> None:
        for sub in live.sb.sub_account_ids:
            live.sb.add_tokens(PER_SUB, sub, "active", age_days=400)
            live.sb.add_tokens(1, sub, "active", age_days=5)

    live.call(add)
    return live


@pytest.fixture
def live() -> Any:
    with rotation_sandbox() as sandbox:
        yield sandbox


def make_plan(live: LiveSandbox, plan: Path) -> list[dict[str, Any]]:
    """``plan rotate --stale-days 365``; the raw items it chose."""
    as_of = live.sb.reference_time.isoformat()
    run = live.cli("plan", "rotate", "--stale-days", "365", "--as-of", as_of, "--output", str(plan))
    assert run.code == 0, run.err
    olds = [i for i in live.items() if i["_id"] in plan.read_text()]
    assert len(olds) == 2 * PER_SUB
    return olds


def apply(live: LiveSandbox, plan: Path, journal: Path, *extra: str) -> Run:
    """``apply PLAN --journal JOURNAL --yes`` at full speed, with ``extra`` (its sink)."""
    return live.cli("apply", str(plan), "--journal", str(journal), "--yes", *FAST, *extra)


def secrets_in(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.iterdir()}


def check_rotated(
    live: LiveSandbox, olds: list[dict[str, Any]], folder: Path, texts: list[str]
) -> None:
    """The invariants of the module docstring."""
    files = secrets_in(folder)
    assert len(files) == len(olds)
    assert len(set(files.values())) == len(olds)
    for old in olds:
        sub = old["subAccount"]["_id"]
        holders = [
            t for t in live.items(subAccountId=sub, search=old["name"]) if t["name"] == old["name"]
        ]
        assert len(holders) == 1, holders
        new = holders[0]
        assert new["status"] == "active"
        assert new["_id"] != old["_id"]
        _, body = live.token(old["_id"])
        assert body["data"]["status"] == "active"
        assert body["data"]["name"].startswith(old["name"] + " (retired ")
        path = folder / file_name(new["_id"], old["name"])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        secret = files[path.name]
        assert FULL_SECRET.fullmatch(secret)
        assert new["token"].endswith(secret[-4:])
    for text in texts:
        assert not FULL_SECRET.search(text)
        for secret in files.values():
            assert secret not in text


def final_outcomes(live: LiveSandbox, journal: Path) -> list[tuple[str, str]]:
    run = live.cli("show", str(journal), "--json")
    assert run.code == 0, run.err
    return [(i["id"], i["result"]) for i in json.loads(run.out)["items"]]


def rotate_to_folder(live: LiveSandbox, tmp_path: Path) -> tuple[list[dict[str, Any]], Run]:
    """``plan rotate`` to ``rotate.json``, then ``apply`` it with journal ``j`` and the
    folder ``out``: the old tokens and the apply's run (exit 0)."""
    plan, journal, folder = tmp_path / "rotate.json", tmp_path / "j", tmp_path / "out"
    folder.mkdir(mode=0o700)
    olds = make_plan(live, plan)
    run = apply(live, plan, journal, "--deliver-dir", str(folder))
    assert run.code == 0, run.err
    return olds, run


class TestPlanRotate:
    """``plan rotate`` chooses and writes; ``apply`` needs a sink."""

    def test_apply_with_a_folder(self, live: LiveSandbox, tmp_path: Path) -> None:
        """Every output valid against its schema: the plan, the journal's lines, --json."""
        olds, run = rotate_to_folder(live, tmp_path)
        plan, journal, folder = tmp_path / "rotate.json", tmp_path / "j", tmp_path / "out"
        check_rotated(live, olds, folder, [run.out, run.err, plan.read_text(), journal.read_text()])
        assert {r for _, r in final_outcomes(live, journal)} == {"done"}
        assert_valid("plan.schema.json", [json.loads(plan.read_text())])
        lines = [json.loads(line) for line in journal.read_text().splitlines()]
        assert assert_valid("journal.schema.json", lines) == len(lines)
        steps = {line.get("step") for line in lines[1:]}
        assert steps == {None, "rename", "create", "deliver", "verify"} | (steps & {"discard"})
        again = live.cli("--json", "apply", str(plan), "--journal", str(journal), "--yes",
                         "--deliver-dir", str(folder))  # fmt: skip
        assert again.code == 0, again.err
        assert_valid("apply.schema.json", [json.loads(again.out)])

    def test_by_id(self, live: LiveSandbox, tmp_path: Path) -> None:
        young = next(i for i in live.items() if "(retired" not in i["name"])
        plan = tmp_path / "p.json"
        run = live.cli("plan", "rotate", "--id", young["_id"], "--output", str(plan), "--json")
        assert run.code == 0, run.err
        assert json.loads(run.out)["tokens"] == 1

    def test_apply_needs_a_sink(self, live: LiveSandbox, tmp_path: Path) -> None:
        """No sink: a usage error, nothing sent, no journal."""
        plan, journal = tmp_path / "rotate.json", tmp_path / "j"
        make_plan(live, plan)
        live.call(live.sb.reset_requests)
        run = live.cli("apply", str(plan), "--journal", str(journal), "--yes")
        assert run.code == 2
        assert "a rotate plan needs --deliver-dir or --deliver-cmd" in run.err
        assert live.cli_requests() == []
        assert not journal.exists()

    def test_retire_after_grace(self, live: LiveSandbox, tmp_path: Path) -> None:
        """``plan deactivate --rotated-by J --grace-days 7``: nothing at 6 days after the
        rotation finished, every old token at 7 (the simulated clock is ``--as-of``)."""
        olds, _ = rotate_to_folder(live, tmp_path)
        journal = tmp_path / "j"
        finished = datetime.now(timezone.utc)
        for days, expected in ((6, 0), (7, len(olds))):
            retire = tmp_path / f"retire{days}.json"
            # Each rotation finished before `finished`: 6 days later is short of the
            # grace, 7 days later is past it.
            as_of = (finished + timedelta(days=days)).isoformat()
            run = live.cli(
                "plan",
                "deactivate",
                "--rotated-by",
                str(journal),
                "--grace-days",
                "7",
                "--as-of",
                as_of,
                "--output",
                str(retire),
                "--json",
            )
            assert run.code == 0, run.err
            assert json.loads(run.out)["tokens"] == expected
        run = live.cli(
            "apply",
            str(tmp_path / "retire7.json"),
            "--journal",
            str(tmp_path / "r"),
            "--yes",
            *FAST,
        )
        assert run.code == 0, run.err
        for old in olds:
            _, body = live.token(old["_id"])
            assert body["data"]["status"] == "inactive"


# --- SIGKILL, for real ------------------------------------------------------------------


@dataclass
class Trial:
    """One plan applied by a real ``python -m cellcast_async apply``, killed at random."""

    live: LiveSandbox
    tmp_path: Path
    seed: int
    texts: list[str] = field(default_factory=list)
    killed: int = 0

    def run(self, kills: int) -> None:
        rng = random.Random(self.seed)
        plan, journal = self.tmp_path / "rotate.json", self.tmp_path / "rotate.journal"
        folder = self.tmp_path / "secrets"
        folder.mkdir(mode=0o700)
        olds = make_plan(self.live, plan)
        command = [
            sys.executable,
            "-m",
            "cellcast_async",
            *self.live.args(
                "apply",
                str(plan),
                "--journal",
                str(journal),
                "--deliver-dir",
                str(folder),
                "--yes",
                "--write-rate",
                "1000",
            ),
        ]
        env = cli_env()
        for attempt in range(kills + 1):
            proc = subprocess.Popen(
                command,
                cwd=self.tmp_path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            if attempt < kills:
                self._kill_later(proc, journal, rng)
            out, err = proc.communicate(timeout=60)
            self.texts += [out.decode(errors="replace"), err.decode(errors="replace")]
            if proc.returncode == -signal.SIGKILL:
                self.killed += 1
                continue
            assert proc.returncode == 0, err.decode(errors="replace")
            break
        self.texts += [plan.read_text(), journal.read_text(errors="replace")]
        check_rotated(self.live, olds, folder, self.texts)
        outcomes = final_outcomes(self.live, journal)
        assert sorted(i for i, _ in outcomes) == sorted(o["_id"] for o in olds)
        assert {r for _, r in outcomes} == {"done"}

    @staticmethod
    def _kill_later(proc: subprocess.Popen[bytes], journal: Path, rng: random.Random) -> None:
        """SIGKILL at a random step: once the journal has grown by 1 to 39 lines (a whole
        apply writes about 65, each step 10 ms apart), then after up to 10 ms more. A pause
        in wall-clock time alone missed a fast apply altogether (seed 15 paused 0.48 s; the
        apply's steps took 0.15 s)."""

        def lines() -> int:
            try:
                return journal.read_bytes().count(b"\n")
            except FileNotFoundError:
                return 0

        target = lines() + rng.randrange(1, 40)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None and lines() < target:
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 0.01))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)


def test_killed_apply_quick(tmp_path: Path) -> None:
    """One trial, one kill, in the default run."""
    with rotation_sandbox(latency=0.01) as live:
        trial = Trial(live, tmp_path, seed=7)
        trial.run(kills=1)
        assert trial.killed == 1


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(20))
def test_killed_apply_soak(tmp_path: Path, seed: int) -> None:
    """Many trials, five kills each at random moments."""
    with rotation_sandbox(latency=0.01) as live:
        trial = Trial(live, tmp_path, seed=seed)
        trial.run(kills=5)
        assert trial.killed >= 1


def store_cmd(folder: Path, *, exit_code: int = 0) -> str:
    """A --deliver-cmd that stores stdin under the token id it is given, then exits (a
    shell: it starts faster than Python)."""
    script = f'cat > "$0/$CELLCAST_TOKEN_ID"; exit {exit_code}'
    return shlex.join(["/bin/sh", "-c", script, str(folder)])


class TestApplyWithACommand:
    """``apply --deliver-cmd``: the command gets each secret; its failure rolls back."""

    def test_delivers(self, live: LiveSandbox, tmp_path: Path) -> None:
        plan, journal, got = tmp_path / "p.json", tmp_path / "j", tmp_path / "got"
        got.mkdir()
        olds = make_plan(live, plan)
        run = apply(live, plan, journal, "--deliver-cmd", store_cmd(got))
        assert run.code == 0, run.err
        assert len(secrets_in(got)) == len(olds)
        for name, secret in secrets_in(got).items():
            _, body = live.token(name)
            assert body["data"]["token"].endswith(secret[-4:])
        no_secret = [run.out, run.err, journal.read_text()]
        assert not any(FULL_SECRET.search(text) for text in no_secret)

    def test_command_fails(self, live: LiveSandbox, tmp_path: Path) -> None:
        """Exit 3: every token failed with the reason, each old one back under its name
        and active, no new token left."""
        plan, journal, got = tmp_path / "p.json", tmp_path / "j", tmp_path / "got"
        got.mkdir()
        olds = make_plan(live, plan)
        before = len(live.items())
        run = apply(live, plan, journal, "--deliver-cmd", store_cmd(got, exit_code=3), "--json")
        assert run.code == 1
        report = json.loads(run.out)
        assert report["counts"]["failed"] == len(olds)
        assert {o["reason"] for o in report["failed"]} == {
            "DeliveryError: '/bin/sh' exited with status 3"
        }
        for old in olds:
            _, body = live.token(old["_id"])
            assert (body["data"]["name"], body["data"]["status"]) == (old["name"], "active")
        assert len(live.items()) == before
        assert not any(FULL_SECRET.search(t) for t in (run.out, run.err, journal.read_text()))
