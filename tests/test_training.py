"""The shared training core: precision, steps, the epoch loop, scoring, checkpoints."""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from models import get_network
from utils.checkpoint import atomic_torch_save, load_checkpoint, load_model, make_checkpoint
from utils.distributed import DistInfo
from utils.grasp import Grasp, GraspRectangles, encode_grasp_maps
from utils.logger import RunLogger, format_epoch_summary
from utils.precision import resolve_precision
from utils.scoring import evaluate
from utils.steps import StepContext, StepOutput, SupervisedStep
from utils.training import Trainer, TrainState, epoch_batches, fit, train_one_epoch

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
    assert resolve_precision("off", "auto", cpu).channels_last  # fp32 CPUs gain from it too
    assert not resolve_precision("off", "off", cpu).channels_last
    assert resolve_precision("off", "on", cpu).channels_last
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", "auto", cpu)
    with pytest.raises(ValueError, match="--amp"):
        resolve_precision("fast", "auto", cpu)


@pytest.mark.parametrize(
    ("name", "kwargs"), [("ggcnn", {}), ("ggcnn2", {}), ("pspnet", {"backbone": "resnet18"})]
)
def test_fast_paths_match_plain_fp32(name, kwargs):
    """channels_last changes only rounding; bf16 autocast stays within bf16 rounding."""
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model = get_network(name, **kwargs).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        plain = model(x)
        for amp, tol in (("off", 1e-4), ("bf16", 0.1)):
            p = resolve_precision(amp, "on", cpu)
            fast = model.to(memory_format=torch.channels_last)
            with p.autocast():
                out = fast(p.to_input(x, cpu)).float()
            err = (out - plain).abs().max() / plain.abs().max()
            assert err < tol, (amp, float(err))
            model = model.to(memory_format=torch.contiguous_format)


def test_epoch_batches_cycle_to_exact_count_and_start_inside():
    data = tiny_batches(3)
    assert len(list(epoch_batches(data, 1, 3))) == 3
    assert len(list(epoch_batches(data, 1, 7))) == 7
    # Starting at batch 4 of 7 over a 3-batch loader: pass 1, offset 1.
    rest = list(epoch_batches(data, 1, 7, start=4))
    assert len(rest) == 3 and rest[0] is data[1]
    with pytest.raises(ValueError, match="no batch"):
        list(epoch_batches([], 1, 2))


def make_trainer(model, step, precision=None, lr=1e-3, **kw) -> Trainer:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    return Trainer(model, opt, step, precision or cpu_fp32(), **kw)


@pytest.mark.parametrize(
    ("amp", "map_loss"), [("off", "all"), ("bf16", "all"), ("off", "grasp"), ("off", "width")]
)
def test_supervised_training_lowers_loss(amp, map_loss):
    torch.manual_seed(0)
    model = get_network("ggcnn")
    precision = resolve_precision(amp, "auto", torch.device("cpu"))
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    trainer = make_trainer(model, SupervisedStep(map_loss), precision, lr=3e-3)
    data = tiny_batches(4)
    ctx = StepContext(torch.device("cpu"), precision)
    with torch.no_grad(), precision.autocast():
        before = np.mean([trainer.step(model, b, ctx).loss.item() for b in data])
    state = TrainState()
    for _ in range(10):
        terms = train_one_epoch(trainer, data, state, device=torch.device("cpu"), n_batches=4)
        state.epoch, state.step_in_epoch, state.sums = state.epoch + 1, 0, {}
    assert state.global_step == 10 * 4
    assert terms["loss"] < 0.6 * before
    assert set(terms) >= {"loss", "quality", "cos", "sin", "width"}


def test_step_sees_its_place_and_hooks_are_called():
    model = get_network("ggcnn")
    seen = []

    class CountingStep:
        def __call__(self, m, batch, ctx):
            seen.append((ctx.epoch, ctx.global_step, ctx.step_in_epoch))
            out = m(batch["x"])
            loss = (out**2).mean()
            return StepOutput(loss, {"l2": loss.detach()}, len(batch["x"]))

        def after_optimizer_step(self, m, ctx):
            seen.append("after")

    trainer = make_trainer(model, CountingStep())
    state = TrainState(epoch=2, global_step=5)
    terms = train_one_epoch(
        trainer, tiny_batches(2), state, device=torch.device("cpu"), n_batches=3
    )
    assert seen == [(2, 5, 0), "after", (2, 6, 1), "after", (2, 7, 2), "after"]
    assert "l2" in terms and state.global_step == 8 and state.step_in_epoch == 3


def test_labelled_and_unlabelled_loaders_advance_together():
    model = get_network("ggcnn")
    pairs = []

    class PairStep:
        def __call__(self, m, batch, ctx):
            labelled, unlabelled = batch
            pairs.append((int(labelled["index"][0]), int(unlabelled["index"][0])))
            loss = (m(labelled["x"]) ** 2).mean() + (m(unlabelled["x"]) ** 2).mean()
            return StepOutput(loss, {}, len(labelled["x"]))

    trainer = make_trainer(model, PairStep())
    labelled, unlabelled = tiny_batches(2), tiny_batches(5, seed=1)
    for b in unlabelled:
        b["index"] = b["index"] + 100
    state = TrainState()
    # The epoch is as long as the longer loader; the shorter one cycles.
    fit(trainer, labelled, None, epochs=1, run_dir=Path(tempfile.mkdtemp()), args={},
        dist=DistInfo(), logger=RunLogger(None), state=state, unlabelled_loader=unlabelled)  # fmt: skip
    assert pairs == [(0, 100), (2, 102), (0, 104), (2, 106), (0, 108)]


def test_non_finite_loss_is_a_clear_error():
    model = get_network("ggcnn")

    def nan_step(m, batch, ctx):
        return StepOutput(m(batch["x"]).sum() * float("nan"), {}, 2)

    with pytest.raises(FloatingPointError, match="--lr"):
        train_one_epoch(
            make_trainer(model, nan_step), tiny_batches(1), TrainState(),
            device=torch.device("cpu"), n_batches=1,
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
    trainer = make_trainer(model, SupervisedStep())
    data = tiny_batches(2)
    common = dict(
        train_loader=data, val_loader=data, run_dir=tmp_path, args={"network": "ggcnn"},
        dist=DistInfo(), logger=RunLogger(tmp_path / "tb"),
    )  # fmt: skip
    state = TrainState()
    metrics = fit(trainer, epochs=2, state=state, **common)
    assert state.epoch == 3 and state.global_step == 4
    assert {"train_loss", "val_success", "val_loss", "lr"} <= set(metrics)
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 2 and last["global_step"] == 4 and last["kind"] == "last"
    assert last["step_in_epoch"] == 0 and last["rng"] and last["eval_weights"] == "model"
    assert load_checkpoint(tmp_path / "best.pt")["kind"] == "best"
    assert list((tmp_path / "tb").iterdir())
    # Continuing from the stored state runs only the remaining epoch.
    state2 = trainer.restore(last)
    assert (state2.epoch, state2.global_step) == (3, 4)
    fit(trainer, epochs=3, state=state2, **common)
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


def test_fast_bf16_needs_the_instructions_and_a_faster_matrix_product(monkeypatch):
    import utils.precision as prec

    def check(instructions: bool, amx: bool, fp32_s: float, bf16_s: float) -> bool:
        monkeypatch.setattr(prec, "cpu_has_bf16_instructions", lambda: instructions)
        monkeypatch.setattr(prec, "_has_amx", lambda: amx)
        monkeypatch.setattr(
            prec, "matmul_seconds", lambda dtype: bf16_s if dtype == torch.bfloat16 else fp32_s
        )
        prec.cpu_has_fast_bf16.cache_clear()
        try:
            return prec.cpu_has_fast_bf16()
        finally:
            prec.cpu_has_fast_bf16.cache_clear()

    assert check(True, False, fp32_s=0.04, bf16_s=0.01)  # AMD EPYC with AVX512-BF16: 4x
    assert not check(True, False, fp32_s=0.024, bf16_s=0.032)  # Intel, AVX512-BF16, no AMX
    assert check(True, True, fp32_s=0.01, bf16_s=1.0)  # AMX: not timed
    assert not check(False, False, fp32_s=1.0, bf16_s=0.01)  # no instructions: emulated
    # The real timing leaves the random stream where it was (small products: a CPU without
    # bf16 units emulates them, 24 s at the real size).
    monkeypatch.undo()
    real = prec.matmul_seconds
    monkeypatch.setattr(prec, "matmul_seconds", lambda dtype: real(dtype, n=128))
    monkeypatch.setattr(prec, "cpu_has_bf16_instructions", lambda: True)
    monkeypatch.setattr(prec, "_has_amx", lambda: False)
    prec.cpu_has_fast_bf16.cache_clear()
    state = torch.random.get_rng_state()
    prec.cpu_has_fast_bf16()
    prec.cpu_has_fast_bf16.cache_clear()
    assert torch.equal(state, torch.random.get_rng_state())


def test_auto_precision_times_both_paths_and_takes_the_faster(monkeypatch):
    import utils.precision as prec

    cpu = torch.device("cpu")
    model = get_network("ggcnn")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    paths = [resolve_precision("off", "on", cpu), resolve_precision("off", "off", cpu)]
    seconds = prec.time_precisions(model, paths, (2, 1, 32, 32), cpu, rounds=2)
    assert len(seconds) == 2 and min(seconds) > 0
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # a copy ran

    monkeypatch.setattr(prec, "cpu_has_bf16_instructions", lambda: True)
    for fast in (True, False):  # timed whether or not the matrix-product check calls bf16 fast
        monkeypatch.setattr(prec, "cpu_has_fast_bf16", lambda f=fast: f)
        for bf16_s, fp32_s, expect in ((0.1, 0.3, torch.bfloat16), (0.3, 0.1, None)):
            monkeypatch.setattr(
                prec,
                "time_precisions",
                lambda m, ps, *a, b=bf16_s, f=fp32_s, **k: [b if p.dtype else f for p in ps],
            )
            chosen, line = prec.choose_precision("auto", "auto", cpu, model, (2, 1, 32, 32))
            assert chosen.dtype == expect and chosen.channels_last and "timed" in line
    # Anything but auto/auto, no network to time, or no bf16 instructions: the fixed rule.
    assert prec.choose_precision("bf16", "auto", cpu, model, (2, 1, 32, 32))[1] == ""
    assert prec.choose_precision("auto", "auto", cpu)[1] == ""
    monkeypatch.setattr(prec, "cpu_has_bf16_instructions", lambda: False)
    assert prec.choose_precision("auto", "auto", cpu, model, (2, 1, 32, 32))[1] == ""


def test_worker_and_thread_rule(recwarn):
    from utils.cli import resolve_workers_threads

    assert resolve_workers_threads(None, None, cores=1) == (0, 1)
    assert resolve_workers_threads(None, None, cores=2) == (0, 2)
    assert resolve_workers_threads(None, None, cores=8) == (2, 6)
    assert resolve_workers_threads(None, None, cores=64) == (4, 60)
    assert resolve_workers_threads(None, None, processes=4, cores=16) == (1, 3)  # per process
    assert resolve_workers_threads(1, 3, cores=2) == (1, 3)  # given values stand
    assert not recwarn.list
    with pytest.warns(UserWarning, match="--num-workers 6 exceeds the 2 core"):
        assert resolve_workers_threads(6, None, cores=2) == (2, 1)


def test_loading_thread_rule(monkeypatch):
    """--prefetch-thread auto: only with 0 workers; then where the thread can run at the lowest
    priority, else only where the torch threads leave a core free."""
    import utils.cli as cli
    import utils.data.loader as loader

    monkeypatch.setattr(cli, "usable_cores", lambda: 2)
    monkeypatch.setattr(loader, "PER_THREAD_PRIORITY", True)
    assert cli.use_prefetch_thread("auto", 0, 2)  # a low-priority thread on 2 busy cores
    assert not cli.use_prefetch_thread("auto", 1, 2)  # a worker process loads
    monkeypatch.setattr(loader, "PER_THREAD_PRIORITY", False)
    assert not cli.use_prefetch_thread("auto", 0, 2)  # no spare core for a normal thread
    assert cli.use_prefetch_thread("auto", 0, 1)
    assert not cli.use_prefetch_thread("auto", 1, 1)  # a worker process loads
    assert not cli.use_prefetch_thread("auto", 0, 1, processes=2)  # 1 core per process
    assert cli.use_prefetch_thread("on", 0, 2) and not cli.use_prefetch_thread("off", 0, 1)
    assert not cli.use_prefetch_thread("on", 2, 2)  # workers already load ahead


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_fast_optimisers_make_the_plain_loops_update(name):
    """build_optimizer's fused (Adam, AdamW) and multi-tensor (SGD) kernels: the same weights as
    torch's per-parameter loop after several steps, within float rounding."""
    import argparse

    from utils.optim import build_optimizer

    args = argparse.Namespace(optimizer=name, lr=1e-2, weight_decay=1e-2)
    torch.manual_seed(0)
    fast = get_network("ggcnn2")
    plain = get_network("ggcnn2")
    plain.load_state_dict(fast.state_dict())
    opt_fast = build_optimizer(args, fast)
    group = opt_fast.param_groups[0]
    assert group.get("fused") if name != "sgd" else group.get("foreach")
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(name)
    if kind is None:
        opt_plain = torch.optim.SGD(
            plain.parameters(), lr=1e-2, momentum=0.9, weight_decay=1e-2, nesterov=True,
            foreach=False,
        )  # fmt: skip
    else:
        opt_plain = kind(plain.parameters(), lr=1e-2, weight_decay=1e-2, foreach=False)
    x = torch.randn(2, 1, 32, 32)
    for _ in range(5):
        for model, opt in ((fast, opt_fast), (plain, opt_plain)):
            opt.zero_grad()
            model(x)[0].square().mean().backward()
            opt.step()
    for (k, a), b in zip(fast.state_dict().items(), plain.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=k)


def test_map_loss_flag_reaches_each_scripts_step(monkeypatch):
    """--map-loss is the step's, in train_net.py and mixmatch_train.py (distill.py passes it
    the same way); the default is GG-CNN's loss over every pixel."""
    from types import SimpleNamespace

    import mixmatch_train
    import train_net

    monkeypatch.setattr(
        train_net.harness, "run_training", lambda args, make_step: make_step(None, None)
    )
    assert train_net.main(train_net.parse_args(["--map-loss", "grasp"])).map_loss == "grasp"
    assert train_net.main(train_net.parse_args([])).map_loss == "all"
    args = mixmatch_train.parse_args(["--map-loss", "grasp", "--labeled-fraction", "0.5"])
    assert mixmatch_train.make_step(SimpleNamespace(args=args), None).map_loss == "grasp"
