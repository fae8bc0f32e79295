"""The CLI tests' fixtures, defined in ``_support``: ``live``, a sandbox on a background
thread, and ``paths``, an audit's output and checkpoint. (The clean environment is
``tests/conftest.py``'s, autouse for the whole suite.)"""

from ._support import live, paths

__all__ = ["live", "paths"]
