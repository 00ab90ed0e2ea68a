"""The one training loop, shared by every training script.

A script supplies a *step*: a callable ``step(model, batch, device) -> StepOutput`` that runs
the forward pass(es) on one batch and returns the loss to minimise. The loop owns everything
else: mixed precision, gradient scaling and clipping, the optimiser and scheduler, progress,
logging, validation with the rectangle metric, and checkpoints.

- :class:`SupervisedStep`: maps against drawn targets (``train_net.py``).
- A distillation step (a frozen teacher's maps as soft targets) and a MixMatch step (a loader
  yielding labelled and unlabelled batches, an EMA model updated in ``after_optimizer_step``)
  plug in the same way: a step may define ``after_optimizer_step(model)`` and
  ``state_dict()``/``load_state_dict()``, which the loop calls and checkpoints.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from models import GRASP_MAP_NAMES, grasp_map_loss
from utils.checkpoint import atomic_torch_save, make_checkpoint, unwrap
from utils.distributed import DistInfo, all_gather_object, reduce_sum
from utils.evaluation import EvaluationResults, evaluate_image
from utils.grasp import WIDTH_SCALE
from utils.logger import RunLogger, format_epoch_summary
from utils.post_process import post_process_output


# --- precision ---------------------------------------------------------------------------------
@dataclass
class Precision:
    """Autocast settings: ``dtype`` None means full float32."""

    device_type: str
    dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    channels_last: bool = False

    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def to_input(self, x: Tensor, device: torch.device) -> Tensor:
        x = x.to(device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def describe(self) -> str:
        name = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]
        return f"{name}{' + channels_last' if self.channels_last else ''}"


def cpu_has_fast_bf16() -> bool:
    """True when this CPU has bf16 matrix instructions (without them bf16 is slower than fp32)."""
    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:  # private helpers moved: be conservative
        return False


def resolve_precision(amp: str, channels_last: str, device: torch.device) -> Precision:
    """``--amp auto|bf16|fp16|off`` and ``--channels-last auto|on|off`` for ``device``.

    ``auto``: bf16 autocast on CPUs with bf16 instructions (AMX / AVX512-BF16: 3-4x faster
    than fp32 training here, see benchmarks/) and on CUDA GPUs that support it (fp16 with a
    gradient scaler otherwise); fp32 elsewhere. channels_last whenever autocast is on.
    """
    dtype: torch.dtype | None
    if amp == "off":
        dtype = None
    elif amp == "bf16":
        dtype = torch.bfloat16
    elif amp == "fp16":
        dtype = torch.float16
    elif amp == "auto":
        if device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.bfloat16 if cpu_has_fast_bf16() else None
    else:
        raise ValueError(f"--amp must be auto, bf16, fp16 or off, got {amp!r}")
    if dtype == torch.float16 and device.type != "cuda":
        raise ValueError("--amp fp16 needs a CUDA device; use bf16 on the CPU")
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    if channels_last not in ("auto", "on", "off"):
        raise ValueError(f"--channels-last must be auto, on or off, got {channels_last!r}")
    cl = channels_last == "on" or (channels_last == "auto" and dtype is not None)
    return Precision(device.type, dtype, scaler, cl)


# --- steps -------------------------------------------------------------------------------------
@dataclass
class StepOutput:
    """What a step returns: the loss to minimise, loss terms to log, and the batch size."""

    loss: Tensor
    terms: dict[str, Tensor | float]
    batch_size: int


class Step(Protocol):
    def __call__(self, model: nn.Module, batch: Any, device: torch.device) -> StepOutput: ...


class SupervisedStep:
    """Maps against the batch's drawn targets (plus the auxiliary head's loss, if any)."""

    def __init__(self, precision: Precision) -> None:
        self.precision = precision

    def __call__(self, model: nn.Module, batch: dict, device: torch.device) -> StepOutput:
        x = self.precision.to_input(batch["x"], device)
        y = batch["y"].to(device, non_blocking=True)
        # Through the (possibly DDP-wrapped) model, so every parameter is seen by DDP.
        main, aux = model(x, with_aux=True)
        out = unwrap(model).loss_from_outputs(main, aux, y)
        return StepOutput(out["loss"], out["terms"], x.shape[0])


def backward_and_step(
    loss: Tensor,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    precision: Precision,
    grad_clip: float | None = None,
) -> None:
    """One optimiser update from ``loss``: zero the gradients, backward (through the fp16
    gradient scaler when there is one, unscaled before clipping), clip the gradient norm to
    ``grad_clip`` if given, step."""
    optimizer.zero_grad(set_to_none=True)
    scaler = precision.scaler
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()


# --- one epoch ---------------------------------------------------------------------------------
def _set_epoch(loader: Iterable, epoch: int) -> None:
    for obj in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
            return


def _batches(loader: Iterable, n_batches: int | None, epoch: int) -> Iterator[Any]:
    """One pass over ``loader``, or exactly ``n_batches`` batches cycling through passes."""
    passes = 0
    taken = 0
    while True:
        # A distinct sampler epoch per pass keeps the shuffles different and ranks in step.
        _set_epoch(loader, epoch * 1000 + passes)
        for batch in loader:
            yield batch
            taken += 1
            if n_batches is not None and taken >= n_batches:
                return
        if n_batches is None:
            return
        if taken == 0:
            raise ValueError("the training loader yielded no batch: is the training split empty?")
        passes += 1


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    step: Step,
    *,
    device: torch.device,
    precision: Precision,
    epoch: int,
    scheduler: Any = None,
    batches_per_epoch: int | None = None,
    grad_clip: float | None = None,
    logger: RunLogger | None = None,
    global_step: int = 0,
    log_every: int = 10,
) -> tuple[dict[str, float], int]:
    """Train over one epoch; returns (mean loss terms over the epoch, new global step)."""
    model.train()
    sums: dict[str, float] = defaultdict(float)
    seen = 0
    total = batches_per_epoch
    if total is None and hasattr(loader, "__len__"):
        total = len(loader)
    batches = _batches(loader, batches_per_epoch, epoch)
    bar = logger.progress(batches, total, f"train {epoch}") if logger else batches
    for batch in bar:
        with precision.autocast():
            out = step(model, batch, device)
        loss = out.loss
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite loss {loss.item()} at epoch {epoch}, step {global_step}: "
                "lower --lr or try --amp off"
            )
        backward_and_step(loss, model, optimizer, precision, grad_clip)
        if scheduler is not None:
            scheduler.step()
        if hasattr(step, "after_optimizer_step"):
            step.after_optimizer_step(model)
        global_step += 1

        n = out.batch_size
        seen += n
        sums["loss"] += loss.item() * n
        for k, v in out.terms.items():
            sums[k] += float(v) * n
        if logger is not None and global_step % log_every == 0:
            logger.scalars(
                {"loss": loss.item(), **{k: float(v) for k, v in out.terms.items()}},
                global_step,
                "train_step/",
            )
            logger.scalars({"lr": optimizer.param_groups[0]["lr"]}, global_step)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{loss.item():.4f}")
    totals = reduce_sum({**sums, "_seen": float(seen)}, device)
    n = max(totals.pop("_seen"), 1.0)
    return {k: v / n for k, v in totals.items()}, global_step


# --- evaluation --------------------------------------------------------------------------------
@dataclass
class EvalOutput:
    """Rectangle-metric results, mean loss terms, timings (ms/image) and a few example maps."""

    results: EvaluationResults
    losses: dict[str, float] = field(default_factory=dict)
    network_ms: float = 0.0
    post_ms: float = 0.0
    examples: list[dict[str, np.ndarray]] = field(default_factory=list)


@torch.no_grad()
def predict_maps(model: nn.Module, x: Tensor, precision: Precision, device: torch.device) -> Tensor:
    """Raw N x 4 x H x W float32 maps for an input batch (eval mode is the caller's job)."""
    with precision.autocast():
        out = model(precision.to_input(x, device))
    return out.float()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    *,
    device: torch.device,
    precision: Precision,
    width_scale: float = WIDTH_SCALE,
    n_grasps: int = 1,
    iou_threshold: float = 0.25,
    max_batches: int | None = None,
    n_examples: int = 0,
    sample_id: Callable[[int], str] = str,
    on_batch: Callable[[dict, Tensor, tuple[np.ndarray, ...], list], None] | None = None,
    logger: RunLogger | None = None,
    desc: str = "val",
) -> EvalOutput:
    """Score ``model`` on ``loader`` with the rectangle metric, on every rank's shard.

    ms/image timings leave out the first batch (warm-up) when there is more than one.

    Results from all ranks are gathered, so each rank returns the whole dataset's figures.
    ``on_batch(batch, raw_maps, (q, angle, width), image_results)`` lets a caller write
    visualisations or submission files without a second pass.
    """
    net = unwrap(model)
    net.eval()
    results = EvaluationResults()
    # Fixed keys on every rank (even one with an empty shard), so the sums pair up.
    sums = dict.fromkeys(("loss", *GRASP_MAP_NAMES, "_net_s", "_post_s", "_timed", "_seen"), 0.0)
    first: tuple[float, float, int] | None = None  # the warm-up batch's timings
    examples: list[dict[str, np.ndarray]] = []
    total = max_batches if max_batches is not None else getattr(loader, "__len__", lambda: None)()
    it = _batches(loader, None, 0) if max_batches is None else _take(loader, max_batches)
    bar = logger.progress(it, total, desc) if logger else it
    for batch in bar:
        x = batch["x"]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        pred = predict_maps(net, x, precision, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t1 = time.perf_counter()
        if "y" in batch:
            total_loss, terms = grasp_map_loss(pred, batch["y"].to(device))
            sums["loss"] += float(total_loss) * len(x)
            for k, v in terms.items():
                sums[k] += float(v) * len(x)
        pred_cpu = pred.cpu()
        q, ang, wid = post_process_output(
            pred_cpu[:, 0], pred_cpu[:, 1], pred_cpu[:, 2], pred_cpu[:, 3], width_scale=width_scale
        )
        image_results = []
        for i in range(len(x)):
            res = evaluate_image(
                q[i], ang[i], batch["gt"][i], wid[i], n_grasps=n_grasps, iou_threshold=iou_threshold
            )
            image_results.append(res)
            results.add(sample_id(int(batch["index"][i])), res)
        t2 = time.perf_counter()
        # The first batch pays one-off costs (kernel selection, caches): time the others.
        if first is None:
            first = (t1 - t0, t2 - t1, len(x))
        else:
            sums["_net_s"] += t1 - t0
            sums["_post_s"] += t2 - t1
            sums["_timed"] += len(x)
        sums["_seen"] += len(x)
        if on_batch is not None:
            on_batch(batch, pred_cpu, (q, ang, wid), image_results)
        for i in range(min(len(x), n_examples - len(examples))):
            examples.append(
                {
                    "x": x[i].float().numpy(),
                    "y": batch["y"][i].numpy() if "y" in batch else None,
                    "q": q[i],
                    "angle": ang[i],
                    "width": wid[i],
                }
            )
    merged = EvaluationResults()
    for part in all_gather_object(results):
        merged = merged.merge(part)
    if sums["_timed"] == 0 and first is not None:  # a single batch: its time is all we have
        sums["_net_s"], sums["_post_s"], sums["_timed"] = first
    totals = reduce_sum(sums, device)
    n = max(totals.pop("_seen"), 1.0)
    timed = max(totals.pop("_timed"), 1.0)
    net_ms, post_ms = 1000 * totals.pop("_net_s") / timed, 1000 * totals.pop("_post_s") / timed
    losses = {k: v / n for k, v in totals.items()} if any(totals.values()) else {}
    return EvalOutput(merged, losses, net_ms, post_ms, examples)


def _take(loader: Iterable, n: int) -> Iterator[Any]:
    for i, batch in enumerate(loader):
        if i >= n:
            return
        yield batch


def example_panels(examples: list[dict[str, np.ndarray]], width_scale: float) -> np.ndarray:
    """N x H x (5W) x 3 uint8 rows: input, target quality, predicted quality, angle, opening."""

    from utils.visualisation import gray_map as gray

    rows = []
    for ex in examples:
        x0 = ex["x"][0]
        tq = ex["y"][0] if ex["y"] is not None else np.zeros_like(ex["q"])
        rows.append(
            np.concatenate(
                [
                    gray(x0, float(x0.min()), float(x0.max())),
                    gray(tq, 0, 1),
                    gray(ex["q"], 0, 1),
                    gray(ex["angle"], -math.pi / 2, math.pi / 2),
                    gray(ex["width"], 0, width_scale),
                ],
                axis=1,
            )
        )
    return np.stack(rows) if rows else np.zeros((0, 1, 1, 3), np.uint8)


# --- the epoch loop ----------------------------------------------------------------------------
@dataclass
class FitState:
    """Where a run stands: the next epoch, the optimiser step count and the best validation
    score (success rate, then mean best IoU to break ties: small validation sets tie often)."""

    epoch: int = 1
    global_step: int = 0
    best_success: float = -1.0
    best_iou: float = -1.0


def fit(
    *,
    model: nn.Module,
    step: Step,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable,
    val_loader: Iterable | None,
    epochs: int,
    run_dir: Path,
    args: dict[str, Any],
    dist: DistInfo,
    precision: Precision,
    logger: RunLogger,
    scheduler: Any = None,
    state: FitState | None = None,
    batches_per_epoch: int | None = None,
    val_batches: int | None = None,
    grad_clip: float | None = None,
    width_scale: float = WIDTH_SCALE,
    eval_model: Callable[[], nn.Module] | None = None,
) -> dict[str, float]:
    """Train from ``state.epoch`` to ``epochs`` (inclusive, 1-based), validating every epoch.

    Rank 0 writes ``run_dir/last.pt`` after every epoch and ``run_dir/best.pt`` whenever the
    validation success rate improves (or ties with a higher mean best IoU) (the validation part, never the test part, picks it).
    ``eval_model`` returns the network to validate (e.g. an EMA copy); default ``model``.
    Returns the last epoch's metrics.
    """
    state = state or FitState()
    metrics: dict[str, float] = {}
    if val_loader is None:
        logger.print("no validation part: best.pt is not written; use last.pt")
    for epoch in range(state.epoch, epochs + 1):
        t0 = time.perf_counter()
        train_terms, state.global_step = train_one_epoch(
            model,
            train_loader,
            optimizer,
            step,
            device=dist.device,
            precision=precision,
            epoch=epoch,
            scheduler=scheduler,
            batches_per_epoch=batches_per_epoch,
            grad_clip=grad_clip,
            logger=logger,
            global_step=state.global_step,
        )
        metrics = {f"train_{k}": v for k, v in train_terms.items()}
        improved = False
        if val_loader is not None:
            val = evaluate(
                eval_model() if eval_model else model,
                val_loader,
                device=dist.device,
                precision=precision,
                width_scale=width_scale,
                max_batches=val_batches,
                n_examples=4,
                logger=logger,
            )
            metrics["val_success"] = val.results.success_rate
            metrics["val_iou"] = val.results.mean_best_iou
            metrics.update({f"val_{k}": v for k, v in val.losses.items()})
            score = (val.results.success_rate, val.results.mean_best_iou)
            improved = score > (state.best_success, state.best_iou)
            if improved:
                state.best_success, state.best_iou = score
            logger.images("val/maps", example_panels(val.examples, width_scale), epoch)
        metrics["lr"] = optimizer.param_groups[0]["lr"]
        logger.scalars(metrics, epoch, "epoch/")
        state.epoch = epoch + 1
        if dist.is_main:
            ckpt = make_checkpoint(
                model,
                epoch=epoch,
                args=args,
                metrics=metrics,
                optimizer=optimizer,
                scheduler=scheduler,
                scaler=precision.scaler,
                extra={
                    "global_step": state.global_step,
                    "best_success": state.best_success,
                    "best_iou": state.best_iou,
                    **({"step": step.state_dict()} if hasattr(step, "state_dict") else {}),
                },
            )
            atomic_torch_save(ckpt, run_dir / "last.pt")
            if improved:
                if eval_model is not None:
                    ckpt["model"] = unwrap(eval_model()).state_dict()
                atomic_torch_save(ckpt, run_dir / "best.pt")
        shown = {
            k: v
            for k, v in metrics.items()
            if k in ("train_loss", "val_loss", "val_success", "val_iou", "lr")
        }
        logger.print(
            format_epoch_summary(epoch, epochs, shown, time.perf_counter() - t0)
            + (" | best" if improved else "")
        )
    return metrics
