"""What each script does with bad input: the README's Reliability table.

    python benchmarks/bad_inputs.py              # every case, about 2 minutes on 2 cores
    python benchmarks/bad_inputs.py --json out.json

Each case builds its broken input in a temporary folder (a tiny synthetic Jacquard set to
break), runs one script on it, and records the exit code, whether a traceback was printed,
the number of stderr lines and the message. The expectation for every row: exit code 2,
one line, no traceback, naming the file or flag (tests/test_bad_inputs.py runs the same
cases and asserts it).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TRAIN = ["train_net.py", "--network", "ggcnn", "--input-size", "32", "--epochs", "1",
         "--num-workers", "0", "--benchmark-images", "0", "--amp", "off"]  # fmt: skip


#: A small clean Jacquard-layout set (made once), copied into each case to be broken.
CLEAN: Path | None = None


def _dataset(tmp: Path) -> Path:
    global CLEAN
    if CLEAN is None:
        from utils.data.synthetic import generate_dataset

        CLEAN = generate_dataset(tmp.parent / "clean", n_scenes=4, size=64, views=2)
    return Path(shutil.copytree(CLEAN, tmp / "set"))


def _train(tmp: Path, root: Path, *extra: str) -> list[str]:
    return [*TRAIN, "--dataset", "jacquard", "--dataset-path", str(root), "--split", "1",
            "--val-split", "0", "--cache-dir", str(tmp / "cache"), "--outdir", str(tmp / "runs"),
            *extra]  # fmt: skip


def _first(root: Path, pattern: str) -> Path:
    return sorted(root.rglob(pattern))[0]


def _write_depth(path: Path, array: np.ndarray) -> None:
    import tifffile

    tifffile.imwrite(path, array)


def case_missing_path(tmp: Path) -> list[str]:
    return _train(tmp, tmp / "no_such_folder")


def case_empty_folder(tmp: Path) -> list[str]:
    (tmp / "empty").mkdir()
    return _train(tmp, tmp / "empty")


def case_no_grasp_files(tmp: Path) -> list[str]:
    root = _dataset(tmp)
    for f in root.rglob("*_grasps.txt"):
        f.unlink()
    return _train(tmp, root)


def case_malformed_grasp_line(tmp: Path) -> list[str]:
    root = _dataset(tmp)
    _first(root, "*_grasps.txt").write_text("1;2;3;4;5\r\nnot a grasp line\r\n")
    return _train(tmp, root)


def case_grasp_file_not_text(tmp: Path) -> list[str]:
    root = _dataset(tmp)
    _first(root, "*_grasps.txt").write_bytes(b"\x80\x81\xfe binary")
    return _train(tmp, root)


def case_unreadable_tiff(tmp: Path) -> list[str]:
    root = _dataset(tmp)
    _first(root, "*_perfect_depth.tiff").write_bytes(b"this is not a TIFF")
    return _train(tmp, root)


def case_truncated_tiff(tmp: Path) -> list[str]:
    root = _dataset(tmp)
    f = _first(root, "*_perfect_depth.tiff")
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    return _train(tmp, root)


def case_wrong_dtype_tiff(tmp: Path) -> list[str]:
    root = _dataset(tmp)
    f = _first(root, "*_perfect_depth.tiff")
    _write_depth(f, np.zeros((64, 64, 3), dtype=np.uint8))
    return _train(tmp, root)


def case_wrong_size_depth(tmp: Path) -> list[str]:
    root = _dataset(tmp)
    _write_depth(_first(root, "*_perfect_depth.tiff"), np.ones((7, 5), dtype=np.float32))
    return _train(tmp, root)


def case_all_zero_depth(tmp: Path) -> list[str]:
    root = _dataset(tmp)
    _write_depth(_first(root, "*_perfect_depth.tiff"), np.zeros((64, 64), dtype=np.float32))
    return _train(tmp, root)


def case_all_nan_depth(tmp: Path) -> list[str]:
    root = _dataset(tmp)
    _write_depth(_first(root, "*_perfect_depth.tiff"), np.full((64, 64), np.nan, np.float32))
    return _train(tmp, root)


def case_rgb_missing(tmp: Path) -> list[str]:
    root = _dataset(tmp)
    _first(root, "*_RGB.png").unlink()
    return _train(tmp, root, "--use-rgb", "1")


def case_unknown_network(tmp: Path) -> list[str]:
    return ["train_net.py", "--network", "resnet9000"]


def case_unknown_backbone(tmp: Path) -> list[str]:
    return ["train_net.py", "--network", "pspnet", "--backbone", "resnet7"]


def case_batch_size_zero(tmp: Path) -> list[str]:
    return ["train_net.py", "--network", "ggcnn", "--batch-size", "0"]


def _checkpoint(tmp: Path) -> Path:
    import torch

    from models import get_network
    from utils.checkpoint import make_checkpoint

    path = tmp / "ggcnn.pt"
    torch.save(make_checkpoint(get_network("ggcnn"), epoch=1, args={"network": "ggcnn"}), path)
    return path


def case_checkpoint_of_other_network(tmp: Path) -> list[str]:
    import torch

    ckpt = torch.load(_checkpoint(tmp), weights_only=True)
    ckpt["network"]["name"] = "ggcnn2"
    torch.save(ckpt, tmp / "other.pt")
    return ["eval_net.py", "--network", str(tmp / "other.pt"), "--images", str(tmp)]


def case_truncated_checkpoint(tmp: Path) -> list[str]:
    path = _checkpoint(tmp)
    path.write_bytes(path.read_bytes()[:1000])
    return ["eval_net.py", "--network", str(path), "--images", str(tmp)]


def case_not_a_checkpoint(tmp: Path) -> list[str]:
    (tmp / "notes.pt").write_text("hello")
    return ["train_net.py", "--resume", str(tmp / "notes.pt")]


def case_crafted_pickle(tmp: Path) -> list[str]:
    import pickle

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    (tmp / "evil.pt").write_bytes(pickle.dumps({"model": Evil()}))
    return ["eval_net.py", "--network", str(tmp / "evil.pt"), "--images", str(tmp)]


def case_backbone_wrong_keys(tmp: Path) -> list[str]:
    import torch

    torch.save({"not.a.resnet.key": torch.zeros(3)}, tmp / "backbone.pth")
    return ["train_net.py", "--network", "pspnet", "--pretrained-backbone", str(tmp / "backbone.pth"),
            "--epochs", "1"]  # fmt: skip


def case_outdir_not_writable(tmp: Path) -> list[str]:
    (tmp / "a_file").write_text("not a folder")
    root = _dataset(tmp)
    return [*_train(tmp, root)[:-2], "--outdir", str(tmp / "a_file" / "runs")]


def case_distill_teacher_missing(tmp: Path) -> list[str]:
    return ["distill.py", "--network", "ggcnn2", "--teacher", str(tmp / "no_teacher.pt")]


def case_mixmatch_unlabelled_missing(tmp: Path) -> list[str]:
    return ["mixmatch_train.py", "--network", "ggcnn2", "--labeled-fraction", "0.1",
            "--unlabeled-path", str(tmp / "nowhere")]  # fmt: skip


def case_images_folder_empty(tmp: Path) -> list[str]:
    (tmp / "frames").mkdir()
    return ["eval_net.py", "--network", str(REPO / "weights" / "ggcnn2_distilled.pt"),
            "--images", str(tmp / "frames")]  # fmt: skip


def case_one_fold(tmp: Path) -> list[str]:
    return [*_train(tmp, _dataset(tmp)), "--folds", "1"]


def case_eval_synthetic_path_mistyped(tmp: Path) -> list[str]:
    return ["eval_net.py", "--network", str(REPO / "weights" / "ggcnn2_distilled.pt"),
            "--dataset", "synthetic", "--dataset-path", str(tmp / "typo")]  # fmt: skip


CASES: dict[str, Callable[[Path], list[str]]] = {
    "dataset path missing": case_missing_path,
    "dataset folder empty": case_empty_folder,
    "dataset without grasp files": case_no_grasp_files,
    "malformed grasp line": case_malformed_grasp_line,
    "grasp file not text": case_grasp_file_not_text,
    "depth TIFF unreadable": case_unreadable_tiff,
    "depth TIFF truncated": case_truncated_tiff,
    "depth TIFF of the wrong dtype": case_wrong_dtype_tiff,
    "depth image of the wrong size": case_wrong_size_depth,
    "depth image all zeros": case_all_zero_depth,
    "depth image all NaN": case_all_nan_depth,
    "RGB missing with --use-rgb 1": case_rgb_missing,
    "unknown network": case_unknown_network,
    "unknown backbone": case_unknown_backbone,
    "batch size 0": case_batch_size_zero,
    "checkpoint of another network": case_checkpoint_of_other_network,
    "checkpoint truncated": case_truncated_checkpoint,
    "not a checkpoint": case_not_a_checkpoint,
    "crafted pickle as a checkpoint": case_crafted_pickle,
    "pretrained backbone with wrong keys": case_backbone_wrong_keys,
    "output folder not writable": case_outdir_not_writable,
    "distillation teacher missing": case_distill_teacher_missing,
    "MixMatch --unlabeled-path missing": case_mixmatch_unlabelled_missing,
    "--images folder without depth frames": case_images_folder_empty,
    "--folds 1": case_one_fold,
    "eval_net: synthetic --dataset-path that does not exist": case_eval_synthetic_path_mistyped,
}


def run_case(name: str, tmp: Path, timeout: int = 300) -> dict:
    argv = CASES[name](tmp)
    res = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True,
                         timeout=timeout)  # fmt: skip
    lines = res.stderr.strip().splitlines()
    return {
        "case": name,
        "script": argv[0],
        "exit": res.returncode,
        "traceback": "Traceback" in res.stderr,
        "lines": len(lines),
        "message": lines[-1] if lines else "",
    }


def shorten(message: str, tmp: str, limit: int = 160) -> str:
    """The message with the case's temporary paths and object hashes abbreviated."""
    msg = re.sub(r"/case\d+/set/[0-9a-f]{32}/0_[0-9a-f]{32}_", "/<obj>/0_<obj>_", message)
    msg = re.sub(r"0_[0-9a-f]{32}", "0_<obj>", msg)
    msg = re.sub(r"/case\d+", "", msg.replace(tmp, "<tmp>"))
    msg = re.sub(r"\d{6}_\d{6}", "<stamp>", msg).replace("|", "/").replace("`", "'")
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--json", default=None)
    args = p.parse_args()
    rows = []
    print("| bad input | script | exit code | stderr lines | traceback | message |")
    print("|---|---|---:|---:|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(args.cases):
            case_dir = Path(tmp) / f"case{i}"
            case_dir.mkdir()
            rows.append(run_case(name, case_dir))
            r = rows[-1]
            print(f"| {name} | `{r['script']}` | {r['exit']} | {r['lines']} | "
                  f"{'yes' if r['traceback'] else 'no'} | `{shorten(r['message'], tmp)}` |",
                  flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
