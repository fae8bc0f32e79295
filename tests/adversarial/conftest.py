"""The adversarial tests' fixtures: the CLI tests' own (``live``, ``paths``), from
``tests/cli/_support``, and ``api``, the hostile token API of ``_cli_output_server``. (The
clean environment is ``tests/conftest.py``'s, autouse for the whole suite.)"""

from ..cli._support import live, paths
from ._cli_output_server import api

__all__ = ["api", "live", "paths"]
