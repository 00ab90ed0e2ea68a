"""Train a grasp network (GG-CNN, GG-CNN2, PSPNet) with supervised targets.

    python train_net.py --network pspnet                      # synthetic data, no download
    python train_net.py --network ggcnn --dataset cornell --dataset-path <path>
    torchrun --nproc_per_node=2 train_net.py --network pspnet # DistributedDataParallel

Each run writes ``<outdir>/<timestamp>_<description>/``: ``args.json``, ``last.pt`` (every
epoch), ``best.pt`` (best validation success rate), ``tensorboard/`` and, at the end,
``test_results.json`` (best.pt scored on the held-out test part).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from models import count_parameters, get_network
from utils import cli
from utils.checkpoint import load_checkpoint, unwrap
from utils.distributed import DistInfo, barrier, cleanup, init_distributed
from utils.grasp import WIDTH_SCALE
from utils.logger import RunLogger
from utils.training import (
    FitState,
    Precision,
    SupervisedStep,
    evaluate,
    example_panels,
    fit,
    resolve_precision,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_model_args(p)
    cli.add_data_args(p)
    cli.add_optim_args(p)
    cli.add_runtime_args(p)
    cli.add_output_args(p)
    args = p.parse_args(argv)
    if args.resume:
        # A resumed run continues with the arguments it was started with; flags given now
        # override them (e.g. more --epochs), except the ones that define the data split.
        stored = load_checkpoint(args.resume).get("args", {})
        p.set_defaults(**{k: v for k, v in stored.items() if hasattr(args, k)})
        args = p.parse_args(argv)
        for k in cli.DATA_FLAGS:
            if k in stored and getattr(args, k) != stored[k]:
                flag = "--" + k.replace("_", "-")
                p.error(f"{flag} {getattr(args, k)} differs from the resumed run's {stored[k]}: "
                        "a resumed run keeps its data and split")  # fmt: skip
    cli.check_args(args, p)
    return args


def make_run_dir(args: argparse.Namespace, dist: DistInfo) -> Path:
    """``<outdir>/<timestamp>_<description>``, named by rank 0 and shared with the others."""
    if args.resume:
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
        run_dir.mkdir(parents=True)
    if dist.distributed:
        names = [str(run_dir)]
        torch.distributed.broadcast_object_list(names, src=0)
        run_dir = Path(names[0])
    barrier()
    return run_dir


def build_data(args: argparse.Namespace, dist: DistInfo):
    """Datasets and loaders. Rank 0 builds first, so only it ever generates the synthetic set."""
    if not dist.is_main:
        barrier()
    train_ds = cli.dataset_from_args(args, augment=args.augment)
    eval_ds = cli.dataset_from_args(args, augment=False)
    if dist.is_main:
        barrier()
    split = cli.split_from_args(args, eval_ds)
    if not split["train"]:
        raise ValueError(f"--split {args.split}: the training part is empty")
    common = dict(num_workers=args.num_workers, rank=dist.rank, world_size=dist.world_size)
    train_loader = cli.make_loader(
        train_ds,
        split["train"],
        args.batch_size,
        shuffle=args.ds_shuffle,
        seed=args.seed,
        drop_last=len(split["train"]) >= args.batch_size * dist.world_size,
        **common,
    )
    val_loader = (
        cli.make_loader(eval_ds, split["val"], args.batch_size, shuffle=False, seed=0, **common)
        if split["val"]
        else None
    )
    test_loader = (
        cli.make_loader(eval_ds, split["test"], args.batch_size, shuffle=False, seed=0, **common)
        if split["test"]
        else None
    )
    return eval_ds, split, train_loader, val_loader, test_loader


def main(args: argparse.Namespace) -> dict:
    dist = init_distributed(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed + dist.rank)
    precision: Precision = resolve_precision(args.amp, args.channels_last, dist.device)

    resume_ckpt = load_checkpoint(args.resume) if args.resume else None
    if resume_ckpt is not None:
        net = resume_ckpt["network"]
        model = get_network(net["name"], **net["kwargs"])
        model.load_state_dict(resume_ckpt["model"])
    else:
        model = get_network(args.network, **cli.model_kwargs_from_args(args))
    model = model.to(dist.device)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    eval_ds, split, train_loader, val_loader, test_loader = build_data(args, dist)

    run_dir = make_run_dir(args, dist)
    logger = RunLogger(args.logdir or run_dir / "tensorboard", enabled=dist.is_main)
    if dist.is_main:
        cli.save_args(args, run_dir / ("args.json" if not args.resume else "args_resume.json"))
    if dist.distributed:
        model = DistributedDataParallel(
            model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
        )

    optimizer = cli.build_optimizer(args, model)
    steps_per_epoch = args.batches_per_epoch or len(train_loader)
    scheduler = cli.build_scheduler(args, optimizer, args.epochs * steps_per_epoch)
    state = FitState()
    if resume_ckpt is not None:
        optimizer.load_state_dict(resume_ckpt["optimizer"])
        if scheduler is not None and "scheduler" in resume_ckpt:
            scheduler.load_state_dict(resume_ckpt["scheduler"])
        if precision.scaler is not None and "scaler" in resume_ckpt:
            precision.scaler.load_state_dict(resume_ckpt["scaler"])
        state = FitState(
            epoch=int(resume_ckpt["epoch"]) + 1,
            global_step=int(resume_ckpt.get("global_step", 0)),
            best_success=float(resume_ckpt.get("best_success", -1.0)),
            best_iou=float(resume_ckpt.get("best_iou", -1.0)),
        )

    net = unwrap(model)
    logger.print(
        f"{net.network_name} {json.dumps(net.network_kwargs)} | "
        f"{count_parameters(net) / 1e6:.3f} M parameters | {dist.device} x{dist.world_size} "
        f"{precision.describe()}\n"
        f"{args.dataset}: {len(eval_ds)} images -> train {len(split['train'])} / "
        f"val {len(split['val'])} / test {len(split['test'])} ({args.split_by}-wise) | "
        f"input {args.input_size}px | run folder {run_dir}"
    )
    if state.epoch > 1:
        logger.print(f"resuming at epoch {state.epoch} from {args.resume}")
    t0 = time.perf_counter()
    metrics = fit(
        model=model,
        step=SupervisedStep(precision),
        optimizer=optimizer,
        scheduler=scheduler,
        train_loader=train_loader,
        val_loader=val_loader,
        epochs=args.epochs,
        run_dir=run_dir,
        args=vars(args),
        dist=dist,
        precision=precision,
        logger=logger,
        state=state,
        batches_per_epoch=args.batches_per_epoch,
        val_batches=args.val_batches,
        grad_clip=args.grad_clip,
    )
    train_seconds = time.perf_counter() - t0

    # Score the chosen checkpoint once on the test part, which played no part in choosing it.
    barrier()
    final = run_dir / ("best.pt" if (run_dir / "best.pt").exists() else "last.pt")
    result: dict = {"train_seconds": train_seconds, "checkpoint": str(final), **metrics}
    if test_loader is not None and final.exists():
        unwrap(model).load_state_dict(load_checkpoint(final)["model"])
        test = evaluate(
            model,
            test_loader,
            device=dist.device,
            precision=precision,
            logger=logger,
            desc="test",
            n_examples=8 if args.vis else 0,
            sample_id=eval_ds.sample_id,
        )
        result.update(
            test_success=test.results.success_rate,
            test_iou=test.results.mean_best_iou,
            test_images=len(test.results),
        )
        logger.print(
            f"test ({final.name}): {test.results.success_rate:.1%} success over "
            f"{len(test.results)} images, mean best IoU {test.results.mean_best_iou:.3f} | "
            f"trained in {train_seconds / 60:.1f} min"
        )
        if dist.is_main:
            report = test.results.to_dict()
            report["summary"].update(result)
            (run_dir / "test_results.json").write_text(json.dumps(report, indent=1) + "\n")
            if args.vis:
                from utils.visualisation import image_grid, save_png

                panels = example_panels(test.examples, WIDTH_SCALE)
                save_png(run_dir / "test_examples.png", image_grid(list(panels), 1))
    logger.close()
    cleanup()
    return result


if __name__ == "__main__":
    cli.run_main(main, parse_args)
