"""The run harness: everything around the epoch loop that every training script shares.

A training script is flags, a step and one call::

    def main(args):
        return harness.run_training(args, lambda run, model: SupervisedStep())

:func:`parse_training_args` merges ``--resume`` with the run's stored arguments and applies the
resume policy; :func:`run_training` does the rest: device, precision, distributed set-up,
seeds, the run folder and its ``args.json``, the model (rebuilt from the checkpoint on
resume), data, optimiser, schedule, EMA, restoring every piece of state, :func:`fit`, and
scoring the chosen checkpoint on the test part (``test_results.json``).

Resume policy (README, Resuming): a run resumes from its ``last.pt`` in its own folder with its
own arguments. Flags in :data:`utils.cli.RESUME_OVERRIDES` may change and say what they do;
any other flag that differs is refused. A ``best.pt`` is refused unless ``--fork`` asks
for it, and then continues in a new run folder, so the old run's ``last.pt`` is never touched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from models import count_parameters, get_network
from utils import cli
from utils.atomic import atomic_write_json, remove_leftovers
from utils.checkpoint import load_checkpoint, load_weights, unwrap
from utils.data.build import RunData, build_run_data, data_fingerprint
from utils.data.loader import make_loader
from utils.distributed import DistInfo, barrier, cleanup, init_distributed
from utils.ema import ModelEma
from utils.entrypoint import STOP, Interrupted
from utils.grasp import WIDTH_SCALE
from utils.logger import RunLogger
from utils.optim import build_optimizer, build_scheduler, set_weight_decay
from utils.post_process import DECODING_VERSION
from utils.precision import (
    Precision,
    agreed_precision,
    cpu_has_bf16_instructions,
    resolve_precision,
)
from utils.scoring import evaluate
from utils.seeding import seed_everything
from utils.steps import Step
from utils.training import Trainer, TrainState, epoch_length, fit, stop_agreed

#: Flags holding paths: equal on resume when they name the same file, however spelled.
_PATH_FLAGS = ("dataset_path", "object_map", "cache_dir", "outdir", "logdir", "resume",
               "benchmark_path", "pretrained_backbone", "teacher", "unlabeled_path")  # fmt: skip


# --- flags -------------------------------------------------------------------------------------
def training_parser(description: str) -> argparse.ArgumentParser:
    """The flags every training script shares (model, data, optimisation, runtime, output,
    checkpoints/resume/EMA); a script adds its own groups to it."""
    p = cli.ArgumentParser(description=description)
    cli.add_model_args(p)
    cli.add_data_args(p)
    cli.add_optim_args(p)
    cli.add_runtime_args(p)
    cli.add_compile_arg(p)
    cli.add_prefetch_arg(p)
    cli.add_output_args(p)
    cli.add_run_args(p)
    return p


def _resolved(v: Any) -> Any:
    """A path flag's value (one path or a list of them) as absolute paths."""
    if isinstance(v, str):
        return str(Path(v).expanduser().resolve())
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return [str(Path(x).expanduser().resolve()) for x in v]
    return v


def _same(key: str, a: Any, b: Any) -> bool:
    if key in _PATH_FLAGS:
        return _resolved(a) == _resolved(b)
    return a == b


#: Flags whose stored value is this machine's resolution of the default (the worker and
#: thread rule of :func:`utils.cli.resolve_workers_threads`): a resume inherits what the run
#: was given (checkpoint ``given_flags``), so a default is resolved again by the rule on the
#: machine the resume runs on (on the same machine: the same values, so the same numerics).
_MACHINE_FLAGS = ("num_workers", "threads")


def parse_training_args(
    parser: argparse.ArgumentParser, argv: list[str] | None = None, script: str | None = None
) -> argparse.Namespace:
    """Parse the flags; with ``--resume``, start from the run's stored arguments.

    The checkpoint is read once, here, and kept as ``args._resume_ckpt`` (attributes starting
    with ``_`` are not flags and are never saved); the flags that differ from the run's and
    are allowed to are in ``args._resume_changes`` as ``{flag: (old, new)}``. ``script``
    (``train_net.py``, ...) is recorded in every checkpoint as ``args._script``; a checkpoint
    another script wrote is refused (its flags and step would silently fall back to this
    one's).
    """
    args = parser.parse_args(argv)
    if args.resume:
        ckpt = load_checkpoint(args.resume)
        wrote = ckpt.get("script")
        if script is not None and wrote is not None and wrote != script:
            parser.error(
                f"--resume {args.resume}: a {wrote} run, this is {script}: resume it with "
                f"'python {wrote} --resume {args.resume}'"
            )
        # Flags added after the run was written: the behaviour it was trained with.
        stored = {**cli.LEGACY_DEFAULTS, **ckpt.get("args", {}), **ckpt.get("given_flags", {})}
        fresh = vars(parser.parse_args([]))
        # Switches (store_true flags such as --vis and --fork) are this command's own: a
        # stored True could never be switched off again.
        switches = {a.dest for a in parser._actions if isinstance(a, argparse._StoreTrueAction)}
        inherit = {k: v for k, v in stored.items() if k in fresh and k not in switches}
        parser.set_defaults(**inherit)
        args = parser.parse_args(argv)
        changes = {}
        for k, new in vars(args).items():
            if k in switches or k == "resume":
                continue
            old = stored.get(k, fresh.get(k))
            if _same(k, old, new):
                continue
            if k not in cli.RESUME_OVERRIDES:
                parser.error(
                    f"--{k.replace('_', '-')} {new} differs from the resumed run's {old}: a "
                    "resumed run keeps its network, data, split, seed and batches; start a new "
                    "run to change it"
                )
            if k in ("outdir", "description") and not args.fork:
                parser.error(
                    f"--{k} applies only with --fork (a resumed run stays in its own folder)"
                )
            changes[k] = (old, new)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world != int(ckpt.get("world_size", world)):
            parser.error(
                f"--resume {args.resume}: the run used {ckpt['world_size']} process(es), this "
                f"command {world}: a resumed run keeps its number of processes (they shard "
                "the data and the step count)"
            )
        completed = int(ckpt.get("epoch", 0))
        if args.epochs is not None and args.epochs <= completed:
            # A mid-epoch checkpoint too: the epoch in progress is completed + 1.
            parser.error(
                f"--epochs {args.epochs}: the resumed run has already completed {completed} "
                f"epoch(s); give --epochs {completed + 1} or more to continue it"
            )
        _check_resume_kind(args, ckpt, parser)
        args._resume_ckpt = ckpt
        args._precision_requested = ckpt.get("precision_requested")
        raw = sys.argv[1:] if argv is None else argv
        args._amp_given = any(a == "--amp" or a.startswith("--amp=") for a in raw)
        args._resume_changes = {k: v for k, v in changes.items() if cli.RESUME_OVERRIDES[k]}
    from utils.data.benchmark import is_benchmark_folder

    if args.dataset == "benchmark" or (
        args.dataset_path and is_benchmark_folder(args.dataset_path)
    ):
        parser.error(
            "--dataset benchmark is the held-out benchmark set: it is scored, never trained on"
            if args.dataset == "benchmark"
            else f"--dataset-path {args.dataset_path} holds a held-out set (the benchmark or "
            "the confirmation set): it is scored, never trained on"
        )
    cli.check_args(args, parser)
    args._script = script
    # Absolute paths: args.json says exactly which files a run used, from any folder.
    for k in _PATH_FLAGS:
        if k != "resume" and getattr(args, k, None) is not None:
            setattr(args, k, _resolved(getattr(args, k)))
    return args


def _check_resume_kind(
    args: argparse.Namespace, ckpt: dict[str, Any], parser: argparse.ArgumentParser
) -> None:
    kind = ckpt.get("kind", "best" if Path(args.resume).name == "best.pt" else "last")
    ckpt["kind"] = kind  # older checkpoints: told by the file name
    if kind != "last" and not args.fork:
        parser.error(
            f"--resume {args.resume} is a {kind} checkpoint (epoch {ckpt.get('epoch')}), not "
            "a run's last.pt: resume the last.pt to continue the run, or add --fork to "
            "continue from this one in a new run folder"
        )
    if "optimizer" not in ckpt:
        parser.error(f"--resume {args.resume}: this checkpoint holds no optimiser state")


# --- set-up ------------------------------------------------------------------------------------
@dataclass
class RunContext:
    """What set-up made: the flags, this process's place, precision, the run folder, the
    logger, and the checkpoint being resumed (None for a new run)."""

    args: argparse.Namespace
    dist: DistInfo
    precision: Precision
    run_dir: Path
    logger: RunLogger
    resume: dict[str, Any] | None = None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    #: Resumed into a new run folder (--fork, needed for a best.pt or epoch_N.pt).
    forked: bool = False
    #: The run's data, once built.
    data: RunData | None = None


def make_run_dir(args: argparse.Namespace, dist: DistInfo, fork: bool = False) -> Path:
    """``<outdir>/<timestamp>_<description>``, named by rank 0 and shared with the others; a
    resumed run keeps its folder (unless ``fork``: a new one)."""
    if args.resume and not fork:
        return Path(args.resume).resolve().parent
    stamp = datetime.now().strftime("%y%m%d_%H%M%S")
    name = f"{stamp}_{args.description}" if args.description else stamp
    run_dir = Path(args.outdir) / name
    if dist.is_main:
        # Two runs started in the same second must not share a folder.
        base, n = run_dir, 1
        while run_dir.exists():
            n += 1
            run_dir = base.with_name(f"{base.name}_{n}")
        try:
            run_dir.mkdir(parents=True)
        except OSError as e:
            raise ValueError(
                f"--outdir {args.outdir}: cannot create the run folder {run_dir.name} there "
                f"({e.strerror})"
            ) from None
    if dist.distributed:
        names = [str(run_dir)]
        torch.distributed.broadcast_object_list(names, src=0)
        run_dir = Path(names[0])
    barrier()
    return run_dir


def setup_run(args: argparse.Namespace) -> tuple[DistInfo, Precision]:
    """Device, distributed process group, threads, seeds and precision."""
    dist = init_distributed(args.device)
    # Cores are shared by the processes of this machine (torchrun's LOCAL_WORLD_SIZE).
    local = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size))
    args._given_flags = {k: getattr(args, k) for k in _MACHINE_FLAGS}
    args.num_workers, args.threads = cli.resolve_workers_threads(
        args.num_workers, args.threads, local
    )
    torch.set_num_threads(args.threads)
    args._prefetch_thread = cli.use_prefetch_thread(
        getattr(args, "prefetch_thread", "off"), args.num_workers, args.threads, local
    )
    seed_everything(args.seed + dist.rank)
    _reresolve_emulated_bf16(args, dist.device)
    return dist, resolve_precision(args.amp, args.channels_last, dist.device)


def _reresolve_emulated_bf16(args: argparse.Namespace, device: torch.device) -> None:
    """A run stores ``--amp auto`` as what it resolved to (so a resume on the same machine keeps
    the same numerics); resumed without ``--amp`` on a CPU that has no bf16 units, a stored bf16
    from ``auto`` would be emulated, about 10x slower, so ``auto`` is resolved again here
    (fp32; the weights carry on, the rounding changes). ``args._precision_requested`` is what the
    run was given, kept in its checkpoints."""
    requested = getattr(args, "_precision_requested", None)
    if requested is None:  # a new run (or a checkpoint from before this was recorded)
        requested = {"amp": args.amp, "channels_last": args.channels_last}
    args._precision_requested = requested
    if (
        requested.get("amp") == "auto"
        and args.amp == "bf16"
        and not getattr(args, "_amp_given", False)
        and device.type == "cpu"
        and not cpu_has_bf16_instructions()
    ):
        args.amp = "off"  # what auto resolves to on such a CPU
        args._precision_note = (
            "--amp auto had chosen bf16 on the machine that started this run; this CPU has no "
            "bf16 units (bf16 would be emulated, ~10x slower), so the run goes on in fp32 "
            "(give --amp bf16 to keep bf16)"
        )


def build_model(args: argparse.Namespace, dist: DistInfo, precision: Precision) -> nn.Module:
    """The network of the flags, or of the resumed checkpoint (its weights come with the rest
    of the state in :meth:`Trainer.restore`)."""
    ckpt = getattr(args, "_resume_ckpt", None)
    if ckpt is not None:
        net = ckpt["network"]
        try:
            model = get_network(net["name"], **net["kwargs"])
        except (TypeError, KeyError) as e:
            raise ValueError(f"{args.resume}: cannot rebuild its network ({e})") from None
    else:
        model = get_network(args.network, **cli.model_kwargs_from_args(args))
    model = model.to(dist.device)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def tune_precision(
    args: argparse.Namespace, dist: DistInfo, precision: Precision, model: nn.Module
) -> Precision:
    """``--amp auto --channels-last auto`` on a CPU with bf16 instructions: the faster of bf16 and
    fp32 (both channels_last) for this network and batch, timed at the start
    (:func:`utils.precision.choose_precision`); every rank takes rank 0's choice, and the
    resolved flags are what args.json records (so a resumed run keeps them)."""
    shape = (args.batch_size, unwrap(model).input_channels, args.input_size, args.input_size)
    chosen = agreed_precision(
        args.amp, args.channels_last, dist.device, model, shape, is_main=dist.is_main
    )
    if chosen is None:
        return precision
    args.amp, args.channels_last = ("off" if chosen.dtype is None else "bf16"), "on"
    return chosen


def _check_same_data(
    args: argparse.Namespace, ckpt: dict[str, Any], data: RunData, fingerprint: str
) -> None:
    """A resumed run must read the images it was written with: files added to or removed
    from the dataset folder since would move images between the parts (test images into
    training) and change the epoch's batches (``fingerprint``: :func:`data_fingerprint` of
    ``data``). Checkpoints from before the fingerprint pass."""
    was = ckpt.get("data_fingerprint")
    if was is not None and was != fingerprint:
        raise ValueError(
            f"--resume {args.resume}: the dataset's images or split differ from the run's "
            f"(now {len(data.dataset)} images in {args.dataset_path or args.dataset}): a "
            "resumed run must read the same images; start a new run on this data"
        )
    n = epoch_length(data.train_loader, data.unlabelled_loader, args.batches_per_epoch)
    if ckpt.get("step_in_epoch") and ckpt.get("epoch_length", n) != n:
        raise ValueError(
            f"--resume {args.resume}: stopped at batch {ckpt['step_in_epoch']} of "
            f"{ckpt['epoch_length']}-batch epochs, this command's epochs have {n}"
        )


def _apply_resume_changes(run: RunContext, trainer: Trainer, state: TrainState, n: int) -> None:
    """The overrides of :data:`utils.cli.RESUME_OVERRIDES` that change the optimisation."""
    args, log = run.args, run.logger
    for k, (old, new) in run.changes.items():
        if k == "epochs":
            if trainer.scheduler is not None:
                trainer.scheduler.replan(args.epochs * n)
        elif k == "lr":
            if trainer.scheduler is not None:
                trainer.scheduler.rescale(new)
            else:
                for g in trainer.optimizer.param_groups:
                    g["lr"] = new
        elif k == "weight_decay":
            set_weight_decay(trainer.optimizer, new)
        log.print(f"resume: --{k.replace('_', '-')} {old} -> {new}: {cli.RESUME_OVERRIDES[k]}")


# --- the run -----------------------------------------------------------------------------------
def run_training(
    args: argparse.Namespace,
    make_step: Callable[[RunContext, nn.Module], Step],
    make_data: Callable[[argparse.Namespace, DistInfo], RunData] = build_run_data,
) -> dict[str, Any]:
    """Set up, train, pick the best checkpoint and score it on the test part.

    ``make_step(run, model)`` returns the script's step (it may build a teacher, say);
    ``make_data(args, dist)`` the data (default: the flags' dataset and split). Returns the
    summary that ``test_results.json`` holds.
    """
    dist, precision = setup_run(args)
    logger = RunLogger(None, enabled=False)
    finished, run_dir, new_dir = False, None, False
    # SIGTERM / SIGINT: finish the step, save last.pt, exit 75 (utils/entrypoint.py).
    with STOP.installed():
        try:
            model = build_model(args, dist, precision)
            # The data first: a bad dataset flag fails at once, not after the timing.
            data = make_data(args, dist)
            resume = getattr(args, "_resume_ckpt", None)
            fingerprint = data_fingerprint(data)  # once: checked here, stored in checkpoints
            if resume is not None:
                _check_same_data(args, resume, data, fingerprint)
            precision = tune_precision(args, dist, precision, model)
            fork = resume is not None and (resume["kind"] != "last" or args.fork)
            run_dir = make_run_dir(args, dist, fork=fork)
            new_dir = resume is None or fork
            if dist.is_main and not new_dir:
                remove_leftovers(run_dir)  # temporary files of writes killed outright
            logger = RunLogger(args.logdir or run_dir / "tensorboard", enabled=dist.is_main)
            run = RunContext(
                args, dist, precision, run_dir, logger, resume,
                getattr(args, "_resume_changes", {}), fork,
            )  # fmt: skip
            result = _train_and_test(run, model, data, make_step, fingerprint)
            finished = True
            return result
        except Interrupted:
            finished = True  # every rank saved and stopped at the same step
            raise
        finally:
            logger.close()
            cleanup(finished)
            if not finished and new_dir and dist.is_main and run_dir is not None:
                _drop_empty_run(run_dir)


def _drop_empty_run(run_dir: Path) -> None:
    """A new run that failed before writing any checkpoint leaves no folder behind (it
    would hold only args.json and an empty TensorBoard log)."""
    import shutil

    if run_dir.is_dir() and not any(run_dir.glob("*.pt")):
        shutil.rmtree(run_dir, ignore_errors=True)


def _train_and_test(
    run: RunContext, model: nn.Module, data: RunData, make_step: Callable, fingerprint: str
) -> dict[str, Any]:
    args, dist, logger = run.args, run.dist, run.logger
    run.data = data
    if dist.is_main and data.labelled_ids is not None:
        atomic_write_json(run.run_dir / "labeled_subset.json", data.labelled_ids)
    step = make_step(run, model)
    if dist.distributed:
        model = DistributedDataParallel(
            model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
        )
    # After the DDP wrap, which broadcast rank 0's weights: every rank averages the same start.
    ema = ModelEma(model, args.model_ema_decay) if args.model_ema else None
    if args.compile:
        model = torch.compile(model)  # shares the parameters; checkpoints unwrap it
    # A step's own trainable parameters (distillation's feature adapter) learn with the model.
    optimizer = build_optimizer(args, model, list(getattr(step, "parameters", list)()))
    n = epoch_length(data.train_loader, data.unlabelled_loader, args.batches_per_epoch)
    scheduler = build_scheduler(args, optimizer, args.epochs * n)
    meta = {"data_fingerprint": fingerprint, "epoch_length": n,
            "given_flags": dict(getattr(args, "_given_flags", {})),
            "precision_requested": dict(getattr(args, "_precision_requested", None) or {})}  # fmt: skip
    if getattr(args, "_script", None):
        meta["script"] = args._script
    trainer = Trainer(
        model, optimizer, step, run.precision, scheduler, ema, args.grad_clip, args.best_from,
        meta,
    )  # fmt: skip
    state = TrainState()
    if run.resume is not None:
        state = trainer.restore(run.resume, dist.rank, str(args.resume))
        if run.forked:
            # A new run from a best.pt: its own best is still to be found.
            state.best_success, state.best_iou, state.best_epoch = -1.0, -1.0, 0
        _apply_resume_changes(run, trainer, state, n)
    # After the restore and the resume changes: a resume refused there leaves the run's
    # args files as they were (a changed dataset is refused before the run folder is touched).
    if dist.is_main:
        resumed = run.resume is not None and not run.forked
        cli.save_args(args, run.run_dir / ("args_resume.json" if resumed else "args.json"))

    net = unwrap(model)
    logger.print(
        f"{net.network_name} {json.dumps(net.network_kwargs)} | "
        f"{count_parameters(net) / 1e6:.3f} M parameters | {dist.device} x{dist.world_size} "
        f"{run.precision.describe()} | {args.num_workers} data worker(s), {args.threads} "
        "thread(s)"
        + (" + a loading thread" if args._prefetch_thread else "")
        + (f" | EMA {args.model_ema_decay} (best.pt from {args.best_from})" if ema else "")
        + f"\n{data.describe(args)} | input {args.input_size}px | run folder {run.run_dir}"
    )
    if run.resume is not None:
        where = f"epoch {state.epoch}" + (
            f", batch {state.step_in_epoch + 1}" if state.step_in_epoch else ""
        )
        logger.print(
            f"resuming at {where} from {args.resume}"
            + (" into a new run folder (--fork)" if run.forked else "")
            + ("" if "rng" in run.resume else " (an older checkpoint: random states not saved)")
        )
        if getattr(args, "_precision_note", None):
            logger.print(args._precision_note)
    if stop_agreed(dist.device):  # a signal during set-up: nothing trained, nothing to save
        raise KeyboardInterrupt
    t0 = time.perf_counter()
    metrics = fit(
        trainer, data.train_loader, data.val_loader, epochs=args.epochs, run_dir=run.run_dir,
        args=cli.public_args(args), dist=dist, logger=logger, state=state,
        unlabelled_loader=data.unlabelled_loader, batches_per_epoch=args.batches_per_epoch,
        val_batches=args.val_batches, checkpoint_every=args.checkpoint_every or None,
        save_every_epochs=args.save_every_epochs or None,
        prefetch_thread=args._prefetch_thread,
    )  # fmt: skip
    result: dict[str, Any] = {"train_seconds": time.perf_counter() - t0, **metrics}
    result.update(score_test(run, unwrap(model), data, {"train_seconds": result["train_seconds"]}))
    return result


def score_test(
    run: RunContext, model: nn.Module, data: RunData, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Score the run's chosen checkpoint (best.pt, else last.pt; the weights it names) once
    on the test part, which played no part in choosing it, and on the synthetic benchmark set
    (``--benchmark-images``, 0: skip); rank 0 writes test_results.json."""
    from utils.data.benchmark import benchmark_name
    from utils.data.build import benchmark_dataset, describe_split

    args, dist, logger = run.args, run.dist, run.logger
    barrier()
    final = run.run_dir / ("best.pt" if (run.run_dir / "best.pt").exists() else "last.pt")
    out: dict[str, Any] = {"checkpoint": str(final), **(extra or {})}
    if not final.exists():
        return out
    ckpt = load_checkpoint(final)
    weights = load_weights(model, ckpt, final, "auto")
    out.update(
        weights=weights,
        checkpoint_kind=(
            f"best.pt: epoch {ckpt['epoch']}, chosen on the validation part"
            if final.name == "best.pt"
            else f"last.pt: epoch {ckpt['epoch']} (no validation part)"
        ),
        dataset=args.dataset,
        split=describe_split(args),
    )
    report: dict[str, Any] = {}
    parts = [("test", data.test_loader, data.dataset, f"{args.dataset} test part")]
    if args.benchmark_images:
        if not dist.is_main:
            barrier()  # rank 0 generates the benchmark set first
        bench = benchmark_dataset(args)
        if dist.is_main:
            barrier()
        loader = make_loader(
            bench, list(range(len(bench))), args.batch_size, shuffle=False, seed=0,
            num_workers=args.num_workers, rank=dist.rank, world_size=dist.world_size,
        )  # fmt: skip
        parts.append(("benchmark", loader, bench, benchmark_name(len(bench), bench.root)))
    for name, loader, dataset, label in parts:
        if loader is None:
            continue
        res = evaluate(
            model, loader, device=dist.device, precision=run.precision, logger=logger,
            desc=name, n_examples=8 if args.vis and name == "test" else 0,
            sample_id=dataset.sample_id,
        )  # fmt: skip
        out.update(
            {
                f"{name}_success": res.results.success_rate,
                f"{name}_success_ci95": list(res.results.success_interval),
                f"{name}_iou": res.results.mean_best_iou,
                f"{name}_images": len(res.results),
            }
        )
        report[name] = {"scored": label, "decoding": DECODING_VERSION, **res.results.to_dict()}
        logger.print(
            f"{label} ({final.name}, {weights}): {res.results.describe()} images succeed, "
            f"mean best IoU {res.results.mean_best_iou:.3f}"
        )
        if (hint := res.results.no_grasp_hint()) is not None:
            logger.print(f"  note: {hint}")
        if name == "test" and args.vis and dist.is_main:
            from utils.visualisation import example_panels, image_grid, save_png

            panels = example_panels(res.examples, WIDTH_SCALE)
            save_png(run.run_dir / "test_examples.png", image_grid(list(panels), 1))
    if dist.is_main and report:
        test = report.pop("test", None) or {"summary": {}, "per_image": {}}
        test["summary"].update(out)
        test.update(report)
        atomic_write_json(run.run_dir / "test_results.json", test, indent=1)
    return out
