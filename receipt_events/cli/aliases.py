"""Old spellings of renamed flags, still accepted for one release, hidden from ``--help``.

A command registered with ``cls=with_aliases({"--old": "--new"})`` rewrites ``--old`` (and
``--old=VALUE``) to the new flag before parsing and says so on stderr, so scripts written for
the previous release keep working and learn the new name.
"""

from __future__ import annotations

from typing import Any, ClassVar

from typer.core import TyperCommand

from receipt_events.cli.output import error_console


def warn_renamed(old: str, new: str) -> None:
    """Say on stderr that an old spelling was read as its new one (stdout stays the output)."""
    error_console.print(
        f"[yellow]warning:[/] {old} is now {new}; the old spelling goes in the next release",
        highlight=False,
    )


class AliasedCommand(TyperCommand):
    aliases: ClassVar[dict[str, str]] = {}

    # ctx is typer's click context (typer vendors click since 0.2x, so its type moved)
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self.rewrite(args))

    @classmethod
    def rewrite(cls, args: list[str]) -> list[str]:
        rewritten: list[str] = []
        for index, arg in enumerate(args):
            if arg == "--":  # what follows is positional, whatever it looks like
                return rewritten + args[index:]
            name, equals, value = arg.partition("=")
            new = cls.aliases.get(name)
            if new is not None:
                warn_renamed(name, new)
                arg = f"{new}{equals}{value}"
            rewritten.append(arg)
        return rewritten


def with_aliases(aliases: dict[str, str]) -> type[AliasedCommand]:
    """A command class that accepts each old flag of ``aliases`` as its new one."""
    return type("AliasedCommand", (AliasedCommand,), {"aliases": dict(aliases)})
