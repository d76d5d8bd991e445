"""xai_ref.scratch: every layer against finite differences and against torch autograd; the network and
from_torch against torch, under the three ReLU rules."""
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as tF
from hypothesis import given, settings, strategies as st

from xai_ref.scratch import (Conv2d, Flatten, GlobalAvgPool, Linear, MaxPool2d, ReLU, Sequential,
                             check_layer_gradient, from_torch, log_softmax, rel_error, softmax)

FD_TOL, TORCH_TOL = 1e-8, 1e-10


def rng(seed=0):
    return np.random.default_rng(seed)


def T(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def torch_grads(fn, dout, *arrays):
    """Gradients of sum(fn(*tensors) * dout) with respect to each array, by torch autograd."""
    ts = [T(a, grad=True) for a in arrays]
    out = fn(*ts)
    out.backward(T(dout))
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


# ---------------------------------------------------------------- layers: finite differences

@pytest.mark.parametrize("make_layer, shape", [
    (lambda r: Conv2d(r.standard_normal((3, 2, 3, 2)), r.standard_normal(3), stride=2, padding=1),
     (2, 2, 5, 6)),
    (lambda r: Conv2d(r.standard_normal((2, 2, 2, 2)), None), (1, 2, 4, 4)),
    (lambda r: ReLU(), (2, 3, 4, 4)),
    (lambda r: ReLU(upper=6.0), (2, 3, 4, 4)),
    (lambda r: MaxPool2d(2), (2, 2, 4, 4)),
    (lambda r: MaxPool2d(3, stride=2, padding=1), (2, 2, 5, 5)),
    (lambda r: GlobalAvgPool(), (2, 3, 3, 4)),
    (lambda r: Flatten(), (2, 3, 2, 2)),
    (lambda r: Linear(r.standard_normal((4, 6)), r.standard_normal(4)), (3, 6)),
])
def test_layer_backward_matches_finite_differences(make_layer, shape):
    r = rng(1)
    x = 4 * r.standard_normal(shape)            # scale 4 so that ReLU6 is capped somewhere
    errors = check_layer_gradient(make_layer(r), x)
    assert max(errors.values()) <= FD_TOL, errors


# ---------------------------------------------------------------- layers: torch autograd

def test_conv_stride2_padding1_matches_torch():
    r = rng(2)
    x, W, b = r.standard_normal((2, 3, 7, 6)), r.standard_normal((4, 3, 3, 3)), r.standard_normal(4)
    conv = Conv2d(W, b, stride=2, padding=1)
    out = conv.forward(x)
    dout = r.standard_normal(out.shape)
    ref, (dx, dW, db) = torch_grads(lambda x, W, b: tF.conv2d(x, W, b, stride=2, padding=1), dout, x, W, b)
    assert out.shape == ref.shape == (2, 4, 4, 3)
    assert rel_error(out, ref) <= TORCH_TOL
    assert rel_error(conv.backward(dout), dx) <= TORCH_TOL
    assert rel_error(conv.dW, dW) <= TORCH_TOL
    assert rel_error(conv.db, db) <= TORCH_TOL
    conv.forward(r.standard_normal(x.shape))  # a new forward pass does not change the last backward's dW
    assert rel_error(conv.dW, dW) <= TORCH_TOL


def test_conv_weight_gradient_needs_a_backward_pass():
    conv = Conv2d(np.ones((2, 1, 3, 3)), np.zeros(2))
    with pytest.raises(RuntimeError, match="call backward first"):
        conv.dW
    with pytest.raises(RuntimeError, match="needs a forward pass first"):
        conv.backward(np.ones((1, 2, 1, 1)))


def test_conv_rectangular_padding_and_stride_matches_torch():
    r = rng(3)
    x, W = r.standard_normal((1, 2, 6, 5)), r.standard_normal((3, 2, 3, 2))
    conv = Conv2d(W, None, stride=(2, 1), padding=(0, 1))
    out = conv.forward(x)
    dout = r.standard_normal(out.shape)
    ref, (dx, dW) = torch_grads(lambda x, W: tF.conv2d(x, W, stride=(2, 1), padding=(0, 1)), dout, x, W)
    assert rel_error(out, ref) <= TORCH_TOL
    assert rel_error(conv.backward(dout), dx) <= TORCH_TOL
    assert rel_error(conv.dW, dW) <= TORCH_TOL
    assert conv.db is None


@pytest.mark.parametrize("layer, fn", [
    (Linear(rng(4).standard_normal((3, 5)), rng(5).standard_normal(3)), None),
    (MaxPool2d(3, stride=2, padding=1), lambda x: tF.max_pool2d(x, 3, 2, 1)),
    (MaxPool2d(2, stride=1), lambda x: tF.max_pool2d(x, 2, 1)),
    (GlobalAvgPool(), lambda x: x.mean(dim=(2, 3))),
    (GlobalAvgPool(keepdims=True), lambda x: tF.adaptive_avg_pool2d(x, 1)),
    (Flatten(), lambda x: x.flatten(1)),
    (ReLU(), torch.relu),
    (ReLU(upper=6.0), tF.relu6),
])
def test_layer_backward_matches_torch(layer, fn):
    r = rng(6)
    if isinstance(layer, Linear):
        x = r.standard_normal((4, 5))
        fn = lambda x: tF.linear(x, T(layer.W), T(layer.b))  # noqa: E731
    else:
        x = 4 * r.standard_normal((2, 3, 5, 5))
        x[0, 0, 0, :3] = [0.0, 6.0, -0.0]          # the kinks: the gradient there is 0, as in torch
    out = layer.forward(x)
    dout = r.standard_normal(out.shape)
    ref, (dx,) = torch_grads(fn, dout, x)
    assert rel_error(out, ref) <= TORCH_TOL
    assert rel_error(layer.backward(dout), dx) <= TORCH_TOL


def test_relu_rules_by_hand():
    x = np.array([[-1.0, 0.0, 0.5, 6.0, 7.0, 3.0]])
    dout = np.array([[1.0, 2.0, -3.0, 4.0, 5.0, 6.0]])
    expected = {
        (None, "backprop"): [0, 0, -3, 4, 5, 6],
        (None, "guided"): [0, 0, 0, 4, 5, 6],
        (None, "deconvnet"): [1, 2, 0, 4, 5, 6],
        (6.0, "backprop"): [0, 0, -3, 0, 0, 6],
        (6.0, "guided"): [0, 0, 0, 0, 0, 6],
        (6.0, "deconvnet"): [1, 2, 0, 4, 5, 6],
    }
    for (upper, rule), want in expected.items():
        relu = ReLU(upper)
        relu.forward(x)
        np.testing.assert_array_equal(relu.backward(dout, rule), [want], err_msg=f"{upper} {rule}")


@pytest.mark.parametrize("upper", [None, 6.0])
def test_relu_rules_match_torch_expressions(upper):
    r = rng(7)
    x, dout = 4 * r.standard_normal((2, 3, 4, 4)), r.standard_normal((2, 3, 4, 4))
    tx, g = T(x), T(dout)
    mask = (tx > 0) if upper is None else (tx > 0) & (tx < upper)
    relu = ReLU(upper)
    relu.forward(x)
    assert rel_error(relu.backward(dout, "guided"), (g.clamp(min=0) * mask).numpy()) == 0
    assert rel_error(relu.backward(dout, "deconvnet"), g.clamp(min=0).numpy()) == 0
    assert rel_error(relu.backward(dout, "backprop"), (g * mask).numpy()) == 0


def test_relu_unknown_rule():
    relu = ReLU()
    relu.forward(np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"rule must be a ReLU rule, one of \(.backprop., .deconvnet., .guided.\), got .lrp."):
        relu.backward(np.ones((1, 2)), "lrp")


# ---------------------------------------------------------------- max-pool switches, by hand

X4 = np.array([[1, 3, 2, 1],
               [4, 2, 0, 5],
               [1, 1, 6, 2],
               [0, 7, 3, 3]], dtype=float)[None, None]


def pool(x, dout, *args, **kwargs):
    p = MaxPool2d(*args, **kwargs)
    out = p.forward(x)
    return out[0, 0], p.switches[0, 0], p.backward(np.asarray(dout, float)[None, None])[0, 0]


def test_maxpool_switches_2x2_stride2():
    out, sw, dx = pool(X4, [[1, 2], [3, 4]], 2)
    np.testing.assert_array_equal(out, [[4, 5], [7, 6]])
    np.testing.assert_array_equal(sw, [[4, 7], [13, 10]])     # flat index row*4 + col
    np.testing.assert_array_equal(dx, [[0, 0, 0, 0],
                                       [1, 0, 0, 2],
                                       [0, 0, 4, 0],
                                       [0, 3, 0, 0]])


def test_maxpool_switches_overlapping_3x3_stride2_padding1():
    # windows cover rows/cols {0,1} and {1,2,3}; the 7 at (3,1) wins two windows and collects 3 + 4
    out, sw, dx = pool(X4, [[1, 2], [3, 4]], 3, stride=2, padding=1)
    np.testing.assert_array_equal(out, [[4, 5], [7, 7]])
    np.testing.assert_array_equal(sw, [[4, 7], [13, 13]])
    np.testing.assert_array_equal(dx, [[0, 0, 0, 0],
                                       [1, 0, 0, 2],
                                       [0, 0, 0, 0],
                                       [0, 7, 0, 0]])


def test_maxpool_switches_overlapping_2x2_stride1_with_ties():
    x = np.array([[1, 5, 5, 0],
                  [2, 3, 1, 4],
                  [0, 3, 3, 2],
                  [1, 0, 2, 2]], dtype=float)[None, None]
    out, sw, dx = pool(x, [[1, 2, 3], [4, 5, 6], [7, 8, 9]], 2, stride=1)
    np.testing.assert_array_equal(out, [[5, 5, 5], [3, 3, 4], [3, 3, 3]])
    # ties go to the first maximum in row-major window order: window (0,1) holds 5, 5 -> (0,1)
    np.testing.assert_array_equal(sw, [[1, 1, 2], [5, 5, 7], [9, 9, 10]])
    np.testing.assert_array_equal(dx, [[0, 3, 3, 0],
                                       [0, 9, 0, 6],
                                       [0, 15, 9, 0],
                                       [0, 0, 0, 0]])
    ref, idx = tF.max_pool2d(T(x), 2, 1, return_indices=True)
    np.testing.assert_array_equal(sw, idx[0, 0].numpy())
    _, (tdx,) = torch_grads(lambda t: tF.max_pool2d(t, 2, 1), np.arange(1.0, 10).reshape(1, 1, 3, 3), x)
    np.testing.assert_array_equal(dx, tdx[0, 0])


# ---------------------------------------------------------------- softmax

def test_softmax_and_log_softmax_match_torch_and_do_not_overflow():
    s = np.array([[1.0, 2.0, 3.0], [1000.0, 1001.0, -1000.0]])
    assert rel_error(softmax(s), torch.softmax(T(s), 1).numpy()) <= TORCH_TOL
    assert rel_error(log_softmax(s), torch.log_softmax(T(s), 1).numpy()) <= TORCH_TOL
    np.testing.assert_allclose(softmax(s).sum(1), 1)


# ---------------------------------------------------------------- from_torch and Sequential

def vgg_like():
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(
        features=nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                               nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.ReLU6(),
                               nn.MaxPool2d(3, stride=2, padding=1)),
        classifier=nn.Sequential(nn.Flatten(), nn.Linear(24, 10), nn.ReLU(), nn.Dropout(0.5),
                                 nn.Linear(10, 5)),
    )).double().eval()
    with torch.no_grad():
        model.features[3].weight.mul_(4)             # so that ReLU6 caps some activations
    return model


def gap_net():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3)).double().eval()


class RuleReLU(torch.autograd.Function):
    """min(max(x, 0), upper) whose backward follows a deconvnet or guided rule."""

    @staticmethod
    def forward(ctx, x, upper, rule):
        ctx.save_for_backward(x)
        ctx.upper, ctx.rule = upper, rule
        return x.clamp(0, upper)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        mask = (x > 0) if ctx.upper is None else (x > 0) & (x < ctx.upper)
        g = g.clamp(min=0) if ctx.rule == "deconvnet" else g.clamp(min=0) * mask
        return g, None, None


def torch_run(model, x, rule="backprop"):
    """Every layer output of a (nested) torch Sequential, by name; ReLUs follow `rule` on the way back."""
    outs = OrderedDict()
    for name, m in model.named_modules():
        if isinstance(m, nn.Sequential):
            continue
        if rule != "backprop" and isinstance(m, (nn.ReLU, nn.ReLU6)):
            x = RuleReLU.apply(x, 6.0 if isinstance(m, nn.ReLU6) else None, rule)
        else:
            x = m(x)
        outs[name] = x
    return outs


@pytest.fixture(params=["vgg", "gap"])
def nets(request):
    model = vgg_like() if request.param == "vgg" else gap_net()
    x = 2 * rng(8).standard_normal((2, 3, 8, 8))
    return model, from_torch(model), x


def test_from_torch_names_and_logits(nets):
    model, net, x = nets
    assert net.names == [n for n, m in model.named_modules() if not isinstance(m, nn.Sequential)]
    logits = net.forward(x)
    with torch.no_grad():
        ref = model(T(x)).numpy()
    assert rel_error(logits, ref) <= TORCH_TOL
    assert list(net.activations) == ["input"] + net.names
    if "features.4" in net.names:                     # ReLU6 really caps something
        assert (net.activations["features.3"] > 6).any()


@pytest.mark.parametrize("rule", ["backprop", "guided", "deconvnet"])
def test_full_backward_matches_torch(nets, rule):
    model, net, x = nets
    dout = rng(9).standard_normal(net.forward(x).shape)
    tx = T(x, grad=True)
    list(torch_run(model, tx, rule).values())[-1].backward(T(dout))
    dx = net.backward(dout, rule=rule)
    assert rel_error(dx, tx.grad.numpy()) <= TORCH_TOL
    assert list(net.grads) == list(reversed(["input"] + net.names))
    if rule == "backprop":                            # parameter gradients too
        first = net.names[0]
        assert rel_error(net[first].dW, model.get_submodule(first).weight.grad.numpy()) <= TORCH_TOL


def test_backward_from_and_to_an_intermediate_layer(nets):
    model, net, x = nets
    net.forward(x)
    start, stop = net.names[3], net.names[1]          # conv output; first ReLU's output
    r = rng(10)
    tx = T(x, grad=True)
    outs = torch_run(model, tx)
    dstart = r.standard_normal(net.activations[start].shape)
    (ref,) = torch.autograd.grad(outs[start], tx, T(dstart), retain_graph=True)
    assert rel_error(net.backward(dstart, start=start), ref.numpy()) <= TORCH_TOL
    dlogits = r.standard_normal(net.activations[net.names[-1]].shape)
    (ref,) = torch.autograd.grad(list(outs.values())[-1], outs[stop], T(dlogits))
    got = net.backward(dlogits, stop=stop)                # dY/dA as Grad-CAM needs it
    assert rel_error(got, ref.numpy()) <= TORCH_TOL
    assert got is net.grads[stop] and "input" not in net.grads
    assert rel_error(net.backward(dstart, start=3, stop=1), net.backward(dstart, start=start, stop=stop)) == 0


def test_from_torch_float32():
    model = vgg_like().float()
    net = from_torch(model, dtype=np.float32)
    x = rng(11).standard_normal((2, 3, 8, 8)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ref = model(tx)
    ref.sum().backward()
    out = net.forward(x)
    dx = net.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == np.float32
    assert rel_error(out, ref.detach().numpy()) <= 1e-5
    assert rel_error(dx, tx.grad.numpy()) <= 1e-5


def test_sequential_default_names_and_bad_input():
    r = rng(12)
    net = Sequential([Conv2d(r.standard_normal((2, 3, 3, 3)), np.zeros(2)), ReLU(), GlobalAvgPool(),
                      Linear(r.standard_normal((4, 2)), np.zeros(4))])
    assert net.names == ["0", "1", "2", "3"]
    with pytest.raises(ValueError, match=r"layer '0'.*\(N, 3, H, W\).*\(1, 4, 5, 5\)"):
        net.forward(np.zeros((1, 4, 5, 5)))
    with pytest.raises(ValueError, match=r"\(3, 5, 5\)"):
        net.forward(np.zeros((3, 5, 5)))
    with pytest.raises(RuntimeError, match="forward"):
        net.backward(np.zeros((1, 4)))
    net.forward(np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"rule must be a ReLU rule, one of .*got .smooth."):
        net.backward(np.zeros((1, 4)), rule="smooth")
    with pytest.raises(ValueError, match=r"\(1, 4\)"):
        net.backward(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="no layer named 'conv'"):
        net.backward(np.zeros((1, 4)), stop="conv")


def test_from_torch_refuses_what_it_cannot_convert():
    bad = nn.Sequential(OrderedDict(features=nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4))))
    with pytest.raises(TypeError, match=r"'features\.2' \(BatchNorm2d\).*Conv2d, ReLU, ReLU6, MaxPool2d"):
        from_torch(bad)
    with pytest.raises(TypeError, match="nn.Sequential"):
        from_torch(nn.Conv2d(3, 4, 3))
    for layer, setting in [(nn.Conv2d(3, 4, 3, dilation=2), "dilation"),
                           (nn.Conv2d(4, 4, 3, groups=2), "groups"),
                           (nn.MaxPool2d(2, ceil_mode=True), "ceil_mode"),
                           (nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), "padding_mode"),
                           (nn.AdaptiveAvgPool2d(2), "output_size")]:
        with pytest.raises(ValueError, match=setting):
            from_torch(nn.Sequential(layer))


# ---------------------------------------------------------------- properties

@st.composite
def conv_configs(draw):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    size = tuple(draw(st.integers(max(1, k[i] - 2 * pad[i]), 7)) for i in range(2))
    return dict(N=draw(st.integers(1, 2)), C=draw(st.integers(1, 3)), F=draw(st.integers(1, 3)), k=k,
                stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))), pad=pad, size=size,
                seed=draw(st.integers(0, 2**16)))


@settings(max_examples=40, deadline=None)
@given(conv_configs())
def test_conv_matches_torch_property(cfg):
    r = rng(cfg["seed"])
    x = r.standard_normal((cfg["N"], cfg["C"]) + cfg["size"])
    W, b = r.standard_normal((cfg["F"], cfg["C"]) + cfg["k"]), r.standard_normal(cfg["F"])
    conv = Conv2d(W, b, stride=cfg["stride"], padding=cfg["pad"])
    out = conv.forward(x)
    dout = r.standard_normal(out.shape)
    ref, (dx, dW, db) = torch_grads(
        lambda x, W, b: tF.conv2d(x, W, b, stride=cfg["stride"], padding=cfg["pad"]), dout, x, W, b)
    assert out.shape == ref.shape
    assert rel_error(out, ref) <= TORCH_TOL
    assert rel_error(conv.backward(dout), dx) <= TORCH_TOL
    assert rel_error(conv.dW, dW) <= TORCH_TOL
    assert rel_error(conv.db, db) <= TORCH_TOL


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 3), stride=st.integers(1, 3), pad=st.integers(0, 1), size=st.integers(3, 7),
       seed=st.integers(0, 2**16))
def test_maxpool_matches_torch_property_with_ties(k, stride, pad, size, seed):
    pad = min(pad, k // 2)                          # torch allows padding up to half the kernel
    x = rng(seed).integers(0, 3, (2, 2, size, size)).astype(float)     # small integers: many ties
    p = MaxPool2d(k, stride, pad)
    out = p.forward(x)
    dout = rng(seed + 1).standard_normal(out.shape)
    ref, idx = tF.max_pool2d(T(x), k, stride, pad, return_indices=True)
    _, (dx,) = torch_grads(lambda t: tF.max_pool2d(t, k, stride, pad), dout, x)
    np.testing.assert_array_equal(out, ref.numpy())
    np.testing.assert_array_equal(p.switches, idx.numpy())
    assert rel_error(p.backward(dout), dx) <= TORCH_TOL
