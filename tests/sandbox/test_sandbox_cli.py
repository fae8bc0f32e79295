"""``python -m cellcast_async.sandbox`` and ``serve()``: announce once, serve until a signal."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from pathlib import Path

import aiohttp
import pytest

from cellcast_async.sandbox import Faults, Sandbox, serve
from cellcast_async.sandbox.__main__ import main
from tests._wire import TOKENS_PATH

ROOT = Path(__file__).resolve().parents[2]


async def start_cli(*args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cellcast_async.sandbox",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )


class TestModuleMain:
    """The subprocess benchmarks start: it announces itself once, serves, and exits cleanly."""

    @pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
    async def test_announces_serves_and_stops(self, sig: signal.Signals) -> None:
        proc = await start_cli("--port", "0", "--tokens", "50", "--seed", "4", "--latency", "0")
        assert proc.stdout is not None
        assert proc.stderr is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            info = json.loads(line)
            assert list(info) == ["url", "api_key", "sub_account_ids"]
            assert info["url"].startswith("http://127.0.0.1:")
            assert len(info["sub_account_ids"]) == 3
            assert info["api_key"] == Sandbox(seed=4).api_key
            async with (
                aiohttp.ClientSession() as http,
                http.get(
                    info["url"] + TOKENS_PATH,
                    headers={"Authorization": f"Bearer {info['api_key']}"},
                ) as response,
            ):
                assert response.status == 200
                assert (await response.json())["data"]["total"] == 50
        finally:
            proc.send_signal(sig)
            code = await asyncio.wait_for(proc.wait(), 20)
        assert code == 0
        assert await proc.stdout.read() == b""  # exactly one line, ever
        assert await proc.stderr.read() == b""

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (
                ["--host", "0.0.0.0"],
                "usage error: the sandbox only listens on loopback (127.0.0.1, ::1), not '0.0.0.0'",
            ),
            (
                ["--host", "example.com"],
                "usage error: the sandbox only listens on loopback (127.0.0.1, ::1), "
                "not 'example.com'",
            ),
            (
                ["--error-rate", "2"],
                "usage error: python -m cellcast_async.sandbox: Invalid value for '--error-rate': "
                "2.0 is not in the range 0<=x<=1.",
            ),
            (
                ["--latency", "-1"],
                "usage error: python -m cellcast_async.sandbox: Invalid value for '--latency': "
                "-1.0 is not in the range x>=0.",
            ),
            (
                ["--error-kinds", "418"],
                "usage error: python -m cellcast_async.sandbox: Invalid value for '--error-kinds': "
                "choose from 429,500,502,503,504,drop,hang,malformed, got '418'",
            ),
            # nan passes every range check and inf never ends a wait: refused as typed.
            *(
                (
                    [option, value],
                    "usage error: python -m cellcast_async.sandbox: Invalid value for "
                    f"'{option}': '{value}' is not a finite number.",
                )
                for option, value in [
                    ("--latency", "nan"),
                    ("--latency-jitter", "inf"),
                    ("--retry-after", "nan"),
                    ("--storm", "inf"),
                    ("--error-rate", "nan"),
                    ("--rate-limit", "nan"),
                    ("--rate-limit", "inf"),
                    ("--burst", "inf"),
                ]
            ),
            (
                ["--tokens", "-3"],
                "usage error: python -m cellcast_async.sandbox: Invalid value for '--tokens': "
                "-3 is not in the range x>=0.",
            ),
            (
                ["--fail-every", "-1"],
                "usage error: python -m cellcast_async.sandbox: Invalid value for '--fail-every': "
                "-1 is not in the range x>=0.",
            ),
        ],
    )
    def test_bad_arguments_are_usage_errors(
        self, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(argv) == 2
        assert capsys.readouterr() == ("", message + "\n")


class TestServe:
    """serve() blocks, prints nothing, and calls ready(sb) once listening."""

    def test_ready_callback_and_stop(self, capsys: pytest.CaptureFixture[str]) -> None:
        seen: dict[str, object] = {}
        loops: list[asyncio.AbstractEventLoop] = []

        def ready(sb: Sandbox) -> None:
            seen.update(url=sb.url, faults=sb.faults, total=sb.token_count())
            loops.append(asyncio.get_running_loop())
            # Stop it the way Ctrl-C would end asyncio.run(): cancel the main task.
            task = asyncio.current_task()
            assert task is not None
            loops[0].call_soon(task.cancel)

        faults = Faults(latency=0.01)
        thread = threading.Thread(
            target=lambda: serve(port=0, tokens=7, faults=faults, ready=ready), daemon=True
        )
        thread.start()
        thread.join(20)
        assert not thread.is_alive()
        assert str(seen["url"]).startswith("http://127.0.0.1:")
        assert seen["faults"] == faults
        assert seen["total"] == 7
        assert capsys.readouterr() == ("", "")
