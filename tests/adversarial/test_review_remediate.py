"""An attacker's review of ``plan``, ``apply``, ``undo``, ``show`` and the rotation sinks
(README "Acting on an audit", "Rotating tokens"): a user's mistake with a file name, a
token name no plan can hold, a FIFO under a plan's name, a command sink that is killed or
floods its output. Each is refused with its exact message, and nothing is sent (the
sandbox's record of the CLI's writes) and no file the user had is lost."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellcast_async._cli._audit_charts import BINS, AuditFigures, age_bins, age_ticks, created_chart
from cellcast_async._cli._context import CliUsageError
from cellcast_async._cli._deliver import CommandSink, DeliveryError, DirectorySink, file_name
from cellcast_async._plan import MAX_DAYS

from ..cli._support import AS_OF, FULL_SECRET, LiveSandbox, Run, cli_env, run_cli
from ..cli.test_deliver import created, deliver, python_cmd
from ._cli_output_server import AS_OF as HOSTILE_AS_OF
from ._cli_output_server import OLD, RAW_CONTROLS, HostileApi, _item

FAST = ("--write-rate", "1000")


@pytest.fixture
def small() -> Iterator[LiveSandbox]:
    """A demo sandbox of 30 tokens: a plan of about fifteen, quick to apply."""
    with LiveSandbox(seed=0, tokens=30) as sandbox:
        yield sandbox


def writes(live: LiveSandbox) -> list[tuple[str, str]]:
    """Every write the sandbox received since the last ``script`` (``Sandbox.writes``)."""
    return [(r.method, r.path) for r in live.call(live.sb.writes)]


def make_plan(live: LiveSandbox, path: Path, *argv: str) -> Run:
    return live.cli(
        "plan", "deactivate", "--stale-days", "365", "--as-of", AS_OF, *argv, "--output", str(path)
    )


@pytest.fixture
def planned(small: LiveSandbox, tmp_path: Path) -> Path:
    run = make_plan(small, tmp_path / "plan.json")
    assert run.code == 0, run.err
    small.script({})
    return tmp_path / "plan.json"


class TestTheJournalIsNeverSomeoneElsesFile:
    def test_a_file_without_a_newline_is_left_as_it_is(
        self, small: LiveSandbox, planned: Path, tmp_path: Path
    ) -> None:
        """``--journal`` naming a delivered secret (the value alone, no newline): it was
        taken for a header cut by a kill and truncated; now refused, and kept."""
        kept = tmp_path / "Production_API.6877b1234567890abcdef123.token"
        kept.write_bytes(b"ccst_" + b"A1b2" * 10)
        run = small.cli("apply", str(planned), "--journal", str(kept), "--yes", *FAST)
        assert run.code == 2
        assert run.err_lines[-1] == (
            f"usage error: {kept}: not a journal (it holds something else): left as it is"
        )
        assert kept.read_bytes() == b"ccst_" + b"A1b2" * 10
        assert writes(small) == []

    def test_a_header_this_plan_began_is_still_started_again(
        self, small: LiveSandbox, planned: Path, tmp_path: Path
    ) -> None:
        """The refusal above leaves a real cut header alone: a run killed while writing it
        goes on."""
        journal = tmp_path / "j"
        first = small.cli("apply", str(planned), "--journal", str(journal), "--dry-run", *FAST)
        assert first.code == 0, first.err
        whole = tmp_path / "whole"
        done = small.cli("apply", str(planned), "--journal", str(whole), "--yes", *FAST)
        assert done.code == 0, done.err
        header = whole.read_bytes().split(b"\n")[0]
        journal.write_bytes(header[: len(header) // 2])
        small.script({})
        again = small.cli("apply", str(planned), "--journal", str(journal), "--yes", *FAST)
        assert again.code == 0, again.err
        assert journal.read_bytes().split(b"\n")[0] == header
        assert writes(small) == []  # every token is already inactive

    @pytest.mark.parametrize(
        ("where", "why"),
        [("folder", "Is a directory"), ("missing/journal", "No such file or directory")],
    )
    def test_a_path_that_cannot_be_a_journal_is_a_usage_error(
        self, small: LiveSandbox, planned: Path, tmp_path: Path, where: str, why: str
    ) -> None:
        (tmp_path / "folder").mkdir()
        run = small.cli("apply", str(planned), "--journal", str(tmp_path / where), "--yes")
        assert run.code == 2
        assert run.err_lines[-1] == f"usage error: cannot open journal {tmp_path / where}: {why}"
        assert writes(small) == []

    def test_the_plan_as_its_own_journal(self, small: LiveSandbox, planned: Path) -> None:
        before = planned.read_bytes()
        run = small.cli("apply", str(planned), "--journal", str(planned), "--yes")
        assert run.code == 2
        assert run.err_lines[-1] == f"usage error: {planned}: not a journal: no 'format' marker"
        assert planned.read_bytes() == before
        assert writes(small) == []

    def test_undo_into_the_journal_it_undoes(
        self, small: LiveSandbox, planned: Path, tmp_path: Path
    ) -> None:
        journal = tmp_path / "j"
        assert small.cli("apply", str(planned), "--journal", str(journal), "--yes", *FAST).code == 0
        before = journal.read_bytes()
        small.script({})
        run = small.cli("undo", str(journal), "--journal", str(journal), "--yes", *FAST)
        assert run.code == 2
        assert run.err_lines[-1] == f"usage error: {journal}: the journal belongs to another plan"
        assert journal.read_bytes() == before
        assert writes(small) == []


class TestThePlanNeverReplacesItsInputs:
    @pytest.mark.parametrize("option", ["--from", "--exempt"])
    def test_records_or_exemptions(self, small: LiveSandbox, tmp_path: Path, option: str) -> None:
        source = tmp_path / "records.jsonl"
        audit = small.cli("audit", "--format", "jsonl", "--output", str(source))
        assert audit.code == 0, audit.err
        before = source.read_bytes()
        small.script({})
        run = make_plan(small, source, option, str(source))
        assert run.code == 2
        assert run.err == (
            f"usage error: --output and {option} name the same file ({source}): the plan"
            " would replace it\n"
        )
        assert source.read_bytes() == before
        assert small.cli_requests() == []

    def test_the_journal_an_undo_needs(
        self, small: LiveSandbox, planned: Path, tmp_path: Path
    ) -> None:
        journal = tmp_path / "deactivate.journal"
        assert small.cli("apply", str(planned), "--journal", str(journal), "--yes", *FAST).code == 0
        before = journal.read_bytes()
        small.script({})
        run = small.cli(
            "plan",
            "delete",
            "--deactivated-by",
            str(journal),
            "--grace-days",
            "0",
            "--output",
            str(tmp_path / "." / "deactivate.journal"),
        )
        assert run.code == 2
        assert run.err == (
            f"usage error: --output and --deactivated-by name the same file"
            f" ({tmp_path / '.' / 'deactivate.journal'}): the plan would replace it\n"
        )
        assert journal.read_bytes() == before
        assert small.cli_requests() == []


class TestANameNoPlanCanHold:
    def test_is_refused_when_the_plan_is_made_and_can_be_exempted(
        self, small: LiveSandbox, tmp_path: Path
    ) -> None:
        """A 2,000-character name from the server made a plan ``apply`` refused whole;
        now ``plan`` names the token, and exempting it makes a plan that applies."""
        long = small.create("L" * 2000)["_id"]
        every = ("plan", "deactivate", "--stale-days", "0", "--as-of", "2040-01-01T00:00:00Z")
        run = small.cli(*every, "--output", str(tmp_path / "p"))
        assert run.code == 2
        assert run.err_lines[-1] == (
            f"usage error: token {long!r} has a name of 2,000 characters; a plan holds at"
            " most 1024: exempt it (by id) or rename it"
        )
        assert not (tmp_path / "p").exists()
        rotate = small.cli("plan", "rotate", "--id", long, "--output", str(tmp_path / "r"))
        assert (rotate.code, rotate.err_lines[-1]) == (2, run.err_lines[-1])
        (tmp_path / "keep.txt").write_text(long + "\n")
        exempt = ("--exempt", str(tmp_path / "keep.txt"))
        made = small.cli(*every, *exempt, "--output", str(tmp_path / "p"))
        assert made.code == 0, made.err
        small.script({})
        dry = small.cli("apply", str(tmp_path / "p"), "--journal", str(tmp_path / "j"), "--dry-run")
        assert dry.code == 0, dry.err
        assert writes(small) == []


def test_show_of_a_fifo_is_refused_at_once(small: LiveSandbox, tmp_path: Path) -> None:
    """``show`` peeked at the file to tell a journal from a plan with a blocking open: a
    FIFO under the name hung it."""
    fifo = tmp_path / "plan.json"
    os.mkfifo(fifo)
    run = small.cli_beside_fifo(fifo, "show", str(fifo))
    assert (run.code, run.err) == (2, f"usage error: {fifo}: not a plan (not a regular file)\n")
    assert small.cli_requests() == []


class TestACommandSink:
    def test_killed_by_a_signal_is_named(self) -> None:
        sink = CommandSink(python_cmd("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))
        with pytest.raises(DeliveryError) as caught:
            deliver(sink, created())
        assert str(caught.value) == f"{sys.executable!r} was killed by signal 9"

    def test_flooding_its_output_is_no_matter(self) -> None:
        """Megabytes on stdout and stderr (the secret among them) go nowhere: exit 0
        counts, and nothing is held in memory or blocks."""
        code = (
            "import sys; s = sys.stdin.read()\n"
            "for _ in range(2000): print(s * 50); print(s * 50, file=sys.stderr)"
        )
        deliver(CommandSink(python_cmd(code)), created())

    def test_one_that_reads_nothing_and_exits_0_counts(self) -> None:
        """README: it counts when it exits 0. Its closed stdin (a broken pipe for the
        secret) is no error of ours and no crash."""
        deliver(CommandSink("true"), created())
        with pytest.raises(DeliveryError) as caught:
            deliver(CommandSink("sh -c 'exec 0<&-; exit 4'"), created())
        assert str(caught.value) == "'sh' exited with status 4"

    def test_its_whole_process_group_is_killed_at_the_timeout(self, tmp_path: Path) -> None:
        """A command that leaves a child behind: the child goes with it (README: "its
        process group is killed")."""

        pid_file = tmp_path / "child.pid"
        code = (
            "import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
            f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
            "time.sleep(30)"
        )
        with pytest.raises(DeliveryError, match=r"timed out after 1 s$"):
            deliver(CommandSink(python_cmd(code), timeout=1.0), created())
        stat_file = Path(f"/proc/{pid_file.read_text()}/stat")
        for _ in range(100):  # killed: gone, or a zombie ("Z") until someone reaps it
            try:
                state = stat_file.read_text().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                break
            if state == "Z":
                break
            time.sleep(0.02)
        else:
            pytest.fail("the command's child outlived the timeout")


def test_rotate_with_a_command_killed_mid_delivery_leaves_no_new_token(
    small: LiveSandbox,
) -> None:
    """The whole of ``rotate``: the new token is deleted, the old one gets its name back
    and stays active, exit 1 with the reason, and no secret in any output."""
    old = small.items(status="active")[0]
    small.script({})
    command = shlex.join(["sh", "-c", "cat >/dev/null; kill -9 $$"])
    run = small.cli("rotate", old["_id"], "--deliver-cmd", command)
    assert run.code == 1
    assert run.err_lines[-1] == (
        f"error: rotation of token {old['_id']!r} failed at deliver: DeliveryError: 'sh' was"
        " killed by signal 9"
    )
    methods = [m for m, _ in writes(small)]
    assert methods == ["PUT", "POST", "DELETE", "PUT"]
    status, body = small.token(old["_id"])
    assert (status, body["data"]["name"], body["data"]["status"]) == (200, old["name"], "active")
    assert [t["name"] for t in small.items()].count(old["name"]) == 1
    assert not FULL_SECRET.search(run.out + run.err)
    assert small.api_key not in run.out + run.err


def test_a_created_id_no_journal_line_can_hold_is_deleted_and_rolled_back(
    small: LiveSandbox, tmp_path: Path
) -> None:
    """A hostile server answers a create with an id of 1,400 control characters (8,400
    bytes once JSON-escaped, more than a journal line holds): the create's outcome could
    not be journaled, the rollback could not journal its intents either, and the old token
    kept its retiring name beside a new token whose secret nobody held. Now the new token
    is deleted at once, the old one gets its name back, and the token is ``failed``."""
    old = small.create("victim")
    plan = tmp_path / "rotate.json"
    assert small.cli("plan", "rotate", "--id", old["_id"], "--output", str(plan)).code == 0

    def long_first_id() -> None:
        ids = small.sb._store._ids
        real = ids.new
        calls: list[int] = []

        def new(created_ms: int) -> str:
            calls.append(created_ms)
            return ("\x01" * 1400 if len(calls) == 1 else "") + real(created_ms)

        ids.new = new  # type: ignore[method-assign]

    small.call(long_first_id)
    small.script({})
    sink = tmp_path / "sink"
    sink.mkdir(mode=0o700)
    journal = tmp_path / "j"
    argv = ("apply", str(plan), "--journal", str(journal), "--yes", "--deliver-dir", str(sink))
    run = small.cli(*argv, *FAST)
    assert run.code == 1
    assert (
        f"failed: {old['_id']} 'victim': the server answered the create with an id of 1,424"
        " characters, which the journal cannot hold (PlanError: a journal record is longer"
        " than 8,192 bytes)"
    ) in run.out
    assert [m for m, _ in writes(small)] == ["PUT", "POST", "DELETE", "PUT"]
    victims = [(t["_id"], t["status"]) for t in small.items() if t["name"].startswith("victim")]
    assert victims == [(old["_id"], "active")]
    assert not [t for t in small.items() if "\x01" in t["_id"]]
    assert os.listdir(sink) == []
    small.script({})
    again = small.cli(*argv, *FAST)  # a final outcome: nothing is written again
    assert again.code == 1
    assert writes(small) == []


class TestDaysAPlanCanCount:
    """``--stale-days`` or ``--grace-days`` past what a ``timedelta`` holds was an
    OverflowError traceback (exit 1); now a usage error, nothing sent."""

    @pytest.mark.parametrize(
        "argv",
        [
            ("plan", "deactivate", "--stale-days", "1000000000"),
            ("plan", "rotate", "--stale-days", "99999999999999999999"),
            ("plan", "delete", "--deactivated-by", "j", "--grace-days", "1000000000"),
            ("audit", "--stale-days", "1000000000"),
        ],
    )
    def test_too_many_days_is_a_usage_error(
        self, small: LiveSandbox, tmp_path: Path, argv: tuple[str, ...]
    ) -> None:
        run = small.cli(*argv, "--output", str(tmp_path / "out.json"))
        assert run.code == 2
        command = " ".join(argv[: 2 if argv[0] == "plan" else 1])
        assert run.err_lines[-1] == (
            f"usage error: cellcast-tokens {command}: Invalid value for '{argv[-2]}':"
            f" {argv[-1]} is not in the range 0<=x<=999999999."
        )
        assert small.cli_requests() == []
        assert not (tmp_path / "out.json").exists()

    def test_the_sdk_refuses_them_as_plan_errors(self, small: LiveSandbox) -> None:
        from datetime import datetime, timezone

        from cellcast_async import CellcastSession, PlanError, build_plan, build_rotate_plan
        from cellcast_async._rotate_plan import build_retire_plan

        cc = CellcastSession(api_key=small.api_key, base_url=small.url)
        now = datetime(2026, 12, 4, tzinfo=timezone.utc)
        message = "must be at most 999,999,999 days"
        with pytest.raises(PlanError, match=f"^stale_days {message}$"):
            build_plan([], action="deactivate", stale_days=10**12, as_of=now, account=cc)
        with pytest.raises(PlanError, match=f"^grace_days {message}$"):
            build_plan(
                [], action="delete", deactivated_by={}, grace_days=10**9, as_of=now, account=cc
            )
        with pytest.raises(PlanError, match=f"^stale_days {message}$"):
            build_rotate_plan([], stale_days=10**20, as_of=now, account=cc)
        with pytest.raises(PlanError, match=f"^grace_days {message}$"):
            build_retire_plan([], rotated_by={}, grace_days=10**9, as_of=now, account=cc)


@pytest.mark.parametrize("timeout", ["nan", "inf"])
def test_a_deliver_timeout_that_never_fires_is_refused(small: LiveSandbox, timeout: str) -> None:
    """``--deliver-timeout nan`` passed click's range check and never fired: a command
    that hangs hung the rotation for good. Refused where it is parsed (``POSITIVE``),
    before anything is sent."""
    token = small.items(status="active")[0]["_id"]
    small.script({})
    run = small.cli("rotate", token, "--deliver-cmd", "sleep 30", "--deliver-timeout", timeout)
    assert run.code == 2
    assert run.err_lines[-1] == (
        "usage error: cellcast-tokens rotate: Invalid value for '--deliver-timeout':"
        f" {timeout!r} is not a finite number."
    )
    assert small.cli_requests() == []


def test_ctrl_c_mid_apply_stops_cleanly_and_resumes(small: LiveSandbox, planned: Path) -> None:
    """SIGINT between two writes: exit 130 with "interrupted", no traceback; the journal
    is whole, and the same command goes on to one final outcome per token."""
    journal = planned.with_name("j")
    argv = ("apply", str(planned), "--journal", str(journal), "--yes")
    process = subprocess.Popen(
        [sys.executable, "-m", "cellcast_async", *small.args(*argv, "--write-rate", "20")],
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(500):  # until a few tokens are done
            if journal.exists() and journal.read_text().count("\n") >= 5:
                break
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert err.splitlines()[-1] == "interrupted"
    assert "Traceback" not in err
    assert out == ""
    lines = journal.read_bytes().split(b"\n")
    assert lines[-1] == b""  # every line whole
    again = small.cli(*argv, *FAST)
    assert again.code == 0, again.err
    finals = [
        json.loads(line)["token"]
        for line in journal.read_bytes().splitlines()[1:]
        if json.loads(line)["event"] == "outcome"
    ]
    plan_ids = [item["id"] for item in json.loads(planned.read_text())["items"]]
    assert sorted(finals) == sorted(plan_ids)
    assert [m for m, _ in writes(small)].count("PUT") == len(plan_ids)


def test_a_hostile_server_through_plan_show_and_apply(tmp_path: Path) -> None:
    """Ids, names, sub-accounts and error messages made of markup, escapes and bidi
    controls: ``plan``, ``show`` (of the plan and of the journal) and ``apply`` (every
    write refused with a hostile message) print none of them raw; the failures are
    named, exit 1."""
    with HostileApi() as api:
        plan = tmp_path / "plan.json"
        journal = tmp_path / "j"
        argv = ("--stale-days", "365", "--as-of", HOSTILE_AS_OF, "--output", str(plan))
        runs = [run_cli(*api.args("plan", "deactivate", *argv))]
        runs.append(run_cli(*api.args("show", str(plan))))
        runs.append(run_cli(*api.args("apply", str(plan), "--journal", str(journal), "--yes")))
        runs.append(run_cli(*api.args("show", str(journal))))
        runs.append(run_cli(*api.args("--json", "show", str(journal))))
    assert [r.code for r in runs] == [0, 0, 1, 0, 0], runs[2].err
    for run in runs:
        found = [c for c in RAW_CONTROLS if c in run.out + run.err]
        assert found == [], (found, run)
    failed = [line for line in runs[2].out.splitlines() if line.startswith("failed: ")]
    assert len(failed) == len(json.loads(plan.read_text())["items"]) == 12
    assert json.loads(runs[4].out)["counts"] == {"failed": 12}


class TestChartsStayBounded:
    """The HTML report's charts drew one bar or tick per bin or month whatever the data:
    ``--stale-days 999999999`` made billions of bins (a freeze, then memory), a token
    created in year 1 24,000 monthly bars (seconds, megabytes)."""

    def test_a_threshold_far_past_every_age(self) -> None:
        fresh, stale = age_bins(100, MAX_DAYS)
        assert len(fresh) + len(stale) <= BINS + 3
        assert fresh[-1] == stale[0] == MAX_DAYS
        ticks = age_ticks(100, MAX_DAYS)
        assert len(ticks) <= 10
        assert (ticks[0], ticks[-1]) == (0, MAX_DAYS)
        assert len(age_ticks(10, 10_000)) <= 10

    def test_a_token_created_in_year_one(self) -> None:
        figures = AuditFigures()
        figures.created.update({"0001-01": 1, "2026-01": 3, "2026-12": 1})
        svg = created_chart(figures)
        assert len(svg) < 200_000
        assert "before 2007-02" in svg  # the year-1 token counts there; 239 months follow

    @pytest.mark.parametrize(
        ("ages", "stale_days"), [((5, 40), "365"), ((700_000, 5), str(MAX_DAYS))]
    )
    def test_end_to_end(self, tmp_path: Path, ages: tuple[int, ...], stale_days: str) -> None:
        """No token stale (an account in good order: the stale histogram had no bin, an
        IndexError traceback), and a token of year 1 with the largest threshold."""
        with LiveSandbox(seed=0, tokens=0, sub_accounts=1) as live:

            def add() -> None:
                for age in ages:
                    live.sb.add_tokens(1, live.sb.sub_account_ids[0], "active", age_days=age)

            live.call(add)
            page = tmp_path / "report.html"
            argv = ("audit", "--html", str(page), "--stale-days", stale_days)
            run = live.cli(*argv, "--output", str(tmp_path / "r.jsonl"))
        assert run.code == 0, run.err
        assert page.stat().st_size < 1_000_000
        assert page.read_text().count("<svg") == 3


class TestADeliveryFolder:
    def test_owned_by_someone_else_is_refused(self, tmp_path: Path) -> None:
        folder = tmp_path / "theirs"
        folder.mkdir(mode=0o700)
        if os.geteuid() == 0:
            os.chown(folder, 12345, -1)
        else:  # pragma: no cover - the tests run as root in CI; elsewhere use a folder not ours
            folder = Path("/")
        with pytest.raises(CliUsageError) as caught:
            DirectorySink(str(folder))
        assert str(caught.value) == f"--deliver-dir {str(folder)!r} is not owned by you"

    def test_a_fifo_under_the_final_name_is_not_opened(self, tmp_path: Path) -> None:
        """Planted where the file goes: the hard link refuses it, nothing blocks, and the
        partial file is gone."""
        folder = tmp_path / "secrets"
        folder.mkdir(mode=0o700)
        token = created()
        os.mkfifo(folder / file_name(token.id, token.name))
        sink = DirectorySink(str(folder))
        with pytest.raises(DeliveryError) as caught:
            deliver(sink, token)
        assert str(caught.value) == (
            f"{file_name(token.id, token.name)!r} already exists in {str(folder)!r}:"
            " not overwritten"
        )
        assert os.listdir(folder) == [file_name(token.id, token.name)]
        assert sink.delivered(token.id, token.name) is False

    def test_a_folder_with_the_partial_prefix_is_left_alone(self, tmp_path: Path) -> None:
        """The sweep of a killed run's partial files failed on a folder so named, and the
        first token's delivery failed with it (IsADirectoryError)."""
        folder = tmp_path / "secrets"
        folder.mkdir(mode=0o700)
        (folder / ".cellcast-partial-notes").mkdir()
        (folder / ".cellcast-partial-left-by-a-kill").write_text("half")
        token = created()
        deliver(DirectorySink(str(folder)), token)
        assert sorted(os.listdir(folder)) == sorted(
            [".cellcast-partial-notes", file_name(token.id, token.name)]
        )


def test_names_a_spreadsheet_would_run_survive_a_csv_audit_into_a_plan(
    tmp_path: Path,
) -> None:
    """``--from`` an audit's CSV, where names that start like formulas are quoted: the plan
    holds the names the server has, so ``apply`` finds each token unchanged (a name read
    back still quoted would skip every one as "name changed")."""
    names = ['=HYPERLINK("http://evil.example/","x")', "+1+1", "@SUM(A1)", "'=1", "a\u202eb"]
    with LiveSandbox(seed=0, tokens=0, sub_accounts=1) as live:
        for name in names:
            live.create(name)
        records, plan = tmp_path / "audit.csv", tmp_path / "plan.json"
        assert live.cli("audit", "--format", "csv", "--output", str(records)).code == 0
        later = ("--stale-days", "0", "--as-of", "2040-01-01T00:00:00Z")
        made = live.cli("plan", "deactivate", *later, "--from", str(records), "--output", str(plan))
        assert made.code == 0, made.err
        live.script({})
        run = live.cli("--json", "apply", str(plan), "--journal", str(tmp_path / "j"), "--yes")
        assert run.code == 0, run.err
        outcomes = json.loads(run.out)["outcomes"]
        assert sorted((o["name"], o["result"]) for o in outcomes) == sorted(
            (name, "done") for name in names
        )
        assert [m for m, _ in writes(live)] == ["PUT"] * len(names)


def test_an_id_no_request_can_carry_fails_that_token_only(tmp_path: Path) -> None:
    """A hostile server's id holding a lone surrogate made its way into a plan; reading
    it raised the SDK's ValueError, which stopped the whole apply (exit 2) with the
    tokens after it never tried. Now that token is ``failed`` and the others go on."""
    with HostileApi() as api:
        api.tokens = [
            _item("bad\udcff-1", "first", "sub", "Sub", created=OLD),
            _item("fine-2", "second", "sub", "Sub", created=OLD),
        ]
        plan, journal = tmp_path / "plan.json", tmp_path / "j"
        argv = ("--stale-days", "365", "--as-of", HOSTILE_AS_OF, "--output", str(plan))
        assert run_cli(*api.args("plan", "deactivate", *argv)).code == 0
        run = run_cli(*api.args("--json", "apply", str(plan), "--journal", str(journal), "--yes"))
    assert run.code == 1, run.err
    outcomes = {o["id"]: (o["result"], o["reason"]) for o in json.loads(run.out)["outcomes"]}
    assert outcomes["bad\udcff-1"] == (
        "failed",
        "ValueError: token_id is not valid Unicode text (a lone surrogate at index 3)",
    )
    assert outcomes["fine-2"][0] == "failed"  # tried: the hostile server refuses every write
    assert outcomes["fine-2"][1].startswith("BadRequestError: PUT ")


def test_a_symlink_planted_under_the_plan_temporary_is_never_written_through(
    small: LiveSandbox, tmp_path: Path
) -> None:
    """``Plan.save`` wrote ``<output>.tmp<pid>`` (a name anyone sharing the folder can
    guess) following a symlink planted there: the plan overwrote the file it pointed to.
    The temporary is now made exclusively under a random name."""
    victim = tmp_path / "authorized_keys"
    victim.write_text("ssh-ed25519 AAAA... someone\n")
    output = tmp_path / "plan.json"
    Path(f"{output}.tmp{os.getpid()}").symlink_to(victim)
    run = make_plan(small, output)
    assert run.code == 0, run.err
    assert victim.read_text() == "ssh-ed25519 AAAA... someone\n"
    assert json.loads(output.read_text())["format"] == "cellcast-plan"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["authorized_keys", "plan.json", f"plan.json.tmp{os.getpid()}"]
    )


def test_an_exemption_list_saved_with_a_byte_order_mark_still_exempts_its_first_line(
    small: LiveSandbox, tmp_path: Path
) -> None:
    """Notepad's "UTF-8" starts the file with U+FEFF, CRLF ends its lines: the mark glued
    itself to the first id, which then matched nothing, and that token was planned."""
    every = tmp_path / "every.json"
    assert make_plan(small, every).code == 0
    first, second = (item["id"] for item in json.loads(every.read_text())["items"][:2])
    keep = tmp_path / "keep.txt"
    keep.write_bytes(b"\xef\xbb\xbf" + f"{first}\r\n{second}\r\n".encode())
    run = make_plan(small, tmp_path / "plan.json", "--exempt", str(keep))
    assert run.code == 0, run.err
    planned = {item["id"] for item in json.loads((tmp_path / "plan.json").read_text())["items"]}
    assert first not in planned
    assert second not in planned
    assert len(planned) == len(json.loads(every.read_text())["items"]) - 2


def test_undo_of_a_journal_made_for_another_api_is_refused(
    small: LiveSandbox, planned: Path, tmp_path: Path
) -> None:
    """The same server and key under another spelling of its URL is another API to a plan
    (README: "bound to the account ... and the base URL"): its journal is not undone."""
    journal = tmp_path / "j"
    assert small.cli("apply", str(planned), "--journal", str(journal), "--yes", *FAST).code == 0
    small.script({})
    other = small.url.replace("127.0.0.1", "localhost")
    argv = ("--api-key", small.api_key, "--base-url", other)
    run = run_cli(*argv, "undo", str(journal), "--journal", str(tmp_path / "u"), "--yes")
    assert run.code == 2
    assert run.err_lines[-1] == (
        f"usage error: {journal}: the plan was made for another API ({small.url!r}), not {other!r}"
    )
    assert small.cli_requests() == []
    assert not (tmp_path / "u").exists()
