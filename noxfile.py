"""The version matrix: `nox` runs the suite on every Python the package claims, once at the
lowest versions it declares, builds the docs strictly and checks the release.

    nox -s tests-3.12     # one interpreter (this one also measures coverage)
    nox -s lowest         # the suite at every declared floor (pyproject.toml), on 3.10
    nox -s soak           # the tests marked soak: kill/fault trials, a browser, slow repeats
    nox -s docs           # sphinx-build -n -W, the reference site
    nox -s release        # sdist + wheel, twine check, the public API against 0.1.0

Virtual environments are made and filled by uv (fast, and it can resolve to the lowest
versions); `.ci/run` runs every session and removes what they create.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import nox

nox.needs_version = ">=2024.4.15"
nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = False
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["tests", "lowest", "soak", "docs", "release"]

ROOT = Path(__file__).resolve().parent
# Every CPython the classifiers in pyproject.toml name.
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
PYTEST = ("python", "-m", "pytest", "-q", "-p", "no:cacheprovider")
# The interpreter whose test session also measures coverage (one is enough: the code
# paths are the same on every Python the package claims).
COVERAGE_PYTHON = "3.12"


def _env() -> dict[str, str]:
    # CI=true makes the Redis tests fail rather than skip when redis-server is missing.
    return {"CI": os.environ.get("CI", "true")}


def _python(session: nox.Session) -> str:
    return str(Path(session.bin) / "python")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole suite, with the newest releases of every dependency.

    On one interpreter the same run also measures branch coverage and fails below the
    floor in pyproject.toml ([tool.coverage.report] fail_under): no extra run of the suite.
    """
    session.install("-e", ".[test]")
    if session.python != COVERAGE_PYTHON:
        session.run(*PYTEST, *session.posargs, env=_env())
        return
    session.run("python", "-m", "coverage", "erase")
    session.run("python", "-m", "coverage", "run", "-m", *PYTEST[2:], *session.posargs, env=_env())
    session.run("python", "-m", "coverage", "report")


@nox.session(python=PYTHONS[0])
def lowest(session: nox.Session) -> None:
    """The whole suite with every direct dependency at the floor pyproject.toml declares.

    uv's lowest-direct resolution picks the oldest release each requirement allows (for
    the package, the test extra and the cli, otel, redis and report extras), so a floor that is
    too low fails here instead of on a user's machine.
    """
    session.install("--resolution", "lowest-direct", "-e", ".[test,cli,otel,redis,report]")
    # The versions the floors resolved to, in the log.
    session.run("uv", "pip", "list", "--python", _python(session), external=True)
    session.run(*PYTEST, *session.posargs, env=_env())


@nox.session(python="3.12")
def soak(session: nox.Session) -> None:
    """The tests the README command leaves out: many kill-and-restart trials, a real browser.

    Marked ``soak`` (pyproject.toml deselects them by default to keep the README command
    under five minutes on two cores); here with every extra, on one interpreter.
    """
    session.install("-e", ".[test,cli,otel,redis,report]")
    session.run(*PYTEST, "-m", "soak", *session.posargs, env=_env())


@nox.session(python="3.12")
def docs(session: nox.Session) -> None:
    """The reference site, strictly: every cross-reference resolves, a warning fails it.

    The examples in docs/ run in the test sessions (tests/test_docs.py), against the sandbox.
    """
    # The test extra: the reference documents the pytest plugin, which imports pytest.
    session.install("-e", ".[docs,test]")
    out = Path(session.create_tmp()) / "html"
    session.run("sphinx-build", "-n", "-W", "--keep-going", "-q", "-b", "html", "docs", str(out))
    session.log(f"docs built in {out}")


@nox.session(python="3.12")
def release(session: nox.Session) -> None:
    """What a user installs: the sdist and wheel pass `twine check`, and the public API
    keeps every name and signature of the last release (griffe, against api/0.1.0.json)."""
    # griffe 2: scripts/api_check.py reads its JSON dump back (see the note there).
    session.install("build", "twine", "griffe>=2.4,<3")
    dist = Path(session.create_tmp()) / "dist"
    session.run("python", "-m", "build", "--outdir", str(dist), ".", silent=True)
    session.run("twine", "check", "--strict", *(str(p) for p in sorted(dist.iterdir())))
    # The published JSON Schemas are package data (README "Command line", "Schemas").
    [wheel] = dist.glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    missing = [
        path.as_posix()
        for path in sorted(Path("cellcast_async/schemas").glob("*.schema.json"))
        if path.as_posix() not in shipped
    ]
    if missing:
        session.error(f"not in {wheel.name}: {', '.join(missing)}")
    session.run("python", "scripts/api_check.py")
