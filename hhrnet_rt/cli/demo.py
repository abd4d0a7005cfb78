"""Command ``hhrt demo``: the main job, in one command, on the clip that ships with the package.

It is ``hhrt video`` on :func:`hhrnet_rt.data.sample_video` (4 s of people walking) with the ``--fast``
preset, writing into a new ``runs/pose/N`` folder: the annotated video and the keypoints as JSON lines,
then the summary (frames, FPS, people, the files). A first run downloads the default weights.

Offline, the download fails within :data:`DOWNLOAD_TIMEOUT_S` and the demo runs the same pipeline with
random weights: it still proves the install and measures the speed, and it says, on screen and on every
frame, that the poses are meaningless.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hhrnet_rt.cli import progress
from hhrnet_rt.cli.app import app, handle_errors
from hhrnet_rt.cli.estimator import DEFAULT_WEIGHTS, make_estimator, model_config, warm_up
from hhrnet_rt.cli.options import AUTO_BACKEND, Backend, DecodeOn, Device, Threads
from hhrnet_rt.cli.options_draw import Quiet, Verbose
from hhrnet_rt.cli.run_options import MaxFrames
from hhrnet_rt.cli.run_report import close_all, run_and_report, run_folder
from hhrnet_rt.cli.stream_io import RunSettings, open_sinks
from hhrnet_rt.core.errors import DownloadError
from hhrnet_rt.data import sample_video
from hhrnet_rt.draw import PoseStyle
from hhrnet_rt.model.download import NAMED_WEIGHTS, fetch_named, needs_download
from hhrnet_rt.video import FileSource
from hhrnet_rt.video.records import run_header

#: How long connecting to the weights' host (and each read) may take before the demo falls back.
DOWNLOAD_TIMEOUT_S = 15.0
#: Written on every frame, and said at the end, when the demo ran without real weights.
RANDOM_CAPTION = "random weights: poses are meaningless"

DemoWeights = Annotated[
    str,
    typer.Option(
        "--weights",
        help="Named weights (downloaded once, ~110 MB for w32_512) or a checkpoint file.",
    ),
]
DemoFast = Annotated[
    bool,
    typer.Option(
        "--fast/--no-fast",
        help="The laptop preset (input 384, no flip test): the demo's default, as a CPU runs the full "
        "settings at about 1 frame per second; --no-fast for the official settings.",
    ),
]


@app.command()
@handle_errors
@progress.levelled
def demo(
    weights: DemoWeights = DEFAULT_WEIGHTS,
    fast: DemoFast = True,
    backend: Backend = AUTO_BACKEND,
    device: Device = None,
    threads: Threads = None,
    max_frames: MaxFrames = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Try hhrt on the bundled clip of people walking: annotated video + JSON lines in runs/pose/N.

    Says the FPS and where the files are at the end.

    The first run downloads the weights; offline it runs with random weights instead (it says so: the
    poses are then meaningless, but the install and the speed are checked).
    """
    clip = sample_video()
    weights, caption = _weights_or_random(weights)
    progress.note(f"demo: {clip.name} (40 frames, 768x576, people walking; bundled with hhrnet-rt)")
    if fast:
        progress.note("--fast preset: input 384, no flip test (hhrt demo --no-fast: the official settings)")
    model = model_config(weights=weights, backend=backend, engine=None, precision=None, device=device,
                         input_size=None, flip=None, fast=fast, refine=True, decode_on=DecodeOn.auto,
                         threads=threads)  # fmt: skip
    run = RunSettings(max_frames=max_frames, style=PoseStyle(caption=caption))
    title = "demo (random weights)" if caption else "demo"
    with run_folder(None) as run_dir:
        assert run_dir is not None  # run_folder makes one when no --out is given
        source = FileSource(clip)
        opened: list[tuple[Any, list[Any]]] = [(source, [])]
        try:
            estimator = make_estimator(model)
            warm_up(estimator, [source])
            opened[0][1].extend(open_sinks(run_dir / "walking.mp4", run_dir / "walking.jsonl", None, source,
                                           live=False, overwrite=False, run_header=run_header(estimator)))  # fmt: skip
        except BaseException:
            close_all(opened)
            raise
        run_and_report(opened, estimator, run, hud=False, title=title)
    if caption:
        progress.warn(f"{RANDOM_CAPTION}: this run checked the install and the speed only. For real poses, "
                      f"run it where https://download.openmmlab.com is reachable, or pass a checkpoint "
                      f"with --weights FILE.pth (docs/weights.md)")  # fmt: skip


def _weights_or_random(weights: str) -> tuple[str, str]:
    """(the weights to run, the caption): named weights downloaded if missing; if that fails, "random"
    and :data:`RANDOM_CAPTION`, said in one line (``--weights random`` gets the caption too)."""
    if weights == "random":
        return weights, RANDOM_CAPTION
    if weights not in NAMED_WEIGHTS or not needs_download(weights):
        return weights, ""
    progress.note(f"downloading the {weights} weights (once; ~110-250 MB)")
    try:
        fetch_named(weights, progress=progress.live() and not progress.quiet(), timeout_s=DOWNLOAD_TIMEOUT_S)
    except DownloadError as exc:
        reason = str(exc).split(". ", 1)[0]  # the first sentence: what failed, and why (no network?)
        progress.warn(f"no {weights} weights: {reason}. Running the same pipeline with random weights "
                      "instead: poses are meaningless")  # fmt: skip
        return "random", RANDOM_CAPTION
    return weights, ""
