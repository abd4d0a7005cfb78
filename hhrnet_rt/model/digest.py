"""The digest that identifies a network's weights (ONNX cache keys, a built file's weights record).

Light on purpose: it needs no torch import of its own (the module it hashes brings torch), so the
configuration and the engine checks can use it without loading torch when nothing runs yet.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


def state_dict_digest(module: nn.Module) -> str:
    """sha256 over a module's state dict (names, shapes, dtypes, bytes): identifies its weights in cache keys."""
    h = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(key.encode())
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        # numpy has no bfloat16; its bytes are hashed through float32 instead.
        h.update((t.float() if str(t.dtype) == "torch.bfloat16" else t).numpy().tobytes())
    return h.hexdigest()
