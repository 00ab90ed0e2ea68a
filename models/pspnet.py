"""PSPNet for grasp maps: dilated ResNet backbone + pyramid pooling + dense grasp head.

Pipeline (input ``N x C x H x W``, any ``H, W``):

1. ``conv0``: 1x1 conv ``C -> 3`` so any input (depth, RGB, RGB-D) feeds the 3-channel
   ResNet stem; initialised deterministically (see :func:`_init_input_adapter`).
2. ``backbone``: :class:`models.resnet.ResNet` without ``fc``, strides replaced by dilation for
   the requested output stride (8: layer3+layer4 dilated, 16: layer4, 32: none).
3. ``pool``: ``"ppm"`` -- classic pyramid pooling (Zhao et al. CVPR 2017), bins 1, 2, 3, 6;
   ``"lgp"`` -- the grasping pyramid of LGPNet: one average-pool branch at bin 6 plus one
   max-pool + 3x3 conv branch. Branch outputs are upsampled to the feature size and
   concatenated with the features.
4. ``head``: 3x3 conv (256 channels for ResNet-18/34, 512 for ResNet-50/101), norm, ReLU,
   dropout; ``out_conv``: 1x1 conv to the 4 maps (quality, cos 2θ, sin 2θ, width), bilinearly
   upsampled (align_corners=False) to the input ``H x W``.
5. ``aux_head`` (only when ``aux_weight > 0``): same kind of head on layer3, 256 channels;
   computed only by ``forward(x, with_aux=True)`` / ``forward_train``.

Normalisation in the new (non-backbone) layers is GroupNorm: it does not depend on the batch,
so training works with batch size 1 (the classic PSPNet's BatchNorm on the 1x1 pooled branch
sees a single value per channel there and raises). The backbone keeps torchvision's BatchNorm
so ImageNet weights load unchanged; with batch size 1 its layer4 map must have more than one
pixel in training (e.g. H, W >= 64 at output stride 32, >= 16 at output stride 8).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import GraspNet, check_input_channels
from .registry import register_network
from .resnet import RESNET_BUILDERS, load_torchvision_state_dict

__all__ = ["GraspPyramidPooling", "PSPNet", "PyramidPooling"]

_DILATION_FOR_STRIDE = {8: [False, True, True], 16: [False, False, True], 32: [False] * 3}


def _group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups (the largest divisor of ``channels`` not above 32)."""
    groups = math.gcd(32, channels)
    return nn.GroupNorm(groups, channels)


def _conv_norm_relu(c_in: int, c_out: int, k: int) -> list[nn.Module]:
    # No conv bias: the GroupNorm's shift replaces it.
    return [
        nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False),
        _group_norm(c_out),
        nn.ReLU(inplace=True),
    ]


def _upsample(x: Tensor, size: Sequence[int]) -> Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class PyramidPooling(nn.Module):
    """Classic PSP pyramid pooling: ``N x C x h x w`` -> ``N x (C + len(bins)*C/4) x h x w``.

    Each branch: adaptive average pool to ``bin x bin`` -> 1x1 conv to ``C/4`` -> GroupNorm ->
    ReLU -> bilinear upsample to ``h x w``. GroupNorm instead of BatchNorm because the bin-1
    branch has a single value per channel and sample (BatchNorm fails at batch size 1 there).
    """

    def __init__(self, in_channels: int, bins: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        branch_channels = in_channels // 4
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b), *_conv_norm_relu(in_channels, branch_channels, 1)
            )
            for b in bins
        )
        self.out_channels = in_channels + len(bins) * branch_channels

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        return torch.cat([x, *(_upsample(branch(x), size) for branch in self.branches)], dim=1)


class GraspPyramidPooling(nn.Module):
    """LGPNet-style grasping pyramid: ``N x C x h x w`` -> ``N x (C + 2*C/4) x h x w``.

    Branch 1: adaptive average pool to 6x6 -> 1x1 conv -> GroupNorm -> ReLU (global context);
    branch 2: 3x3/s2 max pool -> 3x3 conv -> GroupNorm -> ReLU (local peaks, which suit the
    peaky grasp-quality maps). Both to ``C/4`` channels, upsampled to ``h x w`` and
    concatenated with the features.
    """

    def __init__(self, in_channels: int, avg_bin: int = 6) -> None:
        super().__init__()
        branch_channels = in_channels // 4
        self.avg_branch = nn.Sequential(
            nn.AdaptiveAvgPool2d(avg_bin), *_conv_norm_relu(in_channels, branch_channels, 1)
        )
        self.max_branch = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            *_conv_norm_relu(in_channels, branch_channels, 3),
        )
        self.out_channels = in_channels + 2 * branch_channels

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        return torch.cat(
            [x, _upsample(self.avg_branch(x), size), _upsample(self.max_branch(x), size)], dim=1
        )


def _init_input_adapter(conv: nn.Conv2d) -> None:
    """Deterministic init of the ``C -> 3`` 1x1 input conv (bias 0).

    * C=1 (depth): weight 1 to all three channels (the depth image fed as grey RGB);
    * C=3 (RGB): identity;
    * C=4 (depth, R, G, B): identity on RGB, 0 on depth (starts as the RGB network; the depth
      weights still receive gradients and are learnt);
    * other C: every output channel is the mean of the inputs (weights 1/C).
    """
    c_in = conv.in_channels
    with torch.no_grad():
        conv.bias.zero_()
        w = torch.zeros(3, c_in)
        if c_in == 1:
            w[:, 0] = 1.0
        elif c_in == 3:
            w = torch.eye(3)
        elif c_in == 4:
            w[:, 1:] = torch.eye(3)
        else:
            w.fill_(1.0 / c_in)
        conv.weight.copy_(w.reshape(3, c_in, 1, 1))


@register_network("pspnet", init_only=("pretrained_backbone",))
class PSPNet(GraspNet):
    """PSPNet grasp network (see the module docstring).

    Args:
        input_channels: C of the input (1 depth, 3 RGB, 4 depth+RGB).
        backbone: ``"resnet18"``, ``"resnet34"``, ``"resnet50"`` or ``"resnet101"``.
        output_stride: 8, 16 or 32, the stride of the backbone's last features.
        pooling: ``"ppm"`` (classic pyramid pooling) or ``"lgp"`` (grasping pyramid).
        aux_weight: weight of the auxiliary layer3 head's loss; 0 builds no auxiliary head.
        pretrained_backbone: path of a local torchvision-format ResNet ``.pth`` state_dict
            loaded into the backbone (its ``fc.*`` keys are ignored, anything else missing or
            unexpected is a ValueError naming the file and keys). Never downloads.
        dropout: Dropout2d probability before the final 1x1 convs.
    """

    def __init__(
        self,
        input_channels: int = 1,
        backbone: str = "resnet18",
        output_stride: int = 16,
        pooling: str = "ppm",
        aux_weight: float = 0.4,
        pretrained_backbone: str | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.input_channels = check_input_channels(input_channels)
        if backbone not in RESNET_BUILDERS:
            raise ValueError(f"backbone must be one of {sorted(RESNET_BUILDERS)}, got {backbone!r}")
        if output_stride not in _DILATION_FOR_STRIDE:
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
        if pooling not in ("ppm", "lgp"):
            raise ValueError(f"pooling must be 'ppm' or 'lgp', got {pooling!r}")
        if not aux_weight >= 0:
            raise ValueError(f"aux_weight must be >= 0, got {aux_weight!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.aux_weight = float(aux_weight)

        self.conv0 = nn.Conv2d(input_channels, 3, kernel_size=1)
        _init_input_adapter(self.conv0)

        # num_classes=None: no fc module at all (an unused registered parameter would break
        # DistributedDataParallel without find_unused_parameters).
        self.backbone = RESNET_BUILDERS[backbone](
            num_classes=None, replace_stride_with_dilation=_DILATION_FOR_STRIDE[output_stride]
        )
        if pretrained_backbone is not None:
            path = os.fspath(pretrained_backbone)
            if not os.path.isfile(path):
                raise ValueError(f"pretrained_backbone file not found: {path}")
            load_torchvision_state_dict(self.backbone, path, ignore_fc=True)

        c4 = self.backbone.feature_channels["layer4"]
        c3 = self.backbone.feature_channels["layer3"]
        self.pool = PyramidPooling(c4) if pooling == "ppm" else GraspPyramidPooling(c4)
        # 256 head channels for the 512-channel BasicBlock backbones keeps the head (~2.4M
        # parameters) in proportion to ResNet-18; 512 (the PSPNet paper's) for Bottleneck.
        mid = 256 if c4 <= 512 else 512
        self.head = nn.Sequential(
            *_conv_norm_relu(self.pool.out_channels, mid, 3), nn.Dropout2d(dropout)
        )
        self.out_conv = nn.Conv2d(mid, 4, kernel_size=1)
        self.aux_head: nn.Sequential | None = None
        if self.aux_weight > 0:
            self.aux_head = nn.Sequential(
                *_conv_norm_relu(c3, 256, 3), nn.Dropout2d(dropout), nn.Conv2d(256, 4, 1)
            )

        new_modules = [self.pool, self.head, self.out_conv]
        if self.aux_head is not None:
            new_modules.append(self.aux_head)
        for module in new_modules:
            for m in module.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.GroupNorm):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
        # Small final layers: the maps start near 0 instead of with a large random scale.
        for conv in [self.out_conv] + ([self.aux_head[-1]] if self.aux_head is not None else []):
            nn.init.normal_(conv.weight, std=0.01)

    def forward(self, x: Tensor, with_aux: bool = False) -> Tensor | tuple[Tensor, Tensor | None]:
        """``N x C x H x W`` -> ``N x 4 x H x W`` maps (quality, cos 2θ, sin 2θ, width).

        With ``with_aux=True`` returns ``(maps, aux_maps)``; ``aux_maps`` (``N x 4 x H x W``,
        from layer3) is ``None`` when the network has no auxiliary head.
        """
        self._check_input(x)
        size = x.shape[-2:]
        feats = self.backbone.forward_features(self.conv0(x))
        maps = _upsample(self.out_conv(self.head(self.pool(feats["layer4"]))), size)
        if not with_aux:
            return maps
        aux = None if self.aux_head is None else _upsample(self.aux_head(feats["layer3"]), size)
        return maps, aux
