"""The benchmark tables' run bookkeeping: which run folder a table takes or resumes."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from results_table import newest_run  # noqa: E402


def make_run(outdir: Path, name: str, files: tuple[str, ...]) -> Path:
    run = outdir / name
    run.mkdir(parents=True)
    for f in files:
        (run / f).write_text("")
    return run


def test_newest_run_takes_finished_runs_of_the_exact_name(tmp_path):
    done = make_run(tmp_path, "261201_100000_ggcnn2_s0", ("last.pt", "test_results.json"))
    make_run(tmp_path, "261201_110000_x_ggcnn2_s0", ("last.pt", "test_results.json"))
    make_run(tmp_path, "261201_120000_ggcnn2_s0", ("last.pt",))  # stopped mid-run
    assert newest_run(tmp_path, "ggcnn2_s0") == done
    assert newest_run(tmp_path, "ggcnn2_s1") is None


def test_a_stopped_run_is_resumed_only_when_it_is_the_newest(tmp_path):
    make_run(tmp_path, "261201_100000_ggcnn2_s0", ("last.pt", "test_results.json"))
    assert newest_run(tmp_path, "ggcnn2_s0", finished=False) is None
    stopped = make_run(tmp_path, "261201_120000_ggcnn2_s0", ("last.pt",))
    make_run(tmp_path, "261201_130000_ggcnn2_s0", ())  # stopped before its first checkpoint
    assert newest_run(tmp_path, "ggcnn2_s0", finished=False) == stopped
    make_run(tmp_path, "261201_140000_ggcnn2_s0", ("last.pt", "test_results.json"))
    assert newest_run(tmp_path, "ggcnn2_s0", finished=False) is None


def test_train_resumes_a_stopped_run_instead_of_starting_again(tmp_path):
    """A table stopped mid-run (a session's end) goes on from the run's last.pt."""
    from results_table import train

    calls = []

    class Script:  # train_net's interface: parse_args(list) and main(args)
        @staticmethod
        def parse_args(argv):
            calls.append(argv)
            return argv

        @staticmethod
        def main(args):
            run = Path(args[1]).parent if args[0] == "--resume" else None
            (run or make_run(tmp_path, "261201_130000_ggcnn2_s0", ())).joinpath(
                "test_results.json"
            ).write_text("{}")

    stopped = make_run(tmp_path, "261201_120000_ggcnn2_s0", ("last.pt",))
    assert train("ggcnn2", 0, tmp_path, [], script=Script) == stopped
    assert calls == [["--resume", str(stopped / "last.pt")]]
    # Finished now: a second call starts a new run with the table's flags.
    calls.clear()
    assert train("ggcnn2", 0, tmp_path, ["--x"], script=Script).name == "261201_130000_ggcnn2_s0"
    assert calls[0][:2] == ["--network", "ggcnn2"] and calls[0][-1] == "--x"
