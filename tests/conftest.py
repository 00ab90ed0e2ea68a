"""Shared test fixtures and settings: the real sample data folder, the tiny synthetic training
run's flags (``tiny_args``), running a script (``run_script``, ``one_line_error``) and one thread
per test."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

TINY = [
    "--dataset", "synthetic", "--synthetic-scenes", "20", "--input-size", "64",
    "--num-workers", "0", "--batch-size", "4", "--split", "0.8", "--val-split", "0.25",
    # The 2000-image benchmark set is too big for tests; tests that score it ask for a few.
    "--benchmark-images", "0",
    # fp32 on the CPU everywhere: --amp auto would pick bf16 only on CPUs with bf16 units, and
    # --device auto would pick a GPU where there is one (tests/test_cuda.py adds flags after
    # these, which win).
    "--amp", "off", "--channels-last", "off", "--device", "cpu",
]  # fmt: skip


def run_script(*argv: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """A project script (or ``-m module``) run from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def one_line_error(res: subprocess.CompletedProcess, message: str) -> None:
    """The run failed as bad input should: exit code 2, ``message`` in one stderr line."""
    assert res.returncode == 2, res.stderr[-2000:]
    assert message in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def tiny_args(workdir: Path, *extra: str) -> list[str]:
    """train_net/eval_net flags of a tiny synthetic run under ``workdir``, then ``extra``."""
    return [
        *TINY,
        "--dataset-path", str(workdir / "synthetic"),
        "--cache-dir", str(workdir / "cache"),
        "--outdir", str(workdir / "runs"),
        *extra,
    ]  # fmt: skip


@contextlib.contextmanager
def stop_after_save(stop_at: int | None):
    """Interrupt a training run right after the ``last.pt`` written at global step
    ``stop_at`` (as a kill after a save would); None: let it run."""
    import utils.training as training

    save = training.atomic_torch_save

    def save_then_stop(obj, path):
        save(obj, path)
        if stop_at is not None and Path(path).name == "last.pt" and obj["global_step"] == stop_at:
            raise KeyboardInterrupt

    training.atomic_torch_save = save_then_stop
    try:
        with contextlib.suppress(KeyboardInterrupt):
            yield
    finally:
        training.atomic_torch_save = save


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real Jacquard and Cornell samples); skips when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _few_threads():
    # CI has 2 cores; tiny tensors run faster without thread fan-out.
    torch.set_num_threads(1)
    yield


class NearIsGood(nn.Module):
    """A deterministic stand-in network that reads its input: quality where the (mean-
    subtracted) depth is nearer than the mean, angle 0, a fixed opening."""

    input_channels = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = (-x[:, :1] * 40).clamp(0, 1)
        return torch.cat([q, torch.ones_like(q), torch.zeros_like(q), q * 0 + 0.3], dim=1)
