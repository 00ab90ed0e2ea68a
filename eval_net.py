"""Evaluate a trained checkpoint with the rectangle metric, or run it on unlabelled depth images.

    python eval_net.py --network runs/<run>/best.pt                    # its own test part
    python eval_net.py --network best.pt --dataset jacquard --dataset-path <path> \
        --iou-eval --jacquard-output --vis
    python eval_net.py --network best.pt --tta d8     # averaged over the 8 dihedral views
    python eval_net.py --ensemble --network A.pt B.pt C.pt   # their mean maps, as one model
    python eval_net.py --network best.pt --images <folder of depth .tiff>  # no labels

The network is rebuilt from the arguments stored in the checkpoint; data flags not given on
the command line default to the ones the checkpoint was trained with.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from models import MapEnsemble
from utils import cli
from utils.atomic import atomic_write_json
from utils.checkpoint import WEIGHTS, load_model
from utils.data.build import SPLIT_FLAGS, dataset_from_args, dataset_root, split_from_args
from utils.data.loader import make_loader
from utils.depth import trained_depth_norm
from utils.dihedral import TTA_VIEWS, DihedralTTA
from utils.distributed import cleanup, init_distributed
from utils.entrypoint import run_main
from utils.evaluation import ImageResult
from utils.grasp import WIDTH_SCALE, GraspRectangles
from utils.post_process import DECODING_VERSION
from utils.precision import Precision, agreed_precision, resolve_precision
from utils.scoring import evaluate


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--network",
        required=True,
        nargs="+",
        help="checkpoint file (.pt) written by training; several: each is scored on the same "
        "images and compared with the first (paired McNemar test and bootstrap interval)",
    )
    p.add_argument(
        "--weights",
        default="auto",
        choices=WEIGHTS,
        help="the trained weights (model), their moving average (ema, runs with --model-ema 1) "
        "or the ones the run validated to pick best.pt (auto)",
    )
    cli.add_data_args(p)
    # None = not given: resolve_data_args fills it from the checkpoint.
    p.set_defaults(**dict.fromkeys(cli.DATA_FLAGS))
    g = p.add_argument_group("evaluation")
    g.add_argument(
        "--part",
        default=None,
        choices=("test", "val", "train", "all"),
        help="which part to score (default: 'test' on the training dataset, else 'all')",
    )
    g.add_argument(
        "--iou-eval",
        action="store_true",
        help="score with the rectangle metric (always on when labels exist; kept for GG-CNN)",
    )
    g.add_argument(
        "--ensemble",
        action="store_true",
        help="score the --network checkpoints as one model, the mean of their maps (cos 2θ "
        "and sin 2θ as a vector), instead of each on its own",
    )
    g.add_argument("--n-grasps", type=cli.positive_int, default=1, help="top grasps per image")
    g.add_argument("--iou-threshold", type=float, default=0.25)
    g.add_argument(
        "--min-opening",
        type=cli.non_negative_float,
        default=0.0,
        metavar="PX",
        help="decode every grasp's opening as at least PX pixels of the network input "
        "(default 0: the openings as predicted, clamped at 0)",
    )
    g.add_argument("--batch-size", type=cli.positive_int, default=8)
    g.add_argument(
        "--tta",
        default="none",
        choices=tuple(TTA_VIEWS),
        help="test-time augmentation: average the maps over 4 quarter turns (rot4) or those "
        "and their mirror images (d8); costs one forward pass per view",
    )
    g.add_argument(
        "--jacquard-output",
        action="store_true",
        help="write grasps per image in Jacquard's x;y;theta;w;h format, source frame",
    )
    g.add_argument("--vis", action="store_true", help="write PNGs of grasps and maps")
    g.add_argument("--max-vis", type=int, default=16, help="at most this many --vis images")
    g.add_argument("--results-json", default=None, help="write summary + per-image results")
    g.add_argument("--outdir", default=None, help="output folder (default: beside checkpoint)")
    g = p.add_argument_group("inference on depth frames (--images)")
    g.add_argument(
        "--images",
        nargs="+",
        default=None,
        help="depth frames (.tiff/.exr/.npy metres, 16-bit .png millimetres) or folders of them",
    )
    g.add_argument(
        "--depth-scale", type=float, default=None,
        help="metres per stored depth unit (default: 1 for float files, 0.001 for 16-bit)",
    )  # fmt: skip
    g.add_argument(
        "--crop", default=None,
        help="what the network sees: center (largest centred square), full (whole frame), "
        "or a pixel box x0,y0,x1,y1",
    )  # fmt: skip
    g.add_argument(
        "--intrinsics", default=None,
        help="fx,fy,cx,cy in pixels, or a JSON file (fx, fy, cx, cy or K): grasps in metres too",
    )  # fmt: skip
    cli.add_runtime_args(p)
    args = p.parse_args(argv)
    for path in args.network:
        if not Path(path).is_file():
            p.error(f"--network {path}: checkpoint file not found")
    if args.images and len(args.network) > 1:
        p.error("--images runs one checkpoint; give a single --network")
    if args.ensemble and len(args.network) < 2:
        p.error("--ensemble averages two or more checkpoints; give them all after --network")
    from utils.predict import CameraIntrinsics, parse_crop

    given = [f for f, v in (("--crop", args.crop), ("--intrinsics", args.intrinsics),
                            ("--depth-scale", args.depth_scale)) if v is not None]  # fmt: skip
    if given and not args.images:
        p.error(f"{', '.join(given)}: only with --images (depth frames to predict on)")
    args.crop = args.crop or "center"
    try:
        parse_crop(args.crop)
        if args.intrinsics:
            CameraIntrinsics.parse(args.intrinsics)
    except ValueError as e:
        p.error(str(e))
    if args.depth_scale is not None and not (0 < args.depth_scale < math.inf):
        p.error(f"--depth-scale must be > 0, got {args.depth_scale}")
    return args


def _same_flag(key: str, given, stored) -> bool:
    """Equal split-flag values: paths however spelled, the synthetic size's None its default."""
    if key == "synthetic_scenes":
        from utils.data.synthetic import DEFAULT_N_SCENES

        return (given or DEFAULT_N_SCENES) == (stored or DEFAULT_N_SCENES)
    if key == "object_map" and given and stored:
        return Path(given).expanduser().resolve() == Path(stored).expanduser().resolve()
    return given == stored


def resolve_data_args(args: argparse.Namespace, trained: dict) -> argparse.Namespace:
    """Fill data flags that were not given from the training arguments stored in the checkpoint.

    "The training data" is decided on resolved folders, however the path is spelled. On it,
    the scored part defaults to the run's own test part, a split flag that differs from the
    run's is refused, and so is ``--part all`` (it would score training images). A synthetic
    ``--dataset-path`` given here must exist: a mistyped folder is an error, not a new set."""
    if (
        args.dataset_path is not None
        and (args.dataset or trained.get("dataset")) == "synthetic"
        and not Path(args.dataset_path).expanduser().is_dir()
    ):
        raise ValueError(
            f"--dataset-path {args.dataset_path}: no such folder; evaluation does not generate "
            "a synthetic set there (omit --dataset-path for the run's own data)"
        )
    trained_root = dataset_root(
        trained.get("dataset"), trained.get("dataset_path"), trained.get("synthetic_scenes")
    )
    scenes = (
        args.synthetic_scenes
        if args.synthetic_scenes is not None
        else trained.get("synthetic_scenes")
    )
    same_data = args.dataset in (None, trained.get("dataset")) and (
        args.dataset_path is None
        or dataset_root(trained.get("dataset"), args.dataset_path, scenes) == trained_root
    )
    args._same_data = same_data
    defaults = cli.data_defaults()
    if same_data:
        for k in SPLIT_FLAGS:
            given = getattr(args, k)
            if given is not None and not _same_flag(k, given, trained.get(k, defaults[k])):
                raise ValueError(
                    f"--{k.replace('_', '-')} {given}: the checkpoint was trained on this "
                    f"dataset with {trained.get(k)}; another split could put its training "
                    "images into the scored part"
                )
        if args.part == "all":
            raise ValueError(
                "--part all: this is the checkpoint's training dataset, so that would score its "
                "training images; use --part test (held out), or --part train knowingly"
            )
    for k in cli.DATA_FLAGS:
        if getattr(args, k) is None:
            # The training run's data flags; a different dataset is scored whole (--part all).
            setattr(args, k, None if (k == "dataset_path" and not same_data) else trained.get(k))
    if args.depth_norm is None:  # a checkpoint from before --depth-norm
        args.depth_norm = cli.LEGACY_DEFAULTS["depth_norm"]
    # Neither given nor stored (an older checkpoint): the flags' own defaults.
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.part is None:
        args.part = "test" if same_data else "all"
    return args


def training_objects(trained: dict) -> set[str] | None:
    """Object ids the checkpoint's run saw: its training and validation parts, and any
    ``--unlabeled-path`` images (None when its training data is not on this machine; nothing is
    generated for the check)."""
    root = dataset_root(
        trained.get("dataset"), trained.get("dataset_path"), trained.get("synthetic_scenes")
    )
    if root is None or not root.is_dir() or trained.get("dataset") == "benchmark":
        return None
    ns = argparse.Namespace(**{**cli.data_defaults(), **trained})
    ns.cache_dir = None
    try:
        ds = dataset_from_args(ns, augment=False, replace=False)
        split = split_from_args(ns, ds)
    except (ValueError, OSError):
        return None
    seen = {ds.object_id(i) for i in split["train"] + split["val"]}
    if trained.get("unlabeled_path"):
        try:
            from utils.data.unlabelled import ImageFolder

            extra = ImageFolder(trained["unlabeled_path"], depth_type=ns.depth_type)
            seen |= {extra.object_id(i) for i in range(len(extra))}
        except (ValueError, OSError):
            pass
    return seen


def check_no_training_objects(args, trained: dict, dataset, indices: list[int]) -> None:
    """Refuse to score images of objects the checkpoint trained or was chosen on."""
    if args.part in ("train", "val") or args.dataset == "benchmark":
        return  # asked for knowingly / disjoint by construction
    if getattr(args, "_same_data", False) and args.part == "test":
        return  # the run's own test part: its split keeps it apart (image-wise splits too)
    if getattr(dataset, "has_object_map", True) is False:
        print(
            f"warning: {dataset.root} has no object map: cannot check that its objects are "
            "not the checkpoint's training objects",
            file=sys.stderr,
        )
        return
    seen = training_objects(trained)
    if seen is None:
        print(
            "warning: the checkpoint's training data is not on this machine: cannot check that "
            "the scored images are not its training images",
            file=sys.stderr,
        )
        return
    leaked = [i for i in indices if dataset.object_id(i) in seen]
    if leaked:
        raise ValueError(
            f"--part {args.part} of {getattr(dataset, 'root', args.dataset)}: {len(leaked)} of "
            f"{len(indices)} images show objects the checkpoint's run trained on, chose its "
            f"checkpoint on, or saw unlabelled (e.g. {dataset.sample_id(leaked[0])}); score "
            "another dataset, or its own test part"
        )


def write_jacquard_output(
    folder: Path, dataset, index: int, grasps: list, source_matrix: np.ndarray
) -> Path:
    """Grasps (output frame) -> ``<folder>/<sample id>_grasps.txt`` in the source frame."""
    rects = GraspRectangles([g.as_gr for g in grasps]).affine(source_matrix)
    path = folder / f"{dataset.sample_id(index)}_grasps.txt"
    rects.save_jacquard(path)
    return path


def vis_image(
    depth: np.ndarray, rgb: np.ndarray | None, gt, result: ImageResult, maps: tuple
) -> np.ndarray:
    """One row: depth (and RGB) with ground-truth grasps (blue) and predicted grasps (green,
    jaws red), then the predicted quality, angle and opening maps."""
    from utils.visualisation import depth_to_rgb, draw_grasp_rectangles, gray_map, image_grid

    q, ang, wid = maps
    panels = []
    for base in [depth_to_rgb(depth)] + ([rgb] if rgb is not None else []):
        img = base.copy()
        if gt is not None and len(gt):
            # Ground truth all blue; predictions on top, green with red jaws.
            img = draw_grasp_rectangles(
                img, GraspRectangles(gt), color=(60, 120, 255), jaw_color=None
            )
        img = draw_grasp_rectangles(
            img, GraspRectangles([g.as_gr for g in result.grasps]), color=(0, 220, 0), thickness=2
        )
        panels.append(img)

    panels += [
        gray_map(q, 0, 1),
        gray_map(ang, -math.pi / 2, math.pi / 2),
        gray_map(wid, 0, WIDTH_SCALE),
    ]
    return image_grid(panels, len(panels))


def print_table(rows: list[tuple[str, str]]) -> None:
    print("| " + " | ".join(k for k, _ in rows) + " |")
    print("|" + "|".join("---" for _ in rows) + "|")
    print("| " + " | ".join(v for _, v in rows) + " |")


def evaluate_dataset(
    args: argparse.Namespace, model, ckpt: dict, dist, precision, members: list[dict] | None = None
) -> dict:
    """Score ``model`` (checkpoint ``ckpt``; an ensemble's other checkpoints in ``members``,
    each checked for training objects among the scored images too) on the flags' dataset, at
    ``precision`` as :func:`tuned_precision` settles it once the data has been checked (a bad
    dataset flag fails before any timing)."""
    args = resolve_data_args(args, ckpt.get("args", {}))
    channels = cli.input_channels(args)
    if channels != model.input_channels:
        raise ValueError(
            f"--use-depth {int(args.use_depth)} --use-rgb {int(args.use_rgb)} gives {channels} "
            f"input channels, but the checkpoint's network takes {model.input_channels}"
        )
    dataset = dataset_from_args(args, augment=False, replace=False)
    if args.part == "all":
        indices = list(range(len(dataset)))
    else:
        indices = split_from_args(args, dataset)[args.part]
    if not indices:
        raise ValueError(f"--part {args.part}: no images in that part of the dataset")
    for trained in [ckpt, *(members or [])]:
        check_no_training_objects(args, trained.get("args", {}), dataset, indices)
    loader = make_loader(
        dataset,
        indices,
        args.batch_size,
        shuffle=False,
        num_workers=args.num_workers,
        seed=0,
        rank=dist.rank,
        world_size=dist.world_size,
    )
    precision = tuned_precision(args, dist, precision, model, ckpt)
    outdir = Path(args.outdir) if args.outdir else Path(args.network).resolve().parent / "eval"
    jo_dir, vis_dir = outdir / "jacquard_output", outdir / "vis"
    if args.jacquard_output:
        jo_dir.mkdir(parents=True, exist_ok=True)
    if args.vis:
        vis_dir.mkdir(parents=True, exist_ok=True)
    n_vis = [0]

    def on_batch(batch, raw, maps, results):
        for i, res in enumerate(results):
            idx = int(batch["index"][i])
            if args.jacquard_output:
                write_jacquard_output(
                    jo_dir, dataset, idx, res.grasps, dataset.output_to_source_matrix(idx)
                )
            if args.vis and n_vis[0] < args.max_vis:
                from utils.visualisation import save_png

                depth = dataset.get_depth(idx) if args.use_depth else batch["x"][i, 0].numpy()
                rgb = dataset.get_rgb(idx) if args.use_rgb else None
                row = vis_image(depth, rgb, batch["gt"][i], res, tuple(m[i] for m in maps))
                save_png(vis_dir / f"{dataset.sample_id(idx)}.png", row)
                n_vis[0] += 1

    out = evaluate(
        model,
        loader,
        device=dist.device,
        precision=precision,
        n_grasps=args.n_grasps,
        iou_threshold=args.iou_threshold,
        min_opening=args.min_opening,
        sample_id=dataset.sample_id,
        on_batch=on_batch,
        desc="eval",
    )
    summary = {
        **measured(args, ckpt, dataset),
        "tta": args.tta,
        "decoding": DECODING_VERSION,
        "min_opening": args.min_opening,
        "precision": precision.describe(),
        **out.results.summary(),
        "network_ms_per_image": out.network_ms,
        "post_ms_per_image": out.post_ms,
    }
    summary["outcomes"] = out.results.outcome_counts()
    summary["per_image"] = {
        "ids": out.results.ids,
        "successes": out.results.successes,
        "outcomes": out.results.outcomes,
    }
    if dist.is_main:
        print(
            f"{ckpt['network']['name']}"
            + (f" ensemble of {1 + len(members)}" if members else "")
            + f" ({summary['checkpoint_kind']}, {summary['weights']}) on "
            f"{summary['dataset']} ({args.part} part, {summary['split']}; {args.input_size}px, "
            f"{dist.device}, {precision.describe()}"
            + ("" if args.tta == "none" else f", {args.tta} test-time augmentation")
            + ")"
        )
        print_table(
            [
                ("images", str(len(out.results))),
                ("success rate [95% CI]", out.results.describe().rsplit(" of ", 1)[0]),
                ("mean best IoU", f"{out.results.mean_best_iou:.3f}"),
                ("network ms/image", f"{out.network_ms:.1f}"),
                ("post-processing ms/image", f"{out.post_ms:.1f}"),
            ]
        )
        misses = {k: n for k, n in summary["outcomes"].items() if k != "hit"}
        if misses:
            print("misses: " + ", ".join(f"{n} {k}" for k, n in misses.items()))
        if (hint := out.results.no_grasp_hint()) is not None:
            print(f"note: {hint}")
        if args.jacquard_output:
            print(f"Jacquard-format grasps: {jo_dir}")
        if args.vis:
            print(f"pictures: {vis_dir}")
    return summary


def measured(args: argparse.Namespace, ckpt: dict, dataset) -> dict:
    """What was scored: dataset (and folder), split, part, checkpoint and which weights."""
    from utils.data.benchmark import benchmark_name, is_benchmark_folder
    from utils.data.build import describe_split

    kind = ckpt.get("kind", "best" if Path(args.network).name == "best.pt" else "last")
    kind_text = {
        "best": f"best.pt: epoch {ckpt.get('epoch')}, chosen on the validation part",
        "last": f"last.pt: epoch {ckpt.get('epoch')}",
        "snapshot": f"epoch {ckpt.get('epoch')} snapshot",
    }.get(kind, kind)
    root = getattr(dataset, "root", None)
    # A held-out set keeps its name when scored through its on-disk format (--dataset jacquard).
    held_out = args.dataset == "benchmark" or (root is not None and is_benchmark_folder(root))
    name = benchmark_name(len(dataset), root) if held_out else args.dataset
    return {
        "checkpoint": str(Path(args.network).resolve()),
        "checkpoint_kind": kind_text,
        "weights": {"model": "model", "ema": "model_ema"}.get(
            args.weights, ckpt.get("eval_weights", "model")
        ),
        "dataset": name,
        "dataset_root": str(getattr(dataset, "root", "")),
        "split": "whole set" if args.part == "all" else describe_split(args),
        "part": args.part,
    }


def infer_images(args: argparse.Namespace, predictor, trained: dict, dist) -> list[Path]:
    """Top grasps of depth frames (``--images``) through the predict API
    (:class:`utils.predict.GraspPredictor`): ``<id>_grasps.txt`` (Jacquard format) and
    ``<id>_grasps.json`` (pixels of the source frame, quality, and metres in the camera frame
    with ``--intrinsics``) each; ``--vis`` draws them on the frame. ``trained``: the
    checkpoint's stored arguments ({} for an ONNX file)."""
    from utils.image import load_depth_frame, load_rgb
    from utils.predict import CameraIntrinsics, find_depth_frames

    if not dist.is_main:  # one process writes the files
        return []
    camera = CameraIntrinsics.parse(args.intrinsics) if args.intrinsics else None
    frames = find_depth_frames(args.images, args.depth_type or trained.get("depth_type", "perfect"))
    outdir = Path(args.outdir) if args.outdir else Path(args.network).resolve().parent / "infer"
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for f in frames:
        depth = load_depth_frame(f.depth, args.depth_scale)
        rgb = load_rgb(f.rgb) if f.rgb is not None and predictor.input_channels != 1 else None
        try:
            grasps = predictor.predict(depth, rgb, camera, n_grasps=args.n_grasps)
        except ValueError as e:
            raise ValueError(f"{f.depth}: {e}") from None
        out = outdir / f"{f.frame_id}_grasps.txt"
        GraspRectangles([g.rectangle for g in grasps]).save_jacquard(out)
        record = {
            "depth": str(f.depth), "frame": list(depth.shape), "crop": args.crop,
            "input_size": predictor.input_size, "intrinsics": camera and vars(camera),
            "grasps": [g.to_dict() for g in grasps], "timing_ms": vars(predictor.timing),
        }  # fmt: skip
        atomic_write_json(out.with_suffix(".json"), record, indent=1)
        written.append(out)
        if args.vis:
            from utils.visualisation import draw_frame_grasps, save_png

            save_png(outdir / f"{f.frame_id}.png", draw_frame_grasps(depth, grasps))
        best = grasps[0] if grasps else None
        where = (
            "no grasp above the quality threshold" if best is None
            else f"best at (row {best.center[0]:.0f}, col {best.center[1]:.0f}), quality "
            f"{best.quality:.2f}" + (f", camera xyz {tuple(round(v, 3) for v in best.camera.position)} m"
                                     if best.camera else "")
        )  # fmt: skip
        print(f"{f.depth}: {len(grasps)} grasp(s), {where} -> {out}")
    return written


def compare(summaries: list[dict]) -> list[dict]:
    """Each model against the first, on the same images: difference, 95% paired bootstrap
    interval, exact McNemar test."""
    from utils.stats import mcnemar_test, paired_bootstrap

    base = summaries[0]["per_image"]
    order = {sid: i for i, sid in enumerate(base["ids"])}
    rows = []
    for s in summaries[1:]:
        other = s["per_image"]
        if set(other["ids"]) != set(order):
            raise ValueError(
                f"{s['checkpoint']}: scored other images than {summaries[0]['checkpoint']} "
                "(different dataset or split): a paired comparison needs the same images"
            )
        aligned = [False] * len(order)
        for sid, ok in zip(other["ids"], other["successes"], strict=True):
            aligned[order[sid]] = ok
        diff, lo, hi = paired_bootstrap(base["successes"], aligned)
        rows.append(
            {"checkpoint": s["checkpoint"], "baseline": summaries[0]["checkpoint"], "diff": diff,
             "diff_ci95": [lo, hi], **mcnemar_test(aligned, base["successes"])}
        )  # fmt: skip
    return rows


def print_comparison(summaries: list[dict], rows: list[dict]) -> None:
    from utils.stats import format_rate

    print("\n| checkpoint | success [95% CI] | difference vs first [95% CI] | McNemar p |")
    print("|---|---|---|---:|")
    first = summaries[0]
    print(f"| {first['checkpoint']} | {format_rate(first['correct'], first['images'])} | - | - |")
    for s, r in zip(summaries[1:], rows, strict=True):
        lo, hi = r["diff_ci95"]
        print(
            f"| {s['checkpoint']} | {format_rate(s['correct'], s['images'])} | "
            f"{100 * r['diff']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] points "
            f"({r['a_only']} images won, {r['b_only']} lost) | {r['p']:.3g} |"
        )


def load_for_eval(path: str, args: argparse.Namespace, dist, precision):
    model, ckpt = load_model(path, weights=args.weights)
    model = model.to(dist.device).eval()
    if args.tta != "none":
        model = DihedralTTA(model, TTA_VIEWS[args.tta])
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, ckpt


def tuned_precision(
    args: argparse.Namespace, dist, precision: Precision, model: torch.nn.Module, ckpt: dict
) -> Precision:
    """``--amp auto --channels-last auto`` on a CPU with bf16 instructions: the faster of bf16
    and fp32 (both channels_last, as ``precision`` already is there) for this network's
    forward pass at the evaluation batch, timed on a copy
    (:func:`utils.precision.choose_precision`); every rank takes rank 0's choice."""
    size = int(args.input_size or ckpt.get("args", {}).get("input_size", 224))
    shape = (args.batch_size, model.input_channels, size, size)
    chosen = agreed_precision(
        args.amp, args.channels_last, dist.device, model, shape, train=False, is_main=dist.is_main
    )
    return precision if chosen is None else chosen


def load_ensemble(args: argparse.Namespace, dist, precision) -> tuple[MapEnsemble, list[dict]]:
    """The ``--network`` checkpoints as one model (:class:`models.MapEnsemble`) and their
    checkpoints; refuses members trained on other inputs than the first."""
    loaded = [load_for_eval(path, args, dist, precision) for path in args.network]
    first = loaded[0][1].get("args", {})
    for path, (_, ckpt) in zip(args.network[1:], loaded[1:], strict=True):
        theirs = ckpt.get("args", {})
        for flag, a, b in [
            *((k, theirs.get(k), first.get(k)) for k in ("use_depth", "use_rgb", "input_size")),
            ("depth_norm", trained_depth_norm(theirs), trained_depth_norm(first)),
        ]:
            if a != b:
                raise ValueError(
                    f"--ensemble: {path} was trained with --{flag.replace('_', '-')} {a}, "
                    f"{args.network[0]} with {b}: an ensemble's members must see the same input"
                )
    return MapEnsemble([m for m, _ in loaded]), [c for _, c in loaded]


def write_json(path: str | Path, data: dict) -> None:
    atomic_write_json(path, data, indent=1)


def main(args: argparse.Namespace):
    dist = init_distributed(args.device)
    args.num_workers, args.threads = cli.resolve_workers_threads(
        args.num_workers, args.threads, dist.world_size
    )
    torch.set_num_threads(args.threads)
    precision = resolve_precision(args.amp, args.channels_last, dist.device)
    finished = False
    try:
        if args.images:
            from utils.predict import GraspPredictor

            path = args.network[0]
            if path.endswith(".onnx"):
                if args.tta != "none":
                    raise ValueError("--tta runs PyTorch networks only, not an .onnx file")
                predictor = GraspPredictor.from_onnx(path, args.crop, args.input_size, args.threads)
                trained: dict = {}
            else:
                model, ckpt = load_for_eval(path, args, dist, precision)
                precision = tuned_precision(args, dist, precision, model, ckpt)
                trained = ckpt.get("args", {})
                predictor = GraspPredictor(
                    model, args.input_size or trained.get("input_size", 224),
                    model.input_channels, args.crop, dist.device, precision, WIDTH_SCALE,
                    depth_norm=trained_depth_norm(trained),
                )  # fmt: skip
            predictor.min_opening = args.min_opening
            one = argparse.Namespace(**{**vars(args), "network": path})
            result = infer_images(one, predictor, trained, dist)
            finished = True
            return result
        summaries = []
        if args.ensemble:  # one model, scored once
            model, ckpts = load_ensemble(args, dist, precision)
            one = argparse.Namespace(**{**vars(args), "network": args.network[0]})
            summaries.append(evaluate_dataset(one, model, ckpts[0], dist, precision, ckpts[1:]))
            summaries[0]["ensemble"] = [str(Path(p).resolve()) for p in args.network]
        else:
            for path in args.network:
                one = argparse.Namespace(**{**vars(args), "network": path})
                model, ckpt = load_for_eval(path, one, dist, precision)
                summaries.append(evaluate_dataset(one, model, ckpt, dist, precision))
        if len(summaries) == 1:
            result = summaries[0]
        else:
            result = {"models": summaries, "comparisons": compare(summaries)}
            if dist.is_main:
                print_comparison(summaries, result["comparisons"])
        if args.results_json and dist.is_main:
            write_json(args.results_json, result)
        finished = True
        return result
    finally:
        cleanup(finished)


if __name__ == "__main__":
    run_main(main, parse_args)
