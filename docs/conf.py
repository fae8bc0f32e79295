"""Sphinx configuration for the cellcast_async reference site.

Build it strictly, as CI does (``nox -s docs``)::

    python -m pip install -e ".[docs,cli]"
    sphinx-build -n -W --keep-going -b html docs docs/_build/html

``-n`` makes every cross-reference that does not resolve a warning, and ``-W`` makes
every warning an error. Nothing is fetched: the intersphinx inventories (Python's, aiohttp's
and cattrs's names that the pages use) are vendored in ``docs/_inventories``, made by
``docs/_inventories/make.py``.
"""

from __future__ import annotations

import sys
from importlib.metadata import version as _version
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "cellcast_async"
author = "cellcast_async developers"
copyright = "cellcast_async developers, MIT License"
release = _version("cellcast-async")
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "myst_parser",
    "cli_help",  # docs/_ext/cli_help.py: each command's --help, from the click app itself
]

root_doc = "index"
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_inventories"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# The reference: signatures carry the types, the descriptions say what they mean.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autoclass_content = "class"
# The transport's answer is public as TransportResponse (its class is Response in a
# private module): signatures link to the public name.
autodoc_type_aliases = {"Response": "cellcast_async.TransportResponse"}
python_use_unqualified_type_names = True

# Python's own names resolve against a vendored inventory: CI has no network.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", str(HERE / "_inventories" / "python.inv")),
    "aiohttp": ("https://docs.aiohttp.org/en/stable", str(HERE / "_inventories" / "aiohttp.inv")),
    "cattrs": ("https://catt.rs/en/stable", str(HERE / "_inventories" / "cattrs.inv")),
}

# Type variables (the T of Page[T]) have no page of their own to link to.
nitpick_ignore = [
    ("py:class", "cellcast_async._pager.T"),
    ("py:obj", "cellcast_async._pager.T"),
    ("py:class", "cellcast_async.sandbox._server._T"),
    # Missing from the vendored Python inventory.
    ("py:class", "os.PathLike"),
    ("py:class", "collections.abc.Collection"),
]

html_theme = "furo"
html_title = f"cellcast_async {release}"
