"""What kind of built file a path names, from its suffix: the one rule, case-insensitive.

``hhrt build-engine`` writes TensorRT engines, ONNX files and OpenVINO IRs; the estimator, the backend
choice and the file readers all ask :func:`file_kind` which one a path is, so ``model.ONNX`` and
``model.onnx`` are the same kind everywhere.

Example:
    >>> file_kind("engines/w32.Engine"), file_kind("model.ONNX"), file_kind("notes.txt")
    (<FileKind.engine: 'engine'>, <FileKind.onnx: 'onnx'>, None)
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import PurePath


class FileKind(StrEnum):
    """A built file's kind (a ``StrEnum``: members equal their strings)."""

    engine = "engine"  # a serialized TensorRT engine
    onnx = "onnx"  # an ONNX pose graph (fp32, fp16 or int8 Q/DQ)
    openvino = "openvino"  # an OpenVINO IR: NAME.xml with its NAME.bin


#: The suffixes of each kind, lower case (compared with the path's suffix lowered).
SUFFIXES: dict[FileKind, tuple[str, ...]] = {
    FileKind.engine: (".engine", ".plan", ".trt"),
    FileKind.onnx: (".onnx",),
    FileKind.openvino: (".xml",),
}
_BY_SUFFIX = {suffix: kind for kind, suffixes in SUFFIXES.items() for suffix in suffixes}


def file_kind(path: str | os.PathLike[str] | None) -> FileKind | None:
    """The kind of file ``path`` names by its suffix (any letter case), or ``None`` for anything else."""
    if path is None:
        return None
    return _BY_SUFFIX.get(PurePath(os.fspath(path)).suffix.lower())
