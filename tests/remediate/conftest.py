"""The plan/apply/undo tests' fixtures, defined in ``_support``: ``sb`` (an aged sandbox;
a test file that needs faults overrides it) and ``cc`` (a session on it)."""

from ._support import cc, sb

__all__ = ["cc", "sb"]
