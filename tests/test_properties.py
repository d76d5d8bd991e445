"""Properties of every PyTorch method over random small architectures (hypothesis).

A random network: 1-3 blocks of conv (1x1 or 3x3) [-> BatchNorm] -> ReLU or ReLU6 (in place or not)
[-> max-pool], then GAP -> linear; random input size, channels and batch size 1..4. For every method:

* the output shapes;
* explaining a batch gives the same as explaining each image alone (eval mode: images do not interact);
* the model is restored: no hook, training flags, in-place flags, requires_grad, the very same .grad
  tensors, BatchNorm running statistics; the input tensor is unchanged (values, requires_grad, no .grad).

Float64, so a ReLU gate never flips between the batched and the single-image computation.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import xai_ref as xr
from conftest import hook_count


pytestmark = pytest.mark.usefixtures("one_thread")


SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Example:
    model: nn.Sequential
    x: torch.Tensor
    target: list[int] | None
    layer: str               # the last spatial layer (the layer before GAP)
    n_classes: int
    h: int                   # the layer's spatial size
    w: int
    window: int
    stride: int

    def __repr__(self) -> str:  # hypothesis prints this for a failing example
        return (f"Example(x={tuple(self.x.shape)}, target={self.target}, layer={self.layer!r}, "
                f"window={self.window}, stride={self.stride}, model={self.model})")


@st.composite
def examples(draw) -> Example:
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    C = draw(st.integers(1, 3))
    H, W = draw(st.integers(4, 12)), draw(st.integers(4, 12))
    B = draw(st.integers(1, 4))
    layers, c, h, w = [], C, H, W
    for i in range(draw(st.integers(1, 3))):
        k = draw(st.sampled_from([1, 3]))
        out = draw(st.integers(2, 6))
        layers.append((f"conv{i}", nn.Conv2d(c, out, k, padding=k // 2)))
        if draw(st.booleans()):
            bn = nn.BatchNorm2d(out)
            bn.running_mean.normal_(0, 0.5, generator=gen)
            bn.running_var.uniform_(0.5, 2.0, generator=gen)
            layers.append((f"bn{i}", bn))
        relu = draw(st.sampled_from([nn.ReLU, nn.ReLU6]))
        layers.append((f"relu{i}", relu(inplace=draw(st.booleans()))))
        if h >= 4 and w >= 4 and draw(st.booleans()):
            layers.append((f"pool{i}", nn.MaxPool2d(2)))
            h, w = h // 2, w // 2
        c = out
    layer = layers[-1][0]
    n_classes = draw(st.integers(2, 4))
    layers += [("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(c, n_classes))]
    torch.manual_seed(seed)
    model = nn.Sequential(OrderedDict(layers)).double()
    x = torch.randn(B, C, H, W, generator=gen, dtype=torch.float64).requires_grad_(draw(st.booleans()))
    target = draw(st.none() | st.lists(st.integers(0, n_classes - 1), min_size=B, max_size=B))
    window = draw(st.integers(1, min(H, W, 4)))
    stride = draw(st.integers(1, 3))
    return Example(model, x, target, layer, n_classes, h, w, window, stride)


def run(method: str, e: Example, x=None, target="same") -> xr.Trace:
    x = e.x if x is None else x
    target = e.target if target == "same" else target
    fn = getattr(xr, method)
    if method == "gap":
        return fn(e.model, x)
    if method == "occlusion":
        return fn(e.model, x, target, window=e.window, stride=e.stride)
    if method in ("saliency", "deconvnet", "guided_backprop"):
        return fn(e.model, x, target)
    return fn(e.model, x, target, layer=None)  # the default: the last spatial layer


METHODS = ["gap", "cam", "grad_cam", "grad_cam_pp", "xgrad_cam", "guided_grad_cam", "saliency", "deconvnet",
           "guided_backprop", "occlusion"]


def expected_shapes(method: str, e: Example) -> dict[str, tuple]:
    B, C, H, W = e.x.shape
    K = e.model.fc.in_features
    maps = {"map": (B, H, W)}
    if method == "gap":
        return {"A": (B, K, e.h, e.w), "F": (B, K), "S": (B, e.n_classes)}
    if method == "cam":
        return {"f": (B, K, e.h, e.w), "w": (B, K), "M": (B, e.h, e.w), "S": (B,), **maps}
    if method in ("grad_cam", "grad_cam_pp", "xgrad_cam", "guided_grad_cam"):
        shapes = {"A": (B, K, e.h, e.w), "dY_dA": (B, K, e.h, e.w), "alpha": (B, K), "weighted": (B, e.h, e.w),
                  "L": (B, e.h, e.w), **maps}
        if method == "grad_cam_pp":
            shapes["a"] = (B, K, e.h, e.w)
        if method == "guided_grad_cam":
            shapes.update({"L_up": (B, 1, H, W), "R": (B, C, H, W), "guided": (B, C, H, W)})
        return shapes
    if method == "occlusion":
        nu, nv = (H - e.window) // e.stride + 1, (W - e.window) // e.stride + 1
        return {"corners": (nu * nv, 2), "drop": (B, nu, nv), **maps}
    return {"grad": (B, C, H, W), **maps}


# --- model state ---------------------------------------------------------------------------------------


def prepare(model: nn.Module, data) -> None:
    """Training mode, one random module back in eval, one random frozen parameter, one random .grad."""
    model.train()
    modules = list(model.modules())
    modules[data.draw(st.integers(0, len(modules) - 1))].eval()
    params = list(model.parameters())
    params[data.draw(st.integers(0, len(params) - 1))].requires_grad_(False)
    p = params[data.draw(st.integers(0, len(params) - 1))]
    p.grad = torch.rand_like(p)


def snapshot(model: nn.Module):
    return {
        "training": [m.training for m in model.modules()],
        "inplace": [getattr(m, "inplace", None) for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grad": [p.grad for p in model.parameters()],
        "grad_values": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "params": [p.detach().clone() for p in model.parameters()],
        "buffers": [b.clone() for b in model.buffers()],
    }


def assert_restored(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert hook_count(model) == 0
    assert after["training"] == before["training"]
    assert after["inplace"] == before["inplace"]
    assert after["requires_grad"] == before["requires_grad"]
    assert all(a is b for a, b in zip(after["grad"], before["grad"]))
    assert all((a is None and b is None) or torch.equal(a, b)
               for a, b in zip(after["grad_values"], before["grad_values"]))
    assert all(torch.equal(a, b) for a, b in zip(after["params"], before["params"]))
    assert all(torch.equal(a, b) for a, b in zip(after["buffers"], before["buffers"]))  # BatchNorm statistics


# --- the properties -------------------------------------------------------------------------------------


@SETTINGS
@given(e=examples(), data=st.data())
def test_shapes_and_restoration(e, data):
    with torch.no_grad():
        scores = e.model.eval()(e.x)
    prepare(e.model, data)
    x_copy, x_requires_grad = e.x.detach().clone(), e.x.requires_grad
    for method in METHODS:
        before = snapshot(e.model)
        t = run(method, e)
        assert_restored(e.model, before)
        assert torch.equal(e.x, x_copy) and e.x.requires_grad == x_requires_grad and e.x.grad is None
        for symbol, shape in expected_shapes(method, e).items():
            assert tuple(t[symbol].shape) == shape, (method, symbol)
            assert t[symbol].dtype in (torch.float64, torch.int64), (method, symbol)
            assert not t[symbol].requires_grad, (method, symbol)
        if "map" in t:
            assert torch.isfinite(t.map).all()
        if method in ("grad_cam", "grad_cam_pp", "xgrad_cam", "saliency", "deconvnet", "guided_backprop"):
            assert (t.map >= 0).all()
        if method == "cam":  # the check term equals the model's score (eval mode)
            assert torch.allclose(t.S, scores.gather(1, t.meta["target"][:, None])[:, 0], atol=1e-10)
    assert hook_count(e.model) == 0


@SETTINGS
@given(e=examples())
def test_batch_equals_each_image_alone(e):
    B = e.x.shape[0]
    for method in METHODS:
        batched = run(method, e)
        singles = [run(method, e, e.x[b:b + 1], None if e.target is None else [e.target[b]]) for b in range(B)]
        symbols = [s for s in batched.symbols if s not in ("corners", "L_up")]
        for symbol in symbols:
            joined = torch.cat([s[symbol] for s in singles])
            assert torch.allclose(batched[symbol], joined, rtol=1e-9, atol=1e-12), (method, symbol)
        if method == "gap":
            continue
        classes = batched.meta.get("target")
        if classes is not None:
            assert classes.tolist() == [int(s.meta["target"][0]) for s in singles]
