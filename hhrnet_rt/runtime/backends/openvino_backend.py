"""OpenVINO backend (CPU): runs a PoseGraph ``.onnx`` (fp32) or an OpenVINO IR (``.xml`` + ``.bin``,
int8 or fp32, written by ``hhrt build-engine --target openvino``).

Optional (the extra ``openvino``); ``openvino`` is imported here only, when a backend is created, so
``import hhrnet_rt`` stays light and everything else works without it. Without a file the PoseGraph is
exported once into the ONNX Runtime backend's cache (:func:`export_cached`, same key, same files):
OpenVINO reads ONNX directly, so both runtimes share one export.

Two settings are fixed rather than left to OpenVINO's defaults:

* ``INFERENCE_PRECISION_HINT = f32``: on CPUs with bf16 or AMX units OpenVINO otherwise runs an fp32
  model in bf16 (8 mantissa bits), which moves heatmaps by ~1e-2 -- "fp32" must mean fp32 here, and in an
  int8 IR the layers kept float (the final layers, the flip/projection tail) stay fp32 too;
* ``PERFORMANCE_HINT = LATENCY``: one frame at a time, every core on it (the pipeline's shape).

Thread safety: an OpenVINO infer request is not re-entrant, so each call takes an idle request from a
pool (or makes one); the compiled model runs several requests at once. Outputs are written into buffers
reused between frames (the ONNX Runtime backend's :class:`OutputRing`, same ownership rule).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from typing import Any

import numpy as np

from hhrnet_rt.artifacts.engine_settings import INPUT_NAME, META_PREFIX, OUTPUT_NAMES
from hhrnet_rt.artifacts.file_kind import FileKind, file_kind
from hhrnet_rt.core.errors import BackendUnavailableError, InputError, option
from hhrnet_rt.core.inputs import check_input_file
from hhrnet_rt.core.names import BackendName
from hhrnet_rt.runtime.backends.base import check_batch, describe_common, run_cpu_tensors
from hhrnet_rt.runtime.backends.output_ring import OutputRing
from hhrnet_rt.runtime.backends.select import OPENVINO_INSTALL_HINT

log = logging.getLogger(__name__)

#: Files OpenVINO is handed: an ONNX PoseGraph, or an IR written by `hhrt build-engine --target openvino`.
MODEL_KINDS = (FileKind.onnx, FileKind.openvino)
# Operations that carry int8 in an OpenVINO model: NNCF's FakeQuantize on activations, and i8/u8 weight
# constants (decompressed by a Convert) after the IR is saved.
_INT8_TYPES = ("i8", "u8")


def import_openvino() -> Any:
    """``openvino``, or :class:`BackendUnavailableError` naming the extra that installs it."""
    try:
        import openvino
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the openvino backend needs the openvino package ({exc}): {OPENVINO_INSTALL_HINT}; or use "
            f"{option('backend', 'onnxruntime')}"
        ) from None
    return openvino


@functools.cache
def shared_core() -> Any:
    """The process's one ``openvino.Core`` (every backend compiles on it).

    One, not one per backend: OpenVINO's CPU plugin (2026.4) gives the thread that compiles a model an
    alternate signal stack per Core and, when the Core goes, puts back the stack it found. Cores that end
    out of creation order (two backends, the older dropped first) leave a freed stack in place, and the
    next signal handled on that thread -- Ctrl-C, or the SIGTERM/SIGHUP the CLI turns into a clean stop --
    kills the process with SIGSEGV. A Core that lives as long as the process puts nothing back.
    """
    return import_openvino().Core()


def precision_of(model: Any) -> str:
    """ "int8" when the model holds quantised operations or int8 weights, "fp16" when its weights are half
    precision (an fp16 .onnx: computed in f32 from the rounded weights), else "fp32" -- the file decides,
    as for ONNX Runtime."""
    half = False
    for op in model.get_ops():
        kind = op.get_type_name()
        if kind == "FakeQuantize":
            return "int8"
        if kind == "Constant":
            dtype = op.get_output_element_type(0).get_type_name()
            if dtype in _INT8_TYPES:
                return "int8"
            half = half or dtype == "f16"
    return "fp16" if half else "fp32"


class OpenVinoBackend:
    """OpenVINO CPU inference of a PoseGraph file.

    Args:
        model_path: an ``.onnx`` PoseGraph export or an OpenVINO ``.xml`` IR (its ``.bin`` beside it);
            input "image" (N, 3, h, w) float32, outputs named as the graph declares them.
        threads: inference threads (``None``: OpenVINO's default, one stream on every core).
        reuse_outputs: write outputs into reused buffers instead of new arrays.

    Example:
        >>> backend = OpenVinoBackend("engines/w32_512-512-int8-openvino.xml", threads=2)  # doctest: +SKIP
        >>> heatmaps, tags = backend.run(x)
    """

    name = BackendName.openvino
    device = "cpu"
    tensor_native = False  # numpy in and out; run_torch wraps run for CPU tensors
    max_batch = None  # any batch (dynamic axes)

    def __init__(
        self, model_path: str | os.PathLike, *, threads: int | None = None, reuse_outputs: bool = True
    ) -> None:

        ov = import_openvino()
        self.model_path = check_input_file(model_path, "OpenVINO model")
        if file_kind(self.model_path) not in MODEL_KINDS:
            raise InputError(
                f"{self.model_path}: the openvino backend runs an .onnx PoseGraph or an .xml IR from "
                "`hhrt build-engine --target openvino`"
            )
        if threads is not None and threads < 1:
            raise InputError(f"openvino threads must be >= 1, got {threads}")
        self.threads = threads
        core = shared_core()
        try:
            model = core.read_model(str(self.model_path))
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError/GeneralFailure for any bad file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputError(
                f"{self.model_path} is not a model OpenVINO can read ({type(exc).__name__}: {first[:200]}); "
                "pass an .onnx or .xml file written by `hhrt build-engine`"
            ) from None
        inputs = [sorted(i.get_names()) for i in model.inputs]
        self.output_names = [_one_name(o) for o in model.outputs]
        if inputs != [[INPUT_NAME]] or sorted(self.output_names) != sorted(OUTPUT_NAMES):
            raise InputError(
                f"{self.model_path} has inputs {inputs} and outputs {self.output_names}; expected "
                f"{[INPUT_NAME]} and {list(OUTPUT_NAMES)} (a PoseGraph file from `hhrt build-engine`)"
            )
        self.precision = precision_of(model)
        self.metadata = _metadata(model)
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = core.compile_model(model, "CPU", config)
        self.ov_version = ov.__version__
        self._tensor = ov.Tensor
        self._idle: list[Any] = []  # infer requests not in use
        self._lock = threading.Lock()
        self._out_shapes: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
        self._ring = OutputRing() if reuse_outputs else None

    @classmethod
    def from_graph(
        cls,
        graph: Any,
        *,
        example_hw: tuple[int, int] = (512, 512),
        cache_dir: str | os.PathLike | None = None,
        threads: int | None = None,
    ) -> OpenVinoBackend:
        """Export ``graph`` (a PoseGraph) into the ONNX export cache (once; shared with ONNX Runtime) and
        open it. A cached file OpenVINO cannot read, or that lacks this graph's cache key, is exported again."""
        import json

        from hhrnet_rt.runtime.backends.onnx_cache import export_cached, graph_cache_key

        path = export_cached(graph, example_hw=example_hw, cache_dir=cache_dir)
        try:
            backend = cls(path, threads=threads)
            if backend.metadata.get("cache_key") == json.dumps(graph_cache_key(graph)):
                return backend
            problem = "it does not carry this graph's cache key"
        except InputError as exc:
            problem = str(exc)
        log.warning("warning: the cached ONNX export %s is unusable (%s); exporting it again", path, problem)
        path = export_cached(graph, example_hw=example_hw, cache_dir=cache_dir, refresh=True)
        return cls(path, threads=threads)

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The graph's outputs for ``x``, in :data:`OUTPUT_NAMES` order (shapes as the graph makes them);
        the arrays may be reused once nothing references them."""
        x = check_batch(x)
        key = tuple(x.shape)
        buffers: tuple[np.ndarray, np.ndarray] | None = None
        if self._ring is not None:
            buffers = self._ring.take(key)
        if buffers is None:
            buffers = self._fresh_outputs(key)
        # A pooled request may still point at buffers it was given before: it only ever runs with
        # buffers bound again. The first call at a shape (output shapes not known yet) takes a new
        # request, which writes into memory of its own.
        request = self._take_request() if buffers is not None else self.compiled.create_infer_request()
        try:
            if buffers is None:  # first call at this shape: OpenVINO allocates, we copy out once
                out = request.infer({INPUT_NAME: x}, share_inputs=True, share_outputs=False)
                by_name = {_one_name(port): np.asarray(value) for port, value in out.items()}
                buffers = (by_name[OUTPUT_NAMES[0]], by_name[OUTPUT_NAMES[1]])
                self._out_shapes[key] = [b.shape for b in buffers]
            else:
                # Every call binds its own buffers: a request may still point at another call's arrays.
                for name, buf in zip(OUTPUT_NAMES, buffers, strict=True):
                    request.set_tensor(name, self._tensor(buf, shared_memory=True))
                request.infer({INPUT_NAME: x}, share_inputs=True)
        finally:
            with self._lock:
                self._idle.append(request)
        if self._ring is not None:
            self._ring.adopt(key, buffers)
        # A new tuple: the ring judges "free" by references to the arrays, and a caller holding the ring's
        # own tuple would hold them without adding any (``tuple(t)`` would return ``t`` itself).
        heatmaps, tags = buffers
        return heatmaps, tags

    def _take_request(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self.compiled.create_infer_request()

    def _fresh_outputs(self, key: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray] | None:
        shapes = self._out_shapes.get(key)
        if shapes is None:
            return None
        heatmaps_shape, tags_shape = shapes  # in OUTPUT_NAMES order
        return np.empty(heatmaps_shape, np.float32), np.empty(tags_shape, np.float32)

    def run_torch(self, x: Any) -> tuple[Any, Any]:
        """Backend protocol on CPU tensors: shares their memory with numpy both ways (no copy)."""
        return run_cpu_tensors(self, x)

    def describe(self) -> dict[str, Any]:
        return describe_common(
            self, model=str(self.model_path), threads=self.threads, openvino=self.ov_version
        )


def _one_name(port: Any) -> str:
    """The output's name among the graph's declared names (a port may carry several aliases)."""
    names = port.get_names()
    known = [n for n in OUTPUT_NAMES if n in names]
    return known[0] if known else (sorted(names) or [port.get_any_name()])[0]


def _metadata(model: Any) -> dict[str, str]:
    """The hhrnet_rt.* ONNX metadata (kept by OpenVINO in rt_info, also in a saved IR), JSON strings."""
    out: dict[str, str] = {}
    if not model.has_rt_info(["framework"]):
        return out
    for key in model.get_rt_info()["framework"]:
        if key.startswith(META_PREFIX):
            out[key[len(META_PREFIX) :]] = model.get_rt_info(["framework", key]).astype(str)
    return out
