"""An exponential moving average (EMA) of a network's weights, for every training script.

After each optimiser step ``ema = d * ema + (1 - d) * weights`` for every floating-point
parameter and buffer (batch-norm running statistics included); integer buffers (batch-norm's
``num_batches_tracked``) are copied. The decay ramps up as ``d = min(decay, (1 + n) / (10 + n))``
after ``n`` updates, so a short run's average is not dominated by the random initial weights.
The average is kept in float32 on the model's device, always in eval mode and without gradients.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from utils.checkpoint import unwrap


class ModelEma:
    """The EMA copy of ``model`` (unwrapped from DDP); ``module`` is the averaged network."""

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"--model-ema-decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(unwrap(model)).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        src = unwrap(model).state_dict()
        for name, avg in self.module.state_dict().items():
            new = src[name].detach()
            if avg.dtype.is_floating_point:
                avg.mul_(d).add_(new.to(avg.dtype), alpha=1.0 - d)
            else:
                avg.copy_(new)
        self.updates += 1
