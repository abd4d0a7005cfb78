"""Building blocks of HigherHRNet: residual blocks, the multi-resolution module, transitions, head.

Kept apart from :mod:`hhrnet_rt.model` so that file holds only the plain-data :class:`ModelSpec` and the
top-level wiring; everything here is generic HRNet machinery that takes channel counts, not specs.

Attribute names and registration order follow the official ``lib/models/pose_higher_hrnet.py`` exactly,
because ``state_dict()`` keys (and their order) are derived from them and must equal the released
checkpoints' keys. Shape glossary: ``C`` channels, ``H, W`` feature-map size at that branch.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

BN_MOMENTUM = 0.1  # only matters for training; eval() uses the stored running statistics


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (every conv in the backbone is followed by BN)."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + identity, ReLU. Never needs a downsample in HigherHRNet."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int) -> None:
        super().__init__()
        if in_ch != planes:
            # The official network never builds this case; refusing keeps the key list exact.
            raise ValueError(f"BasicBlock needs in_ch == planes, got {in_ch} and {planes}")
        self.conv1 = conv3x3(in_ch, planes)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class Bottleneck(nn.Module):
    """1x1-3x3-1x1 residual block with expansion 4; the stem's ``layer1`` is four of these."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = nn.Conv2d(in_ch, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, out_ch, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, kernel_size=1, bias=False),
                nn.BatchNorm2d(out_ch, momentum=BN_MOMENTUM),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


def make_layer1(num_blocks: int = 4) -> nn.Sequential:
    """The hard-coded stem stage: Bottlenecks 64 -> 256 channels (official STAGE1 config is ignored)."""
    blocks = [Bottleneck(64, 64)] + [Bottleneck(256, 64) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


def _fuse_layer(channels: tuple[int, ...], i: int, j: int) -> nn.Module | None:
    """The path that brings branch ``j`` to branch ``i``'s resolution and width (None when i == j)."""
    if j == i:
        return None
    if j > i:
        # Lower resolution -> higher: 1x1 conv then nearest upsampling by a power of two.
        return nn.Sequential(
            nn.Conv2d(channels[j], channels[i], kernel_size=1, bias=False),
            nn.BatchNorm2d(channels[i]),
            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
        )
    # Higher resolution -> lower: (i - j) stride-2 convs; only the intermediate ones have a ReLU.
    steps: list[nn.Module] = []
    for k in range(i - j):
        if k == i - j - 1:
            steps.append(nn.Sequential(conv3x3(channels[j], channels[i], 2), nn.BatchNorm2d(channels[i])))
        else:
            steps.append(
                nn.Sequential(
                    conv3x3(channels[j], channels[j], 2), nn.BatchNorm2d(channels[j]), nn.ReLU(inplace=True)
                )
            )
    return nn.Sequential(*steps)


class HighResolutionModule(nn.Module):
    """Parallel BasicBlock branches followed by an all-to-all sum fusion (FUSE_METHOD = SUM).

    Args:
        channels: width of each branch, highest resolution first.
        num_blocks: BasicBlocks per branch.
        multi_scale_output: False for the network's last module, which keeps only the 1/4 branch.
    """

    def __init__(
        self, channels: tuple[int, ...], num_blocks: tuple[int, ...], multi_scale_output: bool
    ) -> None:
        super().__init__()
        if len(channels) != len(num_blocks):
            raise ValueError(f"{len(channels)} branch widths but {len(num_blocks)} block counts")
        self.num_branches = len(channels)
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c, c) for _ in range(n)])
            for c, n in zip(channels, num_blocks, strict=True)
        )
        self.fuse_layers: nn.ModuleList | None = None
        if self.num_branches > 1:
            outputs = self.num_branches if multi_scale_output else 1
            # The diagonal entries are None, as in the official network (no state_dict keys); ModuleList
            # stores None although torch's annotation asks for modules only.
            self.fuse_layers = nn.ModuleList(
                nn.ModuleList(_fuse_layer(channels, i, j) for j in range(self.num_branches))  # type: ignore[misc]
                for i in range(outputs)
            )
        self.relu = nn.ReLU(inplace=False)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        if self.fuse_layers is None:
            return xs
        fused = []
        for i, fuse_row in enumerate(self.fuse_layers):
            row = cast(nn.ModuleList, fuse_row)  # each row is the ModuleList built in __init__
            # Sum starts from branch 0 and runs in branch order, as the official code does (float order).
            y = xs[0] if i == 0 else row[0](xs[0])
            for j in range(1, self.num_branches):
                y = y + (xs[j] if i == j else row[j](xs[j]))
            fused.append(self.relu(y))
        return fused


def make_transition(prev: tuple[int, ...], cur: tuple[int, ...]) -> nn.ModuleList:
    """Adapters between stages: width changes on existing branches, stride-2 convs for new ones.

    Entries that do nothing are ``None`` (no state_dict keys), as in the official network.
    """
    layers: list[nn.Module | None] = []
    for i, c in enumerate(cur):
        if i < len(prev):
            if c != prev[i]:
                layers.append(nn.Sequential(conv3x3(prev[i], c), nn.BatchNorm2d(c), nn.ReLU(inplace=True)))
            else:
                layers.append(None)
            continue
        steps = []
        for k in range(i + 1 - len(prev)):
            out_c = c if k == i - len(prev) else prev[-1]
            steps.append(
                nn.Sequential(conv3x3(prev[-1], out_c, 2), nn.BatchNorm2d(out_c), nn.ReLU(inplace=True))
            )
        layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)  # type: ignore[arg-type]  # None entries: see the docstring


def make_stage(
    channels: tuple[int, ...], num_blocks: tuple[int, ...], num_modules: int, multi_scale_output: bool
) -> nn.Sequential:
    """``num_modules`` HighResolutionModules; only the last may drop the low-resolution outputs."""
    return nn.Sequential(
        *[
            HighResolutionModule(channels, num_blocks, multi_scale_output or m < num_modules - 1)
            for m in range(num_modules)
        ]
    )


def deconv_padding(kernel: int) -> tuple[int, int]:
    """(padding, output_padding) of a stride-2 ConvTranspose2d that exactly doubles H and W."""
    table = {4: (1, 0), 3: (1, 1), 2: (0, 0)}
    if kernel not in table:
        raise ValueError(f"deconv kernel size must be 2, 3 or 4, got {kernel}")
    return table[kernel]


def make_deconv(in_ch: int, out_ch: int, kernel: int, num_basic_blocks: int) -> nn.Sequential:
    """ConvTranspose2d(x2)-BN-ReLU then BasicBlocks, each block in its own Sequential (official keys)."""
    padding, output_padding = deconv_padding(kernel)
    layers: list[nn.Module] = [
        nn.Sequential(
            nn.ConvTranspose2d(
                in_ch, out_ch, kernel, stride=2, padding=padding, output_padding=output_padding, bias=False
            ),
            nn.BatchNorm2d(out_ch, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
        )
    ]
    layers += [nn.Sequential(BasicBlock(out_ch, out_ch)) for _ in range(num_basic_blocks)]
    return nn.Sequential(*layers)
