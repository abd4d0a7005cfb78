"""CPU inference variants in ONE interleaved run: fp32 vs int8 (TensorRT-shaped and ONNX Runtime
CPU-shaped) in ONNX Runtime, OpenVINO fp32/int8 when installed, at the official setting (input 512, flip)
and at the ``--fast`` preset (input 384, no flip), on a 640x480 frame.

For each model (W32-512 random init, and the golden tiny model) and each setting:

* build every variant once (fp32 export; int8 files calibrated on generated frames, percentile);
* time them interleaved -- round r runs every variant once before round r+1 starts, so a load change on
  the machine hits every variant alike -- in a worker thread (as the pipeline runs inference):
  ``model`` = the session call alone on the preprocessed frame; ``e2e`` = ``PoseEstimator.predict``
  (preprocess, network, flip/projection tail, decode) on the 640x480 frame;
* report the median ms of each, FPS, the ratio to fp32 ONNX Runtime of the same run, and the agreement of
  each variant's keypoints with fp32 at the official setting (same frames, image pixels, within 2 px and
  8 px); with random weights agreement is only a proxy (flat heatmaps, near-tie peaks).

Targets (issue 13): int8 CPU e2e >= 2.2x the fp32 FPS of the same run; e2e <= 1.05x the model time.

Figures must be taken on a quiet machine (nothing else running); run from the repository root:

    python benchmarks/bench_cpu.py --models w32 tiny --rounds 5            # the recorded figures
    python benchmarks/bench_cpu.py --models tiny --rounds 1 --calib 2      # smoke test (seconds)

Options for the thread study: ``--ort-variants`` adds fp32 and int8-cpu sessions with spinning on and
with cores-1 intra-op threads. OpenVINO (the package's optional backend, extra ``openvino``) is included
when installed: fp32 on the same ONNX file, int8 as ``hhrt build-engine --target openvino`` builds it.

Companions: ``bench_cpu_tail.py`` (the tail + allocation share of a frame and end to end vs the bare
network, planar vs interleaved tags in one run) and ``bench_cpu_threads.py`` (ORT spinning / cores-1
threads in the threaded pipeline, where decode and draw compete for the cores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's hhrnet_rt, not another installed copy
GOLDEN_TINY = REPO / ".." / "shared" / "golden" / "tiny_model.npz"
FRAME_HW = (480, 640)
SETTINGS = {"official": (512, True), "fast": (384, False)}


@dataclass
class Variant:
    """One way to run the network: a name, a backend object with ``run(x)``, and its estimator."""

    name: str
    setting: str
    backend: Any
    estimator: Any
    model_ms: list[float] = field(default_factory=list)
    e2e_ms: list[float] = field(default_factory=list)
    poses: list[np.ndarray] = field(default_factory=list)


def generated_frames(n: int, seed: int) -> list[np.ndarray]:
    from hhrnet_rt.bench.run import synthetic_frames

    return synthetic_frames(n, FRAME_HW, seed)


def build_files(
    network: Any, input_size: int, flip: bool, folder: Path, calib: list[np.ndarray], log
) -> dict:
    """fp32, int8 TensorRT-shaped, int8 CPU-shaped (QOperator = the default, and QDQ) files for one setting."""
    from hhrnet_rt.export.build import export_graph, preprocess_bgr
    from hhrnet_rt.export.quantize import quantize_int8
    from hhrnet_rt.export.quantize_cpu import quantize_int8_cpu

    tag = f"s{input_size}{'f' if flip else ''}"
    files = {"fp32": export_graph(network, folder / f"{tag}.fp32.onnx", flip=flip, input_size=input_size)}
    inputs = [preprocess_bgr(f, input_size) for f in calib]
    jobs: dict[str, Callable[[Path], Any]] = {
        "int8-trt": lambda out: quantize_int8(files["fp32"], out, calibration_inputs=lambda: inputs),
        "int8-cpu": lambda out: quantize_int8_cpu(files["fp32"], out, calibration_inputs=lambda: inputs),
        "int8-cpu-qdq": lambda out: quantize_int8_cpu(
            files["fp32"], out, calibration_inputs=lambda: inputs, quant_format="qdq"
        ),
    }
    for name, job in jobs.items():
        t0 = time.perf_counter()
        job(folder / f"{tag}.{name}.onnx")
        files[name] = folder / f"{tag}.{name}.onnx"
        log(f"  {name}: quantised in {time.perf_counter() - t0:.0f} s")
    return files


def openvino_variants(fp32: Path, calib_inputs: list[np.ndarray], threads: int | None, log) -> dict[str, Any]:
    """The package's OpenVINO backend on the same fp32 ONNX file, and on the int8 IR that `hhrt
    build-engine --target openvino` would write from it (NNCF, same float layers); {} when not installed."""
    from hhrnet_rt.runtime.backends.select import openvino_available

    if not openvino_available():
        log('  openvino: not installed (pip install -e ".[openvino]" to include it)')
        return {}
    from hhrnet_rt.export.openvino_build import write_openvino_ir
    from hhrnet_rt.runtime.backends.openvino_backend import OpenVinoBackend

    out = {"ov-fp32": OpenVinoBackend(fp32, threads=threads)}
    t0 = time.perf_counter()
    xml = fp32.with_suffix(".ov-int8.xml")
    write_openvino_ir(fp32, xml, calibration_inputs=lambda: calib_inputs, count=len(calib_inputs))
    log(f"  ov-int8: quantised in {time.perf_counter() - t0:.0f} s")
    out["ov-int8"] = OpenVinoBackend(xml, threads=threads)
    return out


def make_variants(
    network: Any, setting: str, folder: Path, calib: list[np.ndarray], args, log
) -> list[Variant]:
    from hhrnet_rt.export.build import preprocess_bgr
    from hhrnet_rt.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from hhrnet_rt.runtime.estimator import PoseEstimator

    input_size, flip = args.sizes[setting], SETTINGS[setting][1]
    log(f"{setting}: input {input_size}, flip {flip}")
    files = build_files(network, input_size, flip, folder, calib, log)
    backends: dict[str, Any] = {
        name: OnnxRuntimeBackend(path, threads=args.threads) for name, path in files.items()
    }
    if args.ort_variants:
        cores = max(1, (os.cpu_count() or 2) - 1)
        for name in ("fp32", "int8-cpu"):
            backends[f"{name}-spin"] = OnnxRuntimeBackend(files[name], threads=args.threads, spinning=True)
            backends[f"{name}-t{cores}"] = OnnxRuntimeBackend(files[name], threads=cores)
    if not args.no_openvino:
        calib_inputs = [preprocess_bgr(f, input_size) for f in calib]
        backends.update(openvino_variants(files["fp32"], calib_inputs, args.threads, log))
    # One estimator per setting; each pass swaps its backend in, so preprocessing, the tail handling and
    # the decode are the same code for every variant and only the runtime differs.
    # The file carries the weights (hhrnet_rt.artifacts.engine_settings refuses a second source it cannot match).
    estimator = PoseEstimator(None, input_size=input_size, flip=flip, backend="onnxruntime",
                              engine=str(files["fp32"]))  # fmt: skip
    return [Variant(name, setting, backend, estimator) for name, backend in backends.items()]


def run_interleaved(variants: list[Variant], frames: list[np.ndarray], rounds: int) -> None:
    """Warm every variant up, then rounds x (every variant on every frame), timing model and e2e."""
    from hhrnet_rt.bench.run import in_worker_thread

    def one_pass(v: Variant, record: bool) -> None:
        v.estimator.backend = v.backend
        for frame in frames:
            prepared = v.estimator.prepare(frame)
            x = prepared.inputs[0][1]
            t0 = time.perf_counter()
            v.backend.run(x)
            t1 = time.perf_counter()
            poses = v.estimator.predict(frame)
            t2 = time.perf_counter()
            if record:
                v.model_ms.append(1000 * (t1 - t0))
                v.e2e_ms.append(1000 * (t2 - t1))
                if len(v.poses) < len(frames):
                    v.poses.append(poses.keypoints)

    for v in variants:
        in_worker_thread(lambda v=v: one_pass(v, record=False))
    for _ in range(rounds):
        for v in variants:
            in_worker_thread(lambda v=v: one_pass(v, record=True))


def agreement(ref: list[np.ndarray], other: list[np.ndarray], tol: float) -> float | None:
    from hhrnet_rt.export.agreement import match_people

    matched = total = 0
    for a, b in zip(ref, other, strict=True):
        counts = match_people(a, b, tol)
        matched, total = matched + counts["joints_matched"], total + counts["joints_ref"]
    return None if total == 0 else matched / total


def report(model_name: str, variants: list[Variant], header: str) -> str:
    fp32 = [v for v in variants if v.name == "fp32"]
    ref = next((v for v in fp32 if v.setting == "official"), fp32[0])
    lines = [header, "", f"### {model_name}", "",
             "| setting | variant | model ms | e2e ms | e2e FPS | e2e vs fp32 | e2e / model | kp agr. 2 px | kp agr. 8 px |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    ref_e2e = statistics.median(ref.e2e_ms)
    for v in variants:
        model, e2e = statistics.median(v.model_ms), statistics.median(v.e2e_ms)
        a2, a8 = agreement(ref.poses, v.poses, 2.0), agreement(ref.poses, v.poses, 8.0)
        pct = lambda a: "n/a" if a is None else f"{100 * a:.1f}%"  # noqa: E731
        lines.append(f"| {v.setting} | {v.name} | {model:.0f} | {e2e:.0f} | {1000 / e2e:.2f} | "
                     f"{ref_e2e / e2e:.2f}x | {e2e / model:.3f} | {pct(a2)} | {pct(a8)} |")  # fmt: skip
    return "\n".join(lines)


def load(model: str) -> Any:
    from hhrnet_rt.model.weights import build_from_checkpoint, random_network

    if model == "w32":
        return random_network(0)
    net, _spec = build_from_checkpoint(GOLDEN_TINY)
    return net.eval()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["w32", "tiny"], choices=["w32", "tiny"])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=2, help="different frames per round")
    parser.add_argument("--calib", type=int, default=8, help="generated calibration frames")
    parser.add_argument(
        "--threads", type=int, default=None, help="ORT intra-op / OpenVINO threads (default: theirs)"
    )
    parser.add_argument("--ort-variants", action="store_true", help="add spinning / cores-1 sessions")
    parser.add_argument("--no-openvino", action="store_true")
    parser.add_argument(
        "--official-size", type=int, default=SETTINGS["official"][0], help="smoke tests: smaller"
    )
    parser.add_argument("--fast-size", type=int, default=SETTINGS["fast"][0])
    args = parser.parse_args()
    args.sizes = {"official": args.official_size, "fast": args.fast_size}

    import onnxruntime
    import torch

    from hhrnet_rt.bench.run import describe_machine

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    machine = describe_machine()
    header = (f"# bench_cpu {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: {machine['cpu']} ({machine['cores']} "
              f"cores), ORT {onnxruntime.__version__}, torch {torch.__version__}, OMP_WAIT_POLICY="
              f"{os.environ.get('OMP_WAIT_POLICY')}, load avg {os.getloadavg()[0]:.2f}; frame 640x480, "
              f"{args.rounds} rounds x {args.frames} frames, medians")  # fmt: skip
    calib = generated_frames(args.calib, seed=1)
    frames = generated_frames(args.frames, seed=7)
    for model in args.models:
        network = load(model)
        with tempfile.TemporaryDirectory(prefix="hhrt-bench-cpu-") as tmp:
            variants = []
            for setting in args.settings:
                variants += make_variants(network, setting, Path(tmp), calib, args, log)
            log(f"timing {len(variants)} variants, interleaved")
            run_interleaved(variants, frames, args.rounds)
            print(report(model, variants, header), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
