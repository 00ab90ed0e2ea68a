"""GG-CNN2 (Morrison, Corke, Leitner, IJRR 2019): the 66k-parameter dilated grasp network.

``features``: conv 11x11 (16) -> conv 5x5 (16) -> maxpool 2 -> conv 5x5 (16) x2 -> maxpool 2 ->
conv 5x5 dilation 2 (32) -> conv 5x5 dilation 4 (32) -> upsample x2 -> conv 3x3 (16) ->
upsample x2 -> conv 3x3 (16), ReLU after every conv, 'same' paddings; four 1x1 heads (quality,
cos 2θ, sin 2θ, width). The second layer is 5x5 as in the authors' released code and the 66k
count of the paper (a second 11x11 layer would give ~91k). Module names/indices follow the
released code (``features.N``, ``pos_output`` ...).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import GraspNet, check_input_channels, grasp_heads, match_spatial_size
from .registry import register_network

__all__ = ["GGCNN2"]


class _Upsample2x(nn.Module):
    """Bilinear x2 upsampling with ``align_corners=False``.

    The released code uses ``UpsamplingBilinear2d`` (align_corners=True); align_corners=False
    is the exact inverse of the 2x2/s2 max pools' pixel grid (coarse pixel j sits at fine
    2j+0.5 in both), so decoded pixel i stays aligned with input pixel i at every size.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def _same_conv(c_in: int, c_out: int, k: int, dilation: int = 1) -> nn.Conv2d:
    """Stride-1 conv with 'same' padding for odd ``k``."""
    return nn.Conv2d(c_in, c_out, k, padding=dilation * (k - 1) // 2, dilation=dilation)


@register_network("ggcnn2")
class GGCNN2(GraspNet):
    """GG-CNN2. Input ``N x C x H x W`` (any ``H, W >= 4``), output ``N x 4 x H x W``."""

    def __init__(self, input_channels: int = 1) -> None:
        super().__init__()
        self.input_channels = check_input_channels(input_channels)
        self.features = nn.Sequential(
            _same_conv(input_channels, 16, 11),
            nn.ReLU(inplace=True),
            _same_conv(16, 16, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            _same_conv(16, 16, 5),
            nn.ReLU(inplace=True),
            _same_conv(16, 16, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            _same_conv(16, 32, 5, dilation=2),
            nn.ReLU(inplace=True),
            _same_conv(32, 32, 5, dilation=4),
            nn.ReLU(inplace=True),
            _Upsample2x(),
            _same_conv(32, 16, 3),
            nn.ReLU(inplace=True),
            _Upsample2x(),
            _same_conv(16, 16, 3),
            nn.ReLU(inplace=True),
        )
        self.pos_output = nn.Conv2d(16, 1, kernel_size=1)
        self.cos_output = nn.Conv2d(16, 1, kernel_size=1)
        self.sin_output = nn.Conv2d(16, 1, kernel_size=1)
        self.width_output = nn.Conv2d(16, 1, kernel_size=1)
        # Xavier-uniform weights as in the released code; biases keep the default.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight, gain=1.0)

    def forward(self, x: Tensor, with_aux: bool = False) -> Tensor | tuple[Tensor, None]:
        """``N x C x H x W`` -> ``N x 4 x H x W`` (quality, cos, sin, width); no aux head."""
        self._check_input(x)
        h = self.features(x)
        maps = grasp_heads(
            h, (self.pos_output, self.cos_output, self.sin_output, self.width_output)
        )
        # The two floor-ing max pools decode 4*floor(H/4) rows (0-3 short for H % 4 != 0);
        # pad the missing bottom/right pixels rather than stretching (see match_spatial_size).
        maps = match_spatial_size(maps, (x.shape[-2], x.shape[-1]))
        return (maps, None) if with_aux else maps
