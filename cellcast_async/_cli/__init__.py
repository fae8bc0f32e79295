"""The ``cellcast-tokens`` command line on click and rich (the ``cli`` extra).

Imported only by :mod:`cellcast_async.cli` once it knows both are installed; the SDK
never imports this package. ``cli`` is the click group with every command registered
(:mod:`._main`).
"""

from ._main import cli, run
from ._sandbox import run_sandbox, sandbox_command

__all__ = ["cli", "run", "run_sandbox", "sandbox_command"]
