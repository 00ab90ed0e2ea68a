"""The run harness: exact resume (end of epoch and mid-epoch, 0 and 2 workers), the resume
overrides and refusals, EMA, steps with state, and the data order behind exact resume."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch
from conftest import one_line_error, run_script, stop_after_save, tiny_args

import eval_net
import train_net
import utils.training as training
from models import get_network
from utils.checkpoint import load_checkpoint
from utils.data.loader import EpochBatchSampler, make_loader
from utils.distributed import DistInfo
from utils.ema import ModelEma
from utils.logger import RunLogger
from utils.optim import FINAL_FACTOR, WarmupCosine
from utils.precision import resolve_precision
from utils.seeding import rng_state, set_rng_state
from utils.steps import StepOutput
from utils.training import Trainer, fit

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("harness")


def train(workdir: Path, *argv: str, stop_at: int | None = None, resume: Path | None = None):
    """Run train_net in this process; ``stop_at``: interrupt right after the last.pt written
    at that global step (as a kill after a save would). Returns what it printed."""
    args = train_net.parse_args(
        ["--resume", str(resume), *argv] if resume else tiny_args(workdir, *argv)
    )
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), stop_after_save(stop_at):
        train_net.main(args)
    return buf.getvalue()


def run_dir(workdir: Path, description: str) -> Path:
    (run,) = (workdir / "runs").glob(f"*_{description}")
    return run


def assert_same(a, b, where: str = "") -> None:
    """Recursive exact equality of checkpoint contents (tensors bit for bit)."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


STATE_KEYS = ("model", "model_ema", "optimizer", "scheduler", "global_step", "rng", "metrics")

# 10 training images, batch 4, drop_last: 2 steps an epoch; 3 epochs = 6 steps.
EXACT_CASES = {
    "end_w0": (["--num-workers", "0"], 4),  # stopped after epoch 2
    "end_w2": (["--num-workers", "2"], 4),
    "mid_w0": (["--num-workers", "0", "--checkpoint-every", "1"], 3),  # inside epoch 2
    "mid_w2": (["--num-workers", "2", "--checkpoint-every", "1"], 3),
}


@pytest.mark.parametrize("case", list(EXACT_CASES))
def test_stopped_and_resumed_run_equals_uninterrupted_run(workdir, case):
    flags, stop = EXACT_CASES[case]
    common = ["--network", "ggcnn", "--epochs", "3", "--model-ema", "1", *flags]
    train(workdir, *common, "--description", f"{case}_full")
    train(workdir, *common, "--description", f"{case}_cut", stop_at=stop)
    cut = run_dir(workdir, f"{case}_cut")
    assert load_checkpoint(cut / "last.pt")["global_step"] == stop
    out = train(workdir, resume=cut / "last.pt")
    where = "epoch 3" if case.startswith("end") else "epoch 2, batch 2"
    assert f"resuming at {where}" in out
    full = load_checkpoint(run_dir(workdir, f"{case}_full") / "last.pt")
    resumed = load_checkpoint(cut / "last.pt")
    for k in STATE_KEYS:
        assert_same(full[k], resumed[k], k)
    assert (
        full["optimizer"]["param_groups"][0]["lr"] == resumed["optimizer"]["param_groups"][0]["lr"]
    )


def test_batches_made_in_a_thread_train_exactly_as_in_line(workdir):
    """--prefetch-thread on (auto's choice with 0 workers on Linux) against off: the
    same weights, EMA, optimiser and random states, bit for bit."""
    common = ["--network", "ggcnn", "--epochs", "2", "--model-ema", "1", "--num-workers", "0"]
    for mode in ("on", "off"):
        train(workdir, *common, "--prefetch-thread", mode, "--description", f"thread_{mode}")
    on, off = (load_checkpoint(run_dir(workdir, f"thread_{m}") / "last.pt") for m in ("on", "off"))
    for k in STATE_KEYS:
        assert_same(on[k], off[k], k)


def test_thread_prefetcher_keeps_order_raises_where_the_source_fails_and_stops_on_close():
    from utils.data.loader import ThreadPrefetcher

    assert list(ThreadPrefetcher(range(7), depth=2)) == list(range(7))
    drawn = []

    def source():
        for i in range(1000):
            drawn.append(i)
            if i == 3:
                raise OSError("bad file 3")
            yield i

    it = ThreadPrefetcher(source())
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(OSError, match="bad file 3"):
        next(it)
    assert list(it) == []  # ended after the error
    drawn.clear()
    slow = ThreadPrefetcher(iter(lambda: drawn.append(0) or len(drawn), None), depth=2)
    assert next(slow) == 1
    slow.close()
    n = len(drawn)
    assert n <= 5 and list(slow) == []  # stopped a few items ahead, drew nothing more
    assert len(drawn) == n
    with pytest.raises(ValueError, match="depth"):
        ThreadPrefetcher([], depth=0)
    # low_priority: the thread alone runs at nice 19 where the OS allows it (Linux).
    import os
    import threading

    from utils.data.loader import PER_THREAD_PRIORITY

    def nice_values():
        yield os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    own = os.getpriority(os.PRIO_PROCESS, 0) if PER_THREAD_PRIORITY else None
    for low in (True, False):
        seen = list(ThreadPrefetcher(nice_values(), low_priority=low))
        if PER_THREAD_PRIORITY:
            assert seen == [19 if low else own]
    if PER_THREAD_PRIORITY:
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own  # caller's
    # Dropped without close(): garbage collection stops the thread.
    import gc

    dropped = ThreadPrefetcher(iter(int, 1), depth=1)
    thread = dropped._thread
    del dropped
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_exact_resume_of_a_network_with_dropout_needs_the_saved_rng(workdir, monkeypatch):
    """PSPNet's dropout draws from the global RNG: the resumed run matches only because the
    checkpoint's RNG states are put back (without them, the weights differ)."""
    common = ["--network", "pspnet", "--output-stride", "32", "--epochs", "2",
              "--checkpoint-every", "1"]  # fmt: skip
    train(workdir, *common, "--description", "psp_full")
    train(workdir, *common, "--description", "psp_cut", stop_at=3)
    cut = run_dir(workdir, "psp_cut")
    (cut / "stopped.pt").write_bytes((cut / "last.pt").read_bytes())
    train(workdir, resume=cut / "last.pt")
    full = load_checkpoint(run_dir(workdir, "psp_full") / "last.pt")
    assert_same(full["model"], load_checkpoint(cut / "last.pt")["model"], "model")
    # The control: the same resume without the RNG states does not match.
    (cut / "last.pt").write_bytes((cut / "stopped.pt").read_bytes())
    monkeypatch.setattr(training, "set_rng_state", lambda state: None)
    train(workdir, resume=cut / "last.pt")
    resumed = load_checkpoint(cut / "last.pt")["model"]
    assert not all(torch.equal(full["model"][k], resumed[k]) for k in resumed)


@pytest.fixture(scope="module")
def short_run(workdir) -> Path:
    """A 3-epoch GG-CNN run stopped after epoch 1, kept pristine: tests copy it."""
    train(workdir, "--network", "ggcnn", "--epochs", "3", "--description", "short", stop_at=2)
    return run_dir(workdir, "short")


def copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.glob("*.pt"):
        (dst / f.name).write_bytes(f.read_bytes())
    (dst / "args.json").write_text((src / "args.json").read_text())
    return dst


def test_resume_with_more_epochs_replans_the_decay_without_a_jump(short_run, tmp_path):
    run = copy_run(short_run, tmp_path / "run")
    before = load_checkpoint(run / "last.pt")
    lr_before = before["optimizer"]["param_groups"][0]["lr"]
    out = train(tmp_path, "--epochs", "6", resume=run / "last.pt")
    assert "--epochs 3 -> 6: re-plans the rest of the cosine decay" in out
    after = load_checkpoint(run / "last.pt")
    assert after["epoch"] == 6 and after["scheduler"]["total"] == 12
    assert after["scheduler"]["start"] == 2
    assert after["scheduler"]["start_factor"] == pytest.approx(lr_before / 1e-3)
    # The decay ends where a run's does: 1% of the peak rate.
    assert after["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 * FINAL_FACTOR)


def test_resume_with_new_lr_and_weight_decay(short_run, tmp_path):
    run = copy_run(short_run, tmp_path / "run")
    out = train(tmp_path, "--lr", "5e-4", "--weight-decay", "0.01", resume=run / "last.pt")
    assert "--lr 0.001 -> 0.0005" in out and "--weight-decay 0.0001 -> 0.01" in out
    after = load_checkpoint(run / "last.pt")
    group = after["optimizer"]["param_groups"][0]
    assert after["scheduler"]["base_lrs"] == [5e-4] and group["weight_decay"] == 0.01
    # As a run started with --lr 5e-4 would be at its last step.
    assert group["lr"] == pytest.approx(5e-4 * FINAL_FACTOR)
    assert after["args"]["lr"] == 5e-4


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--batch-size", "2"], "--batch-size 2 differs from the resumed run's 4"),
        (["--network", "ggcnn2"], "--network ggcnn2 differs from the resumed run's ggcnn"),
        (["--seed", "3"], "--seed 3 differs"),
        (["--epochs", "1"], "--epochs 1: the resumed run has already completed 1 epoch(s)"),
    ],
)
def test_resume_refuses_what_it_cannot_honour(short_run, tmp_path, flags, message):
    run = copy_run(short_run, tmp_path / "run")
    res = run_script("train_net.py", "--resume", str(run / "last.pt"), *flags)
    one_line_error(res, message)


def test_resume_by_another_script_is_refused(short_run, tmp_path):
    """A checkpoint records the script that wrote it: another script's flags and step would
    fall back to its own defaults and change the run silently."""
    run = copy_run(short_run, tmp_path / "run")
    assert load_checkpoint(run / "last.pt")["script"] == "train_net.py"
    for script in ("mixmatch_train.py", "distill.py"):
        one_line_error(
            run_script(script, "--resume", str(run / "last.pt")),
            f"a train_net.py run, this is {script}: resume it with 'python train_net.py",
        )


def test_mid_epoch_resume_needs_the_unfinished_epoch(short_run, tmp_path):
    run = copy_run(short_run, tmp_path / "run")
    ckpt = load_checkpoint(run / "last.pt")
    ckpt["step_in_epoch"] = 1  # stopped inside epoch 2 (epoch 1 completed)
    torch.save(ckpt, run / "last.pt")
    one_line_error(
        run_script("train_net.py", "--resume", str(run / "last.pt"), "--epochs", "1"),
        "--epochs 1: the resumed run has already completed 1 epoch(s); give --epochs 2",
    )


def test_resume_on_changed_data_is_refused_and_leaves_the_run_alone(short_run, tmp_path):
    """Images added to or removed from the dataset would move images between the parts: the
    checkpoint's fingerprint of the split is checked before anything is written."""
    run = copy_run(short_run, tmp_path / "run")
    ckpt = load_checkpoint(run / "last.pt")
    assert len(ckpt["data_fingerprint"]) == 16 and ckpt["epoch_length"] == 2
    ckpt["data_fingerprint"] = "0" * 16
    torch.save(ckpt, run / "last.pt")
    before = {f.name: f.read_bytes() for f in run.iterdir()}
    one_line_error(
        run_script("train_net.py", "--resume", str(run / "last.pt"), "--epochs", "4"),
        "the dataset's images or split differ from the run's",
    )
    assert {f.name: f.read_bytes() for f in run.iterdir()} == before  # no args_resume.json


def test_fingerprint_tells_apart_the_images_of_each_part():
    from types import SimpleNamespace

    from utils.data.build import data_fingerprint

    ds = SimpleNamespace(sample_id=lambda i: f"id{i}")
    split = {"train": [0, 1, 2], "val": [3], "test": [4]}
    data = SimpleNamespace(dataset=ds, split=split, unlabelled_train=[], unlabelled_loader=None)
    same = SimpleNamespace(**{**vars(data), "split": {k: list(v) for k, v in split.items()}})
    moved = SimpleNamespace(**{**vars(data), "split": {**split, "train": [0, 1, 4], "test": [2]}})
    assert data_fingerprint(data) == data_fingerprint(same)
    assert data_fingerprint(data) != data_fingerprint(moved)

    # Unlabelled images are named through the loader's wrappers, not only counted.
    from utils.data.loader import SeededItems
    from utils.data.unlabelled import ConcatItems, SubsetItems

    class Named(torch.utils.data.Dataset):
        def __init__(self, names):
            self.names = names

        def __len__(self):
            return len(self.names)

        def sample_id(self, i):
            return self.names[i]

    def with_unlabelled(*names):
        u = SeededItems(ConcatItems([SubsetItems(Named(list(n)), range(len(n))) for n in names]))
        return SimpleNamespace(**{**vars(data), "unlabelled_loader": SimpleNamespace(dataset=u)})

    a = data_fingerprint(with_unlabelled("ab", "c"))
    assert a == data_fingerprint(with_unlabelled("ab", "c"))
    assert a != data_fingerprint(with_unlabelled("ab", "d"))  # same count, another image
    assert a != data_fingerprint(with_unlabelled("a", "bc"))  # another folder


def test_machine_resolved_workers_and_threads_are_not_inherited(short_run, tmp_path):
    """args.json holds this machine's resolution of the worker/thread rule; a resume inherits
    what the run was given, so elsewhere the rule is applied again."""
    run = copy_run(short_run, tmp_path / "run")
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["given_flags"] == {"num_workers": 0, "threads": None}  # as tiny_args gives
    ckpt["given_flags"] = {"num_workers": None, "threads": None}  # defaults, resolved ...
    ckpt["args"].update(num_workers=7, threads=5)  # ... by another machine's rule
    torch.save(ckpt, run / "last.pt")
    args = train_net.parse_args(["--resume", str(run / "last.pt")])
    assert args.num_workers is None and args.threads is None  # this machine's rule applies
    assert "num_workers" not in args._resume_changes
    ckpt["given_flags"] = {"num_workers": 2, "threads": None}  # given: kept
    torch.save(ckpt, run / "last.pt")
    assert train_net.parse_args(["--resume", str(run / "last.pt")]).num_workers == 2


def test_bf16_that_auto_chose_is_not_inherited_by_a_cpu_without_bf16_units(
    short_run, tmp_path, monkeypatch
):
    """A run started with --amp auto on a bf16 machine stores bf16; resumed (without --amp) on
    a CPU without bf16 units it goes on in fp32 and says so, instead of emulating bf16."""
    import json

    import utils.harness as harness

    run = copy_run(short_run, tmp_path / "run")
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["precision_requested"] == {"amp": "off", "channels_last": "off"}  # as tiny_args
    ckpt["precision_requested"] = {"amp": "auto", "channels_last": "auto"}
    ckpt["args"].update(amp="bf16", channels_last="on")  # what auto chose on that machine
    torch.save(ckpt, run / "last.pt")
    monkeypatch.setattr(harness, "cpu_has_bf16_instructions", lambda: False)
    out = train(tmp_path, resume=run / "last.pt")
    assert "the run goes on in fp32" in out and "fp32 + channels_last" in out.split("\n")[0]
    assert json.loads((run / "args_resume.json").read_text())["amp"] == "off"
    # The request travels on: the next checkpoint still says the run asked for auto.
    assert load_checkpoint(run / "last.pt")["precision_requested"]["amp"] == "auto"

    torch.save(ckpt, run / "last.pt")
    given = train_net.parse_args(["--resume", str(run / "last.pt"), "--amp", "bf16"])
    harness._reresolve_emulated_bf16(given, torch.device("cpu"))
    assert given.amp == "bf16"  # asked for on this command: kept
    monkeypatch.setattr(harness, "cpu_has_bf16_instructions", lambda: True)
    same = train_net.parse_args(["--resume", str(run / "last.pt")])
    harness._reresolve_emulated_bf16(same, torch.device("cpu"))
    assert same.amp == "bf16"  # a CPU with bf16 units keeps the run's numerics


def test_each_rank_resumes_its_own_running_loss_sums(tmp_path):
    model = get_network("ggcnn")
    opt = torch.optim.Adam(model.parameters())
    t = Trainer(model, opt, lambda *a: None, resolve_precision("off", "off", torch.device("cpu")))
    ckpt = t.checkpoint(training.TrainState(sums={"loss": 1.5}), {}, {}, "last")
    assert ckpt["epoch_sums"] == {"loss": 1.5} and ckpt["epoch_sums_by_rank"] == [{"loss": 1.5}]
    ckpt["epoch_sums_by_rank"] = [{"loss": 1.5}, {"loss": 2.5}]  # as 2 processes write it
    ckpt["rng"] = ckpt["rng"] * 2
    assert t.restore(ckpt, rank=1).sums == {"loss": 2.5}
    assert t.restore(ckpt, rank=0).sums == {"loss": 1.5}
    del ckpt["epoch_sums_by_rank"]  # an older checkpoint: rank 0's sums for every rank
    assert t.restore(ckpt, rank=1).sums == {"loss": 1.5}


def test_resume_from_best_is_refused_unless_asked_and_then_forks(short_run, tmp_path):
    run = copy_run(short_run, tmp_path / "run")
    last = (run / "last.pt").read_bytes()
    res = run_script("train_net.py", "--resume", str(run / "best.pt"))
    one_line_error(res, "is a best checkpoint (epoch 1), not a run's last.pt")
    outdir = tmp_path / "forks"
    out = train(tmp_path, "--fork", "--outdir", str(outdir), resume=run / "best.pt")
    assert "into a new run folder (--fork)" in out
    (fork,) = outdir.iterdir()
    assert load_checkpoint(fork / "last.pt")["epoch"] == 3
    assert (run / "last.pt").read_bytes() == last  # the old run is untouched


def test_bad_resume_paths_and_files_are_one_line_errors(short_run, tmp_path):
    one_line_error(
        run_script("train_net.py", "--resume", str(tmp_path / "nope.pt")),
        "nope.pt: checkpoint file not found",
    )
    truncated = tmp_path / "last.pt"
    truncated.write_bytes((short_run / "last.pt").read_bytes()[:5000])
    one_line_error(
        run_script("train_net.py", "--resume", str(truncated)), "last.pt: not a readable checkpoint"
    )
    # A checkpoint whose weights belong to another network.
    ckpt = load_checkpoint(short_run / "last.pt")
    ckpt["network"] = {"name": "ggcnn2", "kwargs": {}}
    other = tmp_path / "other.pt"
    torch.save(ckpt, other)
    one_line_error(
        run_script("eval_net.py", "--network", str(other)), "other.pt: weights do not fit"
    )
    one_line_error(
        run_script("train_net.py", "--resume", str(other)),
        "other.pt: weights do not fit",
    )


def test_ema_run_picks_best_by_ema_and_eval_net_scores_either(workdir, capsys):
    if not list((workdir / "runs").glob("*_ema")):
        train(workdir, "--network", "ggcnn", "--epochs", "3", "--model-ema", "1",
              "--description", "ema")  # fmt: skip
    run = run_dir(workdir, "ema")
    best = load_checkpoint(run / "best.pt")
    assert best["eval_weights"] == "model_ema" and "model_ema" in best
    assert not all(torch.equal(best["model"][k], best["model_ema"][k]) for k in best["model"])
    common = ["--network", str(run / "best.pt"), "--num-workers", "0",
              "--cache-dir", str(workdir / "cache"), "--outdir", str(workdir / "eval_ema")]  # fmt: skip
    assert eval_net.main(eval_net.parse_args(common))["weights"] == "model_ema"
    assert eval_net.main(eval_net.parse_args([*common, "--weights", "model"]))["weights"] == "model"
    printed = capsys.readouterr().out
    assert "model_ema) on synthetic (test part, object-wise" in printed
    assert "| success rate [95% CI] |" in printed
    # A run without EMA has none to give.
    train(workdir, "--network", "ggcnn", "--epochs", "1", "--description", "plain")
    res = run_script(
        "eval_net.py", "--network", str(run_dir(workdir, "plain") / "last.pt"), "--weights", "ema"
    )
    one_line_error(res, "no EMA weights in this checkpoint")


def test_model_ema_average_and_decay_ramp():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = ModelEma(model, decay=0.9)
    w0 = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model)  # d = min(0.9, 1/10) = 0.1
    expected = 0.1 * w0 + 0.9 * (w0 + 1.0)
    assert torch.allclose(ema.module[0].weight, expected)
    assert ema.module[1].num_batches_tracked == model[1].num_batches_tracked
    assert ema.current_decay() == pytest.approx(2 / 11)
    assert not any(p.requires_grad for p in ema.module.parameters())
    with pytest.raises(ValueError, match="--model-ema-decay"):
        ModelEma(model, decay=1.0)


def test_a_steps_state_is_saved_and_restored(tmp_path):
    class CountingStep:
        def __init__(self):
            self.calls = 0

        def __call__(self, m, batch, ctx):
            self.calls += 1
            return StepOutput((m(batch["x"]) ** 2).mean(), {}, len(batch["x"]))

        def state_dict(self):
            return {"calls": self.calls}

        def load_state_dict(self, state):
            self.calls = state["calls"]

    def trainer():
        torch.manual_seed(0)
        model = get_network("ggcnn")
        opt = torch.optim.Adam(model.parameters())
        return Trainer(
            model, opt, CountingStep(), resolve_precision("off", "off", torch.device("cpu"))
        )

    batches = [{"x": torch.randn(2, 1, 32, 32), "index": torch.arange(2)} for _ in range(3)]
    t = trainer()
    fit(t, batches, None, epochs=1, run_dir=tmp_path, args={}, dist=DistInfo(),
        logger=RunLogger(None))  # fmt: skip
    assert t.step.calls == 3
    fresh = trainer()
    state = fresh.restore(load_checkpoint(tmp_path / "last.pt"))
    assert fresh.step.calls == 3 and state.epoch == 2 and state.global_step == 3


def test_warmup_cosine_replan_and_rescale():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    s = WarmupCosine(opt, warmup=2, total=10)
    lrs = [s.get_last_lr()[0]]
    for _ in range(10):
        s.step()
        lrs.append(s.get_last_lr()[0])
    assert lrs[:3] == [0.5, 1.0, 1.0] and lrs[10] == pytest.approx(FINAL_FACTOR)
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:], strict=False))
    s2 = WarmupCosine(opt, warmup=2, total=10)
    for _ in range(5):
        s2.step()
    now = s2.get_last_lr()[0]
    s2.replan(20)
    assert s2.get_last_lr()[0] == pytest.approx(now)  # no jump
    for _ in range(15):
        s2.step()
    assert s2.get_last_lr()[0] == pytest.approx(FINAL_FACTOR)
    s2.rescale(0.5)
    assert s2.get_last_lr()[0] == pytest.approx(0.5 * FINAL_FACTOR)
    with pytest.raises(ValueError, match="--epochs"):
        s2.replan(3)


def test_rng_state_round_trip():
    import random

    import numpy as np

    state = rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_epoch_batch_sampler_order_shards_and_start():
    s = EpochBatchSampler(range(10, 20), 3, shuffle=True, seed=0)
    s.set_epoch(1)
    e1 = list(s)
    assert list(s) == e1  # a function of (seed, epoch)
    s.set_epoch(2)
    assert list(s) != e1
    s.set_epoch(1)
    s.start_at(2)
    assert list(s) == e1[2:] and list(s) == e1  # start_at applies once
    assert sorted(i for b in e1 for i, _ in b) == list(range(10, 20))
    # Two ranks: equal length, together every index, with distinct augmentation seeds.
    shards = [EpochBatchSampler(range(10), 2, shuffle=True, seed=0, rank=r, world_size=2)
              for r in (0, 1)]  # fmt: skip
    items = [pair for sh in shards for b in sh for pair in b]
    assert len(shards[0]) == len(shards[1]) == 3
    assert {i for i, _ in items} == set(range(10)) and len({s for _, s in items}) == 10


def test_loader_batches_do_not_depend_on_workers(workdir):
    from utils.data.build import dataset_from_args, split_from_args

    args = train_net.parse_args(tiny_args(workdir, "--network", "ggcnn"))
    ds = dataset_from_args(args, augment=True)
    train_idx = split_from_args(args, ds)["train"]
    xs = {}
    for workers in (0, 2):
        loader = make_loader(ds, train_idx, 4, shuffle=True, num_workers=workers, seed=5)
        loader.batch_sampler.set_epoch(3)
        xs[workers] = [(b["index"], b["rot"], b["x"]) for b in loader]
    for (i0, r0, x0), (i2, r2, x2) in zip(xs[0], xs[2], strict=True):
        assert torch.equal(i0, i2) and torch.equal(r0, r2) and torch.equal(x0, x2)
    assert len({float(r) for _, rot, _ in xs[0] for r in rot}) > 1  # augmentation is on


def test_both_loaders_reshuffle_every_epoch(workdir):
    from utils.data.build import dataset_from_args

    args = train_net.parse_args(tiny_args(workdir, "--network", "ggcnn"))
    ds = dataset_from_args(args, augment=False)
    labelled = make_loader(ds, range(0, 8), 2, shuffle=True, num_workers=0, seed=0)
    unlabelled = make_loader(ds, range(8, 20), 2, shuffle=True, num_workers=0, seed=0)
    orders = []
    for epoch in (1, 2):
        pairs = training.epoch_batches(labelled, epoch, 6)
        unl = training.epoch_batches(unlabelled, epoch, 6)
        orders.append(
            [(b["index"].tolist(), u["index"].tolist()) for b, u in zip(pairs, unl, strict=True)]
        )
    for e in orders:
        assert all(set(a) < set(range(8)) and set(u) <= set(range(8, 20)) for a, u in e)
    assert [a for a, _ in orders[0]] != [a for a, _ in orders[1]]
    assert [u for _, u in orders[0]] != [u for _, u in orders[1]]
    # The labelled loader (4 batches) cycles into a second, differently shuffled pass.
    first = [tuple(a) for a, _ in orders[0]]
    assert sorted(i for a in first[:4] for i in a) == list(range(8)) and first[4:] != first[:2]


def test_training_shards_are_padded_and_loaders_have_their_own_streams():
    # Unshuffled training shards (--ds-shuffle 0) still give every rank the same step count.
    lens = [len(EpochBatchSampler(range(9), 1, shuffle=False, seed=0, rank=r, world_size=2,
                                  pad=True)) for r in (0, 1)]  # fmt: skip
    assert lens == [5, 5]
    a = EpochBatchSampler(range(20), 4, shuffle=True, seed=0)
    b = EpochBatchSampler(range(20), 4, shuffle=True, seed=0, stream=1)
    assert list(a) != list(b)  # a labelled and an unlabelled loader never draw alike
    a.set_epoch(1, 1000)
    first = list(a)
    a.set_epoch(2, 0)
    assert list(a) != first  # (epoch, pass) pairs never collide


def test_old_lambdalr_schedule_state_resumes_at_its_step():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    s = WarmupCosine(opt, warmup=0, total=10)
    s.load_state_dict({"last_epoch": 5, "base_lrs": [1.0], "_step_count": 6})
    assert s.last_step == 5 and s.get_last_lr()[0] == pytest.approx(s.factor(5))
    with pytest.raises(ValueError, match="not a learning-rate schedule"):
        s.load_state_dict({"nothing": 1})


def test_switches_are_not_inherited_and_outdir_needs_fork(short_run, tmp_path):
    run = copy_run(short_run, tmp_path / "run")
    ckpt = load_checkpoint(run / "last.pt")
    ckpt["args"].update(vis=True, fork=True)
    torch.save(ckpt, run / "last.pt")
    args = train_net.parse_args(["--resume", str(run / "last.pt")])
    assert args.vis is False and args.fork is False
    one_line_error(
        run_script("train_net.py", "--resume", str(run / "last.pt"), "--outdir", str(tmp_path)),
        "--outdir applies only with --fork",
    )


def test_torchrun_resume_keeps_the_process_count(workdir):
    flags = tiny_args(workdir, "--network", "ggcnn", "--epochs", "1", "--description", "ddp_r")
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    res = run_script(*torchrun, "train_net.py", *flags)
    # stdout too: where a run stopped is on stdout. (Rank 1 used to abort at exit now and then
    # under load: see utils.entrypoint._exit_without_finalizing.)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    last = run_dir(workdir, "ddp_r") / "last.pt"
    assert load_checkpoint(last)["world_size"] == 2
    one_line_error(
        run_script("train_net.py", "--resume", str(last), "--epochs", "2"),
        "the run used 2 process(es), this command 1",
    )
    res = run_script(*torchrun, "train_net.py", "--resume", str(last), "--epochs", "2")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "resuming at epoch 2" in res.stdout
    assert load_checkpoint(last)["epoch"] == 2
