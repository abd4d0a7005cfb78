"""The options of a run: inputs, outputs, what is kept, batching, tracking, servers and clusters.

Each option's name, help and check in one place (the model options are in :mod:`hhrnet_rt.cli.options`),
so every command spells them the same way; the commands gather them into settings objects.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from hhrnet_rt._version import __version__
from hhrnet_rt.core.access import TOKEN_ENV
from hhrnet_rt.track.hook import TemporalSettings


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"hhrt {__version__}")
        raise typer.Exit()


Version = Annotated[
    bool,
    typer.Option(
        "--version", "-V", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
]
Overwrite = Annotated[
    bool,
    typer.Option("--overwrite", "-y", help="Replace output files that already exist (never the input)."),
]
SkipExisting = Annotated[
    bool,
    typer.Option(
        "--skip-existing",
        help="Skip inputs whose outputs exist and are complete (checked, not only present): an interrupted "
        "batch resumes where it stopped. Outputs that exist but are incomplete need --overwrite to be redone.",
    ),
]

# --- what is read and what is kept ------------------------------------------------------------------------

VideoInputs = Annotated[
    list[str],
    typer.Argument(help="Video files, folders, glob patterns or http(s)/rtsp URLs.", show_default=False),
]  # checked by hhrnet_rt.core.inputs / FileSource
ImageInputs = Annotated[
    list[str], typer.Argument(help="Image files, folders or glob patterns.", show_default=False)
]  # checked by hhrnet_rt.core.inputs
Recursive = Annotated[
    bool, typer.Option("--recursive", "-r", help="Also look in the sub-folders of folder inputs.")
]
MaxFrames = Annotated[int | None, typer.Option(min=1, help="Stop after this many frames.")]
MinScore = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        help="Keep only people with score >= this: the one threshold for what is drawn, counted and "
        "written (JSON, COCO). Default: the files keep everyone (as the official evaluation does) and the "
        "picture hides people scoring 0.1 or less.",
        show_default=False,
    ),
]
MaxPeople = Annotated[
    int | None,
    typer.Option(
        min=1, help="Keep at most this many people per frame (the highest scores).", show_default=False
    ),
]

# --- hhrt video -------------------------------------------------------------------------------------------

VideoOut = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Annotated video: an .mp4 file (one input) or a folder (<name>.mp4 per input). "
        "Default: a new runs/pose/N folder.",
        show_default=False,
    ),
]
VideoJson = Annotated[
    Path | None,
    typer.Option(
        "--json",
        help="Keypoints as JSON lines: a .jsonl file (one input) or a folder (<name>.jsonl per input).",
        show_default=False,
    ),
]
Coco = Annotated[
    Path | None,
    typer.Option(
        help="Keypoints in COCO results format: a .json file (one input) or a folder "
        "(<name>.coco.json per input).",
        show_default=False,
    ),
]
VideoShow = Annotated[bool, typer.Option(help="Also show the result in a window (q or Esc stops).")]
Streams = Annotated[
    int,
    typer.Option(
        min=1,
        help="Inputs run together, sharing the model and its batches (each has its own reader and "
        "outputs open); more inputs run in groups of this many, one group after the other.",
    ),
]

# --- hhrt image -------------------------------------------------------------------------------------------

ImageOut = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Folder for the annotated images (created), or with one image the file to write (b.jpg). "
        "Default: a new runs/pose/N folder.",
        show_default=False,
    ),
]
ImageJson = Annotated[bool, typer.Option("--json", help="Also write <name>.json with the keypoints.")]
ExifOrientation = Annotated[
    bool,
    typer.Option(
        "--exif-orientation/--ignore-exif-orientation",
        help="Turn photos upright as their EXIF orientation says (default, like image viewers); "
        "--ignore-exif-orientation keeps the stored pixels, as the official COCO evaluation does.",
    ),
]

# --- hhrt webcam ------------------------------------------------------------------------------------------

Camera = Annotated[
    list[str] | None,
    typer.Option(
        help="Camera index (default 0), stream URL, or a video file played in real time; repeat it "
        "for several streams in one run (one tiled window; --out and --json then name folders).",
        show_default=False,
    ),
]
CameraOut = Annotated[
    Path | None,
    typer.Option(
        "--out", "-o", help="Also record the annotated stream (.mp4; a folder for several cameras)."
    ),
]
CameraJson = Annotated[
    Path | None,
    typer.Option(
        "--json", help="Keypoints, one JSON record per frame (.jsonl; a folder for several cameras)."
    ),
]
CameraShow = Annotated[bool, typer.Option(help="Show the window (default); --no-show to only record.")]
Width = Annotated[
    int | None, typer.Option(min=1, help="Frame width to ask the camera for.", show_default=False)
]
Height = Annotated[
    int | None, typer.Option(min=1, help="Frame height to ask the camera for.", show_default=False)
]
Fps = Annotated[
    float | None, typer.Option(min=1.0, help="Frame rate to ask the camera for.", show_default=False)
]

# --- batching (video, webcam) -----------------------------------------------------------------------------

Batch = Annotated[
    int,
    typer.Option(
        min=1,
        help="Frames per inference call: frames of several inputs, or consecutive frames of one file "
        "(1: one call per frame). Larger batches keep a GPU busy; on a CPU they rarely help.",
    ),
]
MaxWaitMs = Annotated[
    float,
    typer.Option(
        min=0.0,
        help="How long inference waits for a batch to fill once it has a frame (the latency --batch may "
        "add to a live stream).",
    ),
]
DecodeThreads = Annotated[
    int,
    typer.Option(
        min=1,
        help="Threads that group the people of one batch's frames side by side (1: the decode thread "
        "alone). For many streams on a fast GPU, where grouping every frame in one thread can be the "
        "slowest stage.",
    ),
]

# --- --track and --smooth (video, webcam): each stream gets its own tracker and filters ----------------

TEMPORAL = TemporalSettings()  # the defaults the commands show
_TRACKING = "Tracking and smoothing"

Track = Annotated[
    bool,
    typer.Option(
        "--track",
        help='Give each person an ID that stays the same across frames (JSON "id", COCO "track_id", '
        "a colour per ID on the picture).",
        rich_help_panel=_TRACKING,
    ),
]
TrackMinHits = Annotated[
    int,
    typer.Option(
        min=1,
        help="Frames in a row a new person must be seen before getting an ID.",
        rich_help_panel=_TRACKING,
    ),
]
TrackMaxAge = Annotated[
    int,
    typer.Option(min=0, help="Frames a person may go unseen and keep the ID.", rich_help_panel=_TRACKING),
]
TrackMinOks = Annotated[
    float,
    typer.Option(
        min=0.0, max=1.0, help="Least keypoint similarity (OKS) to the person's predicted pose for a match.",
        rich_help_panel=_TRACKING,
    ),
]  # fmt: skip
Smooth = Annotated[
    bool,
    typer.Option(
        "--smooth",
        help="Smooth the joints over time (One-Euro filter per tracked joint; turns --track on). JSON "
        'records then say "smoothed": true.',
        rich_help_panel=_TRACKING,
    ),
]
SmoothMinCutoff = Annotated[
    float,
    typer.Option(
        min=0.001, help="Cutoff (Hz) for joints at rest: lower smooths more.", rich_help_panel=_TRACKING
    ),
]
SmoothBeta = Annotated[
    float,
    typer.Option(min=0.0, help="Cutoff rise per pixel/second of speed: higher lags less on fast moves.",
                 rich_help_panel=_TRACKING),
]  # fmt: skip
SmoothDCutoff = Annotated[
    float,
    typer.Option(min=0.001, help="Cutoff (Hz) of the joint speed estimate.", rich_help_panel=_TRACKING),
]

# --- --server (video, webcam): inference on an `hhrt serve` server --------------------------------------


class SendFormat(StrEnum):
    jpeg = "jpeg"
    png = "png"


ServerUrl = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="Run inference on an `hhrt serve` server (http://host:port): capture, drawing and writing "
        "stay here; the model options are the server's.",
        show_default=False,
    ),
]
ClientToken = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar=TOKEN_ENV,
        help="Bearer token for --server, and the token --web asks for off loopback.",
        show_default=False,
    ),
]
SendAs = Annotated[
    SendFormat,
    typer.Option(
        "--send",
        case_sensitive=False,
        help="How frames travel to --server: jpeg (small) or png (lossless: the same poses as a local run).",
    ),
]
InFlight = Annotated[
    int, typer.Option("--in-flight", min=1, max=64, help="Requests to --server in flight at once, at most.")
]

# --- --ray (video): the inputs as Ray tasks ----------------------------------------------------------------

_RAY = "Ray (videos as tasks on a cluster)"
RayFlag = Annotated[
    bool,
    typer.Option(
        "--ray",
        help="Process the inputs as Ray tasks, one per video, on a local Ray (127.0.0.1) or the cluster "
        "--address names. Outputs are written by the workers: on a cluster, put them on shared storage.",
        rich_help_panel=_RAY,
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="With --ray: join this Ray cluster (auto, ray://HEAD:10001, HEAD:6379) instead of starting "
        "a local one.",
        show_default=False,
        rich_help_panel=_RAY,
    ),
]
CpusPerTask = Annotated[
    float, typer.Option(min=0.0, help="With --ray: CPUs each video's task reserves.", rich_help_panel=_RAY)
]
GpusPerTask = Annotated[
    float,
    typer.Option(
        min=0.0,
        help="With --ray: GPUs each video's task reserves (0.5: two videos share a GPU).",
        rich_help_panel=_RAY,
    ),
]
MaxRetries = Annotated[
    int,
    typer.Option(
        min=0, help="With --ray: how often a video is retried when its worker dies.", rich_help_panel=_RAY
    ),
]
