"""End-to-end runs of train_net.py and eval_net.py on a tiny synthetic set (and torchrun)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import run_script, tiny_args

import eval_net
import train_net
from utils.checkpoint import load_checkpoint
from utils.grasp import GraspRectangles

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scripts")


def epoch_losses(text: str, which: str = "train_loss") -> dict[int, float]:
    """{epoch: loss} from train_net's epoch lines; ``which`` is train_loss or val_loss."""
    pattern = rf"epoch (\d+)/\d+ \|.*?\b{which} ([\d.e-]+)"
    return {int(e): float(v) for e, v in re.findall(pattern, text)}


@pytest.fixture(scope="module")
def trained_run(workdir) -> tuple[Path, str]:
    """A 3-epoch GG-CNN run; returns its folder and what it printed."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        args = train_net.parse_args(
            tiny_args(workdir, "--network", "ggcnn", "--epochs", "3", "--lr", "1e-3",
                      "--description", "tiny", "--vis")
        )  # fmt: skip
        train_net.main(args)
    (run,) = (workdir / "runs").glob("*_tiny")
    return run, buf.getvalue()


def test_training_writes_run_folder_and_lowers_loss(trained_run):
    run, out = trained_run
    for name in ("args.json", "last.pt", "best.pt", "test_results.json", "test_examples.png"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    args = json.loads((run / "args.json").read_text())
    assert args["network"] == "ggcnn" and args["input_size"] == 64
    ckpt = load_checkpoint(run / "last.pt")
    assert {"model", "optimizer", "scheduler", "epoch", "args", "metrics", "network"} <= set(ckpt)
    assert ckpt["epoch"] == 3 and ckpt["network"]["name"] == "ggcnn"
    assert sorted(epoch_losses(out)) == [1, 2, 3]
    # The validation set is the same every epoch; an epoch's training loss (3 batches of 4) is
    # dominated by which images share a batch, so it need not fall in 9 steps.
    val = epoch_losses(out, "val_loss")
    assert val[3] < val[2] < val[1]
    summary = json.loads((run / "test_results.json").read_text())["summary"]
    assert summary["test_images"] > 0 and 0.0 <= summary["test_success"] <= 1.0


def test_resume_continues_at_saved_epoch(trained_run, capsys):
    run, _ = trained_run
    # Only --resume and a new epoch count: the network, data and split come from the run.
    args = train_net.parse_args(["--resume", str(run / "last.pt"), "--epochs", "4"])
    assert args.network == "ggcnn" and args.input_size == 64 and args.lr == 1e-3
    train_net.main(args)
    out = capsys.readouterr().out
    assert "resuming at epoch 4" in out
    assert sorted(epoch_losses(out)) == [4]
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 4 and ckpt["global_step"] > 0
    assert (run / "args_resume.json").is_file()


def test_resume_refuses_a_different_split(trained_run):
    run, _ = trained_run
    res = run_script("train_net.py", "--resume", str(run / "last.pt"), "--split-seed", "7")
    assert res.returncode == 2
    assert "--split-seed 7 differs from the resumed run's 0" in res.stderr


def test_eval_net_table_and_jacquard_output(trained_run, workdir, capsys):
    run, _ = trained_run
    out_dir = workdir / "eval"
    args = eval_net.parse_args(
        [
            "--network", str(run / "best.pt"), "--iou-eval", "--jacquard-output", "--vis",
            "--batch-size", "3", "--outdir", str(out_dir), "--num-workers", "0",
            "--cache-dir", str(workdir / "cache"), "--n-grasps", "2",
            "--results-json", str(out_dir / "results.json"),
        ]
    )  # fmt: skip
    summary = eval_net.main(args)
    printed = capsys.readouterr().out
    assert "| images | success rate [95% CI] | mean best IoU | network ms/image |" in printed
    assert summary["part"] == "test" and summary["images"] > 0
    files = sorted((out_dir / "jacquard_output").glob("*_grasps.txt"))
    assert len(files) == summary["images"]
    for f in files:
        rects = GraspRectangles.load_from_jacquard_file(f)  # reads back
        assert len(rects) <= 2
    assert list((out_dir / "vis").glob("*.png"))
    per_image = json.loads((out_dir / "results.json").read_text())["per_image"]
    assert len(per_image["ids"]) == summary["images"]
    # why each image missed: one outcome an image, the counts add up to the images
    assert len(per_image["outcomes"]) == summary["images"]
    assert sum(summary["outcomes"].values()) == summary["images"]
    assert summary["outcomes"].get("hit", 0) <= summary["correct"]  # a lower grasp may hit
    assert summary["min_opening"] == 0.0


def test_eval_net_min_opening_is_recorded_and_checked(trained_run, workdir):
    """--min-opening reaches the results (decoding itself: tests/test_post_process.py and
    tests/test_predict.py); a negative value is refused with the flag named."""
    run, _ = trained_run
    args = eval_net.parse_args(
        ["--network", str(run / "best.pt"), "--min-opening", "20", "--outdir",
         str(workdir / "floor"), "--num-workers", "0", "--cache-dir", str(workdir / "cache")]
    )  # fmt: skip
    summary = eval_net.main(args)
    assert summary["min_opening"] == 20.0 and "opening short" not in summary["outcomes"]
    res = run_script("eval_net.py", "--network", str(run / "best.pt"), "--min-opening", "-1")
    assert res.returncode == 2 and "--min-opening" in res.stderr
    assert "expected a number >= 0" in res.stderr


def test_eval_net_test_time_augmentation(trained_run, workdir, capsys):
    run, _ = trained_run
    args = eval_net.parse_args(
        ["--network", str(run / "best.pt"), "--tta", "d8", "--outdir", str(workdir / "tta"),
         "--num-workers", "0", "--cache-dir", str(workdir / "cache")]
    )  # fmt: skip
    summary = eval_net.main(args)
    assert "d8 test-time augmentation" in capsys.readouterr().out
    assert summary["tta"] == "d8" and summary["part"] == "test" and summary["images"] > 0
    assert 0.0 <= summary["success_rate"] <= 1.0


def test_eval_net_on_unlabelled_depth_images(trained_run, shared_data, workdir):
    run, _ = trained_run
    out_dir = workdir / "infer"
    folder = shared_data / "cornell_samples" / "01"
    args = eval_net.parse_args(
        ["--network", str(run / "best.pt"), "--images", str(folder), "--outdir", str(out_dir),
         "--n-grasps", "3", "--vis"]
    )  # fmt: skip
    written = eval_net.main(args)
    assert len(written) == len(list(folder.glob("*d.tiff")))
    for path in written:
        rects = GraspRectangles.load_from_jacquard_file(path)
        # Grasps are written in the source frame (480 x 640).
        assert ((rects.centers >= 0) & (rects.centers < [480, 640])).all()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train_net.py", "--dataset", "jacquard"], "--dataset jacquard needs --dataset-path"),
        (
            ["train_net.py", "--dataset", "jacquard", "--dataset-path", "/no/such/dir"],
            "/no/such/dir: no such folder",
        ),
        (["train_net.py", "--use-depth", "0"], "at least one input"),
        (["eval_net.py", "--network", "/no/such.pt"], "/no/such.pt: checkpoint file not found"),
    ],
)
def test_bad_flags_give_one_line_errors(argv, message):
    res = run_script(*argv, timeout=120)
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_bad_label_file_read_in_a_worker_is_a_one_line_error(tmp_path):
    from utils.data.synthetic import generate_dataset

    root = generate_dataset(tmp_path / "jac", n_scenes=4, size=64, views=2)
    bad = sorted(root.glob("*/*_grasps.txt"))[0]
    bad.write_text("1;2;3;4;5\r\nnot a grasp line\r\n")
    res = run_script(
        "train_net.py", "--dataset", "jacquard", "--dataset-path", str(root), "--network",
        "ggcnn", "--input-size", "32", "--epochs", "1", "--num-workers", "1", "--split", "1",
        "--val-split", "0", "--cache-dir", str(tmp_path / "cache"), "--outdir", str(tmp_path),
    )  # fmt: skip
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"error: {bad}:2: expected 'x;y;theta;w;h' "
                                               "(five numbers), got 'not a grasp line'"]  # fmt: skip


def test_bad_checkpoint_and_empty_dataset_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    res = run_script("eval_net.py", "--network", str(bad), timeout=120)
    assert res.returncode == 2 and "bad.pt: not a readable checkpoint" in res.stderr
    assert "Traceback" not in res.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_script("train_net.py", "--dataset", "jacquard", "--dataset-path", str(empty))
    assert res.returncode == 2 and str(empty) in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "timed" not in res.stdout  # the data is checked before --amp auto times a step


def test_torchrun_two_processes_on_cpu(workdir):
    res = run_script(
        "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "train_net.py", *tiny_args(workdir, "--network", "pspnet", "--output-stride", "32",
                                   "--epochs", "2", "--batch-size", "2", "--description", "ddp"),
        timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "cpu x2" in res.stdout
    # Rank 0 alone prints and saves: one summary line per epoch.
    assert len(re.findall(r"^epoch 1/2", res.stdout, flags=re.M)) == 1
    (run,) = (workdir / "runs").glob("*_ddp")
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 2 and not any(k.startswith("module.") for k in ckpt["model"])
    summary = json.loads((run / "test_results.json").read_text())["summary"]
    args = json.loads((run / "args.json").read_text())
    assert args["_world_size"] == 2
    # Every test image is scored exactly once across the two ranks.
    assert summary["test_images"] == len(json.loads((run / "test_results.json").read_text())[
        "per_image"]["ids"])  # fmt: skip
    ids = json.loads((run / "test_results.json").read_text())["per_image"]["ids"]
    assert len(ids) == len(set(ids))


def test_eval_net_never_scores_training_images_however_the_path_is_spelled(trained_run, workdir):
    import os

    run, _ = trained_run
    base = ["--network", str(run / "best.pt"), "--num-workers", "0",
            "--cache-dir", str(workdir / "cache"), "--outdir", str(workdir / "leak")]  # fmt: skip
    data = workdir / "synthetic"
    (workdir / "alias").symlink_to(data)
    spellings = [f"{data}/", str(workdir / "." / "synthetic"), os.path.relpath(data),
                 str(workdir / "alias")]  # fmt: skip
    for path in spellings:
        summary = eval_net.main(eval_net.parse_args([*base, "--dataset-path", path]))
        assert summary["part"] == "test" and "object-wise" in summary["split"]
    for flags, message in [
        (["--split", "0.5"], "--split 0.5: the checkpoint was trained on this dataset"),
        (["--split-seed", "3"], "--split-seed 3"),
        (["--part", "all"], "--part all: this is the checkpoint's training dataset"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            eval_net.main(eval_net.parse_args([*base, "--dataset-path", spellings[2], *flags]))
    # A folder that does not exist is a typo, not a set to generate for evaluation.
    with pytest.raises(ValueError, match="no such folder; evaluation does not generate"):
        eval_net.main(eval_net.parse_args([*base, "--dataset-path", str(workdir / "typo")]))
    assert not (workdir / "typo").exists()
    # A bigger synthetic set holds the training objects too (same generator seed): refused.
    from utils.data.synthetic import ensure_synthetic_dataset

    ensure_synthetic_dataset(workdir / "bigger", n_scenes=30)
    bigger = ["--dataset-path", str(workdir / "bigger"), "--synthetic-scenes", "30"]
    with pytest.raises(ValueError, match="show objects the checkpoint's run trained on"):
        eval_net.main(eval_net.parse_args([*base, *bigger]))
    # The same size spelled out is the same split, not a refused override.
    summary = eval_net.main(eval_net.parse_args([*base, "--synthetic-scenes", "20"]))
    assert summary["part"] == "test"
    # Evaluation never regenerates a folder that holds another synthetic set.
    with pytest.raises(ValueError, match="it is not replaced here"):
        eval_net.main(eval_net.parse_args(
            [*base, "--dataset-path", str(workdir / "bigger"), "--synthetic-scenes", "40"]
        ))  # fmt: skip


def test_training_scores_the_benchmark_and_eval_net_compares_checkpoints(trained_run, workdir):
    bench = ["--benchmark-images", "10", "--benchmark-path", str(workdir / "bench")]
    args = train_net.parse_args(
        tiny_args(workdir, "--network", "ggcnn2", "--epochs", "1", "--description", "bench", *bench)
    )
    result = train_net.main(args)
    assert result["benchmark_images"] == 10 and len(result["benchmark_success_ci95"]) == 2
    (run,) = (workdir / "runs").glob("*_bench")
    report = json.loads((run / "test_results.json").read_text())
    assert report["benchmark"]["scored"].startswith("synthetic benchmark")
    assert "chosen on the validation part" in report["summary"]["checkpoint_kind"]
    assert report["summary"]["split"].startswith("object-wise, 80% train")
    assert json.loads((run / "args.json").read_text())["dataset_path"] == str(workdir / "synthetic")
    first, _ = trained_run
    out = eval_net.main(eval_net.parse_args(
        ["--network", str(first / "best.pt"), str(run / "best.pt"), "--dataset", "benchmark",
         *bench, "--num-workers", "0", "--cache-dir", str(workdir / "cache"),
         "--outdir", str(workdir / "cmp"), "--results-json", str(workdir / "cmp" / "cmp.json")]
    ))  # fmt: skip
    assert [m["images"] for m in out["models"]] == [10, 10]
    (row,) = out["comparisons"]
    assert 0.0 <= row["p"] <= 1.0 and row["diff_ci95"][0] <= row["diff"] <= row["diff_ci95"][1]
    assert json.loads((workdir / "cmp" / "cmp.json").read_text())["comparisons"][0]["p"] == row["p"]
    # --dataset-path names the benchmark folder as --benchmark-path does (not silently ignored)
    alias = [a if a != "--benchmark-path" else "--dataset-path" for a in bench]
    again = eval_net.main(eval_net.parse_args(
        ["--network", str(run / "best.pt"), "--dataset", "benchmark", *alias, "--num-workers",
         "0", "--outdir", str(workdir / "cmp2")]
    ))  # fmt: skip
    assert again["dataset_root"] == out["models"][1]["dataset_root"]
    assert again["per_image"] == out["models"][1]["per_image"]
    with pytest.raises(ValueError, match="no such benchmark folder"):
        eval_net.main(eval_net.parse_args(
            ["--network", str(run / "best.pt"), "--dataset", "benchmark", "--dataset-path",
             str(workdir / "nowhere"), "--outdir", str(workdir / "cmp3")]
        ))  # fmt: skip
    with pytest.raises(SystemExit):
        train_net.parse_args(tiny_args(workdir, "--dataset", "benchmark"))


def test_image_wise_run_scores_its_own_test_part(workdir):
    args = train_net.parse_args(tiny_args(
        workdir, "--network", "ggcnn2", "--epochs", "1", "--split-by", "image",
        "--description", "imagewise",
    ))  # fmt: skip
    train_net.main(args)
    (run,) = (workdir / "runs").glob("*_imagewise")
    summary = eval_net.main(eval_net.parse_args(
        ["--network", str(run / "best.pt"), "--num-workers", "0", "--cache-dir",
         str(workdir / "cache"), "--outdir", str(workdir / "iw")]
    ))  # fmt: skip
    assert summary["part"] == "test" and summary["split"].startswith("image-wise")


def test_the_benchmark_folder_is_never_a_training_set(tmp_path):
    from utils.data.benchmark import ensure_benchmark

    bench = ensure_benchmark(5, tmp_path / "bench")
    with pytest.raises(SystemExit):
        train_net.parse_args(["--dataset", "jacquard", "--dataset-path", str(bench)])
    res = run_script("train_net.py", "--dataset", "jacquard", "--dataset-path", str(bench))
    assert res.returncode == 2 and "holds a held-out set" in res.stderr
