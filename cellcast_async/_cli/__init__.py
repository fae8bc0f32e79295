"""The ``cellcast-tokens`` command line on click and rich (the ``cli`` extra).

Imported only by :mod:`cellcast_async.cli` once it knows both are installed; the SDK
never imports this package.
"""

from ._app import run
from ._sandbox import run_sandbox

__all__ = ["run", "run_sandbox"]
