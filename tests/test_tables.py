"""The benchmark tables' run bookkeeping: which run folder a table takes or resumes."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from results_table import newest_run  # noqa: E402


def make_run(outdir: Path, name: str, files: tuple[str, ...]) -> Path:
    run = outdir / name
    run.mkdir(parents=True)
    for f in files:
        (run / f).write_text("")
    return run


def make_scored_run(outdir: Path, name: str, seed: int, successes: list[bool]) -> Path:
    """A finished benchmark-table run: its seed and per-image benchmark successes (ids a, b,
    ...; misses as *no grasp*), as a table's ``train`` would leave them."""
    import json

    from utils.post_process import DECODING_VERSION

    run = make_run(outdir, name, ())
    per = {"ids": [chr(97 + i) for i in range(len(successes))], "successes": successes,
           "outcomes": ["hit" if x else "no grasp" for x in successes]}  # fmt: skip
    (run / "args.json").write_text(json.dumps({"seed": seed}))
    bench = {"scored": f"synthetic benchmark v4 ({len(successes)} images)", "per_image": per,
             "decoding": DECODING_VERSION}  # fmt: skip
    (run / "test_results.json").write_text(json.dumps({"benchmark": bench}))
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
    # resumed with the table's flags, which the script checks against the run's own
    assert calls[0][:2] == ["--resume", str(stopped / "last.pt")]
    assert calls[0][2:4] == ["--network", "ggcnn2"] and len(calls) == 1
    # Finished now: a second call starts a new run with the table's flags.
    calls.clear()
    assert train("ggcnn2", 0, tmp_path, ["--x"], script=Script).name == "261201_130000_ggcnn2_s0"
    assert calls[0][:2] == ["--network", "ggcnn2"] and calls[0][-1] == "--x"


def test_a_stopped_run_of_other_flags_is_trained_anew(tmp_path, capsys):
    """A stopped run whose resume the script refuses (the table's flags differ from the run's
    own, e.g. a default that changed since) is left alone and a new run starts."""
    from results_table import train

    calls = []

    class Script:
        @staticmethod
        def parse_args(argv):
            calls.append(argv)
            if argv[0] == "--resume":
                raise SystemExit(2)  # what the harness does for a flag that differs
            return argv

        @staticmethod
        def main(args):
            make_run(tmp_path, "261201_130000_ggcnn2_s0", ("test_results.json",))

    stopped = make_run(tmp_path, "261201_120000_ggcnn2_s0", ("last.pt",))
    run = train("ggcnn2", 0, tmp_path, ["--x"], script=Script)
    assert run.name == "261201_130000_ggcnn2_s0" and run != stopped
    assert [c[0] for c in calls] == ["--resume", "--network"]
    assert (stopped / "last.pt").exists()  # left as it was
    assert "trained with other flags" in capsys.readouterr().out


def test_a_table_stopped_by_a_signal_ends_with_one_line_and_the_resume_code(tmp_path, capsys):
    """SIGTERM mid-run (a session's end): exit 75 with one line naming the saved last.pt,
    not the Interrupted traceback; the same table command resumes it."""
    from results_table import train

    from utils.entrypoint import EXIT_STOPPED_SAVED, Interrupted

    saved = tmp_path / "261201_120000_ggcnn2_s0" / "last.pt"

    class Script:
        parse_args = staticmethod(lambda argv: argv)

        @staticmethod
        def main(args):
            raise Interrupted("SIGTERM", saved, "at epoch 3, batch 2 of 9", "train_net.py")

    with pytest.raises(SystemExit) as e:
        train("ggcnn2", 0, tmp_path, [], script=Script)
    assert e.value.code == EXIT_STOPPED_SAVED
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(saved) in err and "at epoch 3" in err
    assert "same table command resumes it" in err


def test_records_bring_back_finished_runs_without_checkpoints(tmp_path, monkeypatch):
    """A finished table run is recorded (its small JSON files), and a fresh checkout's table
    finds it again, restored without checkpoints; runs outside runs/<table> are not recorded."""
    import json

    import pytest
    import records
    import results_table
    import torch

    monkeypatch.setattr(records, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(records, "RECORDS", tmp_path / "records")
    outdir = tmp_path / "runs" / "mixmatch_table"
    run = make_run(outdir, "261201_100000_ggcnn2_s0", ())
    per = {"ids": ["a", "b"], "successes": [True, False], "best_ious": [0.5, 0.1]}
    report = {"summary": {"checkpoint": str(run / "best.pt")}, "benchmark": {"per_image": per}}
    (run / "test_results.json").write_text(json.dumps(report))
    (run / "args.json").write_text(json.dumps({"seed": 0, "epochs": 2}))
    (run / "eval_x").mkdir()
    (run / "eval_x" / "results.json").write_text(json.dumps({"images": 2}))
    net = {"name": "ggcnn2", "kwargs": {}}
    torch.save({"model": {}, "network": net, "epoch": 2}, run / "best.pt")
    path = records.save(run)
    first = path.read_bytes()
    assert records.save(run).read_bytes() == first  # same files, same bytes
    assert (
        records.save(make_run(tmp_path / "elsewhere", "261201_1_x", ("test_results.json",))) is None
    )

    import shutil

    shutil.rmtree(run)
    results_table.restored_once.cache_clear()
    found = results_table.newest_run(outdir, "ggcnn2_s0")
    assert found == run and records.is_restored(run) and not (run / "best.pt").exists()
    assert results_table.benchmark_successes(run) == (["a", "b"], [True, False])
    assert json.loads((run / "eval_x" / "results.json").read_text()) == {"images": 2}
    assert json.loads((run / "checkpoint.json").read_text())["network"] == net
    assert results_table.chosen_checkpoint(run) == run / "best.pt"
    assert records.save(run) is None  # a restored run keeps its record as it was
    (run / "eval_x" / "results.json").write_text("{}")  # a restored folder is refreshed
    results_table.restored_once.cache_clear()
    results_table.newest_run(outdir, "ggcnn2_s0")
    assert json.loads((run / "eval_x" / "results.json").read_text()) == {"images": 2}
    stopped = make_run(outdir, "261201_110000_ggcnn2_s0", ("last.pt",))
    shutil.copy(path, path.with_name(stopped.name + ".json.gz"))
    results_table.restored_once.cache_clear()
    results_table.newest_run(outdir, "ggcnn2_s0")  # a real run's folder is left alone
    assert sorted(f.name for f in stopped.iterdir()) == ["last.pt"]
    assert results_table.newest_run(outdir, "ggcnn2_s0", weights=True) is None  # a teacher
    with pytest.raises(RuntimeError, match="no checkpoint to score"):
        results_table.cached_score(run, "eval_y", ["--dataset-path", str(tmp_path)])


def test_scores_of_an_older_decoding_are_scored_again(tmp_path, monkeypatch):
    """A stored eval or benchmark result decoded otherwise than today (no ``decoding`` field:
    before negative openings were clamped) is scored again when the checkpoint is there, and
    kept when it is not (a record)."""
    import json

    import results_table

    from utils.post_process import DECODING_VERSION

    run = make_run(tmp_path, "261201_100000_ggcnn2_s0", ("best.pt",))
    per = {"ids": ["a", "b"], "successes": [True, True]}
    old = {"images": 2, "correct": 2, "checkpoint": str(run / "best.pt"), "per_image": per}
    (run / "eval_x").mkdir()
    (run / "eval_x" / "results.json").write_text(json.dumps(old))
    new_per = {"ids": ["a", "b"], "successes": [True, False]}
    calls = []

    def score(ckpts, out, flags):
        calls.append(flags)
        return {**old, "correct": 1, "decoding": DECODING_VERSION, "per_image": new_per,
                "success_rate": 0.5, "success_ci95": [0.1, 0.9], "mean_best_iou": 0.3}  # fmt: skip

    monkeypatch.setattr(results_table, "score", score)
    monkeypatch.setattr(results_table.records, "save", lambda run: None)
    assert results_table.cached_score(run, "eval_x", ["--part", "all"])["correct"] == 1
    assert len(calls) == 1
    (run / "eval_x" / "results.json").write_text(json.dumps({**old, "decoding": DECODING_VERSION}))
    assert results_table.cached_score(run, "eval_x", ["--part", "all"])["correct"] == 2
    assert len(calls) == 1  # today's decoding: reused

    # The training's own benchmark block: scored again through eval_net on the same folder.
    bench_root = tmp_path / "bench"
    monkeypatch.setattr(results_table, "benchmark_name", lambda n, root=None: "bench v9")
    report = {"summary": {}, "benchmark": {"scored": "bench v9", "summary": {"images": 2},
                                           "per_image": per}}  # fmt: skip
    (run / "test_results.json").write_text(json.dumps(report))
    (run / "args.json").write_text(json.dumps({"benchmark_path": str(bench_root)}))
    assert results_table.benchmark_successes(run) == (["a", "b"], [True, True])  # no folder
    bench_root.mkdir()
    assert results_table.benchmark_successes(run) == (["a", "b"], [True, False])
    assert calls[-1][:4] == ["--dataset", "benchmark", "--dataset-path", str(bench_root)]
    (run / "best.pt").unlink()  # a record: its figures as they were scored
    assert results_table.benchmark_successes(run) == (["a", "b"], [True, True])


def test_family_sets_are_one_object_of_their_family_and_deterministic(tmp_path):
    import hashlib

    import family_table

    from utils.image import load_mask

    def digest(folder: Path) -> str:
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()

    a = family_table.ensure_family_set(tmp_path / "a", "wire_frame", 2, seed=7)
    b = family_table.ensure_family_set(tmp_path / "b", "wire_frame", 2, seed=7)
    assert digest(a) == digest(b)
    assert family_table.ensure_family_set(tmp_path / "a", "wire_frame", 2, seed=7) == a  # kept
    views = sorted(a.glob("*/0_*_mask.png"))
    assert [v.parent.name for v in views] == ["wireframe00000", "wireframe00001"]
    assert all(load_mask(v).any() for v in views)
    other = family_table.ensure_family_set(tmp_path / "c", "box", 2, seed=7)
    assert digest(other) != digest(a)


def test_family_groups_and_opening_floors_parse(tmp_path):
    """``NAME[@PX]=RUN,...``: a group's runs and its --min-opening; bad groups name the
    text and what was expected."""
    import argparse

    import family_table

    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"")
    assert family_table.parse_group(f"a={run}") == ("a", [run], 0.0)
    assert family_table.parse_group(f"b@10={run / 'best.pt'},{run}") == ("b@10", [run, run], 10.0)
    for bad, says in [
        (f"c@-1={run}", "expected pixels >= 0"),
        (f"c@x={run}", "expected pixels >= 0"),
        (str(run), "expected NAME[@PX]=RUN"),
        (f"d={tmp_path}", "not a run folder"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(says)):
            family_table.parse_group(bad)
    # the same run with and without a floor: two groups, paired, not one overwriting the other
    args = family_table.parse_args([f"all={run}", f"all@10={run}"])
    assert [label for label, _, _ in args.groups] == ["all", "all@10"]
    with pytest.raises(SystemExit):
        family_table.parse_args([f"a={run}", f"a={run}"])


def test_sim2real_rows_with_an_opening_floor_score_and_pair_at_that_floor(tmp_path, monkeypatch):
    """``sim2real_table.py --min-opening PX``: the real views and today's benchmark are scored
    with ``--min-opening PX`` under opening_floor.py's cache names (not the training's own
    floor-0 figures), and recipes pair on those per-image successes."""
    import sim2real_table

    bench = tmp_path / "synthetic_v9_n4"
    bench.mkdir()
    monkeypatch.setattr(sim2real_table, "CUR_BENCHMARK", bench)
    monkeypatch.setattr(sim2real_table, "V3_BENCHMARK", tmp_path / "absent_v3")
    monkeypatch.setattr(sim2real_table, "V2_BENCHMARK", tmp_path / "absent_v2")
    real = tmp_path / "jacquard_samples"
    real.mkdir()
    calls = []

    def cached_score(run, name, flags, out=None):
        calls.append((name, flags))
        ok = [True, False, True, run.name.endswith("b")]
        why = ["hit" if x else "angle" for x in ok]
        return {"correct": sum(ok), "images": 4, "failed": [],
                "per_image": {"ids": list("wxyz"), "successes": ok, "outcomes": why}}  # fmt: skip

    monkeypatch.setattr(sim2real_table, "cached_score", cached_score)
    monkeypatch.setattr(sim2real_table, "benchmark_report", lambda run: pytest.fail("floor 0"))
    rows = {k: sim2real_table.row(tmp_path / k, real, min_opening=10) for k in ("a", "b")}
    assert [name for name, _ in calls[:2]] == [
        "eval_jacquard_samples_floor10",
        "eval_synthetic_v9_n4_floor10",
    ]
    assert all(flags[-2:] == ["--min-opening", "10"] for _, flags in calls)
    assert rows["b"]["bench_cur"] == [3, 4] and rows["a"]["real"] == [2, 4]
    t = sim2real_table.paired_successes(
        [(r["bench_cur_per_image"]["ids"], r["bench_cur_per_image"]["successes"])
         for r in (rows["a"],)],
        [(r["bench_cur_per_image"]["ids"], r["bench_cur_per_image"]["successes"])
         for r in (rows["b"],)],
    )  # fmt: skip
    assert t["per_seed"][0]["b_only"] == 1 and t["per_seed"][0]["a_only"] == 0
    assert t["diff"] == pytest.approx(0.25)
    # the benchmark's outcomes are counted per run, as the outcome table sums them
    assert rows["a"]["bench_cur_outcomes"] == {"hit": 2, "angle": 2}
    assert rows["b"]["bench_cur_outcomes"] == {"hit": 3, "angle": 1}


def test_mixmatch_table_on_the_defaults_trains_full_runs_and_more_unlabelled(
    tmp_path, monkeypatch, capsys
):
    """``mixmatch_table.py --data defaults --more-unlabelled``: no v2 flags, the run names carry
    the generator version, the fully supervised runs are trained there with EMA and the same
    steps and no labelled subset, and MixMatch with more unlabelled scenes gets its own column,
    paired against labelled only."""
    import argparse

    import mixmatch_table

    from utils.evaluation import OUTCOMES

    trained = []

    def train(net, seed, outdir, flags, script=None, desc=None):
        trained.append((desc, flags))
        hits = {"full": 4, "labelled": 1, "mixmatch": 2}[desc.split("_")[0]]
        hits += "_more_" in desc
        hits += "_cutmix" in desc
        name = f"261207_0000{len(trained):02d}_{desc}"
        return make_scored_run(outdir, name, seed, [i < hits for i in range(4)])

    monkeypatch.setattr(mixmatch_table, "train", train)
    monkeypatch.setattr(mixmatch_table, "full_batches", lambda net, data="v2": 61)
    # --ablation without the paper's MixMatch: labelled only, the variant and fully supervised
    # runs are trained (the gap to close), MixMatch is not; the table prints "–" for it.
    ablation = argparse.Namespace(networks=["ggcnn2"], fractions=[0.1], seeds=1, no_train=False,
                                  data="defaults", ablation="sharpen-cutmix",
                                  without_mixmatch=True)  # fmt: skip
    (row,) = mixmatch_table.ablation_table(ablation, tmp_path / "ablation")
    v = mixmatch_table.GENERATOR_VERSION
    assert [d for d, _ in trained] == [f"labelled_ggcnn2_f10_v{v}_s0",
                                       f"mixmatch_ggcnn2_f10_v{v}_t1_cutmix_s0",
                                       f"full_ggcnn2_v{v}_s0"]  # fmt: skip
    assert row["mixmatch"] == [] and row["vs_mixmatch"] is None and row["full"] == [[4, 4]]
    mixmatch_table.print_ablation([row], "sharpen-cutmix")
    out = capsys.readouterr().out
    assert "| ggcnn2 | 10% | 25.0 ± 0.0% | – | 75.0 ± 0.0% | – | +50.0" in out
    assert "gap closed: MixMatch –, MixMatch, T = 1, CutMix 67% [" in out  # + its interval
    trained.clear()
    args = argparse.Namespace(networks=["ggcnn2"], fractions=[0.1], seeds=2, no_train=False,
                              data="defaults", more_unlabelled=True)  # fmt: skip
    rows = mixmatch_table.benchmark_table(args, tmp_path / "runs", tmp_path / "alone")
    names = [d for d, _ in trained]
    assert names[:2] == [f"full_ggcnn2_v{v}_s0", f"full_ggcnn2_v{v}_s1"]
    assert f"mixmatch_ggcnn2_f10_v{v}_more_s1" in names and len(names) == 8
    for desc, flags in trained:
        assert "--dataset-path" not in flags and "--depth-norm" not in flags  # no v2 data
        assert flags[flags.index("--model-ema") + 1] == "1" and "61" in flags
        assert ("--labeled-fraction" in flags) != desc.startswith("full_")
        assert ("--unlabeled-path" in flags) == ("_more_" in desc)
    (row,) = rows
    assert row["full"] == [[4, 4], [4, 4]] and row["more"] == [[3, 4], [3, 4]]
    assert row["paired_more"]["diff"] == pytest.approx(0.5)
    mixmatch_table.print_benchmark(rows, "defaults")
    out = capsys.readouterr().out
    assert "| ggcnn2 | 10% | 25.0 ± 0.0% | 75.0 ± 0.0% | 100.0 ± 0.0% |" in out  # + 1,400 scenes
    assert "| 67% | 2 |" in out and "| 33% | 2 |" in out  # the gap closed by each
    # the benchmark's images by outcome, summed over the seeds: 2 seeds x 4 images
    assert row["outcomes"]["more"] == {**dict.fromkeys(OUTCOMES, 0), "hit": 6, "no grasp": 2}
    assert "| ggcnn2 | 10% | fully supervised | 8 | 0 |" in out
    # A second call finds every run and trains nothing.
    trained.clear()
    mixmatch_table.benchmark_table(args, tmp_path / "runs", tmp_path / "alone")
    assert trained == []


def test_mixmatch_table_epochs_give_every_column_the_budget_and_its_own_runs(tmp_path, monkeypatch):
    """``--epochs N``: labelled only, the variant and fully supervised all train N epochs (the
    flag after the network's own), and their names carry ``_e<N>``, so a table of the default
    budget never picks them up (nor they its runs)."""
    import argparse

    import mixmatch_table

    trained = []

    def train(net, seed, outdir, flags, script=None, desc=None):
        trained.append((desc, flags))
        name = f"261207_0000{len(trained):02d}_{desc}"
        return make_scored_run(outdir, name, seed, [True, False])

    monkeypatch.setattr(mixmatch_table, "train", train)
    monkeypatch.setattr(mixmatch_table, "full_batches", lambda net, data="v2": 61)
    monkeypatch.setattr(mixmatch_table, "DATA", dict(mixmatch_table.DATA))
    v = mixmatch_table.GENERATOR_VERSION

    def table(data):
        ns = argparse.Namespace(networks=["ggcnn2"], fractions=[0.1], seeds=1, no_train=False,
                                data=data, ablation="sharpen-mixup", without_mixmatch=True)  # fmt: skip
        return mixmatch_table.ablation_table(ns, tmp_path)

    table(mixmatch_table.with_epochs("defaults", 30))
    assert [d for d, _ in trained] == [f"labelled_ggcnn2_f10_v{v}_e30_s0",
                                       f"mixmatch_ggcnn2_f10_v{v}_e30_t1_nomixup_s0",
                                       f"full_ggcnn2_v{v}_e30_s0"]  # fmt: skip
    for _, flags in trained:
        assert flags[flags.index("--epochs") + 1] == "30"
    trained.clear()
    table("defaults")  # the default budget: none of the 30-epoch runs is taken for it
    assert [d for d, _ in trained] == [f"labelled_ggcnn2_f10_v{v}_s0",
                                       f"mixmatch_ggcnn2_f10_v{v}_t1_nomixup_s0",
                                       f"full_ggcnn2_v{v}_s0"]  # fmt: skip
    assert all("--epochs" not in flags for _, flags in trained)


def test_real_table_with_an_ablation_reuses_its_runs_and_adds_real_depth(
    tmp_path, monkeypatch, capsys
):
    """``--real --ablation A --data defaults --epochs N``: the run without real depth is the
    ablation table's own (same name, reused), the run with it adds only ``--unlabeled-path``
    (named ``..._real``); both are scored on the real views and paired."""
    import argparse

    import mixmatch_table

    trained = []

    def train(net, seed, outdir, flags, script=None, desc=None):
        trained.append((desc, flags))
        return make_scored_run(outdir, f"261207_1200{len(trained):02d}_{desc}", seed, [True])

    real = {"correct": 1, "images": 2, "per_image": {"ids": ["a", "b"], "successes": [True, False]}}
    monkeypatch.setattr(mixmatch_table, "train", train)
    monkeypatch.setattr(mixmatch_table, "real_result", lambda run, jacquard: real)
    monkeypatch.setattr(mixmatch_table, "full_batches", lambda net, data="v2": 61)
    monkeypatch.setattr(mixmatch_table, "DATA", dict(mixmatch_table.DATA))
    v, data = mixmatch_table.GENERATOR_VERSION, mixmatch_table.with_epochs("defaults", 30)
    (tmp_path / "views").mkdir()
    (tmp_path / "unlabelled").mkdir()
    done = f"261207_090000_mixmatch_ggcnn2_f10_v{v}_e30_t1_nomixup_s0"
    make_scored_run(tmp_path / "runs", done, 0, [True])  # the ablation table's finished run
    ns = argparse.Namespace(jacquard_path=str(tmp_path / "views"), seeds=1, no_train=False,
                            real_unlabelled=str(tmp_path / "unlabelled"), real_fraction=0.1,
                            ablation="sharpen-mixup", data=data)  # fmt: skip
    res = mixmatch_table.real_table(ns, tmp_path / "runs")
    assert [d for d, _ in trained] == [f"mixmatch_ggcnn2_f10_v{v}_e30_t1_nomixup_real_s0"]
    flags = trained[0][1]
    assert flags[flags.index("--unlabeled-path") + 1] == str(tmp_path / "unlabelled")
    assert flags[flags.index("--t") + 1] == "1" and flags[flags.index("--epochs") + 1] == "30"
    assert res["without"][0]["run"].endswith(done)
    mixmatch_table.print_real(res, 0.1, "sharpen-mixup")
    out = capsys.readouterr().out
    assert "GG-CNN2 MixMatch, T = 1, no MixUp, 10% labels" in out and "+0/-0, p = 1" in out


def test_ablation_print_gives_each_seed_and_the_gap_closed(capsys):
    """``mixmatch_table --ablation``: under the table, each seed's rates and test against
    labelled only, and the gap to full supervision each method closes."""
    import mixmatch_table

    test = {"diff": 0.02, "ci95": [0.01, 0.03],
            "per_seed": [{"b_only": 30, "a_only": 10, "p": 0.001}]}  # fmt: skip
    row = {"network": "ggcnn2", "fraction": 0.1, "labelled": [[80, 100]],
           "mixmatch": [[78, 100]], "variant": [[82, 100]], "full": [[84, 100]],
           "vs_mixmatch": test, "vs_labelled": test, "outcomes": {}}  # fmt: skip
    mixmatch_table.print_ablation([row], "sharpen")
    out = capsys.readouterr().out
    assert "labelled 80.0; mixmatch 78.0; variant 82.0" in out
    assert "+20.0 (30/10, p = 0.001)" in out
    assert "gap closed: MixMatch -50%, MixMatch without sharpening 50%" in out
    assert mixmatch_table.gap_closed(80.0, 82.0, 80.5) == "–"  # under a point: no gap


def test_loader_stages_time_every_stage_of_a_real_item(shared_data, capsys):
    """``loader_speed.py --stages``: a time for each stage and the whole item, on the real
    Jacquard samples with the training defaults (table-relative depth)."""
    import loader_speed

    from utils.data import JacquardDataset

    ds = JacquardDataset(shared_data / "jacquard_samples", output_size=64, random_rotate=True,
                         random_zoom=True, depth_norm="table")  # fmt: skip
    ms = loader_speed.stage_times(ds, loader_speed.BATCH, repeats=1)
    assert set(ms) == {*loader_speed.STAGES, "item", *loader_speed.BATCHED}
    assert all(v > 0 for v in ms.values())
    loader_speed.print_stages(str(shared_data / "jacquard_samples"), 64, 2)  # too few to batch
    row = capsys.readouterr().out.strip()
    columns = len(loader_speed.STAGES) + len(loader_speed.BATCHED) + 3
    assert row.startswith("| jacquard_samples | ") and row.count("|") == columns
    assert row.endswith("| – | – |")


def test_data_wait_splits_an_epochs_wait_and_restores_what_it_timed(shared_data, tmp_path, capsys):
    """``data_wait.py``: a row per epoch in which every timed part was seen and items plus
    collation lie inside the wait the loop counted; leaving it puts every timed function back."""
    import data_wait

    import train_net
    import utils.data.base as base
    import utils.data.loader as loader
    import utils.training as training

    def patched():
        return (training._train_batches, base.collate_grasp_batch, base.normalise_depth,
                base.GraspDataset._warp, loader.SeededItems.__getitems__,
                base.stacked_targets)  # fmt: skip

    before = patched()
    rows: list[dict[str, float]] = []
    argv = ["--network", "ggcnn2", "--dataset", "jacquard", "--dataset-path",
            str(shared_data / "jacquard_samples"), "--input-size", "64", "--epochs", "2",
            "--batch-size", "4", "--batches-per-epoch", "3", "--val-batches", "1",
            "--benchmark-images", "0", "--num-workers", "0", "--threads", "1",
            "--prefetch-thread", "off", "--amp", "off", "--channels-last", "off",
            "--device", "cpu", "--cache-dir", str(tmp_path / "cache"),
            "--outdir", str(tmp_path / "runs")]  # fmt: skip
    with data_wait.instrumented(rows):
        train_net.main(train_net.parse_args(argv))
    assert patched() == before
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        assert r["loop"] > 0 and r["item ms"] > 0
        assert all(r[s] > 0 for s in (*data_wait.STAGES, "items", "collation"))
        assert sum(r[s] for s in data_wait.STAGES) <= r["items"]
        # in-line loading: items and collation happen inside next(batches), the counted wait
        assert r["items"] + r["collation"] <= r["wait"] + 1e-9
    data_wait.print_table(rows)
    lines = capsys.readouterr().out.strip().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| epoch |"))
    assert len(lines) == header + 4 and lines[-1].startswith("| 2 | ")
    assert len({line.count("|") for line in lines[header:]}) == 1


def test_scoring_on_scores_every_run_on_the_confirmation_set(tmp_path, monkeypatch):
    """Inside ``scoring_on`` the tables' figures are each checkpoint's on the confirmation set
    (eval_net on all its images), named as that set; a record without weights is refused with
    its folder named unless it kept a score there; after the block, the runs' own benchmark
    figures again. A folder that is no held-out set is refused."""
    import json

    import results_table

    from utils.data.benchmark import ensure_confirmation_set
    from utils.post_process import DECODING_VERSION

    conf = ensure_confirmation_set(5, tmp_path / "conf")
    run = make_scored_run(tmp_path / "runs", "261207_100000_labelled_ggcnn2_f10_s0", 0, [True] * 5)
    (run / "best.pt").write_text("")
    calls = []

    def score(ckpts, out, flags):
        calls.append((ckpts, flags, out))
        per = {"ids": list("vwxyz"), "successes": [True, False, True, False, False]}
        return {"images": 5, "correct": 2, "checkpoint": str(ckpts[0]), "per_image": per,
                "decoding": DECODING_VERSION, "success_rate": 0.4, "success_ci95": [0.1, 0.8],
                "mean_best_iou": 0.3, "dataset_root": str(conf)}  # fmt: skip

    monkeypatch.setattr(results_table, "score", score)
    flags = ["--dataset", "jacquard", "--dataset-path", str(conf), "--part", "all"]
    with results_table.scoring_on(conf):
        assert results_table.benchmark_successes(run) == (
            list("vwxyz"),
            [True, False, True, False, False],
        )
        assert calls[0] == ([run / "best.pt"], flags, run / f"eval_{conf.name}")  # kept there
        assert results_table.benchmark_report(run)["scored"].startswith(
            "synthetic confirmation set"
        )
        record = make_scored_run(
            tmp_path / "runs", "261207_110000_labelled_ggcnn2_f10_s1", 1, [True]
        )
        with pytest.raises(RuntimeError, match=f"{record.name}: no checkpoint to score on"):
            results_table.benchmark_successes(record)
        # A record that kept its score there (restored from benchmarks/records) prints it.
        kept = score([record / "best.pt"], None, [])
        (record / f"eval_{conf.name}").mkdir()
        (record / f"eval_{conf.name}" / "results.json").write_text(json.dumps(kept))
        n_calls = len(calls)
        assert results_table.benchmark_successes(record)[0] == list("vwxyz")
        assert len(calls) == n_calls  # its kept score, not scored again
    assert results_table.SCORING_SET is None
    assert results_table.benchmark_successes(run) == (list("abcde"), [True] * 5)
    with pytest.raises(ValueError, match="not a held-out synthetic set"):
        with results_table.scoring_on(tmp_path / "runs"):
            pass
