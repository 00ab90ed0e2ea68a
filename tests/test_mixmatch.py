"""MixMatch: labels of unlabelled images never read, exact label guessing over views, sharpening,
MixUp, a short run, the EMA checkpoint in eval_net and exact resume."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
from conftest import stop_after_save, tiny_args

import eval_net
import mixmatch_train
import train_net
from models import get_network
from utils.checkpoint import load_checkpoint
from utils.data.build import labelled_subset
from utils.dihedral import DihedralTTA
from utils.grasp import GraspRectangles
from utils.mixmatch import MixMatchStep, cut_boxes, cutmix, guess_maps, mixup, sharpen


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mixmatch")


def run_mixmatch(workdir: Path, *extra: str, stop_at: int | None = None, resume=None) -> str:
    argv = (
        ["--resume", str(resume)]
        if resume
        else tiny_args(
            workdir, "--network", "ggcnn", "--labeled-fraction", "0.5", "--rampup", "4", *extra
        )
    )
    args = mixmatch_train.parse_args(argv)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), stop_after_save(stop_at):
        mixmatch_train.main(args)
    return buf.getvalue()


def test_labelled_subset_is_fixed_by_seed_and_disjoint():
    train = list(range(100, 140))
    args = argparse.Namespace(labeled_count=None, labeled_fraction=0.25, labeled_seed=3)
    lab, unl = labelled_subset(train, args)
    assert (lab, unl) == labelled_subset(train, args)
    assert len(lab) == 10 and not set(lab) & set(unl) and sorted(lab + unl) == train
    args.labeled_seed = 4
    assert labelled_subset(train, args)[0] != lab
    args.labeled_count = 40
    assert labelled_subset(train, args) == (train, [])  # train_net may label them all
    args.labeled_count = 41
    with pytest.raises(ValueError, match="41 labelled of 40 training images"):
        labelled_subset(train, args)
    with pytest.raises(SystemExit):  # MixMatch needs unlabelled images
        mixmatch_train.parse_args(["--labeled-fraction", "1"])


def test_train_net_trains_on_the_same_labelled_subset(workdir):
    """The labelled-only baseline: train_net.py --labeled-count reads the subset that
    mixmatch_train.py with the same --labeled-* flags labels."""
    subset = ["--labeled-count", "3", "--labeled-seed", "5"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        train_net.main(
            train_net.parse_args(
                tiny_args(
                    workdir, "--network", "ggcnn", "--epochs", "1", "--description", "lab", *subset
                )  # fmt: skip
            )
        )
    (run,) = (workdir / "runs").glob("*_lab")
    ours = json.loads((run / "labeled_subset.json").read_text())
    assert len(ours) == 3 and "3 of the training images labelled" in out.getvalue()
    ns = argparse.Namespace(**json.loads((run / "args.json").read_text()))
    from utils.data.build import dataset_from_args, split_from_args

    ds = dataset_from_args(ns, augment=False)
    lab, _ = labelled_subset(split_from_args(ns, ds)["train"], ns)
    assert ours == [ds.sample_id(i) for i in lab]


def test_guess_of_an_equivariant_model_is_its_maps_and_sharpening():
    torch.manual_seed(0)
    tta = DihedralTTA(get_network("ggcnn2").eval())  # exactly equivariant over the 8 views
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        maps = tta(x)
    assert torch.allclose(guess_maps(tta, x, [1, 6]), maps, atol=1e-5)
    q = torch.tensor([0.0, 0.3, 0.5, 0.7, 1.0])
    s = sharpen(q, 0.5)
    assert s[2] == pytest.approx(0.5) and s[1] < 0.3 and s[3] > 0.7
    assert s[0] == 0.0 and s[4] == 1.0
    assert torch.allclose(sharpen(q, 1.0), q)
    xm, ym = mixup(x, maps, 1.0, torch.tensor([1, 0]))
    assert torch.equal(xm, x) and torch.equal(ym, maps)


def test_batch_norm_statistics_come_from_the_clean_views_only():
    """The guessing pass (no dropout, its own batch statistics) is what moves the running
    statistics; the mixed training forward of the same step leaves them alone."""
    import copy

    from utils.mixmatch import MixMatchStep
    from utils.precision import resolve_precision
    from utils.steps import StepContext

    torch.manual_seed(0)
    net = get_network("pspnet", backbone="resnet18", input_channels=1).train()
    shadow = copy.deepcopy(net)
    xl, xu = torch.randn(2, 1, 32, 32), 3.0 + 2.0 * torch.randn(2, 1, 32, 32)
    batch = ({"x": xl, "y": torch.rand(2, 4, 32, 32)}, {"x": xu})
    cpu = torch.device("cpu")
    ctx = StepContext(cpu, resolve_precision("off", "off", cpu))
    torch.manual_seed(1)
    MixMatchStep(k=2)(net, batch, ctx)
    torch.manual_seed(1)
    views = torch.randperm(8)[:2].tolist()  # the step's first draw
    g1 = guess_maps(shadow, xu, views, batch_stats=True)
    bn, bn_shadow = net.backbone.bn1, shadow.backbone.bn1
    assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))
    for a, b in zip(net.buffers(), shadow.buffers(), strict=True):
        assert torch.equal(a, b)
    assert bn_shadow.momentum == bn.momentum == 0.1 and net.training and net.head.training
    g2 = guess_maps(shadow, xu, views, batch_stats=True)
    assert torch.equal(g1, g2)  # no dropout in the guesses


def test_unlabelled_grasp_files_are_never_opened(workdir, monkeypatch):
    opened: list[str] = []
    load = GraspRectangles.load_from_jacquard_file.__func__

    def spy(cls, path, *a, **kw):
        opened.append(Path(path).name[: -len("_grasps.txt")])
        return load(cls, path, *a, **kw)

    monkeypatch.setattr(GraspRectangles, "load_from_jacquard_file", classmethod(spy))
    out = run_mixmatch(workdir, "--epochs", "2", "--description", "mm")
    (run,) = (workdir / "runs").glob("*_mm")
    labelled = set(json.loads((run / "labeled_subset.json").read_text()))
    args = json.loads((run / "args.json").read_text())
    from utils.data.build import dataset_from_args, split_from_args

    ns = argparse.Namespace(**args)
    ds = dataset_from_args(ns, augment=False)
    train_ids = {ds.sample_id(i) for i in split_from_args(ns, ds)["train"]}
    unlabelled = train_ids - labelled
    assert unlabelled and labelled and not unlabelled & set(opened)
    assert labelled & set(opened)  # the spy does see label reads
    assert "5 of the training images labelled + 5 unlabelled" in out
    last = load_checkpoint(run / "last.pt")
    assert {"train_supervised", "train_unsupervised", "train_lambda_u"} <= set(last["metrics"])
    assert last["eval_weights"] == "model_ema" and "model_ema" in last


@pytest.mark.parametrize("mix", ["mixup", "cutmix", "none"])
def test_a_short_mixmatch_run_lowers_the_supervised_loss(mix):
    from test_training import tiny_batches

    from utils.precision import resolve_precision
    from utils.steps import StepContext, SupervisedStep
    from utils.training import Trainer, TrainState, train_one_epoch

    torch.manual_seed(0)
    model = get_network("ggcnn2")
    labelled, unlabelled = tiny_batches(2, 4), tiny_batches(2, 4, seed=1)
    cpu = torch.device("cpu")
    precision = resolve_precision("off", "off", cpu)
    ctx = StepContext(cpu, precision)

    def plain_loss() -> float:  # on the labelled images, no MixUp
        with torch.no_grad():
            return sum(float(SupervisedStep()(model, b, ctx).loss) for b in labelled)

    before = plain_loss()
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), 3e-3),
                      MixMatchStep(rampup=10, mix=mix), precision)  # fmt: skip
    state = TrainState()
    for _ in range(15):
        train_one_epoch(trainer, labelled, state, device=cpu, n_batches=2,
                        unlabelled_loader=unlabelled)  # fmt: skip
        state.epoch, state.step_in_epoch, state.sums = state.epoch + 1, 0, {}
    assert plain_loss() < 0.7 * before


def test_mixmatch_checkpoint_evaluates_and_resumes_exactly(workdir):
    flags = ["--epochs", "2", "--batches-per-epoch", "3", "--checkpoint-every", "1"]
    run_mixmatch(workdir, *flags, "--description", "mm_full")
    run_mixmatch(workdir, *flags, "--description", "mm_cut", stop_at=2)
    (cut,) = (workdir / "runs").glob("*_mm_cut")
    out = run_mixmatch(workdir, resume=cut / "last.pt")
    assert "resuming at epoch 1, batch 3" in out
    (full,) = (workdir / "runs").glob("*_mm_full")
    # Resuming with another --mixup-width than the run's own is refused.
    with pytest.raises(SystemExit):
        mixmatch_train.parse_args(["--resume", str(cut / "last.pt"), "--mixup-width", "linear"])
    a, b = load_checkpoint(full / "last.pt"), load_checkpoint(cut / "last.pt")
    for k in ("model", "model_ema"):
        assert all(torch.equal(a[k][n], b[k][n]) for n in a[k]), k
    summary = eval_net.main(eval_net.parse_args(
        ["--network", str(full / "best.pt"), "--num-workers", "0",
         "--cache-dir", str(workdir / "cache"), "--outdir", str(workdir / "eval")]
    ))  # fmt: skip
    assert summary["weights"] == "model_ema" and summary["images"] > 0


def test_mixmatch_batches_made_in_a_thread_train_exactly_as_in_line(workdir):
    """Both loaders' batches made in the background thread (--prefetch-thread on) train the
    same weights as made in line: the thread draws nothing from the step's random stream."""
    flags = ["--epochs", "1", "--batches-per-epoch", "3", "--num-workers", "0"]
    for mode in ("on", "off"):
        run_mixmatch(workdir, *flags, "--prefetch-thread", mode, "--description", f"mm_{mode}")
    on, off = (
        load_checkpoint(next((workdir / "runs").glob(f"*_mm_{m}")) / "last.pt")
        for m in ("on", "off")
    )
    for k in ("model", "model_ema"):
        assert all(torch.equal(on[k][n], off[k][n]) for n in on[k]), k


def test_mixup_keeps_a_grasps_opening_over_the_other_images_background():
    """Weighted MixUp (the default): a pixel only one image grasps keeps that grasp's opening
    (a linear mix would shrink it by lambda), overlapping grasps average their openings by
    quality, pixels no image grasps mix linearly; cos and sin mix linearly in both."""
    y = torch.zeros(2, 4, 1, 3)
    y[0, :, 0, 0] = torch.tensor([1.0, 1.0, 0.0, 0.6])  # only image 0 grasps pixel 0
    y[0, :, 0, 1] = torch.tensor([1.0, 0.0, 1.0, 0.2])  # both grasp pixel 1
    y[1, :, 0, 1] = torch.tensor([1.0, 1.0, 0.0, 0.8])
    y[0, 3, 0, 2], y[1, 3, 0, 2] = 0.5, 0.1  # neither grasps pixel 2 (a guessed map's opening)
    x = torch.randn(2, 1, 1, 3)
    perm, lam = torch.tensor([1, 0]), 0.75
    xm, ym = mixup(x, y, lam, perm)
    xl, yl = mixup(x, y, lam, perm, width="linear")
    assert torch.equal(xm, xl) and torch.allclose(xm[0], 0.75 * x[0] + 0.25 * x[1])
    assert torch.allclose(ym[:, :3], yl[:, :3])
    assert yl[0, 3, 0, 0] == pytest.approx(0.75 * 0.6)  # linear: the opening shrinks
    assert ym[0, 3, 0, 0] == pytest.approx(0.6) and ym[1, 3, 0, 0] == pytest.approx(0.6)
    assert ym[0, 3, 0, 1] == pytest.approx(0.75 * 0.2 + 0.25 * 0.8)
    assert ym[0, 3, 0, 2] == pytest.approx(0.75 * 0.5 + 0.25 * 0.1)
    assert ym[0, 0, 0, 0] == pytest.approx(0.75) and ym[1, 0, 0, 0] == pytest.approx(0.25)
    same = mixup(x, y, 0.6, torch.tensor([0, 1]))  # mixed with itself: unchanged
    assert torch.allclose(same[0], x) and torch.allclose(same[1], y)
    with pytest.raises(ValueError, match="--mixup-width"):
        mixup(x, y, lam, perm, width="nearest")


def test_cutmix_takes_each_pixel_whole_from_one_sample():
    """CutMix: inside a sample's box every channel of input and maps is the other sample's,
    outside its own; the box is 1 - lambda of the frame (clipped at the border); lambda = 1
    or mixing with itself changes nothing."""
    torch.manual_seed(0)
    x, y = torch.randn(6, 2, 20, 30), torch.rand(6, 4, 20, 30)
    perm = torch.tensor([1, 2, 3, 4, 5, 0])
    box = cut_boxes(6, 20, 30, 0.75)
    assert box.shape == (6, 1, 20, 30) and box.dtype == torch.bool
    assert (box.sum(dim=(1, 2, 3)) <= 10 * 15).all() and box.any()
    xm, ym = cutmix(x, y, box, perm)
    for i in range(6):
        inside = box[i, 0]
        for a, m in ((x, xm), (y, ym)):
            assert torch.equal(m[i][:, inside], a[perm[i]][:, inside])
            assert torch.equal(m[i][:, ~inside], a[i][:, ~inside])
    # A box centred well inside the frame has exactly 1 - lambda of its area.
    centred = [b for b in cut_boxes(200, 20, 30, 0.75) if b[0, 0].sum() == 0 and b[0, -1].sum() == 0
               and b[0, :, 0].sum() == 0 and b[0, :, -1].sum() == 0]  # fmt: skip
    assert centred and all(int(b.sum()) == 10 * 15 for b in centred)
    assert not cut_boxes(4, 20, 30, 1.0).any()
    same = cutmix(x, y, box, torch.arange(6))
    assert torch.equal(same[0], x) and torch.equal(same[1], y)
    with pytest.raises(ValueError, match="--mix"):
        MixMatchStep(mix="blend")


def test_mix_none_is_mixup_at_lambda_one(monkeypatch):
    """--mix none trains on the batch as guessed: the same loss and terms as MixUp with
    lambda = 1 from the same random state (λ and the partner are drawn all the same)."""
    from test_training import tiny_batches

    from utils.precision import resolve_precision
    from utils.steps import StepContext

    model = get_network("ggcnn2").eval()
    labelled, unlabelled = tiny_batches(1, 3)[0], tiny_batches(1, 3, seed=1)[0]
    ctx = StepContext(torch.device("cpu"), resolve_precision("off", "off", torch.device("cpu")))

    def loss(mix: str) -> tuple[float, float]:
        torch.manual_seed(0)
        out = MixMatchStep(mix=mix, rampup=0)(model, (labelled, unlabelled), ctx)
        return float(out.loss), float(out.terms["unsupervised"])

    none = loss("none")
    monkeypatch.setattr(torch.distributions.Beta, "sample", lambda self: torch.tensor(1.0))
    assert loss("mixup") == pytest.approx(none, rel=1e-6)
    assert loss("cutmix") == pytest.approx(none, rel=1e-6)  # a box of no pixel


def test_ema_guesses_come_from_the_ema_network():
    """--guess-model ema: the unlabelled targets are the EMA network's guesses (an EMA equal to
    the model gives the online step's loss; another EMA another unlabelled term), a step
    without an EMA is refused, and a batch-norm network's running statistics still come from
    the clean views (the online step's)."""
    import copy

    from test_training import tiny_batches

    from utils.precision import resolve_precision
    from utils.steps import StepContext

    cpu = torch.device("cpu")
    precision = resolve_precision("off", "off", cpu)
    torch.manual_seed(0)
    model = get_network("ggcnn2").train()
    labelled, unlabelled = tiny_batches(1, 3)[0], tiny_batches(1, 3, seed=1)[0]

    def terms(guess_model: str, ema: torch.nn.Module | None) -> tuple[float, float]:
        torch.manual_seed(0)
        step = MixMatchStep(rampup=0, guess_model=guess_model, mix="none")  # sup: labels only
        out = step(model, (labelled, unlabelled), StepContext(cpu, precision, ema=ema))
        return float(out.terms["supervised"]), float(out.terms["unsupervised"])

    online = terms("online", None)
    assert terms("ema", copy.deepcopy(model).eval()) == pytest.approx(online, rel=1e-6)
    other = get_network("ggcnn2").eval()
    sup, unsup = terms("ema", other)
    assert sup == pytest.approx(online[0], rel=1e-6) and unsup != pytest.approx(online[1])
    with pytest.raises(ValueError, match="EMA"):
        terms("ema", None)
    with pytest.raises(ValueError, match="--guess-model"):
        MixMatchStep(guess_model="teacher")

    net = get_network("pspnet", backbone="resnet18", input_channels=1).train()
    shadow = copy.deepcopy(net)
    xl, xu = torch.randn(2, 1, 32, 32), 3.0 + 2.0 * torch.randn(2, 1, 32, 32)
    batch = ({"x": xl, "y": torch.rand(2, 4, 32, 32)}, {"x": xu})
    ema = copy.deepcopy(net).eval()
    ema_buffers = [b.clone() for b in ema.buffers()]
    for guess_model, target in (("ema", net), ("online", shadow)):
        torch.manual_seed(1)
        ctx = StepContext(cpu, precision, ema=ema if guess_model == "ema" else None)
        MixMatchStep(k=2, guess_model=guess_model)(target, batch, ctx)
    for a, b in zip(net.buffers(), shadow.buffers(), strict=True):
        assert torch.equal(a, b)  # the same clean-statistics pass
    assert all(torch.equal(a, b) for a, b in zip(ema.buffers(), ema_buffers, strict=True))


def test_guess_model_ema_needs_the_ema(workdir):
    with pytest.raises(SystemExit):
        mixmatch_train.parse_args(
            tiny_args(
                workdir, "--guess-model", "ema", "--model-ema", "0", "--labeled-fraction", "0.5"
            )
        )
    args = mixmatch_train.parse_args(
        tiny_args(workdir, "--guess-model", "ema", "--labeled-fraction", "0.5")
    )
    assert args.guess_model == "ema" and args.model_ema
