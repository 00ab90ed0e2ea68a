"""ResNet-18/34/50/101 with ``state_dict`` keys and shapes identical to torchvision's.

torchvision is not importable in this environment, so the backbones live here. Module names,
layer shapes and initialisation follow torchvision (He et al. 2016, "v1.5": the stride of a
Bottleneck sits in its 3x3 conv; zero-init-residual off; convs kaiming-normal fan_out), so
torchvision ``.pth`` ImageNet weight files load unchanged (see
:func:`load_torchvision_state_dict`).

Differences from torchvision (none affect the keys):

* ``replace_stride_with_dilation`` also works for :class:`BasicBlock` (torchvision refuses):
  a dilated BasicBlock uses dilation ``d`` and padding ``d`` in both 3x3 convs, and, as
  torchvision does for Bottleneck, the first block of a dilated layer keeps the previous
  dilation.
* ``num_classes=None`` builds no ``fc`` (for dense prediction; nothing unused is registered).
* :meth:`ResNet.forward_features` returns the ``layer1`` .. ``layer4`` maps for dense heads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "RESNET_BUILDERS",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "load_torchvision_state_dict",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
]


def _conv3x3(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 conv, padding = dilation (keeps the size at stride 1), no bias (a BN follows)."""
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def _conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs + identity/projection shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries stride and dilation), 1x1 expand x4 (ResNet-50/101)."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision-compatible ResNet.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: number of blocks in ``layer1`` .. ``layer4``.
        num_classes: size of ``fc``; ``None`` builds no ``fc`` (feature extractor).
        replace_stride_with_dilation: three bools for ``layer2``, ``layer3``, ``layer4``: replace
            that layer's stride 2 by dilation (output stride 32 -> 16 -> 8).

    Input ``N x 3 x H x W`` (ImageNet-normalised RGB for pretrained weights).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        num_classes: int | None = 1000,
        replace_stride_with_dilation: Sequence[bool] | None = None,
    ) -> None:
        super().__init__()
        if replace_stride_with_dilation is None:
            replace_stride_with_dilation = [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError(
                "replace_stride_with_dilation must have 3 entries (layer2, layer3, layer4), "
                f"got {replace_stride_with_dilation!r}"
            )
        if len(layers) != 4:
            raise ValueError(f"layers must have 4 entries, got {layers!r}")
        self.inplanes = 64
        self.dilation = 1
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2, replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], 2, replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], 2, replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))  # no parameters, no state_dict keys
        self.fc = nn.Linear(512 * block.expansion, num_classes) if num_classes else None
        #: Channels of the ``forward_features`` maps.
        self.feature_channels = {
            f"layer{i + 1}": c * block.expansion for i, c in enumerate((64, 128, 256, 512))
        }
        #: Total stride of layer4 (32, 16 or 8).
        self.output_stride = 32 // 2 ** sum(bool(d) for d in replace_stride_with_dilation)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        planes: int,
        blocks: int,
        stride: int = 1,
        dilate: bool = False,
    ) -> nn.Sequential:
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        # The first block keeps the previous dilation (it would have carried the stride).
        layers = [block(self.inplanes, planes, stride, downsample, previous_dilation)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, dilation=self.dilation))
        return nn.Sequential(*layers)

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        """Dense features: ``{"layer1": N x C1 x H/4 x W/4, ..., "layer4": N x C4 x H/s x W/s}``.

        ``s`` is :attr:`output_stride`; layer3 is at ``H/8`` (output stride 8) or ``H/16``.
        Sizes are ceil-rounded by the strided convs (e.g. 97 -> 49 -> 25 ...).
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return {"layer1": f1, "layer2": f2, "layer3": f3, "layer4": f4}

    def forward(self, x: Tensor) -> Tensor:
        """``N x 3 x H x W`` -> logits ``N x num_classes`` (pooled ``N x C4`` when no ``fc``)."""
        pooled = torch.flatten(self.avgpool(self.forward_features(x)["layer4"]), 1)
        return pooled if self.fc is None else self.fc(pooled)


def resnet18(
    num_classes: int | None = 1000, replace_stride_with_dilation: Sequence[bool] | None = None
) -> ResNet:
    """ResNet-18 (BasicBlock, [2, 2, 2, 2]); 11,689,512 parameters with the 1000-class fc."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, replace_stride_with_dilation)


def resnet34(
    num_classes: int | None = 1000, replace_stride_with_dilation: Sequence[bool] | None = None
) -> ResNet:
    """ResNet-34 (BasicBlock, [3, 4, 6, 3]); 21,797,672 parameters with the 1000-class fc."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, replace_stride_with_dilation)


def resnet50(
    num_classes: int | None = 1000, replace_stride_with_dilation: Sequence[bool] | None = None
) -> ResNet:
    """ResNet-50 (Bottleneck, [3, 4, 6, 3]); 25,557,032 parameters with the 1000-class fc."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, replace_stride_with_dilation)


def resnet101(
    num_classes: int | None = 1000, replace_stride_with_dilation: Sequence[bool] | None = None
) -> ResNet:
    """ResNet-101 (Bottleneck, [3, 4, 23, 3]); 44,549,160 parameters with the 1000-class fc."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, replace_stride_with_dilation)


RESNET_BUILDERS = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
}

# Longest key list spelled out in an error message (the rest is counted).
_MAX_KEYS_IN_MESSAGE = 40


def _fmt_keys(keys: Sequence[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_MAX_KEYS_IN_MESSAGE])
    more = len(keys) - _MAX_KEYS_IN_MESSAGE
    return f"[{shown}{f', ... (+{more} more)' if more > 0 else ''}]"


def _load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``torch.load`` a state_dict file (CPU, weights only); one-line ValueError on failure."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"weight file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any load failure -> one clear line
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"could not load weight file {path}: {msg}") from err
    if not isinstance(state, Mapping):
        raise ValueError(
            f"weight file {path} holds a {type(state).__name__}, expected a state_dict mapping"
        )
    return dict(state)


def load_torchvision_state_dict(
    model: ResNet,
    path_or_state_dict: str | os.PathLike[str] | Mapping[str, Tensor],
    ignore_fc: bool = True,
) -> list[str]:
    """Load a torchvision-format ResNet state_dict into ``model`` with strict key checking.

    Args:
        model: a :class:`ResNet` (with or without ``fc``).
        path_or_state_dict: a ``.pth`` file (loaded with ``torch.load(..., map_location="cpu",
            weights_only=True)``; nothing is downloaded) or an in-memory state_dict.
        ignore_fc: ignore ``fc.*`` keys on both sides (not loaded, not required). With
            ``False`` they must match like every other key.

    Every other key must match exactly; any missing or unexpected key or shape mismatch raises
    a one-line ``ValueError`` listing the keys (and the file). The one tolerated difference:
    missing ``*.num_batches_tracked`` entries (torchvision's legacy pre-1.0 ``.pth`` files
    lack them) are set to 0, as PyTorch's own BatchNorm loading does for such files.

    Returns:
        The sorted list of ``fc.*`` keys that were present in the source and ignored.
    """
    if isinstance(path_or_state_dict, Mapping):
        source = "state_dict"
        state = dict(path_or_state_dict)
    else:
        source = f"file {os.fspath(path_or_state_dict)}"
        state = _load_state_dict_file(path_or_state_dict)

    def is_fc(key: str) -> bool:
        return ignore_fc and key.startswith("fc.")

    ignored = sorted(k for k in state if is_fc(k))
    state = {k: v for k, v in state.items() if not is_fc(k)}
    own = {k: v for k, v in model.state_dict().items() if not is_fc(k)}

    missing = [k for k in own if k not in state]
    legacy = [k for k in missing if k.endswith(".num_batches_tracked")]
    for key in legacy:
        state[key] = torch.zeros_like(own[key])
    missing = [k for k in missing if k not in legacy]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_fmt_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_fmt_keys(unexpected)}")
        raise ValueError(f"ResNet weights from {source} do not match the model: {'; '.join(parts)}")
    not_tensors = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise ValueError(
            f"ResNet weights from {source}: non-tensor values {_fmt_keys(not_tensors)}"
        )
    mismatched = [
        f"{k}: {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if state[k].shape != v.shape
    ]
    if mismatched:
        raise ValueError(f"ResNet weights from {source} have wrong shapes: {_fmt_keys(mismatched)}")
    # Keys were checked above; strict=False only lets a model that has an fc keep its own
    # (ignored) fc weights.
    model.load_state_dict(state, strict=False)
    return ignored
