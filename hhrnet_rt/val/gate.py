"""The accuracy gate of ``hhrt build-engine --val-images DIR --val-annotations FILE``.

After a build, the fp32 network (torch, from the same weights, at the file's input size and flip setting)
and the built file (on its own runtime: TensorRT, ONNX Runtime's CPU kernels or OpenVINO) are scored on the
same validation set by :func:`hhrnet_rt.val.evaluate`. Both APs, the drop in AP points and the bound go
into the sidecar (``accuracy``). A drop above the bound refuses the build: every file of it is renamed to
``NAME.refused.*`` (``NAME.refused-2.*`` ... if taken; nothing existing is replaced), the sidecar is
rewritten under that name to describe the renamed files, and :class:`AccuracyGateError` says so.
With random weights every AP is about 0, so the drop says nothing about trained accuracy; the sidecar's
``note`` says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hhrnet_rt.core.errors import AccuracyGateError, InputError, option
from hhrnet_rt.val.dataset import load_set
from hhrnet_rt.val.run import evaluate

if TYPE_CHECKING:  # the gate runs after a build; `hhrt info` reads only accuracy_line from here
    from hhrnet_rt.export.build import BuildResult

DEFAULT_MAX_AP_DROP = 0.5  # AP points (the int8 target of issue 21)
RANDOM_NOTE = "random weights: both APs are about 0 and the drop says nothing about trained accuracy"
POOR_NOTE = (
    "fp32 scores below 5 AP on this set (untrained weights?): the drop says nothing about trained accuracy"
)
#: The backend that runs each build target's product.
_TARGET_BACKEND = {"tensorrt": "tensorrt", "cpu": "onnxruntime", "openvino": "openvino"}


def check_val_options(images: os.PathLike[str] | None, annotations: os.PathLike[str] | None) -> None:
    """Both or neither; and a set that loads (before minutes of building, not after)."""
    if (images is None) != (annotations is None):
        raise InputError(
            f"{option('val_images')} and {option('val_annotations')} go together: give both, or neither"
        )
    if images is not None and annotations is not None:
        load_set(images, annotations)


def make_estimator(which: str, result: BuildResult, target: str, weights: Any) -> Any:
    """The fp32 reference (``which="fp32"``) or the built file's estimator (``"built"``)."""
    from hhrnet_rt.runtime.estimator import PoseEstimator

    sc = result.sidecar
    if which == "fp32":
        return PoseEstimator(weights, input_size=sc.input_size, flip=sc.flip, backend="torch", device=None)
    path = result.engine_path if target in ("tensorrt", "openvino") else result.onnx_path
    return PoseEstimator(engine=path, backend=_TARGET_BACKEND[target], device=None)


def measure(
    result: BuildResult,
    target: str,
    weights: Any,
    images: os.PathLike[str],
    annotations: os.PathLike[str],
    *,
    max_ap_drop: float = DEFAULT_MAX_AP_DROP,
    on_step: Callable[[str], None] = lambda msg: None,
) -> dict[str, Any]:
    """Score fp32 and the built file; the sidecar's ``accuracy`` record (not yet written)."""
    if not max_ap_drop >= 0:
        raise InputError(f"{option('max_ap_drop')} must be >= 0 AP points, got {max_ap_drop}")
    stats = {}
    for which in ("fp32", "built"):
        on_step(f"accuracy: {which} on {Path(images)} ({Path(annotations).name})")
        report = evaluate(make_estimator(which, result, target, weights), images, annotations)
        stats[which] = report.stats
    ap_fp32, ap_built = stats["fp32"]["AP"], stats["built"]["AP"]
    drop = round(100.0 * (ap_fp32 - ap_built), 3)
    return {
        "dataset": report.dataset,
        "annotations": Path(annotations).name,
        "images": report.images,
        "ap_fp32": ap_fp32,
        "ap_built": ap_built,
        "ap_drop": drop,
        "max_ap_drop": float(max_ap_drop),
        "passed": drop <= max_ap_drop,
        "stats_fp32": stats["fp32"],
        "stats_built": stats["built"],
        "note": RANDOM_NOTE if str(weights) == "random" else POOR_NOTE if ap_fp32 < 0.05 else "",
    }


def accuracy_line(accuracy: dict[str, Any]) -> str:
    """One line for people: ``AP 67.1 fp32 -> 66.9 built (drop 0.2 <= 0.5, 5000 images of coco)``."""
    verdict = "<=" if accuracy["passed"] else "> allowed"
    line = (
        f"AP {100 * accuracy['ap_fp32']:.1f} fp32 -> {100 * accuracy['ap_built']:.1f} built (drop "
        f"{accuracy['ap_drop']:.2f} {verdict} {accuracy['max_ap_drop']:.2f} AP points, "
        f"{accuracy.get('images', '?')} images of {accuracy.get('dataset', '?')})"
    )
    return f"{line}; {accuracy['note']}" if accuracy.get("note") else line


def _refused_stem(out_dir: Path, name: str, suffixes: list[str]) -> str:
    for n in range(1, 1000):
        stem = f"{name}.refused" if n == 1 else f"{name}.refused-{n}"
        if not any((out_dir / f"{stem}{s}").exists() for s in suffixes):
            return stem
    raise InputError(f"too many refused builds named {name}.refused* in {out_dir}; delete some")


def record(result: BuildResult, accuracy: dict[str, Any]) -> BuildResult:
    """Write ``accuracy`` into the sidecar; for a refused build rename its files first. Raises
    :class:`AccuracyGateError` (after writing) when the drop is above the bound."""
    sc = replace(result.sidecar, accuracy=accuracy)
    if accuracy["passed"]:
        sc.write(result.sidecar_path)
        return replace(result, sidecar=sc)
    out_dir = result.sidecar_path.parent
    # Every file this build wrote, by the suffix after its name (".fp32.onnx" before ".onnx").
    built = [p for p in {result.onnx_path, result.fp32_onnx_path, result.engine_path} if p is not None]
    if sc.openvino:
        built.append(out_dir / sc.openvino["bin"])
    suffixes = sorted({p.name[len(sc.name) :] for p in built} | {".json"})
    stem = _refused_stem(out_dir, sc.name, suffixes)
    moved = {p: out_dir / f"{stem}{p.name[len(sc.name) :]}" for p in built}
    for old, new in moved.items():
        os.rename(old, new)  # the names were checked free just now; this build created the old files
    sc.name = stem
    sc.onnx = {**sc.onnx, "file": f"{stem}{sc.onnx['file'][len(result.sidecar.name) :]}"}
    if sc.tensorrt:
        sc.tensorrt = {**sc.tensorrt, "engine_file": moved[result.engine_path].name}  # type: ignore[index]
    if sc.openvino:
        sc.openvino = {**sc.openvino, "xml": f"{stem}.xml", "bin": f"{stem}.bin"}
    sidecar_path = out_dir / f"{stem}.json"
    sc.write(sidecar_path)
    result.sidecar_path.unlink()  # the sidecar of the old names, written by this build
    raise AccuracyGateError(
        f"build refused: {accuracy_line(accuracy)}. Its files are kept as {out_dir / stem}.* for inspection; "
        f"try another calibration set or method, fp16, or a larger {option('max_ap_drop')} if the loss is acceptable"
    )
