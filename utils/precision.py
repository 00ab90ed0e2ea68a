"""Numeric precision of a run: autocast dtype, fp16 gradient scaling and memory format.

``--amp auto|bf16|fp16|off`` and ``--channels-last auto|on|off`` resolve here, per device, so
every script trains and evaluates with the same rules.
"""

from __future__ import annotations

import functools
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor


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


#: bf16 must beat fp32 by this factor in a matrix product to count as fast: an Intel Xeon with
#: AVX512-BF16 but no AMX runs bf16 at 0.3-0.6x its fp32 rate (benchmarks/README.md).
FAST_BF16_RATIO = 1.25


def _has_amx() -> bool:
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except AttributeError:  # private helpers moved: be conservative
        return False


def cpu_has_bf16_instructions() -> bool:
    """True when this CPU reports bf16 matrix instructions (AMX or AVX512-BF16)."""
    try:
        return _has_amx() or bool(torch.cpu._is_avx512_bf16_supported())
    except AttributeError:
        return False


def matmul_seconds(dtype: torch.dtype, n: int = 1024, rounds: int = 3) -> float:
    """Fastest of ``rounds`` n x n matrix products in ``dtype`` on the CPU, seconds."""
    import time

    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b  # warm-up: oneDNN builds its kernel
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return best


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True when this CPU has bf16 matrix instructions AND a bf16 matrix product measures at
    least :data:`FAST_BF16_RATIO` times faster than fp32 here (measured once per process,
    about 0.1 s, the two dtypes taking turns). The flags alone are not enough: AMX and AMD's
    AVX512-BF16 run bf16 2.3-4x faster than fp32, an Intel Xeon with AVX512-BF16 and no AMX
    at 0.3-0.6x; without the instructions bf16 is emulated and slower still."""
    if not cpu_has_bf16_instructions():
        return False
    if _has_amx():
        return True  # 3-4x fp32 wherever it was measured: no need to time
    with torch.random.fork_rng(devices=[]):  # the run's random stream must not move
        fp32, bf16 = [], []
        for _ in range(2):
            fp32.append(matmul_seconds(torch.float32))
            bf16.append(matmul_seconds(torch.bfloat16))
    return min(fp32) >= FAST_BF16_RATIO * min(bf16)


def resolve_precision(amp: str, channels_last: str, device: torch.device) -> Precision:
    """``--amp auto|bf16|fp16|off`` and ``--channels-last auto|on|off`` for ``device``.

    ``auto``: bf16 autocast on CPUs where bf16 is fast (:func:`cpu_has_fast_bf16`: AMX /
    AVX512-BF16 and measured faster than fp32; 2-4x faster training, see benchmarks/) and on
    CUDA GPUs that support it (fp16 with a
    gradient scaler otherwise); fp32 elsewhere. channels_last ``auto``: always on the CPU
    (oneDNN's convolutions are faster in it in fp32 too: 1.7-2x for GG-CNN and GG-CNN2 on a
    CPU without bf16 units, ``benchmarks/train_speed.py``), on CUDA with autocast. Neither
    changes results beyond rounding (tests/test_training.py compares the paths).
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
    cl = channels_last == "on" or (
        channels_last == "auto" and (device.type == "cpu" or dtype is not None)
    )
    return Precision(device.type, dtype, scaler, cl)


def time_precisions(
    model: torch.nn.Module,
    precisions: list[Precision],
    shape: tuple[int, int, int, int],
    device: torch.device,
    train: bool = True,
    rounds: int = 3,
) -> list[float]:
    """Seconds of one step of a copy of ``model`` (``model`` itself is untouched) on a random
    N x C x H x W input under each of ``precisions``: forward, loss and backward when
    ``train``, else a forward pass without gradients.

    One warm-up step each, then ``rounds`` rounds in which the precisions take turns
    (A B A B ...), so that a change in the machine's load during the timing hits them alike;
    each gets the fastest of its steps, as other processes only ever add time. (Timing one
    after the other picked the slower path on a loaded machine.)"""
    import copy
    import time

    # Its random input must not move the run's random stream (MixMatch draws from it).
    with torch.random.fork_rng(devices=[]):
        steps = [_one_step(copy.deepcopy(model), p, shape, device, train) for p in precisions]
        for step in steps:
            step()
        best = [float("inf")] * len(steps)
        for _ in range(rounds):
            for i, step in enumerate(steps):
                t0 = time.perf_counter()
                step()
                best[i] = min(best[i], time.perf_counter() - t0)
    return best


def _one_step(net, precision: Precision, shape, device: torch.device, train: bool):
    """A closure running one step of ``net`` under ``precision`` (synchronised on CUDA)."""
    net = net.to(device).train(train)
    net = net.to(
        memory_format=torch.channels_last if precision.channels_last else torch.contiguous_format
    )
    x = precision.to_input(torch.randn(shape), device)
    y = torch.rand(shape[0], 4, shape[2], shape[3], device=device)

    def step() -> None:
        if train:
            with precision.autocast():
                loss = net.compute_loss(x, y)["loss"]
            loss.backward()
        else:
            with torch.no_grad(), precision.autocast():
                net(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return step


def choose_precision(
    amp: str,
    channels_last: str,
    device: torch.device,
    model: torch.nn.Module | None = None,
    shape: tuple[int, int, int, int] | None = None,
    train: bool = True,
) -> tuple[Precision, str]:
    """:func:`resolve_precision`, except that ``--amp auto --channels-last auto`` on a CPU with
    bf16 instructions times bf16 + channels_last against fp32 + channels_last on ``model`` at
    input ``shape`` (a few steps on a copy, taking turns: about 1 s for GG-CNN2, 10 s for
    PSPNet-ResNet50; :func:`time_precisions`) and takes the faster. The fixed rule is not
    enough either way: on an AMD EPYC with AVX512-BF16 bf16 trains GG-CNN2 3.7x faster but
    GG-CNN slower than fp32 + channels_last; on an Intel Xeon with AVX512-BF16 and no AMX,
    where bf16 matrix products are slower than fp32, GG-CNN's inference is still 1.6-1.7x
    faster in bf16 (benchmarks/train_speed.py). Returns the precision and a line saying how it was
    chosen ("" when no timing was needed)."""
    fixed = resolve_precision(amp, channels_last, device)
    if not (
        amp == "auto" and channels_last == "auto" and device.type == "cpu"
        and cpu_has_bf16_instructions() and model is not None and shape is not None
    ):  # fmt: skip
        return fixed, ""
    candidates = [resolve_precision("bf16", "on", device), resolve_precision("off", "on", device)]
    seconds = time_precisions(model, candidates, shape, device, train)
    best = candidates[seconds.index(min(seconds))]
    timed = ", ".join(
        f"{p.describe()} {1000 * s:.0f} ms" for p, s in zip(candidates, seconds, strict=True)
    )
    return (
        best,
        f"--amp auto: timed a {'training' if train else 'forward'} step ({timed}): {best.describe()}",
    )


def agreed_precision(
    amp: str,
    channels_last: str,
    device: torch.device,
    model: torch.nn.Module,
    shape: tuple[int, int, int, int],
    train: bool = True,
    is_main: bool = True,
) -> Precision | None:
    """:func:`choose_precision` in a (possibly distributed) run: every rank takes rank 0's
    choice, whose line rank 0 prints. None when nothing was timed (keep the fixed rule)."""
    from utils.distributed import all_gather_object

    chosen, line = choose_precision(amp, channels_last, device, model, shape, train)
    if not line:
        return None
    amp = all_gather_object("off" if chosen.dtype is None else "bf16")[0]
    if is_main:
        print(line, flush=True)
    return resolve_precision(amp, "on", device)
