"""``apply`` killed with SIGKILL at random moments, with 20% of writes failing, and
started again with the same command until it finishes (issue 18).

Each trial plans the deactivation of 30 old tokens (two of them renamed after the plan),
then runs a real ``python -m cellcast_async apply`` subprocess, killing it at random
moments (start-up included) and starting it again. Afterwards: every planned unchanged
token is inactive; no token outside the plan, and no renamed one, was ever written; no
token with a final outcome in the journal at a restart was written after it; the journal
holds exactly one final outcome per planned token. One trial runs by default, many under
``-m soak``.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellcast_async.sandbox import Faults

from ..cli._support import AS_OF, TOKENS_PATH, LiveSandbox, cli_env

OLD = 30
KILLS = 3


@pytest.fixture
def sandbox() -> Iterator[LiveSandbox]:
    with LiveSandbox(seed=0, tokens=0, sub_accounts=2) as live:
        live.call(lambda: live.sb.add_tokens(OLD, status="active", age_days=500))
        live.call(lambda: live.sb.add_tokens(5, status="active", age_days=20))
        yield live


def finals(journal: Path) -> Counter[str]:
    """Final outcomes per token in the journal's whole lines (no checking: the test's view)."""
    if not journal.exists():
        return Counter()
    data = journal.read_bytes()
    lines = data[: data.rfind(b"\n") + 1].split(b"\n")[1:-1]
    events = [json.loads(line) for line in lines]
    return Counter(e["token"] for e in events if e["event"] == "outcome" and e["step"] is None)


def written(live: LiveSandbox, since: int = 0) -> list[str]:
    requests = live.call(lambda: list(live.sb.requests))[since:]
    return [r.path.rsplit("/", 1)[-1] for r in requests if r.method in ("PUT", "DELETE", "POST")]


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def kill_at_random(
    proc: subprocess.Popen[bytes], journal: Path, rng: random.Random, startup: float
) -> bool:
    """SIGKILL ``proc`` anywhere in start-up (a ``startup`` share of the time), else once
    it has journaled something more, a moment later."""
    if rng.random() < startup:
        time.sleep(rng.uniform(0.05, 1.0))
    else:
        before, deadline = _size(journal), time.monotonic() + 30
        while proc.poll() is None and _size(journal) == before and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.4))
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    return True


def trial(
    live: LiveSandbox, tmp_path: Path, seed: int, kills: int = KILLS, startup: float = 0.25
) -> None:
    rng = random.Random(seed)
    plan_path, journal = tmp_path / "plan.json", tmp_path / "apply.journal"
    made = live.cli(
        "plan", "deactivate", "--stale-days", "365", "--as-of", AS_OF, "--output", str(plan_path)
    )
    assert made.code == 0, made.err
    planned = [i["id"] for i in json.loads(plan_path.read_text())["items"]]
    assert len(planned) == OLD
    renamed = set(rng.sample(planned, 2))
    for token in renamed:
        assert live.http("PUT", f"{TOKENS_PATH}/{token}", {"name": f"moved {token}"})[0] == 200
    live.call(
        lambda: setattr(live.sb, "faults", Faults(error_rate=0.2, mutations_only=True, seed=seed))
    )
    live.call(live.sb.reset_requests)
    command = [
        sys.executable,
        "-m",
        "cellcast_async",
        *live.args(
            "apply",
            str(plan_path),
            "--journal",
            str(journal),
            "--yes",
            "--quiet",
            "--write-rate",
            "60",
        ),
    ]
    checks: list[tuple[int, set[str]]] = []  # (requests so far, tokens final then)
    code = None
    mid = 0
    for attempt in range(kills + 1):
        checks.append((len(live.call(lambda: list(live.sb.requests))), set(finals(journal))))
        proc = subprocess.Popen(
            command,
            env=cli_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            if attempt < kills:
                before = finals(journal)
                if kill_at_random(proc, journal, rng, startup) and before != finals(journal):
                    mid += 1  # killed with some tokens done, mid-apply
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        code = proc.returncode
        if code == 0:
            break
        assert code == -signal.SIGKILL, err
    assert code == 0
    assert mid >= 1
    ends = finals(journal)
    assert ends == dict.fromkeys(planned, 1)
    writes = written(live)
    assert set(writes) <= set(planned) - renamed
    for since, done in checks:
        assert not done & set(written(live, since))
    live.call(lambda: setattr(live.sb, "faults", Faults()))
    status = {t["_id"]: t["status"] for t in live.items()}
    for token in planned:
        assert status[token] == ("active" if token in renamed else "inactive")


def test_sigkill_at_random_moments_one_trial(sandbox: LiveSandbox, tmp_path: Path) -> None:
    trial(sandbox, tmp_path, seed=1, kills=1, startup=0.0)  # one kill, mid-apply


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(2, 22))
def test_sigkill_at_random_moments_many_trials(
    sandbox: LiveSandbox, tmp_path: Path, seed: int
) -> None:
    trial(sandbox, tmp_path, seed)
