"""MixMatch (Berthelot et al., 2019) for dense grasp maps (``mixmatch_train.py``).

Per step, with a labelled batch (inputs, target maps) and an unlabelled batch (inputs only):

1. **Label guessing.** ``k`` distinct dihedral views of each unlabelled image
   (:mod:`utils.dihedral`: quarter turns and mirrors, which move the angle channels exactly);
   the network's maps of each view, without gradients or dropout, mapped back to the image's
   own frame (angles included) and averaged: quality, cos 2θ, sin 2θ (as a vector) and width.
   ``guess_model="online"`` (the paper's): the network being trained guesses;
   ``"ema"``: its exponential moving average (the run's EMA network, in eval mode: the
   network that is evaluated), a steadier teacher, as in Mean Teacher (Tarvainen and
   Valpola, 2017); the trained network's clean-statistics pass (below) still runs.
2. **Sharpening** of the guessed quality only, as a per-pixel Bernoulli probability:
   ``p^(1/T) / (p^(1/T) + (1 - p)^(1/T))`` (0.5 stays 0.5, the rest moves toward 0 or 1).
   Angle and width are not sharpened.
3. The ``k`` views of each unlabelled image become training inputs, each with the guess seen
   in that view (:func:`utils.dihedral.transform_maps`).
4. **MixUp** over the concatenated labelled and unlabelled batch, inputs and all four maps:
   ``λ ~ Beta(α, α)``, ``λ = max(λ, 1 − λ)``, each sample mixed with a random other one.
   Quality, cos 2θ and sin 2θ mix linearly (the angle's vector keeps its direction, its
   length follows the quality). The opening mixes as the *quality-weighted* mean of the two
   openings (``mixup_width="weighted"``, the default), because it is read as a magnitude: a
   linear mix turns a grasp pixel of one image over the other's background into a grasp of
   λ times its opening, so the network learns openings shrunk by E[λ] ≈ 0.8 and the decoded
   grasps open too little. Measured on GG-CNN2, 10% labels, seed 0, generator v4: with the
   linear mix 49.4% of the v4 benchmark, 718 of its 2,000 images missed with the opening
   short, against 79.5% and 117 for the labelled part alone (``mixup_width="linear"``, the
   paper's MixUp, keeps that behaviour for comparison).
   ``mix="cutmix"`` (an alternative to MixUp, after CutMix, Yun et al. 2019, which French et
   al. 2020 found to suit dense semi-supervised segmentation): each sample instead takes a
   box of ``1 - λ`` of its area (its sides ``sqrt(1 - λ)`` of the frame's, a uniform random
   centre, clipped to the frame) from the other sample, inputs and all four maps together,
   so every pixel keeps one real scene's depth and its own labels (no superposed scenes, no
   opening to re-weigh). ``mix="none"``: no mixing (the batch as guessed; λ and the partner
   are still drawn, so the random stream is MixUp's).
5. **Loss** = supervised grasp-map loss on the mixed labelled part (with PSPNet's auxiliary
   head) + ``λ_u(t)`` x the same squared error (per-map means, summed over the four maps) on
   the mixed unlabelled part, ``λ_u`` ramped up
   linearly from 0 over ``rampup`` optimiser steps. One forward pass over the mixed batch, so
   batch norm sees labelled and unlabelled samples together.

**Batch-norm statistics come from clean images.** A mixed input (``λ a + (1 - λ) b``) has
other feature statistics than a real one, and evaluation (and the guessing, were it to use the
running statistics) sees real ones. So the guessing pass normalises with its own batch's
statistics and is what updates the running statistics (the clean unlabelled views), while the
mixed training pass normalises with its batch's statistics but leaves the running ones alone.
Measured on PSPNet-ResNet18 at 25% labels, seed 0, v2 benchmark (2000 images; AMD EPYC, bf16):
a run whose running statistics came from the mixed batches scored 80.1%, 82.6% once they were
recomputed on the clean training images alone (an ad hoc check; paired, p = 3e-6), and a run
trained this way 83.8% (against the first: p = 2e-8). Networks without batch norm (GG-CNN,
GG-CNN2) train exactly as before.

Random draws (views, λ, the mixing permutation) use torch's global RNG, whose state every
checkpoint saves: a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from models import grasp_map_loss
from utils.checkpoint import unwrap
from utils.dihedral import DIHEDRAL_VIEWS, transform_image, transform_maps, view_mean
from utils.steps import StepContext, StepOutput


def sharpen(q: Tensor, temperature: float) -> Tensor:
    """Sharpen quality ``q`` (clamped to [0, 1]) as a Bernoulli probability at ``temperature``."""
    p = q.clamp(0.0, 1.0)
    a = p ** (1.0 / temperature)
    b = (1.0 - p) ** (1.0 / temperature)
    return a / (a + b).clamp_min(1e-12)


def _batch_norms(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def guess_maps(net: nn.Module, x: Tensor, views: list[int], batch_stats: bool = False) -> Tensor:
    """The mean over ``views`` of ``net``'s maps of each view of ``x``, mapped back to ``x``'s
    frame (``N x 4 x H x W``, float32). ``net`` runs in eval mode (no dropout); with
    ``batch_stats`` its batch norms normalise with the views' own statistics and update their
    running statistics from them (the training step's clean-statistics pass). Modes are
    restored."""
    modes = [(m, m.training) for m in net.modules()]
    net.eval()
    if batch_stats:
        for bn in _batch_norms(net):
            bn.train()
    try:
        return view_mean(net, x, views)
    finally:
        for m, mode in modes:
            m.training = mode


@contextlib.contextmanager
def running_stats_frozen(net: nn.Module) -> Iterator[None]:
    """Batch norms in training mode normalise with the batch's statistics but leave their
    running statistics and batch count untouched inside the block (not tracking them)."""
    saved = [(bn, bn.track_running_stats) for bn in _batch_norms(net)]
    for bn, _ in saved:
        bn.track_running_stats = False
    try:
        yield
    finally:
        for bn, tracking in saved:
            bn.track_running_stats = tracking


#: How MixUp mixes the opening map (module docstring, step 4).
MIXUP_WIDTHS = ("weighted", "linear")
#: How samples are mixed (``--mix``; module docstring, step 4).
MIX_KINDS = ("mixup", "cutmix", "none")
#: Which network guesses the labels (``--guess-model``; module docstring, step 1).
GUESS_MODELS = ("online", "ema")


def cut_boxes(n: int, height: int, width: int, lam: float, device: torch.device | None = None):
    """``n x 1 x height x width`` bool masks, each one box of ``1 - lam`` of the frame's area
    (sides ``sqrt(1 - lam)`` of the frame's, rounded to pixels), centred at a uniform random
    pixel (torch's global generator) and clipped to the frame; ``lam`` = 1: no pixel."""
    frac = math.sqrt(max(0.0, 1.0 - lam))
    bh, bw = round(height * frac), round(width * frac)
    cy = torch.randint(0, height, (n, 1, 1, 1))
    cx = torch.randint(0, width, (n, 1, 1, 1))
    rows = torch.arange(height).view(1, 1, -1, 1)
    cols = torch.arange(width).view(1, 1, 1, -1)
    top, left = cy - bh // 2, cx - bw // 2
    box = (rows >= top) & (rows < top + bh) & (cols >= left) & (cols < left + bw)
    return box.to(device) if device is not None else box


def cutmix(x: Tensor, y: Tensor, box: Tensor, perm: Tensor) -> tuple[Tensor, Tensor]:
    """Inputs and maps of ``perm``'s samples inside ``box`` (``N x 1 x H x W`` bool), the
    samples' own outside: each pixel is one real sample's, inputs and maps alike."""
    return torch.where(box, x[perm], x), torch.where(box, y[perm], y)


def mixup(
    x: Tensor, y: Tensor, lam: float, perm: Tensor, width: str = "weighted"
) -> tuple[Tensor, Tensor]:
    """``lam * a + (1 - lam) * a[perm]`` for the inputs and the maps (quality, cos 2θ, sin 2θ,
    opening: ``N x 4 x H x W``); ``lam`` = 1 or ``perm`` the identity changes nothing.

    ``width="weighted"``: the opening channel is instead the mean of the two openings weighted
    by ``lam * q`` and ``(1 - lam) * q[perm]`` (the quality maps), so a pixel that only one
    image grasps keeps that grasp's opening; where neither has any quality it mixes linearly.
    ``"linear"``: every channel linearly (MixUp as in the paper)."""
    if width not in MIXUP_WIDTHS:
        raise ValueError(f"--mixup-width must be one of {MIXUP_WIDTHS}, got {width!r}")
    y_mix = lam * y + (1 - lam) * y[perm]
    if width == "weighted":
        qa, qb = y[:, :1].clamp_min(0), y[perm, :1].clamp_min(0)
        num = lam * qa * y[:, 3:4] + (1 - lam) * qb * y[perm, 3:4]
        den = lam * qa + (1 - lam) * qb
        graspable = den > 1e-6
        opening = torch.where(graspable, num / den.clamp_min(1e-6), y_mix[:, 3:4])
        y_mix = torch.cat([y_mix[:, :3], opening], dim=1)
    return lam * x + (1 - lam) * x[perm], y_mix


class MixMatchStep:
    """The MixMatch step (see the module docstring). Expects ``(labelled, unlabelled)`` batches."""

    def __init__(
        self,
        k: int = 2,
        temperature: float = 0.5,
        alpha: float = 0.75,
        lambda_u: float = 1.0,
        rampup: int = 1000,
        map_loss: str = "all",
        mixup_width: str = "weighted",
        mix: str = "mixup",
        guess_model: str = "online",
    ) -> None:
        if not 1 <= k <= DIHEDRAL_VIEWS:
            raise ValueError(f"--k must be in 1..{DIHEDRAL_VIEWS}, got {k}")
        if not temperature > 0:
            raise ValueError(f"--t must be > 0, got {temperature}")
        if not alpha > 0:
            raise ValueError(f"--alpha must be > 0, got {alpha}")
        if mixup_width not in MIXUP_WIDTHS:
            raise ValueError(f"--mixup-width must be one of {MIXUP_WIDTHS}, got {mixup_width!r}")
        if mix not in MIX_KINDS:
            raise ValueError(f"--mix must be one of {MIX_KINDS}, got {mix!r}")
        if guess_model not in GUESS_MODELS:
            raise ValueError(f"--guess-model must be one of {GUESS_MODELS}, got {guess_model!r}")
        self.mixup_width, self.mix, self.guess_model = mixup_width, mix, guess_model
        self.k, self.temperature, self.alpha = int(k), float(temperature), float(alpha)
        self.map_loss = map_loss  # where the supervised term learns angle and opening
        self.lambda_u, self.rampup = float(lambda_u), int(rampup)

    def unlabelled_weight(self, global_step: int) -> float:
        """``λ_u(t)``: linear ramp from 0 to ``lambda_u`` over ``rampup`` steps."""
        if self.rampup <= 0:
            return self.lambda_u
        return self.lambda_u * min(1.0, global_step / self.rampup)

    def __call__(self, model: nn.Module, batch: Any, ctx: StepContext) -> StepOutput:
        labelled, unlabelled = batch
        xl = ctx.precision.to_input(labelled["x"], ctx.device)
        yl = labelled["y"].to(ctx.device, non_blocking=True).float()
        xu = ctx.precision.to_input(unlabelled["x"], ctx.device)
        views = torch.randperm(DIHEDRAL_VIEWS)[: self.k].tolist()
        net = unwrap(model)
        if self.guess_model == "ema":
            if ctx.ema is None:
                raise ValueError("--guess-model ema needs the run's EMA network (--model-ema 1)")
            if _batch_norms(net):  # the trained network's running statistics: clean views
                guess_maps(net, xu, views, batch_stats=True)
            guess = guess_maps(ctx.ema, xu, views)
        else:
            guess = guess_maps(net, xu, views, batch_stats=True)
        guess = torch.cat([sharpen(guess[:, :1], self.temperature), guess[:, 1:]], dim=1)
        xs = [xl] + [transform_image(xu, v) for v in views]
        ys = [yl] + [transform_maps(guess, v) for v in views]
        x_all, y_all = torch.cat(xs), torch.cat(ys)
        lam = float(torch.distributions.Beta(self.alpha, self.alpha).sample())
        lam = max(lam, 1.0 - lam)
        perm = torch.randperm(len(x_all)).to(x_all.device)
        if self.mix == "cutmix":
            box = cut_boxes(len(x_all), x_all.shape[-2], x_all.shape[-1], lam, x_all.device)
            x_mix, y_mix = cutmix(x_all, y_all, box, perm)
        elif self.mix == "none":
            x_mix, y_mix = x_all, y_all
        else:
            x_mix, y_mix = mixup(x_all, y_all, lam, perm, self.mixup_width)
        if ctx.precision.channels_last:
            x_mix = x_mix.contiguous(memory_format=torch.channels_last)
        with running_stats_frozen(unwrap(model)):
            main, aux = model(x_mix, with_aux=True)
        n = len(xl)
        sup = unwrap(model).loss_from_outputs(
            main[:n], None if aux is None else aux[:n], y_mix[:n], self.map_loss
        )
        # Summed over the four maps like the supervised loss, so --lambda-u weighs like for like.
        unsup, _ = grasp_map_loss(main[n:], y_mix[n:])
        w = self.unlabelled_weight(ctx.global_step)
        loss = sup["loss"] + w * unsup
        terms = {"supervised": sup["loss"].detach(), "unsupervised": unsup.detach(), "lambda_u": w}
        return StepOutput(loss, terms, n)
