"""``--sandbox`` (an embedded demo API), the ``sandbox`` command, and ``python -m``."""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import IO

import pytest

from cellcast_async.sandbox import Sandbox

from .._subprocess import run_python
from ._support import ROOT, TOKENS_PATH, LiveSandbox, cli_env, expected_summary, report_of, run_cli

SUB_ID = "[0-9a-f]{24}"
# The same data as the embedded one: `--sandbox` runs Sandbox(seed=0), 300 tokens by default.
SANDBOX_LINE = re.compile(
    rf"sandbox: demo data at http://127\.0\.0\.1:\d+; sub-accounts ({SUB_ID}), ({SUB_ID}), "
    rf"({SUB_ID})"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Lines:
    """A subprocess's stdout read line by line on a thread, so a read can time out."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put("")

    def next(self, timeout: float = 10.0) -> str:
        return self._queue.get(timeout=timeout)

    def rest(self) -> str:
        self._thread.join(timeout=5)
        text = []
        while not self._queue.empty():
            text.append(self._queue.get())
        return "".join(text)


def start_python(*argv: str) -> subprocess.Popen[str]:
    """``python ARGV`` from the repository's root, its output piped, no Cellcast settings."""
    return subprocess.Popen(
        [sys.executable, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=cli_env(),
    )


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], Lines, int]]:
    """``python -m cellcast_async sandbox --port PORT --tokens 40``, stopped after the test."""
    port = free_port()
    process = start_python("-m", "cellcast_async", "sandbox", "--port", str(port), "--tokens", "40")
    assert process.stdout is not None
    try:
        yield process, Lines(process.stdout), port
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


class TestSandboxFlag:
    """``--sandbox`` runs a command against an embedded demo API, with no key at all."""

    def test_list(self, live: LiveSandbox) -> None:
        result = run_cli("--sandbox", "--json", "list", "--max-items", "5")
        (line,) = result.err_lines
        match = SANDBOX_LINE.fullmatch(line)
        assert result.code == 0
        assert match is not None
        assert match.groups() == live.sb.sub_account_ids
        printed = [token["id"] for token in json.loads(result.out)]
        assert printed == [item["_id"] for item in live.items()[:5]]

    def test_audit_is_judged_at_the_demo_reference_time(self, live: LiveSandbox) -> None:
        result = run_cli("--sandbox", "--json", "audit", "--quiet", "--stale-days", "180")
        expected = expected_summary(live.items(), as_of=live.sb.reference_time, stale_days=180)
        assert (result.code, result.err) == (0, "")  # --quiet: no banner either
        assert report_of(json.loads(result.out)) == expected

    def test_audit_text_with_progress(self) -> None:
        result = run_cli("--sandbox", "audit", "--page-size", "150", "--concurrency", "1")
        lines = result.err_lines
        assert result.code == 0
        assert SANDBOX_LINE.fullmatch(lines[0])
        assert [line.split(",")[0] for line in lines[1:]] == [
            "audit: 150/300 tokens",
            "audit: 300/300 tokens",
        ]
        assert result.out.startswith("Audit of 300 token(s) as of 2025-07-16 00:00 UTC")

    def test_create_in_the_demo_sub_account(self, live: LiveSandbox) -> None:
        result = run_cli("--sandbox", "create", "--name", "Demo Key", "--sub-account", "demo")
        first, second = result.out.splitlines()
        assert result.code == 0
        assert re.fullmatch(
            rf"Created token {SUB_ID} \('Demo Key'\) for {live.sb.sub_account_ids[0]}", first
        )
        assert re.fullmatch(r"token: ccst_[A-Za-z0-9_-]{40}", second)
        assert SANDBOX_LINE.fullmatch(result.err_lines[0])
        assert result.err_lines[1:] == [
            "warning: this is the only time the full token is shown; store it securely now."
        ]

    def test_the_embedded_key_is_never_printed(self, live: LiveSandbox) -> None:
        runs = [
            run_cli("--sandbox", "list", "--max-items", "3"),
            run_cli("--sandbox", "audit"),
            run_cli("--sandbox", "--debug", "get", "0" * 24),
        ]
        assert [r.code for r in runs] == [0, 0, 1]
        assert all(live.api_key not in r.out + r.err for r in runs)


class TestSandboxCommand:
    """``cellcast-tokens sandbox`` serves a local API until Ctrl-C, then exits 0."""

    def test_serves_until_sigint(self, served: tuple[subprocess.Popen[str], Lines, int]) -> None:
        process, lines, port = served
        url = f"http://127.0.0.1:{port}"
        assert lines.next() == f"Sandbox listening on {url}\n"
        key_line = lines.next()
        key = key_line.removeprefix("  api key (sandbox only): ").rstrip("\n")
        assert key_line == f"  api key (sandbox only): {key}\n"
        assert re.fullmatch(rf"  sub-accounts: {SUB_ID}, {SUB_ID}, {SUB_ID}\n", lines.next())
        assert lines.next() == (
            "  demo data dated up to 2025-07-16: audit it with --as-of 2025-07-16T00:00:00Z,"
            " or every token looks stale\n"
        )
        assert lines.next() == "Press Ctrl-C to stop.\n"

        request = urllib.request.Request(
            url + TOKENS_PATH, headers={"Authorization": f"Bearer {key}"}
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as response:
            assert (response.status, json.load(response)["data"]["total"]) == (200, 40)

        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=5) == 0
        assert time.monotonic() - started < 3
        assert lines.rest() == ""
        assert process.stderr is not None
        assert process.stderr.read() == ""

    def test_a_non_loopback_host_is_a_usage_error(self) -> None:
        result = run_cli("sandbox", "--host", "0.0.0.0", "--port", "0")
        assert (result.code, result.out) == (2, "")
        assert result.err == (
            "usage error: the sandbox only listens on loopback (127.0.0.1, ::1), not '0.0.0.0'\n"
        )


class TestModuleEntryPoint:
    """``python -m cellcast_async`` is the CLI, exit code included."""

    @pytest.mark.parametrize(
        ("argv", "code", "start"),
        [
            (["frob"], 2, "usage error: cellcast-tokens: No such command 'frob'."),
            (
                [
                    *("--api-key", "k", "--base-url", "http://127.0.0.1:{port}"),
                    *("--max-retries", "0", "get", "x"),
                ],
                1,
                "error: GET /api/v1/apiClient/token/x: cannot connect to 127.0.0.1:{port}: ",
            ),
        ],
        ids=["usage", "connection-refused"],
    )
    def test_exit_code_and_one_error_line(self, argv: list[str], code: int, start: str) -> None:
        port = free_port()  # closed again: nothing listens there
        argv = [a.format(port=port) for a in argv]
        completed = run_python("-m", "cellcast_async", *argv, cwd=ROOT, env=cli_env(), timeout=30)
        assert (completed.returncode, completed.stdout) == (code, "")
        assert len(completed.stderr.splitlines()) == 1
        assert completed.stderr.startswith(start.format(port=port))


class TestSandboxCommandOptions:
    """``cellcast-tokens sandbox`` takes the server's options, faults included."""

    def test_guaranteed_faults_and_quiet(self) -> None:
        port = free_port()
        argv = [sys.executable, "-m", "cellcast_async", "sandbox", "--port", str(port)]
        argv += ["--tokens", "5", "--fail-every", "2", "--error-kinds", "503", "--quiet"]
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env()
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        key = Sandbox(seed=0).api_key
        try:
            for _ in range(200):  # --quiet announces nothing: wait for the port instead
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.05)
            statuses = []
            for _ in range(4):
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}{TOKENS_PATH}",
                    headers={"Authorization": f"Bearer {key}"},
                )
                try:
                    with opener.open(request, timeout=10) as response:
                        statuses.append(response.status)
                except urllib.error.HTTPError as exc:
                    statuses.append(exc.code)
                    exc.close()
        finally:
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=10)
        assert statuses == [200, 503, 200, 503]
        assert (process.returncode, out, err) == (0, "", "")

    def test_json_announcement(self) -> None:
        """``--json`` announces itself as ``python -m cellcast_async.sandbox`` does."""
        line, module_line = first_lines()
        assert list(json.loads(line)) == list(json.loads(module_line))
        assert list(json.loads(line)) == ["url", "api_key", "sub_account_ids"]


def first_lines() -> tuple[str, str]:
    """The first stdout line of ``sandbox --json`` and of ``python -m ...sandbox``."""
    lines = []
    for argv in (["-m", "cellcast_async", "sandbox", "--json"], ["-m", "cellcast_async.sandbox"]):
        process = start_python(*argv, "--port", "0", "--tokens", "3")
        assert process.stdout is not None
        try:
            lines.append(Lines(process.stdout).next(20))
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=10)
    return lines[0], lines[1]
