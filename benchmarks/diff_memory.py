"""Side-by-side: ``cellcast-tokens diff`` before and after streaming, on a generated audit.

    python benchmarks/diff_memory.py                 # 200,000 records
    python benchmarks/diff_memory.py --records 4000000   # about a 1 GB audit

It writes one audit as JSON Lines and as CSV, as ``audit`` writes them, plus a second
JSON Lines audit with 1% of the tokens renamed, 1% deactivated, 1% deleted and 1% new.
Each comparison then runs in a fresh child process, once per implementation:

    before  the reader this project had until the streaming one: the whole file read
            into one string, split with ``str.splitlines()``, every record kept as an
            object in a dict per file, then compared (a faithful copy, below);
    after   ``cellcast_async._cli._diff.diff_files``: both files streamed, an id and a
            16-byte digest per old record kept, OLD read again for the changes only.

Both end in the same ``--json`` document, written to /dev/null. Columns: the child's
wall time (best of ``--repeats``), its peak resident memory (``ru_maxrss`` from
``wait4``, the interpreter and its imports included: ``baseline`` is a child that only
imports), after/before as ratios, and ``net``: the same ratio with the baseline taken off
both. The two must report the same changes.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cellcast_async._cli._records import FIELDS  # the audit's own columns

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


def _record(n: int, *, name: str | None = None, status: str = "active") -> dict[str, Any]:
    sub = n % 7
    return {
        "id": f"{0x6877B0000000000000000000 + n:024x}",
        "name": name or f"Production API #{n:07d}",
        "status": status,
        "sub_account_id": f"{0x6877A383D68781BEB3B14110 + sub:024x}",
        "sub_account_name": f"Sub Client {sub}",
        "created_at": "2025-01-15T10:30:00+00:00",
        "age_days": 320 + n % 400,
        "stale": n % 3 == 0,
        "token": "****" + f"{n:04d}"[-4:],
    }


def generate(folder: Path, count: int) -> dict[str, Path]:
    """The audit as JSON Lines and CSV, and a changed audit as JSON Lines."""
    paths = {
        "jsonl": folder / "audit.jsonl",
        "csv": folder / "audit.csv",
        "changed": folder / "changed.jsonl",
    }
    with (
        open(paths["jsonl"], "w", encoding="utf-8") as as_jsonl,
        open(paths["csv"], "w", encoding="utf-8", newline="") as as_csv,
        open(paths["changed"], "w", encoding="utf-8") as changed,
    ):
        writer = csv.DictWriter(as_csv, fieldnames=FIELDS)
        writer.writeheader()
        for n in range(count):
            record = _record(n)
            as_jsonl.write(json.dumps(record, ensure_ascii=False) + "\n")
            writer.writerow(
                {k: str(v).lower() if isinstance(v, bool) else v for k, v in record.items()}
            )
            kind = n % 100
            if kind == 0:
                continue  # deleted
            if kind == 1:
                record = _record(n, name=f"Renamed API #{n:07d}")
            elif kind == 2:
                record = _record(n, status="inactive")
            changed.write(json.dumps(record, ensure_ascii=False) + "\n")
        for n in range(count, count + count // 100):
            changed.write(json.dumps(_record(n), ensure_ascii=False) + "\n")
    return paths


# --- before: the reader and comparison as they were -------------------------------------


def _before(old: str, new: str) -> list[Any]:
    from cellcast_async._cli._diff import Change, _ordered
    from cellcast_async._cli._records import DIFF_FIELDS as REQUIRED
    from cellcast_async._cli._records import Record

    def record(raw: Mapping[str, Any], where: str) -> Record:
        missing = [key for key in REQUIRED if key not in raw]
        if missing:
            raise ValueError(f"{where}: not an audit record (no {', '.join(missing)})")
        return Record(
            id=str(raw["id"]),
            name=str(raw["name"]),
            status=str(raw["status"]),
            sub_account_id=str(raw["sub_account_id"] or ""),
            sub_account_name=str(raw.get("sub_account_name") or ""),
        )

    def parse(text: str, label: str) -> dict[str, Record]:
        if text.lstrip().startswith("{"):
            records: dict[str, Record] = {}
            for number, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                found = record(json.loads(line), f"{label} line {number}")
                records[found.id] = found
            return records
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = (record(row, f"{label} line {n}") for n, row in enumerate(reader, 2))
        return {found.id: found for found in rows}

    def load(path: str) -> dict[str, Record]:
        return parse(Path(path).read_text(encoding="utf-8-sig"), path)

    before, after = load(old), load(new)
    changes = [Change("created", after[i]) for i in after.keys() - before.keys()]
    changes += [Change("deleted", before[i]) for i in before.keys() - after.keys()]
    for token_id in before.keys() & after.keys():
        was, now = before[token_id], after[token_id]
        if was.status != now.status:
            changes.append(Change("status_changed", now, was.status, now.status))
        if was.name != now.name:
            changes.append(Change("renamed", now, was.name, now.name))
    return _ordered(changes)


def _after(old: str, new: str) -> list[Any]:
    from cellcast_async._cli._diff import diff_files

    return diff_files(old, new)


def child(kind: str, old: str, new: str) -> None:
    """One comparison in this (fresh) process; prints its seconds and its change count."""
    from cellcast_async._cli._diff import as_json
    from cellcast_async._cli._output import dump_json

    if kind == "baseline":
        print(json.dumps({"seconds": 0.0, "changes": 0}))
        return
    started = time.perf_counter()
    changes = (_before if kind == "before" else _after)(old, new)
    with open(os.devnull, "w", encoding="utf-8") as sink:
        dump_json(as_json(old, new, changes), sink, indent=2)
    elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "changes": len(changes)}))


def measure(kind: str, old: Path, new: Path) -> tuple[float, float, int]:
    """(seconds, peak RSS in MiB, changes) of one child run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", kind, str(old), str(new)],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"the {kind} child failed with exit code {process.returncode}")
    result = json.loads(output)
    return result["seconds"], usage.ru_maxrss / 1024, result["changes"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000, help="records per audit")
    parser.add_argument("--repeats", type=int, default=1, help="runs per cell (best time)")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "OLD", "NEW"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    with tempfile.TemporaryDirectory(prefix="diff-memory-") as folder:
        paths = generate(Path(folder), args.records)
        size = paths["jsonl"].stat().st_size / MB
        print(
            f"diff before and after streaming: {args.records:,} records"
            f" ({size:,.1f} MiB as JSON Lines, {paths['csv'].stat().st_size / MB:,.1f} MiB as CSV)"
        )
        _, baseline, _ = measure("baseline", paths["jsonl"], paths["jsonl"])
        print(f"baseline (a child that only imports): {baseline:,.0f} MiB peak RSS\n")
        header = (
            f"{'comparison':<24} {'before s':>9} {'after s':>8} {'time':>6}"
            f" {'before MiB':>11} {'after MiB':>10} {'memory':>7} {'net':>6} {'changes':>8}"
        )
        print(header)
        print("-" * len(header))
        cases = (
            ("JSONL with itself", paths["jsonl"], paths["jsonl"]),
            ("CSV with itself", paths["csv"], paths["csv"]),
            ("CSV -> JSONL, 4% changed", paths["csv"], paths["changed"]),
        )
        for label, old, new in cases:
            runs: dict[str, tuple[float, float, int]] = {}
            for kind in ("before", "after"):
                best = [measure(kind, old, new) for _ in range(max(1, args.repeats))]
                runs[kind] = (
                    min(r[0] for r in best),
                    min(r[1] for r in best),
                    best[0][2],
                )
            (bs, bm, bc), (as_, am, ac) = runs["before"], runs["after"]
            if bc != ac:
                raise SystemExit(f"{label}: before found {bc} changes, after {ac}")
            print(
                f"{label:<24} {bs:>9.2f} {as_:>8.2f} {as_ / bs:>5.2f}x"
                f" {bm:>11,.0f} {am:>10,.0f} {am / bm:>6.2f}x"
                f" {(am - baseline) / max(bm - baseline, 1):>5.2f}x {ac:>8,}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
