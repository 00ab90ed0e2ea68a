"""The one training loop, shared by every training script.

A script supplies a *step* (:mod:`utils.steps`); :class:`Trainer` holds what the loop updates
(network, optimiser, schedule, gradient scaler, EMA, the step's own state) and turns all of it,
with the random states and the position in the data, into a checkpoint and back.
:func:`fit` runs epochs from a :class:`TrainState`: the step loop, validation of the network
and of its EMA, the choice of ``best.pt``, and ``last.pt`` at every epoch's end and, with
``checkpoint_every``, every N optimiser steps inside an epoch.

Exact resume: the data order and augmentation are functions of (seed, epoch, position)
(:mod:`utils.data.loader`), the global RNG states are saved per rank, and every piece of
state above is restored, so a run stopped and resumed (even mid-epoch) ends with the same
weights, bit for bit on the CPU in fp32, as one that never stopped.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from utils.checkpoint import atomic_torch_save, load_weights, make_checkpoint, unwrap
from utils.data.loader import ThreadPrefetcher
from utils.distributed import DistInfo, all_gather_object, broadcast_buffers, reduce_sum
from utils.ema import ModelEma
from utils.entrypoint import STOP, Interrupted
from utils.grasp import WIDTH_SCALE
from utils.logger import RunLogger, format_epoch_summary
from utils.precision import Precision
from utils.scoring import DeviceSums, evaluate
from utils.seeding import rng_state, set_rng_state
from utils.steps import Step, StepContext
from utils.visualisation import example_panels


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


# --- state -------------------------------------------------------------------------------------
@dataclass
class TrainState:
    """Where a run stands. ``epoch`` is the epoch in progress or next (1-based);
    ``step_in_epoch`` the batches of it already done; ``sums`` the running loss sums of that
    epoch (so a mid-epoch resume reports the same epoch mean). The best validation score is
    the success rate, then mean best IoU to break ties (small validation sets tie often)."""

    epoch: int = 1
    step_in_epoch: int = 0
    global_step: int = 0
    best_success: float = -1.0
    best_iou: float = -1.0
    best_epoch: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    #: Share of the last epoch's loop spent waiting for data (a timing: not checkpointed).
    data_wait: float | None = None
    #: The loop stopped early on a signal (:data:`utils.entrypoint.STOP`), last.pt written.
    stopped: bool = False


@dataclass
class Trainer:
    """Everything the loop updates. ``best_from`` names the weights that are validated to
    choose ``best.pt`` and that evaluation uses: ``"model"`` or ``"ema"``."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    step: Step
    precision: Precision
    scheduler: Any = None
    ema: ModelEma | None = None
    grad_clip: float | None = None
    best_from: str = "model"
    #: Written into every checkpoint as is: what a resume must match (the script that wrote
    #: the run, its data's fingerprint, batches an epoch; :func:`utils.harness.run_training`).
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.best_from not in ("model", "ema"):
            raise ValueError(f"--best-from must be model or ema, got {self.best_from!r}")
        if self.best_from == "ema" and self.ema is None:
            raise ValueError("--best-from ema needs --model-ema 1")

    def selected(self) -> nn.Module:
        """The network that picks best.pt and is scored on the test part."""
        return self.ema.module if self.best_from == "ema" and self.ema else self.model

    def checkpoint(
        self, state: TrainState, args: dict[str, Any], metrics: dict[str, float], kind: str
    ) -> dict[str, Any]:
        """The checkpoint dict; collective (every rank must call it: RNG states are gathered).

        ``epoch`` is the last completed epoch; ``step_in_epoch`` > 0 marks a mid-epoch save.
        """
        rngs = all_gather_object(rng_state())
        # Each rank's own running loss sums (they are reduced only when read for the log).
        sums = all_gather_object(dict(state.sums))
        extra: dict[str, Any] = {
            **self.meta,
            "kind": kind,
            "step_in_epoch": state.step_in_epoch,
            "global_step": state.global_step,
            "best_success": state.best_success,
            "best_iou": state.best_iou,
            "best_epoch": state.best_epoch,
            "epoch_sums": sums[0],  # what checkpoints held before, for code that reads it
            "epoch_sums_by_rank": sums,
            "rng": rngs,
            "eval_weights": "model_ema" if self.best_from == "ema" else "model",
            "world_size": len(rngs),
        }
        if self.ema is not None:
            extra["model_ema"] = self.ema.module.state_dict()
            extra["model_ema_updates"] = self.ema.updates
        if hasattr(self.step, "state_dict"):
            extra["step"] = self.step.state_dict()
        return make_checkpoint(
            self.model,
            epoch=state.epoch - 1,
            args=args,
            metrics=metrics,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.precision.scaler,
            extra=extra,
        )

    def restore(
        self, ckpt: dict[str, Any], rank: int = 0, source: str = "checkpoint"
    ) -> TrainState:
        """Load every piece of state from ``ckpt`` (read from ``source``, named in errors);
        returns where to continue."""
        load_weights(self.model, ckpt, source, "model")
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError) as e:
            raise ValueError(f"{source}: optimiser state does not fit ({e})") from None
        if self.scheduler is not None and "scheduler" in ckpt:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.precision.scaler is not None and "scaler" in ckpt:
            self.precision.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None:
            if "model_ema" in ckpt:
                self.ema.module.load_state_dict(ckpt["model_ema"])
                self.ema.updates = int(ckpt.get("model_ema_updates", 0))
            else:  # a run that had no EMA: start the average at the current weights
                self.ema.module.load_state_dict(unwrap(self.model).state_dict())
        if hasattr(self.step, "load_state_dict") and "step" in ckpt:
            self.step.load_state_dict(ckpt["step"])
        rngs = ckpt.get("rng")
        if rngs:
            set_rng_state(rngs[rank] if rank < len(rngs) else rngs[0])
        by_rank = ckpt.get("epoch_sums_by_rank") or [ckpt.get("epoch_sums", {})]
        return TrainState(
            epoch=int(ckpt["epoch"]) + 1,
            step_in_epoch=int(ckpt.get("step_in_epoch", 0)),
            global_step=int(ckpt.get("global_step", 0)),
            best_success=float(ckpt.get("best_success", -1.0)),
            best_iou=float(ckpt.get("best_iou", -1.0)),
            best_epoch=int(ckpt.get("best_epoch", 0)),
            sums={k: float(v) for k, v in by_rank[rank if rank < len(by_rank) else 0].items()},
        )


# --- data for one epoch ------------------------------------------------------------------------
def _set_epoch(loader: Iterable, epoch: int, pass_index: int) -> None:
    sampler = getattr(loader, "batch_sampler", None)
    if hasattr(sampler, "pass_index"):  # ours: (epoch, pass) seeds the order
        sampler.set_epoch(epoch, pass_index)
        return
    for obj in (loader, sampler, getattr(loader, "sampler", None)):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch * 100_000 + pass_index)  # e.g. a DistributedSampler
            return


def _start_at(loader: Iterable, batch: int) -> Iterable:
    """``loader`` starting at its ``batch``-th batch: by telling the sampler (nothing before it
    is loaded) when it can, by skipping otherwise."""
    sampler = getattr(loader, "batch_sampler", None)
    if hasattr(sampler, "start_at"):
        sampler.start_at(batch)
        return loader
    return itertools.islice(loader, batch, None)


def epoch_batches(loader: Iterable, epoch: int, n_batches: int, start: int = 0) -> Iterator[Any]:
    """Batches ``start .. n_batches - 1`` of ``epoch``, cycling through passes over ``loader``
    when it is shorter. Every pass has its own order (:meth:`EpochBatchSampler.set_epoch` takes
    the epoch and the pass) and ranks stay in step."""
    length = len(loader) if hasattr(loader, "__len__") else None
    if length == 0:
        raise ValueError("the training loader yields no batch: is the training split empty?")
    p, offset = divmod(start, length) if length else (0, start)
    taken = start
    while taken < n_batches:
        _set_epoch(loader, epoch, p)
        got = 0
        for batch in _start_at(loader, offset) if offset else loader:
            yield batch
            got += 1
            taken += 1
            if taken >= n_batches:
                return
        if got == 0:
            raise ValueError("the training loader yielded no batch: is the training split empty?")
        p, offset = p + 1, 0


def epoch_length(
    loader: Iterable, unlabelled: Iterable | None = None, batches: int | None = None
) -> int:
    """Optimiser steps in an epoch: ``batches`` if given, else the longer loader's length
    (the shorter one cycles)."""
    if batches is not None:
        return batches
    lengths = [len(x) for x in (loader, unlabelled) if x is not None]  # type: ignore[arg-type]
    return max(lengths)


# --- one epoch ---------------------------------------------------------------------------------
def train_one_epoch(
    trainer: Trainer,
    loader: Iterable,
    state: TrainState,
    *,
    device: torch.device,
    n_batches: int,
    unlabelled_loader: Iterable | None = None,
    logger: RunLogger | None = None,
    log_every: int = 10,
    checkpoint_every: int | None = None,
    save_checkpoint: Callable[[], None] | None = None,
    prefetch_thread: bool = False,
) -> dict[str, float]:
    """Train from ``state.step_in_epoch`` to the end of epoch ``state.epoch``; returns the mean
    loss terms of the whole epoch. ``state`` advances with every step. Every
    ``checkpoint_every`` optimiser steps inside the epoch, ``save_checkpoint()`` runs (the
    mid-epoch ``last.pt``). Loss values are read from the device once per ``log_every`` steps
    and before each save (one host synchronisation each), which is where a non-finite loss is
    caught. ``state.data_wait`` becomes the fraction of the loop's time this rank spent
    waiting for the next batch. ``prefetch_thread``: the batches are made in a background
    thread while the step runs, at the lowest CPU priority
    (:class:`utils.data.loader.ThreadPrefetcher`; the same batches in the same order)."""
    trainer.model.train()
    epoch, start = state.epoch, state.step_in_epoch
    batches: Iterator[Any] = epoch_batches(loader, epoch, n_batches, start)
    if unlabelled_loader is not None:
        batches = zip(
            batches, epoch_batches(unlabelled_loader, epoch, n_batches, start), strict=True
        )
    if prefetch_thread:
        batches = ThreadPrefetcher(batches, low_priority=True)
    try:
        return _train_batches(
            trainer, batches, state, device=device, n_batches=n_batches, logger=logger,
            log_every=log_every, checkpoint_every=checkpoint_every,
            save_checkpoint=save_checkpoint,
        )  # fmt: skip
    finally:
        if isinstance(batches, ThreadPrefetcher):
            batches.close()


def _train_batches(
    trainer: Trainer,
    batches: Iterable[Any],
    state: TrainState,
    *,
    device: torch.device,
    n_batches: int,
    logger: RunLogger | None,
    log_every: int,
    checkpoint_every: int | None,
    save_checkpoint: Callable[[], None] | None,
) -> dict[str, float]:
    """The step loop of :func:`train_one_epoch` over ``batches``."""
    model, precision = trainer.model, trainer.precision
    epoch, start = state.epoch, state.step_in_epoch
    sums = DeviceSums(state.sums)
    bar = logger.progress(batches, n_batches - start, f"train {epoch}") if logger else batches
    last_read = state.global_step

    def read_sums(also: dict[str, Tensor | float] | None = None) -> tuple[dict, dict]:
        """Host copy of the sums (and of ``also``, in the same transfer: one host sync);
        raises on a non-finite loss since the last read."""
        nonlocal last_read
        totals, extra = sums.read(also)
        # Every rank learns of a non-finite loss on any rank, so all stop together (a lone
        # raise would leave the others waiting in the next gradient all-reduce).
        bad = reduce_sum({"bad": float(not all(map(_finite, totals.values())))}, device)
        if bad["bad"]:
            raise FloatingPointError(
                f"non-finite loss at epoch {epoch} (on some rank), between steps {last_read} and "
                f"{state.global_step}: lower --lr or try --amp off"
            )
        last_read = state.global_step
        state.sums = totals
        return totals, extra

    # Time spent waiting for the next batch, against the whole loop's time: the data path's
    # share of a step (the loaders prefetch; a fast path waits for nothing).
    waited, t_loop = 0.0, time.perf_counter()
    batches_it = iter(bar)
    while True:
        t_wait = time.perf_counter()
        batch = next(batches_it, None)
        waited += time.perf_counter() - t_wait
        if batch is None:
            break
        ctx = StepContext(
            device, precision, epoch, state.global_step, state.step_in_epoch,
            None if trainer.ema is None else trainer.ema.module,
        )  # fmt: skip
        with precision.autocast():
            out = trainer.step(model, batch, ctx)
        backward_and_step(out.loss, model, trainer.optimizer, precision, trainer.grad_clip)
        if trainer.scheduler is not None:
            trainer.scheduler.step()
        if trainer.ema is not None:
            trainer.ema.update(model)
        if hasattr(trainer.step, "after_optimizer_step"):
            trainer.step.after_optimizer_step(model, ctx)
        state.global_step += 1
        state.step_in_epoch += 1
        n = out.batch_size
        sums.add({"loss": out.loss, **out.terms, "_seen": 1.0}, n)
        if logger is not None and state.global_step % log_every == 0:
            _, current = read_sums({"loss": out.loss, **out.terms})
            logger.scalars(current, state.global_step, "train_step/")
            logger.scalars({"lr": trainer.optimizer.param_groups[0]["lr"]}, state.global_step)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{current['loss']:.4f}")
        mid_epoch = state.step_in_epoch < n_batches
        # Under DDP the ranks agree through a collective: poll once per logging interval.
        poll = not torch.distributed.is_initialized() or state.global_step % log_every == 0
        if poll and mid_epoch and stop_agreed(device):  # (at an epoch's end, fit saves, stops)
            read_sums()
            if save_checkpoint is not None:
                save_checkpoint()
            state.stopped = True
            return {}
        if (
            checkpoint_every
            and save_checkpoint is not None
            and state.global_step % checkpoint_every == 0
            and mid_epoch
        ):
            read_sums()
            save_checkpoint()
    totals = reduce_sum(read_sums()[0], device)
    seen = max(totals.pop("_seen"), 1.0)
    if state.step_in_epoch > start:
        state.data_wait = waited / max(time.perf_counter() - t_loop, 1e-9)
    return {k: v / seen for k, v in totals.items()}


def stop_agreed(device: torch.device) -> bool:
    """Whether a stop signal reached any rank (collective: every rank calls it at the same
    step, so all of them stop together)."""
    return bool(reduce_sum({"stop": float(STOP.requested())}, device)["stop"])


def _finite(v: float) -> bool:
    return v == v and abs(v) != float("inf")


# --- the epoch loop ----------------------------------------------------------------------------
def fit(
    trainer: Trainer,
    train_loader: Iterable,
    val_loader: Iterable | None,
    *,
    epochs: int,
    run_dir: Path,
    args: dict[str, Any],
    dist: DistInfo,
    logger: RunLogger,
    state: TrainState | None = None,
    unlabelled_loader: Iterable | None = None,
    batches_per_epoch: int | None = None,
    val_batches: int | None = None,
    checkpoint_every: int | None = None,
    save_every_epochs: int | None = None,
    width_scale: float = WIDTH_SCALE,
    prefetch_thread: bool = False,
) -> dict[str, float]:
    """Train from ``state`` to the end of epoch ``epochs`` (1-based, inclusive).

    After every epoch: validate the network (``val_*``) and its EMA (``val_ema_*``), write
    ``run_dir/last.pt``, and ``run_dir/best.pt`` when the :attr:`Trainer.best_from` weights
    improve on validation (success rate, then mean best IoU); the test part never plays a part.
    With ``checkpoint_every`` N, ``last.pt`` is also written every N optimiser steps inside an
    epoch; with ``save_every_epochs`` K, ``epoch_<E>.pt`` is kept every K epochs. Rank 0
    writes; every rank takes part. Returns the last epoch's metrics.
    """
    state = state or TrainState()
    metrics: dict[str, float] = {}
    n_batches = epoch_length(train_loader, unlabelled_loader, batches_per_epoch)
    if val_loader is None:
        logger.print("no validation part: best.pt is not written; use last.pt")

    def save(name: str, kind: str, ckpt: dict[str, Any] | None = None) -> dict[str, Any]:
        ckpt = ckpt or trainer.checkpoint(state, args, metrics, kind)
        if dist.is_main:
            atomic_torch_save({**ckpt, "kind": kind}, run_dir / name)
        return ckpt

    def validate(model: nn.Module, prefix: str) -> tuple[float, float, list]:
        val = evaluate(
            model, val_loader, device=dist.device, precision=trainer.precision,
            width_scale=width_scale, max_batches=val_batches, n_examples=4, logger=logger,
        )  # fmt: skip
        metrics[f"{prefix}success"] = val.results.success_rate
        metrics[f"{prefix}iou"] = val.results.mean_best_iou
        shown_rates[prefix] = val.results.describe()
        metrics.update({f"{prefix}{k}": v for k, v in val.losses.items()})
        return val.results.success_rate, val.results.mean_best_iou, val.examples

    shown_rates: dict[str, str] = {}
    while state.epoch <= epochs:
        epoch = state.epoch
        t0 = time.perf_counter()
        terms = train_one_epoch(
            trainer, train_loader, state, device=dist.device, n_batches=n_batches,
            unlabelled_loader=unlabelled_loader, logger=logger,
            checkpoint_every=checkpoint_every, save_checkpoint=lambda: save("last.pt", "last"),
            prefetch_thread=prefetch_thread,
        )  # fmt: skip
        if state.stopped:
            raise Interrupted(
                STOP.signame or "a signal", run_dir / "last.pt",
                f"at epoch {epoch}, batch {state.step_in_epoch} of {n_batches}",
                trainer.meta.get("script"),
            )  # fmt: skip
        metrics = {f"train_{k}": v for k, v in terms.items()}
        improved = False
        if val_loader is not None:
            # Batch-norm statistics are per rank: validate (and save) rank 0's everywhere.
            broadcast_buffers(unwrap(trainer.model))
            if trainer.ema is not None:
                broadcast_buffers(trainer.ema.module)
            scores = {"model": validate(trainer.model, "val_")}
            if trainer.ema is not None:
                scores["ema"] = validate(trainer.ema.module, "val_ema_")
            success, iou, examples = scores[trainer.best_from]
            improved = (success, iou) > (state.best_success, state.best_iou)
            if improved:
                state.best_success, state.best_iou, state.best_epoch = success, iou, epoch
            logger.images("val/maps", example_panels(examples, width_scale), epoch)
        metrics["lr"] = trainer.optimizer.param_groups[0]["lr"]
        logger.scalars(metrics, epoch, "epoch/")
        wait, state.data_wait = state.data_wait, None
        if wait is not None:
            logger.scalars({"data_wait": wait}, epoch, "epoch/")
        state.epoch, state.step_in_epoch, state.sums = epoch + 1, 0, {}
        # best.pt first: a run killed between the two writes redoes this epoch on resume.
        ckpt = trainer.checkpoint(state, args, metrics, "last")
        if improved:
            save("best.pt", "best", ckpt)
        save("last.pt", "last", ckpt)
        if save_every_epochs and epoch % save_every_epochs == 0:
            save(f"epoch_{epoch:03d}.pt", "snapshot", ckpt)
        shown: dict[str, Any] = {k: metrics[k] for k in ("train_loss", "val_loss") if k in metrics}
        if "val_" in shown_rates:  # rate [95% interval] of n images
            shown["val_success"] = shown_rates["val_"]
            shown["val_iou"] = metrics["val_iou"]
        if "val_ema_" in shown_rates:
            shown["val_ema_success"] = shown_rates["val_ema_"]
        shown["lr"] = metrics["lr"]
        if wait is not None:
            shown["data_wait"] = f"{wait:.0%}"
        logger.print(
            format_epoch_summary(epoch, epochs, shown, time.perf_counter() - t0)
            + (" | best" if improved else "")
        )
        if epoch < epochs and stop_agreed(dist.device):
            raise Interrupted(
                STOP.signame or "a signal",
                run_dir / "last.pt",
                f"after epoch {epoch}",
                trainer.meta.get("script"),
            )
    return metrics
