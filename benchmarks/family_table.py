"""Success per shape family: where networks fail on the synthetic set's own distribution.

    python benchmarks/family_table.py all=runs/<a>,runs/<b> grasp=runs/<c>
    python benchmarks/family_table.py A=RUN B=RUN --views 80 --families furniture wire_frame box
    python benchmarks/family_table.py as-predicted=RUN,RUN floor10@10=RUN,RUN

For each family of the generator (:data:`utils.data.synthetic_render.FAMILIES`), ``--views``
scenes of one object of that family, one view each, drawn from ``--seed`` (not a training
set's seed, so other objects), are written once in the Jacquard layout under
``data/benchmark/families_v<generator>_n<views>_seed<seed>/<family>``. Every run of every
group (``NAME=RUN[,RUN...]``, a run folder or its ``best.pt``: for instance the seeds of one
recipe; ``NAME@PX=...`` decodes that group's openings at least PX pixels, ``eval_net.py
--min-opening``) is scored on every family by ``eval_net.py`` (its ``best.pt``, else
``last.pt``; no test-time augmentation; the result is kept in the run folder as
``eval_families_..._<family>[_floor<PX>]/results.json``). The table gives each group's success, averaged
over its checkpoints, per family and over all families; each further group is paired with the
first on the same images: the seed-averaged difference with a 95% bootstrap interval over the
images. The synthetic benchmark mixes families and object counts; this splits them apart.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from results_table import cached_score  # noqa: E402

from utils.atomic import atomic_write_json  # noqa: E402
from utils.cli import non_negative_float  # noqa: E402
from utils.data.synthetic import GENERATOR_VERSION, generate_scene, write_jacquard  # noqa: E402
from utils.data.synthetic_render import FAMILIES  # noqa: E402
from utils.entrypoint import run_main  # noqa: E402
from utils.stats import paired_bootstrap  # noqa: E402

MARKER = "family_set.json"


def family_root(views: int, seed: int) -> Path:
    return REPO / "data" / "benchmark" / f"families_v{GENERATOR_VERSION}_n{views}_seed{seed}"


def ensure_family_set(root: Path, family: str, views: int, seed: int) -> Path:
    """``root/family``: ``views`` one-object scenes of ``family`` (written once, atomically:
    a finished folder has its marker)."""
    out = root / family
    params = {"generator": GENERATOR_VERSION, "family": family, "views": views, "seed": seed}
    marker = out / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return out
    tmp = root / f".{family}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    for i in range(views):
        scene = generate_scene(rng, 300, n_objects=1, families=[family])
        # Jacquard object ids: letters and digits only (the loader splits names on "_").
        write_jacquard(tmp, scene, f"{family.replace('_', '')}{i:05d}", 0)
    atomic_write_json(tmp / MARKER, params)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def parse_group(text: str) -> tuple[str, list[Path], float]:
    """``NAME[@PX]=RUN[,RUN...]`` -> (label, run folders, the runs' ``eval_net.py
    --min-opening``: PX, default 0); a ``.pt`` path stands for its folder. The label is
    ``NAME@PX`` where a floor is given, so ``all=A,B all@10=A,B`` are two groups."""
    name, sep, paths = text.partition("=")
    runs = [Path(p).expanduser() for p in paths.split(",") if p]
    name, at, floor_text = name.partition("@")
    try:
        floor = non_negative_float(floor_text) if at else 0.0
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"{text!r}: @{floor_text}: expected pixels >= 0") from None
    if not sep or not name or not runs:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME[@PX]=RUN[,RUN...]")
    runs = [r.parent if r.suffix == ".pt" else r for r in runs]
    for r in runs:
        if not (r / "best.pt").is_file() and not (r / "last.pt").is_file():
            raise argparse.ArgumentTypeError(f"{r}: no best.pt or last.pt (not a run folder)")
    return (f"{name}@{floor:g}" if at else name), runs, floor


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("groups", nargs="+", type=parse_group, metavar="NAME[@PX]=RUN[,RUN...]")
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--views", type=int, default=80, help="one-object views per family")
    p.add_argument("--seed", type=int, default=2_000_003, help="the sets' generator seed")
    p.add_argument("--json", default=None, help="also write the table's figures here")
    args = p.parse_args(argv)
    labels = [label for label, _, _ in args.groups]
    if len(set(labels)) < len(labels):
        p.error(f"groups: each NAME[@PX] once, got {' '.join(labels)}")
    return args


def successes(
    run: Path, root: Path, family: str, min_opening: float = 0.0
) -> tuple[list[str], np.ndarray]:
    flags = ["--dataset", "jacquard", "--dataset-path", str(root / family), "--part", "all"]
    name = f"eval_{root.name}_{family}"
    if min_opening:
        flags += ["--min-opening", f"{min_opening:g}"]
        name += f"_floor{min_opening:g}"
    r = cached_score(run, name, flags)
    per = r["per_image"]
    return per["ids"], np.asarray(per["successes"], dtype=float)


def main(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    root = family_root(args.views, args.seed)
    names = [name for name, _, _ in args.groups]
    # family -> group -> (ids, seed-averaged success per image)
    scores: dict[str, dict[str, np.ndarray]] = {}
    for fam in args.families:
        folder = ensure_family_set(root, fam, args.views, args.seed)
        scores[fam] = {}
        for name, runs, floor in args.groups:
            got = [successes(r, root, fam, floor) for r in runs]
            if any(ids != got[0][0] for ids, _ in got):
                raise RuntimeError(f"{folder}: runs scored different images")
            scores[fam][name] = np.mean([ok for _, ok in got], axis=0)
    scores["all"] = {n: np.concatenate([scores[f][n] for f in args.families]) for n in names}
    head = " | ".join(
        f"{n} ({len(r)} runs" + (f", openings >= {f:g} px)" if f else ")")
        for n, r, f in args.groups
    )
    pairs = [f"{n} - {names[0]} [95% CI]" for n in names[1:]]
    print(f"\n| family | views | {head} | " + " | ".join(pairs) + " |")
    print("|---|---:|" + "---:|" * (len(names) + len(pairs)))
    data: dict[str, dict] = {}
    for fam, by in scores.items():
        cells = [f"{100 * by[n].mean():.1f}%" for n in names]
        diffs = []
        for n in names[1:]:
            d, lo, hi = paired_bootstrap(by[names[0]], by[n])
            diffs.append(f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]")
        label = f"**{fam}**" if fam == "all" else fam
        print(f"| {label} | {len(by[names[0]])} | " + " | ".join(cells + diffs) + " |")
        data[fam] = {n: float(by[n].mean()) for n in names}
    print(
        f"\n{args.views} one-object views a family (generator v{GENERATOR_VERSION}, seed "
        f"{args.seed}), no TTA; a group's success averaged over its runs; "
        f"{time.perf_counter() - t0:.0f} s"
    )
    if args.json:
        atomic_write_json(args.json, {"families": data, "groups": {n: [str(c) for c in cs]
                                                                    for n, cs, _ in args.groups}})  # fmt: skip
    return data


if __name__ == "__main__":
    run_main(main, parse_args)
