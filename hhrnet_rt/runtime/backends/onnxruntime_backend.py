"""ONNX Runtime backend (CPU): runs a given .onnx, or exports the PoseGraph once into the shared cache
(:mod:`~hhrnet_rt.runtime.backends.onnx_cache`). ``onnxruntime`` is imported here only, when a backend
is created, so ``import hhrnet_rt`` stays light.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from hhrnet_rt.artifacts.sidecar import INPUT_NAME, OUTPUT_NAMES
from hhrnet_rt.core.errors import BackendUnavailableError, InputError, option
from hhrnet_rt.core.inputs import check_input_file
from hhrnet_rt.core.names import BackendName
from hhrnet_rt.runtime.backends.base import check_batch, describe_common, run_cpu_tensors
from hhrnet_rt.runtime.backends.onnx_cache import CACHE_KEY, export_cached, graph_cache_key
from hhrnet_rt.runtime.backends.output_ring import OutputRing

log = logging.getLogger(__name__)


def _precision_of(path: Path) -> str:
    # Precision lives in the ONNX file (fp16 initialisers, or Q/DQ nodes for int8); look, don't guess.
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return "unknown"
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"


class OnnxRuntimeBackend:
    """ONNX Runtime inference session on the CPU.

    Args:
        onnx_path: the model file; input "image" (N, 3, h, w) float32, outputs "heatmaps" and "tags".
        threads: intra-op threads (``None``: ONNX Runtime's default, one per physical core).
        spinning: let idle pool threads spin-wait (ORT's default; off here, see ``__init__``).
        reuse_outputs: write outputs into reused buffers (:class:`OutputRing`) instead of new arrays.

    ``InferenceSession.run`` is thread-safe, so ``run`` can be called from any thread.

    Example:
        >>> backend = OnnxRuntimeBackend.from_graph(PoseGraph(net), example_hw=(512, 512))  # doctest: +SKIP
        >>> heatmaps, tags = backend.run(x)
    """

    name = BackendName.onnxruntime
    device = "cpu"
    tensor_native = False  # numpy in and out; run_torch wraps run for CPU tensors
    max_batch = None  # the exported file has a dynamic batch axis

    def __init__(
        self,
        onnx_path: str | os.PathLike,
        *,
        threads: int | None = None,
        spinning: bool = False,
        reuse_outputs: bool = True,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailableError(
                f"onnxruntime is not importable ({exc}); pip install onnxruntime, or use {option('backend', 'torch')}"
            ) from None
        self.onnx_path = check_input_file(onnx_path, "ONNX file")
        if threads is not None and threads < 1:
            raise InputError(f"onnx threads must be >= 1, got {threads}")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        # ORT's pool threads spin-wait for work between ops by default. In the pipeline the decode and
        # draw threads need those cores while inference runs, so spinning is off unless asked for.
        spin = "1" if spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        self.threads = threads
        self.spinning = spinning
        self._ring = OutputRing() if reuse_outputs else None
        try:
            self.session = ort.InferenceSession(
                str(self.onnx_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - InvalidProtobuf, Fail, InvalidGraph...: all "not usable"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputError(
                f"{self.onnx_path} is not an ONNX model ONNX Runtime can load ({type(exc).__name__}: "
                f"{first[:200]}); pass an .onnx file written by `hhrt build-engine`"
            ) from None
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [INPUT_NAME] or outputs != list(OUTPUT_NAMES):
            raise InputError(
                f"{self.onnx_path} has inputs {inputs} and outputs {outputs}; expected {[INPUT_NAME]} and "
                f"{list(OUTPUT_NAMES)} (a PoseGraph export, e.g. from `hhrt build-engine`)"
            )
        self.precision = _precision_of(self.onnx_path)
        self.ort_version = ort.__version__
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    @classmethod
    def from_graph(
        cls,
        graph,
        *,
        example_hw: tuple[int, int] = (512, 512),
        cache_dir: str | os.PathLike | None = None,
        threads: int | None = None,
    ) -> OnnxRuntimeBackend:
        """Export ``graph`` (a PoseGraph) into the cache (once) and open it.

        A cached file that ONNX Runtime cannot load, or whose recorded cache key is not this graph's
        (truncated, overwritten, from an older version), is exported again with a warning.
        """
        path = export_cached(graph, example_hw=example_hw, cache_dir=cache_dir)
        try:
            backend = cls(path, threads=threads)
            if backend.metadata.get(CACHE_KEY) == json.dumps(graph_cache_key(graph)):
                return backend
            problem = "it does not carry this graph's cache key"
        except InputError as exc:
            problem = str(exc)
        log.warning("warning: the cached ONNX export %s is unusable (%s); exporting it again", path, problem)
        path = export_cached(graph, example_hw=example_hw, cache_dir=cache_dir, refresh=True)
        return cls(path, threads=threads)

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps and tags for ``x``; the arrays may be reused once nothing references them (OutputRing)."""
        x = check_batch(x)
        if self._ring is None:
            heatmaps, tags = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: x})
            return heatmaps, tags
        key = tuple(x.shape)
        pair = self._ring.take(key)
        if pair is None:  # first call at this shape, or every buffer still in use: ORT allocates
            pair = tuple(self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: x}))
        else:
            binding = self.session.io_binding()
            binding.bind_cpu_input(INPUT_NAME, np.ascontiguousarray(x))
            for name, out in zip(OUTPUT_NAMES, pair, strict=True):
                binding.bind_output(name, "cpu", 0, out.dtype, list(out.shape), out.ctypes.data)
            self.session.run_with_iobinding(binding)
        self._ring.adopt(key, pair)
        heatmaps, tags = pair
        return heatmaps, tags

    def run_torch(self, x: Any) -> tuple[Any, Any]:
        """Backend protocol on CPU tensors: shares their memory with numpy both ways (no copy)."""
        return run_cpu_tensors(self, x)

    def describe(self) -> dict[str, Any]:
        return describe_common(
            self,
            onnx=str(self.onnx_path),
            threads=self.threads,
            spinning=self.spinning,
            onnxruntime=self.ort_version,
        )
