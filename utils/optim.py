"""Optimisers and the learning-rate schedule, with the overrides a resumed run may ask for.

The schedule is a linear warm-up then a cosine decay to 1% of the peak rate, stepped once per
optimiser step. It is a small class of plain numbers (not a ``LambdaLR`` of a closure) so that
its whole plan is saved in a checkpoint and can be re-planned on resume:

- ``--epochs`` changed on resume: :meth:`WarmupCosine.replan` keeps the current rate and
  spreads the rest of the decay over the new remainder (no jump); a finished run given more
  epochs continues at its final rate (1% of the peak).
- ``--lr`` changed on resume: :meth:`WarmupCosine.rescale` makes the rate from the next step
  on what a run started with the new ``--lr`` would have at this point of the plan.
- ``--weight-decay`` changed on resume: :func:`set_weight_decay` on every parameter group.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch

#: The cosine decays to this fraction of the peak rate.
FINAL_FACTOR = 0.01


def build_optimizer(
    args: argparse.Namespace, model: torch.nn.Module, extra: list | None = None
) -> torch.optim.Optimizer:
    """``--optimizer adam|adamw|sgd`` with ``--lr`` and ``--weight-decay`` (SGD: Nesterov 0.9),
    over the model's trainable parameters and ``extra`` ones.

    Adam and AdamW run their fused kernel (one pass over all parameters) where every parameter
    is a float tensor on the CPU or a GPU, SGD its multi-tensor one: the same update as the
    per-parameter loop torch uses by default on the CPU, within float rounding: 49 -> 8 ms an
    update for PSPNet-ResNet18's 14 M parameters on a 2-core Xeon with AMX, a sixth of its
    bf16 training step (benchmarks/README.md)."""
    params = [p for p in model.parameters() if p.requires_grad] + list(extra or [])
    fast = {"fused": True} if _fused_ok(params) else {}
    if args.optimizer == "adam":
        return torch.optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay, **fast)
    if args.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay, **fast)
    return torch.optim.SGD(
        params, lr=args.lr, momentum=0.9, weight_decay=args.weight_decay, nesterov=True,
        foreach=True,
    )  # fmt: skip


def _fused_ok(params: list[torch.Tensor]) -> bool:
    """Whether torch's fused Adam kernels take these parameters: float, on CPU or CUDA."""
    return bool(params) and all(
        p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params
    )


def set_weight_decay(optimizer: torch.optim.Optimizer, weight_decay: float) -> None:
    for group in optimizer.param_groups:
        group["weight_decay"] = weight_decay


class WarmupCosine:
    """Per-step rate ``base_lr * factor(step)``: linear warm-up over ``warmup`` steps, then a
    cosine from ``start_factor`` (1 at first) at step ``start`` to :data:`FINAL_FACTOR` at
    ``total``; constant after ``total``. Like ``LambdaLR``, construction applies step 0 and each
    :meth:`step` moves to the next one."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup: int, total: int) -> None:
        self.optimizer = optimizer
        # Like torch's schedulers: the peak is the group's rate when first scheduled.
        self.base_lrs = [float(g.setdefault("initial_lr", g["lr"])) for g in optimizer.param_groups]
        self.last_step = 0
        self.warmup = max(0, int(warmup))
        self.total = max(int(total), 1)
        self.start = self.warmup
        self.start_factor = 1.0
        self._apply()

    def factor(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        span = max(1, self.total - self.start)
        t = min(1.0, max(0.0, (step - self.start) / span))
        return FINAL_FACTOR + (self.start_factor - FINAL_FACTOR) * 0.5 * (1 + math.cos(math.pi * t))

    def _apply(self) -> None:
        f = self.factor(self.last_step)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * f

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def replan(self, total: int) -> None:
        """End the decay at step ``total`` instead, continuing from the current rate."""
        total = max(int(total), 1)
        if total <= self.last_step:
            raise ValueError(
                f"the new plan ends at step {total}, but the run is already at step "
                f"{self.last_step}: give more --epochs"
            )
        if self.last_step >= self.warmup:
            self.start_factor = self.factor(self.last_step)
            self.start = self.last_step
        elif self.warmup > total // 10:
            # Still warming up and the new plan is short: warm up for at most a tenth of it
            # (but not below the steps already taken), as a new run of that length would.
            self.warmup = self.start = max(self.last_step + 1, total // 10)
        self.total = total
        self._apply()

    def rescale(self, lr: float) -> None:
        """Make ``lr`` the peak rate of the plan (every group), from the current step on."""
        self.base_lrs = [float(lr)] * len(self.base_lrs)
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        return {
            "base_lrs": list(self.base_lrs),
            "last_step": self.last_step,
            "warmup": self.warmup,
            "total": self.total,
            "start": self.start,
            "start_factor": self.start_factor,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "last_step" not in state:
            if "last_epoch" not in state:
                raise ValueError(f"not a learning-rate schedule state (keys {sorted(state)})")
            # A LambdaLR of older checkpoints: same plan (from the flags), at its step.
            self.last_step = int(state["last_epoch"])
            self._apply()
            return
        self.base_lrs = [float(v) for v in state["base_lrs"]]
        self.last_step = int(state["last_step"])
        self.warmup = int(state["warmup"])
        self.total = int(state["total"])
        self.start = int(state["start"])
        self.start_factor = float(state["start_factor"])
        self._apply()


def build_scheduler(
    args: argparse.Namespace, optimizer: torch.optim.Optimizer, total_steps: int
) -> WarmupCosine | None:
    """``--scheduler cosine``: warm-up of ``--warmup-steps`` (at most a tenth of the run), then
    cosine decay to 1% of ``--lr`` at ``total_steps``; ``none``: a constant rate."""
    if args.scheduler == "none":
        return None
    warmup = max(0, min(args.warmup_steps, total_steps // 10))
    return WarmupCosine(optimizer, warmup, total_steps)
