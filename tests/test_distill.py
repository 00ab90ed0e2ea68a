"""distill.py: a frozen teacher, the loss terms, the student checkpoint, resume and errors."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch
from conftest import run_script, stop_after_save, tiny_args

import distill
import eval_net
import train_net
from models import get_network
from utils.checkpoint import load_checkpoint
from utils.distillation import DistillStep, teacher_loss
from utils.precision import resolve_precision
from utils.steps import StepContext, SupervisedStep

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("distill")


def quiet(fn, *args):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        out = fn(*args)
    return out, buf.getvalue()


@pytest.fixture(scope="module")
def teacher(workdir) -> Path:
    args = train_net.parse_args(
        tiny_args(workdir, "--network", "ggcnn2", "--epochs", "2", "--description", "teacher")
    )
    quiet(train_net.main, args)
    (run,) = (workdir / "runs").glob("*_teacher")
    return run / "last.pt"


def run_distill(workdir: Path, teacher: Path, *extra: str, stop_at: int | None = None):
    args = distill.parse_args(
        tiny_args(workdir, "--teacher", str(teacher), "--network", "ggcnn", *extra)
    )
    result: tuple = (None, "")
    with stop_after_save(stop_at):
        result = quiet(distill.main, args)
    return result


def test_distillation_lowers_the_loss_and_leaves_the_teacher_alone(workdir, teacher):
    before = load_checkpoint(teacher)["model"]
    _, out = run_distill(
        workdir, teacher, "--epochs", "4", "--batches-per-epoch", "6", "--lr", "3e-3",
        "--description", "kd",
    )  # fmt: skip
    assert load_checkpoint(teacher)["model"].keys() == before.keys()
    assert all(torch.equal(before[k], load_checkpoint(teacher)["model"][k]) for k in before)
    (run,) = (workdir / "runs").glob("*_kd")
    last = load_checkpoint(run / "last.pt")
    assert last["network"]["name"] == "ggcnn" and last["args"]["teacher"] == [str(teacher)]
    assert {"train_kd", "train_task", "train_kd_quality", "train_kd_cos"} <= set(last["metrics"])
    losses = [float(line.split("train_loss ")[1].split(" ")[0])
              for line in out.splitlines() if line.startswith("epoch ")]  # fmt: skip
    assert losses[-1] < losses[0]
    # An ordinary checkpoint: eval_net scores it.
    summary = eval_net.main(eval_net.parse_args(
        ["--network", str(run / "best.pt"), "--num-workers", "0",
         "--cache-dir", str(workdir / "cache"), "--outdir", str(workdir / "eval")]
    ))  # fmt: skip
    assert summary["images"] > 0


def test_teacher_gets_no_gradient_and_kd_weight_zero_is_the_supervised_step():
    torch.manual_seed(0)
    teacher = get_network("ggcnn2").eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = get_network("ggcnn")
    twin = get_network("ggcnn")
    twin.load_state_dict(student.state_dict())
    ctx = StepContext(torch.device("cpu"), resolve_precision("off", "off", torch.device("cpu")))
    batch = {"x": torch.randn(2, 1, 32, 32), "y": torch.rand(2, 4, 32, 32)}
    kd = DistillStep(teacher, student, task_weight=1.0, kd_weight=0.0)(student, batch, ctx)
    sup = SupervisedStep()(twin, batch, ctx)
    assert torch.equal(kd.loss, sup.loss)
    kd.loss.backward()
    sup.loss.backward()
    for a, b in zip(student.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad)
    out = DistillStep(teacher, student, kd_weight=1.0)(student, batch, ctx)
    out.loss.backward()
    assert all(p.grad is None for p in teacher.parameters())


def test_teacher_loss_weights_angle_and_width_by_teacher_quality():
    t = torch.zeros(1, 4, 2, 2)
    t[0, 0, 0, 0] = 1.0  # one grasp pixel
    s = t.clone()
    s[0, 1, 1, 1] = 5.0  # an angle error where the teacher sees no grasp: ignored
    total, terms = teacher_loss(s, t)
    assert float(total) == 0.0
    s[0, 1, 0, 0] = 2.0  # on the grasp pixel: counted
    _, terms = teacher_loss(s, t)
    assert float(terms["kd_cos"]) == pytest.approx(4.0) and float(terms["kd_quality"]) == 0.0


def test_distilled_run_resumes_exactly(workdir, teacher):
    flags = ["--epochs", "2", "--checkpoint-every", "1", "--model-ema", "1"]
    run_distill(workdir, teacher, *flags, "--description", "kd_full")
    run_distill(workdir, teacher, *flags, "--description", "kd_cut", stop_at=3)
    (cut,) = (workdir / "runs").glob("*_kd_cut")
    quiet(distill.main, distill.parse_args(["--resume", str(cut / "last.pt")]))
    (full,) = (workdir / "runs").glob("*_kd_full")
    a, b = load_checkpoint(full / "last.pt"), load_checkpoint(cut / "last.pt")
    for k in ("model", "model_ema"):
        assert all(torch.equal(a[k][n], b[k][n]) for n in a[k])


def test_unlabelled_images_and_feature_hint(workdir, tmp_path):
    from utils.data.synthetic import generate_dataset

    unl = generate_dataset(tmp_path / "unl", n_scenes=6, size=96, seed=7)
    for f in unl.glob("*/*_grasps.txt"):
        f.unlink()  # truly unlabelled
    tiny_psp = ["--network", "pspnet", "--output-stride", "32", "--epochs", "1"]
    quiet(
        train_net.main, train_net.parse_args(tiny_args(workdir, *tiny_psp, "--description", "pt"))
    )
    (pt,) = (workdir / "runs").glob("*_pt")
    args = distill.parse_args(tiny_args(
        workdir, "--teacher", str(pt / "last.pt"), *tiny_psp, "--feature-weight", "1",
        "--unlabeled-path", str(unl), "--description", "hint",
    ))  # fmt: skip
    _, out = quiet(distill.main, args)
    assert "+ 6 unlabelled" in out
    (run,) = (workdir / "runs").glob("*_hint")
    last = load_checkpoint(run / "last.pt")
    assert "train_hint" in last["metrics"] and "adapter" in last["step"]


@pytest.mark.parametrize(
    ("make", "flags", "message"),
    [
        ("junk", [], "not a readable checkpoint"),
        (
            "teacher",
            ["--use-rgb", "1"],
            "the teacher takes 1 input channel(s), the student's data gives 4",
        ),
        ("teacher", ["--input-size", "32"], "trained at --input-size 64, the student's data is 32"),
        (
            "teacher",
            ["--network", "ggcnn", "--feature-weight", "1"],
            "--feature-weight needs PSPNet",
        ),
    ],
)
def test_bad_teachers_are_one_line_errors(workdir, teacher, tmp_path, make, flags, message):
    path = teacher
    if make == "junk":
        path = tmp_path / "junk.pt"
        path.write_bytes(b"not a checkpoint")
    res = run_script("distill.py", *tiny_args(workdir, "--teacher", str(path), *flags))
    assert res.returncode == 2, res.stderr[-2000:]
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_teacher_of_another_split_and_leaking_unlabelled_images_are_refused(workdir, teacher):
    args = train_net.parse_args(tiny_args(
        workdir, "--network", "ggcnn2", "--epochs", "1", "--split-seed", "3",
        "--description", "other_split",
    ))  # fmt: skip
    quiet(train_net.main, args)
    (other,) = (workdir / "runs").glob("*_other_split")
    with pytest.raises(ValueError, match="--split-seed 3, the student uses 0"):
        run_distill(workdir, other / "last.pt", "--epochs", "1")
    # The training dataset itself as "unlabelled" images holds its val and test objects.
    with pytest.raises(ValueError, match="objects of the run's validation or test part"):
        run_distill(workdir, teacher, "--epochs", "1",
                    "--unlabeled-path", str(workdir / "synthetic"))  # fmt: skip


def test_an_ensemble_teacher_is_the_mean_of_its_members(workdir, teacher):
    from models import MapEnsemble

    torch.manual_seed(0)
    nets = [get_network("ggcnn2").eval() for _ in range(2)]
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(MapEnsemble(nets)(x), (nets[0](x) + nets[1](x)) / 2)
        # The same network twice is that network: the step's loss is unchanged.
        student = get_network("ggcnn")
        ctx = StepContext(torch.device("cpu"), resolve_precision("off", "off", torch.device("cpu")))
        batch = {"x": x, "y": torch.rand(2, 4, 32, 32)}
        one = DistillStep(nets[0], student)(student, batch, ctx).loss
        two = DistillStep(MapEnsemble([nets[0], nets[0]]), student)(student, batch, ctx).loss
    assert torch.equal(one, two)
    with pytest.raises(ValueError, match="different input channels"):
        MapEnsemble([nets[0], get_network("ggcnn", input_channels=4)])
    # Through distill.py: several --teacher checkpoints, stored as the list.
    args = distill.parse_args(tiny_args(
        workdir, "--teacher", str(teacher), str(teacher), "--network", "ggcnn", "--epochs", "1",
        "--batches-per-epoch", "2", "--description", "kd_two",
    ))  # fmt: skip
    quiet(distill.main, args)
    (run,) = (workdir / "runs").glob("*_kd_two")
    last = load_checkpoint(run / "last.pt")
    assert last["args"]["teacher"] == [str(teacher)] * 2 and "train_kd" in last["metrics"]
    res = run_script("distill.py", *tiny_args(
        workdir, "--teacher", str(teacher), str(teacher), "--network", "pspnet",
        "--feature-weight", "1",
    ))  # fmt: skip
    assert res.returncode == 2 and "--feature-weight needs a single --teacher" in res.stderr


def test_eval_auto_precision_is_timed_per_network(workdir, teacher, tmp_path, monkeypatch):
    """On a CPU with bf16 instructions, eval_net's --amp auto times the network's forward pass
    in bf16 and fp32 (channels_last both) and keeps the faster."""
    import utils.precision as prec

    monkeypatch.setattr(prec, "cpu_has_bf16_instructions", lambda: True)
    common = [
        "--network",
        str(teacher),
        "--num-workers",
        "0",
        "--cache-dir",
        str(workdir / "cache"),
    ]
    for bf16_s, expect in ((0.1, "bf16 + channels_last"), (0.3, "fp32 + channels_last")):
        monkeypatch.setattr(
            prec,
            "time_precisions",
            lambda m, ps, *a, b=bf16_s, **k: [b if p.dtype else 0.2 for p in ps],
        )
        summary = eval_net.main(eval_net.parse_args([*common, "--outdir", str(tmp_path / expect)]))
        assert summary["precision"] == expect
    summary = eval_net.main(
        eval_net.parse_args([*common, "--amp", "off", "--outdir", str(tmp_path)])
    )
    assert summary["precision"] == "fp32 + channels_last"  # --channels-last auto: on on the CPU

    # The data is checked before the timing: a bad dataset flag fails at once.
    def no_timing(*a, **k):
        raise AssertionError("timed before the data was checked")

    monkeypatch.setattr(prec, "time_precisions", no_timing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        eval_net.main(eval_net.parse_args(
            [*common, "--dataset", "jacquard", "--dataset-path", str(tmp_path / "empty")]
        ))  # fmt: skip


def test_eval_ensemble_scores_the_mean_maps_as_one_model(workdir, teacher, tmp_path):
    common = ["--num-workers", "0", "--cache-dir", str(workdir / "cache")]
    alone = eval_net.main(eval_net.parse_args(
        ["--network", str(teacher), *common, "--outdir", str(tmp_path / "a")]
    ))  # fmt: skip
    both = eval_net.main(eval_net.parse_args(
        ["--ensemble", "--network", str(teacher), str(teacher), *common,
         "--outdir", str(tmp_path / "b")]
    ))  # fmt: skip
    assert both["ensemble"] == [str(teacher.resolve())] * 2
    assert both["per_image"] == alone["per_image"]
    assert both["mean_best_iou"] == pytest.approx(alone["mean_best_iou"])
    # Members trained on other inputs, or a lone member: one-line errors.
    other = load_checkpoint(teacher)
    other["args"] = {**other["args"], "input_size": 32}
    torch.save(other, tmp_path / "other.pt")
    res = run_script("eval_net.py", "--ensemble", "--network", str(teacher),
                     str(tmp_path / "other.pt"), *common)  # fmt: skip
    assert res.returncode == 2 and "--input-size 32" in res.stderr, res.stderr[-1500:]
    assert len(res.stderr.strip().splitlines()) == 1
    res = run_script("eval_net.py", "--ensemble", "--network", str(teacher), *common)
    assert res.returncode == 2 and "two or more checkpoints" in res.stderr
