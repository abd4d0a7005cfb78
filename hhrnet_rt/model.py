"""HigherHRNet as plain data (:class:`ModelSpec`) plus the network built from it (:class:`HigherHRNet`).

The module layout, attribute names and registration order reproduce the official
``PoseHigherResolutionNet`` so ``state_dict()`` keys, order and shapes equal the released checkpoints'.
The blocks live in :mod:`hhrnet_rt.model_blocks`; this file holds only the spec and the top-level wiring.

Shapes: ``N`` batch, ``K`` joints, ``H, W`` input size (multiples of 32).

Example:
    >>> net = HigherHRNet(ModelSpec.preset("w32_512")).eval()
    >>> out4, out2 = net(torch.zeros(1, 3, 512, 512))   # (1, 34, 128, 128), (1, 17, 256, 256)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hhrnet_rt.errors import InputError
from hhrnet_rt.model_blocks import BN_MOMENTUM, conv3x3, make_deconv, make_layer1, make_stage, make_transition

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
        from hhrnet_rt.model_infer import infer_spec

        return infer_spec(cls, state_dict, input_size=input_size)


def nearest_valid_sizes(n: int) -> tuple[int, int]:
    """The multiples of :data:`SIZE_MULTIPLE` just below and above ``n`` (below is at least 32)."""
    low = max(SIZE_MULTIPLE, n // SIZE_MULTIPLE * SIZE_MULTIPLE)
    return low, -(-n // SIZE_MULTIPLE) * SIZE_MULTIPLE


def _check_input_size(x: torch.Tensor) -> None:
    """Raise InputError for a concrete H or W that is not a multiple of 32 (skipped while tracing)."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export():
        return  # symbolic shapes: a Python check here would bake in or break the dynamic axes
    h, w = x.shape[-2], x.shape[-1]
    if not (isinstance(h, int) and isinstance(w, int)):
        return
    bad = [(axis, n) for axis, n in (("height", h), ("width", w)) if n % SIZE_MULTIPLE]
    if bad:
        hints = "; ".join(f"{axis} {n} -> {' or '.join(map(str, nearest_valid_sizes(n)))}" for axis, n in bad)
        raise InputError(
            f"HigherHRNet needs input height and width that are multiples of {SIZE_MULTIPLE}, got {h}x{w} "
            f"(HxW). Nearest valid sizes: {hints}. Pad or resize the image (the official preprocessing "
            "pads to multiples of 64)."
        )


class HigherHRNet(nn.Module):
    """The official PoseHigherResolutionNet, built from a :class:`ModelSpec`.

    ``forward(x)`` takes ``x (N, 3, H, W)`` normalised RGB and returns the official list of outputs as a
    tuple: ``(N, K + tags, H/4, W/4)`` (heatmaps first, then tags) and ``(N, K, H/2, W/2)``.
    """

    def __init__(self, spec: ModelSpec | None = None) -> None:
        super().__init__()
        spec = spec or ModelSpec.preset("w32_512")
        self.spec = spec
        s2, s3, s4 = spec.stage_channels
        # Registration order below is the official one: it fixes the state_dict key order.
        self.conv1 = conv3x3(3, 64, 2)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3(64, 64, 2)
        self.bn2 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_layer1()
        self.transition1 = make_transition((256,), s2)
        self.stage2 = make_stage(s2, spec.stage_blocks[0], spec.stage_modules[0], True)
        self.transition2 = make_transition(s2, s3)
        self.stage3 = make_stage(s3, spec.stage_blocks[1], spec.stage_modules[1], True)
        self.transition3 = make_transition(s3, s4)
        self.stage4 = make_stage(s4, spec.stage_blocks[2], spec.stage_modules[2], False)

        k = spec.final_conv_kernel
        pad = 1 if k == 3 else 0
        in_ch = s4[0]
        finals = [nn.Conv2d(in_ch, spec.head_channels(0), k, padding=pad)]
        deconvs = []
        for i, out_ch in enumerate(spec.deconv_channels):
            cat_ch = spec.head_channels(i) if spec.cat_output[i] else 0
            deconvs.append(
                make_deconv(in_ch + cat_ch, out_ch, spec.deconv_kernels[i], spec.deconv_basic_blocks)
            )
            finals.append(nn.Conv2d(out_ch, spec.head_channels(i + 1), k, padding=pad))
            in_ch = out_ch
        self.final_layers = nn.ModuleList(finals)
        self.deconv_layers = nn.ModuleList(deconvs)

    @staticmethod
    def _transition(layers: nn.ModuleList, ys: list[torch.Tensor]) -> list[torch.Tensor]:
        # Official quirk kept on purpose: any non-None transition reads the *last* (lowest-resolution)
        # output; in all released configs only new branches have one, so this is also correct.
        return [ys[i] if t is None else t(ys[-1]) for i, t in enumerate(layers)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        _check_input_size(x)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        ys = self.stage2(self._transition(self.transition1, [x]))
        ys = self.stage3(self._transition(self.transition2, ys))
        ys = self.stage4(self._transition(self.transition3, ys))

        x = ys[0]
        y = self.final_layers[0](x)
        outputs = [y]
        for i, deconv in enumerate(self.deconv_layers):
            if self.spec.cat_output[i]:
                x = torch.cat((x, y), 1)  # features first, then the head output (official order)
            x = deconv(x)
            y = self.final_layers[i + 1](x)
            outputs.append(y)
        return tuple(outputs)


def size_from_filename(name: str) -> int | None:
    """Training input size written in a checkpoint file name ("..._640.pth", "...640x640..."), if any."""
    m = re.search(r"(?<!\d)(512|640)(?!\d)", name)
    return int(m.group(1)) if m else None
