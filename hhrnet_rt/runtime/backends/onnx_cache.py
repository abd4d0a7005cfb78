"""The ONNX export cache that the ONNX Runtime and OpenVINO backends share.

The cache key covers everything the exported file depends on (weights bytes and shapes, flip, flip
index, projection mode, torch version), so a cached file is never stale and re-exports happen only when
something changed. The example input size is deliberately not part of it: batch, height and width are
dynamic axes, so one file serves every input size (tests run files exported at one size on others).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from hhrnet_rt.artifacts.engine_settings import META_PREFIX, onnx_metadata
from hhrnet_rt.artifacts.sidecar import INPUT_NAME, OUTPUT_NAMES, dynamic_axes
from hhrnet_rt.core import paths
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.model.digest import state_dict_digest
from hhrnet_rt.model.onnx_export import export_onnx

CACHE_KEY = META_PREFIX + "cache_key"
CACHE_SUBDIR = "onnx"
# Every file this backend writes into its cache matches it (see cached_export_path).
_EXPORT_GLOB = "posegraph_k*.onnx"


def default_cache_dir() -> Path:
    """The ``onnx`` folder of the package cache, or of the temporary fallback when that is read-only
    (:func:`hhrnet_rt.core.paths.writable_cache_dir`)."""
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
    return onnx_metadata(
        num_joints=int(graph.num_joints), flip=graph.flip, project=graph.project,
        weights_sha256=state_dict_digest(graph.network), cache_key=graph_cache_key(graph),
    )  # fmt: skip
