"""Device tensors on the CPU: :class:`DeviceTensor` (a CPU tensor that says it is on ``cuda:0``) and the
torch function mode that gives it a GPU's rules.

What the mode does with each call (in every thread of the session):

* factories with ``device="cuda..."`` run on the CPU and return device tensors; ``torch.tensor`` /
  ``as_tensor`` of host data there is a blocking upload;
* ``.to`` / ``.cuda`` / ``.cpu`` / ``.copy_`` across the boundary are uploads (blocking unless the source
  is pinned and ``non_blocking``) and reads (always a host wait; outside the declared transfer points
  they are flagged); ``pin_memory`` / ``is_pinned`` work on the CPU;
* ``np.asarray`` / ``.numpy()`` of a device tensor are refused (a GPU refuses them too), ``.item()`` /
  ``.tolist()`` are refused outside the declared transfer points; ``bool`` / ``int`` / ``float`` /
  ``index`` / ``repr`` of one are hidden synchronisations;
* ``nonzero``, ``masked_select``, ``unique``, one-argument ``where``, boolean-mask indexing, and indexing
  with Python lists or host index tensors (an upload) are hidden synchronisations;
* an operation that mixes a device tensor with a host tensor of one or more dimensions fails, as on CUDA;
* device operations are attributed to the thread's current stream (the legacy default stream is
  recorded per thread), and recorded into the CUDA graph being captured, where every synchronisation
  raises (see :mod:`.fake_cuda`).
"""

from __future__ import annotations

import threading
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from .fake_cuda import DEVICE, State
from .ledger import caller, in_transfer_point

T = torch.Tensor


class DeviceSemanticsError(TypeError):
    """A device tensor was converted to a host value where no GPU code may do so."""


class DeviceTensor(torch.Tensor):
    """A CPU tensor that reports ``cuda:0``; the session's mode gives it a GPU's rules."""

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return DEVICE

    @property
    def is_cuda(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_cpu(self) -> bool:  # type: ignore[override]
        return False

    def get_device(self) -> int:  # type: ignore[override]
        return 0


def plain(t: torch.Tensor) -> torch.Tensor:
    """The same memory as an ordinary CPU tensor (no subclass, no mode)."""
    with torch._C.DisableTorchFunctionSubclass():
        return t.as_subclass(torch.Tensor)


def on_device(t: torch.Tensor) -> DeviceTensor:
    with torch._C.DisableTorchFunctionSubclass():
        return t.as_subclass(DeviceTensor)


def _is_cuda(device: Any) -> bool:
    if isinstance(device, torch.Tensor):
        return isinstance(device, DeviceTensor)
    try:
        return device is not None and torch.device(device).type == "cuda"
    except (TypeError, RuntimeError):
        return False


def _split_device(args: tuple, kwargs: dict) -> tuple[Any, list, dict]:
    """(target device or None, args, kwargs) of a ``Tensor.to`` call, the device replaced by the CPU."""
    rest, target = [], kwargs.get("device")
    for a in args:
        if isinstance(a, (str, torch.device)):
            target = a
            rest.append("cpu")
        elif isinstance(a, torch.Tensor):  # .to(other): its device and dtype
            target = DEVICE if isinstance(a, DeviceTensor) else "cpu"
            rest.append(plain(a))
        else:
            rest.append(a)
    kw = {**kwargs, "device": "cpu"} if "device" in kwargs else dict(kwargs)
    return target, rest, kw


def _tensors(items: Any) -> list[torch.Tensor]:
    """The tensors among ``items``, in tuples and lists too (not in dicts: ``__deepcopy__``'s memo holds
    every object copied so far, and walking it on each call makes a deepcopy quadratic)."""
    found: list[torch.Tensor] = []
    for x in items:
        if isinstance(x, torch.Tensor):
            found.append(x)
        elif isinstance(x, (tuple, list)):
            found += _tensors(x)
    return found


REFUSED = {T.__array__, T.numpy}
VALUE_READS = {T.item, T.tolist}
SCALAR_SYNCS = {T.__bool__, T.__int__, T.__float__, T.__index__, T.__complex__, T.__format__, T.__repr__}
SYNC_OPS = {
    torch.nonzero, T.nonzero, torch.argwhere, T.argwhere, torch.masked_select, T.masked_select,
    torch.unique, T.unique, torch.unique_consecutive, T.unique_consecutive, torch.bincount, T.bincount,
    torch.equal, T.equal, torch.allclose, T.allclose,
}  # fmt: skip
INDEXING = {T.__getitem__, T.__setitem__, T.index_put_, T.index_put, torch.index_put}
CONVERSIONS = {T.to, T.cuda, T.cpu, T.copy_, T.pin_memory, T.is_pinned}
UPLOAD_FACTORIES = {torch.tensor, torch.as_tensor, torch.asarray}
#: Metadata queries that touch no data (Module.to asks one with a device and a host tensor).
METADATA = {torch._has_compatible_shallow_copy_type}


class DeviceMode(TorchFunctionMode):
    """The torch function mode of one session (pushed in the main thread and in every thread it starts)."""

    def __init__(self, state: State) -> None:
        super().__init__()
        self.state, self.ledger = state, state.ledger

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in METADATA:
            return func(*args, **kwargs)
        first = args[0] if args else None
        if isinstance(first, DeviceTensor):
            if func in REFUSED:
                return self._refuse(func, "a device tensor cannot become a numpy array")
            if func in VALUE_READS:
                if not in_transfer_point():
                    return self._refuse(func, "host values of device tensors come from device_io.to_host")
                self._read(first, declared=True)
                return func(plain(first), *args[1:], **kwargs)
            if func in SCALAR_SYNCS:
                self._hidden(f"{func.__name__} of a device tensor")
                return func(plain(first), *args[1:], **kwargs)
        if func in CONVERSIONS:
            return self._convert(func, first, args[1:], kwargs)
        if _is_cuda(kwargs.get("device")):
            return self._factory(func, args, kwargs)
        leaves = _tensors((*args, *kwargs.values()))
        if not any(isinstance(x, DeviceTensor) for x in leaves):
            return func(*args, **kwargs)
        self._check_op(func, args, kwargs, leaves)
        return self._device_op(func, args, kwargs)

    def _device_op(self, func: Any, args: tuple, kwargs: dict) -> Any:
        """Run a device operation: recorded into the graph being captured, attributed to the stream."""
        out = func(*args, **kwargs)
        graph = self.state.capturing()
        if graph is not None:
            graph.ops.append((func, args, kwargs, out))
        if self.state.current().is_default:
            with self.ledger.lock:
                self.ledger.default_stream[threading.current_thread().name] += 1
        return out

    # -- what may not happen --------------------------------------------------------------------------
    def _refuse(self, func: Any, why: str) -> Any:
        where = caller()
        self.ledger.add("implicit", f"{func.__name__} at {where}")
        self.state.refuse_in_capture(func.__name__)
        raise DeviceSemanticsError(f"{func.__name__}() of a device tensor at {where}: {why}")

    def _hidden(self, what: str) -> None:
        self.state.refuse_in_capture(what)
        self.ledger.add("hidden", f"{what} at {caller()}")

    def _check_op(self, func: Any, args: tuple, kwargs: dict, leaves: list) -> None:
        name = getattr(func, "__name__", repr(func))
        if func in SYNC_OPS or (func is torch.where and len(args) + len(kwargs) == 1):
            self._hidden(f"{name} (its output size is read on the host)")
        if func in INDEXING:
            index = args[1] if len(args) > 1 else kwargs.get("indices")
            for item in index if isinstance(index, tuple) else (index,):
                if isinstance(item, torch.Tensor) and item.dtype in (torch.bool, torch.uint8):
                    self._hidden("boolean-mask indexing (nonzero on the host)")
                elif isinstance(item, (list, range)) or hasattr(item, "__array_interface__"):
                    self._hidden("indexing with a host sequence (built on the host, uploaded blocking)")
                elif isinstance(item, torch.Tensor) and not isinstance(item, DeviceTensor) and item.dim():
                    self._hidden("indexing with a host tensor (uploaded blocking)")
            return
        host = [x for x in leaves if not isinstance(x, DeviceTensor) and x.dim() > 0]
        if host:
            raise RuntimeError(f"{name}: expected all tensors to be on the same device, but found at least "
                               f"two devices, cuda:0 and cpu! ({caller()})")  # fmt: skip

    # -- crossings ------------------------------------------------------------------------------------
    def _read(self, tensor: torch.Tensor, *, declared: bool | None = None) -> None:
        self.state.refuse_in_capture("device->host copy")
        ok = in_transfer_point() if declared is None else declared
        self.ledger.add("reads", (tensor.numel() * tensor.element_size(), ok, caller()))

    def _upload(self, source: torch.Tensor | None, non_blocking: bool) -> None:
        self.state.refuse_in_capture("host->device copy")
        pinned = source is not None and bool(getattr(source, "_ds_pinned", False))
        self.ledger.add("uploads", (not (pinned and non_blocking), caller()))

    def _convert(self, func: Any, t: Any, args: tuple, kwargs: dict) -> Any:
        dev = isinstance(t, DeviceTensor)
        if func is T.pin_memory:
            assert not dev, "pin_memory() of a device tensor"
            pinned = plain(t).clone()
            pinned._ds_pinned = True
            return pinned
        if func is T.is_pinned:
            return bool(getattr(t, "_ds_pinned", False))
        if func is T.copy_:
            src = args[0] if args else kwargs["src"]
            non_blocking = bool(args[1] if len(args) > 1 else kwargs.get("non_blocking", False))
            if dev == isinstance(src, DeviceTensor):  # no crossing
                return self._device_op(func, (t, src), {}) if dev else func(t, src, non_blocking)
            if dev:
                self._upload(src, non_blocking)
            else:
                self._read(src)
            plain(t).copy_(plain(src))
            return t
        if func is T.cpu:
            target, rest, kw = "cpu", [], {}
        elif func is T.cuda:
            target, rest, kw = DEVICE, [], {k: v for k, v in kwargs.items() if k != "device"}
        else:
            target, rest, kw = _split_device(args, kwargs)
        to_cuda = _is_cuda(target)
        if dev and target is not None and not to_cuda:
            self._read(t)
            return plain(t).to(*rest, **kw, copy=True)
        if not dev and to_cuda:
            positional = [a for a in rest if isinstance(a, bool)]  # to(device, dtype, non_blocking)
            self._upload(t, bool(kw.get("non_blocking", positional[0] if positional else False)))
            return on_device(plain(t).to(*rest, **kw, copy=True))
        if func is T.cuda or func is T.cpu:
            return t
        return self._device_op(T.to, (t, *rest), kw) if dev else T.to(t, *rest, **kw)

    def _factory(self, func: Any, args: tuple, kwargs: dict) -> Any:
        if func in UPLOAD_FACTORIES and args and not isinstance(args[0], DeviceTensor):
            self._upload(None, False)
        out = func(*args, **{**kwargs, "device": "cpu"})
        return on_device(out) if isinstance(out, torch.Tensor) else out
