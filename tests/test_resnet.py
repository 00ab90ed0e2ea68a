"""Tests of models/resnet.py: torchvision-identical keys, strict loading, dilation strides."""

from __future__ import annotations

import pytest
import torch

from models.resnet import (
    RESNET_BUILDERS,
    BasicBlock,
    Bottleneck,
    ResNet,
    load_torchvision_state_dict,
    resnet18,
    resnet50,
)

# Entry counts of torchvision's state_dicts, from the architecture:
#   stem conv1 (1) + bn1 (5: weight, bias, running_mean, running_var, num_batches_tracked) = 6,
#   fc = 2; BasicBlock = 2 x (conv + bn) = 12; Bottleneck = 3 x (conv + bn) = 18;
#   projection shortcut (downsample.0 conv + downsample.1 bn) = 6.
#   resnet18  [2,2,2,2]  basic:  8*12 + 3*6 (layer2-4) + 8 = 122
#   resnet34  [3,4,6,3]  basic: 16*12 + 3*6 + 8            = 218
#   resnet50  [3,4,6,3]  bottleneck: 16*18 + 4*6 (layer1-4) + 8 = 320
#   resnet101 [3,4,23,3] bottleneck: 33*18 + 4*6 + 8        = 626
EXPECTED_KEY_COUNTS = {"resnet18": 122, "resnet34": 218, "resnet50": 320, "resnet101": 626}
# torchvision's published parameter counts (with the 1000-class fc).
EXPECTED_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
}
COMMON_KEYS = [
    "conv1.weight",
    "bn1.weight",
    "bn1.bias",
    "bn1.running_mean",
    "bn1.running_var",
    "bn1.num_batches_tracked",
    "layer1.0.conv1.weight",
    "layer1.0.bn1.num_batches_tracked",
    "layer1.1.conv2.weight",
    "layer2.0.downsample.0.weight",
    "layer2.0.downsample.1.weight",
    "layer2.0.downsample.1.running_mean",
    "layer2.0.downsample.1.running_var",
    "layer2.0.downsample.1.num_batches_tracked",
    "layer3.0.downsample.0.weight",
    "layer4.0.downsample.0.weight",
    "layer4.1.bn2.running_var",
    "fc.weight",
    "fc.bias",
]
BOTTLENECK_KEYS = [
    "layer1.0.downsample.0.weight",
    "layer1.0.conv3.weight",
    "layer1.0.bn3.running_mean",
    "layer4.2.conv3.weight",
    "layer4.2.bn3.num_batches_tracked",
]


def _meta_model(name: str, **kwargs) -> ResNet:
    # Built on the meta device: keys and shapes without allocating/initialising weights.
    with torch.device("meta"):
        return RESNET_BUILDERS[name](**kwargs)


@pytest.mark.parametrize("name", sorted(EXPECTED_KEY_COUNTS))
def test_state_dict_keys_match_torchvision(name: str) -> None:
    model = _meta_model(name)
    keys = set(model.state_dict())
    assert len(model.state_dict()) == EXPECTED_KEY_COUNTS[name]
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMS[name]
    missing = [k for k in COMMON_KEYS if k not in keys]
    assert not missing
    if name in ("resnet50", "resnet101"):
        assert all(k in keys for k in BOTTLENECK_KEYS)
    else:
        assert "layer1.0.downsample.0.weight" not in keys
        assert "layer1.0.conv3.weight" not in keys
    # Everything is a conv/bn/fc entry of the torchvision naming scheme.
    allowed_leaf = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    assert all(k.rsplit(".", 1)[1] in allowed_leaf for k in keys)
    # A feature extractor drops exactly the two fc entries.
    assert set(_meta_model(name, num_classes=None).state_dict()) == keys - {"fc.weight", "fc.bias"}


def test_shapes_match_torchvision() -> None:
    sd18 = _meta_model("resnet18").state_dict()
    assert sd18["conv1.weight"].shape == (64, 3, 7, 7)
    assert sd18["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert sd18["layer4.1.conv2.weight"].shape == (512, 512, 3, 3)
    assert sd18["fc.weight"].shape == (1000, 512)
    sd50 = _meta_model("resnet50").state_dict()
    assert sd50["layer1.0.conv1.weight"].shape == (64, 64, 1, 1)
    assert sd50["layer1.0.conv3.weight"].shape == (256, 64, 1, 1)
    assert sd50["layer2.0.conv2.weight"].shape == (128, 128, 3, 3)
    assert sd50["layer4.0.downsample.0.weight"].shape == (2048, 1024, 1, 1)
    assert sd50["fc.weight"].shape == (1000, 2048)


def test_forward_logits() -> None:
    torch.manual_seed(0)
    model = resnet18(num_classes=10).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def test_save_and_load_roundtrip(tmp_path) -> None:
    torch.manual_seed(0)
    src = resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(src.state_dict(), path)
    dst = resnet18()
    assert load_torchvision_state_dict(dst, path, ignore_fc=False) == []
    for key, value in src.state_dict().items():
        assert torch.equal(value, dst.state_dict()[key]), key
    # A feature extractor without fc accepts the file and reports the ignored fc keys.
    features = resnet18(num_classes=None)
    assert load_torchvision_state_dict(features, path) == ["fc.bias", "fc.weight"]
    assert torch.equal(features.layer4[1].conv2.weight, src.layer4[1].conv2.weight)
    # ... but not when fc keys must match.
    with pytest.raises(ValueError, match=r"unexpected keys \[fc.bias, fc.weight\]"):
        load_torchvision_state_dict(resnet18(num_classes=None), path, ignore_fc=False)


def test_missing_and_unexpected_keys_are_listed(tmp_path) -> None:
    state = resnet18().state_dict()
    del state["layer3.1.conv1.weight"]
    state["layer5.0.conv1.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as info:
        load_torchvision_state_dict(resnet18(), path)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg
    assert "missing keys [layer3.1.conv1.weight]" in msg
    assert "unexpected keys [layer5.0.conv1.weight]" in msg


def test_shape_mismatch_and_missing_file(tmp_path) -> None:
    state = resnet18().state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(ValueError, match=r"wrong shapes.*layer1\.0\.conv1\.weight"):
        load_torchvision_state_dict(resnet18(), state)
    with pytest.raises(ValueError, match="weight file not found"):
        load_torchvision_state_dict(resnet18(), tmp_path / "nope.pth")
    # resnet18 weights into a resnet50: many missing/unexpected keys, still one line.
    with pytest.raises(ValueError, match=r"missing keys .*\(\+\d+ more\)") as info:
        load_torchvision_state_dict(resnet50(), resnet18().state_dict())
    assert "\n" not in str(info.value)


def test_legacy_file_without_num_batches_tracked(tmp_path) -> None:
    # torchvision's pre-1.0 .pth files have no num_batches_tracked entries.
    state = {k: v for k, v in resnet18().state_dict().items() if "num_batches_tracked" not in k}
    assert len(state) == 122 - 20
    model = resnet18()
    load_torchvision_state_dict(model, state)
    assert int(model.bn1.num_batches_tracked) == 0


@pytest.mark.parametrize(
    ("builder", "block"), [(resnet18, BasicBlock), (resnet50, Bottleneck)], ids=["basic", "bottle"]
)
@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_output_stride(builder, block, output_stride: int) -> None:
    torch.manual_seed(0)
    dilate = {8: [False, True, True], 16: [False, False, True], 32: [False, False, False]}
    model = builder(num_classes=None, replace_stride_with_dilation=dilate[output_stride]).eval()
    assert isinstance(model.layer1[0], block)
    assert model.output_stride == output_stride
    size = 64
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, size, size))
    assert feats["layer4"].shape[-2:] == (size // output_stride, size // output_stride)
    stride3 = min(output_stride, 16)  # layer3 is never dilated beyond stride 16
    assert feats["layer3"].shape[-2:] == (size // stride3, size // stride3)
    assert feats["layer4"].shape[1] == 512 * block.expansion
    assert feats["layer3"].shape[1] == 256 * block.expansion


def test_dilation_pattern_basic_block() -> None:
    # Output stride 8: layer3 = [d1 (first block keeps previous), d2], layer4 = [d2, d4].
    with torch.device("meta"):
        model = resnet18(replace_stride_with_dilation=[False, True, True])
    assert model.layer3[0].conv1.dilation == (1, 1) and model.layer3[0].conv1.stride == (1, 1)
    assert model.layer3[0].conv2.dilation == (1, 1)
    assert model.layer3[1].conv1.dilation == (2, 2) and model.layer3[1].conv1.padding == (2, 2)
    assert model.layer4[0].conv1.dilation == (2, 2) and model.layer4[0].conv2.padding == (2, 2)
    assert model.layer4[1].conv2.dilation == (4, 4) and model.layer4[1].conv2.padding == (4, 4)
    assert model.layer4[0].downsample[0].stride == (1, 1)


def test_matches_torchvision_if_available() -> None:
    try:
        import torchvision  # noqa: F401
        from torchvision.models import resnet18 as tv_resnet18
    except Exception as err:  # torchvision is absent/broken in this environment
        pytest.skip(f"torchvision not importable: {type(err).__name__}: {err}")
    torch.manual_seed(0)
    theirs = tv_resnet18().eval()
    ours = resnet18().eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    load_torchvision_state_dict(ours, theirs.state_dict(), ignore_fc=False)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))
