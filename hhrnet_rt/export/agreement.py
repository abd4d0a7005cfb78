"""How closely a reduced-precision graph (fp16, int8) agrees with the fp32 graph, measured in ONNX Runtime.

Four figures per precision, over held-out images:

* heatmap max / mean absolute error (the maps are in 0..1, so these read as probabilities);
* tag max / mean absolute error;
* peak agreement: the share of fp32 NMS peaks above the detection threshold that are also NMS peaks
  (local maxima of the same ``nms_kernel`` window, value above half the threshold) at the same pixel --
  half, so a peak that merely dipped from 0.101 to 0.099 is not counted as lost;
* decoded agreement: both outputs decoded with :func:`hhrnet_rt.decode.parse`, people paired greedily by
  mean joint distance; ``people`` = paired people whose median joint distance is within ``tol_px``, over
  the larger of the two people counts; ``keypoints`` = fp32 joints with a partner within ``tol_px``, over
  all fp32 joints (unpaired people count as misses).

Distances are in heatmap pixels (= input pixels, the graph projects to input resolution).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hhrnet_rt.artifacts.sidecar import INPUT_NAME, OUTPUT_NAMES
from hhrnet_rt.core.tag_layout import by_pixel
from hhrnet_rt.decode.params import DecodeParams

DEFAULT_TOL_PX = 2.0


def _maxpool(h: np.ndarray, kernel: int) -> np.ndarray:
    # Separable max filter with -inf padding (same result as a 2-D max-pool with stride 1, 'same' padding).
    pad = kernel // 2
    out = h
    for axis in (-2, -1):
        padded = np.pad(out, [(0, 0)] * (out.ndim - 2) + [(pad, pad) if a == axis else (0, 0) for a in (-2, -1)],
                        constant_values=-np.inf)  # fmt: skip
        n = out.shape[axis]
        windows = [np.take(padded, np.arange(i, i + n), axis=axis) for i in range(kernel)]
        out = np.maximum.reduce(windows)
    return out


def peak_mask(heatmaps: np.ndarray, kernel: int, threshold: float) -> np.ndarray:
    """Boolean mask (K, H, W): the pixel is the max of its ``kernel`` window and above ``threshold``."""
    return (heatmaps == _maxpool(heatmaps, kernel)) & (heatmaps > threshold)


def peak_agreement(ref: np.ndarray, other: np.ndarray, params: DecodeParams) -> tuple[int, int]:
    """(fp32 peaks also found in ``other``, fp32 peaks) for one (K, H, W) heatmap pair."""
    ref_peaks = peak_mask(ref, params.nms_kernel, params.detection_threshold)
    other_peaks = peak_mask(other, params.nms_kernel, params.detection_threshold / 2)
    return int((ref_peaks & other_peaks).sum()), int(ref_peaks.sum())


def match_people(ref: np.ndarray, other: np.ndarray, tol_px: float = DEFAULT_TOL_PX) -> dict[str, int]:
    """Greedy pairing of two (P, K, >=2) people arrays by mean joint distance.

    Returns counts: ``people_ref``, ``people_other``, ``people_matched`` (pairs with median joint distance
    <= tol), ``joints_ref`` (P_ref * K), ``joints_matched`` (fp32 joints with a partner joint <= tol).
    """
    p_ref, p_oth = len(ref), len(other)
    k = ref.shape[1] if ref.ndim == 3 else 0
    counts = {"people_ref": p_ref, "people_other": p_oth, "people_matched": 0,
              "joints_ref": p_ref * k, "joints_matched": 0}  # fmt: skip
    if p_ref == 0 or p_oth == 0:
        return counts
    d = np.linalg.norm(ref[:, None, :, :2] - other[None, :, :, :2], axis=-1)  # (P_ref, P_oth, K)
    cost = d.mean(axis=-1)
    used_r, used_o = set(), set()
    for flat in np.argsort(cost, axis=None, kind="stable"):
        r, o = divmod(int(flat), p_oth)
        if r in used_r or o in used_o:
            continue
        used_r.add(r)
        used_o.add(o)
        counts["people_matched"] += int(np.median(d[r, o]) <= tol_px)
        counts["joints_matched"] += int((d[r, o] <= tol_px).sum())
    return counts


def _run(session: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:

    heatmaps, tags = session.run(list(OUTPUT_NAMES), {INPUT_NAME: x})
    return heatmaps, tags


def compare_outputs(
    pairs: Iterable[tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]],
    *,
    params: DecodeParams | None = None,
    tol_px: float = DEFAULT_TOL_PX,
    decode: bool = True,
) -> dict[str, Any]:
    """Agreement figures over ``((hm_ref, tags_ref), (hm_other, tags_other))`` pairs of batch-1 outputs."""
    params = params or DecodeParams()
    hm_max = hm_sum = tag_max = tag_sum = 0.0
    hm_n = tag_n = 0
    peaks_found = peaks_total = 0
    totals = {"people_ref": 0, "people_other": 0, "people_matched": 0, "joints_ref": 0, "joints_matched": 0}
    images = 0
    for (h_ref, t_ref), (h_oth, t_oth) in pairs:
        images += 1
        dh = np.abs(h_ref.astype(np.float64) - h_oth)
        dt = np.abs(t_ref.astype(np.float64) - t_oth)
        hm_max, hm_sum, hm_n = max(hm_max, float(dh.max())), hm_sum + float(dh.sum()), hm_n + dh.size
        tag_max, tag_sum, tag_n = max(tag_max, float(dt.max())), tag_sum + float(dt.sum()), tag_n + dt.size
        found, total = peak_agreement(h_ref[0], h_oth[0], params)
        peaks_found, peaks_total = peaks_found + found, peaks_total + total
        if decode:
            from hhrnet_rt.decode import parse

            g_ref, _ = parse(h_ref[0], by_pixel(t_ref[0]), params)
            g_oth, _ = parse(h_oth[0], by_pixel(t_oth[0]), params)
            for key, value in match_people(g_ref, g_oth, tol_px).items():
                totals[key] += value

    def share(a: int, b: int) -> float | None:
        return None if b == 0 else a / b

    report: dict[str, Any] = {
        "images": images,
        "heatmap_max_abs": hm_max,
        "heatmap_mean_abs": hm_sum / max(hm_n, 1),
        "tags_max_abs": tag_max,
        "tags_mean_abs": tag_sum / max(tag_n, 1),
        "peaks_fp32": peaks_total,
        "peak_agreement": share(peaks_found, peaks_total),
        "tol_px": tol_px,
    }
    if decode:
        report.update(
            people_fp32=totals["people_ref"],
            people_other=totals["people_other"],
            people_agreement=share(
                totals["people_matched"], max(totals["people_ref"], totals["people_other"])
            ),
            keypoint_agreement=share(totals["joints_matched"], totals["joints_ref"]),
        )
    return report


def onnx_agreement(
    fp32_onnx: str | Path,
    other_onnx: str | Path,
    inputs: Sequence[np.ndarray],
    *,
    params: DecodeParams | None = None,
    tol_px: float = DEFAULT_TOL_PX,
    decode: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run both graphs in ONNX Runtime (CPU) on ``inputs`` ((1,3,h,w) float32 each) and compare them."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    ref = ort.InferenceSession(str(fp32_onnx), opts, providers=["CPUExecutionProvider"])
    oth = ort.InferenceSession(str(other_onnx), opts, providers=["CPUExecutionProvider"])
    pairs = ((_run(ref, x), _run(oth, x)) for x in inputs)
    return compare_outputs(pairs, params=params, tol_px=tol_px, decode=decode)
