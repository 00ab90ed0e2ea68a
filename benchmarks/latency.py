"""End-to-end latency of the predict API: a 480 x 640 depth frame in, the best grasp in metres
out, batch 1, split into preprocessing, network and post-processing.

    python benchmarks/latency.py                        # every network and backend, this CPU
    python benchmarks/latency.py --networks ggcnn2 --sizes 300 --repeats 50
    python benchmarks/latency.py --weights weights/ggcnn2_distilled.pt

Backends: ``eager`` (PyTorch fp32), ``fp32 + channels_last`` (what ``GraspPredictor.
from_checkpoint`` runs on a CPU without bf16 units), ``fast`` (the precision and memory
format ``--amp auto --channels-last auto`` pick on this machine) and ``onnxruntime`` (an export made here by
:func:`utils.export.export_onnx`; skipped without the optional packages). The frame is a real
Jacquard sample view cut to 480 x 640 when ``../shared/data`` is there (else a synthetic
table scene), with 2% of its pixels missing in blobs, as a stereo camera gives them. Figures
are medians over ``--repeats`` calls after ``--warmup`` calls; networks have random weights
unless ``--weights`` (speed does not depend on them, except through the number of peaks).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models import get_network  # noqa: E402
from utils.precision import resolve_precision  # noqa: E402
from utils.predict import CameraIntrinsics, GraspPredictor  # noqa: E402

NETWORKS = {
    "ggcnn": ("ggcnn", {}),
    "ggcnn2": ("ggcnn2", {}),
    "pspnet-r18": ("pspnet", {"backbone": "resnet18"}),
}
CAMERA = CameraIntrinsics(fx=615.0, fy=615.0, cx=319.5, cy=239.5)  # a RealSense D435 at 640 px


def test_frame(seed: int = 0) -> np.ndarray:
    """480 x 640 metres, NaN where missing."""
    rng = np.random.default_rng(seed)
    samples = sorted(
        (REPO.parent / "shared" / "data" / "jacquard_samples").glob("*/*_perfect_depth.tiff")
    )
    if samples:
        import cv2

        from utils.image import load_depth_frame

        d = cv2.resize(load_depth_frame(samples[0]), (640, 640), interpolation=cv2.INTER_AREA)
        depth = d[80:560].copy()
    else:
        depth = np.full((480, 640), 0.70, np.float32)
        depth[200:280, 260:420] = 0.65
    holes = np.zeros_like(depth, dtype=bool)
    for r, c in rng.integers(0, [480, 640], size=(60, 2)):
        rad = rng.integers(2, 8)
        holes[max(0, r - rad) : r + rad, max(0, c - rad) : c + rad] = True
    depth[holes] = np.nan
    return depth


def measure(predictor: GraspPredictor, frame: np.ndarray, warmup: int, repeats: int) -> dict:
    stages = {"preprocess": [], "network": [], "postprocess": [], "total": []}
    for i in range(warmup + repeats):
        predictor.predict(frame, intrinsics=CAMERA)
        if i >= warmup:
            t = predictor.timing
            for k in ("preprocess", "network", "postprocess"):
                stages[k].append(getattr(t, k))
            stages["total"].append(t.total)
    return {k: statistics.median(v) for k, v in stages.items()}


def backends(name: str, size: int, weights: str | None, tmp: Path, threads: int | None):
    """(backend label, predictor) pairs for one network and input size."""
    if weights:
        from utils.checkpoint import load_model

        model, _ = load_model(weights)
    else:
        torch.manual_seed(0)
        net, kw = NETWORKS[name]
        model = get_network(net, **kw)
    model.eval()
    cpu = torch.device("cpu")
    yield "eager fp32", GraspPredictor(model, size, model.input_channels, precision=None)
    # What a CPU without bf16 units gets from GraspPredictor.from_checkpoint.
    yield "fp32 + channels_last", GraspPredictor(
        copy.deepcopy(model), size, model.input_channels,
        precision=resolve_precision("off", "on", cpu),
    )  # fmt: skip
    fast = resolve_precision("auto", "auto", cpu)
    # A copy: the predictor converts its model to channels_last in place.
    yield (
        f"fast ({fast.describe()})",
        GraspPredictor(copy.deepcopy(model), size, model.input_channels, precision=fast),
    )
    try:
        from utils.export import export_onnx

        path = tmp / f"{name}_{size}.onnx"
        export_onnx(model, path, size)
        yield "onnxruntime", GraspPredictor.from_onnx(path, input_size=size, threads=threads)
    except (ValueError, ImportError) as e:
        print(f"{name} {size}px onnxruntime: skipped ({e})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS),
                   help="random-weight networks (ignored with --weights)")  # fmt: skip
    p.add_argument("--sizes", nargs="+", type=int, default=[224, 300])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--weights", default=None, help="a checkpoint instead of random weights")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    frame = test_frame()
    if args.weights:  # one checkpoint: its own network, whatever --networks says
        from utils.checkpoint import load_checkpoint

        args.networks = [load_checkpoint(args.weights)["network"]["name"]]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in args.networks:
            for size in args.sizes:
                for label, predictor in backends(name, size, args.weights, Path(d), args.threads):
                    rows.append((name, size, label, measure(predictor, frame, args.warmup,
                                                            args.repeats)))  # fmt: skip
    print(
        f"\n480 x 640 depth frame ({int(np.isnan(frame).sum())} missing pixels) -> best grasp "
        f"in metres; median of {args.repeats} calls, batch 1, {torch.get_num_threads()} threads"
    )
    print("| network | input | backend | preprocess ms | network ms | post-process ms | total ms |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for name, size, label, t in rows:
        print(
            f"| {name} | {size} | {label} | {t['preprocess']:.1f} | {t['network']:.1f} | "
            f"{t['postprocess']:.1f} | {t['total']:.1f} |"
        )


if __name__ == "__main__":
    main()
