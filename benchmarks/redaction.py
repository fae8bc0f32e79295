"""Microseconds per text and per error for the redactor, against a baseline (README, "Redaction").

    python benchmarks/redaction.py [--baseline REF] [--rounds 7]

The baseline is ``cellcast_async/_redact.py`` as git holds it at REF (default: ``main``),
loaded next to the current one, so that both run on the same machine, in one process,
on the same texts, taking turns in each round. Each figure is the best of ``--rounds``.

Rows: a message with no escape in it (the common case), a message with percent- and
JSON-escapes, a DEBUG log record through the log filter, and a whole ``APIError``
(message, detail, a 20-field body, 12 headers) scrubbed; then the same error with 1,024
remembered token values (the session's bound), which the baseline had no memory of; then
what a hostile answer can cost: a 1 MiB text, a 1 MiB text made of escapes only, and a
body of a million one-character strings.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cellcast_async import _redact as current  # noqa: E402
from cellcast_async._exceptions import BadRequestError  # noqa: E402

KEY = "ck_live_7d2f9a4c1e8b6d3f0a5c2e9b7d4f1a8c6e3b0d5f"
PATH = "GET /api/v1/apiClient/token/6877b1234567890abcdef123"
PLAIN = f"{PATH} -> 400 Validation error: Token name already exists for this sub-account"
ESCAPED = (
    'upstream said {\\"error\\":\\"invalid\\",\\"path\\":\\"\\/api\\/v1\\/apiClient\\/token\\"}'
    " see https://api.cellcast.com/docs?q=token%20name%2Fsub&lang=en"
)
LOG = f"{PATH} -> 200 in 12.3 ms (attempt 1)"
HUGE = ("the answer goes on and on " * 40_330)[: 2**20]
ESCAPES = '\\"' * 2**19
MANY = ["a"] * 1_000_000


def load_baseline(ref: str) -> types.ModuleType:
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:cellcast_async/_redact.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = importlib.util.spec_from_loader("cellcast_async._redact_baseline", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "cellcast_async"
    exec(compile(source, f"{ref}:_redact.py", "exec"), module.__dict__)
    return module


def error() -> BadRequestError:
    body = {f"field_{n}": f"value {n} of the answer, nothing secret" for n in range(18)}
    body |= {"message": PLAIN, "error": {"message": ESCAPED}}
    headers = {f"X-Header-{n}": f"header value {n}" for n in range(11)}
    headers["X-Request-Id"] = "req-5b0e8d2a7c4f1e9b"
    return BadRequestError(
        PLAIN, status_code=400, detail=ESCAPED, body=body, headers=headers, method="GET"
    )


def best(fn: Callable[[], Any], rounds: int, number: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - started) / number)
    return min(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    try:
        baseline: types.ModuleType | None = load_baseline(args.baseline)
    except (OSError, subprocess.CalledProcessError):
        print(f"(no baseline: git has no {args.baseline}:cellcast_async/_redact.py here)")
        baseline = None

    remembered = current.Redactor([KEY], remember=current.REMEMBERED)
    remembered.learn(f"ccst_{n:06d}_{'Zm9yLXRlc3RzLW9ubHk' * 2}" for n in range(1024))
    redactors = {"current": current.Redactor([KEY], remember=current.REMEMBERED)}
    if baseline is not None:
        redactors["baseline"] = baseline.Redactor([KEY])
    record = logging.LogRecord("cellcast_async", logging.DEBUG, __file__, 1, LOG, None, None)
    errors = {name: error() for name in redactors}  # scrubbing is idempotent: same work
    remembered_error = error()

    def each(call: Callable[[Any, str], Any]) -> dict[str, Callable[[], Any]]:
        return {name: (lambda r=r, n=name: call(r, n)) for name, r in redactors.items()}

    rows: list[tuple[str, dict[str, Callable[[], Any]], int]] = [
        ("message, no escape", each(lambda r, n: r.text(PLAIN)), 20000),
        ("message with escapes", each(lambda r, n: r.text(ESCAPED)), 20000),
        ("log record (filter)", each(lambda r, n: r.text(record.getMessage())), 20000),
        ("APIError scrubbed", each(lambda r, n: r.scrub(errors[n])), 2000),
        ("APIError, 1,024 tokens", {"current": lambda: remembered.scrub(remembered_error)}, 500),
        ("1 MiB text", each(lambda r, n: r.text(HUGE)), 3),
        ("1 MiB of escapes", each(lambda r, n: r.text(ESCAPES)), 3),
        ("body of 1M strings", each(lambda r, n: r.value(MANY)), 1),
    ]
    print(f"{'case':<26} {'baseline us':>12} {'current us':>11} {'ratio':>7}")
    print(f"{'-' * 26} {'-' * 12} {'-' * 11} {'-' * 7}")
    for name, fns, number in rows:
        base = best(fns["baseline"], args.rounds, number) if "baseline" in fns else None
        now = best(fns["current"], args.rounds, number)
        shown = f"{base:12.1f}" if base is not None else f"{'-':>12}"
        ratio = f"{now / base:7.2f}" if base is not None else f"{'-':>7}"
        print(f"{name:<26} {shown} {now:11.1f} {ratio}")


if __name__ == "__main__":
    main()
