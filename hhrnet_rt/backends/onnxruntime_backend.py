"""ONNX Runtime backend (CPU): runs a given .onnx, or exports the PoseGraph once into a cache.

The cache key covers everything the exported file depends on (weights bytes and shapes, flip, flip
index, projection mode, torch version), so a cached file is never stale and re-exports happen only when
something changed. The example input size is deliberately not part of it: batch, height and width are
dynamic axes, so one file serves every input size (tests run files exported at one size on others). ``onnxruntime`` is imported here only, so ``import hhrnet_rt`` stays light.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
from pathlib import Path

import numpy as np

from hhrnet_rt import paths
from hhrnet_rt.backends.base import BackendName, check_batch, describe_common, run_cpu_tensors
from hhrnet_rt.engine_file import INPUT_NAME, META_PREFIX, OUTPUT_NAMES, onnx_metadata
from hhrnet_rt.errors import BackendUnavailableError, InputError, option
from hhrnet_rt.export.sidecar import dynamic_axes
from hhrnet_rt.inputs import check_input_file

log = logging.getLogger(__name__)
_CACHE_KEY = META_PREFIX + "cache_key"
CACHE_SUBDIR = "onnx"
# Every file this backend writes into its cache matches it (see cached_export_path).
_EXPORT_GLOB = "posegraph_k*.onnx"

# Most output buffer pairs kept for reuse (see OutputRing). The pipeline holds at most
# queue_size // 2 + 2 maps at once (4 with its default queue of 4), so 8 leaves room for a deeper queue
# before the ring stops growing and falls back to fresh arrays.
MAX_OUTPUT_BUFFERS = 8


class OutputRing:
    """Output arrays reused between calls, handed out only when nothing else references them.

    Allocating the outputs afresh each frame costs page faults over the whole buffer (73.5 MB for W32 at
    512x960 with projection). Reuse must not overwrite maps that the pipeline is still decoding (it keeps
    several frames in flight), so the ownership rule is enforced, not documented: a buffer pair is
    reused only when the ring holds the last references to both arrays (``sys.getrefcount``; views such
    as ``heatmaps[0]`` or ``torch.from_numpy`` keep their base referenced). While every buffer is still in
    use, a new pair is added, up to ``capacity``; beyond that, fresh arrays are returned.
    """

    def __init__(self, capacity: int = MAX_OUTPUT_BUFFERS) -> None:
        self.capacity = capacity
        self._pairs: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray]]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _free(pair: tuple[np.ndarray, np.ndarray]) -> bool:
        return _most_refs(pair) <= _FREE_REFS

    def take(self, key: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray] | None:
        """Check out a free buffer pair for input shape ``key`` (None: allocate); :meth:`adopt` it after.

        The pair leaves the ring until adopted, so two threads never get the same one.
        """
        with self._lock:
            pairs = self._pairs.get(key, [])
            for i, pair in enumerate(pairs):
                if self._free(pair):
                    return pairs.pop(i)
        return None

    def adopt(self, key: tuple[int, ...], pair: tuple[np.ndarray, np.ndarray]) -> None:
        """Keep outputs (checked out or fresh) for reuse once their users drop them (if there is room)."""
        with self._lock:
            if len(self._pairs) > 4:  # input shapes change rarely; do not hoard buffers for old ones
                self._pairs.clear()
            pairs = self._pairs.setdefault(key, [])
            if len(pairs) < self.capacity:
                pairs.append(pair)

    def __len__(self) -> int:
        return sum(len(p) for p in self._pairs.values())


def _most_refs(pair: tuple[np.ndarray, np.ndarray]) -> int:
    heatmaps, tags = pair
    return max(sys.getrefcount(heatmaps), sys.getrefcount(tags))


# References to an array that only the ring's tuple holds, counted through the same code path (the
# interpreter's own counting of locals and arguments differs between Python versions, so it is measured).
_FREE_REFS = _most_refs((np.empty(1), np.empty(1)))


def default_cache_dir() -> Path:
    """The ``onnx`` folder of the package cache, or of the temporary fallback when that is read-only
    (:func:`hhrnet_rt.paths.writable_cache_dir`)."""
    return paths.writable_cache_dir(CACHE_SUBDIR)


def cached_exports() -> list[Path]:
    """The exports this backend wrote into the package cache and its temporary fallback (not files
    written to a ``cache_dir`` the caller chose)."""
    found = []
    for folder in paths.cache_candidates(CACHE_SUBDIR):
        if folder.is_dir():
            found += [f for f in sorted(folder.glob(_EXPORT_GLOB)) if f.is_file() and not f.is_symlink()]
    return found


def graph_cache_key(graph) -> str:
    """Hex digest identifying the ONNX export of ``graph`` (a PoseGraph): weights, flip, projection, graph
    layout, torch."""
    import torch

    from hhrnet_rt.weights import state_dict_digest

    flip_index = None if graph.flip_index is None else graph.flip_index.tolist()
    settings = repr((graph.flip, flip_index, graph.project, graph.LAYOUT, torch.__version__))
    return hashlib.sha256((state_dict_digest(graph.network) + settings).encode()).hexdigest()


def export_cached(
    graph,
    *,
    example_hw: tuple[int, int],
    cache_dir: str | os.PathLike | None = None,
    refresh: bool = False,
) -> Path:
    """Export ``graph`` (a PoseGraph) to ONNX unless the cache already holds it; returns the file path.

    ``refresh=True`` exports again even if a file is there (the caller found it corrupt).
    """
    import torch

    from hhrnet_rt.export.onnx import export_onnx

    path = cached_export_path(graph, cache_dir)
    if path.is_file() and not refresh:
        return path
    # export_onnx writes a temporary file and renames it, so a concurrent exporter of the same graph
    # (another process) never leaves a half-written file at ``path``.
    return export_onnx(
        graph.eval(),
        path,
        example_input=torch.zeros(1, 3, *example_hw),
        input_names=[INPUT_NAME],
        output_names=list(OUTPUT_NAMES),
        dynamic_axes=dynamic_axes(graph.project),
        metadata=_export_metadata(graph),
    )


def cached_export_path(graph, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the cache keeps ``graph``'s export (the folder is created)."""
    if cache_dir is None:
        cache = default_cache_dir()
    else:
        cache = Path(cache_dir)
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the ONNX cache folder {cache}: {exc.strerror or exc}") from None
    k = graph.num_joints if graph.num_joints is not None else "k"
    name = f"posegraph_k{k}_{'flip' if graph.flip else 'noflip'}_{'proj' if graph.project else 'half'}"
    return cache / f"{name}_{graph_cache_key(graph)[:16]}.onnx"


def _export_metadata(graph) -> dict[str, str]:
    """The file describes itself, and carries its cache key so a corrupt or foreign file is noticed."""
    from hhrnet_rt.weights import state_dict_digest

    return onnx_metadata(
        num_joints=int(graph.num_joints), flip=graph.flip, project=graph.project,
        weights_sha256=state_dict_digest(graph.network), cache_key=graph_cache_key(graph),
    )  # fmt: skip


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
            if backend.metadata.get(_CACHE_KEY) == json.dumps(graph_cache_key(graph)):
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

    def run_torch(self, x):
        """Backend protocol on CPU tensors: shares their memory with numpy both ways (no copy)."""
        return run_cpu_tensors(self, x)

    def describe(self) -> dict:
        return describe_common(
            self,
            onnx=str(self.onnx_path),
            threads=self.threads,
            spinning=self.spinning,
            onnxruntime=self.ort_version,
        )
