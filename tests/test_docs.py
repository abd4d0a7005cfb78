"""README.md and docs/ cannot rot: README stays short, every relative link points at a file, every
``hhrt`` command and flag README mentions exists, and every Python snippet in README.md and docs/*.md runs.

Snippets run each on its own (a fresh namespace, in an empty temporary folder) as a user would paste them.
They read the bundled sample (``hhrnet_rt.data``). No test may reach the internet, so named weights
("w32_512", ...) are built here from the golden tiny checkpoint instead of being downloaded: the snippet's
code path is the user's, the poses are meaningless. A block that cannot run in CI (it needs a running
server) is preceded by ``<!-- not run: <reason> -->``; the reason is required and the block still has to
compile.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
import typer

from hhrnet_rt.cli import app

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))  # every topic file, also the ones added later
MAX_README_LINES = 250

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
_NOT_RUN = re.compile(r"<!--\s*not run:\s*(\S[^>]*?)\s*-->\s*$")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _snippets() -> list[tuple[str, int, str, str | None]]:
    """(file, line, code, reason it is not run) for every ```python block of README.md and docs/*.md."""
    found = []
    for path in (README, *DOCS):
        text = path.read_text()
        for match in _FENCE.finditer(text):
            if match.group(1) != "python":
                continue
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            skip = _NOT_RUN.search(before)
            found.append((str(path.relative_to(REPO)), line, match.group(2), skip.group(1) if skip else None))
    return found


SNIPPETS = _snippets()


def test_readme_fits_the_first_five_minutes():
    lines = README.read_text().count("\n")
    assert lines < MAX_README_LINES, f"README.md has {lines} lines; move details to docs/"


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_point_at_files(path):
    for target in _LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor in the same file
        file = (path.parent / target.split("#", 1)[0]).resolve()
        assert file.exists(), f"{path.name} links to {target}, which does not exist"
        assert file.is_relative_to(REPO), f"{path.name} links outside the repository: {target}"


def _readme_commands() -> list[list[str]]:
    """Every ``hhrt ...`` in README's bash blocks and inline code, as words (comments and pipes cut)."""
    text = README.read_text()
    pieces = [line for m in _FENCE.finditer(text) if m.group(1) == "bash" for line in m.group(2).splitlines()]
    pieces += re.findall(r"`(hhrt [^`]+)`", text)
    commands = []
    for piece in pieces:
        for part in re.split(r"&&|\|", piece.split(" #", 1)[0]):
            words = shlex.split(part.replace('"$(', "").replace(')"', ""))
            if words[:1] == ["hhrt"]:
                commands.append(words[1:])
    return commands


def _options(command) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        names.update(getattr(param, "opts", ()))
        names.update(getattr(param, "secondary_opts", ()))
    return names


def test_every_command_and_flag_in_readme_exists():
    root = typer.main.get_command(app)
    commands = _readme_commands()
    assert len(commands) > 20  # the parsing found README's examples
    for words in commands:
        command = root
        rest = list(words)
        while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
            name = rest.pop(0)
            assert name in command.commands, f"README: `hhrt {' '.join(words)}`: no command {name!r}"
            command = command.commands[name]
        known = _options(command) | (_options(root) if command is root else set())
        for word in rest:
            flag = word.split("=", 1)[0]
            if flag.startswith("-") and flag != "-":
                assert flag in known, f"README: `hhrt {' '.join(words)}`: {command.name} has no {flag}"


@pytest.fixture
def named_weights_are_the_tiny_model(monkeypatch, tiny_weights):
    """Named weights built from the golden tiny checkpoint (see the module docstring): no download."""
    from hhrnet_rt.model import download, weights

    real = weights.load_network

    def load_network(source, *args, **kwargs):
        if isinstance(source, str) and source in download.NAMED_WEIGHTS:
            network, _ = real(tiny_weights, *args, **kwargs)
            return network, f"{source} (the golden tiny model, for the documentation's tests)"
        return real(source, *args, **kwargs)

    monkeypatch.setattr(weights, "load_network", load_network)


@pytest.mark.parametrize(
    ("file", "line", "code", "not_run"), SNIPPETS, ids=[f"{f}:{n}" for f, n, *_ in SNIPPETS]
)
def test_python_snippet_runs(
    file, line, code, not_run, tmp_path, monkeypatch, named_weights_are_the_tiny_model
):
    compiled = compile(code, f"{file}:{line}", "exec")  # line numbers in a traceback count from the fence
    if not_run:
        pytest.skip(f"{file}:{line} is not run: {not_run}")
    monkeypatch.chdir(tmp_path)
    exec(compiled, {"__name__": "__snippet__"})
    assert not [p for p in tmp_path.iterdir() if p.is_file() and p.stat().st_size == 0]  # outputs written


def test_snippets_are_found_in_readme_and_docs():
    files = {file for file, *_ in SNIPPETS}
    assert "README.md" in files and "docs/python.md" in files and "docs/drawing.md" in files
    assert all(os.path.sep not in f or f.startswith("docs") for f in files)
