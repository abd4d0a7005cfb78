"""The pure remap of a checkpoint to official key names: step two of load -> remap -> strict load.

A pure function of a mapping, tested on synthetic dicts; nothing here reads files or builds networks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

#: Container keys under which training frameworks nest the state dict (checked in this order).
_CONTAINER_KEYS = ("state_dict", "model", "net")
#: Prefixes added by wrappers: DataParallel ("module."), the official FP16 wrapper
#: nn.Sequential(tofp16(), net, tofp32()) ("1.").
_WRAPPER_PREFIXES = ("module.", "1.")
#: MMPose 0.x submodule prefixes; after stripping, the names are the official ones one-to-one.
_MMPOSE_PREFIXES = ("backbone.", "keypoint_head.")


def remap_state_dict(obj: Mapping[str, Any]) -> OrderedDict[str, torch.Tensor]:
    """Turn any accepted checkpoint layout into official key names with fp32 tensors (pure function).

    Unwraps ``{'state_dict': ...}`` containers (other top-level keys such as ``meta`` or ``optimizer``
    are ignored), strips ``module.``/``1.`` wrapper prefixes and MMPose's ``backbone.``/``keypoint_head.``,
    converts numpy arrays to tensors and casts floating tensors to float32. Keys that match nothing are
    kept unchanged so the strict load can report them. The input is not modified.
    """
    import torch  # here, not at the top: ModelSpec (plain data) imports this module, and torch is slow to load

    sd: Any = obj
    for _ in range(3):  # e.g. {'state_dict': {'model': ...}} in some re-saves
        nested = next((sd[k] for k in _CONTAINER_KEYS if isinstance(sd.get(k), Mapping)), None)
        if nested is None:
            break
        sd = nested
    items = [(str(k), v) for k, v in sd.items() if isinstance(v, torch.Tensor | np.ndarray)]

    changed = True
    while changed and items:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            # Strip a wrapper prefix only when every key has it: a real key never starts with one.
            if all(k.startswith(prefix) for k, _ in items):
                items = [(k[len(prefix) :], v) for k, v in items]
                changed = True
    if any(k.startswith(_MMPOSE_PREFIXES) for k, _ in items):
        items = [(_strip_mmpose(k), v) for k, v in items]

    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in items:
        # np.array(copy) keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-d).
        t = torch.from_numpy(np.array(v, copy=True, order="C")) if isinstance(v, np.ndarray) else v
        # fp16 checkpoints (official 640 models) are upcast: the network runs in fp32 here.
        out[k] = t.float() if t.is_floating_point() else t
    return out


def _strip_mmpose(key: str) -> str:
    for prefix in _MMPOSE_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key
