"""The PyTorch methods on networks small enough to work out by hand, with the literal expected numbers.

Each hand-worked case writes its network, its input and every intermediate value in a comment, so it
can be checked with pen and paper (and is the seed of a lesson's worked example). Run with ``pytest -s``
to see the ReLU-rule example printed.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import xai_ref as xr
from xai_ref import Neuron
from conftest import hook_count


pytestmark = pytest.mark.usefixtures("one_thread")


def T(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# --- a 1-conv GAP net, small enough to compute by hand -------------------------------------------------


def tiny_gap_net() -> nn.Sequential:
    """x (1,1,2,2) -> conv 1x1, two filters (+1, -1), no bias -> ReLU -> GAP -> linear W, b.

    With x = [[1, 2], [3, -1]]:
      conv: A_pre^1 = x = [[1, 2], [3, -1]],   A_pre^2 = -x = [[-1, -2], [-3, 1]]
      relu: A^1 = [[1, 2], [3, 0]],           A^2 = [[0, 0], [0, 1]]
      GAP:  F = [6/4, 1/4] = [1.5, 0.25]      (Z = 4)
      fc:   W = [[1, 2], [-1, 3]], b = [0.5, 0]
            S_0 = 1.5 + 0.5 + 0.5 = 2.5,      S_1 = -1.5 + 0.75 + 0 = -0.75
    """
    conv = nn.Conv2d(1, 2, 1, bias=False)
    fc = nn.Linear(2, 2)
    with torch.no_grad():
        conv.weight.copy_(T([1.0, -1.0]).view(2, 1, 1, 1))
        fc.weight.copy_(T([[1, 2], [-1, 3]]))
        fc.bias.copy_(T([0.5, 0]))
    return nn.Sequential(OrderedDict(conv=conv, relu=nn.ReLU(), gap=nn.AdaptiveAvgPool2d(1),
                                     flatten=nn.Flatten(), fc=fc)).eval()


X_TINY = T([[[[1, 2], [3, -1]]]])


def test_gap_by_hand():
    t = xr.gap(tiny_gap_net(), X_TINY)
    assert t.symbols == ["A", "F", "S"]
    assert t.A.tolist() == [[[[1, 2], [3, 0]], [[0, 0], [0, 1]]]]
    assert t.F.tolist() == [[1.5, 0.25]]
    assert t.S.tolist() == [[2.5, -0.75]]


@pytest.mark.parametrize("c, w, M, S", [
    (0, [1, 2], [[1, 2], [3, 2]], 2.5),       # M = A^1 + 2 A^2;  mean(M) = 2,     + b_0 = 2.5 = S_0
    (1, [-1, 3], [[-1, -2], [-3, 3]], -0.75),  # M = -A^1 + 3 A^2; mean(M) = -0.75, + b_1 = -0.75 = S_1
])
def test_cam_by_hand(c, w, M, S):
    model = tiny_gap_net()
    t = xr.cam(model, X_TINY, target=c)
    assert t.symbols == ["f", "w", "M", "S", "map"]
    assert t.w.tolist() == [w]
    assert t.M.tolist() == [M]                 # raw: negative values kept, no ReLU (as in the paper)
    assert t.S.tolist() == [S]
    assert t.S.item() == model(X_TINY)[0, c].item()   # the check: averaging M gives back the score
    assert torch.equal(t.map, t.M)             # a 2x2 map "upsampled" to the 2x2 input: unchanged


@pytest.mark.parametrize("layer, c, dY_dA, alpha, weighted, L", [
    # at the ReLU output (the layer before GAP): dS_c/dA^k_ij = W[c,k] / Z, the same at every position
    ("relu", 0, [[[.25, .25], [.25, .25]], [[.5, .5], [.5, .5]]], [.25, .5],
     [[.25, .5], [.75, .5]], [[.25, .5], [.75, .5]]),
    ("relu", 1, [[[-.25, -.25], [-.25, -.25]], [[.75, .75], [.75, .75]]], [-.25, .75],
     [[-.25, -.5], [-.75, .75]], [[0, 0], [0, .75]]),
    # at the conv output (before the ReLU): the ReLU masks the gradient where A_pre <= 0
    #   alpha = [0.25 * 3/4, 0.5 * 1/4] = [0.1875, 0.125];  weighted = 0.1875 x + 0.125 (-x) = 0.0625 x
    ("conv", 0, [[[.25, .25], [.25, 0]], [[0, 0], [0, .5]]], [.1875, .125],
     [[.0625, .125], [.1875, -.0625]], [[.0625, .125], [.1875, 0]]),
])
def test_grad_cam_by_hand(layer, c, dY_dA, alpha, weighted, L):
    t = xr.grad_cam(tiny_gap_net(), X_TINY, target=c, layer=layer)
    assert t.symbols == ["A", "dY_dA", "alpha", "weighted", "L", "map"]
    assert t.meta["layer"] == layer and t.meta["target"].tolist() == [c]
    assert t.dY_dA.tolist() == [dY_dA]
    assert t.alpha.tolist() == [alpha]
    assert t.weighted.tolist() == [weighted]
    assert t.L.tolist() == [L]
    assert t.map.tolist() == [L]


def test_counterfactual_grad_cam_by_hand():
    # alpha = -[0.1875, 0.125];  weighted = -0.0625 x = [[-.0625, -.125], [-.1875, .0625]]
    t = xr.grad_cam(tiny_gap_net(), X_TINY, target=0, layer="conv", counterfactual=True)
    assert t.alpha.tolist() == [[-.1875, -.125]]
    assert t.L.tolist() == [[[0, 0], [0, .0625]]]   # only the pixel whose removal raises S_0
    assert t.meta["counterfactual"] is True


def test_grad_cam_pp_and_xgrad_cam_by_hand():
    # at "relu", class 0: g^1 = 1/4, g^2 = 1/2 everywhere; sum A^1 = 6, sum A^2 = 1
    #   Grad-CAM++: a^k = g^2 / (2 g^2 + g^3 sum A^k) = 1 / (2 + g sum A^k): a^1 = 1/3.5, a^2 = 1/2.5
    #               alpha_k = sum_ij a^k relu(g^k) = 4 a^k g^k:  alpha = [2/7, 0.8]
    #   XGrad-CAM:  alpha_k = sum_ij (A^k_ij / sum A^k) g^k = g^k:  alpha = [0.25, 0.5]
    pp = xr.grad_cam_pp(tiny_gap_net(), X_TINY, target=0, layer="relu")
    assert torch.allclose(pp.a, T([[[[1 / 3.5] * 2] * 2, [[1 / 2.5] * 2] * 2]]))
    assert torch.allclose(pp.alpha, T([[2 / 7, 0.8]]))
    assert torch.allclose(pp.L, T([[[2 / 7, 4 / 7], [6 / 7, 0.8]]]))
    xg = xr.xgrad_cam(tiny_gap_net(), X_TINY, target=0, layer="relu")
    assert xg.alpha.tolist() == [[.25, .5]]


# --- general identities on a seeded network ------------------------------------------------------------


def gap_net(relu=nn.ReLU) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 4, 3, padding=1), relu1=relu(), pool=nn.MaxPool2d(2),
        conv2=nn.Conv2d(4, 5, 3, padding=1), relu2=relu(),
        gap=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(5, 3))).eval()


def test_cam_S_equals_the_model_score():
    model, x = gap_net(), torch.randn(3, 3, 10, 10)
    t = xr.cam(model, x, target=[0, 1, 2])
    assert torch.allclose(t.S, model(x)[[0, 1, 2], [0, 1, 2]], atol=1e-6)
    assert torch.allclose(t.S, t.meta["y"], atol=1e-6)


def test_grad_cam_alpha_is_cam_weight_over_Z_on_a_gap_net():
    """Right before GAP -> linear, dS_c/dA^k_ij = w^c_k / Z at every position, so alpha^c_k = w^c_k / Z and
    Grad-CAM's weighted sum is CAM's M / Z."""
    model, x = gap_net(), torch.randn(2, 3, 10, 10)
    g, c = xr.grad_cam(model, x, target=[2, 0], layer="relu2"), xr.cam(model, x, target=[2, 0], layer="relu2")
    Z = 5 * 5
    assert torch.allclose(g.alpha, c.w / Z, atol=1e-7)
    assert torch.allclose(g.weighted, c.M / Z, atol=1e-6)
    assert torch.allclose(g.L, (c.M / Z).clamp(min=0), atol=1e-6)


def test_counterfactual_is_grad_cam_with_negated_gradient():
    model, x = gap_net(), torch.randn(2, 3, 10, 10)
    t = xr.grad_cam(model, x, target=[1, 2], layer="conv2")
    cf = xr.grad_cam(model, x, target=[1, 2], layer="conv2", counterfactual=True)
    alpha = (-t.dY_dA).mean((2, 3))
    assert torch.equal(cf.dY_dA, t.dY_dA)                  # the trace keeps the true gradient
    assert torch.allclose(cf.alpha, alpha)
    assert torch.allclose(cf.L, torch.einsum("bk,bkhw->bhw", alpha, t.A).clamp(min=0), atol=1e-6)
    assert torch.allclose(cf.weighted, -t.weighted, atol=1e-6)
    assert (cf.L > 0).any() and (t.L > 0).any()


def test_guided_grad_cam_is_guided_backprop_times_upsampled_grad_cam():
    model, x = gap_net(), torch.randn(2, 3, 10, 10)
    forwards = []
    handle = model.register_forward_pre_hook(lambda module, args: forwards.append(1))
    t = xr.guided_grad_cam(model, x, target=[0, 1], layer="relu2")
    handle.remove()
    assert len(forwards) == 1                    # one forward pass serves both backward passes
    R = xr.guided_backprop(model, x, target=[0, 1]).grad
    L = xr.grad_cam(model, x, target=[0, 1], layer="relu2").L
    up = F.interpolate(L[:, None], size=(10, 10), mode="bilinear", align_corners=False)
    assert torch.equal(t.R, R) and torch.equal(t.L, L)
    assert torch.allclose(t.guided, R * up, atol=1e-7)
    assert torch.allclose(t.map, (R * up).abs().amax(1), atol=1e-7)
    assert (t.guided != 0).any()


def test_saliency_map_is_channel_max_of_abs_gradient():
    model, x = gap_net(), torch.randn(2, 3, 10, 10, requires_grad=False)
    x_ = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x_)[:, 1].sum(), [x_])
    t = xr.saliency(model, x, target=1)
    assert torch.allclose(t.grad, grad) and torch.allclose(t.map, grad.abs().amax(1))


# --- the three ReLU rules through one max-pool and one ReLU (a worked example) -----------------------


def pool_relu_net() -> nn.Sequential:
    """x (1,1,2,8) -> max-pool 2x2 -> p (1,1,1,4) -> ReLU -> flatten -> S = [1, -1, 2, -3] . relu(p)."""
    fc = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        fc.weight.copy_(T([[1, -1, 2, -3]]))
    return nn.Sequential(OrderedDict(pool=nn.MaxPool2d(2), relu=nn.ReLU(), flatten=nn.Flatten(), fc=fc)).eval()


X_POOL = T([[[[3, 0, 1, 2, -4, -1, -5, -6],
               [1, -2, 0, -1, -3, -2, -2, -7]]]])

#               window:       1          2          3           4
# forward   max-pool p      3 @(0,0)   2 @(0,3)   -1 @(0,5)   -2 @(1,6)   (the "switches")
#           ReLU            3          2           0           0          S = 3 - 2 = 1
# backward  R from fc       1         -1           2          -3
#   backprop   R [p>0]      1         -1           0           0
#   deconvnet  max(R,0)     1          0           2           0
#   guided     max(R,0)[p>0] 1         0           0           0
# then each value goes back to its window's switch; every other pixel gets 0.
RULE_EXAMPLE = {
    "saliency": [[1, 0, 0, -1, 0, 0, 0, 0],
                 [0, 0, 0, 0, 0, 0, 0, 0]],
    "deconvnet": [[1, 0, 0, 0, 0, 2, 0, 0],
                  [0, 0, 0, 0, 0, 0, 0, 0]],
    "guided_backprop": [[1, 0, 0, 0, 0, 0, 0, 0],
                        [0, 0, 0, 0, 0, 0, 0, 0]],
}


@pytest.mark.parametrize("method", list(RULE_EXAMPLE))
def test_relu_rules_through_pool_and_relu_by_hand(method):
    model = pool_relu_net()
    assert model(X_POOL).item() == 1.0
    t = getattr(xr, method)(model, X_POOL, target=0)
    print(f"\n{method}: input\n{X_POOL[0, 0].int()}\nsignal at the input\n{t.grad[0, 0].int()}")
    assert t.grad.tolist() == [[RULE_EXAMPLE[method]]]
    assert t.map.tolist() == [[[abs(v) for v in row] for row in RULE_EXAMPLE[method]]]


# --- Neuron targets --------------------------------------------------------------------------------------


class RuleReLU(torch.autograd.Function):
    """A ReLU with a chosen backward rule, written here independently of xai_ref.hooks."""

    @staticmethod
    def forward(ctx, x, rule):
        ctx.save_for_backward(x)
        ctx.rule = rule
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, R):
        (x,) = ctx.saved_tensors
        if ctx.rule == "backprop":
            return R * (x > 0), None
        if ctx.rule == "deconvnet":
            return R.clamp(min=0), None
        return R.clamp(min=0) * (x > 0), None


def reference_neuron_signal(model: nn.Sequential, x, layer: str, score, rule: str) -> torch.Tensor:
    """Run the Sequential by hand up to ``layer`` with rule ReLUs, and backpropagate score(A) -> (B,)."""
    x_ = x.clone().requires_grad_(True)
    h = x_
    for name, m in model.named_children():
        h = RuleReLU.apply(h, rule) if isinstance(m, nn.ReLU) else m(h)
        if name == layer:
            break
    (grad,) = torch.autograd.grad(score(h).sum(), [x_])
    return grad


def neuron_score(k, position):
    def score(A):
        fmap = A[:, k]
        if position == "sum":
            return fmap.sum((1, 2))
        if position == "max":
            return fmap.flatten(1).max(1).values
        return fmap[:, position[0], position[1]]
    return score


@pytest.mark.parametrize("position", [(1, 2), "max", "sum"], ids=["ij", "max", "sum"])
@pytest.mark.parametrize("method, rule", [(xr.saliency, "backprop"), (xr.deconvnet, "deconvnet"),
                                          (xr.guided_backprop, "guided")], ids=["saliency", "deconvnet", "guided"])
@pytest.mark.parametrize("layer", ["conv2", "relu2"])
def test_neuron_target_gives_that_neurons_signal(method, rule, position, layer):
    model, x = gap_net(), torch.randn(2, 3, 8, 8)
    t = method(model, x, target=Neuron(layer, 3, position))
    expected = reference_neuron_signal(model, x, layer, neuron_score(3, position), rule)
    assert (expected != 0).any()
    assert torch.allclose(t.grad, expected, atol=1e-7)
    assert t.meta["target"] is None


def test_neuron_max_is_per_image():
    """'max' picks each image's own strongest position (Zeiler & Fergus project each image's top activation)."""
    model = gap_net()
    x = torch.randn(2, 3, 8, 8)
    A = model[:4](x)[:, 3].flatten(1)
    positions = A.argmax(1)
    grads = [xr.saliency(model, x[b:b + 1], target=Neuron("conv2", 3, divmod(int(positions[b]), 4))).grad
             for b in range(2)]
    assert torch.allclose(xr.saliency(model, x, target=Neuron("conv2", 3, "max")).grad, torch.cat(grads))


@pytest.mark.parametrize("position", [(1, 2), "max", "sum"], ids=["ij", "max", "sum"])
def test_neuron_target_for_occlusion(position):
    model, x = gap_net(), torch.randn(2, 3, 8, 8)
    score = neuron_score(3, position)
    sub = model[:4]  # up to conv2
    t = xr.occlusion(model, x, target=Neuron("conv2", 3, position), window=4, stride=2)
    with torch.no_grad():
        y = score(sub(x))
        expected = torch.empty(2, 3, 3)
        for u in range(3):
            for v in range(3):
                occluded = x.clone()
                occluded[:, :, 2 * u:2 * u + 4, 2 * v:2 * v + 4] = 0
                expected[:, u, v] = y - score(sub(occluded))
    assert torch.allclose(t.drop, expected, atol=1e-6)
    assert torch.allclose(t.meta["y"], y)


# --- target forms ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["saliency", "deconvnet", "guided_backprop", "grad_cam", "grad_cam_pp",
                                    "xgrad_cam", "guided_grad_cam", "occlusion", "cam"])
def test_target_forms_agree(method):
    model, x = gap_net(), torch.randn(2, 3, 8, 8)
    kwargs = {"window": 4, "stride": 2} if method == "occlusion" else {}
    fn = getattr(xr, method)
    forms = {"int": 1, "list": [1, 1], "tuple": (1, 1), "tensor": torch.tensor([1, 1]),
             "0-d tensor": torch.tensor(1), "numpy int": np.int64(1), "numpy array": np.array([1, 1]),
             "callable": lambda out: out[:, 1]}
    if method == "cam":
        del forms["callable"]  # CAM reads the weights of a class; a callable score has none
    maps = {name: fn(model, x, target=target, **kwargs).map for name, target in forms.items()}
    for name, m in maps.items():
        assert torch.allclose(m, maps["int"], atol=1e-7), name
    # None is the predicted class of each image
    predicted = model(x).argmax(1).tolist()
    assert torch.allclose(fn(model, x, target=None, **kwargs).map, fn(model, x, target=predicted, **kwargs).map)
    # and another class gives another map
    assert not torch.allclose(fn(model, x, target=2, **kwargs).map, maps["int"])


def test_per_image_targets():
    model, x = gap_net(), torch.randn(2, 3, 8, 8)
    both = xr.grad_cam(model, x, target=[0, 2])
    assert torch.allclose(both.map[0], xr.grad_cam(model, x[:1], target=0).map[0], atol=1e-6)
    assert torch.allclose(both.map[1], xr.grad_cam(model, x[1:], target=2).map[0], atol=1e-6)
    assert both.meta["target"].tolist() == [0, 2]


# --- occlusion on a linear model: the drops are sums of weights ------------------------------------------


def linear_model() -> nn.Sequential:
    """S_0 = sum_ij W_ij x_ij with W = [[1,2,3],[4,5,6],[7,8,9]] on a 1x3x3 image (S_1 = -S_0)."""
    fc = nn.Linear(9, 2, bias=False)
    with torch.no_grad():
        fc.weight.copy_(torch.stack([torch.arange(1.0, 10), -torch.arange(1.0, 10)]))
    return nn.Sequential(nn.Flatten(), fc).eval()


@pytest.mark.parametrize("baseline, drop, map_", [
    # x = ones; the 2x2 window at (u,v) removes sum_{window} W * (1 - baseline)
    #   drops: (0,0): 1+2+4+5 = 12, (0,1): 2+3+5+6 = 16, (1,0): 4+5+7+8 = 24, (1,1): 5+6+8+9 = 28
    #   map: each pixel's mean over the windows covering it, e.g. centre (12+16+24+28)/4 = 20
    (0.0, [[12, 16], [24, 28]], [[12, 14, 16], [18, 20, 22], [24, 26, 28]]),
    (0.5, [[6, 8], [12, 14]], [[6, 7, 8], [9, 10, 11], [12, 13, 14]]),
])
def test_occlusion_on_a_linear_model_by_hand(baseline, drop, map_):
    t = xr.occlusion(linear_model(), torch.ones(1, 1, 3, 3), target=0, window=2, stride=1, baseline=baseline)
    assert t.symbols == ["corners", "drop", "map"]
    assert t.corners.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert t.drop.tolist() == [drop]
    assert t.map.tolist() == [map_]
    assert t.meta["y"].tolist() == [45.0]


def test_occlusion_uncovered_pixels_are_zero_and_rectangular_windows():
    # window (1, 2), stride (2, 2) on 3x3: rows 0 and 2, column pairs starting at 0 only (2 + 2 > 3)
    t = xr.occlusion(linear_model(), torch.ones(1, 1, 3, 3), target=0, window=(1, 2), stride=2)
    assert t.drop.tolist() == [[[1 + 2], [7 + 8]]]
    assert t.map.tolist() == [[[3, 3, 0], [0, 0, 0], [15, 15, 0]]]


# --- gradient ascent: class models and fooling images -----------------------------------------------------


def test_class_model_raises_the_score_and_is_deterministic():
    model = gap_net()
    kwargs = dict(shape=(3, 12, 12), steps=15, lr=1.0, l2=1e-5, jitter=2, blur_every=4, blur_sigma=0.5, seed=3)
    t = xr.class_model(model, target=[1, 2], **kwargs)
    assert t.image.shape == (2, 3, 12, 12) and t.S.shape == (15, 2)
    assert torch.equal(t.I0, torch.zeros(2, 3, 12, 12))
    with torch.no_grad():
        final = model(t.image)[[0, 1], [1, 2]]
    start = model(torch.zeros(1, 3, 12, 12))[0, [1, 2]]
    assert (final > start + 0.01).all()  # (a small random net: its scores move little over [0, 1] images)
    assert t.image.min() >= 0 and t.image.max() <= 1                 # the default pixel_range
    assert torch.allclose(t.J, t.S - t.R)
    again = xr.class_model(model, target=[1, 2], **kwargs)
    assert torch.equal(again.image, t.image) and torch.equal(again.S, t.S)
    other_seed = xr.class_model(model, target=[1, 2], **{**kwargs, "seed": 4})
    assert not torch.equal(other_seed.image, t.image)                # the seed drives the jitter
    assert hook_count(model) == 0 and all(p.grad is None for p in model.parameters())


def test_class_model_random_init_follows_the_seed():
    model = gap_net()
    a, b, c = (xr.class_model(model, target=np.int64(0), shape=(3, 8, 8), steps=2, init="random", seed=s)
               for s in (7, 7, 8))
    assert torch.equal(a.I0, b.I0) and torch.equal(a.image, b.image)
    assert not torch.equal(a.I0, c.I0) and a.I0.abs().max() > 0


def test_class_model_of_a_neuron():
    model = gap_net()
    t = xr.class_model(model, target=Neuron("relu2", 1, "sum"), shape=(3, 8, 8), steps=10, lr=0.5)
    with torch.no_grad():
        before, after = model[:5](torch.zeros(1, 3, 8, 8))[:, 1].sum(), model[:5](t.image)[:, 1].sum()
    assert after > before


@pytest.fixture(scope="module")
def efficientnet():
    try:
        from xai_ref import models
        from xai_ref.data import photos
    except ModuleNotFoundError as e:
        if e.name in ("xai_ref.models", "xai_ref.data", "xai_ref.data.photos"):
            pytest.skip(f"{e.name} does not exist yet")
        raise
    return models.load("efficientnet_lite0"), photos


def test_class_model_on_efficientnet(efficientnet):
    model, photos = efficientnet
    c = 130  # flamingo
    lo, hi = photos.PIXEL_RANGE
    t = xr.class_model(model, target=c, shape=(3, 224, 224), steps=3, lr=10.0, jitter=4, blur_every=2,
                       pixel_range=photos.PIXEL_RANGE)
    with torch.no_grad():
        start, final = model(t.I0)[0, c].item(), model(t.image)[0, c].item()
    assert t.S[0, 0].item() == pytest.approx(start, abs=1e-4)
    assert final > start + 0.5
    assert t.image.min() >= lo and t.image.max() <= hi
    assert hook_count(model) == 0 and not model.training


def shapes_net_and_images():
    try:
        from xai_ref import models
        from xai_ref.data import shapes
    except ModuleNotFoundError as e:
        if e.name in ("xai_ref.models", "xai_ref.data", "xai_ref.data.shapes"):
            pytest.skip(f"{e.name} does not exist yet")
        raise
    from pathlib import Path

    if not Path(str(models.weights_path("vgg_shapes"))).exists():
        pytest.skip("the trained weights of vgg_shapes are not shipped yet (python -m xai_ref.training.shapes_nets vgg_shapes)")
    return models.load("vgg_shapes"), shapes.generate(8, seed=11, split="test")


def test_fooling_image_flips_a_trained_shapes_net():
    model, batch = shapes_net_and_images()
    x, label = batch.to_torch()
    with torch.no_grad():
        pred = model(x).argmax(1)
    keep = pred == label
    x, label = x[keep][:4], label[keep][:4]
    assert len(x) >= 2, "the trained net should classify most test images correctly"
    target = ((label + 1) % 6).tolist()
    t = xr.fooling_image(model, x, target, lr=0.5, max_steps=50, pixel_range=(0.0, 1.0))
    assert t.fooled.all()
    with torch.no_grad():
        assert model(t.image).argmax(1).tolist() == target
    assert torch.allclose(t.delta, t.image - x)
    print(f"\nfooling: max |delta| = {t.delta.abs().max():.3f}, steps = {len(t.S) - 1}")
    relative = t.delta.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)   # measured: 0.16, 0.09, 0.06, 0.02
    assert relative.max() < 0.2 and relative.median() < 0.1                    # a small change of the image


def test_fooling_image_on_a_seeded_net():
    model, x = gap_net(), torch.rand(3, 3, 8, 8)
    with torch.no_grad():
        pred = model(x).argmax(1)
    target = ((pred + 1) % 3).tolist()
    t = xr.fooling_image(model, x, target, lr=0.5, max_steps=100)
    assert t.fooled.all() and t.pred[-1].tolist() == target and t.pred[0].tolist() == pred.tolist()
    with torch.no_grad():
        assert model(t.image).argmax(1).tolist() == target
    # an image that is already its target is left alone
    same = xr.fooling_image(model, x, pred.tolist(), lr=0.1, max_steps=10)
    assert torch.equal(same.image, x) and same.fooled.all() and len(same.S) == 1


# --- attention maps and the AT loss ----------------------------------------------------------------------


A_ATT = T([[[[1, -2], [0, 3]],
            [[2, 1], [-1, 0]]]])  # (1, 2 channels, 2, 2)


@pytest.mark.parametrize("p, kind, Q", [
    (2, "sum", [[5, 5], [1, 9]]),    # 1+4, 4+1, 0+1, 9+0
    (1, "sum", [[3, 3], [1, 3]]),    # 1+2, 2+1, 0+1, 3+0
    (2, "max", [[4, 4], [1, 9]]),
    (4, "sum", [[17, 17], [1, 81]]),
])
def test_attention_map_by_hand(p, kind, Q):
    assert xr.attention_map(A_ATT, p=p, kind=kind).tolist() == [Q]


def test_normalised_attention_by_hand():
    q = xr.normalised_attention(A_ATT)  # [5, 5, 1, 9] / sqrt(25 + 25 + 1 + 81)
    assert torch.allclose(q, T([[5, 5, 1, 9]]) / 132**0.5)
    assert torch.allclose(q.norm(dim=1), torch.ones(1))


def test_at_loss_by_hand():
    # student attends only to (0,0), teacher only to (0,1): q_S = [1,0,0,0], q_T = [0,1,0,0]
    # loss = mean((q_S - q_T)^2) = (1 + 1) / 4 = 0.5
    S = torch.zeros(1, 3, 2, 2)
    S[0, 1, 0, 0] = 2.0
    Tt = torch.zeros(1, 5, 2, 2)
    Tt[0, 4, 0, 1] = -7.0
    assert xr.at_loss(S, Tt).item() == 0.5
    assert xr.at_loss(S, S).item() == 0.0
    assert xr.attention_transfer(S, Tt).loss.item() == 0.5


def reference_at(x):
    """The authors' reference code (Zagoruyko & Komodakis, attention-transfer/utils.py)."""
    return F.normalize(x.pow(2).mean(1).view(x.size(0), -1))


def reference_at_loss(x, y):
    return (reference_at(x) - reference_at(y)).pow(2).mean()


def test_at_loss_matches_the_reference_code():
    g = torch.Generator().manual_seed(0)
    students = [torch.randn(4, 8, 6, 6, generator=g), torch.randn(4, 16, 3, 3, generator=g)]
    teachers = [torch.randn(4, 32, 6, 6, generator=g), torch.randn(4, 64, 3, 3, generator=g)]
    expected = sum(reference_at_loss(s, t) for s, t in zip(students, teachers))
    assert torch.allclose(xr.at_loss(students, teachers), expected, rtol=1e-6)
    assert torch.allclose(xr.at_loss(students[0], teachers[0]), reference_at_loss(students[0], teachers[0]), rtol=1e-6)
    assert torch.allclose(xr.normalised_attention(students[1]), reference_at(students[1]), atol=1e-7)


def test_at_loss_gradient_reaches_the_student_only():
    S = torch.randn(2, 4, 5, 5, requires_grad=True)
    Tt = torch.randn(2, 6, 5, 5, requires_grad=True)
    xr.at_loss(S, Tt).backward()
    assert S.grad is not None and S.grad.abs().sum() > 0
    assert Tt.grad is None
