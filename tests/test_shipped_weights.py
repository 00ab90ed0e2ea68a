"""The tiny distilled networks shipped in weights/: each loads with weights_only=True, is under
1 MB, cannot be mistaken for a resumable run, scores on its check set as its note says, and
runs on a folder of depth images as the README's quick start shows."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
import torch

import eval_net
from utils.data.benchmark import ensure_benchmark

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
NOTES = sorted(WEIGHTS.glob("*.json"))
CPU_FP32 = ["--amp", "off", "--channels-last", "off", "--device", "cpu", "--num-workers", "0"]


def test_a_tiny_network_is_shipped():
    assert NOTES, f"no shipped weights (a .pt with its .json note) in {WEIGHTS}"


@pytest.fixture(scope="module")
def check_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("check")


def check_folder(root: Path, n: int) -> Path:
    """The note's check set: a benchmark generation of ``n`` images (deterministic)."""
    return ensure_benchmark(n, root / f"bench_{n}")


@pytest.mark.parametrize("note_path", NOTES, ids=[p.stem for p in NOTES])
def test_shipped_weights_load_and_score_as_their_note_says(note_path, check_root):
    note = json.loads(note_path.read_text())
    pt = WEIGHTS / note["file"]
    assert pt.stat().st_size < 1_000_000
    ckpt = torch.load(pt, map_location="cpu", weights_only=True)
    assert (
        ckpt["kind"] == "weights" and "optimizer" not in ckpt and ckpt["network"] == note["network"]
    )
    n = note["check"]["images"]
    folder = check_folder(check_root, n)
    with contextlib.redirect_stdout(io.StringIO()):
        summary = eval_net.main(
            eval_net.parse_args(
                [
                    "--network",
                    str(pt),
                    "--dataset",
                    "benchmark",
                    "--benchmark-images",
                    str(n),
                    "--benchmark-path",
                    str(folder),
                    "--batch-size",
                    "8",
                    *CPU_FP32,
                ]
            )  # fmt: skip
        )
    assert summary["images"] == n
    # fp32 sums may round differently on another CPU kind: one borderline image may flip.
    assert abs(summary["correct"] - note["check"]["correct"]) <= 1, (summary, note["check"])


@pytest.mark.parametrize("note_path", NOTES, ids=[p.stem for p in NOTES])
def test_quick_start_on_a_folder_of_depth_images(note_path, check_root, tmp_path):
    note = json.loads(note_path.read_text())
    n = note["check"]["images"]
    folder = check_folder(check_root, n)
    depth = sorted(folder.rglob("*_perfect_depth.tiff"))[:2]
    images = tmp_path / "mine"
    images.mkdir()
    for p in depth:
        shutil.copy(p, images / p.name)
    with contextlib.redirect_stdout(io.StringIO()):
        written = eval_net.main(
            eval_net.parse_args(
                [
                    "--network",
                    str(WEIGHTS / note["file"]),
                    "--images",
                    str(images),
                    "--outdir",
                    str(tmp_path / "out"),
                    "--n-grasps",
                    "2",
                    *CPU_FP32,
                ]
            )  # fmt: skip
        )
    assert len(written) == 2
    for f in written:
        lines = [ln for ln in Path(f).read_text().splitlines() if ln.strip()]
        # Jacquard grasp lines: x;y;theta;opening;jaw size, in the source image's pixels.
        assert 1 <= len(lines) <= 2 and all(len(ln.split(";")) == 5 for ln in lines)
