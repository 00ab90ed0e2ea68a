"""Training and inference throughput of each network, fp32 against bf16 autocast + channels_last.

    python benchmarks/train_speed.py                   # all networks, 224 px, this CPU
    python benchmarks/train_speed.py --size 300 --device cuda

Prints a markdown table: images/s for one optimiser step (forward, backward, AdamW) in each
precision, the speed-up measured in the same run, and inference ms/image. Timings are the
median of ``--repeats`` steps after a warm-up step, on random inputs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import count_parameters, get_network  # noqa: E402
from utils.precision import resolve_precision  # noqa: E402
from utils.training import backward_and_step  # noqa: E402

CONFIGS = {
    "ggcnn": ("ggcnn", {}),
    "ggcnn2": ("ggcnn2", {}),
    "pspnet-r18 os32": ("pspnet", {"backbone": "resnet18", "output_stride": 32}),
    "pspnet-r18 os16": ("pspnet", {"backbone": "resnet18", "output_stride": 16}),
    "pspnet-r18 os8": ("pspnet", {"backbone": "resnet18", "output_stride": 8}),
    "pspnet-r50 os16": ("pspnet", {"backbone": "resnet50", "output_stride": 16}),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn, device: torch.device, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    times = []
    for i in range(repeats + 1):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        if i:  # the first call is warm-up (kernel selection, allocations)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_train(model, precision, device, batch: int, size: int, repeats: int) -> float:
    """Images per second of full optimiser steps."""
    model = model.to(device).train()
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 1, size, size, device=device)
    y = torch.randn(batch, 4, size, size, device=device) * 0.1
    if precision.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with precision.autocast():
            main, aux = model(x, with_aux=True)
            loss = model.loss_from_outputs(main, aux, y)["loss"]
        backward_and_step(loss, model, opt, precision)

    return batch / median_seconds(step, device, repeats)


@torch.no_grad()
def time_infer(model, precision, device, batch: int, size: int, repeats: int) -> float:
    """Milliseconds per image of the forward pass in eval mode."""
    model = model.to(device).eval()
    x = torch.randn(batch, 1, size, size, device=device)
    if precision.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def forward() -> None:
        with precision.autocast():
            model(x)

    return 1000 * median_seconds(forward, device, repeats) / batch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    fp32 = resolve_precision("off", "off", device)
    fast = resolve_precision("auto" if device.type == "cuda" else "bf16", "on", device)
    print(
        f"{device} ({torch.get_num_threads()} threads), {args.size} px, batch {args.batch_size}, "
        f"median of {args.repeats} steps; fast = {fast.describe()}"
    )
    print()
    print(
        "| network | parameters | train fp32 (img/s) | train fast (img/s) | speed-up | "
        "inference fp32 (ms/img) | inference fast (ms/img) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.models:
        net, kw = CONFIGS[name]
        torch.manual_seed(0)
        model = get_network(net, **kw)
        params = count_parameters(model) / 1e6
        tr32 = time_train(model, fp32, device, args.batch_size, args.size, args.repeats)
        inf32 = time_infer(model, fp32, device, args.batch_size, args.size, args.repeats)
        torch.manual_seed(0)
        model = get_network(net, **kw)
        trf = time_train(model, fast, device, args.batch_size, args.size, args.repeats)
        inff = time_infer(model, fast, device, args.batch_size, args.size, args.repeats)
        print(
            f"| {name} | {params:.2f} M | {tr32:.1f} | {trf:.1f} | {trf / tr32:.2f}x | "
            f"{inf32:.1f} | {inff:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
