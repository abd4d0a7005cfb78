"""A slow, plain numpy + torch + munkres-1.1.4 re-statement of the official HeatmapParser, for tests.

Written from the behaviour described in ../shared/reference/official-higherhrnet.md (b.7, d.7-d.18),
with the same numpy/torch operations and dtypes as the official code, so property tests can compare
``hhrnet_rt.decode.parse`` against it on random inputs beyond the 9 golden cases.

Finite inputs only, and no two equal peak values among a joint's top-k candidates: the official
``top_k`` returns them in ``torch.topk``'s order, which torch leaves unspecified (the official
``tools/valid.py`` runs it on CUDA, this file on the CPU kernel, and ``hhrnet_rt`` ranks equal peaks
by flat index), so ``reference_parse`` refuses such maps; :func:`untie_peaks` makes random maps safe.
"""

from __future__ import annotations

import munkres as classic
import numpy as np
import torch

JOINT_ORDER_17 = [0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16]


def reference_top_k(det: np.ndarray, tag: np.ndarray, k: int = 30, threshold: float | None = None):
    """NMS (5x5 max-pool) + torch.topk, as the official ``top_k`` (one image).

    With ``threshold``, inputs whose result depends on torch.topk's order of equal values among the
    candidates ``> threshold`` are refused (ValueError) rather than compared by chance.
    """
    d = torch.from_numpy(det)[None]
    maxm = torch.nn.functional.max_pool2d(d, 5, 1, 2)
    d = d * (maxm == d).float()
    K, H, W = det.shape
    if threshold is not None:
        refuse_unspecified_ties(d[0].reshape(K, -1).numpy(), k, threshold)
    val_k, ind = d.view(1, K, -1).topk(min(k, H * W), dim=2)  # the official code needs H*W >= k
    t = torch.from_numpy(tag)[None].reshape(1, K, H * W, -1)
    tag_k = torch.stack([torch.gather(t[:, :, :, i], 2, ind) for i in range(t.shape[3])], dim=3)
    x = ind % W
    y = (ind / W).long()
    return tag_k[0].numpy(), torch.stack((x, y), dim=3)[0].numpy(), val_k[0].numpy()


def untie_peaks(det: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """A float32 copy of ``det`` (K, H, W) in which no two values above ``threshold`` are equal within
    a channel, so top-k order is defined and the reference and ``hhrnet_rt`` must agree on it.

    Random maps hit such ties more often than one would think: distinct float64 draws round to the
    same float32 (there are only 2**23 float32 values in [0.5, 1)). Of each group of equal
    values, all but the one with the lowest flat index move down by one float32 step, repeated until
    no equal pair is left; a change of one ulp leaves every other property of the map as it was.
    """
    out = np.array(det, dtype=np.float32, copy=True)
    for plane in out.reshape(out.shape[0], -1):  # views: edits land in ``out``
        while True:
            idx = np.flatnonzero(plane > threshold)
            order = idx[np.lexsort((idx, -plane[idx]))]  # descending value, then flat index
            dup = order[1:][plane[order[1:]] == plane[order[:-1]]]
            if dup.size == 0:
                break
            plane[dup] = np.nextafter(plane[dup], np.float32(-np.inf))
    return out


def refuse_unspecified_ties(det_nms: np.ndarray, k: int, threshold: float) -> None:
    """ValueError when a joint's best ``k`` NMS values ``> threshold`` hold equal values (or the k-th
    equals the next one): torch.topk leaves their order, hence the official grouping, unspecified."""
    for j, plane in enumerate(det_nms):
        v = np.sort(plane[plane > threshold])[::-1][: k + 1]
        top = v[:k]
        if np.unique(top).size < top.size or (v.size > k and v[k] == v[k - 1]):
            raise ValueError(
                f"joint {j}: equal peak values among the top-{k} candidates; torch.topk's order of "
                "them is unspecified, so the official result is too (see untie_peaks)"
            )


def reference_match(
    tag_k,
    loc_k,
    val_k,
    order,
    threshold=0.1,
    tag_threshold=1.0,
    max_people=30,
    use_detection_val=True,
    ignore_too_much=False,
):
    K = tag_k.shape[0]
    default = np.zeros((K, 3 + tag_k.shape[2]))
    joint_dict: dict = {}
    tag_dict: dict = {}
    for i in range(K):
        idx = order[i]
        tags = tag_k[idx]
        joints = np.concatenate((loc_k[idx], val_k[idx, :, None], tags), 1)  # float64
        mask = joints[:, 2] > threshold
        tags = tags[mask]
        joints = joints[mask]
        if joints.shape[0] == 0:
            continue
        if i == 0 or len(joint_dict) == 0:
            for tag, joint in zip(tags, joints, strict=True):
                key = tag[0]
                joint_dict.setdefault(key, np.copy(default))[idx] = joint
                tag_dict[key] = [tag]
            continue
        grouped_keys = list(joint_dict.keys())[:max_people]
        grouped_tags = [np.mean(tag_dict[key], axis=0) for key in grouped_keys]
        if ignore_too_much and len(grouped_keys) == max_people:
            continue
        diff = joints[:, None, 3:] - np.array(grouped_tags)[None, :, :]
        dist = np.linalg.norm(diff, ord=2, axis=2)
        saved = np.copy(dist)
        cost = np.round(dist) * 100 - joints[:, 2:3] if use_detection_val else dist
        n_added, n_grouped = diff.shape[0], diff.shape[1]
        if n_added > n_grouped:
            cost = np.concatenate((cost, np.zeros((n_added, n_added - n_grouped)) + 1e10), axis=1)
        pairs = np.array(classic.Munkres().compute(cost.copy())).astype(np.int32)
        for row, col in pairs:
            if row < n_added and col < n_grouped and saved[row][col] < tag_threshold:
                key = grouped_keys[col]
                joint_dict[key][idx] = joints[row]
                tag_dict[key].append(tags[row])
            else:
                key = tags[row][0]
                joint_dict.setdefault(key, np.copy(default))[idx] = joints[row]
                tag_dict[key] = [tags[row]]
    return np.array([joint_dict[k] for k in joint_dict]).astype(np.float32)


def reference_adjust(ans, det):
    for person in ans:
        for j, joint in enumerate(person):
            if joint[2] > 0:
                x, y = joint[0:2]
                xx, yy = int(x), int(y)
                tmp = det[j]
                x = x + 0.25 if tmp[yy, min(xx + 1, tmp.shape[1] - 1)] > tmp[yy, max(xx - 1, 0)] else x - 0.25
                y = y + 0.25 if tmp[min(yy + 1, tmp.shape[0] - 1), xx] > tmp[max(0, yy - 1), xx] else y - 0.25
                person[j, 0:2] = (x + 0.5, y + 0.5)
    return ans


def reference_refine(det, tag, keypoints):
    tags = []
    for i in range(keypoints.shape[0]):
        if keypoints[i, 2] > 0:
            x, y = keypoints[i][:2].astype(np.int32)
            tags.append(tag[i, y, x])
    prev_tag = np.mean(tags, axis=0)
    found = []
    for i in range(keypoints.shape[0]):
        tmp = det[i, :, :]
        tt = ((tag[i, :, :] - prev_tag[None, None, :]) ** 2).sum(axis=2) ** 0.5
        tmp2 = tmp - np.round(tt)
        y, x = np.unravel_index(np.argmax(tmp2), tmp.shape)
        xx, yy = x, y
        val = tmp[y, x]
        x = x + 0.5
        y = y + 0.5
        x = x + 0.25 if tmp[yy, min(xx + 1, tmp.shape[1] - 1)] > tmp[yy, max(xx - 1, 0)] else x - 0.25
        y = y + 0.25 if tmp[min(yy + 1, tmp.shape[0] - 1), xx] > tmp[max(0, yy - 1), xx] else y - 0.25
        found.append((x, y, val))
    found = np.array(found)
    for i in range(keypoints.shape[0]):
        if found[i, 2] > 0 and keypoints[i, 2] == 0:
            keypoints[i, :2] = found[i, :2]
            keypoints[i, 2] = found[i, 2]
    return keypoints


def reference_parse(det, tag, params=None, adjust=True, refine=True):
    """(grouped (P, K, 3+L) f32, scores (P,) f32) as the official parse; (0, K, 3+L) when empty.

    ``params`` is a ``DecodeParams`` (None = defaults); nms_kernel must be 5.
    """
    from hhrnet_rt.decode.params import DecodeParams

    params = params or DecodeParams()
    assert params.nms_kernel == 5
    K = det.shape[0]
    # The official parser loops i over range(num_joints) through its one 17-entry COCO joint_order, so
    # K=14 (CrowdPose) uses its first 14 entries; for K=8..12 that indexes out of range, as it would there.
    order = list(params.joint_order) if params.joint_order is not None else JOINT_ORDER_17[:K]
    assert sorted(order) == list(range(K)), f"the official parser cannot group {K} joints in order {order}"
    ans = reference_match(
        *reference_top_k(det, tag, params.max_num_people, params.detection_threshold),
        order,
        threshold=params.detection_threshold,
        tag_threshold=params.tag_threshold,
        max_people=params.max_num_people,
        use_detection_val=params.use_detection_val,
        ignore_too_much=params.ignore_too_much,
    )
    if ans.size == 0:
        return np.zeros((0, K, 3 + tag.shape[3]), np.float32), np.zeros(0, np.float32)
    if adjust:
        ans = reference_adjust(ans, det)
    scores = np.array([p[:, 2].mean() for p in ans], dtype=np.float32)
    if refine:
        for i in range(len(ans)):
            ans[i] = reference_refine(det, tag, ans[i])
    return ans, scores
