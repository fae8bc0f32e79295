"""The sdist ships an MIT LICENSE and the tests (``python -m build --sdist`` shows them)."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pyproject() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    data: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return data


class TestSdistContents:
    """MANIFEST.in and pyproject name the files a packager needs."""

    def test_license_is_mit(self) -> None:
        text = (ROOT / "LICENSE").read_text(encoding="utf-8")
        assert text.startswith("MIT License\n")

    def test_license_is_declared(self) -> None:
        project = pyproject()["project"]
        assert (project["license"], project["license-files"]) == ("MIT", ["LICENSE"])

    def test_manifest_ships_the_tests_and_their_seeds(self) -> None:
        lines = (ROOT / "MANIFEST.in").read_text(encoding="utf-8").splitlines()
        assert "include LICENSE README.md CHANGELOG.md" in lines
        assert "graft tests" in lines
        assert len(list((ROOT / "tests" / "seeds").glob("*.txt"))) == 5

    def test_the_cli_extra_is_in_the_test_and_bench_extras(self) -> None:
        extras = pyproject()["project"]["optional-dependencies"]
        assert extras["cli"] == ["click>=8.4.1", "rich>=13.0"]
        assert set(extras["cli"]) <= set(extras["test"])
        # benchmarks/audit.py serves its sandbox with `python -m cellcast_async.sandbox`.
        assert set(extras["cli"]) <= set(extras["bench"])

    def test_the_json_schemas_are_package_data(self) -> None:
        """README "Schemas": every file of cellcast_async/schemas is in the wheel (the
        release session checks the built one) and the test extra can validate them."""
        config = pyproject()["tool"]["setuptools"]["package-data"]["cellcast_async"]
        assert "schemas/*.schema.json" in config
        names = sorted(path.name for path in (ROOT / "cellcast_async" / "schemas").iterdir())
        assert names
        assert [name for name in names if not fnmatch(name, "*.schema.json")] == []
        assert "jsonschema>=4.18" in pyproject()["project"]["optional-dependencies"]["test"]

    def test_the_report_extra_is_in_the_test_extra(self) -> None:
        """CI tests ``audit --html`` (its charts need pygal, the report extra)."""
        extras = pyproject()["project"]["optional-dependencies"]
        assert extras["report"] == ["pygal>=3.0.4"]
        assert set(extras["report"]) <= set(extras["test"])


class TestProjectUrls:
    """Every project URL leads somewhere real: the service's site, or a file of the sdist."""

    def test_each_relative_url_names_a_file_of_the_tree(self) -> None:
        urls = pyproject()["project"]["urls"]
        assert set(urls) == {"Cellcast", "Documentation", "Changelog", "Source", "Issues"}
        assert urls["Cellcast"] == "https://www.cellcast.com"
        for label in ("Documentation", "Changelog", "Source", "Issues"):
            path, _, anchor = urls[label].partition("#")
            assert "://" not in path, label  # no made-up host
            assert (ROOT / path).exists(), (label, path)
            if anchor:
                heading = "## " + anchor.replace("-", " ")
                text = (ROOT / path).read_text(encoding="utf-8").lower()
                assert heading in text.splitlines(), (label, anchor)
