"""Export a trained grasp network to ONNX, checked against PyTorch.

    python export.py --network weights/ggcnn2_distilled.pt --onnx ggcnn2.onnx
    python eval_net.py --network ggcnn2.onnx --images path/to/depth_frames   # onnxruntime

The graph takes the network input (N x C x S x S float32, prepared by the predict API,
:mod:`utils.predict`) and returns the four maps; batch is dynamic, and so are height and
width where the network allows it (checked here). Needs the optional packages of
``requirements-deploy.txt`` (onnx, onnxruntime); see :mod:`utils.export`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from utils import cli
from utils.checkpoint import WEIGHTS, load_model
from utils.depth import trained_depth_norm
from utils.entrypoint import run_main
from utils.export import DEFAULT_OPSET, export_onnx


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--network", required=True, help="checkpoint (.pt) written by training")
    p.add_argument("--onnx", required=True, help="the ONNX file to write")
    p.add_argument("--weights", default="auto", choices=WEIGHTS, help="model or EMA weights")
    p.add_argument("--input-size", type=cli.positive_int, default=None,
                   help="export size in pixels (default: the training input size)")  # fmt: skip
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset")
    args = p.parse_args(argv)
    if not Path(args.network).is_file():
        p.error(f"--network {args.network}: checkpoint file not found")
    return args


def main(args: argparse.Namespace) -> dict:
    model, ckpt = load_model(args.network, weights=args.weights)
    size = args.input_size or int(ckpt.get("args", {}).get("input_size", 224))
    info = export_onnx(
        model, args.onnx, size, args.opset,
        metadata={"network": model.network_name, "source": Path(args.network).name,
                  "depth_norm": trained_depth_norm(ckpt.get("args", {}))},
    )  # fmt: skip
    sizes = "any height and width" if info["dynamic_size"] else f"{size} x {size} px only"
    print(
        f"{args.onnx}: {model.network_name}, input {model.input_channels} x {sizes}, dynamic "
        f"batch; agrees with PyTorch within {info['max_abs_diff']:.1e} on {info['checked']}"
    )
    return info


if __name__ == "__main__":
    run_main(main, parse_args)
