"""Training and inference throughput of each network on every numeric path of this machine.

    python benchmarks/train_speed.py                   # all networks, 224 px, this CPU
    python benchmarks/train_speed.py --models ggcnn2 --compile
    python benchmarks/train_speed.py --size 300 --batch-size 16 --device cuda
    python benchmarks/train_speed.py --models ggcnn ggcnn2 --previous-layers
    python benchmarks/train_speed.py --optimizers      # the optimiser update alone
    python benchmarks/train_speed.py --models "pspnet-r18 os16" --profile   # where a step goes

Prints a markdown table per network: images/s for one optimiser step (forward, backward,
AdamW, fused as train_net.py's) and inference ms/image for plain eager NCHW fp32 (the
baseline), fp32 + channels_last, bf16 autocast (NCHW and channels_last) and, with
``--compile``, torch.compile of the automatic path (its first-call cost printed); the speed-up against the baseline measured in the same
run; the training FLOPs per image and the fraction of this machine's measured matrix-product
rate (2048 x 2048, same dtype) the step reaches. ``auto`` marks what ``--amp auto
--channels-last auto`` picks here. Timings are medians of ``--repeats`` steps after a warm-up
step, on random inputs. ``--previous-layers``: the GG-CNNs' paths also with the layers they
had before 2026-12-01 (four separate one-channel heads; GG-CNN's transposed convolutions in
fp32 under bf16 autocast), kept here as the reference (:func:`previous_layers`).
``--optimizers``: instead, ms of one AdamW update of each network's parameters (random
gradients) with torch's per-parameter loop (its CPU default), the multi-tensor (foreach) and
the fused kernel, which ``utils.optim.build_optimizer`` uses. ``--profile``: instead,
torch.profiler's operators by self time over ``--repeats`` training steps of the automatic
path, per network.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import models.ggcnn  # noqa: E402
import models.ggcnn2  # noqa: E402
from models import count_parameters, get_network  # noqa: E402
from utils.optim import build_optimizer  # noqa: E402
from utils.precision import Precision, cpu_has_bf16_instructions, resolve_precision  # noqa: E402
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


def matmul_gflops(dtype: torch.dtype, device: torch.device, n: int = 2048) -> float:
    """This machine's rate for an n x n matrix product in ``dtype``, GFLOP/s: the best of 10
    products after 3 warm-up ones (the peak it can reach, the yardstick for the networks)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for i in range(13):
        sync(device)
        t0 = time.perf_counter()
        a @ b
        sync(device)
        if i >= 3:
            best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def train_flops(model, size: int, in_ch: int = 1) -> float:
    """FLOPs of one training step's forward and backward, per image (torch's flop counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = model.train()
    x = torch.randn(2, in_ch, size, size)
    y = torch.randn(2, 4, size, size) * 0.1
    with FlopCounterMode(display=False) as counter:
        main, aux = model(x, with_aux=True)
        model.loss_from_outputs(main, aux, y)["loss"].backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2


def time_train(model, precision, device, batch: int, size: int, repeats: int, compile_=False):
    """Images per second of full optimiser steps (and the first call's seconds)."""
    model = model.to(device).train()
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = build_optimizer(argparse.Namespace(optimizer="adamw", lr=1e-4, weight_decay=1e-4), model)
    forward = torch.compile(model) if compile_ else model
    x = torch.randn(batch, 1, size, size, device=device)
    y = torch.randn(batch, 4, size, size, device=device) * 0.1
    if precision.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with precision.autocast():
            main, aux = forward(x, with_aux=True)
            loss = model.loss_from_outputs(main, aux, y)["loss"]
        backward_and_step(loss, model, opt, precision)

    t0 = time.perf_counter()
    step()
    sync(device)
    first = time.perf_counter() - t0
    return batch / median_seconds(step, device, repeats), first


@torch.no_grad()
def time_infer(model, precision, device, batch: int, size: int, repeats: int, compile_=False):
    """Milliseconds per image of the forward pass in eval mode (compiled: after the warm-up
    call, which compiles)."""
    model = model.to(device).eval()
    model = torch.compile(model) if compile_ else model
    x = torch.randn(batch, 1, size, size, device=device)
    if precision.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def forward() -> None:
        with precision.autocast():
            model(x)

    return 1000 * median_seconds(forward, device, repeats) / batch


def paths(device: torch.device, with_bf16: bool = True) -> dict[str, Precision]:
    """The numeric paths worth timing on ``device``; the first is the baseline. ``with_bf16``:
    also the CPU's bf16 paths (emulated, about 10x slower than fp32, without bf16 units)."""
    out = {"fp32 NCHW (plain)": resolve_precision("off", "off", device),
           "fp32 + channels_last": resolve_precision("off", "on", device)}  # fmt: skip
    if device.type == "cuda":
        out["AMP + channels_last"] = resolve_precision("auto", "on", device)
    elif with_bf16:
        out["bf16 NCHW"] = resolve_precision("bf16", "off", device)
        out["bf16 + channels_last"] = resolve_precision("bf16", "on", device)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--compile", action="store_true", help="also time torch.compile of auto")
    p.add_argument("--bf16", choices=["auto", "on", "off"], default="auto",
                   help="time the CPU's bf16 paths (auto: where the CPU has bf16 instructions)")  # fmt: skip
    p.add_argument("--previous-layers", action="store_true",
                   help="also time the GG-CNNs with their previous layers (the reference)")  # fmt: skip
    p.add_argument("--profile", action="store_true",
                   help="only profile the automatic path's training step, by operator")  # fmt: skip
    p.add_argument("--optimizers", action="store_true",
                   help="only time an AdamW update per implementation")  # fmt: skip
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.optimizers:
        optimizer_table(args.models, device, max(args.repeats, 20))
        return
    if args.profile:
        for name in args.models:
            profile_step(name, resolve_precision("auto", "auto", device), device, args)
        return
    auto = resolve_precision("auto", "auto", device)
    with_bf16 = args.bf16 == "on" or (args.bf16 == "auto" and cpu_has_bf16_instructions())
    rate = {None: matmul_gflops(torch.float32, device)}
    rate[auto.dtype] = rate[None] if auto.dtype is None else matmul_gflops(auto.dtype, device)
    if device.type == "cpu" and with_bf16 and torch.bfloat16 not in rate:
        # Without bf16 units this product is emulated on one thread: minutes at 2048^2.
        rate[torch.bfloat16] = matmul_gflops(torch.bfloat16, device)
    rates = ", ".join(f"{describe_dtype(k)} {v:.0f}" for k, v in rate.items())
    print(
        f"{device} ({torch.get_num_threads()} threads), {args.size} px, batch {args.batch_size}, "
        f"median of {args.repeats} steps; matrix product (2048^2) GFLOP/s: {rates}; "
        f"auto = {auto.describe()}",
        flush=True,
    )
    for name in args.models:
        net, kw = CONFIGS[name]
        torch.manual_seed(0)
        flops = train_flops(get_network(net, **kw), args.size)
        print(f"\n{name}: {count_parameters(get_network(net, **kw)) / 1e6:.2f} M parameters, "
              f"{flops / 1e9:.2f} GFLOP per training image\n")  # fmt: skip
        print(
            "| path | train (img/s) | speed-up | of matmul rate | inference (ms/img) | speed-up |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        base_tr = base_inf = None
        timed = [(label, prec, False) for label, prec in paths(device, with_bf16).items()]
        if args.compile:
            timed.append(("auto + torch.compile", auto, False))
        if args.previous_layers and net in ("ggcnn", "ggcnn2"):
            timed += [(f"{label}, previous layers", prec, True)
                      for label, prec in paths(device, with_bf16).items()]  # fmt: skip
        for label, prec, previous in timed:
            torch.manual_seed(0)
            model = get_network(net, **kw)
            with previous_layers() if previous else contextlib.nullcontext():
                tr, first = time_train(model, prec, device, args.batch_size, args.size,
                                       args.repeats, compile_="compile" in label)  # fmt: skip
                inf = time_infer(model, prec, device, args.batch_size, args.size, args.repeats,
                                 compile_="compile" in label)  # fmt: skip
            base_tr, base_inf = base_tr or tr, base_inf or inf
            share = tr * flops / 1e9 / rate.get(prec.dtype, rate[None])
            tag = (
                " (auto)"
                if (prec.dtype, prec.channels_last) == (auto.dtype, auto.channels_last)
                and "compile" not in label
                else ""
            )
            extra = f"; first call {first:.0f} s" if "compile" in label else ""
            print(
                f"| {label}{tag}{extra} | {tr:.1f} | {tr / base_tr:.2f}x | {share:.0%} | {inf:.1f} | "
                f"{base_inf / inf:.2f}x |",
                flush=True,
            )


def profile_step(name: str, precision: Precision, device: torch.device, args) -> None:
    """torch.profiler's table of one network's training steps on ``precision``'s path."""
    from torch.profiler import ProfilerActivity, profile

    net, kw = CONFIGS[name]
    torch.manual_seed(0)
    model = get_network(net, **kw)
    time_train(model, precision, device, args.batch_size, args.size, 1)  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as prof:
        time_train(model, precision, device, args.batch_size, args.size, args.repeats)
    print(f"\n{name}, {precision.describe()}, {args.repeats + 2} steps of batch {args.batch_size}:")
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages(group_by_input_shape=True).table(sort_by=sort, row_limit=20))


def optimizer_table(names: list[str], device: torch.device, repeats: int) -> None:
    """ms per AdamW update of each network's parameters, per implementation."""
    kinds = {"per-parameter loop": {"foreach": False}, "foreach": {"foreach": True},
             "fused (build_optimizer)": {"fused": True}}  # fmt: skip
    print(f"{device} ({torch.get_num_threads()} threads), AdamW update, median of {repeats}\n")
    print(
        "| network | parameters | " + " | ".join(f"{k} (ms)" for k in kinds) + " | loop / fused |"
    )
    print("|---|---:|" + "---:|" * (len(kinds) + 1))
    for name in names:
        net, kw = CONFIGS[name]
        params = list(get_network(net, **kw).to(device).parameters())
        for q in params:
            q.grad = torch.randn_like(q)
        ms = []
        for flags in kinds.values():
            opt = torch.optim.AdamW(params, lr=1e-4, **flags)
            ms.append(1000 * median_seconds(opt.step, device, repeats))
        n = sum(q.numel() for q in params) / 1e6
        cells = " | ".join(f"{m:.2f}" for m in ms)
        print(f"| {name} | {n:.2f} M | {cells} | {ms[0] / ms[-1]:.1f}x |", flush=True)


@contextlib.contextmanager
def previous_layers():
    """The GG-CNNs as they were: each head its own convolution over the full-resolution
    features, and GG-CNN's transposed convolutions left in fp32 under CPU bf16 autocast."""

    def separate_heads(h, heads):
        return torch.cat([m(h) for m in heads], dim=1)

    def fp32_transposed(self, x, output_size=None):
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return torch.nn.ConvTranspose2d.forward(self, x.float(), output_size)
        return torch.nn.ConvTranspose2d.forward(self, x, output_size)

    layer = models.ggcnn.ConvTranspose2dBf16OnCpu
    saved = (models.ggcnn.grasp_heads, models.ggcnn2.grasp_heads, layer.forward)
    models.ggcnn.grasp_heads = models.ggcnn2.grasp_heads = separate_heads
    layer.forward = fp32_transposed
    try:
        yield
    finally:
        models.ggcnn.grasp_heads, models.ggcnn2.grasp_heads, layer.forward = saved


def describe_dtype(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


if __name__ == "__main__":
    main()
