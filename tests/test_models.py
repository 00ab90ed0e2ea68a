"""Tests of the grasp networks, the registry/factory and the loss (small CPU inputs)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from models import (
    GRASP_MAP_NAMES,
    GraspNet,
    count_parameters,
    get_network,
    grasp_map_loss,
    list_networks,
)
from models.base import grasp_heads
from models.ggcnn import conv_transpose_as_conv
from models.resnet import resnet18


def _train_step(model: GraspNet, n: int, h: int, w: int) -> dict:
    x = torch.randn(n, model.input_channels, h, w)
    y = torch.randn(n, 4, h, w)
    out = model.compute_loss(x, y)
    assert out["pred"].shape == (n, 4, h, w)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    return out


def _head_grads_nonzero(model: GraspNet) -> bool:
    head = {"ggcnn": "pos_output", "ggcnn2": "pos_output", "pspnet": "out_conv"}
    params = [p for n, p in model.named_parameters() if n.startswith(head[model.network_name])]
    return bool(params) and all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


def test_registered_names() -> None:
    assert {"ggcnn", "ggcnn2", "pspnet"} <= set(list_networks())


@pytest.mark.parametrize("name", list_networks())
@pytest.mark.parametrize(("n", "h", "w"), [(1, 64, 64), (2, 72, 97)])
def test_forward_backward_train(name: str, n: int, h: int, w: int) -> None:
    torch.manual_seed(0)
    model = get_network(name).train()
    out = _train_step(model, n, h, w)
    assert set(GRASP_MAP_NAMES) <= set(out["terms"])
    assert _head_grads_nonzero(model)
    # DDP without find_unused_parameters needs every parameter in the graph.
    assert [k for k, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pooling": "lgp"},
        {"output_stride": 16, "input_channels": 3},
        {"output_stride": 32, "input_channels": 4, "pooling": "lgp", "aux_weight": 0.0},
    ],
    ids=["lgp", "os16-rgb", "os32-rgbd-lgp-noaux"],
)
def test_pspnet_variants(kwargs: dict) -> None:
    torch.manual_seed(0)
    model = get_network("pspnet", **kwargs).train()
    _train_step(model, 1, 64, 64)
    assert _head_grads_nonzero(model)
    assert [k for k, p in model.named_parameters() if p.grad is None] == []
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, model.input_channels, 97, 83)).shape == (1, 4, 97, 83)


@pytest.mark.parametrize("name", ["ggcnn", "ggcnn2"])
@pytest.mark.parametrize("size", [(32, 32), (300, 300), (97, 131), (224, 224)])
def test_ggcnn_any_size(name: str, size: tuple[int, int]) -> None:
    model = get_network(name, input_channels=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 4, *size)


def test_ggcnn_300_decodes_exactly() -> None:
    model = get_network("ggcnn").eval()
    x = torch.randn(1, 1, 300, 300)
    with torch.no_grad():
        h = x
        for layer in [model.conv1, model.conv2, model.conv3, model.convt1, model.convt2]:
            h = torch.relu(layer(h))
        h = model.pos_output(torch.relu(model.convt3(h)))
    assert h.shape[-2:] == (300, 300)  # no crop/pad needed at the design size


def test_parameter_counts() -> None:
    n_ggcnn = count_parameters(get_network("ggcnn"))
    n_ggcnn2 = count_parameters(get_network("ggcnn2"))
    print(f"ggcnn: {n_ggcnn:,} parameters, ggcnn2: {n_ggcnn2:,} parameters")
    assert abs(n_ggcnn - 62_000) / 62_000 < 0.03
    assert abs(n_ggcnn2 - 66_700) / 66_700 < 0.03
    for backbone in ("resnet18", "resnet50"):
        with torch.device("meta"):  # counting only: skip allocating/initialising weights
            n = count_parameters(get_network("pspnet", backbone=backbone))
        print(f"pspnet-{backbone}: {n:,} parameters")


def test_get_network_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown network 'nope'.*ggcnn"):
        get_network("nope")
    with pytest.raises(TypeError, match="bogus"):
        get_network("ggcnn", bogus=3)
    with pytest.raises(ValueError, match="backbone"):
        get_network("pspnet", backbone="vgg16")
    with pytest.raises(ValueError, match="output_stride"):
        get_network("pspnet", output_stride=4)
    with pytest.raises(ValueError, match="input"):
        get_network("ggcnn")(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("ggcnn", {"input_channels": 4}), ("ggcnn2", {}), ("pspnet", {"pooling": "lgp"})],
)
def test_rebuild_from_network_kwargs(name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    model = get_network(name, **kwargs)
    assert model.network_name == name
    json.dumps(model.network_kwargs)  # must be storable in a checkpoint
    for key, value in kwargs.items():
        assert model.network_kwargs[key] == value
    torch.manual_seed(1)
    rebuilt = get_network(model.network_name, **model.network_kwargs)
    assert list(rebuilt.state_dict()) == list(model.state_dict())
    rebuilt.load_state_dict(model.state_dict())
    model.eval()
    rebuilt.eval()
    x = torch.randn(2, model.input_channels, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))


def test_pspnet_pretrained_backbone(tmp_path) -> None:
    torch.manual_seed(0)
    src = resnet18()  # with fc, like a torchvision file
    path = tmp_path / "resnet18.pth"
    torch.save(src.state_dict(), path)
    model = get_network("pspnet", pretrained_backbone=str(path))
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, src.state_dict()[key]), key
    assert not hasattr(model.backbone, "fc") or model.backbone.fc is None
    # The path is an init-only choice: rebuilding from network_kwargs needs no file.
    assert "pretrained_backbone" not in model.network_kwargs
    assert model.init_kwargs == {"pretrained_backbone": str(path)}

    state = src.state_dict()
    del state["layer2.1.bn2.running_var"]
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(ValueError, match=r"bad\.pth.*missing keys \[layer2\.1\.bn2\.running_var\]"):
        get_network("pspnet", pretrained_backbone=str(bad))
    with pytest.raises(ValueError, match="not found"):
        get_network("pspnet", pretrained_backbone=str(tmp_path / "absent.pth"))


def test_aux_head_behaviour() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 1, 64, 64)
    y = torch.randn(1, 4, 64, 64)
    model = get_network("pspnet", aux_weight=0.4)
    main, aux = model.forward_train(x)
    assert aux is not None and aux.shape == main.shape == (1, 4, 64, 64)
    assert "aux" in model.compute_loss(x, y)["terms"]
    model.eval()
    with torch.no_grad():
        assert isinstance(model(x), torch.Tensor)  # forward never computes the aux head

    no_aux = get_network("pspnet", aux_weight=0.0).train()
    assert no_aux.aux_head is None
    assert no_aux.forward_train(x)[1] is None
    assert "aux" not in no_aux.compute_loss(x, y)["terms"]
    assert get_network("ggcnn").forward_train(x)[1] is None


def test_input_adapter_init() -> None:
    w1 = get_network("pspnet", input_channels=1).conv0.weight.reshape(3, 1)
    w3 = get_network("pspnet", input_channels=3).conv0.weight.reshape(3, 3)
    w4 = get_network("pspnet", input_channels=4).conv0.weight.reshape(3, 4)
    assert torch.equal(w1, torch.ones(3, 1))
    assert torch.equal(w3, torch.eye(3))
    assert torch.equal(w4[:, 0], torch.zeros(3)) and torch.equal(w4[:, 1:], torch.eye(3))


def test_grasp_map_loss() -> None:
    pred = torch.zeros(2, 4, 8, 8)
    target = torch.zeros(2, 4, 8, 8)
    target[:, 1] = 1.0  # cos map off by 1 everywhere
    target[:, 3] = 0.5
    total, terms = grasp_map_loss(pred, target)
    assert list(terms) == list(GRASP_MAP_NAMES)
    assert terms["cos"].item() == 1.0 and terms["width"].item() == 0.25
    assert terms["quality"].item() == 0.0
    assert total.item() == pytest.approx(1.25)
    with pytest.raises(ValueError, match="same shape"):
        grasp_map_loss(pred, target[:, :3])


def test_grasp_map_loss_on_grasp_pixels_only() -> None:
    """--map-loss grasp: angle and opening errors off the grasps cost nothing and get no
    gradient; on the grasps the terms are those of the GG-CNN loss; quality is unchanged."""
    torch.manual_seed(0)
    target = torch.zeros(2, 4, 8, 8)
    target[:, 0, 2:4, 3:6] = 1.0  # 12 grasp pixels of 64 an image
    target[:, 1:, 2:4, 3:6] = torch.rand(2, 3, 2, 3)
    pred = torch.randn(2, 4, 8, 8, requires_grad=True)
    _, every = grasp_map_loss(pred, target)
    total, on = grasp_map_loss(pred, target, "grasp")
    assert torch.equal(on["quality"], every["quality"])
    grasp = target[:, :1] > 0
    for i, name in enumerate(GRASP_MAP_NAMES[1:], start=1):
        err = (pred[:, i] - target[:, i]).square()[grasp[:, 0]].sum() / err_count(pred)
        assert on[name].item() == pytest.approx(err.item())
    total.backward()
    off = ~grasp[:, 0]
    assert pred.grad[:, 1:].permute(1, 0, 2, 3)[:, off].abs().max() == 0
    assert pred.grad[:, 0][off].abs().min() > 0  # quality learns everywhere
    with pytest.raises(ValueError, match="where must be one of"):
        grasp_map_loss(pred, target, "mask")
    # "width": the opening as "grasp" learns it, quality and angle as "all"
    pred.grad = None
    total, width_only = grasp_map_loss(pred, target, "width")
    for name in ("quality", "cos", "sin"):
        assert torch.equal(width_only[name], every[name])
    assert torch.equal(width_only["width"], on["width"])
    total.backward()
    assert pred.grad[:, 3][off].abs().max() == 0
    assert pred.grad[:, 1][off].abs().min() > 0


def err_count(pred: torch.Tensor) -> int:
    """Pixels a per-map mean divides by: N x H x W."""
    return pred.shape[0] * pred.shape[2] * pred.shape[3]


@pytest.mark.parametrize(("name", "kwargs"), [("ggcnn", {}), ("pspnet", {"backbone": "resnet18"})])
def test_bf16_autocast_channels_last(name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    model = get_network(name, **kwargs).train().to(memory_format=torch.channels_last)
    x = torch.randn(2, 1, 64, 72).to(memory_format=torch.channels_last)
    y = torch.randn(2, 4, 64, 72)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.compute_loss(x, y)
    assert out["loss"].dtype == torch.float32 and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert _head_grads_nonzero(model)


@pytest.mark.parametrize(
    ("cin", "cout", "k", "s", "p", "op"),
    [(8, 8, 3, 2, 1, 1), (8, 16, 5, 2, 2, 1), (16, 32, 9, 3, 3, 1), (3, 5, 7, 3, 0, 2),
     (2, 2, 2, 3, 1, 2), (2, 3, 4, 2, 1, 0), (2, 2, 3, 1, 1, 0)],
)  # fmt: skip
def test_transposed_conv_as_conv_is_exact(cin, cout, k, s, p, op):
    """The sub-pixel form GG-CNN's decoder takes under CPU bf16 autocast equals the
    transposed convolution, values and gradients (float64), with and without a bias,
    output_padding beyond the last tap included."""
    torch.manual_seed(0)
    for bias in (True, False):
        m = nn.ConvTranspose2d(cin, cout, k, s, p, op, bias=bias).double()
        x = torch.randn(2, cin, 11, 14, dtype=torch.float64, requires_grad=True)
        ref, got = m(x), conv_transpose_as_conv(x, m)
        assert got.shape == ref.shape
        torch.testing.assert_close(got, ref)
        g = torch.randn_like(ref)
        grads_ref = torch.autograd.grad(ref, [x, m.weight], g)
        grads_got = torch.autograd.grad(got, [x, m.weight], g)
        for a, b in zip(grads_got, grads_ref, strict=True):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["ggcnn", "ggcnn2"])
def test_fused_heads_are_the_four_heads(name: str) -> None:
    model = get_network(name).double().eval()
    heads = (model.pos_output, model.cos_output, model.sin_output, model.width_output)
    h = torch.randn(2, heads[0].in_channels, 20, 23, dtype=torch.float64)
    torch.testing.assert_close(grasp_heads(h, heads), torch.cat([m(h) for m in heads], dim=1))
