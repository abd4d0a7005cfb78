"""Library messages name library arguments (``backend='onnxruntime'``); only hhrnet_rt.cli talks about
flags, and while a CLI command runs the same messages name its flags (``--backend onnxruntime``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hhrnet_rt.cli import app
from hhrnet_rt.cli.app import flag_for
from hhrnet_rt.core import errors
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.core.outputs import refuse_existing

PACKAGE = Path(__file__).resolve().parents[1] / "hhrnet_rt"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
COMMAND = re.compile(r"`hhrt [^`]*`")  # a suggested shell command, e.g. `hhrt build-engine --precision int8`
#: Arguments of a program run by the library, not messages.
NOT_MESSAGES = {"--query-gpu=driver_version", "--format=csv,noheader"}
runner = CliRunner()


def _message_texts(tree: ast.AST):
    """(line, text) of every string literal that is not a docstring; an f-string (with the literals it
    was concatenated with) as one text, its replacement fields written ``{}``."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    inside_fstrings = {id(n) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
                       for n in ast.walk(node) if n is not node}  # fmt: skip
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and id(node) not in inside_fstrings:
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            yield node.lineno, text
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docstrings and id(node) not in inside_fstrings):  # fmt: skip
            yield node.lineno, node.value


def test_no_flag_in_library_strings():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "cli":
            continue
        for line, text in _message_texts(ast.parse(path.read_text(encoding="utf-8"))):
            if text in NOT_MESSAGES:
                continue
            for flag in FLAG.findall(COMMAND.sub("", text)):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {flag} in {text!r}")
    assert not found, "library strings that name CLI flags:\n" + "\n".join(found)


def test_same_message_in_both_styles(tmp_path):
    existing = tmp_path / "x.mp4"
    existing.write_bytes(b"keep")
    with pytest.raises(InputError, match=r"add overwrite=True to replace it$"):
        refuse_existing(existing, "output video", False)
    with errors.option_style(flag_for), pytest.raises(InputError, match=r"add --overwrite to replace it$"):
        refuse_existing(existing, "output video", False)
    # The style is restored after the block, also when it ended with an exception.
    assert errors.option("backend", "torch") == "backend='torch'"


@pytest.mark.parametrize(
    "name, value, flag",
    [
        ("backend", "onnxruntime", "--backend onnxruntime"),
        ("input_size", errors.NOT_GIVEN, "--input-size"),
        ("flip", False, "--no-flip"),
        ("overwrite", True, "--overwrite"),
        ("onnx_threads", 2, "--threads 2"),
        ("engine", "NAME.onnx", "--engine NAME.onnx"),
    ],
)
def test_flag_for(name, value, flag):
    assert flag_for(name, value) == flag


def test_cli_shows_flags_for_a_library_message():
    # hhrnet_rt.bench.run refuses fp16 for torch on the CPU, naming the backend to use instead.
    result = runner.invoke(app, ["bench", "--backend", "torch", "--device", "cpu", "--precision", "fp16"])
    assert result.exit_code == 2, result.output
    assert "use --backend onnxruntime" in result.output and "backend=" not in result.output
