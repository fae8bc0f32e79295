"""A real ``redis-server`` for the shared rate store's tests (Debian package ``redis-server``).

``redis_url`` is one server per test session; ``redis_factory`` starts private ones (for a
test that kills its server). Each listens on 127.0.0.1 at a free port with no persistence,
and is stopped when its fixture ends: no test run leaves one behind.

When ``redis-server`` is missing, the tests that need it are skipped on a workstation but
fail under CI (``CI=true``; ``.ci/run`` installs the package first), so CI never passes
without having run them.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

_STARTUP_TIMEOUT = 10.0
_running: set[subprocess.Popen[bytes]] = set()


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _executable() -> str:
    path = shutil.which("redis-server")
    if path is None:
        message = "redis-server is not installed (Debian: apt-get install redis-server)"
        if _in_ci():
            pytest.fail(f"{message}; CI must run the Redis tests", pytrace=False)
        pytest.skip(message)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class RedisServer:
    """One running server: its URL (password included when set), port and process."""

    port: int
    password: str | None
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """Stop it now (SIGKILL), as a crash would."""
        _stop(self.process, graceful=False)


def _stop(process: subprocess.Popen[bytes], *, graceful: bool = True) -> None:
    if process.poll() is None:
        if graceful:
            process.terminate()
        else:
            process.kill()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    _running.discard(process)


@atexit.register
def _stop_leftovers() -> None:  # an interrupted run still leaves no server behind
    for process in list(_running):
        _stop(process, graceful=False)


def _wait_ready(process: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.01)
    return False


@contextlib.contextmanager
def running_redis(password: str | None = None) -> Iterator[RedisServer]:
    """Start a server, yield it, stop it (whatever the test did to it)."""
    executable = _executable()
    workdir = tempfile.mkdtemp(prefix="cellcast-redis-")
    try:
        for _attempt in range(3):  # the free port can be taken between probe and bind
            port = _free_port()
            args = [
                executable,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", workdir,
                "--daemonize", "no",
                "--loglevel", "warning",
            ]  # fmt: skip
            if password:
                args += ["--requirepass", password]
            process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            _running.add(process)
            if _wait_ready(process, port):
                break
            _stop(process, graceful=False)
        else:
            pytest.fail("redis-server did not start on 127.0.0.1", pytrace=False)
        server = RedisServer(port=port, password=password, process=process)
        try:
            yield server
        finally:
            _stop(process)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``redis://127.0.0.1:PORT/0`` of a server shared by the whole test session."""
    with running_redis() as server:
        yield server.url


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., RedisServer]]:
    """``redis_factory(password=None)`` starts a private server, stopped after the test."""
    with contextlib.ExitStack() as stack:

        def start(password: str | None = None) -> RedisServer:
            return stack.enter_context(running_redis(password))

        yield start
