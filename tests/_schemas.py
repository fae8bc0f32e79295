"""The JSON Schemas the command line's outputs are checked against, with ``jsonschema``.

The package's own (``cellcast_async/schemas/*.schema.json``, README "Command line",
"Schemas") and the vendored OCSF one (``tests/schemas/ocsf``, which says where it came
from), all in one registry under their ``$id``: ``ocsf-finding.schema.json`` refers to the
OCSF class by its schema.ocsf.io id, resolved here to the vendored copy, never fetched.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped, unused-ignore]
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parent.parent
OCSF_SCHEMA = ROOT / "tests" / "schemas" / "ocsf" / "1.3.0" / "compliance_finding.cloud.schema.json"
ID_PREFIX = "https://cellcast-async.invalid/schemas/"


def package_schemas() -> dict[str, dict[str, Any]]:
    """Every schema the package ships, by file name, read as an installed package is."""
    folder = resources.files("cellcast_async") / "schemas"
    return {
        entry.name: json.loads(entry.read_text(encoding="utf-8"))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".schema.json")
    }


def ocsf_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(OCSF_SCHEMA.read_text(encoding="utf-8"))
    return schema


@functools.lru_cache(maxsize=1)
def registry() -> Registry[Any]:
    every = [ocsf_schema(), *package_schemas().values()]
    return Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in every
    )


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """The validator of the package's ``name`` (``audit.schema.json``), or of the vendored
    OCSF class (``ocsf``)."""
    schema = ocsf_schema() if name == "ocsf" else package_schemas()[name]
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry())


def errors(name: str, instance: Any) -> list[str]:
    """What is wrong with ``instance`` under schema ``name``; empty when it is valid."""
    found = validator(name).iter_errors(instance)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}"[:500] for e in found)


def assert_valid(name: str, instances: Iterable[Any]) -> int:
    """Every instance is valid under ``name``; returns how many there were."""
    count = 0
    for count, instance in enumerate(instances, 1):
        problems = errors(name, instance)
        assert not problems, (count, problems[:5])
    return count
