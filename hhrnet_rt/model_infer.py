"""Infer a :class:`~hhrnet_rt.model.ModelSpec` from a state dict's key names and tensor shapes.

Separate from :mod:`hhrnet_rt.model` because it is checkpoint forensics, not architecture: it reads
widths from ``stage*.0.branches.*.0.conv1.weight``, the joint count from ``final_layers.*``, and so on,
and it is also what the weights loader uses to say what a mismatching file looks like.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hhrnet_rt.errors import WeightsError


def _shape(sd: Mapping[str, Any], key: str) -> tuple[int, ...]:
    return tuple(int(d) for d in sd[key].shape)


def _count(keys: list[str], pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern`` (one group) over all keys."""
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in keys if (m := rx.fullmatch(k))})


def infer_spec(cls: type, state_dict: Mapping[str, Any], *, input_size: int = 512):
    """Build ``cls(...)`` (a ModelSpec) from shapes; see ``ModelSpec.from_state_dict``."""
    from hhrnet_rt.weights import remap_state_dict

    sd = remap_state_dict(state_dict)
    keys = list(sd)
    for required in (
        "conv1.weight",
        "layer1.0.conv1.weight",
        "final_layers.0.weight",
        "stage2.0.branches.0.0.conv1.weight",
    ):
        if required not in sd:
            raise WeightsError(
                f"not a HigherHRNet state dict: key {required!r} is missing "
                f"({len(keys)} keys; first ones: {', '.join(keys[:5]) or 'none'})"
            )
    try:
        channels, modules, blocks = [], [], []
        for s in (2, 3, 4):
            modules.append(len(_count(keys, rf"stage{s}\.(\d+)\..*")))
            branches = _count(keys, rf"stage{s}\.0\.branches\.(\d+)\.0\.conv1\.weight")
            channels.append(tuple(_shape(sd, f"stage{s}.0.branches.{b}.0.conv1.weight")[0] for b in branches))
            blocks.append(
                tuple(
                    len(_count(keys, rf"stage{s}\.0\.branches\.{b}\.(\d+)\.conv1\.weight")) for b in branches
                )
            )
        n_dec = len(_count(keys, r"deconv_layers\.(\d+)\.0\.0\.weight"))
        deconv_shapes = [_shape(sd, f"deconv_layers.{i}.0.0.weight") for i in range(n_dec)]
        n_basic = len(_count(keys, r"deconv_layers\.0\.(\d+)\.0\.conv1\.weight")) if n_dec else 4
        finals = [_shape(sd, f"final_layers.{i}.weight") for i in range(n_dec + 1)]
    except KeyError as e:
        raise WeightsError(f"incomplete HigherHRNet state dict: key {e.args[0]!r} is missing") from None

    num_joints = finals[-1][0]  # every released model: the last output carries heatmaps only
    with_ae, tag_dims = [], set()
    for out_ch, *_ in finals:
        extra = out_ch - num_joints
        with_ae.append(extra > 0)
        if extra > 0:
            tag_dims.add(extra)
    if len(tag_dims) > 1 or (tag_dims and tag_dims.pop() not in (1, num_joints)):
        raise WeightsError(f"cannot read joints/tags from output widths {[f[0] for f in finals]}")
    tag_per_joint = not any(f[0] - num_joints == 1 for f in finals) or num_joints == 1

    cat_output = []
    feat = channels[2][0]
    for d_in, d_out, *_ in deconv_shapes:
        cat_output.append(d_in != feat)  # wider than the features: the previous head output is concatenated
        feat = d_out
    return cls(
        name=f"w{channels[0][0]}" if channels[0] else "custom",
        stage_channels=tuple(channels),
        stage_modules=tuple(modules),
        stage_blocks=tuple(blocks),
        deconv_channels=tuple(d[1] for d in deconv_shapes),
        deconv_kernels=tuple(d[2] for d in deconv_shapes),
        deconv_basic_blocks=n_basic,
        cat_output=tuple(cat_output),
        final_conv_kernel=finals[0][-1],
        num_joints=num_joints,
        tag_per_joint=tag_per_joint,
        with_ae=tuple(with_ae),
        input_size=input_size,
    )


def describe(state_dict: Mapping[str, Any]) -> str:
    """A short human description ("a W48 HigherHRNet with 14 joints"), or why it is not one."""
    try:
        from hhrnet_rt.model import ModelSpec

        spec = ModelSpec.from_state_dict(state_dict)
    except WeightsError as e:
        return f"something other than a HigherHRNet checkpoint ({e})"
    return f"a W{spec.width} HigherHRNet checkpoint with {spec.num_joints} joints"
