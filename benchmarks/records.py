"""Finished table runs kept in the repository, so a table outlives its run folders.

A table's run folder holds checkpoints (hundreds of MB, never committed) and a few small JSON
files: the arguments, the labelled subset, the chosen checkpoint's network and epoch,
``test_results.json`` (with the benchmark's per-image successes that the paired tests use)
and later scores (``<name>/results.json``).
:func:`save` writes those JSON files, with where and when the run was measured, to
``benchmarks/records/<table folder>/<run folder>.json.gz``; :func:`restore` writes back into a
table's folder every recorded run it lacks (a fresh checkout, say), without checkpoints, and a
``RESTORED.txt`` saying so. A table then prints and pairs the recorded runs and trains only
what is missing: seeds add up across machines and sessions. A restored run cannot be scored on
new images (no checkpoint): delete its folder and its record, and run the table again, to
train it again.

Only the tables that need no checkpoint to print a recorded run (:data:`TABLES`), writing to
their default folders (``runs/<table>``), are recorded and restored: a run elsewhere
(``--outdir``, tests) is left alone. The distillation and sim-to-real tables load their runs'
weights (teachers, latency), so they are not recorded, and they skip restored runs
(``results_table.newest_run(..., weights=True)``) and train those again.
"""

from __future__ import annotations

import functools
import gzip
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from utils.atomic import atomic_open, atomic_write_json, atomic_write_text  # noqa: E402

RECORDS = REPO / "benchmarks" / "records"
RUNS = REPO / "runs"
MARKER = "RESTORED.txt"


#: The tables (their ``runs/`` folders) whose runs are recorded.
TABLES = ("results_table", "mixmatch_table")


def _recorded_folder(outdir: Path) -> bool:
    outdir = outdir.resolve()
    return outdir.parent == RUNS.resolve() and outdir.name in TABLES


def record_path(run: Path) -> Path:
    """Where ``run`` (``<table folder>/<run folder>``) is recorded."""
    return RECORDS / run.parent.name / f"{run.name}.json.gz"


def _small_files(run: Path) -> list[Path]:
    return sorted(p for p in [*run.glob("*.json"), *run.glob("*/results.json")] if p.is_file())


@functools.cache
def _machine() -> dict[str, str]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"cpu": cpu, "torch": torch.__version__, "commit": commit}


def save(run: Path) -> Path | None:
    """Record ``run``'s small JSON files (a finished run: it has ``test_results.json``);
    a restored run keeps its record as it is, and unchanged files are not written again.
    Returns the record's path, if written. A file that cannot be read is a warning: the run
    it would record has finished and stays where it is."""
    if not _recorded_folder(run.parent) or not (run / "test_results.json").is_file():
        return None
    if (run / MARKER).exists():
        return None
    out = record_path(run)
    try:
        files = {str(p.relative_to(run)): json.loads(p.read_text()) for p in _small_files(run)}
        ckpt = next((run / n for n in ("best.pt", "last.pt") if (run / n).is_file()), None)
        if ckpt is not None and "checkpoint.json" not in files:
            from utils.checkpoint import load_checkpoint

            # what rebuilds the network (a table counts its parameters) without the weights
            c = load_checkpoint(ckpt)
            files["checkpoint.json"] = {"file": ckpt.name, "network": c["network"],
                                        "epoch": c["epoch"]}  # fmt: skip
        if out.is_file() and load(out).get("files") == files:
            return out  # recorded as it is
    except (OSError, ValueError, KeyError) as e:  # json.JSONDecodeError is a ValueError
        print(f"warning: {run}: not recorded ({e})", file=sys.stderr)
        return None
    record = {"run": run.name, "recorded": time.strftime("%Y-%m-%d %H:%M:%S"),
              **_machine(), "files": files}  # fmt: skip
    # mtime 0 and no file name in the gzip header: the bytes depend on the record only
    with atomic_open(out, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb",
                                                      mtime=0) as f:  # fmt: skip
        f.write(json.dumps(record, sort_keys=True, separators=(",", ":")).encode())
    return out


def load(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rb") as f:
        return json.loads(f.read())


def restore(outdir: Path) -> list[Path]:
    """Write every run recorded for ``outdir`` back into it, without checkpoints: into a
    missing folder, or a restored one (refreshed from its record, which may hold newer
    scores); a folder of a real run of that name is left alone. Returns the folders written."""
    restored: list[Path] = []
    if not _recorded_folder(outdir):
        return restored
    for path in sorted((RECORDS / outdir.name).glob("*.json.gz")):
        run = outdir / path.name[: -len(".json.gz")]
        if run.exists() and not (run / MARKER).exists():
            continue  # the run itself, finished or stopped mid-way, is here
        record = load(path)
        run.mkdir(parents=True, exist_ok=True)
        # The marker first: a restore killed half-way still says it has no checkpoint.
        atomic_write_text(
            run / MARKER,
            f"restored from {path.relative_to(RECORDS.parent.parent)} (no checkpoint): measured "
            f"on {record.get('cpu', '?')}, torch {record.get('torch', '?')}, commit "
            f"{record.get('commit', '?')}, recorded {record.get('recorded', '?')}; to train it "
            "again, delete this folder and that record\n",
        )
        for rel, content in record["files"].items():
            atomic_write_json(run / rel, content, indent=1)
        restored.append(run)
    return restored


def is_restored(run: Path) -> bool:
    return (run / MARKER).exists()
