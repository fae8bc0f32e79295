"""The adversarial tests' fixtures: the CLI tests' own (a clean environment, autouse, and
``live``), from ``tests/cli/_support``, and ``api``, the hostile token API of
``_cli_output_server``."""

from ..cli._support import live, no_cellcast_env, paths
from ._cli_output_server import api

__all__ = ["api", "live", "no_cellcast_env", "paths"]
