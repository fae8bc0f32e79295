"""``.. cli-help::``: the command line's help, taken from the click app itself.

One section per command, each holding exactly what ``cellcast-tokens COMMAND --help``
prints, so the reference cannot drift from the program.
"""

from __future__ import annotations

from typing import Any

import click
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def _help(command: click.Command, name: str, parent: click.Context | None) -> str:
    with click.Context(command, info_name=name, parent=parent, terminal_width=88) as ctx:
        return command.get_help(ctx)


class CliHelp(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        from cellcast_async._cli import cli

        root = click.Context(cli, info_name="cellcast-tokens", terminal_width=88)
        out: list[nodes.Node] = [nodes.literal_block(text=_help(cli, "cellcast-tokens", None))]
        for name in sorted(cli.commands):  # type: ignore[attr-defined]
            section = nodes.section(ids=[f"command-{name}"], names=[f"command-{name}"])
            section += nodes.title(text=f"cellcast-tokens {name}")
            command = cli.commands[name]  # type: ignore[attr-defined]
            section += nodes.literal_block(text=_help(command, name, root))
            if isinstance(command, click.Group):  # ``plan deactivate``, ``plan delete``
                group = click.Context(command, info_name=name, parent=root, terminal_width=88)
                for sub in sorted(command.commands):
                    section += nodes.literal_block(text=_help(command.commands[sub], sub, group))
            out.append(section)
        return out


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("cli-help", CliHelp)
    return {"parallel_read_safe": True}
