"""Export any eval-mode module to ONNX with dynamic axes, check it, and measure it against PyTorch.

Generic on purpose: the bare network, the PoseGraph (network + flip + upsampling + projection) and the
fp16/int8 engine inputs all go through :func:`export_onnx`; :func:`compare_onnx_with_torch` is the
self-check every export is followed by (ONNX Runtime CPU against the module, max abs error per output).

Exporter choice (measured with torch 2.13 / onnxscript 0.7 / onnxruntime 1.32 on the 2-core CPU here):
both ``torch.onnx.export(dynamo=False)`` (TorchScript tracing) and ``dynamo=True`` (torch.export) export
the HigherHRNet graph correctly with dynamic N/H/W, including the fuse layers' nearest
``Upsample(scale_factor=2**k)`` (Resize nearest/asymmetric/floor), bilinear ``interpolate`` to a size read
from the input's shape, and ``torch.flip``. In ONNX Runtime both agree with PyTorch to <= 1e-5 at sizes
other than the example (6e-6 on the golden tiny model, whose outputs reach ~11). The default is the
TorchScript exporter because it is ~9x faster (tiny network: 2.7 s vs 23 s; tiny flip graph: 19 s vs
38-45 s) -- the test suite and the ONNX Runtime backend's first-use export pay that -- and because it
writes opset 17 natively, whereas dynamo starts at opset 18 and down-converts. Its deprecation warning is
silenced here. ``exporter="dynamo"`` selects the other one; "auto" picks dynamo where
``torch.onnx.export`` no longer has the ``dynamo`` switch (a future torch). Both paths are tested.

fp16 (``fp16=True``): a copy of the module is cast to half precision and wrapped so the graph takes and
returns float32 (one Cast at each end): the file itself is the precision, as TensorRT 10.12+/11's strongly
typed networks want. Agreement with the fp32 module is a few 1e-3 absolute on the tiny model (outputs of
magnitude ~10); see tests/test_export_onnx.py for the asserted figures.

Example:
    >>> export_onnx(net.eval(), "net.onnx", example_input=torch.zeros(1, 3, 512, 512),
    ...             input_names=["image"], output_names=["out4", "out2"],
    ...             dynamic_axes={"image": {0: "N", 2: "H", 3: "W"}})   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hhrnet_rt.core.errors import HhrtError
from hhrnet_rt.core.outputs import create_temporary

log = logging.getLogger(__name__)

DynamicAxes = Mapping[str, Mapping[int, str] | Sequence[int]]


class _HalfPrecision(nn.Module):
    """Runs ``module`` in float16 with float32 inputs and outputs (casts at the graph's edges only)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.inner = copy.deepcopy(module).half()

    def forward(self, x: torch.Tensor, *rest: torch.Tensor) -> Any:
        # (x, *rest) rather than (*xs): torch.export matches dynamic shapes to named positional inputs.
        out = self.inner(*(t.half() if t.is_floating_point() else t for t in (x, *rest)))
        if isinstance(out, torch.Tensor):
            return out.float()
        return tuple(o.float() if o.is_floating_point() else o for o in out)


def export_onnx(
    module: nn.Module,
    path: str | os.PathLike,
    *,
    example_input: torch.Tensor | tuple[torch.Tensor, ...],
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: DynamicAxes | None,
    opset: int = 17,
    fp16: bool = False,
    exporter: str = "auto",
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Export ``module`` (in eval mode) to ``path`` and validate the file with ``onnx.checker``.

    Args:
        module: any traceable module; it is not modified (fp16 works on a copy).
        path: destination; written to a temporary name first and renamed, so a file at ``path`` is complete.
        example_input: one tensor or a tuple of tensors; its sizes should be valid for the module (for
            HigherHRNet: multiples of 32) but do not constrain the dynamic axes.
        input_names / output_names: ONNX names, in order.
        dynamic_axes: ``{name: {axis: "symbol"}}``, e.g. ``{"image": {0: "N", 2: "H", 3: "W"}}``.
        opset: ONNX opset (>= 17).
        fp16: half-precision graph with float32 inputs and outputs.
        exporter: "auto" (TorchScript exporter if this torch has it, else dynamo), "torchscript" or "dynamo".
        metadata: ONNX ``metadata_props`` to store in the file (e.g. :func:`hhrnet_rt.artifacts.engine_settings.onnx_metadata`),
            written before the file appears at ``path``.

    Returns:
        The path written.

    Raises:
        HhrtError: the export or the ONNX checker failed (the message carries the exporter's reason).
    """
    import onnx

    if opset < 17:
        raise ValueError(f"opset must be >= 17 (LayerNorm/Resize semantics the graphs rely on), got {opset}")
    path = Path(path)
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    if module.training:
        raise ValueError(
            "export_onnx needs the module in eval() mode (BatchNorm must use running statistics)"
        )
    target = _HalfPrecision(module).eval() if fp16 else module
    if fp16:
        args = tuple(a.float() if a.is_floating_point() else a for a in args)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        with torch.no_grad():
            _run_exporter(target, args, tmp, input_names, output_names, dynamic_axes, opset, exporter)
        if metadata:
            _set_metadata(tmp, metadata)
        try:
            onnx.checker.check_model(str(tmp), full_check=False)
        except onnx.checker.ValidationError as e:
            raise HhrtError(f"the exported ONNX file failed onnx.checker: {e}") from None
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _log_io(path)
    return path


def _temporary(final: Path) -> Path:
    """An empty hidden temporary beside ``final``: hhrt's naming (so ``hhrt cache clear`` finds one a killed
    export left) and the permissions a new file gets there (mkstemp's are owner-only, and the rename
    would give them to the published file, unlike its world-readable sidecar)."""
    tmp, fd = create_temporary(final)
    os.close(fd)
    return tmp


def write_metadata(path: str | os.PathLike, metadata: Mapping[str, str]) -> Path:
    """Add or replace ``metadata_props`` entries of an existing ONNX file (rewritten via a temporary
    file and a rename, so a reader never sees half a file)."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        _set_metadata(path, metadata, out=tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _set_metadata(path: Path, metadata: Mapping[str, str], out: Path | None = None) -> None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in metadata]
    del model.metadata_props[:]
    for key, value in [*kept, *metadata.items()]:
        model.metadata_props.add(key=key, value=str(value))
    onnx.save(model, str(out or path))


def _run_exporter(module, args, path: Path, input_names, output_names, dynamic_axes, opset, exporter) -> None:
    if exporter not in ("auto", "torchscript", "dynamo"):
        raise ValueError(f"exporter must be 'auto', 'torchscript' or 'dynamo', got {exporter!r}")
    use_dynamo = exporter == "dynamo" or (exporter == "auto" and not _has_torchscript_exporter())
    kwargs: dict[str, Any] = dict(
        input_names=list(input_names),
        output_names=list(output_names),
        dynamic_axes={
            k: dict(v) if isinstance(v, Mapping) else list(v) for k, v in (dynamic_axes or {}).items()
        },
        opset_version=opset,
    )
    try:
        if use_dynamo:
            # external_data=False keeps one self-contained file (our models are far below 2 GB).
            with warnings.catch_warnings():
                # dynamic_axes -> dynamic_shapes conversion warnings: the conversion is what we want here.
                warnings.filterwarnings("ignore", message=".*dynamic_axes.*")
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                torch.onnx.export(
                    module, args, str(path.resolve()), dynamo=True, external_data=False, **kwargs
                )
        else:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=DeprecationWarning)  # see the module docstring
                torch.onnx.export(module, args, str(path), dynamo=False, do_constant_folding=True, **kwargs)
    except HhrtError:
        raise
    except Exception as e:  # noqa: BLE001 - exporters raise many types; the user needs one clear message
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        kind = "dynamo" if use_dynamo else "TorchScript"
        raise HhrtError(f"ONNX export ({kind} exporter) of {type(module).__name__} failed: {first}") from e


def _has_torchscript_exporter() -> bool:
    import inspect

    return "dynamo" in inspect.signature(torch.onnx.export).parameters and hasattr(torch.jit, "trace")


def _log_io(path: Path) -> None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_param or d.dim_value for d in t.shape.dim]
            log.info("ONNX %s %s: %s %s", kind, v.name, onnx.TensorProto.DataType.Name(t.elem_type), dims)


def compare_onnx_with_torch(
    module: nn.Module,
    onnx_path: str | os.PathLike,
    inputs: torch.Tensor | Sequence[torch.Tensor | tuple[torch.Tensor, ...]],
) -> dict[str, float]:
    """Run ``module`` and the ONNX file in ONNX Runtime (CPU) on each input; max abs error per output.

    Args:
        module: the PyTorch module the file was exported from (fp32; compare an fp16 file with it to
            measure the precision loss).
        onnx_path: the exported file.
        inputs: one tensor, or a sequence of runs, each a tensor or a tuple of tensors (one per ONNX input).
            Use sizes other than the export example to prove the dynamic axes work.

    Returns:
        ``{output_name: max |onnx - torch| over all runs, ..., "max": the largest of them}``.

    Raises:
        HhrtError: an output's shape differs between ONNX Runtime and PyTorch.
    """
    import numpy as np
    import onnxruntime as ort

    runs = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    in_names = [i.name for i in session.get_inputs()]
    out_names = [o.name for o in session.get_outputs()]
    errors = dict.fromkeys(out_names, 0.0)
    for run in runs:
        xs = run if isinstance(run, tuple) else (run,)
        with torch.no_grad():
            ref = module(*xs)
        refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        feeds = {name: x.detach().cpu().numpy() for name, x in zip(in_names, xs, strict=True)}
        got = session.run(None, feeds)
        for name, r, g in zip(out_names, refs, got, strict=True):
            r = r.detach().float().cpu().numpy()
            if r.shape != g.shape:
                shape = tuple(xs[0].shape)
                raise HhrtError(
                    f"ONNX output {name!r} has shape {g.shape}, PyTorch {r.shape} (input {shape})"
                )
            errors[name] = max(
                errors[name], float(np.max(np.abs(g.astype(np.float32) - r))) if r.size else 0.0
            )
    errors["max"] = max(errors.values(), default=0.0)
    return errors
