"""An oracle network for the accuracy tests: it knows the ground truth of the images it will be shown.

``Oracle`` is an ``nn.Module`` that ``PoseEstimator(weights=oracle, flip=False)`` runs like HigherHRNet: it
recognises which image it is given by comparing its (preprocessed) input with the inputs the official
preprocessing makes of each known image, and returns the maps an ideal network would: a Gaussian at every
labelled joint in both outputs (placed so that the official decode -- integer peak, +0.5 pixel centre,
quarter-pixel adjust -- lands on the labelled point) and a tag per person. ``jitter`` moves each joint by a
seeded random offset and scales its peak, making a perturbed oracle whose AP is below 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from hhrnet_rt.runtime.preprocess import normalize, resize_align

SIGMA = 6.0  # Gaussian sigma in input pixels: a few map pixels even at 1/4 resolution
TAG_STEP = 10.0  # tag distance between people, far above the official tag threshold of 1


def ground_truth(image_dir: Path, annotation_file: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(BGR image, (P, K, 3) labelled keypoints) for each image of the file with people on it."""
    data = json.loads(Path(annotation_file).read_text())
    out = []
    for im in data["images"]:
        anns = [a for a in data["annotations"] if a["image_id"] == im["id"] and a.get("num_keypoints", 1) > 0]
        kp = np.array([a["keypoints"] for a in anns], np.float64).reshape(len(anns), -1, 3)
        image = cv2.imread(
            str(Path(image_dir) / im["file_name"]), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
        )
        out.append((image, kp))
    return out


def _gaussians(shape, centres: np.ndarray, peaks: np.ndarray, sigma: float) -> np.ndarray:
    """Max of Gaussians with the given (n, 2) centres (map pixel indices) and peak values."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((h, w), np.float64)
    for (cx, cy), peak in zip(centres, peaks, strict=True):
        out = np.maximum(out, peak * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2)))
    return out


class Oracle(nn.Module):
    def __init__(
        self, truth, input_size: int = 512, jitter: float = 0.0, seed: int = 0, scales=(1.0,), levels: int = 0
    ) -> None:
        """``levels`` > 0 rounds the maps to multiples of 1 / levels: many exactly equal peaks (ties)."""
        super().__init__()
        rng = np.random.default_rng(seed)
        self.known = []
        self.levels = levels
        for image, kp in truth:
            kp = kp.copy()
            if jitter:
                kp[..., :2] += rng.normal(0.0, jitter, kp[..., :2].shape)
            peaks = np.where(kp[..., 2] > 0, 1.0 - (rng.random(kp.shape[:2]) * 0.8 if jitter else 0.0), 0.0)
            for s in scales:  # each test scale is its own input: the official resize of that scale
                resized, affine = resize_align(image, input_size, s, min(scales))
                x = torch.from_numpy(normalize(resized, bgr=True))
                xy = (
                    kp[..., :2] @ affine.forward[:, :2].T + affine.forward[:, 2]
                )  # image -> input coordinates
                self.known.append((x, xy, peaks))
        self.num_joints = truth[0][1].shape[1]

    def _render(self, xy: np.ndarray, peaks: np.ndarray, hw, stride: int, with_tags: bool) -> torch.Tensor:
        h, w = hw[0] // stride, hw[1] // stride
        # Decoded point = pixel index + 0.5 (official adjust) in input pixels; a map pixel i of this stride
        # is input pixel (i + 0.5) * stride - 0.5 after the official bilinear upsampling.
        centres = ((xy - 0.5) + 0.5) / stride - 0.5
        K = peaks.shape[1]
        hm = np.zeros((K, h, w), np.float32)
        tag = np.zeros((K, h, w), np.float32)
        yy, xx = np.mgrid[0:h, 0:w]
        for j in range(K):
            on = peaks[:, j] > 0
            if not on.any():
                continue
            hm[j] = _gaussians((h, w), centres[on, j], peaks[on, j], SIGMA / stride)
            # Each pixel takes the tag of the nearest person that has this joint.
            d = (xx[None] - centres[on, j, 0, None, None]) ** 2 + (
                yy[None] - centres[on, j, 1, None, None]
            ) ** 2
            tag[j] = TAG_STEP * (np.flatnonzero(on)[d.argmin(axis=0)] + 1)
        if self.levels:
            hm = np.round(hm * self.levels) / self.levels
        maps = np.concatenate([hm, tag]) if with_tags else hm
        return torch.from_numpy(maps)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = x.shape
        K = self.num_joints
        out0 = torch.zeros(n, 2 * K, h // 4, w // 4)
        out1 = torch.zeros(n, K, h // 2, w // 2)
        for i in range(n):
            for known, xy, peaks in self.known:
                if known.shape[2:] == x.shape[2:] and torch.equal(known[0], x[i]):
                    out0[i] = self._render(xy, peaks, (h, w), 4, True)
                    out1[i] = self._render(xy, peaks, (h, w), 2, False)
                    break
        return out0, out1
