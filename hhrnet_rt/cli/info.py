"""Command: ``hhrt info`` — versions, devices, usable backends and caches, all without network access."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hhrnet_rt._version import __version__
from hhrnet_rt.cli.app import app, handle_errors
from hhrnet_rt.cli.cache import file_count, human_size
from hhrnet_rt.cli.options import InfoJson
from hhrnet_rt.core import paths
from hhrnet_rt.model.download import NAMED_WEIGHTS, cache_dir, cached_state
from hhrnet_rt.runtime.backends import backend_status

stdout = Console()

# (label, import name, distribution names to ask importlib.metadata, first found wins)
_PACKAGES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("torch", "torch", ("torch",)),
    ("numpy", "numpy", ("numpy",)),
    ("opencv", "cv2", ("opencv-python", "opencv-python-headless", "opencv-contrib-python")),
    ("numba", "numba", ("numba",)),
    ("onnxruntime", "onnxruntime", ("onnxruntime", "onnxruntime-gpu")),
    ("av (PyAV)", "av", ("av",)),
    ("tensorrt", "tensorrt", ("tensorrt", "tensorrt-cu12", "tensorrt-cu13")),
    ("openvino", "openvino", ("openvino",)),
)


def package_version(module: str, distributions: tuple[str, ...]) -> str:
    """Installed version of a package, or ``"not installed"`` (never imports it)."""
    if importlib.util.find_spec(module) is None:
        return "not installed"
    for dist in distributions:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "installed (version unknown)"


def collect() -> dict:
    """Everything ``hhrt info`` shows, as a JSON-ready dict."""
    # The imported package's own version (installed metadata may belong to another copy on sys.path).
    versions = {"python": platform.python_version(), "hhrnet-rt": __version__}
    versions.update({label: package_version(mod, dists) for label, mod, dists in _PACKAGES})

    import torch

    gpus = [
        {"index": i, "name": torch.cuda.get_device_name(i), "capability": ".".join(map(str, torch.cuda.get_device_capability(i)))}
        for i in range(torch.cuda.device_count())
    ] if torch.cuda.is_available() else []  # fmt: skip

    backends = backend_status()  # the probes and reasons choose_backend uses

    cache = cache_dir()
    # Hashed now, not judged by name: a different file under the cached name is not "cached".
    states = {name: cached_state(name) for name in NAMED_WEIGHTS}
    weights = {name: state == "verified" for name, (state, _) in states.items()}
    mismatched = {name: str(path) for name, (state, path) in states.items() if state == "mismatch"}

    from hhrnet_rt.cli.cache_inventory import cache_inventory, total_size
    from hhrnet_rt.decode import cache as numba_cache
    from hhrnet_rt.runtime.backends.onnx_cache import CACHE_SUBDIR

    inventory = cache_inventory()
    return {
        "versions": versions,
        "gpus": gpus,
        "backends": backends,
        "weights_cache": {"dir": str(cache), "cached": weights, "hash_mismatch": mismatched},
        # Where this process really reads and writes the kernels (Numba's setting as configured at import).
        "numba_cache": {
            "dir": str(numba_cache.kernel_cache_dir()) if numba_cache.CACHE_USABLE else None,
            "location": numba_cache.CACHE_LOCATION,
            "files": len(inventory["numba"]),
            "bytes": total_size(inventory["numba"]),
        },
        "onnx_cache": {
            "dir": str(paths.cache_dir() / CACHE_SUBDIR),
            "files": len(inventory["onnx"]),
            "bytes": total_size(inventory["onnx"]),
        },
        # What killed runs left (hhrt cache clear removes them).
        "stale_temporaries": {
            "files": len(inventory["temporaries"]),
            "bytes": total_size(inventory["temporaries"]),
        },
    }


@app.command()
@handle_errors
def info(as_json: InfoJson = False) -> None:
    """Versions, GPUs, usable backends, and where weights and compiled code are cached."""
    facts = collect()
    if as_json:
        import json

        stdout.print_json(json.dumps(facts))
        return
    table = Table("", "", show_header=False, title="hhrnet-rt")
    table.columns[1].overflow = "fold"  # paths are shown whole, wrapped, never cut with an ellipsis
    for label, version in facts["versions"].items():
        table.add_row(label, version)
    table.add_section()
    if facts["gpus"]:
        for gpu in facts["gpus"]:
            table.add_row(f"cuda:{gpu['index']}", f"{gpu['name']} (sm {gpu['capability']})")
    else:
        table.add_row("GPUs", "none visible to torch (CPU only)")
    table.add_section()
    for name, state in facts["backends"].items():
        table.add_row(f"backend {name}", escape(state))
    table.add_section()
    cache = facts["weights_cache"]
    table.add_row("weights cache", cache["dir"])
    for name, present in cache["cached"].items():
        if name in cache["hash_mismatch"]:
            state = f"present but its sha256 differs (delete {cache['hash_mismatch'][name]})"
        else:
            state = "cached (sha256 verified)" if present else "not downloaded"
        table.add_row(f"  {name}", escape(state))

    for label, key in (("numba cache", "numba_cache"), ("ONNX export cache", "onnx_cache")):
        entry = facts[key]
        where = entry["dir"] or entry["location"]
        table.add_row(label, escape(f"{where} ({file_count(entry['files'])}, {human_size(entry['bytes'])})"))
    stale = facts["stale_temporaries"]
    if stale["files"]:
        table.add_row("left by killed runs", f"{file_count(stale['files'])}, {human_size(stale['bytes'])}")
    table.add_row("", "hhrt cache clear deletes them" if stale["files"] else "hhrt cache clear deletes both")
    stdout.print(table)
