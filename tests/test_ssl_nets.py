import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semclust.ssl.nets import SmallCNN, WideResNet, build_network


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("shape", [(3, 1, 28, 28), (3, 3, 32, 32)])
def test_small_cnn_shapes(shape):
    torch.manual_seed(0)
    net = SmallCNN(10, in_channels=shape[1], width=8)
    out = net.forward_features(torch.rand(shape))
    assert [t.shape for t in out["taps"]] == [(3, 8), (3, 16), (3, 32)]
    assert net.tap_dims == [8, 16, 32]
    assert out["features"].shape == (3, net.feature_dim) and net.feature_dim == 32
    assert out["logits"].shape == (3, 10)
    assert torch.equal(out["features"], out["taps"][-1])
    assert torch.allclose(out["logits"], net.classifier(out["features"]))
    assert isinstance(net.classifier, nn.Linear) and net.num_classes == 10
    net.eval()
    x = torch.rand(shape)
    assert torch.allclose(net(x), net.forward_features(x)["logits"])


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (2, 1, 28, 28)])
def test_wrn_shapes_and_taps(shape):
    torch.manual_seed(0)
    net = WideResNet(10, in_channels=shape[1])
    out = net.forward_features(torch.rand(shape))
    assert [t.shape[1] for t in out["taps"]] == [16, 32, 64, 128] == net.tap_dims
    assert all(t.shape[0] == 2 for t in out["taps"])
    assert net.feature_dim == 128 and out["features"].shape == (2, 128)
    assert out["logits"].shape == (2, 10)
    assert torch.equal(out["features"], out["taps"][-1])
    # taps are means of leaky-ReLU outputs, so never below -slope * |max|
    assert all(torch.isfinite(t).all() for t in out["taps"])


def test_wrn_28_2_parameter_count_and_hyperparameters():
    net = build_network("wrn-28-2", 10, 3)
    n = sum(p.numel() for p in net.parameters())
    assert n == pytest.approx(1.47e6, rel=0.01)
    # USB's wrn.py: 1,467,610 weights + the 16 biases of its first conv (FixMatch-PyTorch has none)
    assert n == 1_467_610 + 16
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.momentum == pytest.approx(0.001) for m in bns)
    assert net.bn_final.eps == pytest.approx(1e-3)  # USB's final BN; the block BNs keep 1e-5
    assert net.slope == pytest.approx(0.1)
    assert isinstance(net.classifier, nn.Linear) and net.classifier.in_features == 128


def test_wrn_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = WideResNet(4, depth=10, widen_factor=1, in_channels=3)
    net(torch.rand(2, 3, 16, 16)).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("name,channels", [("cnn", 1), ("wrn-28-2", 3)])
def test_deterministic_init(name, channels):
    torch.manual_seed(123)
    a = build_network(name, 10, channels).state_dict()
    torch.manual_seed(123)
    b = build_network(name, 10, channels).state_dict()
    torch.manual_seed(124)
    c = build_network(name, 10, channels).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_build_network_names():
    net = build_network("cnn", 7, 3)
    assert isinstance(net, SmallCNN) and net.num_classes == 7 and net.in_channels == 3
    with pytest.raises(ValueError, match="cnn.*wrn-28-2"):
        build_network("resnet50", 10, 3)
    with pytest.raises(ValueError):
        WideResNet(10, depth=27)


def test_wrn_own_tap_bns_normalise_each_stage_output_separately():
    torch.manual_seed(0)
    net = WideResNet(4, depth=10, widen_factor=1, in_channels=3)
    x = torch.randn(3, 3, 8, 8)
    shared = net.forward_features(x)
    net.enable_own_tap_bns()
    assert net.tap_bns is not None and [bn.eps for bn in net.tap_bns] == [1e-3] * 4
    own = net.forward_features(x)
    # the classifier path (features, logits) is unchanged; taps come from the new BNs
    assert torch.allclose(own["features"], shared["features"]) and torch.allclose(own["logits"], shared["logits"])
    h = net.conv1(x)
    expected = F.leaky_relu(net.tap_bns[0](h), 0.1).mean(dim=(2, 3))
    assert torch.allclose(own["taps"][0], expected)
    assert own["feature_map"].shape[:2] == (3, 64)
    assert torch.allclose(own["feature_map"].mean(dim=(2, 3)), own["features"])
