"""``hhrt`` follows the everyday conventions of command-line tools: --version, -h, shell completion, and
help text without Typer's ``<bool>`` / ``{input}`` placeholders."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from hhrnet_rt import __version__
from hhrnet_rt.cli import app

runner = CliRunner()


def _command_paths() -> list[list[str]]:
    """Every command and sub-command, as the argument list that reaches it (e.g. ["weights", "list"])."""
    paths: list[list[str]] = [[]]

    def walk(group, prefix):
        for name, cmd in group.commands.items():
            paths.append([*prefix, name])
            if hasattr(cmd, "commands"):
                walk(cmd, [*prefix, name])

    walk(typer.main.get_command(app), [])
    return paths


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag):
    result = runner.invoke(app, [flag])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"hhrt {__version__}"


def test_every_command_has_dash_h_and_help_without_placeholders():
    paths = _command_paths()
    assert len(paths) >= 7  # root + video, webcam, image, bench, info, build-engine at least
    for path in paths:
        short = runner.invoke(app, [*path, "-h"], terminal_width=200)
        assert short.exit_code == 0, (path, short.output)
        long = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert short.stdout == long.stdout
        text = short.stdout
        assert "<bool>" not in text, (path, text)
        usage = next(line for line in text.splitlines() if "Usage:" in line)
        assert not re.search(r"\{\w+\}", usage), (path, usage)


def test_usage_names_arguments_in_capitals():
    text = runner.invoke(app, ["video", "-h"], terminal_width=200).stdout
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert re.search(r"video \[OPTIONS\] INPUT", usage), usage


def test_shell_completion_is_offered():
    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout


def test_help_lists_the_commands_in_their_order():
    """Typer lists commands as they are registered, i.e. in the order hhrnet_rt/cli/__init__.py imports
    their modules: demo first (what a new user runs), the media commands side by side, the sub-groups last."""
    names = list(typer.main.get_command(app).commands)
    assert names == [
        "demo",
        "bench",
        "val",
        "build-engine",
        "info",
        "video",
        "webcam",
        "image",
        "convert",
        "serve",
        "cache",
        "weights",
    ]


def test_the_cli_starts_without_loading_torch():
    """`hhrt --help` and argument errors answer in well under a second: the command modules import no
    torch until a model is built (it takes seconds to load). A fresh interpreter, since this one has it."""
    import subprocess
    import sys

    probe = (
        "import sys, hhrnet_rt.cli; print(sorted(m for m in ('torch', 'onnx', 'ray') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
