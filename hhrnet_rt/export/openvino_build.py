"""The OpenVINO IR of ``hhrt build-engine --target openvino``: fp32 as exported, or int8 by NNCF.

OpenVINO reads the fp32 PoseGraph ONNX file that the build exports anyway; this module turns it into an
IR (``NAME.xml`` + ``NAME.bin``) the openvino backend runs, and measures the int8 one against fp32.

int8 is NNCF's post-training quantisation (``nncf.quantize``) on the project's calibration images, with
the split the ONNX Runtime CPU int8 file makes (:mod:`hhrnet_rt.export.quantize_cpu`, whose scope rules
are reused): the network's convolutions, adds and resizes in int8, and **float where precision decides**
-- the final 1x1 layers (heatmaps and tags) and the whole flip / projection tail after the network. NNCF
chooses the int8 layout for the CPU plugin itself (FakeQuantize on activations, per-channel int8 weights)
and estimates ranges its own way (min/max statistics with its default preset); the project's
``--calib-method`` applies to the ONNX Runtime builds only. Measured (``benchmarks/results/bench_cpu.md``,
W32 random init, quiet 2-core Xeon): 2.99x the fp32 ONNX Runtime speed end to end, 1.42x the ORT CPU
int8 file.

The IR is saved with fp32 weights where they are float (``compress_to_fp16=False``: OpenVINO's default
would halve the float layers' weights, final layers included). Its two files are hashed into the sidecar,
and :mod:`hhrnet_rt.artifacts.engine_settings` checks them before OpenVINO reads them.

Example:
    >>> facts = write_openvino_ir("w.fp32.onnx", "w.xml", calibration_inputs=None)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hhrnet_rt.artifacts.sidecar import INPUT_NAME, sha256_file
from hhrnet_rt.core.errors import BackendUnavailableError, CalibrationError, option
from hhrnet_rt.export.quantize_cpu import in_final_layers, in_network
from hhrnet_rt.runtime.backends.openvino_backend import OpenVinoBackend, import_openvino
from hhrnet_rt.runtime.backends.select import OPENVINO_INSTALL_HINT

log = logging.getLogger(__name__)


class _Replayable:
    """An iterable NNCF may walk more than once (statistics, then bias correction), re-reading the
    images each time rather than holding hundreds of preprocessed frames in memory."""

    def __init__(self, make: Callable[[], Iterable[np.ndarray]], count: int) -> None:
        self._make, self._count = make, count

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self._make())

    def __len__(self) -> int:
        return self._count


def require_openvino(int8: bool) -> None:
    """Fail before any export work when the IR cannot be written here (openvino, and nncf for int8)."""

    try:
        import openvino  # noqa: F401
    except ImportError as exc:
        missing = f"the openvino package ({exc})"
    else:
        missing = (
            "nncf (it quantises the int8 model)" if int8 and importlib.util.find_spec("nncf") is None else ""
        )
    if missing:
        raise BackendUnavailableError(
            f"{option('target', 'openvino')} needs {missing}: {OPENVINO_INSTALL_HINT}; or build for ONNX "
            f"Runtime with {option('target', 'cpu')}"
        )


def float_scope(model: Any) -> list[str]:
    """Names of the operations NNCF must leave float: the final layers and everything outside the network.

    Raises:
        CalibrationError: nothing in the model is under the network scope (not a PoseGraph export).
    """
    names = [op.get_friendly_name() for op in model.get_ops()]
    if not any(in_network(n) and not in_final_layers(n) for n in names):
        raise CalibrationError(
            "no operation under '/network/' in the model: OpenVINO int8 needs a PoseGraph export (from `hhrt "
            "build-engine`)"
        )
    return [n for n in names if not in_network(n) or in_final_layers(n)]


@contextlib.contextmanager
def _nncf_quiet(nncf: Any) -> Iterator[None]:
    """NNCF logs every float operation at INFO and draws progress bars on stdout, which is data (and
    interleaves with hhrt's own steps): its log is lowered to warnings and its prints go to debug."""
    before = nncf.nncf_logger.level
    nncf.set_log_level(logging.WARNING)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            yield
    finally:
        nncf.set_log_level(before)
        for line in printed.getvalue().splitlines():
            if line.strip():
                log.debug("nncf: %s", line.strip())


def quantize_openvino_int8(
    model: Any, calibration_inputs: Callable[[], Iterable[np.ndarray]], count: int
) -> tuple[Any, dict[str, Any]]:
    """The NNCF int8 model of ``model`` (an ``openvino.Model`` of the fp32 PoseGraph) and the facts for
    the sidecar's ``calibration``.

    Raises:
        CalibrationError: no calibration input, or not a PoseGraph export.
    """
    import nncf

    if count < 1:
        raise CalibrationError("OpenVINO int8 needs at least one calibration image")
    ignored = float_scope(model)
    dataset = nncf.Dataset(_Replayable(calibration_inputs, count), lambda x: {INPUT_NAME: x})
    with _nncf_quiet(nncf):
        quantized = nncf.quantize(
            model,
            dataset,
            subset_size=count,
            ignored_scope=nncf.IgnoredScope(names=ignored, validate=False),
        )
    facts = {
        "target": "openvino",
        "method": "nncf (default preset, min/max statistics)",
        "nncf": nncf.__version__,
        "images": count,
        "float_ops": len(ignored),
    }
    return quantized, facts


def write_openvino_ir(
    fp32_onnx: str | Path,
    xml_path: str | Path,
    *,
    calibration_inputs: Callable[[], Iterable[np.ndarray]] | None,
    count: int = 0,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Write ``xml_path`` (+ ``.bin``) from the fp32 PoseGraph ONNX file: int8 when ``calibration_inputs``
    is given, else fp32. Returns (the sidecar's ``openvino`` facts, its ``calibration`` or None)."""

    ov = import_openvino()
    xml_path = Path(xml_path)
    model = ov.Core().read_model(str(fp32_onnx))
    calibration = None
    if calibration_inputs is not None:
        model, calibration = quantize_openvino_int8(model, calibration_inputs, count)
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    bin_path = xml_path.with_suffix(".bin")
    facts = {
        "version": ov.__version__,
        "xml": xml_path.name,
        "xml_sha256": sha256_file(xml_path),
        "bin": bin_path.name,
        "bin_sha256": sha256_file(bin_path),
        "inference_precision_hint": "f32",
    }
    return facts, calibration


def openvino_agreement(
    fp32_model: str | Path,
    other_model: str | Path,
    inputs: Sequence[np.ndarray],
    *,
    threads: int | None = None,
) -> dict[str, Any]:
    """:func:`~hhrnet_rt.export.agreement.compare_outputs` of two models, both run by the openvino backend
    (so the figures measure the precision, not a difference between runtimes)."""
    from hhrnet_rt.export.agreement import compare_outputs

    ref = OpenVinoBackend(fp32_model, threads=threads, reuse_outputs=False)
    other = OpenVinoBackend(other_model, threads=threads, reuse_outputs=False)
    return compare_outputs((ref.run(x), other.run(x)) for x in inputs)


def openvino_int8_layout(xml_path: str | Path) -> dict[str, Any]:
    """What an IR holds, for tests and logs.

    Keys: ``fake_quantize`` (activation quantisers), ``int8_weight_convs`` / ``convs`` (convolutions of
    the network whose weights come from int8 constants, all of them), ``final_convs`` /
    ``float_final_convs`` (final layer convs, and those with float weights), ``quantized_ops_in_tail``
    (operations outside the network that read a FakeQuantize output).
    """

    model = import_openvino().Core().read_model(str(xml_path))

    def source(op: Any, i: int) -> Any:
        return op.input(i).get_source_output().get_node()

    def int8_weights(conv: Any) -> bool:  # weight <- Multiply/Subtract/Convert chain <- i8/u8 Constant
        node = source(conv, 1)
        while node.get_type_name() in ("Multiply", "Subtract", "Convert", "Reshape"):
            node = source(node, 0)
        return node.get_type_name() == "Constant" and node.get_output_element_type(0).get_type_name() in (
            "i8",
            "u8",
        )

    ops = list(model.get_ops())
    convs = [op for op in ops if op.get_type_name() in ("Convolution", "ConvolutionBackpropData")]
    finals = [c for c in convs if in_final_layers(c.get_friendly_name())]
    tail = [
        op for op in ops if not in_network(op.get_friendly_name()) and op.get_type_name() != "FakeQuantize"
    ]
    return {
        "fake_quantize": sum(op.get_type_name() == "FakeQuantize" for op in ops),
        "convs": len(convs),
        "int8_weight_convs": sum(int8_weights(c) for c in convs),
        "final_convs": len(finals),
        "float_final_convs": sum(
            not int8_weights(c) and source(c, 1).get_type_name() == "Constant" for c in finals
        ),
        "quantized_ops_in_tail": sum(
            any(source(op, i).get_type_name() == "FakeQuantize" for i in range(op.get_input_size()))
            for op in tail
        ),
    }
