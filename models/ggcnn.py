"""GG-CNN (Morrison, Corke, Leitner, RSS 2018): the original 62k-parameter grasp network.

Encoder: conv 9x9/s3 (32) -> conv 5x5/s2 (16) -> conv 3x3/s2 (8); decoder: transposed convs
3x3/s2 (8) -> 5x5/s2 (16) -> 9x9/s3 (32); ReLU after each; four 2x2 conv heads (1 channel each:
quality, cos 2θ, sin 2θ, width) concatenated to ``N x 4 x H x W``. With the original paddings
(3, 2, 1; output_padding 1) a 300x300 input decodes to exactly 300x300. Module names follow the
original implementation (``conv1`` ... ``convt3``, ``pos_output`` ...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import GraspNet, check_input_channels, match_spatial_size
from .registry import register_network

__all__ = ["GGCNN"]


class ConvTranspose2dFp32OnCpu(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` that runs in fp32 under CPU autocast: oneDNN has no fast bf16
    transposed convolution here, so bf16 made GG-CNN's decoder the slowest part of the network
    (inference 37.8 against 57.5 images/s in fp32 on the AMD EPYC with AVX512-BF16; 75 with
    this layer in fp32 and the rest in bf16). Same parameters and state_dict keys; fp32 and
    CUDA unchanged."""

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float(), output_size)
        return super().forward(x, output_size)


@register_network("ggcnn")
class GGCNN(GraspNet):
    """GG-CNN. Input ``N x C x H x W`` (any ``H, W >= ~16``), output ``N x 4 x H x W``."""

    def __init__(self, input_channels: int = 1) -> None:
        super().__init__()
        self.input_channels = check_input_channels(input_channels)
        self.conv1 = nn.Conv2d(input_channels, 32, kernel_size=9, stride=3, padding=3)
        self.conv2 = nn.Conv2d(32, 16, kernel_size=5, stride=2, padding=2)
        self.conv3 = nn.Conv2d(16, 8, kernel_size=3, stride=2, padding=1)
        convt = ConvTranspose2dFp32OnCpu
        self.convt1 = convt(8, 8, kernel_size=3, stride=2, padding=1, output_padding=1)
        self.convt2 = convt(8, 16, 5, stride=2, padding=2, output_padding=1)
        self.convt3 = convt(16, 32, 9, stride=3, padding=3, output_padding=1)
        self.pos_output = nn.Conv2d(32, 1, kernel_size=2)
        self.cos_output = nn.Conv2d(32, 1, kernel_size=2)
        self.sin_output = nn.Conv2d(32, 1, kernel_size=2)
        self.width_output = nn.Conv2d(32, 1, kernel_size=2)
        # Xavier-uniform weights as in the original implementation; biases keep the default.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight, gain=1.0)

    def forward(self, x: Tensor, with_aux: bool = False) -> Tensor | tuple[Tensor, None]:
        """``N x C x H x W`` -> ``N x 4 x H x W`` (quality, cos, sin, width); no aux head."""
        self._check_input(x)
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h))
        h = F.relu(self.conv3(h))
        h = F.relu(self.convt1(h))
        h = F.relu(self.convt2(h))
        h = F.relu(self.convt3(h))
        maps = torch.cat(
            [self.pos_output(h), self.cos_output(h), self.sin_output(h), self.width_output(h)],
            dim=1,
        )
        # Only sizes like 300 decode to exactly H x W (the decoder gives 12*ceil(ceil(floor(H/3)
        # /2)/2) rows, i.e. H-2 .. H+11). Decoded pixel i stays aligned with input pixel i for
        # every size, so crop/pad at the bottom/right edge instead of resizing (see
        # match_spatial_size).
        maps = match_spatial_size(maps, (x.shape[-2], x.shape[-1]))
        return (maps, None) if with_aux else maps
