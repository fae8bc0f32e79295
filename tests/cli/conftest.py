"""The CLI tests' fixtures: a clean environment (autouse) and ``live``, a sandbox on a
background thread; both are defined in ``_support``."""

from ._support import live, no_cellcast_env, paths

__all__ = ["live", "no_cellcast_env", "paths"]
