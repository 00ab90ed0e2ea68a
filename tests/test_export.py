"""ONNX export (export.py, utils/export.py) and the predict API on onnxruntime. Skipped
without the optional packages of requirements-deploy.txt."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import NearIsGood, one_line_error, run_script

from models import get_network
from utils.checkpoint import make_checkpoint
from utils.grasp import angle_difference
from utils.predict import GraspPredictor

pytest.importorskip("onnx", reason="optional: pip install -r requirements-deploy.txt")
pytest.importorskip("onnxruntime", reason="optional: pip install -r requirements-deploy.txt")

from utils.export import OnnxNetwork, export_onnx  # noqa: E402

S = 64


def scene() -> np.ndarray:
    d = np.full((120, 160), 0.7, np.float32)
    d[40:70, 60:110] = 0.65
    d[5:9, 5:9] = np.nan
    return d


def test_ggcnn2_exports_with_dynamic_size_like_torch(tmp_path):
    torch.manual_seed(0)
    model = get_network("ggcnn2").eval()
    info = export_onnx(model, tmp_path / "g.onnx", S)
    assert info["dynamic_size"] and info["max_abs_diff"] < 1e-4
    net = OnnxNetwork(tmp_path / "g.onnx")
    assert net.input_size == S and net.input_channels == 1
    x = torch.randn(3, 1, 80, 80)
    with torch.no_grad():
        assert np.allclose(net(x), model(x).numpy(), atol=1e-4)
    assert next(model.parameters()).dtype == torch.float32  # the caller's model untouched


def test_onnx_predictor_gives_the_torch_predictors_grasps(tmp_path):
    model = NearIsGood()  # reads its input, so the scene decides the grasps
    export_onnx(model, tmp_path / "n.onnx", S)
    a = GraspPredictor(model, S).predict(scene(), n_grasps=3)
    b = GraspPredictor.from_onnx(tmp_path / "n.onnx").predict(scene(), n_grasps=3)
    assert a and len(a) == len(b)
    for ga, gb in zip(a, b, strict=True):
        assert np.allclose(ga.center, gb.center, atol=1e-3)
        assert angle_difference(ga.angle, gb.angle) < 1e-3 and abs(ga.quality - gb.quality) < 1e-4


def test_pspnet_exports_at_a_fixed_size():
    pytest.importorskip("onnxscript", reason="PSPNet's adaptive pooling needs the dynamo exporter")
    import tempfile
    from pathlib import Path

    torch.manual_seed(0)
    model = get_network("pspnet", backbone="resnet18", output_stride=32).eval()
    with tempfile.TemporaryDirectory() as d:
        info = export_onnx(model, Path(d) / "p.onnx", S)
        assert info["max_abs_diff"] < 1e-4 and (1, S) in info["checked"]
        assert sorted(p.name for p in Path(d).iterdir()) == ["p.onnx"]  # no stray data files
        assert np.asarray(OnnxNetwork(Path(d) / "p.onnx")(torch.randn(2, 1, S, S))).shape == (
            2,
            4,
            S,
            S,
        )


def test_export_script_and_bad_onnx_files(tmp_path):
    ckpt = tmp_path / "net.pt"
    torch.save(make_checkpoint(get_network("ggcnn2"), epoch=0, args={"input_size": S}), ckpt)
    res = run_script("export.py", "--network", str(ckpt), "--onnx", str(tmp_path / "n.onnx"))
    assert res.returncode == 0 and "any height and width" in res.stdout, res.stderr[-2000:]
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    frame = tmp_path / "f.npy"
    np.save(frame, scene())
    one_line_error(
        run_script("eval_net.py", "--network", str(junk), "--images", str(frame)),
        "junk.onnx: not a readable ONNX file",
    )
    one_line_error(run_script("export.py", "--network", str(junk), "--onnx", "x.onnx"),
                   "not a readable checkpoint")  # fmt: skip
