"""The network built from a :class:`~hhrnet_rt.model.spec.ModelSpec`: :class:`HigherHRNet`.

The module layout, attribute names and registration order reproduce the official
``PoseHigherResolutionNet`` so ``state_dict()`` keys, order and shapes equal the released checkpoints'.
The blocks live in :mod:`hhrnet_rt.model.blocks`; this file holds only the top-level wiring.

Shapes: ``N`` batch, ``K`` joints, ``H, W`` input size (multiples of 32).

Example:
    >>> net = HigherHRNet(ModelSpec.preset("w32_512")).eval()
    >>> out4, out2 = net(torch.zeros(1, 3, 512, 512))   # (1, 34, 128, 128), (1, 17, 256, 256)
"""

from __future__ import annotations

import torch
from torch import nn

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.model.blocks import BN_MOMENTUM, conv3x3, make_deconv, make_layer1, make_stage, make_transition
from hhrnet_rt.model.spec import SIZE_MULTIPLE, ModelSpec, nearest_valid_sizes


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
