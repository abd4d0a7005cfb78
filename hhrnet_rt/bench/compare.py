"""Every usable backend and precision on this machine in one table (``hhrt bench --backend all``).

Each candidate is measured by :func:`hhrnet_rt.bench.run.run_bench` exactly as a single ``hhrt bench`` run
would be (so both use the same timing rules), and its outputs on one preprocessed synthetic frame are
compared with the fp32 reference -- torch fp32 on the same device, the first row -- with the figures
:func:`hhrnet_rt.export.agreement.compare_outputs` gives ``hhrt build-engine``: heatmap max |error| and
the share of fp32 heatmap peaks found again.

A candidate that is not usable here is listed with the reason; one that fails while measured is listed
with its error, and the others still run (a comparison that stops at the first failure says nothing
about the rest).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from hhrnet_rt.artifacts.file_kind import FileKind, file_kind
from hhrnet_rt.bench.run import BenchConfig, describe_machine, run_bench, synthetic_frames
from hhrnet_rt.export.build import preprocess_bgr
from hhrnet_rt.runtime.backends.select import (
    NO_OPENVINO,
    cuda_available,
    onnxruntime_available,
    openvino_available,
    tensorrt_available,
)


@dataclass(frozen=True)
class Candidate:
    """One row of the comparison: a backend at a precision on a device, or why it does not run here."""

    backend: str
    precision: str
    device: str
    skipped: str | None = None  # the reason it is not measured


def candidates(cfg: BenchConfig) -> list[Candidate]:
    """The backend/precision pairs to compare, fp32 torch first (the reference of the agreement column).

    ``cfg.device`` picks torch's device (default: CUDA when visible); ONNX Runtime and OpenVINO run on
    the CPU; a TensorRT row needs ``cfg.engine``, a ``.engine`` file, and OpenVINO's file row an ``.xml``
    IR (``hhrt build-engine --target openvino``); a file is measured at the precision it was built with.
    """
    cuda = cuda_available()
    device = cfg.device or ("cuda" if cuda else "cpu")
    on_cuda = device.startswith("cuda")
    rows = [Candidate("torch", "fp32", device)]
    rows.append(
        Candidate("torch", "fp16", device)
        if on_cuda
        else Candidate("torch", "fp16", device, "torch runs fp16 on a CUDA GPU only")
    )
    for precision in ("fp32", "fp16", "int8"):
        missing = None if onnxruntime_available() else "onnxruntime is not installed"
        rows.append(Candidate("onnxruntime", precision, "cpu", missing))
    kind = file_kind(cfg.engine)
    ov_missing = None if openvino_available() else NO_OPENVINO
    rows.append(Candidate("openvino", "fp32", "cpu", ov_missing))
    if ov_missing or kind is not FileKind.openvino:
        why = (
            ov_missing
            or "needs an OpenVINO model (engine=NAME.xml, from `hhrt build-engine --target openvino`)"
        )
        rows.append(Candidate("openvino", "-", "cpu", why))
    else:
        rows.append(Candidate("openvino", "file's", "cpu"))
    if not tensorrt_available():
        rows.append(Candidate("tensorrt", "-", "cuda", "TensorRT is not installed"))
    elif not cuda:
        rows.append(Candidate("tensorrt", "-", "cuda", "no CUDA GPU is visible"))
    elif kind is not FileKind.engine:
        rows.append(Candidate("tensorrt", "-", "cuda", "needs an engine file (engine=NAME.engine)"))
    else:
        rows.append(Candidate("tensorrt", "file's", device if on_cuda else "cuda"))
    return rows


def _agreement_input(input_size: int) -> np.ndarray:
    """One synthetic 640x360 frame, preprocessed as inference does: (1, 3, h, w) float32."""

    return preprocess_bgr(synthetic_frames(1)[0], input_size)


def _keep_outputs(outputs: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray, estimator: Any) -> None:
    """``run_bench``'s ``on_estimator``: the candidate backend's outputs for ``x``, for the agreement."""
    outputs.append(estimator.backend.run(x))


def compare_backends(
    cfg: BenchConfig,
    on_step: Callable[[str], None] = lambda msg: None,
    on_row: Callable[[int, int], None] = lambda done, total: None,
) -> dict[str, Any]:
    """Measure every candidate (``on_row(done, total)`` after each, for a time-left estimate); returns ``{"rows": [...], "reference": ..., "config": ..., "machine": ...}``.

    A row has backend, precision, device, and either ``skipped`` / ``error`` (a string) or the measured
    ``model_only_p50_ms``, ``model_only_fps``, ``end_to_end_fps`` (``None`` with ``cfg.end_to_end`` off),
    ``heatmap_max_abs`` and ``peak_agreement`` against the fp32 reference (``None`` when the reference
    itself could not run).
    """
    from hhrnet_rt.export.agreement import compare_outputs

    x = _agreement_input(cfg.input_size)
    reference: tuple[np.ndarray, np.ndarray] | None = None
    rows: list[dict[str, Any]] = []
    todo = candidates(cfg)
    measured = [cand for cand in todo if not cand.skipped]
    on_row(0, len(measured))
    for cand in todo:
        row: dict[str, Any] = {"backend": cand.backend, "precision": cand.precision, "device": cand.device}
        rows.append(row)
        if cand.skipped:
            row["skipped"] = cand.skipped
            on_step(f"{cand.backend} {cand.precision}: skipped ({cand.skipped})")
            continue
        on_step(f"{cand.backend} {cand.precision} on {cand.device}")
        outputs: list[tuple[np.ndarray, np.ndarray]] = []
        one = replace(
            cfg,
            backend=cand.backend,
            precision=None if cand.precision == "file's" else cand.precision,
            device=cand.device,
            engine=cfg.engine if cand.precision == "file's" else None,
        )
        try:
            report = run_bench(one, on_step, on_estimator=partial(_keep_outputs, outputs, x))
        except Exception as exc:  # noqa: BLE001 - one failing backend must not hide the others' figures
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
            on_step(f"{cand.backend} {cand.precision}: failed ({row['error']})")
            on_row(measured.index(cand) + 1, len(measured))
            continue
        row["precision"] = report["backend"]["precision"]  # a file says its own
        row["model_only_p50_ms"] = report["model_only"]["p50_ms"]
        row["model_only_fps"] = report["model_only"]["fps"]
        row["end_to_end_fps"] = report["end_to_end"]["fps"] if report["end_to_end"] else None
        if reference is None and cand.backend == "torch" and cand.precision == "fp32":
            reference = outputs[0]
        agreement = compare_outputs([(reference, outputs[0])], decode=False) if reference else None
        row["heatmap_max_abs"] = agreement["heatmap_max_abs"] if agreement else None
        row["peak_agreement"] = agreement["peak_agreement"] if agreement else None
        on_row(measured.index(cand) + 1, len(measured))
    return {
        "config": {**asdict(cfg), "backend": "all"},
        "reference": "torch fp32",
        "agreement_input": list(x.shape),
        "rows": rows,
        "machine": describe_machine(),
    }
