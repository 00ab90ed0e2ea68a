"""Signals, faults and exit codes: a stopped run saves and resumes exactly, a killed write
leaves the previous file intact, and each way of ending has its own exit code."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, run_script, tiny_args

from utils.atomic import atomic_write_json, remove_leftovers
from utils.checkpoint import atomic_torch_save, load_checkpoint
from utils.entrypoint import EXIT_DIVERGED, EXIT_STOPPED_SAVED, Interrupted

# --checkpoint-every: the first mid-epoch last.pt tells the test that training is under way.
LONG = ["--network", "ggcnn", "--epochs", "2", "--batches-per-epoch", "60", "--val-batches", "1",
        "--checkpoint-every", "5"]  # fmt: skip


def _start(workdir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "train_net.py", *tiny_args(workdir, *LONG, *extra)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for_training(workdir: Path, proc: subprocess.Popen, timeout: float = 120) -> Path:
    """The run folder, once the run has trained a little (its first mid-epoch last.pt)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        runs = list((workdir / "runs").glob("*/last.pt"))
        if runs:
            return runs[0].parent
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError("the run did not start training")


def _final_weights(run: Path) -> dict:
    return load_checkpoint(run / "last.pt")["model"]


def test_stop_message_names_the_script_that_resumes(monkeypatch):
    # A benchmark that drives distill.py in its own process must not say "python <benchmark>".
    monkeypatch.setattr(sys, "argv", ["sim2real_table.py"])
    said = str(Interrupted("SIGTERM", Path("run/last.pt"), "after epoch 1", "distill.py"))
    assert f"resume with python distill.py --resume {Path('run/last.pt')}" in said
    assert "python sim2real_table.py" in str(Interrupted("SIGTERM", Path("r"), "now"))


def test_sigterm_saves_a_resumable_checkpoint_and_resumes_exactly(tmp_path):
    proc = _start(tmp_path / "a")
    run = _wait_for_training(tmp_path / "a", proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_STOPPED_SAVED, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "stopped by SIGTERM" in lines[0], err[-2000:]
    assert f"python train_net.py --resume {run / 'last.pt'}" in lines[0]
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["global_step"] > 0  # it trained, and saved where it stopped
    assert not list(run.glob(".*.tmp"))

    res = run_script("train_net.py", "--resume", str(run / "last.pt"), timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    res = run_script("train_net.py", *tiny_args(tmp_path / "b", *LONG), timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    (plain,) = (tmp_path / "b" / "runs").glob("*")
    resumed, uninterrupted = _final_weights(run), _final_weights(plain)
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)


def test_a_second_signal_ends_the_run_at_once(tmp_path):
    proc = _start(tmp_path)
    _wait_for_training(tmp_path, proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    # Either the second Ctrl-C came before the save (130, nothing new saved) or after (75).
    assert proc.returncode in (130, EXIT_STOPPED_SAVED), err[-2000:]
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_diverged_loss_has_its_own_exit_code(tmp_path):
    res = run_script("train_net.py", *tiny_args(tmp_path, "--network", "ggcnn", "--lr", "1e30"))
    assert res.returncode == EXIT_DIVERGED, res.stderr[-2000:]
    assert "non-finite loss" in res.stderr and "Traceback" not in res.stderr
    assert not list((tmp_path / "runs").glob("*")), "a run that saved nothing leaves no folder"


def test_killed_write_leaves_the_old_file_and_its_leftover_is_cleaned(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_torch_save({"epoch": 1}, path)
    atomic_write_json(tmp_path / "results.json", {"ok": 1})

    def full_disk(obj, f, *a, **k):
        f.write(b"partial checkpoint bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        atomic_torch_save({"epoch": 2}, path)
    assert torch.load(path, weights_only=True)["epoch"] == 1  # the previous file, intact
    assert not list(tmp_path.glob(".*.tmp"))  # and no half-written file

    # SIGKILL mid-write cannot clean up: the next start removes what it left.
    (tmp_path / ".last.pt.x1y2.tmp").write_bytes(b"half")
    assert [p.name for p in remove_leftovers(tmp_path)] == [".last.pt.x1y2.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "results.json"]


def test_atomic_files_get_the_usual_permissions(tmp_path):
    import os

    atomic_write_json(tmp_path / "a.json", {})
    (tmp_path / "b.json").write_text("{}")
    mode = lambda p: os.stat(p).st_mode & 0o777  # noqa: E731
    assert mode(tmp_path / "a.json") == mode(tmp_path / "b.json")  # umask honoured, not 0600


def test_resume_removes_leftovers_of_a_killed_save(tmp_path):
    res = run_script("train_net.py", *tiny_args(tmp_path, "--network", "ggcnn", "--epochs", "1"))
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = (tmp_path / "runs").glob("*")
    leftover = run / ".last.pt.killed.tmp"
    leftover.write_bytes(b"half a checkpoint")
    res = run_script("train_net.py", "--resume", str(run / "last.pt"), "--epochs", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    assert not leftover.exists() and load_checkpoint(run / "last.pt")["epoch"] == 2


# --- security ------------------------------------------------------------------------------------
class _RunsCode:
    """Unpickling this would run a shell command (what a malicious checkpoint does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_checkpoint_is_refused_without_running_code(tmp_path):
    marker, bad = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"model": _RunsCode(marker), "network": {}}, bad)
    for script in (["eval_net.py", "--network", str(bad), "--dataset", "benchmark",
                    "--benchmark-images", "2"],
                   ["train_net.py", "--resume", str(bad)]):  # fmt: skip
        res = run_script(*script)
        assert res.returncode == 2 and "not a readable checkpoint" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    assert not marker.exists()


def test_scripts_run_with_network_sockets_disabled(tmp_path):
    """No download at run time: with AF_INET/AF_INET6 sockets made to fail, a run trains,
    is evaluated, and predicts on depth frames."""
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(
        "import socket\n"
        "_real = socket.socket\n"
        "class _NoNet(_real):\n"
        "    def __init__(self, family=-1, *a, **k):\n"
        "        if family in (-1, socket.AF_INET, socket.AF_INET6):  # -1: the default, AF_INET\n"
        "            raise OSError('network access attempted during a test run')\n"
        "        super().__init__(family, *a, **k)\n"
        "socket.socket = _NoNet\n"
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(guard)}

    def run(*argv):
        res = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True,
                             env=env, timeout=300)  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        return res

    probe = subprocess.run([sys.executable, "-c", "import socket; socket.socket()"], env=env,
                           capture_output=True, text=True)  # fmt: skip
    assert probe.returncode != 0 and "network access attempted" in probe.stderr
    run("train_net.py", *tiny_args(tmp_path, "--network", "ggcnn", "--epochs", "1"))
    (best,) = (tmp_path / "runs").glob("*/best.pt")
    run("eval_net.py", "--network", str(best), "--num-workers", "0", "--cache-dir",
        str(tmp_path / "cache"), "--outdir", str(tmp_path / "eval"))  # fmt: skip
    run("eval_net.py", "--network", str(REPO / "weights" / "ggcnn2_distilled.pt"), "--images",
        str(tmp_path / "synthetic"), "--outdir", str(tmp_path / "pred"), "--num-workers", "0")  # fmt: skip


def test_description_cannot_write_outside_outdir(tmp_path):
    for bad in ("../escape", "a/b", ".."):
        res = run_script("train_net.py", *tiny_args(tmp_path, "--description", bad))
        assert res.returncode == 2 and "without path separators" in res.stderr, res.stderr
    assert not (tmp_path / "escape").exists() and not (tmp_path / "runs").exists()


def test_a_killed_torchrun_worker_ends_the_whole_job(tmp_path):
    """One of two gloo workers killed mid-epoch (SIGKILL, no chance to clean up): the job
    ends, non-zero, within a bounded time, instead of the other rank waiting forever."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "train_net.py", *tiny_args(tmp_path, *LONG)]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for_training(tmp_path, proc)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
    pids = [int(p) for p in workers.stdout.split()]
    assert len(pids) == 2, workers
    killed_at = time.monotonic()
    subprocess.run(["kill", "-9", str(pids[-1])], check=True)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and time.monotonic() - killed_at < 60, err[-2000:]
    assert "Signals.SIGKILL" in err or "exitcode" in err, err[-2000:]


def worker_errors(stderr: str) -> str:
    """The lines of a failed torchrun's stderr that name an error or abort (a rank's reason),
    then the tail (torchrun's own summary fills it)."""
    keys = ("Error", "error", "terminate", "what()", "Abort", "Signal")
    said = [ln for ln in stderr.splitlines() if any(k in ln for k in keys)]
    return "\n".join(said[:30]) + "\n...\n" + stderr[-1500:]


def test_sigterm_to_torchrun_saves_every_rank_at_the_same_step(tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2"]  # fmt: skip
    proc = subprocess.Popen([*torchrun, "train_net.py", *tiny_args(tmp_path, *LONG)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    run = _wait_for_training(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)  # torchrun passes it to both workers
    _, err = proc.communicate(timeout=120)
    said = [line for line in err.splitlines() if "stopped by SIGTERM" in line]
    assert len(said) == 1 and "torchrun --nproc_per_node=2 train_net.py --resume" in said[0], err
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2 and ckpt["global_step"] > 0
    res = subprocess.run([*torchrun, "train_net.py", "--resume", str(run / "last.pt")], cwd=REPO,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, worker_errors(res.stderr)
    assert f"resuming at epoch {ckpt['epoch'] + 1}" in res.stdout


@pytest.mark.parametrize(
    ("body", "code", "said"),
    [
        ("print('written', end='')", 0, "written"),
        ("raise Interrupted('SIGTERM', Path('last.pt'), 'at epoch 1')", 75, "stopped by SIGTERM"),
        ("raise ValueError('--epochs: expected > 0')", 2, "error: --epochs: expected > 0"),
        ("raise RuntimeError('a bug')", 1, "RuntimeError: a bug"),
    ],
    ids=["ok", "stopped", "bad-input", "bug"],
)
def test_torchrun_workers_keep_their_exit_codes_without_finalizing(body, code, said):
    # A torchrun worker ends with os._exit (gloo's threads could abort the interpreter's
    # finalization; utils/entrypoint.py): the exit code, the messages, and output not yet
    # flushed all survive it. A bug still prints its traceback.
    prog = (
        "from pathlib import Path\n"
        "from utils.entrypoint import Interrupted, run_main\n"
        f"def main(args):\n    {body}\n"
        "run_main(main, lambda: None)\n"
    )
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "0"}
    res = subprocess.run([sys.executable, "-c", prog], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert res.returncode == code, res.stderr
    assert said in res.stdout + res.stderr
    assert ("Traceback" in res.stderr) == (code == 1), res.stderr
