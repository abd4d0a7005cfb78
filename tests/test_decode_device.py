"""parse_on_device (the device decode front-end) gives exactly parse()'s output, on torch CPU tensors.

Both paths do the same float32 operations in the same order, so equality is exact (``np.array_equal``
on the people, including NaN positions, and on the scores), not within a tolerance.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.decode import device_ops, parse
from hhrnet_rt.decode.device import parse_on_device
from hhrnet_rt.decode.params import DecodeParams
from hhrnet_rt.decode.synthetic import synthesize

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VARIANTS = {"raw": (False, False), "a": (True, False), "ar": (True, True)}


def assert_device_equals_host(det, tag, params=None, adjust=True, refine=True, det_t=None, tag_t=None):
    """Decode with both paths; the device path gets ``det_t``/``tag_t`` (default: the same arrays).

    The host decodes with ``topk_ties="index"``: the device decoder's order of equal peaks (the host's
    default replays torch's CPU top-k instead, see DecodeParams)."""
    host_params = replace(params or DecodeParams(), topk_ties="index")
    grouped, scores = parse(det, tag, host_params, adjust=adjust, refine=refine)
    det_t = torch.from_numpy(np.ascontiguousarray(det)) if det_t is None else det_t
    tag_t = torch.from_numpy(np.ascontiguousarray(tag)) if tag_t is None else tag_t
    res = parse_on_device(det_t, tag_t, params, adjust=adjust, refine=refine)
    assert res.grouped.dtype == np.float32 and res.scores.dtype == np.float32
    assert res.grouped.shape == grouped.shape
    assert np.array_equal(res.grouped, grouped, equal_nan=True)
    assert np.array_equal(res.scores, scores, equal_nan=True)
    # Same float32 bits, so -0.0 and +0.0 are told apart too.
    assert np.array_equal(res.grouped.view(np.int32), grouped.view(np.int32))
    return res


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("case", range(9))
def test_golden_grouping_cases(golden_npz, case, variant):
    g = golden_npz("grouping_cases")
    det, tag = g[f"case{case}_det"][0], g[f"case{case}_tag"][0]
    do_adjust, do_refine = VARIANTS[variant]
    res = assert_device_equals_host(det, tag, adjust=do_adjust, refine=do_refine)
    # And therefore the official people (checked with the golden tolerances in test_decode_golden).
    assert res.grouped.shape == g[f"case{case}_{variant}_grouped"].shape


@pytest.mark.parametrize("flip", [True, False])
def test_golden_pipeline_maps(golden_npz, flip):
    p = golden_npz("pipeline_case")
    if flip:
        det = (p["s128_heatmaps_orig"] + p["s128_heatmaps_flip"]) / 2.0
        tags = p["s128_flip_tags"]
    else:
        det, tags = p["s128_heatmaps_orig"], p["s128_flip_tags"][..., 0:1]
    assert_device_equals_host(det[0], tags[0])


def test_golden_multiscale_maps(golden_npz):
    m = golden_npz("multiscale_case")
    res = assert_device_equals_host(m["final_heatmaps"][0], m["tags"][0])
    assert res.grouped.shape == m["grouped"].shape


@pytest.mark.parametrize("tag_dims", [1, 2])
@pytest.mark.parametrize("joints", [17, 14])
@pytest.mark.parametrize("background", [0.0, 0.02])
def test_synthetic_people(joints, tag_dims, background):
    """K=14 uses the joint order DecodeParams().order_for(14) gives (0..13); the background makes
    refine fill missing joints from low-valued pixels, with many equal values (1/4096 steps)."""
    m = synthesize(9, joints, 72, 96, tag_dims, seed=joints * 10 + tag_dims, sigma=1.5, background=background)
    for do_adjust, do_refine in VARIANTS.values():
        assert_device_equals_host(m.heatmaps, m.tags, adjust=do_adjust, refine=do_refine)


@pytest.mark.parametrize("tag_dims", [1, 2])
@pytest.mark.parametrize("people", [1, 3, 6])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roundtrip_cases(people, seed, tag_dims):
    """The maps of tests/test_decode_roundtrip.py (people that decode back to themselves)."""
    m = synthesize(people, 17, 96, 128, tag_dims, seed=seed, sigma=2.0)
    res = assert_device_equals_host(m.heatmaps, m.tags, adjust=True, refine=False)
    assert res.grouped.shape[0] == people
    assert_device_equals_host(m.heatmaps, m.tags)


@pytest.mark.parametrize(("joints", "size"), [(14, (128, 96)), (5, (64, 160))])
def test_roundtrip_other_joint_counts(joints, size):
    m = synthesize(4, joints, *size, 2, seed=7, sigma=2.0)
    for do_adjust, do_refine in VARIANTS.values():
        assert_device_equals_host(m.heatmaps, m.tags, adjust=do_adjust, refine=do_refine)


def test_tags_without_last_axis_mean_one_tag_dimension():
    m = synthesize(4, 17, 48, 64, 1, seed=3, sigma=1.5)
    assert_device_equals_host(m.heatmaps, m.tags, tag_t=torch.from_numpy(m.tags[..., 0]))


def test_strided_channels_last_and_fp16_inputs():
    """A channels_last graph's outputs (and a transposed tag layout) decode without being made
    contiguous first; fp16 maps decode like their float32 values."""
    m = synthesize(6, 17, 64, 80, 2, seed=11, sigma=1.5, background=0.01)
    det_cl = torch.from_numpy(m.heatmaps[None]).contiguous(memory_format=torch.channels_last)[0]
    assert not det_cl.is_contiguous()
    tag_klhw = torch.from_numpy(np.ascontiguousarray(m.tags.transpose(0, 3, 1, 2)))  # (K, L, H, W) storage
    tag_view = tag_klhw.permute(0, 2, 3, 1)
    assert not tag_view.is_contiguous()
    assert_device_equals_host(m.heatmaps, m.tags, det_t=det_cl, tag_t=tag_view)

    det16 = torch.from_numpy(m.heatmaps).half()
    tag16 = torch.from_numpy(m.tags).half()
    assert_device_equals_host(det16.float().numpy(), tag16.float().numpy(), det_t=det16, tag_t=tag16)


def test_inference_mode_and_grad_tensors():
    """Maps made under torch.inference_mode (as a graph's outputs are) or still attached to autograd."""
    m = synthesize(4, 17, 40, 56, 2, seed=13, sigma=1.5, background=0.01)
    with torch.inference_mode():
        det_inf, tag_inf = torch.from_numpy(m.heatmaps).clone(), torch.from_numpy(m.tags).clone()
    assert det_inf.is_inference()
    assert_device_equals_host(m.heatmaps, m.tags, det_t=det_inf, tag_t=tag_inf)
    det_grad = torch.from_numpy(m.heatmaps.copy()).requires_grad_()
    assert_device_equals_host(m.heatmaps, m.tags, det_t=det_grad)


def test_equal_peaks_follow_the_host_order():
    """Equal peaks: more equal, separate peaks than max_num_people, and 2-pixel plateaus (both pixels
    are NMS peaks, as in the official ``maxpool == det``). The host with ``topk_ties="index"`` orders
    equal values by flat index, lowest first; the device must pick the same ones in the same order
    (torch.topk's tie order is unspecified, so this fails if the device relied on it)."""
    K, H, W = 3, 40, 64
    det = np.zeros((K, H, W), np.float32)
    tag = np.zeros((K, H, W, 2), np.float32)
    rng = np.random.default_rng(5)
    for j in range(K):
        for n, (y, x) in enumerate((y, x) for y in range(2, H, 6) for x in range(2, W, 6)):
            det[j, y, x] = 0.5
            if n % 7 == 0:
                det[j, y, x + 1] = 0.5  # plateau
        tag[j] = np.round(rng.normal(0, 2, (H, W, 2)) * 4) / 4  # quantised: munkres ties too
    assert (det[0] == 0.5).sum() > 30
    for do_adjust, do_refine in VARIANTS.values():
        res = assert_device_equals_host(det, tag, DecodeParams(joint_order=(0, 1, 2)), do_adjust, do_refine)
    assert res.grouped.shape[0] > 0


def test_non_finite_maps_match_the_host_rules():
    """NaN heatmap pixels (never peaks, never suppress), +inf peaks, -inf pixels, NaN and inf tags:
    the device follows the host's documented rules exactly."""
    m = synthesize(7, 17, 56, 72, 2, seed=21, sigma=1.5, background=0.01)
    det, tag = m.heatmaps.copy(), m.tags.copy()
    rng = np.random.default_rng(0)
    peaks = np.argwhere(det > 0.3)
    for n, (j, y, x) in enumerate(peaks[rng.choice(len(peaks), 12, replace=False)]):
        det[j, y, x] = [np.nan, np.inf, -np.inf][n % 3]
    det[2, :5, :5] = np.nan
    det[5, 10, 10] = np.inf
    tag[1, 20:30, 20:40, 0] = np.nan
    tag[3, :, :10, 1] = np.inf
    tag[6, 5:15, 30:50, :] = -np.inf
    for do_adjust, do_refine in VARIANTS.values():
        assert_device_equals_host(det, tag, adjust=do_adjust, refine=do_refine)
    # A person whose mean tag is NaN gets no refined joints; with all tags NaN nobody groups.
    assert_device_equals_host(det, np.full_like(tag, np.nan))


def test_negative_threshold_and_other_params():
    """Negative threshold: suppressed pixels become value-0 candidates (official det * mask), ranked after
    equal peaks by flat index; and the non-default settings reach match_by_tag unchanged."""
    m = synthesize(5, 17, 24, 32, 2, seed=2, sigma=1.5)
    det = m.heatmaps.copy()
    det[0, 3, 3] = -0.0
    det[1, 0:2, 0:2] = -0.05
    for params in (
        DecodeParams(detection_threshold=-0.1, max_num_people=5),
        DecodeParams(max_num_people=3, ignore_too_much=True),
        DecodeParams(use_detection_val=False, tag_threshold=2.0, nms_kernel=3),
        DecodeParams(nms_kernel=1, joint_order=tuple(reversed(range(17)))),
    ):
        assert_device_equals_host(det, m.tags, params)


def test_negative_zero_peak_ties_with_zero():
    """A -0.0 NMS peak equals the 0-valued (suppressed) candidates of a negative threshold, so it is
    ranked among them by flat index (as the host's ``==`` does), not after them."""
    det = np.full((3, 12, 12), -0.5, np.float32)
    det[:, 2, 2] = 0.0
    det[:, 8, 7] = -0.0
    det[:, 9, 1] = 0.25
    tag = np.zeros((3, 12, 12, 2), np.float32)
    tag[..., 0] = np.arange(144, dtype=np.float32).reshape(12, 12) * 1.5  # every pixel its own person
    params = DecodeParams(detection_threshold=-0.1, max_num_people=100, joint_order=(0, 1, 2))
    res = assert_device_equals_host(det, tag, params, adjust=True, refine=False)
    assert np.signbit(res.grouped[..., 2]).any()  # the -0.0 value itself came through


def test_refine_in_small_chunks(monkeypatch):
    """The pair chunking (bounded memory at 1080p) does not change the picks."""
    monkeypatch.setattr(device_ops, "REFINE_CHUNK_BYTES", 3 * 4 * 48 * 64)  # 3 pairs per chunk
    m = synthesize(6, 17, 48, 64, 2, seed=8, sigma=1.5, background=0.02)
    assert_device_equals_host(m.heatmaps, m.tags)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    size=st.sampled_from([(9, 13), (16, 24), (1, 7)]),
    tag_dims=st.sampled_from([1, 2]),
    quantum=st.sampled_from([0.25, 1 / 64]),
    flags=st.sampled_from([*VARIANTS.values(), (False, True)]),
    params=st.sampled_from(
        [
            DecodeParams(joint_order=(0, 1, 2, 3)),
            DecodeParams(max_num_people=3, joint_order=(3, 2, 1, 0)),
            DecodeParams(detection_threshold=-0.05, max_num_people=12, joint_order=(0, 1, 2, 3)),
        ]
    ),
)
def test_equal_to_host_on_quantised_noise(seed, size, tag_dims, quantum, flags, params):
    """Coarsely quantised noise: ties everywhere (peaks, munkres costs, refine argmax); a negative
    threshold makes suppressed pixels value-0 candidates; refine also without adjust."""
    rng = np.random.default_rng(seed)
    det = (np.floor(rng.uniform(-0.2, 1.0, (4, *size)) / quantum) * quantum).astype(np.float32)
    tag = (np.round(rng.normal(0, 1.5, (4, *size, tag_dims)) / quantum) * quantum).astype(np.float32)
    assert_device_equals_host(det, tag, params, *flags)


def test_d2h_bytes_are_small_and_counted_exactly():
    """17 x 512 x 704 maps with flip (L=2) and 20 people: the copies to the host stay under 0.5 MB
    (the full maps are 73.5 MB). Without refine exactly one (K, 30, 6 + L) int32 pack crosses."""
    m = synthesize(20, 17, 512, 704, 2, seed=1)
    det, tag = torch.from_numpy(m.heatmaps), torch.from_numpy(m.tags)
    res = parse_on_device(det, tag, adjust=True, refine=True)
    assert res.grouped.shape[0] == 20
    assert 0 < res.d2h_bytes < 500_000
    no_refine = parse_on_device(det, tag, adjust=True, refine=False)
    assert no_refine.d2h_bytes == 17 * 30 * (6 + 2) * 4
    assert res.d2h_bytes > no_refine.d2h_bytes  # refine's picks were counted too


def test_empty_maps_and_bad_input():
    res = parse_on_device(torch.zeros(17, 0, 5), torch.zeros(17, 0, 5, 2))
    assert res.grouped.shape == (0, 17, 5) and res.scores.shape == (0,) and res.d2h_bytes == 0
    res = parse_on_device(torch.zeros(17, 8, 8), torch.zeros(17, 8, 8, 2))
    assert res.grouped.shape == (0, 17, 5)
    with pytest.raises(InputError, match="heatmaps must have shape"):
        parse_on_device(torch.zeros(1, 17, 8, 8), torch.zeros(1, 17, 8, 8, 2))
    with pytest.raises(InputError, match="tags must have shape"):
        parse_on_device(torch.zeros(17, 8, 8), torch.zeros(17, 8, 9, 2))
    with pytest.raises(InputError, match="same device"):
        parse_on_device(torch.zeros(17, 8, 8), torch.zeros(17, 8, 8, 2, device="meta"))
    with pytest.raises(InputError, match="real numbers"):
        parse_on_device(torch.zeros(17, 8, 8, dtype=torch.complex64), torch.zeros(17, 8, 8, 2))
    with pytest.raises(InputError, match="nms_kernel"):
        parse_on_device(torch.zeros(17, 8, 8), torch.zeros(17, 8, 8, 2), DecodeParams(nms_kernel=4))


@pytest.mark.gpu
def test_cuda_maps_equal_host(golden_npz):
    """On a CUDA device: the golden cases and synthetic people at 512x704 decode exactly as on the host."""
    g = golden_npz("grouping_cases")
    for case in range(9):
        det, tag = g[f"case{case}_det"][0], g[f"case{case}_tag"][0]
        assert_device_equals_host(
            det, tag, det_t=torch.from_numpy(det).cuda(), tag_t=torch.from_numpy(tag).cuda()
        )
    m = synthesize(20, 17, 512, 704, 2, seed=4, background=0.01)
    res = assert_device_equals_host(
        m.heatmaps, m.tags, det_t=torch.from_numpy(m.heatmaps).cuda(), tag_t=torch.from_numpy(m.tags).cuda()
    )
    assert res.d2h_bytes < 500_000


def test_every_kernel_module_is_in_the_cache_digest():
    """The Numba cache is dropped when a kernel module changes; device_host's kernels call grouping's
    and refine's, so a module missing from the digest would keep running stale compiled code."""
    from hhrnet_rt.decode import cache

    with_kernels = {p.stem for p in cache.PACKAGE_DIR.glob("*.py") if "@kernel" in p.read_text()}
    assert with_kernels <= set(cache._KERNEL_MODULES)
