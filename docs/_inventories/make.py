"""Write the intersphinx inventories docs/conf.py reads, without the network.

CI cannot download the projects' own ``objects.inv``, so each inventory here lists only
the names our signatures and pages refer to, with the address of each on the project's
documentation site. Made with sphobjinv (PyPI)::

    python -m pip install sphobjinv
    python docs/_inventories/make.py

Add a name here when ``sphinx-build -n`` says a reference to it does not resolve.
"""

from __future__ import annotations

from pathlib import Path

import sphobjinv as soi

HERE = Path(__file__).resolve().parent

# (name, role, page): the anchor on the page is the name itself ("$" in the inventory).
PYTHON = [
    *(
        (f"collections.abc.{name}", "class", "library/collections.abc.html")
        for name in (
            "AsyncGenerator",
            "AsyncIterator",
            "Awaitable",
            "Callable",
            "Coroutine",
            "Generator",
            "Hashable",
            "Iterable",
            "Iterator",
            "Mapping",
            "Sequence",
        )
    ),
    ("datetime.datetime", "class", "library/datetime.html"),
    ("enum.Enum", "class", "library/enum.html"),
    ("typing.Any", "data", "library/typing.html"),
    *(
        (name, "class", "library/stdtypes.html")
        for name in ("str", "bytes", "float", "int", "bool", "list", "dict", "tuple", "object")
    ),
    ("None", "data", "library/constants.html"),
    *(
        (name, "exception", "library/exceptions.html")
        for name in ("Exception", "ValueError", "RuntimeError", "TimeoutError", "KeyError")
    ),
]
AIOHTTP = [
    ("aiohttp.ClientSession", "class", "client_reference.html"),
    ("aiohttp.client.ClientSession", "class", "client_reference.html#aiohttp.ClientSession"),
]
CATTRS = [
    ("cattrs.Converter", "class", "cattrs.html"),
    ("cattrs.converters.Converter", "class", "cattrs.html#cattrs.Converter"),
]


def write(path: Path, project: str, version: str, names: list[tuple[str, str, str]]) -> None:
    inventory = soi.Inventory()
    inventory.project, inventory.version = project, version
    for name, role, page in names:
        uri = page if "#" in page else f"{page}#$"
        inventory.objects.append(
            soi.DataObjStr(name=name, domain="py", role=role, priority="1", uri=uri, dispname="-")
        )
    soi.writebytes(path, soi.compress(inventory.data_file(contract=True)))


if __name__ == "__main__":
    write(HERE / "python.inv", "Python", "3", PYTHON)
    write(HERE / "aiohttp.inv", "aiohttp", "3.14", AIOHTTP)
    write(HERE / "cattrs.inv", "cattrs", "26", CATTRS)
