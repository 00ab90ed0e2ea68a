"""Base class shared by all grasp networks, and the grasp-map loss.

Conventions (every network):

* input ``x``: ``N x C x H x W`` float; ``C`` = 1 (depth), 3 (RGB) or 4 (depth first, then RGB);
* output: one tensor ``N x 4 x H x W`` at the input's ``H x W`` with channels, in this order,
  quality, cos 2θ, sin 2θ, width (gripper opening divided by the dataset's width scale). Outputs
  are raw/linear (no sigmoid/tanh): the network regresses whatever maps it is given.
* ``forward(x, with_aux=False)`` returns the maps; ``forward(x, with_aux=True)`` returns
  ``(maps, aux_maps_or_None)``. Calling ``ddp_model(x, with_aux=True)`` lets
  DistributedDataParallel see every parameter (including an auxiliary head) in ``forward``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "GRASP_MAP_NAMES",
    "GraspNet",
    "MAP_LOSSES",
    "check_input_channels",
    "count_parameters",
    "grasp_map_loss",
    "grasp_heads",
    "match_spatial_size",
]

#: Output channel order of every network and of the targets.
GRASP_MAP_NAMES: tuple[str, str, str, str] = ("quality", "cos", "sin", "width")


#: Where :func:`grasp_map_loss` learns the angle and opening maps (``--map-loss``).
MAP_LOSSES: tuple[str, ...] = ("all", "grasp", "width")


def grasp_map_loss(
    pred: Tensor, target: Tensor, where: str = "all"
) -> tuple[Tensor, dict[str, Tensor]]:
    """Sum over the four grasp maps of the per-map mean squared error (GG-CNN convention).

    Args:
        pred: ``N x 4 x H x W`` predicted maps (quality, cos 2θ, sin 2θ, width).
        target: same shape; may be soft targets (e.g. a teacher's maps for distillation).
        where: ``"all"`` (GG-CNN): every map at every pixel, so off the grasps the angle and
            opening are learnt as 0. ``"grasp"``: quality at every pixel, angle and opening only
            where the quality target is above 0 (as CenterNet learns box sizes at object
            centres only): the squared errors there are summed over the same count of pixels,
            so the terms are those of ``"all"`` without the off-grasp pixels. A thin part's
            drawn grasps are 1-2 px wide, and learning 0 around them pulls its predicted
            opening at the quality peak towards 0 (or below, which decodes as no grasp).
            ``"width"``: as ``"all"``, but the opening only on the grasp pixels (as
            ``"grasp"`` learns it); the angle everywhere.

    Returns:
        ``(total, terms)``: ``total`` is a scalar float32 tensor; ``terms`` maps ``"quality"``,
        ``"cos"``, ``"sin"``, ``"width"`` to the scalar MSE of that channel (not detached, so
        callers may re-weight them). Computed in float32 even under bf16 autocast.
    """
    if pred.dim() != 4 or pred.shape[1] != 4 or pred.shape != target.shape:
        raise ValueError(
            f"grasp_map_loss expects pred and target of the same shape N x 4 x H x W, "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if where not in MAP_LOSSES:
        raise ValueError(f"where must be one of {MAP_LOSSES}, got {where!r}")
    # float32 so that the reduction is accurate under bf16 autocast.
    pred32 = pred.float()
    target32 = target.float()
    if where == "all":
        terms = {
            name: F.mse_loss(pred32[:, i], target32[:, i]) for i, name in enumerate(GRASP_MAP_NAMES)
        }
    else:
        on = (target32[:, :1] > 0).to(pred32.dtype)
        masked = GRASP_MAP_NAMES[1:] if where == "grasp" else ("width",)
        terms = {}
        for i, name in enumerate(GRASP_MAP_NAMES):
            if name in masked:
                terms[name] = ((pred32[:, i] - target32[:, i]).square() * on[:, 0]).mean()
            else:  # as "all", bitwise
                terms[name] = F.mse_loss(pred32[:, i], target32[:, i])
    total = terms["quality"] + terms["cos"] + terms["sin"] + terms["width"]
    return total, terms


def match_spatial_size(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Crop (bottom/right overhang) or replicate-pad (bottom/right shortfall) to ``size``.

    Used by the GG-CNNs: their decoder pixel ``i`` is aligned with input pixel ``i`` for any
    input size (the strides/paddings are symmetric), only the number of decoded pixels differs
    from ``H``/``W`` by a few at the bottom/right edge. Cropping/padding there keeps every grasp
    at the right position; a bilinear resize would instead stretch the maps and shift grasps by
    up to several pixels near the far edge.
    """
    h, w = size
    if maps.shape[-2] == h and maps.shape[-1] == w:
        return maps
    maps = maps[..., :h, :w]
    pad_h, pad_w = h - maps.shape[-2], w - maps.shape[-1]
    if pad_h > 0 or pad_w > 0:
        maps = F.pad(maps, (0, pad_w, 0, pad_h), mode="replicate")
    return maps


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class GraspNet(nn.Module):
    """Base class of the grasp networks (see the module docstring for the I/O convention).

    Subclasses set ``self.input_channels`` and ``self.aux_weight`` and implement
    ``forward(x, with_aux=False)``.
    """

    input_channels: int = 1
    #: Weight of the auxiliary-head loss; 0 for networks without an auxiliary head.
    aux_weight: float = 0.0
    # Set by models.get_network (see models/registry.py).
    network_name: str | None = None
    network_kwargs: dict[str, Any] | None = None

    def forward(self, x: Tensor, with_aux: bool = False) -> Tensor | tuple[Tensor, Tensor | None]:
        """``N x C x H x W`` -> ``N x 4 x H x W``; with ``with_aux`` a ``(maps, aux)`` tuple."""
        raise NotImplementedError

    def forward_train(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(main maps, auxiliary maps or None)``, both ``N x 4 x H x W`` at the input size."""
        main, aux = self(x, with_aux=True)
        return main, aux

    def loss_from_outputs(
        self, main: Tensor, aux: Tensor | None, y: Tensor, where: str = "all"
    ) -> dict[str, Any]:
        """Loss dict from already computed outputs (e.g. ``ddp_model(x, with_aux=True)``);
        ``where``: :func:`grasp_map_loss`'s (``--map-loss``), for both heads.

        Returns ``{"loss": scalar tensor with grad, "terms": {"quality", "cos", "sin", "width"
        [, "aux"]: detached scalar tensors}, "pred": main}``. ``"aux"`` is the weighted total
        ``aux_weight * grasp_map_loss(aux, y)``, already included in ``"loss"``.
        """
        loss, terms = grasp_map_loss(main, y, where)
        detached = {k: v.detach() for k, v in terms.items()}
        if aux is not None and self.aux_weight > 0:
            aux_loss, _ = grasp_map_loss(aux, y, where)
            aux_term = self.aux_weight * aux_loss
            loss = loss + aux_term
            detached["aux"] = aux_term.detach()
        return {"loss": loss, "terms": detached, "pred": main}

    def compute_loss(self, x: Tensor, y: Tensor) -> dict[str, Any]:
        """Forward ``x`` (with the auxiliary head if any) and compute the loss against ``y``.

        Args:
            x: ``N x C x H x W`` input.
            y: ``N x 4 x H x W`` targets (quality, cos 2θ, sin 2θ, width).

        Returns:
            See :meth:`loss_from_outputs`.
        """
        main, aux = self.forward_train(x)
        return self.loss_from_outputs(main, aux, y)

    def _check_input(self, x: Tensor) -> None:
        """Raise a clear error for a wrongly shaped input (cheap, runs every forward)."""
        if x.dim() != 4 or x.shape[1] != self.input_channels:
            raise ValueError(
                f"{type(self).__name__} expects input N x {self.input_channels} x H x W, "
                f"got {tuple(x.shape)}"
            )


def check_input_channels(input_channels: int) -> int:
    """Validate the ``input_channels`` constructor argument."""
    if isinstance(input_channels, bool) or not isinstance(input_channels, int):
        raise TypeError(f"input_channels must be an int, got {input_channels!r}")
    if input_channels < 1:
        raise ValueError(f"input_channels must be >= 1, got {input_channels}")
    return input_channels


def grasp_heads(h: Tensor, heads: tuple[nn.Conv2d, ...]) -> Tensor:
    """The one-channel output heads (quality, cos, sin, width; same kernel) applied to the
    full-resolution features ``h`` as ONE convolution with their weights stacked: one pass
    over ``h`` instead of four (plain fp32 training 2.1x faster for GG-CNN, 1.4x for GG-CNN2;
    no change beyond noise with channels_last: ``benchmarks/train_speed.py
    --previous-layers``). The same maps (each output channel is its head's own convolution)
    and the same parameters and state_dict keys."""
    weight = torch.cat([m.weight for m in heads])
    bias = torch.cat([m.bias for m in heads])
    m = heads[0]
    return F.conv2d(h, weight, bias, m.stride, m.padding, m.dilation)
