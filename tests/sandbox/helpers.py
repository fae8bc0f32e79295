"""The old name of ``tests/sandbox/_support.py``, kept only for
``test_sandbox_limiters.py`` (the governor's branch owns that file): delete this module
once it imports ``Api`` from ``tests.sandbox._support`` and ``TOKENS_PATH`` (its ``BASE``)
from ``tests._wire``."""

from tests._wire import TOKENS_PATH as BASE
from tests.sandbox._support import Api

__all__ = ["BASE", "Api"]
