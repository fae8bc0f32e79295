"""The one helpers module of the CLI tests (``tests/cli``, and the command-line tests of
``tests/adversarial``): a sandbox on its own thread, a CLI runner in-process and the
environment for one in a subprocess, plain-HTTP reads, and the fixtures both
``conftest.py`` files register (``live``, ``paths``).

``cli.main()`` calls ``asyncio.run`` itself, so the tests are plain synchronous functions
and the sandbox they talk to runs on a background thread with its own event loop. What the
tests compare the CLI's output against is read from the sandbox over plain HTTP (urllib,
no SDK), so the SDK's pager and models are not checking themselves.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cellcast_async.cli import main

from .._threaded_sandbox import ThreadedSandbox
from .._wire import TOKENS_PATH as TOKENS_PATH  # re-exported: the CLI tests read it here

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root: a CLI subprocess runs from there."""
# The shape of a full sandbox token (what create returns): a leaked one matches this.
FULL_SECRET = re.compile(r"ccst_[A-Za-z0-9_-]{40}")
# No proxy: every request in these tests goes to 127.0.0.1 and nowhere else.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Run:
    """One ``cellcast-tokens`` run: its exit code and everything it wrote."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


class TtyStringIO(io.StringIO):
    """A StringIO that says it is a terminal, as stderr does in an interactive shell."""

    def isatty(self) -> bool:
        return True


def cli_env() -> dict[str, str]:
    """This environment minus any Cellcast settings, for a CLI subprocess, importing this
    checkout's package."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLCAST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_cli(*argv: str, stderr: io.StringIO | None = None) -> Run:
    """``main(argv)`` with both streams captured."""
    out = io.StringIO()
    err = stderr if stderr is not None else io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return Run(code, out.getvalue(), err.getvalue())


class LiveSandbox(ThreadedSandbox):
    """A :class:`Sandbox` served from a background thread's event loop, with CLI helpers."""

    def script(self, entries: Mapping[int, str]) -> None:
        """Forget the requests so far, then fault exactly these (1-based) next requests."""

        def script() -> None:
            self.sb.reset_requests()
            self.sb.script(entries)

        self.call(script)

    # --- plain HTTP reads ------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.sb.url

    @property
    def api_key(self) -> str:
        return self.sb.api_key

    def args(self, *argv: str, key: str | None = None) -> list[str]:
        """Global options pointing the CLI at this sandbox, then ``argv``."""
        return ["--api-key", key or self.api_key, "--base-url", self.url, *argv]

    def cli(self, *argv: str, key: str | None = None, stderr: io.StringIO | None = None) -> Run:
        return run_cli(*self.args(*argv, key=key), stderr=stderr)

    def http(
        self, method: str, path: str = TOKENS_PATH, body: Any = None, key: str | None = None
    ) -> tuple[int, Any]:
        """One raw request; returns (status, decoded JSON body)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {key or self.api_key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with _OPENER.open(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.load(exc)

    def items(self, **query: str) -> list[dict[str, Any]]:
        """Every token the listing returns for ``query``, newest first, page by page."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            params = urllib.parse.urlencode({**query, "page": page, "limit": 1000})
            status, body = self.http("GET", f"{TOKENS_PATH}?{params}")
            assert status == 200, body
            found.extend(body["data"]["items"])
            if not body["data"]["hasNextPage"]:
                return found
            page += 1

    def cli_beside_fifo(self, fifo: Path, *argv: str) -> Run:
        """:meth:`cli` in a thread, 20 s at most: a run hung reading ``fifo`` is let go (a
        writer opens and closes it) and the test fails."""
        result: list[Run] = []
        thread = threading.Thread(target=lambda: result.append(self.cli(*argv)))
        thread.start()
        thread.join(20)
        if thread.is_alive():
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            thread.join(20)
            pytest.fail(f"cellcast-tokens {' '.join(argv[:2])} hung on a FIFO")
        return result[0]

    def cli_requests(self) -> list[tuple[str, str, dict[str, str], Any]]:
        """(method, path, query, json) of each request the SDK sent, not our own reads."""
        return [
            (r.method, r.path, r.query, r.json)
            for r in self.call(lambda: list(self.sb.requests))
            if r.headers.get("user-agent", "").startswith("cellcast-async/")
        ]

    def token(self, token_id: str) -> tuple[int, Any]:
        return self.http("GET", f"{TOKENS_PATH}/{token_id}")

    def create(self, name: str, sub_account_id: str | None = None) -> dict[str, Any]:
        """Create a token over plain HTTP; returns ``data`` (with the full token)."""
        body = {"name": name, "subAccountId": sub_account_id or self.sb.sub_account_ids[0]}
        status, answer = self.http("POST", TOKENS_PATH, body)
        assert status == 201, answer
        data: dict[str, Any] = answer["data"]
        return data

    def plant_duplicate(self, name: str = "Twin") -> tuple[dict[str, Any], dict[str, Any]]:
        """``(first, twin)``: a second token named as the first of the listing, in its
        sub-account. The sandbox refuses a duplicate name as seed 001 says the API does; a
        direct store edit plants one, as an import or an older API version might have.
        ``twin`` is created as ``name``, then renamed."""
        first = self.items()[0]
        twin = self.create(name, first["subAccount"]["_id"])

        def plant() -> None:
            store = self.sb._store
            planted = store.get_owned(self.api_key, twin["_id"])
            assert planted is not None
            planted.name = first["name"]
            store._changed()

        self.call(plant)
        return first, twin


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def flagged_fields(item: Mapping[str, Any], as_of: datetime) -> dict[str, Any]:
    """A raw listing item as the audit names it: id, name, status, sub-account, age."""
    created = parse_time(item["createdAt"])
    return {
        "id": item["_id"],
        "name": item["name"],
        "status": item["status"],
        "sub_account_id": item["subAccount"]["_id"],
        "sub_account_name": item["subAccount"]["name"],
        "created_at": created.isoformat(),
        "age_days": max(0, (as_of - created).days),
    }


def expected_summary(
    items: Sequence[Mapping[str, Any]], *, as_of: datetime, stale_days: int
) -> dict[str, Any]:
    """The audit summary (``--json``), computed from raw listing items on our own."""
    by_sub: dict[str, Counter[str]] = {}
    for item in items:
        by_sub.setdefault(item["subAccount"]["_id"], Counter())[item["status"]] += 1
    sub_names = {item["subAccount"]["_id"]: item["subAccount"]["name"] for item in items}
    subs_by_name: dict[str, set[str]] = {}
    ids_by_name: dict[tuple[str, str], list[str]] = {}
    for item in items:
        subs_by_name.setdefault(item["name"], set()).add(item["subAccount"]["_id"])
        ids_by_name.setdefault((item["subAccount"]["_id"], item["name"]), []).append(item["_id"])
    created = [parse_time(item["createdAt"]) for item in items]
    oldest_first = sorted(items, key=lambda item: (parse_time(item["createdAt"]), item["_id"]))
    stale = [
        flagged_fields(item, as_of)
        for item in oldest_first
        if as_of - parse_time(item["createdAt"]) > timedelta(days=stale_days)
    ]
    inactive = [
        flagged_fields(item, as_of) for item in oldest_first if item["status"] == "inactive"
    ]
    return {
        "as_of": as_of.isoformat(),
        "stale_days": stale_days,
        "total": len(items),
        "by_status": dict(sorted(Counter(item["status"] for item in items).items())),
        "by_sub_account": [
            {
                "id": sub,
                "name": sub_names[sub],
                "tokens": sum(by_sub[sub].values()),
                "by_status": dict(sorted(by_sub[sub].items())),
            }
            for sub in sorted(by_sub)
        ],
        "stale": {"count": len(stale), "tokens": stale},
        "inactive": {"count": len(inactive), "tokens": inactive},
        "oldest_created_at": min(created).isoformat() if created else None,
        "duplicate_names": [
            {
                "sub_account_id": sub,
                "sub_account_name": sub_names[sub],
                "name": name,
                "ids": sorted(ids),
            }
            for (sub, name), ids in sorted(ids_by_name.items())
            if len(ids) > 1
        ],
        "names_in_several_sub_accounts": {
            name: sorted(subs) for name, subs in sorted(subs_by_name.items()) if len(subs) > 1
        },
    }


AS_OF = "2025-07-16T00:00:00Z"
AS_OF_TIME = datetime(2025, 7, 16, tzinfo=timezone.utc)


WALK_FIELDS = (
    "requests",
    "retries",
    "rate_limited",
    "pages",
    "items",
    "duplicates_dropped",
    "refetched_pages",
    "first_total",
    "last_total",
    "waited",
    "elapsed",
    "complete",
    "waited_sum",
)


def report_of(summary: dict[str, Any]) -> dict[str, Any]:
    """``audit --json``'s summary without its ``walk`` block, once that block is checked:
    every stat present, the items it counted equal to the report's total."""
    summary = dict(summary)
    walk = summary.pop("walk")
    assert tuple(walk) == WALK_FIELDS
    assert walk["items"] == summary["total"]
    assert isinstance(walk["complete"], bool)
    assert walk["requests"] >= walk["pages"] >= 1
    return summary


# --- audit --checkpoint -----------------------------------------------------------------

HEADER = "id,name,status,sub_account_id,sub_account_name,created_at,age_days,stale,token"
"""The audit's CSV header."""
PAGE = 50  # 300 tokens: 6 pages


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    """An audit's output and its checkpoint, in ``tmp_path``."""
    return tmp_path / "tokens.out", tmp_path / "audit.ckpt"


def audit_argv(
    out: Path, ck: Path, fmt: str, *extra: str, page: int = PAGE, concurrency: int = 1
) -> list[str]:
    """The audit every round trip repeats: one page at a time, so page N is request N."""
    return [
        "audit",
        "--format",
        fmt,
        "--output",
        str(out),
        "--checkpoint",
        str(ck),
        "--page-size",
        str(page),
        "--concurrency",
        str(concurrency),
        "--quiet",
        *extra,
    ]


def records(path: Path, fmt: str) -> list[dict[str, Any]]:
    """The records in ``path``, checking that it holds whole records only."""
    text = path.read_bytes().decode()
    if fmt == "jsonl":
        assert text == "" or text.endswith("\n"), f"a partial last line: {text[-80:]!r}"
        # Only "\n" ends a record: names may hold U+2028 and the like (splitlines splits).
        return [json.loads(line) for line in text.split("\n")[:-1]]
    assert text.startswith(HEADER + "\r\n")
    assert text.endswith("\r\n"), f"a partial last row: {text[-80:]!r}"
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert all(None not in row and None not in row.values() for row in rows), "a short row"
    return rows


def ids(path: Path, fmt: str) -> list[str]:
    return [record["id"] for record in records(path, fmt)]


def checkpoint_body(ck: Path) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(ck.read_text(encoding="utf-8"))
    return body


def interrupted(live: LiveSandbox, argv: list[str], page: int) -> None:
    """Run ``argv`` with page ``page`` failing for good: exit 1, one error line."""
    live.script({page: "500"})
    result = live.cli("--max-retries", "0", *argv)
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        "error: GET /api/v1/apiClient/token -> 500 Internal server error: Something went wrong\n"
    )


def stopped_audit(
    live: LiveSandbox, paths: tuple[Path, Path], fmt: str, page: int, *extra: str
) -> tuple[Path, Path]:
    """The audit of :func:`audit_argv` ``--as-of AS_OF``, stopped by page ``page`` failing
    for good (:func:`interrupted`): its output and checkpoint (``paths``)."""
    out, ck = paths
    interrupted(live, audit_argv(out, ck, fmt, "--as-of", AS_OF, *extra), page)
    return out, ck


def refused(live: LiveSandbox, argv: list[str], message: str, *files: Path) -> None:
    """``argv`` is a usage error with ``message``; nothing is sent, ``files`` are unchanged."""
    before = [f.read_bytes() if f.exists() else None for f in files]
    live.script({})
    result = live.cli(*argv)
    assert (result.code, result.out, result.err) == (2, "", f"usage error: {message}\n")
    assert live.cli_requests() == []
    assert [f.read_bytes() if f.exists() else None for f in files] == before


@pytest.fixture
def live() -> Iterator[LiveSandbox]:
    """A fresh demo sandbox (seed 0, 300 tokens) for one test; it starts in milliseconds."""
    with LiveSandbox(seed=0, tokens=300) as sandbox:
        yield sandbox
