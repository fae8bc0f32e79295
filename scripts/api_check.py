"""The public API against the last release: a rename or a removed parameter never ships silently.

    python scripts/api_check.py                       # compare with the recorded release
    python scripts/api_check.py --record 703e31e 0.1.0  # record a release from git history

The last release's API is recorded in scripts/api/<version>.json (griffe's JSON dump of
the package at that release's commit), so the check needs neither the network nor the
git history; `nox -s release` runs it. Every breakage griffe finds fails the check unless
it is listed in ACCEPTED below with the reason it is not one for users, and named in
CHANGELOG.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import griffe

ROOT = Path(__file__).resolve().parent.parent
BASELINES = ROOT / "scripts" / "api"
RELEASE = "0.1.0"  # the last release; record the next one when it ships

# (path, the start of griffe's explanation after the location) -> why it is accepted.
ACCEPTED: dict[tuple[str, str], str] = {
    (
        "cellcast_async._tokens.TokensResource.__init__",
        "Parameter was removed",
    ): "TokensResource is made by CellcastSession (cc.tokens), never by users",
    (
        "cellcast_async._tokens.TokensResource.__init__",
        "Parameter was added as required",
    ): "the same constructor: it now takes the session's request pipeline",
}


def _load_baseline(version: str) -> griffe.Module:
    module = griffe.Object.from_json((BASELINES / f"{version}.json").read_text("utf-8"))
    assert isinstance(module, griffe.Module)
    # A module read back from JSON has no collection to resolve its aliases (the names
    # __init__ re-exports) in; give it one. griffe has no public setter for this.
    collection = griffe.ModulesCollection()
    collection.set_member(module.path, module)
    module._modules_collection = collection
    return module


def record(ref: str, version: str) -> None:
    """Write the API of the package at git ``ref`` as the baseline for ``version``."""
    module = griffe.load_git("cellcast_async", ref=ref, repo=ROOT)
    BASELINES.mkdir(parents=True, exist_ok=True)
    (BASELINES / f"{version}.json").write_text(module.as_json(indent=1) + "\n", "utf-8")


def check(version: str) -> int:
    old = _load_baseline(version)
    new = griffe.load("cellcast_async", search_paths=[ROOT])
    failures = 0
    for breakage in griffe.find_breaking_changes(old, new):
        kind = breakage.kind.value
        reason = ACCEPTED.get((breakage.obj.path, kind))
        text = breakage.explain(style=griffe.ExplanationStyle.ONE_LINE)
        if reason is None:
            failures += 1
            print(f"BREAKING: {text}")
        else:
            print(f"accepted: {text} ({reason})")
    print(f"public API against {version}: {failures} unaccepted breaking change(s)")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", nargs=2, metavar=("GIT_REF", "VERSION"))
    args = parser.parse_args()
    if args.record:
        record(*args.record)
        return 0
    return check(RELEASE)


if __name__ == "__main__":
    sys.exit(main())
