"""The shared training core: precision, steps, the epoch loop, evaluation, checkpoints."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from models import get_network
from utils.checkpoint import atomic_torch_save, load_checkpoint, load_model, make_checkpoint
from utils.distributed import DistInfo
from utils.grasp import Grasp, GraspRectangles, encode_grasp_maps
from utils.logger import RunLogger, format_epoch_summary
from utils.training import (
    FitState,
    StepOutput,
    SupervisedStep,
    _batches,
    evaluate,
    fit,
    resolve_precision,
    train_one_epoch,
)

SIZE = 48


def tiny_batches(n_batches: int = 3, batch_size: int = 2, seed: int = 0) -> list[dict]:
    """Depth images of a raised bar, each with one grasp across it."""
    rng = np.random.default_rng(seed)
    batches = []
    for b in range(n_batches):
        xs, ys, gts = [], [], []
        for _ in range(batch_size):
            r, c = rng.integers(14, SIZE - 14, 2)
            a = float(rng.uniform(-1.5, 1.5))
            g = Grasp((r, c), a, 18, 8)
            gt = GraspRectangles([g.as_gr])
            q, _, _ = gt.draw((SIZE, SIZE))
            xs.append(q[None] * 0.5 - 0.1)
            ys.append(encode_grasp_maps(*gt.draw((SIZE, SIZE))))
            gts.append(gt.points.astype(np.float32))
        batches.append(
            {
                "x": torch.from_numpy(np.stack(xs)),
                "y": torch.from_numpy(np.stack(ys)),
                "gt": gts,
                "index": torch.arange(b * batch_size, (b + 1) * batch_size),
            }
        )
    return batches


def cpu_fp32():
    return resolve_precision("off", "off", torch.device("cpu"))


def test_resolve_precision():
    cpu = torch.device("cpu")
    p = resolve_precision("bf16", "auto", cpu)
    assert p.dtype == torch.bfloat16 and p.channels_last and p.scaler is None
    assert resolve_precision("off", "auto", cpu).dtype is None
    assert not resolve_precision("off", "auto", cpu).channels_last
    assert resolve_precision("off", "on", cpu).channels_last
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", "auto", cpu)
    with pytest.raises(ValueError, match="--amp"):
        resolve_precision("fast", "auto", cpu)


def test_batches_cycles_to_exact_count():
    data = tiny_batches(3)
    assert len(list(_batches(data, None, 0))) == 3
    assert len(list(_batches(data, 7, 0))) == 7
    with pytest.raises(ValueError, match="no batch"):
        list(_batches([], 2, 0))


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_supervised_training_lowers_loss(amp):
    torch.manual_seed(0)
    model = get_network("ggcnn")
    precision = resolve_precision(amp, "auto", torch.device("cpu"))
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    data = tiny_batches(4)
    step = SupervisedStep(precision)
    kw = dict(device=torch.device("cpu"), precision=precision)
    with torch.no_grad(), precision.autocast():
        before = np.mean([step(model, b, torch.device("cpu")).loss.item() for b in data])
    gs = 0
    for e in range(1, 11):
        terms, gs = train_one_epoch(model, data, opt, step, epoch=e, global_step=gs, **kw)
    assert gs == 10 * 4
    assert terms["loss"] < 0.6 * before
    assert set(terms) >= {"loss", "quality", "cos", "sin", "width"}


def test_custom_step_hooks_are_called():
    model = get_network("ggcnn")
    calls = []

    class CountingStep:
        def __call__(self, m, batch, device):
            out = m(batch["x"])
            loss = (out**2).mean()
            return StepOutput(loss, {"l2": loss.detach()}, len(batch["x"]))

        def after_optimizer_step(self, m):
            calls.append(1)

    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    terms, _ = train_one_epoch(
        model, tiny_batches(2), opt, CountingStep(), device=torch.device("cpu"),
        precision=cpu_fp32(), epoch=1, batches_per_epoch=5,
    )  # fmt: skip
    assert len(calls) == 5 and "l2" in terms


def test_non_finite_loss_is_a_clear_error():
    model = get_network("ggcnn")

    def nan_step(m, batch, device):
        return StepOutput(m(batch["x"]).sum() * float("nan"), {}, 2)

    with pytest.raises(FloatingPointError, match="--lr"):
        train_one_epoch(
            model, tiny_batches(1), torch.optim.SGD(model.parameters(), lr=1e-3), nan_step,
            device=torch.device("cpu"), precision=cpu_fp32(), epoch=1,
        )  # fmt: skip


def test_evaluate_perfect_oracle_scores_all():
    data = tiny_batches(2)

    class Oracle(torch.nn.Module):
        """Returns the batch's own targets: every image must score."""

        def __init__(self):
            super().__init__()
            self.targets = iter([b["y"] for b in data])

        def forward(self, x):
            return next(self.targets)

    out = evaluate(Oracle(), data, device=torch.device("cpu"), precision=cpu_fp32(), n_examples=2)
    assert len(out.results) == 4 and out.results.success_rate == 1.0
    assert out.results.mean_best_iou > 0.5
    assert len(out.examples) == 2 and out.network_ms >= 0


def test_fit_writes_checkpoints_and_resume_state(tmp_path):
    torch.manual_seed(0)
    model = get_network("ggcnn")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = tiny_batches(2)
    common = dict(
        model=model, step=SupervisedStep(cpu_fp32()), optimizer=opt, train_loader=data,
        val_loader=data, run_dir=tmp_path, args={"network": "ggcnn"}, dist=DistInfo(),
        precision=cpu_fp32(), logger=RunLogger(tmp_path / "tb"),
    )  # fmt: skip
    state = FitState()
    metrics = fit(epochs=2, state=state, **common)
    assert state.epoch == 3 and state.global_step == 4
    assert {"train_loss", "val_success", "val_loss", "lr"} <= set(metrics)
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 2 and last["global_step"] == 4
    assert (tmp_path / "best.pt").exists()
    assert list((tmp_path / "tb").iterdir())
    # Continuing from the stored state runs only the remaining epoch.
    state2 = FitState(last["epoch"] + 1, last["global_step"], last["best_success"])
    fit(epochs=3, state=state2, **common)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 3


def test_checkpoint_round_trip_rebuilds_same_outputs(tmp_path):
    torch.manual_seed(0)
    model = get_network("pspnet", backbone="resnet18", output_stride=32, input_channels=4)
    ckpt = make_checkpoint(model, epoch=3, args={"lr": 1e-3}, metrics={"val_success": 0.5})
    atomic_torch_save(ckpt, tmp_path / "m.pt")
    rebuilt, loaded = load_model(tmp_path / "m.pt")
    x = torch.randn(1, 4, 64, 64)
    model.eval()
    rebuilt.eval()
    assert torch.equal(model(x), rebuilt(x))
    assert loaded["epoch"] == 3 and loaded["metrics"]["val_success"] == 0.5


def test_atomic_save_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "last.pt"
    atomic_torch_save({"model": {}, "network": {"name": "ggcnn", "kwargs": {}}, "v": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise pickle.PicklingError("boom")

    with pytest.raises(pickle.PicklingError):
        atomic_torch_save({"bad": Unpicklable()}, path)
    assert load_checkpoint(path)["v"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left


def test_load_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="nope.pt: checkpoint file not found"):
        load_checkpoint(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt: not a readable checkpoint"):
        load_checkpoint(garbage)
    other = tmp_path / "other.pt"
    torch.save({"state": 1}, other)
    with pytest.raises(ValueError, match="other.pt: not a checkpoint of this project"):
        load_checkpoint(other)


def test_epoch_summary_line():
    line = format_epoch_summary(2, 5, {"train_loss": 0.1234567, "val_success": 0.9}, 3.21)
    assert line == "epoch 2/5 | train_loss 0.1235 | val_success 0.9 | 3.2 s"
