"""The step protocol: what a training script plugs into the one epoch loop.

A *step* is a callable ``step(model, batch, ctx) -> StepOutput`` that runs the forward pass on
one batch and returns the loss to minimise. ``batch`` is the labelled loader's batch, or a
``(labelled, unlabelled)`` pair when the loop is given an unlabelled loader too. ``ctx``
(:class:`StepContext`) says where the run is (epoch, global step: for ramp-ups), the device and
the precision. A step may also define:

- ``after_optimizer_step(model, ctx)``: called after every optimiser update;
- ``state_dict()`` / ``load_state_dict(state)``: state saved in every checkpoint and put back
  on resume (plain types and tensors, so ``weights_only`` loading reads it).

The loop owns everything else: autocast, backward, gradient scaling and clipping, the
optimiser, scheduler and EMA, logging and checkpoints (:mod:`utils.training`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from utils.checkpoint import unwrap
from utils.precision import Precision


@dataclass(frozen=True)
class StepContext:
    """Where the loop stands when it calls a step. ``global_step`` counts optimiser steps
    taken before this one (0 for the first); ``epoch`` is 1-based; ``ema``: the run's EMA
    network (:class:`utils.ema.ModelEma`'s ``module``, eval mode, no gradients) or None."""

    device: torch.device
    precision: Precision
    epoch: int = 1
    global_step: int = 0
    step_in_epoch: int = 0
    ema: nn.Module | None = None


@dataclass
class StepOutput:
    """The loss to minimise, named loss terms to log (tensors are fine: the loop reads them
    at logging time), and the number of samples the loss averages over."""

    loss: Tensor
    terms: dict[str, Tensor | float]
    batch_size: int


class Step(Protocol):
    def __call__(self, model: nn.Module, batch: Any, ctx: StepContext) -> StepOutput: ...


class SupervisedStep:
    """Maps against the batch's drawn targets (plus the auxiliary head's loss, if any);
    ``map_loss``: where angle and opening are learnt (``--map-loss``,
    :func:`models.base.grasp_map_loss`)."""

    def __init__(self, map_loss: str = "all") -> None:
        self.map_loss = map_loss

    def __call__(self, model: nn.Module, batch: dict, ctx: StepContext) -> StepOutput:
        x = ctx.precision.to_input(batch["x"], ctx.device)
        y = batch["y"].to(ctx.device, non_blocking=True)
        # Through the (possibly DDP-wrapped) model, so every parameter is seen by DDP.
        main, aux = model(x, with_aux=True)
        out = unwrap(model).loss_from_outputs(main, aux, y, self.map_loss)
        return StepOutput(out["loss"], out["terms"], x.shape[0])
