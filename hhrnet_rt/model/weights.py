"""Load HigherHRNet checkpoints in three steps: read safely -> pure key remap -> strict load.

Accepted: the official ``.pth`` files (plain keys, or the ``1.``-prefixed fp16 form the 640 models were
saved in by ``network_to_half``), MMPose 0.x files (``{'state_dict', 'meta'}`` with ``backbone.`` /
``keypoint_head.`` keys), ``module.`` (DataParallel) prefixes, ``.npz`` state dicts, in-memory state
dicts, and the named weights "w32_512", "w32_640", "w48_512" (downloaded once, hash-checked; see
:mod:`hhrnet_rt.model.download`).

Files are read with ``torch.load(weights_only=True)`` only: a checkpoint that needs arbitrary
unpickling is refused, so code inside a malicious file never runs. Before that, the sizes its headers
announce are checked against what it holds (:mod:`hhrnet_rt.model.guard`), so a decompression bomb or
an absurd header is refused before anything is allocated.

Example:
    >>> model, spec = build_from_checkpoint("pose_higher_hrnet_w32_512.pth")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hhrnet_rt.core.errors import WeightsError
from hhrnet_rt.core.inputs import check_input_file, shown
from hhrnet_rt.model.download import NAMED_WEIGHTS, fetch_named
from hhrnet_rt.model.guard import check_checkpoint_sizes
from hhrnet_rt.model.higherhrnet import HigherHRNet
from hhrnet_rt.model.remap import remap_state_dict
from hhrnet_rt.model.spec import ModelSpec, describe, size_from_filename

Source = str | os.PathLike | Mapping[str, Any]

_MAX_LISTED = 5


def _sniff(path: Path) -> str:
    """What a non-checkpoint file looks like, from its first bytes (for error messages)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "it is empty"
    signatures = {
        b"\xff\xd8\xff": "a JPEG image",
        b"\x89PNG": "a PNG image",
        b"GIF8": "a GIF image",
        b"%PDF": "a PDF document",
        b"\x1f\x8b": "a gzip archive",
        b"\x80\x02\x8a\x0a": "a legacy-format torch file that could not be read to the end",
        b"\x80": "a plain Python pickle, not a torch.save file",
    }
    for magic, what in signatures.items():
        if head.startswith(magic):
            return f"it is {what}"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")):
        return "it is an HTML page (a download that returned a web page instead of the file?)"
    try:
        head.decode("utf-8")
        return "it is a text file"
    except UnicodeDecodeError:
        return "its content is not a known checkpoint format"


def read_checkpoint(path: str | os.PathLike) -> Mapping[str, Any]:
    """Read a ``.pth``/``.pt`` (``torch.load(weights_only=True)``) or ``.npz`` (no pickle) file.

    Raises:
        WeightsError: missing, truncated or foreign file, or one that needs arbitrary unpickling.
    """
    path = check_input_file(path, "checkpoint file", error=WeightsError)
    if path.stat().st_size == 0:
        raise WeightsError(f"{path} is not a PyTorch checkpoint: it is empty (0 bytes; an interrupted copy?)")

    check_checkpoint_sizes(path)  # headers first: nothing is allocated for a bomb
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        if names and all(n.endswith(".npy") for n in names):
            try:
                with np.load(path, allow_pickle=False) as z:
                    return OrderedDict((k, z[k]) for k in z.files)
            except ValueError as e:  # object arrays need pickle, which is refused
                raise WeightsError(f"{path}: the .npz holds arrays that need pickle, refused ({e})") from None
    try:
        obj = _torch_load_data_only(path)
    except pickle.UnpicklingError as e:
        msg = str(e)
        found = re.search(r"GLOBAL ([\w.]+)", msg)
        if "Unsupported global" in msg or found:
            what = f"a reference to the Python callable {found.group(1)}" if found else "a non-tensor object"
            raise WeightsError(
                f"refused to load {path}: besides tensors it contains {what}, and unpickling it would run "
                "code stored in the file, so it was not unpickled (torch.load(weights_only=True)). If you "
                "trust its origin, re-save just the state dict (torch.save(model.state_dict(), path)) and "
                "pass that file."
            ) from None
        # Not torch's first line: it suggests weights_only=False, which is not what a foreign file needs.
        detail = next((ln.strip() for ln in msg.splitlines() if "Unsupported operand" in ln), "")
        detail = f" ({detail.removeprefix('WeightsUnpickler error: ')})" if detail else ""
        raise WeightsError(f"{path} is not a PyTorch checkpoint: {_sniff(path)}{detail}") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for foreign bytes (KeyError, RuntimeError...)
        # torch's messages run to several sentences; the first one names the problem.
        first = (str(e).splitlines() or [type(e).__name__])[0].split(". ")[0] or type(e).__name__
        damaged_zip = zipfile.is_zipfile(path) or "zip archive" in first or "central directory" in first
        if damaged_zip or isinstance(e, EOFError):
            raise WeightsError(
                f"{path} is truncated or corrupt ({first}); download it again "
                f"(size now {path.stat().st_size:,} bytes)"
            ) from None
        raise WeightsError(
            f"{path} is not a PyTorch checkpoint: {_sniff(path)} ({type(e).__name__}: {first})"
        ) from None
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return obj


def _numpy_data_globals() -> dict[str, Any]:
    """numpy's array/scalar/dtype rebuilders by pickle name: they rebuild data and call nothing else."""
    import numpy._core.multiarray as ma

    found = {
        "numpy._core.multiarray._reconstruct": ma._reconstruct,
        "numpy._core.multiarray.scalar": ma.scalar,
        "numpy.ndarray": np.ndarray,
        "numpy.dtype": np.dtype,
    }
    for name in dir(np.dtypes):  # numpy >= 1.25 pickles dtypes as numpy.dtypes.<Name>DType
        if name.endswith("DType"):
            found[f"numpy.dtypes.{name}"] = getattr(np.dtypes, name)
    return found


def _torch_load_data_only(path: Path) -> Any:
    """``torch.load(weights_only=True)``, also accepting numpy arrays/scalars (e.g. in a ``meta`` dict).

    Some training frameworks store numpy values next to the weights; those need numpy's rebuild
    functions, which create arrays and cannot run other code, so they are allowed and nothing else is.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as refusal:
        try:
            unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:  # noqa: BLE001 - not a zip checkpoint: report the original refusal
            raise refusal from None
        allowed = _numpy_data_globals()
        if not unsafe or not unsafe <= set(allowed):
            raise
        # All of them, not only `unsafe`: dtype classes (numpy.dtypes.*DType) are needed but not listed.
        with torch.serialization.safe_globals(list(allowed.values())):
            return torch.load(path, map_location="cpu", weights_only=True)


def _resolve(source: Source) -> tuple[OrderedDict[str, torch.Tensor], str, ModelSpec | None]:
    """(official-keyed state dict, a label for messages, the preset a named source stands for)."""
    if isinstance(source, Mapping):
        return remap_state_dict(source), "the given state dict", None
    text = os.fspath(source)
    path = Path(text)
    looks_like_name = os.sep not in text and not text.endswith((".pth", ".pt", ".npz", ".pkl"))
    if not os.path.lexists(text) and looks_like_name:  # lexists: False, not OSError, for over-long names
        if text in NAMED_WEIGHTS:
            cached = fetch_named(text)
            try:
                raw = read_checkpoint(cached)
            except WeightsError as e:
                # Only a verified download is renamed into the cache, so this file was changed later.
                raise WeightsError(f"{e}. Delete the cached file {cached} to download it again.") from None
            return remap_state_dict(raw), f"named weights {text!r}", ModelSpec.preset(text)
        extra = ""
        if text.startswith("w") and text[1:3].isdigit():
            # e.g. "w48_640": the official checkpoints sit on Google Drive/OneDrive, not downloadable here.
            extra = (
                " The official HigherHRNet checkpoints (pose_higher_hrnet_w32_512/w32_640/w48_640.pth) are"
                " not downloaded automatically: get them from the official repository and pass the file path."
            )
        raise WeightsError(
            f"{shown(text)!r} is neither a file nor a named checkpoint; named weights: {', '.join(NAMED_WEIGHTS)}.{extra}"
        )
    return remap_state_dict(read_checkpoint(path)), str(path), None


def check_state_dict(model: nn.Module, sd: Mapping[str, torch.Tensor], label: str = "checkpoint") -> None:
    """Raise WeightsError listing missing / unexpected / wrong-shape keys, and what ``sd`` looks like."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [
        f"{k} {tuple(sd[k].shape)} (model: {tuple(v.shape)})"
        for k, v in expected.items()
        if k in sd and tuple(sd[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or wrong):
        _check_finite(sd, label)
        return
    parts = []
    for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if keys:
            more = f" and {len(keys) - _MAX_LISTED} more" if len(keys) > _MAX_LISTED else ""
            parts.append(f"{len(keys)} {name}: {', '.join(keys[:_MAX_LISTED])}{more}")
    spec = getattr(model, "spec", None)
    want = (
        f"a W{spec.width} model with {spec.num_joints} joints" if isinstance(spec, ModelSpec) else "the model"
    )
    looks = describe(sd)
    hint = (
        "Pass a HigherHRNet checkpoint (official or MMPose)."
        if looks.startswith("something other")
        else "Use build_from_checkpoint(...) to build the architecture the file describes."
    )
    raise WeightsError(
        f"{label} does not fit {want}: the file looks like {looks}. " + "; ".join(parts) + f". {hint}"
    )


def _check_finite(sd: Mapping[str, torch.Tensor], label: str) -> None:
    """Refuse NaN or infinite weights: such a network answers "no people" on every frame, which looks like
    a working run (exit 0) rather than the damaged file it is."""
    bad = [
        k
        for k, t in sd.items()
        if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all()
    ]
    if bad:
        more = f" and {len(bad) - _MAX_LISTED} more" if len(bad) > _MAX_LISTED else ""
        raise WeightsError(
            f"{label} holds NaN or infinite weights in {len(bad)} tensors ({', '.join(bad[:_MAX_LISTED])}{more}): "
            "the file is damaged or comes from a diverged training run; use another checkpoint"
        )


def load_weights(model: nn.Module, source: Source) -> nn.Module:
    """Load ``source`` (path, state dict or named weights) into ``model`` strictly; returns ``model``.

    Raises:
        WeightsError: unreadable file, or keys/shapes that do not match the model (the message lists them).
        DownloadError: named weights could not be fetched or failed their hash check.
    """
    sd, label, _ = _resolve(source)
    check_state_dict(model, sd, label)
    model.load_state_dict(sd, strict=True)
    return model


def build_from_checkpoint(source: Source) -> tuple[HigherHRNet, ModelSpec]:
    """Build the network a checkpoint describes, load it, and return ``(model in eval(), spec)``.

    The input size comes from the preset for named weights, from "512"/"640" in a file name, else 512.
    """
    sd, label, preset = _resolve(source)
    size = preset.input_size if preset else None
    if size is None and not isinstance(source, Mapping):
        size = size_from_filename(Path(os.fspath(source)).name)
    spec = ModelSpec.from_state_dict(sd, input_size=size or 512)
    if preset is not None:
        spec = spec.replace(name=preset.name)
    model = HigherHRNet(spec)
    check_state_dict(model, sd, label)
    model.load_state_dict(sd, strict=True)
    return model.eval(), spec


def random_network(seed: int = 0) -> HigherHRNet:
    """Random-init W32-512 in eval mode, for speed tests (``--weights random``); its outputs mean nothing.

    Seeded inside ``fork_rng``, so every caller (estimator, engine build, bench) gets the same weights -- an
    engine built from "random" matches an estimator made from "random" -- and the caller's RNG is untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return HigherHRNet(ModelSpec.preset("w32_512")).eval()


def load_network(weights: Source | nn.Module) -> tuple[nn.Module, str]:
    """The one way every caller (estimator, engine build, bench) turns ``weights`` into a network.

    Args:
        weights: named weights ("w32_512", ...), a checkpoint path, a state dict, an ``nn.Module`` (used
            as it is), or "random" (:func:`random_network`: seeded, so every caller gets the same one).

    Returns:
        ``(network in eval mode, label)``; the label says what was loaded (for ``describe()``).
    """
    if isinstance(weights, nn.Module):
        return weights.eval(), f"{type(weights).__name__} module"
    if isinstance(weights, str | os.PathLike) and os.fspath(weights) == "random":
        return random_network(), "random-init W32-512 (seed 0, untrained: for testing only)"
    model, _spec = build_from_checkpoint(weights)
    label = "state dict" if isinstance(weights, Mapping) else os.fspath(weights)
    return model.eval(), label
