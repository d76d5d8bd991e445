"""Bad input: each case raises the right error type with a message that says what to do, and leaves
the model exactly as it was (no hook, same training flags, requires_grad and .grad, same device)."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

import xai_ref as xr
from xai_ref import Neuron
from conftest import hook_count


pytestmark = pytest.mark.usefixtures("one_thread")


def gap_net() -> nn.Sequential:
    """3 -> conv1 (4) -> relu1 -> pool -> conv2 (5) -> relu2 -> gap -> flatten -> fc (3 classes), in-place ReLUs."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 4, 3, padding=1), relu1=nn.ReLU(inplace=True), pool=nn.MaxPool2d(2),
        conv2=nn.Conv2d(4, 5, 3, padding=1), relu2=nn.ReLU(inplace=True),
        gap=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(5, 3)))


def vgg_like() -> nn.Sequential:
    """A flatten + fully-connected head: no GAP, so CAM does not apply."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 4, 3, padding=1), relu1=nn.ReLU(), pool=nn.MaxPool2d(2),
        flatten=nn.Flatten(), fc1=nn.Linear(4 * 4 * 4, 8), fc1_relu=nn.ReLU(), dropout=nn.Dropout(0.5),
        fc2=nn.Linear(8, 3)))


class GELUNet(nn.Module):
    """GELU activations only: no ReLU rule applies anywhere."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.GELU()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.act(self.conv1(x)).mean((2, 3)))


def on_meta(make):
    return lambda: make().to("meta")


X = torch.rand(2, 3, 8, 8)


def with_value(value):
    x = X.clone()
    x[1, 2, 3, 4] = value
    return x


# (id, model builder, the call, error type, a phrase the message must contain)
CASES = [
    # the image batch
    ("rank-3", gap_net, lambda m: xr.saliency(m, X[0]), ValueError, r"\(B,C,H,W\).*for one image use x\[None\]"),
    ("rank-2", gap_net, lambda m: xr.grad_cam(m, X[0, 0]), ValueError, r"must be a batch of shape \(B,C,H,W\)"),
    ("wrong-channels", gap_net, lambda m: xr.grad_cam(m, X[:, :1]), ValueError, r"expects 3 channels and receives 1; x must be \(B,3,H,W\)"),
    ("uint8-image", gap_net, lambda m: xr.saliency(m, (X * 255).to(torch.uint8)), TypeError,
     r"floating-point.*x\.float\(\) / 255"),
    ("nan-image", gap_net, lambda m: xr.guided_backprop(m, with_value(float("nan"))), ValueError, "NaN or infinite"),
    ("inf-image", gap_net, lambda m: xr.occlusion(m, with_value(float("inf"))), ValueError, "NaN or infinite"),
    ("empty-batch", gap_net, lambda m: xr.cam(m, X[:0]), ValueError, "pass at least one image"),
    ("numpy-image", gap_net, lambda m: xr.saliency(m, X.numpy()), TypeError, r"torch\.as_tensor"),
    ("model-not-a-module", gap_net, lambda m: xr.grad_cam(m.state_dict(), X), TypeError,
     r"model must be a torch\.nn\.Module"),
    ("model-on-other-device", on_meta(gap_net), lambda m: xr.saliency(m, X), ValueError,
     r"x is on cpu but the model is on meta; move one of them"),
    ("x-on-other-device", gap_net, lambda m: xr.grad_cam(m, X.to("meta")), ValueError,
     r"x is on meta but the model is on cpu; move one of them"),
    ("float64-x-float32-model", gap_net, lambda m: xr.saliency(m, X.double()), TypeError,
     r"x is torch\.float64 .* use x\.to\(torch\.float32\)"),
    # the target
    ("target-out-of-range", gap_net, lambda m: xr.grad_cam(m, X, target=3), ValueError, r"valid targets are 0\.\.2"),
    ("negative-target", gap_net, lambda m: xr.cam(m, X, target=[0, -1]), ValueError, r"valid targets are 0\.\.2"),
    ("target-list-wrong-length", gap_net, lambda m: xr.saliency(m, X, target=[0, 1, 2]), ValueError,
     "one class per image"),
    ("float-target", gap_net, lambda m: xr.grad_cam(m, X, target=1.0), TypeError, "target must be None, an int"),
    ("float-tensor-target", gap_net, lambda m: xr.occlusion(m, X, target=torch.tensor([0.0, 1.0])), TypeError,
     "classes must be integers"),
    ("string-target", gap_net, lambda m: xr.deconvnet(m, X, target="cat"), TypeError, "a sequence of B ints"),
    ("callable-target-wrong-shape", gap_net, lambda m: xr.saliency(m, X, target=lambda out: out.sum()), ValueError,
     r"one score per image, shape \(2,\)"),
    ("neuron-channel-out-of-range", gap_net, lambda m: xr.saliency(m, X, target=Neuron("conv2", 5)), ValueError,
     r"in 0\.\.4 \(the layer has 5 feature maps\)"),
    ("neuron-position-outside", gap_net, lambda m: xr.guided_backprop(m, X, target=Neuron("conv2", 0, (4, 0))),
     ValueError, r"outside the 4x4 feature map"),
    ("neuron-bad-position", gap_net, lambda m: xr.occlusion(m, X, target=Neuron("conv2", 0, "mean")), ValueError,
     r"'max' or 'sum'"),
    # the layer
    ("unknown-layer-name", gap_net, lambda m: xr.grad_cam(m, X, layer="conv3"), ValueError,
     r"unknown layer 'conv3'; nearest valid names: \[.*'conv2'.*\]"),
    ("layer-of-another-model", gap_net, lambda m: xr.grad_cam(m, X, layer=nn.Conv2d(3, 4, 3)), ValueError,
     "not a module of this model"),
    ("layer-not-a-name", gap_net, lambda m: xr.grad_cam(m, X, layer=3), TypeError, "a dotted name"),
    ("grad-cam-on-fc-layer", gap_net, lambda m: xr.grad_cam(m, X, layer="fc"), ValueError,
     r"spatial output \(B,K,h,w\).*Pick a convolutional layer"),
    ("grad-cam-pp-on-flatten", vgg_like, lambda m: xr.grad_cam_pp(m, X, layer="flatten"), ValueError,
     "Pick a convolutional layer"),
    ("cam-on-fc-head", vgg_like, lambda m: xr.cam(m, X), ValueError,
     r"For a flatten \+ fully-connected head use grad_cam"),
    ("cam-without-linear", lambda: nn.Sequential(nn.Conv2d(3, 3, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
     lambda m: xr.cam(m, X), ValueError, "use grad_cam instead"),
    # activations with no ReLU rule
    ("guided-backprop-gelu-only", GELUNet, lambda m: xr.guided_backprop(m, X), ValueError,
     r"computed no ReLU in its forward pass \(activations seen: gelu\).*Use saliency"),
    ("deconvnet-gelu-only", GELUNet, lambda m: xr.deconvnet(m, X), ValueError, "the deconvnet rule is a rule for ReLUs"),
    ("guided-grad-cam-gelu-only", GELUNet, lambda m: xr.guided_grad_cam(m, X), ValueError, "computed no ReLU"),
    # occlusion settings
    ("occlusion-window-zero", gap_net, lambda m: xr.occlusion(m, X, window=0), ValueError,
     "window must be an int >= 1"),
    ("occlusion-window-float", gap_net, lambda m: xr.occlusion(m, X, window=2.5), TypeError,
     "window must be an int >= 1"),
    ("occlusion-stride-triple", gap_net, lambda m: xr.occlusion(m, X, stride=(1, 2, 3)), ValueError,
     "stride must be a positive int or a pair"),
    ("occlusion-window-too-big", gap_net, lambda m: xr.occlusion(m, X, window=(9, 2)), ValueError,
     r"larger than the image \(8, 8\)"),
    # gradient ascent settings
    ("class-model-steps-zero", gap_net, lambda m: xr.class_model(m, 0, shape=(3, 8, 8), steps=0), ValueError,
     "steps must be an int >= 1"),
    ("class-model-negative-lr", gap_net, lambda m: xr.class_model(m, 0, shape=(3, 8, 8), lr=-1.0), ValueError,
     r"lr must be a finite number in \(0"),
    ("class-model-pixel-range", gap_net, lambda m: xr.class_model(m, 0, shape=(3, 8, 8), pixel_range=(1, 0)),
     ValueError, "low < high"),
    ("class-model-init", gap_net, lambda m: xr.class_model(m, 0, shape=(3, 8, 8), steps=1, init="ones"), ValueError,
     "init must be 'zeros', 'random' or an image"),
    ("class-model-shape", gap_net, lambda m: xr.class_model(m, 0, shape=(8, 8)), ValueError,
     r"one image's \(C, H, W\)"),
    ("class-model-blur-sigma-zero", gap_net, lambda m: xr.class_model(m, 0, shape=(3, 8, 8), blur_every=1,
                                                                       blur_sigma=0.0), ValueError,
     "blur_sigma must be > 0 when blur_every > 0"),
    ("class-model-float-target", gap_net, lambda m: xr.class_model(m, 1.5, shape=(3, 8, 8)), TypeError,
     "target must be a class index"),
    ("class-model-target-out-of-range", gap_net, lambda m: xr.class_model(m, 7, shape=(3, 8, 8), steps=2),
     ValueError, r"valid targets are 0\.\.2"),
    ("class-model-wrong-channels", gap_net, lambda m: xr.class_model(m, 0, shape=(1, 8, 8), steps=2), ValueError,
     r"x must be \(B,3,H,W\)"),
    ("fooling-max-steps", gap_net, lambda m: xr.fooling_image(m, X, 0, max_steps=0), ValueError,
     "max_steps must be an int >= 1"),
    ("fooling-numpy-image", gap_net, lambda m: xr.fooling_image(m, X.numpy(), 0), TypeError, r"torch\.as_tensor"),
    ("fooling-float-target", gap_net, lambda m: xr.fooling_image(m, X, 0.5), TypeError,
     "target must be a class index"),
    # attention transfer
    ("at-loss-spatial-mismatch", gap_net, lambda m: xr.at_loss(torch.rand(2, 4, 8, 8), torch.rand(2, 6, 4, 4)),
     ValueError, "same batch and spatial size .* interpolate one first"),
    ("at-loss-pair-count", gap_net, lambda m: xr.at_loss([torch.rand(2, 4, 8, 8)] * 2, [torch.rand(2, 4, 8, 8)]),
     ValueError, "pass one per matching depth"),
    ("attention-map-rank", gap_net, lambda m: xr.attention_map(torch.rand(4, 8, 8)), ValueError,
     r"activations \(B,C,h,w\)"),
    ("attention-map-p", gap_net, lambda m: xr.attention_map(torch.rand(1, 4, 8, 8), p=0), ValueError,
     r"p \(the paper uses 1, 2 or 4\) must be a finite number in \(0, 64\]"),
    ("attention-map-kind", gap_net, lambda m: xr.attention_map(torch.rand(1, 4, 8, 8), kind="mean"), ValueError,
     "kind must be one of"),
]

if torch.cuda.is_available():
    CASES.append(("x-on-cuda-model-on-cpu", gap_net, lambda m: xr.saliency(m, X.cuda()), ValueError,
                  r"x is on cuda:0 but the model is on cpu; move one of them"))


def prepare(model: nn.Module) -> nn.Module:
    """An awkward starting state: training mode with one submodule in eval, a frozen parameter, a .grad."""
    model.train()
    children = list(model.children())
    children[0].eval()
    params = list(model.parameters())
    params[0].requires_grad_(False)
    params[-1].grad = torch.full_like(params[-1], 0.25)
    return model


def state(model: nn.Module):
    return ([m.training for m in model.modules()], [getattr(m, "inplace", None) for m in model.modules()],
            [(p.requires_grad, p.grad, p.device) for p in model.parameters()])


@pytest.mark.parametrize("make_model, call, error, phrase", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(make_model, call, error, phrase):
    model = prepare(make_model())
    before = state(model)
    x_before = X.clone()
    with pytest.raises(error, match=phrase):
        call(model)
    assert hook_count(model) == 0
    after = state(model)
    assert after[0] == before[0] and after[1] == before[1]
    for (rg0, g0, d0), (rg1, g1, d1) in zip(before[2], after[2]):
        assert rg0 == rg1 and g1 is g0 and d0 == d1
    assert torch.equal(X, x_before)


def test_enough_cases():
    assert len(CASES) >= 15
    assert len({c[0] for c in CASES}) == len(CASES)


def test_the_model_still_works_after_errors():
    """After a failing guided call on an in-place ReLU net the model computes exactly what it did before."""
    model, x = gap_net().eval(), torch.rand(2, 3, 8, 8)
    expected = model(x).detach()
    with pytest.raises(ValueError):
        xr.guided_backprop(model, x, target=Neuron("conv2", 9))
    assert torch.equal(model(x), expected)
    assert all(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))
    assert torch.equal(xr.saliency(model, x, 0).grad, xr.saliency(gap_net().eval(), x, 0).grad)
