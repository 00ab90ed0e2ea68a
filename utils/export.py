"""ONNX export of a grasp network and an onnxruntime runner for the predict API.

``onnx`` and ``onnxruntime`` are optional (``pip install -r requirements-deploy.txt``); this
module imports them only when called. The exported graph takes ``input`` (N x C x H x W
float32, the normalised network input of :class:`utils.predict.GraspPredictor`) and returns
``maps`` (N x 4 x H x W: quality, cos 2θ, sin 2θ, opening / width scale). Batch is dynamic;
height and width are dynamic where the network's graph allows it (checked at export), else
fixed at the export size. The file's metadata records the network, its input size and
channels, so a predictor can be built from the file alone.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from utils.atomic import atomic_open

#: The opset written: supported by onnxruntime 1.16 and later.
DEFAULT_OPSET = 17


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise ValueError(
            f"ONNX needs the optional '{module}' package: pip install -r requirements-deploy.txt"
        ) from None


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_size: int,
    opset: int = DEFAULT_OPSET,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``model`` (eval mode, fp32) to ``path`` and check it against PyTorch.

    Returns {"dynamic_size": bool, "max_abs_diff": float, "checked": [(batch, size), ...]}.
    Outputs must agree within 1e-4 (absolute, maps are O(1)); otherwise a ValueError.
    """
    onnx = _require("onnx")
    _require("onnxruntime")
    # A copy: the caller's model keeps its precision, device and memory format.
    model = copy.deepcopy(model).float().eval().to("cpu")
    model = model.to(memory_format=torch.contiguous_format)
    c = int(model.input_channels)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    x = torch.randn(1, c, input_size, input_size)
    dims = {0: "batch", 2: "height", 3: "width"}
    # Dynamic height and width first (the TorchScript exporter: GG-CNN, GG-CNN2). PSPNet's
    # adaptive pooling cannot export that way (sizes not divisible by its bins); the dynamo
    # exporter (onnxscript) decomposes it at a fixed size. A graph that bakes the size in
    # silently is caught by the check at another size.
    try:
        ok = _try_export(model, x, tmp, opset, dims)
        diff = _agrees(model, tmp, 2, input_size + 32) if ok else None
        dynamic = diff is not None and diff <= 1e-4
        if not dynamic and not (
            _try_export(model, x, tmp, opset, {0: "batch"}, dynamo=True)
            or _try_export(model, x, tmp, opset, {0: "batch"})
        ):
            raise ValueError(
                f"{path}: {model.network_name} cannot be exported to ONNX opset {opset} (the dynamo "
                "exporter needs onnxscript: pip install -r requirements-deploy.txt)"
            )
        other = input_size + 32
        checks = [(1, input_size), (2, input_size)] + ([(2, other)] if dynamic else [])
        worst = 0.0
        for batch, size in checks:
            diff = _agrees(model, tmp, batch, size)
            if diff is None or diff > 1e-4:
                raise ValueError(
                    f"{path}: the ONNX graph disagrees with PyTorch at batch {batch}, {size} px "
                    f"(max abs difference {diff})"
                )
            worst = max(worst, diff)
        proto = onnx.load(str(tmp))
        meta = {"input_size": input_size, "input_channels": c, "dynamic_size": dynamic,
                **(metadata or {})}  # fmt: skip
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = str(k), str(v)
        # Written through utils.atomic (flushed, fsynced, renamed): a crash leaves the old file.
        with atomic_open(path, "wb") as f:
            f.write(proto.SerializeToString())
    finally:
        tmp.unlink(missing_ok=True)  # the exporter's own scratch file, on success or error
    return {"dynamic_size": dynamic, "max_abs_diff": worst, "checked": checks}


def _try_export(
    model: nn.Module, x: torch.Tensor, path: Path, opset: int, dims: dict, dynamo: bool = False
) -> bool:
    """Export with ``dims`` dynamic; False if the exporter refuses (its dump silenced)."""
    import contextlib
    import io

    kwargs: dict[str, Any] = (
        {
            "dynamic_shapes": ({k: torch.export.Dim(v) for k, v in dims.items()},),
            "external_data": False,
        }  # fmt: skip
        if dynamo
        else {"dynamic_axes": {"input": dims, "maps": dims}}
    )
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".data").unlink(missing_ok=True)
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), \
                contextlib.redirect_stderr(sink):  # fmt: skip
            warnings.simplefilter("ignore")  # tracer warnings about shape checks
            torch.onnx.export(
                model, (x,), str(path), dynamo=dynamo, opset_version=max(opset, 18) if dynamo
                else opset, input_names=["input"], output_names=["maps"], **kwargs,
            )  # fmt: skip
    except Exception:  # noqa: BLE001 -- any exporter failure: try a more static graph
        return False
    return path.is_file()


def _agrees(model: nn.Module, path: Path, batch: int, size: int) -> float | None:
    """Max |ONNX - PyTorch| on a random input, or None if onnxruntime refuses that shape."""
    ort = _require("onnxruntime")
    x = torch.randn(
        batch, int(model.input_channels), size, size, generator=torch.Generator().manual_seed(0)
    )
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = session.run(None, {"input": x.numpy()})[0]
    except Exception:  # noqa: BLE001 -- a fixed-size graph refuses other sizes
        return None
    with torch.no_grad():
        ref = model(x).numpy()
    if out.shape != ref.shape:
        return None
    return float(np.abs(out - ref).max())


class OnnxNetwork:
    """An exported network run by onnxruntime: called like a network on an N x C x S x S
    tensor (or array), returns the N x 4 x S x S maps as numpy. ``metadata``: what
    :func:`export_onnx` recorded (input_size, input_channels, network, ...)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        ort = _require("onnxruntime")
        path = Path(path)
        self.path = path
        if not path.is_file():
            raise ValueError(f"{path}: ONNX file not found")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # noqa: BLE001 -- any load failure is a bad file
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{path}: not a readable ONNX file ({first})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        self.metadata = dict(props)
        self.input_size = int(props.get("input_size", 0)) or None
        self.input_channels = int(props.get("input_channels", 1))

    def __call__(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        arr = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        try:
            return self.session.run(None, {"input": arr.astype(np.float32, copy=False)})[0]
        except Exception as e:  # noqa: BLE001 -- onnxruntime's errors are not ValueErrors
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(
                f"{self.path}: onnxruntime refused an input of shape {tuple(arr.shape)} "
                f"(exported for {self.input_channels} channel(s), {self.input_size} px; {first})"
            ) from None
