"""Finished table runs kept in the repository, so a table outlives its run folders.

A table's run folder holds checkpoints (hundreds of MB, never committed) and a few small JSON
files: the arguments, the labelled subset, the chosen checkpoint's network and epoch, ``test_results.json`` (with the benchmark's
per-image successes that the paired tests use) and later scores (``<name>/results.json``).
:func:`save` writes those JSON files, with where and when the run was measured, to
``benchmarks/records/<table folder>/<run folder>.json.gz``; :func:`restore` writes back into a
table's folder every recorded run it lacks (a fresh checkout, say), without checkpoints, and a
``RESTORED.txt`` saying so. A table then prints and pairs the recorded runs and trains only
what is missing: seeds add up across machines and sessions. A restored run cannot be scored on
new images (no checkpoint): delete its folder and run the table again to retrain it.

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
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
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
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"cpu": cpu, "torch": torch.__version__, "commit": commit}


def save(run: Path) -> Path | None:
    """Record ``run``'s small JSON files (a finished run: it has ``test_results.json``);
    a restored run keeps its record as it is. Returns the record's path, if written."""
    if not _recorded_folder(run.parent) or not (run / "test_results.json").is_file():
        return None
    if (run / MARKER).exists():
        return None
    files = {str(p.relative_to(run)): json.loads(p.read_text()) for p in _small_files(run)}
    ckpt = next((run / n for n in ("best.pt", "last.pt") if (run / n).is_file()), None)
    if ckpt is not None and "checkpoint.json" not in files:
        import torch

        # what rebuilds the network (a table counts its parameters) without the weights
        c = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
        files["checkpoint.json"] = {"file": ckpt.name, "network": c["network"], "epoch": c["epoch"]}
    record = {"run": run.name, "recorded": time.strftime("%Y-%m-%d %H:%M:%S"),
              **_machine(), "files": files}  # fmt: skip
    out = record_path(run)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    # mtime=0: the same files give the same bytes (no churn in git)
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(json.dumps(record, sort_keys=True, separators=(",", ":")).encode())
    tmp.replace(out)
    return out


def load(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rb") as f:
        return json.loads(f.read())


def restore(outdir: Path) -> list[Path]:
    """Write every run recorded for ``outdir`` that it lacks (no ``test_results.json``) back
    into it, without checkpoints; returns the restored run folders."""
    restored: list[Path] = []
    if not _recorded_folder(outdir):
        return restored
    for path in sorted((RECORDS / outdir.name).glob("*.json.gz")):
        run = outdir / path.name[: -len(".json.gz")]
        if (run / "test_results.json").is_file():
            continue  # the run itself (or an earlier restore) is here
        record = load(path)
        for rel, content in record["files"].items():
            (run / rel).parent.mkdir(parents=True, exist_ok=True)
            (run / rel).write_text(json.dumps(content, indent=1))
        (run / MARKER).write_text(
            f"restored from {path.relative_to(RECORDS.parent.parent)} (no checkpoint): measured on "
            f"{record.get('cpu', '?')}, torch {record.get('torch', '?')}, commit "
            f"{record.get('commit', '?')}, recorded {record.get('recorded', '?')}\n"
        )
        restored.append(run)
    return restored


def is_restored(run: Path) -> bool:
    return (run / MARKER).exists()
