"""``hhrt val --compare``: the same validation images through several estimators, one row each.

Each row is one :class:`~hhrnet_rt.runtime.config.EstimatorConfig` (a backend, a precision, an engine
file...), scored by :func:`hhrnet_rt.val.evaluate`; the first row is the reference of the ΔAP column. A
configuration that cannot run here (no GPU, no TensorRT, a file for another machine) becomes a skipped row
with the reason, and the others still run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from hhrnet_rt.core.errors import BackendUnavailableError, EngineMismatchError, HhrtError
from hhrnet_rt.runtime.config import EstimatorConfig
from hhrnet_rt.runtime.estimator import PoseEstimator
from hhrnet_rt.val.report import ValReport
from hhrnet_rt.val.run import Progress, evaluate

# A row is skipped, not failed, when the machine lacks what it needs (or its file was built elsewhere).
_SKIP = (BackendUnavailableError, EngineMismatchError)


def compare(
    rows: Sequence[tuple[str, EstimatorConfig]],
    image_dir: str | os.PathLike[str],
    annotation_file: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    max_images: int | None = None,
    on_step: Callable[[str], None] = lambda msg: None,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """One dict per row: ``label``, and ``stats``, ``AP``, ``dAP`` (AP points against the first row that
    ran), ``fps``, ``nonfinite``, ``people``; or ``skipped`` / ``error`` with the reason."""
    out: list[dict[str, Any]] = []
    reference: float | None = None
    for label, config in rows:
        on_step(f"{label}: loading")
        try:
            estimator = PoseEstimator.from_config(config)
            on_step(f"{label}: evaluating")
            report: ValReport = evaluate(
                estimator,
                image_dir,
                annotation_file,
                dataset=dataset,
                max_images=max_images,
                progress=progress,
            )
        except _SKIP as exc:
            out.append({"label": label, "skipped": str(exc)})
            continue
        except HhrtError as exc:
            out.append({"label": label, "error": str(exc)})
            continue
        ap = report.stats["AP"]
        reference = ap if reference is None else reference
        out.append(
            {
                "label": label,
                "stats": report.stats,
                "AP": ap,
                "dAP": round(100.0 * (ap - reference), 3),
                "fps": report.fps,
                "nonfinite": report.nonfinite,
                "people": sum(report.people_per_image.values()),
                "describe": estimator.describe(),
            }
        )
    return out
