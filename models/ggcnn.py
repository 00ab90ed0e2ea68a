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

from .base import GraspNet, check_input_channels, grasp_heads, match_spatial_size
from .registry import register_network

__all__ = ["GGCNN"]


def conv_transpose_as_conv(x: Tensor, m: nn.ConvTranspose2d) -> Tensor:
    """``m(x)`` computed as ONE ordinary convolution followed by a pixel shuffle (the
    sub-pixel form of a transposed convolution, exact): output pixel ``o = i*s + k - p`` of
    phase ``(o + p) mod s`` only meets the kernel taps of that phase, so the ``s*s`` phases
    are ``s*s`` groups of output channels of a ``ceil(k/s)``-tap convolution over ``x``.
    Square kernels and strides, no dilation or groups (GG-CNN's decoder)."""
    (k, _), (s, _), (p, _) = m.kernel_size, m.stride, m.padding
    op, cin, cout = m.output_padding[0], m.in_channels, m.out_channels
    taps = -(-k // s)
    # weight[ci, co, j*s + r, ...] -> conv weight[(co, r_y, r_x), ci, taps-1-j_y, taps-1-j_x]
    w = F.pad(m.weight, (0, taps * s - k, 0, taps * s - k))
    w = w.reshape(cin, cout, taps, s, taps, s).flip(2, 4)
    w = w.permute(1, 3, 5, 0, 2, 4).reshape(cout * s * s, cin, taps, taps)
    h, wd = ((n - 1) * s - 2 * p + k + op for n in x.shape[-2:])
    # Rows/cols the output needs beyond the last tap (output_padding >= s - padding): zeros
    # plus the bias there, so the bias is added after the crop; otherwise it folds into the conv.
    short_h, short_w = (
        p + n - (i + taps - 1) * s for n, i in zip((h, wd), x.shape[-2:], strict=True)
    )
    fold = short_h <= 0 and short_w <= 0
    bias = m.bias.repeat_interleave(s * s) if fold and m.bias is not None else None
    z = F.pixel_shuffle(F.conv2d(x, w, bias, padding=taps - 1), s)
    if not fold:
        z = F.pad(z, (0, max(short_w, 0), 0, max(short_h, 0)))
    y = z[..., p : p + h, p : p + wd]
    return y if fold or m.bias is None else y + m.bias.view(1, -1, 1, 1)


class ConvTranspose2dBf16OnCpu(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` that under CPU bf16 autocast runs as an ordinary convolution
    plus a pixel shuffle (:func:`conv_transpose_as_conv`): oneDNN has no fast bf16 transposed
    convolution, and the ordinary one is fast: with it and :func:`~models.base.grasp_heads`,
    GG-CNN trains 2.3x faster in bf16 + channels_last than with this layer kept in fp32
    (``benchmarks/train_speed.py --previous-layers``). In fp32 the native layer is faster and
    is used, as on CUDA. Same parameters and state_dict keys."""

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if output_size is None and x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            return conv_transpose_as_conv(x, self)
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
        convt = ConvTranspose2dBf16OnCpu
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
        maps = grasp_heads(
            h, (self.pos_output, self.cos_output, self.sin_output, self.width_output)
        )
        # Only sizes like 300 decode to exactly H x W (the decoder gives 12*ceil(ceil(floor(H/3)
        # /2)/2) rows, i.e. H-2 .. H+11). Decoded pixel i stays aligned with input pixel i for
        # every size, so crop/pad at the bottom/right edge instead of resizing (see
        # match_spatial_size).
        maps = match_spatial_size(maps, (x.shape[-2], x.shape[-1]))
        return (maps, None) if with_aux else maps
