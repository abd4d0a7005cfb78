"""Help text the way other command-line tools write it, for every ``hhrt`` command and group.

Typer 0.29 writes a required argument as ``{input}`` in the usage line and ``<bool>`` after every flag
(``--flip/--no-flip <bool>``, even ``--help <bool>``); hhrt writes ``hhrt video [OPTIONS] INPUT`` and
nothing after a flag. Every app, the root and sub-apps such as ``hhrt weights``, is an :class:`HhrtTyper`.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


def _conventional_metavars(params: list[Any]) -> list[Any]:
    """Arguments shown as ``INPUTS`` (Typer 0.29 writes ``{inputs}``) and no type after a flag (Typer
    writes ``<bool>`` although ``--flip/--no-flip`` takes no value). Typer shows a metavar when one is set.
    """
    for param in params:
        if param.param_type_name == "argument" and param.metavar is None and param.name:
            param.metavar = param.name.upper()
        elif getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class ConventionalHelpCommand(TyperCommand):
    """A command whose help reads like other command-line tools' (``hhrt video [OPTIONS] INPUT``)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _conventional_metavars(super().get_params(ctx))  # includes the help option, made on demand

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = f"{param.metavar}{'...' if param.nargs != 1 else ''}"
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


class ConventionalHelpGroup(TyperGroup):
    """A group (``hhrt``, ``hhrt weights``) with the same flag display as its commands."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _conventional_metavars(super().get_params(ctx))


class HhrtTyper(typer.Typer):
    """A Typer app that is a :class:`ConventionalHelpGroup` and whose commands default to
    :class:`ConventionalHelpCommand`."""

    def __init__(self, *args: Any, cls: type[TyperGroup] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, cls=cls or ConventionalHelpGroup, **kwargs)

    def command(self, *args: Any, cls: type[TyperCommand] | None = None, **kwargs: Any):
        return super().command(*args, cls=cls or ConventionalHelpCommand, **kwargs)
