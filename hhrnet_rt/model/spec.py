"""HigherHRNet as plain data: :class:`ModelSpec`, the released presets, and the spec a state dict describes.

Inferring a spec from a state dict is checkpoint forensics, not architecture: it reads widths from
``stage*.0.branches.*.0.conv1.weight``, the joint count from ``final_layers.*``, and so on, and it is also
what the weights loader uses to say what a mismatching file looks like. The network built from a spec is
:class:`~hhrnet_rt.model.higherhrnet.HigherHRNet`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hhrnet_rt.core.errors import WeightsError
from hhrnet_rt.model.remap import remap_state_dict

#: Inputs must be divisible by this: the stem halves twice and stage 4's lowest branch is 1/32 size,
#: whose nearest-upsampled copies must line up with the 1/4 branch.
SIZE_MULTIPLE = 32


def _widths(c: int) -> tuple[tuple[int, ...], ...]:
    return ((c, 2 * c), (c, 2 * c, 4 * c), (c, 2 * c, 4 * c, 8 * c))


@dataclass(frozen=True)
class ModelSpec:
    """Everything that decides HigherHRNet's shape; two equal specs build interchangeable networks.

    Attributes:
        name: a label ("w32_512", "custom", ...); not used to build anything.
        stage_channels: branch widths of stages 2, 3 and 4, highest resolution first.
        stage_modules: HighResolutionModules per stage (official: 1, 4, 3).
        stage_blocks: BasicBlocks per branch for each stage (official: 4 everywhere).
        deconv_channels: output width of each deconv (x2 upsampling) head.
        deconv_kernels: ConvTranspose2d kernel of each deconv head (2, 3 or 4).
        deconv_basic_blocks: BasicBlocks after each ConvTranspose2d.
        cat_output: per deconv, whether its input is [features, previous head output] (True) or features.
        final_conv_kernel: kernel of the 1x1 (or 3x3) output convolutions.
        num_joints: K; 17 for COCO, 14 for CrowdPose.
        tag_per_joint: one tag map per joint (True, official) or a single shared tag map.
        with_ae: per output (1/4 first), whether it carries tag maps besides the K heatmaps.
        input_size: the square input size the weights were trained at (used as a default only).
    """

    name: str = "custom"
    stage_channels: tuple[tuple[int, ...], ...] = _widths(32)
    stage_modules: tuple[int, ...] = (1, 4, 3)
    stage_blocks: tuple[tuple[int, ...], ...] = ((4, 4), (4, 4, 4), (4, 4, 4, 4))
    deconv_channels: tuple[int, ...] = (32,)
    deconv_kernels: tuple[int, ...] = (4,)
    deconv_basic_blocks: int = 4
    cat_output: tuple[bool, ...] = (True,)
    final_conv_kernel: int = 1
    num_joints: int = 17
    tag_per_joint: bool = True
    with_ae: tuple[bool, ...] = (True, False)
    input_size: int = 512

    def __post_init__(self) -> None:
        n_dec = len(self.deconv_channels)
        if not (len(self.deconv_kernels) == len(self.cat_output) == n_dec and len(self.with_ae) == n_dec + 1):
            raise ValueError(
                f"inconsistent head: {n_dec} deconv widths, {len(self.deconv_kernels)} kernels, "
                f"{len(self.cat_output)} cat_output flags, {len(self.with_ae)} with_ae flags (needs {n_dec + 1})"
            )
        if len(self.stage_channels) != 3 or len(self.stage_modules) != 3 or len(self.stage_blocks) != 3:
            raise ValueError("HigherHRNet has exactly three HR stages (2, 3, 4)")
        if self.num_joints < 1:
            raise ValueError(f"num_joints must be >= 1, got {self.num_joints}")

    @property
    def width(self) -> int:
        """Width of the highest-resolution branch (32 for W32, 48 for W48)."""
        return self.stage_channels[0][0]

    @property
    def tag_dim(self) -> int:
        """Tag maps per output that has tags: K with tag_per_joint, else 1."""
        return self.num_joints if self.tag_per_joint else 1

    def head_channels(self, i: int) -> int:
        """Channels of output ``i`` (0 = the 1/4-resolution head)."""
        return self.num_joints + (self.tag_dim if self.with_ae[i] else 0)

    def replace(self, **changes: Any) -> ModelSpec:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def preset(cls, name: str) -> ModelSpec:
        """A released configuration: "w32_512", "w32_640", "w48_640" (official) or "w48_512" (MMPose)."""
        presets = {
            "w32_512": (32, 512),
            "w32_640": (32, 640),
            "w48_640": (48, 640),
            "w48_512": (48, 512),
        }
        if name not in presets:
            raise ValueError(f"unknown model preset {name!r}; choose one of {', '.join(presets)}")
        width, size = presets[name]
        return cls(name=name, stage_channels=_widths(width), deconv_channels=(width,), input_size=size)

    @classmethod
    def from_official(
        cls,
        model_cfg: Mapping[str, Any],
        *,
        with_ae_loss: tuple[bool, ...] = (True, False),
        input_size: int = 512,
        name: str = "custom",
    ) -> ModelSpec:
        """Read an official-style ``MODEL`` config section (with its ``EXTRA``), e.g. a yaml's ``MODEL``.

        ``WITH_AE_LOSS`` lives in the official ``LOSS`` section, hence the separate argument (the
        default is every released config's value). STEM_INPLANES/STAGE1 are ignored, as officially.
        A whole config (with ``MODEL``, ``LOSS`` and ``DATASET`` sections) is accepted too; then
        ``LOSS.WITH_AE_LOSS`` and ``DATASET.INPUT_SIZE`` are read from it.
        """
        if "EXTRA" not in model_cfg and "MODEL" in model_cfg:
            whole = model_cfg
            model_cfg = whole["MODEL"]
            with_ae_loss = tuple(whole.get("LOSS", {}).get("WITH_AE_LOSS", with_ae_loss))
            input_size = int(whole.get("DATASET", {}).get("INPUT_SIZE", input_size))
        if "EXTRA" not in model_cfg:
            raise ValueError("not an official MODEL config section: it has no EXTRA (STAGE2..4, DECONV)")
        extra = model_cfg["EXTRA"]
        stages = [extra[f"STAGE{s}"] for s in (2, 3, 4)]
        for s, st in zip((2, 3, 4), stages, strict=True):
            if st.get("BLOCK", "BASIC") != "BASIC" or st.get("FUSE_METHOD", "SUM") != "SUM":
                raise ValueError(f"STAGE{s}: only BLOCK=BASIC and FUSE_METHOD=SUM exist in HigherHRNet")
        deconv = extra["DECONV"]
        n_dec = int(deconv["NUM_DECONVS"])
        return cls(
            name=name,
            stage_channels=tuple(tuple(int(c) for c in st["NUM_CHANNELS"]) for st in stages),
            stage_modules=tuple(int(st["NUM_MODULES"]) for st in stages),
            stage_blocks=tuple(tuple(int(b) for b in st["NUM_BLOCKS"]) for st in stages),
            deconv_channels=tuple(int(c) for c in deconv["NUM_CHANNELS"][:n_dec]),
            deconv_kernels=tuple(int(k) for k in deconv["KERNEL_SIZE"][:n_dec]),
            deconv_basic_blocks=int(deconv["NUM_BASIC_BLOCKS"]),
            cat_output=tuple(bool(c) for c in deconv["CAT_OUTPUT"][:n_dec]),
            final_conv_kernel=int(extra.get("FINAL_CONV_KERNEL", 1)),
            num_joints=int(model_cfg["NUM_JOINTS"]),
            tag_per_joint=bool(model_cfg.get("TAG_PER_JOINT", True)),
            with_ae=tuple(bool(a) for a in with_ae_loss[: n_dec + 1]),
            input_size=input_size,
        )

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Any], *, input_size: int = 512) -> ModelSpec:
        """Infer the architecture from tensor shapes (official, MMPose, ``1.``/``module.`` keys all work).

        Assumes what every released model has: the last output carries heatmaps only. The training input
        size cannot be seen in weights, hence ``input_size``.

        Raises:
            WeightsError: the dict does not look like a HigherHRNet state dict.
        """
        return infer_spec(cls, state_dict, input_size=input_size)


def nearest_valid_sizes(n: int) -> tuple[int, int]:
    """The multiples of :data:`SIZE_MULTIPLE` just below and above ``n`` (below is at least 32)."""
    low = max(SIZE_MULTIPLE, n // SIZE_MULTIPLE * SIZE_MULTIPLE)
    return low, -(-n // SIZE_MULTIPLE) * SIZE_MULTIPLE


def size_from_filename(name: str) -> int | None:
    """Training input size written in a checkpoint file name ("..._640.pth", "...640x640..."), if any."""
    m = re.search(r"(?<!\d)(512|640)(?!\d)", name)
    return int(m.group(1)) if m else None


def _shape(sd: Mapping[str, Any], key: str) -> tuple[int, ...]:
    return tuple(int(d) for d in sd[key].shape)


def _count(keys: list[str], pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern`` (one group) over all keys."""
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in keys if (m := rx.fullmatch(k))})


def infer_spec(cls: type, state_dict: Mapping[str, Any], *, input_size: int = 512):
    """Build ``cls(...)`` (a ModelSpec) from shapes; see ``ModelSpec.from_state_dict``."""
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


def probe_num_joints(network: Any) -> int:
    """Joint count of a network without ``.spec``: the channels of its 1/2-resolution output."""
    import torch  # only for a network built elsewhere; spec inference itself needs no torch

    with torch.inference_mode():
        outputs = network(torch.zeros(1, 3, 64, 64))
    return int(outputs[-1].shape[1])


def describe(state_dict: Mapping[str, Any]) -> str:
    """A short human description ("a W48 HigherHRNet with 14 joints"), or why it is not one."""
    try:
        spec = ModelSpec.from_state_dict(state_dict)
    except WeightsError as e:
        return f"something other than a HigherHRNet checkpoint ({e})"
    return f"a W{spec.width} HigherHRNet checkpoint with {spec.num_joints} joints"
