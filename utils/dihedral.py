"""The 8 dihedral views of an image (quarter turns and mirror images) and the matching change of
grasp maps: test-time augmentation now, MixMatch's label guessing over views later.

View ``k`` in 0..7 turns the image ``k % 4`` quarter turns counter-clockwise on screen (as
``np.rot90``), then, for ``k >= 4``, mirrors it left-right (columns reversed). Only the last
two dimensions move, so the functions take ``... x H x W`` tensors (``N x C x H x W`` images,
``N x 4 x H x W`` maps); quarter turns of a non-square image swap H and W.

A grasp angle ``a`` (radians, counter-clockwise on screen, see :mod:`utils.grasp`) becomes
``a + k pi/2`` under the turns and then ``-a`` under the mirror, so in the maps (quality,
cos 2a, sin 2a, width) a quarter turn negates cos 2a and sin 2a and the mirror negates sin 2a;
quality and width only move with the pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "DIHEDRAL_VIEWS", "TTA_VIEWS", "DihedralTTA", "transform_image", "transform_maps", "view_mean",
]  # fmt: skip

#: Number of views in the dihedral group of the square.
DIHEDRAL_VIEWS = 8
#: ``--tta`` choices: the views each averages over.
TTA_VIEWS: dict[str, tuple[int, ...]] = {"none": (0,), "rot4": (0, 1, 2, 3), "d8": tuple(range(8))}


def _check_view(k: int) -> None:
    if not 0 <= k < DIHEDRAL_VIEWS:
        raise ValueError(f"dihedral view must be in 0..7, got {k}")


def transform_image(x: Tensor, k: int, inverse: bool = False) -> Tensor:
    """View ``k`` of ``x`` (``... x H x W``), or with ``inverse`` the image it came from."""
    _check_view(k)
    turns, mirror = k % 4, k >= 4
    if not inverse:
        x = torch.rot90(x, turns, dims=(-2, -1))
        return torch.flip(x, dims=(-1,)) if mirror else x
    if mirror:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, -turns, dims=(-2, -1))


def transform_maps(maps: Tensor, k: int, inverse: bool = False) -> Tensor:
    """Grasp maps ``... x 4 x H x W`` (quality, cos 2a, sin 2a, width) seen in view ``k``, or
    with ``inverse`` the maps of the original image given those of view ``k``."""
    _check_view(k)
    if maps.shape[-3] != 4:
        raise ValueError(f"grasp maps need 4 channels (dim -3), got shape {tuple(maps.shape)}")
    # The sign changes are per channel, so they commute with the pixel moves; and each is its
    # own inverse, so the same signs serve both directions.
    turn_sign = -1.0 if k % 2 else 1.0
    mirror_sign = -1.0 if k >= 4 else 1.0
    sign = maps.new_tensor([1.0, turn_sign, turn_sign * mirror_sign, 1.0]).view(4, 1, 1)
    return transform_image(maps, k, inverse) * sign


def view_mean(net: nn.Module, x: Tensor, views: tuple[int, ...] | list[int]) -> Tensor:
    """The mean over ``views`` of ``net``'s maps of each view of ``x`` (N x C x H x W), mapped
    back to ``x``'s frame: N x 4 x H x W float32. Views of the same shape (all of them for a
    square input; the even and the odd quarter turns otherwise) go through ``net`` as one
    batch, so a square input costs one forward pass of ``len(views)`` x N images."""
    # A turned channels_last batch has neither layout's strides: restore it for fast convs.
    layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else None
    groups: dict[tuple[int, ...], list[int]] = {}
    for k in views:
        _check_view(k)
        groups.setdefault(tuple(transform_image(x[:0], k).shape), []).append(k)
    total = None
    n = len(x)
    for ks in groups.values():
        xs = torch.cat([transform_image(x, k) for k in ks])
        if layout is not None:
            xs = xs.contiguous(memory_format=layout)
        out = net(xs).float()
        for j, k in enumerate(ks):
            maps = transform_maps(out[j * n : (j + 1) * n], k, inverse=True)
            total = maps if total is None else total + maps
    assert total is not None, "no views"
    return total / len(views)


class DihedralTTA(nn.Module):
    """Test-time augmentation: the mean of a network's maps over dihedral views of its input,
    each mapped back to the input's frame (cos 2a and sin 2a averaged as a vector, so angles
    near +-pi/2 don't cancel). The result is exactly equivariant to the views averaged over when
    those form a group (``rot4``, ``d8``). A square input runs all views as one batch
    (:func:`view_mean`)."""

    def __init__(self, net: nn.Module, views: tuple[int, ...] = TTA_VIEWS["d8"]) -> None:
        super().__init__()
        for k in views:
            _check_view(k)
        # Not ``module``: checkpoint.unwrap strips a ``.module`` (DDP), which would drop the TTA.
        self.net = net
        self.views = tuple(views)

    @property
    def input_channels(self) -> int:
        return self.net.input_channels

    def forward(self, x: Tensor) -> Tensor:
        return view_mean(self.net, x, self.views)
