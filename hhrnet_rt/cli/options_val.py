"""The options of ``hhrt val`` (and of the accuracy gate of ``hhrt build-engine``): the validation set,
the test scales, and what is written."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class ValDataset(StrEnum):
    """The --dataset choices (``hhrnet_rt.val.DATASETS``; auto: from the file's keypoint count)."""

    auto = "auto"
    coco = "coco"
    crowdpose = "crowdpose"


ValImages = Annotated[
    Path,
    typer.Option(
        "--images",
        help="Folder of the validation images (e.g. COCO's val2017/ or CrowdPose's images/).",
        show_default=False,
    ),
]
ValAnnotations = Annotated[
    Path,
    typer.Option(
        "--annotations",
        help="COCO-format keypoint annotations of those images (person_keypoints_val2017.json, "
        "crowdpose_val.json, crowdpose_test.json...).",
        show_default=False,
    ),
]
ValDatasetOpt = Annotated[
    ValDataset,
    typer.Option(
        "--dataset", case_sensitive=False, help="coco (17 joints) or crowdpose (14); auto: from the file."
    ),
]
Scales = Annotated[
    str,
    typer.Option(
        "--scales",
        help="Test scales, comma-separated, for the official multi-scale test (e.g. 2,1,0.5; 1 must be among "
        "them). torch and onnxruntime backends.",
    ),
]
MaxImages = Annotated[
    int | None,
    typer.Option(
        "--max-images", min=1, help="Evaluate only the first N images of the file.", show_default=False
    ),
]
ValJson = Annotated[
    Path | None, typer.Option("--json", help="Write the report (stats, speed, counts) as JSON here.")
]
ValResults = Annotated[
    Path | None,
    typer.Option(
        "--results",
        help="Write the COCO results file the evaluator read here (the official keypoints_*_results.json).",
    ),
]


def parse_scales(text: str) -> tuple[float, ...]:
    """``--scales 2,1,0.5`` as numbers; the library checks what they may be."""
    try:
        return tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise typer.BadParameter(
            f"--scales takes comma-separated numbers such as 2,1,0.5; got {text!r}"
        ) from None


# --- the accuracy gate of build-engine ---------------------------------------------------------------------

GateImages = Annotated[
    Path | None,
    typer.Option(
        "--val-images",
        help="Measure keypoint AP of fp32 and of the built file on these images (with --val-annotations); "
        "the build is refused (exit 10) when it loses more than --max-ap-drop.",
        show_default=False,
    ),
]
GateAnnotations = Annotated[
    Path | None,
    typer.Option(
        "--val-annotations", help="COCO-format keypoint annotations of --val-images.", show_default=False
    ),
]
MaxApDrop = Annotated[
    float,
    typer.Option("--max-ap-drop", min=0.0, help="Largest AP loss against fp32 accepted, in AP points."),
]

Compare = Annotated[
    list[str] | None,
    typer.Option(
        "--compare",
        help="Also score BACKEND[:PRECISION] (e.g. onnxruntime, torch:fp16, openvino) or a file from `hhrt "
        "build-engine` (.engine, .onnx, .xml) on the same images; repeat for more. One table: AP, ΔAP "
        "against the first row (the model the other options describe), FPS, NaN/inf.",
        show_default=False,
    ),
]
