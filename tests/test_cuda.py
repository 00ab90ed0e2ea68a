"""The CUDA paths: autocast (fp16 with a gradient scaler, bf16), channels_last, NCCL through
torchrun, and checkpoints written on a GPU read back on the CPU. Skipped without a GPU (CI has
none); run them where one is lent with ``python -m pytest -q tests/test_cuda.py``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_args

import eval_net
import train_net
from models import get_network
from utils.checkpoint import load_checkpoint, load_model
from utils.precision import resolve_precision
from utils.training import backward_and_step

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")

REPO = Path(__file__).resolve().parents[1]
CUDA = torch.device("cuda")
NETWORKS = {
    "ggcnn": {},
    "ggcnn2": {},
    "pspnet": {"backbone": "resnet18", "output_stride": 16},
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cuda")


@pytest.mark.parametrize("name", list(NETWORKS))
def test_cuda_fp32_forward_matches_cpu(name):
    torch.manual_seed(0)
    model = get_network(name, **NETWORKS[name]).eval()
    x = torch.randn(2, 1, 96, 96)
    with torch.no_grad():
        cpu = model(x)
        gpu = model.to(CUDA)(x.to(CUDA)).cpu()
    # TF32 may be on for convolutions: compare loosely, relative to the output's scale.
    assert torch.allclose(gpu, cpu, atol=1e-2 * float(cpu.abs().max()) + 1e-4)


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
@pytest.mark.parametrize("name", list(NETWORKS))
def test_autocast_channels_last_steps_lower_the_loss(name, amp):
    precision = resolve_precision(amp, "on", CUDA)
    assert (precision.scaler is not None) == (amp == "fp16")
    torch.manual_seed(0)
    model = get_network(name, **NETWORKS[name]).to(CUDA).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x = precision.to_input(torch.randn(4, 1, 64, 64), CUDA)
    assert x.is_contiguous(memory_format=torch.channels_last)
    y = torch.rand(4, 4, 64, 64, device=CUDA) * 0.5
    losses = []
    for _ in range(15):
        with precision.autocast():
            main, aux = model(x, with_aux=True)
            loss = model.loss_from_outputs(main, aux, y)["loss"]
        backward_and_step(loss, model, opt, precision)
        losses.append(loss.item())
    assert all(map(torch.isfinite, torch.tensor(losses)))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_train_on_gpu_then_evaluate_on_cpu(workdir, amp, capsys):
    desc = f"gpu_{amp}"
    args = train_net.parse_args(
        tiny_args(workdir, "--network", "ggcnn", "--epochs", "2", "--device", "cuda", "--amp", amp,
             "--channels-last", "on", "--description", desc)
    )  # fmt: skip
    train_net.main(args)
    printed = capsys.readouterr().out
    assert f"cuda x1 {amp} + channels_last" in printed
    (run,) = (workdir / "runs").glob(f"*_{desc}")
    ckpt = load_checkpoint(run / "last.pt")  # mapped to the CPU
    assert all(t.device.type == "cpu" for t in ckpt["model"].values())
    if amp == "fp16":
        assert ckpt.get("scaler"), "the fp16 run's GradScaler state was not saved"
    model, _ = load_model(run / "last.pt")
    assert next(model.parameters()).device.type == "cpu"
    eval_args = ["--network", str(run / "last.pt"), "--device", "cpu", "--amp", "off",
                 "--num-workers", "0", "--cache-dir", str(workdir / "cache"),
                 "--outdir", str(run / "eval_cpu")]  # fmt: skip
    summary = eval_net.main(eval_net.parse_args(eval_args))
    assert summary["images"] > 0 and 0.0 <= summary["success_rate"] <= 1.0


def test_torchrun_nccl_one_process_per_gpu(workdir):
    n = torch.cuda.device_count()
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
         "train_net.py", *tiny_args(workdir, "--network", "pspnet", "--output-stride", "32",
                               "--epochs", "2", "--batch-size", "2", "--description", "nccl",
                               "--device", "cuda", "--amp", "auto", "--channels-last", "auto")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"cuda:0 x{n}" in res.stdout or f"cuda x{n}" in res.stdout, res.stdout[-2000:]
    assert len(re.findall(r"^epoch 2/2", res.stdout, flags=re.M)) == 1
    (run,) = (workdir / "runs").glob("*_nccl")
    assert json.loads((run / "args.json").read_text())["_world_size"] == n
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 2 and not any(k.startswith("module.") for k in ckpt["model"])
