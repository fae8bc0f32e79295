"""The adversarial tests' fixtures: the CLI tests' own (a clean environment, autouse, and
``live``), from ``tests/cli/_support``."""

from ..cli._support import live, no_cellcast_env

__all__ = ["live", "no_cellcast_env"]
