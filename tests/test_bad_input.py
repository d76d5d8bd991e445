"""Bad input: each case raises the right error type with a message that says what to do, and leaves
the model exactly as it was (no hook, same training flags, requires_grad and .grad, same device)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import xai_ref as xr
from xai_ref import Neuron
from xai_ref import metrics as M
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


MAPS = torch.rand(2, 8, 8)
BOXES = torch.tensor([[1, 1, 5, 6], [0, 2, 8, 8]])
MASKS = BOXES.new_zeros(2, 8, 8, dtype=torch.bool)
MASKS[0, 1:6, 1:5] = MASKS[1, 2:, :] = True


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
    ("wrt-empty", gap_net, lambda m: xr.forward_backward(m, X, wrt=()), ValueError,
     r"wrt must be a non-empty tuple of 'input' and/or 'layer', got \(\)"),
    ("wrt-a-string", gap_net, lambda m: xr.forward_backward(m, X, wrt="layer"), ValueError,
     r"wrt must be a non-empty tuple"),
    ("wrt-unknown", gap_net, lambda m: xr.forward_backward(m, X, wrt=("input", "weights")), ValueError,
     r"'input' and/or 'layer'"),
    ("forward-backward-rule", gap_net, lambda m: xr.forward_backward(m, X, rule="lrp"), ValueError,
     r"rule must be a ReLU rule, one of \('backprop', 'deconvnet', 'guided'\), got 'lrp'"),
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
    ("attention-map-int-activations", gap_net, lambda m: xr.attention_map(torch.ones(1, 4, 8, 8, dtype=torch.long)),
     TypeError, "A must be floating-point activations"),
    ("normalised-attention-p-nan", gap_net, lambda m: xr.normalised_attention(torch.rand(1, 4, 8, 8), p=float("nan")),
     ValueError, r"p .* must be a finite number"),
    ("at-loss-no-pairs", gap_net, lambda m: xr.at_loss([], []), TypeError, "student must be activations"),
    ("attention-transfer-two-pairs", gap_net,
     lambda m: xr.attention_transfer([torch.rand(2, 4, 8, 8)] * 2, [torch.rand(2, 4, 8, 8)] * 2), ValueError,
     "one pair of layers"),
    # more targets, layers and settings
    ("huge-class-index", gap_net, lambda m: xr.saliency(m, X, target=10**30), ValueError, r"valid targets are 0\.\.2"),
    ("huge-numpy-class-index", gap_net, lambda m: xr.grad_cam(m, X, target=np.uint64(2**64 - 1)), ValueError,
     "out of range"),
    ("target-tensor-2d", gap_net, lambda m: xr.xgrad_cam(m, X, target=torch.tensor([[0, 1]])), ValueError,
     r"one class index per image, shape \(2,\)"),
    ("callable-target-detached", gap_net, lambda m: xr.saliency(m, X, target=lambda out: out[:, 0].detach()),
     ValueError, "not connected to the model by autograd"),
    ("callable-target-integer", gap_net, lambda m: xr.grad_cam(m, X, target=lambda out: out.argmax(1)), TypeError,
     "floating-point scores"),
    ("logits-on-a-tensor-output", gap_net, lambda m: xr.grad_cam(m, X, logits=0), ValueError, "leave logits=None"),
    ("gap-fc-not-linear", gap_net, lambda m: xr.gap(m, X, fc="conv2"), ValueError, "fc must be the nn.Linear"),
    ("neuron-negative-channel", gap_net, lambda m: Neuron("conv2", -1), ValueError,
     "Neuron channel must be an int >= 0"),
    ("token-grid-not-square", gap_net, lambda m: xr.token_grid(torch.rand(2, 18, 4)), ValueError, "not a square grid"),
    ("occlusion-negative-batch-size", gap_net, lambda m: xr.occlusion(m, X, batch_size=-1), ValueError,
     "batch_size must be an int >= 1"),
    ("occlusion-nan-baseline", gap_net, lambda m: xr.occlusion(m, X, baseline=float("nan")), ValueError,
     r"baseline must be a finite number"),
    ("occlusion-nan-baseline-tensor", gap_net, lambda m: xr.occlusion(m, X, baseline=torch.full((3, 1, 1), np.nan)),
     ValueError, "baseline contains NaN"),
    ("occlusion-progress-not-a-flag", gap_net, lambda m: xr.occlusion(m, X, progress="yes"), TypeError,
     "progress must be True or False"),
    ("class-model-huge-jitter", gap_net, lambda m: xr.class_model(m, 0, shape=(3, 8, 8), jitter=10**30), ValueError,
     r"jitter must be an int in \[0, 8\]"),
    ("class-model-huge-seed", gap_net, lambda m: xr.class_model(m, 0, shape=(3, 8, 8), seed=2**64), ValueError,
     r"seed must be an int in \[0, 9223372036854775807\]"),
    ("class-model-nan-init", gap_net,
     lambda m: xr.class_model(m, 0, shape=(3, 8, 8), init=torch.full((3, 8, 8), np.nan)), ValueError, "NaN or infinite"),
    ("fooling-nan-lr", gap_net, lambda m: xr.fooling_image(m, X, 0, lr=float("nan")), ValueError,
     r"lr must be a finite number in \(0"),
    # metrics: localization
    ("threshold-boxes-fraction-nan", gap_net, lambda m: M.threshold_boxes(MAPS, float("nan")), ValueError,
     r"fraction must be a finite number in \[0, 1\]"),
    ("box-iou-float-boxes", gap_net, lambda m: M.box_iou(BOXES.double() + 0.5, BOXES), TypeError,
     "a must hold integer pixel coordinates"),
    ("localization-huge-box", gap_net, lambda m: M.localization(MAPS, torch.full((2, 4), 10**12)), ValueError,
     "boxes must satisfy 0 <= x0 <= x1 <= W=8"),
    ("localization-iou-threshold", gap_net, lambda m: M.localization(MAPS, BOXES, iou_threshold=2), ValueError,
     r"iou_threshold must be a finite number in \[0, 1\]"),
    ("energy-pointing-region-shape", gap_net, lambda m: M.energy_pointing(MAPS, MASKS[:, :4]), ValueError,
     "region must have the maps' shape"),
    ("pointing-game-float-labels", gap_net, lambda m: M.pointing_game(MAPS, MASKS, labels=[0.5, 1.0]), TypeError,
     "labels must be integer classes"),
    ("pointing-game-string-masks", gap_net, lambda m: M.pointing_game(MAPS, MASKS.numpy().astype(str)), TypeError,
     "masks must be a .* of numbers"),
    ("largest-component-tensor", gap_net, lambda m: M.largest_component(MASKS[0]), TypeError,
     "region must be a bool NumPy array"),
    ("default-tolerance-zero", gap_net, lambda m: M.default_tolerance(0), ValueError, "size must be an int >= 1"),
    # metrics: faithfulness
    ("auc-nan-scores", gap_net, lambda m: M.auc([1.0, float("nan")]), ValueError, "scores contains NaN"),
    ("auc-ragged-scores", gap_net, lambda m: M.auc([[1.0, 0.5], [1.0]]), ValueError, "rows have different lengths"),
    ("deletion-nan-baseline", gap_net, lambda m: M.deletion(m, X, MAPS, baseline=float("nan")), ValueError,
     "baseline must be a finite number"),
    ("deletion-maps-per-image", gap_net, lambda m: M.deletion(m, X, MAPS[:1]), ValueError,
     "maps has 1 maps but the batch has 2 images"),
    ("deletion-output", gap_net, lambda m: M.deletion(m, X, MAPS, output="probability"), ValueError,
     r"output must be one of \('softmax', 'logit'\)"),
    ("insertion-blur-sigma-inf", gap_net, lambda m: M.insertion(m, X, MAPS, blur_sigma=float("inf")), ValueError,
     "blur_sigma must be a finite number"),
    ("insertion-start-shape", gap_net, lambda m: M.insertion(m, X, MAPS, start=torch.zeros(5, 1, 1)), ValueError,
     "start of shape .* does not broadcast"),
    ("average-drop-batch-size", gap_net, lambda m: M.average_drop(m, X, MAPS, batch_size=np.int64(0)), ValueError,
     "batch_size must be an int >= 1"),
    ("average-drop-nan-maps", gap_net, lambda m: M.average_drop(m, X, with_value(float("nan"))[:, 2]), ValueError,
     "maps contains NaN"),
    ("explanation-images-wrong-maps", gap_net, lambda m: M.explanation_images(X, MAPS[0]), ValueError,
     r"maps must have shape \(B,H,W\).*m\[None\]"),
    ("gaussian-blur-reflect-too-wide", gap_net, lambda m: M.gaussian_blur(X, 3.0, padding="reflect"), ValueError,
     r"sigma=3.0 needs a 9-pixel reflected border, more than the \(8, 8\) image has; .*padding='replicate'"),
    ("gaussian-blur-huge-sigma", gap_net, lambda m: M.gaussian_blur(X, 1e30), ValueError,
     "sigma must be a finite number"),
    ("region-perturbation-value-range", gap_net, lambda m: M.region_perturbation(m, X, MAPS, value_range=(0, np.inf)),
     ValueError, "value_range must be a finite number"),
    ("region-perturbation-region-too-big", gap_net, lambda m: M.region_perturbation(m, X, MAPS, region=9), ValueError,
     "region 9 is larger than the image"),
    ("region-perturbation-seed", gap_net, lambda m: M.region_perturbation(m, X, MAPS, seed=-1), ValueError,
     "seed must be an int in"),
    ("occlusion-faithfulness-window", gap_net, lambda m: M.occlusion_faithfulness(m, X, MAPS, window=0), ValueError,
     "window must be an int >= 1"),
    # metrics: sanity checks and robustness
    ("randomization-layers-str", gap_net, lambda m: M.model_randomization(m, X, xr.saliency, layers="conv1"),
     TypeError, "layers must be a list of module names"),
    ("randomization-keep-maps", gap_net, lambda m: M.model_randomization(m, X, xr.saliency, keep_maps="yes"),
     TypeError, "keep_maps must be True or False"),
    ("randomizable-layers-not-a-model", gap_net, lambda m: M.randomizable_layers(m.state_dict()), TypeError,
     r"model must be a torch\.nn\.Module"),
    ("randomize-layer-init", gap_net, lambda m: M.randomize_layer(m.conv1, 0, init="kaiming"), TypeError,
     "init must be None or a function"),
    ("robustness-method", gap_net, lambda m: M.robustness(m, X, "grad_cam", M.rotation(10)), TypeError,
     "method must be a callable"),
    ("gaussian-noise-negative-sigma", gap_net, lambda m: M.gaussian_noise(-0.1), ValueError,
     r"sigma must be a finite number in \[0"),
    ("rotation-nan", gap_net, lambda m: M.rotation(float("nan")), ValueError, "degrees must be a finite number"),
    ("translation-float", gap_net, lambda m: M.translation(1.5, 0), TypeError, "dx must be a whole number"),
    ("fgsm-negative-epsilon", gap_net, lambda m: M.fgsm(m, X, epsilon=-0.1), ValueError,
     r"epsilon must be a finite number in \[0"),
    ("adversarial-clamp", gap_net, lambda m: M.adversarial(m, clamp=(1.0, 0.0)), ValueError,
     "clamp must have low < high"),
    # metrics: similarity of maps
    ("spearman-shapes", gap_net, lambda m: M.spearman(MAPS, MAPS[:1]), ValueError, "a and b must have the same shape"),
    ("ssim-even-window", gap_net, lambda m: M.ssim(MAPS, MAPS, win_size=4), ValueError, "win_size must be odd"),
    ("normalise01-mask-shape", gap_net, lambda m: M.normalise01(MAPS, MASKS[:1]), ValueError,
     "mask must have the maps' shape"),
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
    assert len(CASES) >= 100
    assert len({c[0] for c in CASES}) == len(CASES)


def test_every_public_function_has_a_case():
    """Each function of ``xr`` and ``xr.metrics`` (and ``xr.Neuron``) is called by at least one case."""
    import inspect

    source = inspect.getsource(inspect.getmodule(test_bad_input))
    cases = source[source.index("CASES = ["):source.index("if torch.cuda.is_available()")]
    public = {f"xr.{n}" for n in xr.__all__ if inspect.isfunction(getattr(xr, n))} | {"Neuron"}
    public |= {f"M.{n}" for n in M.__all__ if inspect.isfunction(getattr(M, n)) and n != "identity"}
    assert not {f for f in public if f"{f}(" not in cases}


def test_the_model_still_works_after_errors():
    """After a failing guided call on an in-place ReLU net the model computes exactly what it did before."""
    model, x = gap_net().eval(), torch.rand(2, 3, 8, 8)
    expected = model(x).detach()
    with pytest.raises(ValueError):
        xr.guided_backprop(model, x, target=Neuron("conv2", 9))
    assert torch.equal(model(x), expected)
    assert all(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))
    assert torch.equal(xr.saliency(model, x, 0).grad, xr.saliency(gap_net().eval(), x, 0).grad)
