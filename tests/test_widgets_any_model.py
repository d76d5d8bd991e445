"""The explorers on the models students bring (issue 13, point 6): every explorer opens on every replica of
`replicas.FAMILIES` its ``xai_ref`` functions accept, draws its pictures, says why a panel is off, reacts to
its controls, and leaves the model as it was.

* A panel that cannot be computed for a model (deconvnet / guided backprop / Guided Grad-CAM without any
  ReLU; the ReLU magnifier without an ``nn.ReLU`` module) is switched off with a one-line reason.
* ``xai_ref``'s warnings about a model (`ReLURuleWarning`) show on the status line; pytest turns every
  warning into an error here, so a warning that escaped an explorer would fail the test.
* One ``nn.ReLU`` reused by a ResNet block is listed once per call (``name#k``), and the magnifier shows
  that call's own input.
* A large input is shown at 256 px on its longer side, whatever its resolution.
"""

from __future__ import annotations

import io
import warnings

import ipywidgets as W
import numpy as np
import pytest
import torch
from PIL import Image

import replicas
from conftest import hook_count
from widgets import (AscentExplorer, AttentionExplorer, BackpropExplorer, CAMExplorer, GAPExplorer, GradCAMExplorer,
                     MetricsExplorer, render)

pytestmark = pytest.mark.usefixtures("one_thread")

FAMILIES = replicas.FAMILIES
CAM_FAMILIES = [n for n, f in FAMILIES.items() if f.cam]
WITH_RELU_MODULES = {"resnet", "vgg", "mobilenet_v2", "mobilenet_v3", "inplace_norm"}   # spatial nn.ReLU(6)
ERROR = "color:#b00"      # how the status line shows an error


# --- helpers ------------------------------------------------------------------------------------------


def build(name: str) -> tuple[torch.nn.Module, torch.Tensor, dict]:
    """The replica, one image, and the keywords every explorer takes for it."""
    family = FAMILIES[name]
    return family(), replicas.example_input(1), {"logits": family.logits}


def snapshot(model: torch.nn.Module) -> dict:
    return {"state": {k: v.clone() for k, v in model.state_dict().items()},
            "training": [m.training for m in model.modules()],
            "inplace": [getattr(m, "inplace", None) for m in model.modules()],
            "requires_grad": [p.requires_grad for p in model.parameters()]}


def assert_unchanged(model: torch.nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert hook_count(model) == 0, "a hook was left on the model"
    assert after["training"] == before["training"] and after["inplace"] == before["inplace"]
    assert after["requires_grad"] == before["requires_grad"]
    assert all(torch.equal(before["state"][k], v) for k, v in after["state"].items())


def pictures(widget: W.Widget) -> list[W.Image]:
    """Every picture shown in an explorer (hidden ones left out)."""
    if isinstance(widget, W.Image):
        return [widget] if widget.layout.display != "none" else []
    return [p for child in getattr(widget, "children", ()) for p in pictures(child)]


def assert_drawn(explorer) -> None:
    """No error on the status line, and every shown picture is a non-empty PNG."""
    assert ERROR not in explorer.status.value, explorer.status.value
    shown = pictures(explorer)
    assert shown
    for p in shown:
        assert bytes(p.value).startswith(b"\x89PNG") and len(p.value) > 100


def size(png: bytes) -> tuple[int, int]:
    """(width, height) of a PNG."""
    return Image.open(io.BytesIO(png)).size


def walk_steps(explorer) -> None:
    for k in range(1, explorer.stepper.step.max + 1):
        explorer.controls["step"].value = k
    assert ERROR not in explorer.status.value


# --- Grad-CAM ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FAMILIES))
def test_gradcam_explorer(name):
    model, x, kw = build(name)
    family, before = FAMILIES[name], snapshot(model)
    e = GradCAMExplorer(model, x, layer=family.layer, reshape=family.reshape, **kw)
    assert_drawn(e)
    if family.activations == "no relu":               # GELU, SiLU: Grad-CAM works, its guided panel is off
        assert e.guided_panel.disabled and "not available for this model" in e.guided_panel.reason.value
        assert "ReLU" in e.guided_panel.reason.value
        assert "R" not in [t.symbol for t in e.trace.steps]
    else:
        assert not e.guided_panel.disabled and e.trace.method.startswith("guided_")
    if family.activations == "mixed":                 # the ReLURuleWarning, on the status line
        assert "hardswish" in e.status.value and "ordinary gradient" in e.status.value
    maps, table = e.maps.value, e.pixel_table.value
    e.controls["target"].value = (e.controls["target"].value + 1) % replicas.N_CLASSES
    assert e.maps.value != maps
    e.controls["method"].value = "Grad-CAM++"
    assert e.trace.method in ("grad_cam_pp", "guided_grad_cam_pp")
    e.controls["row"].value = 0
    assert e.pixel_table.value != table
    walk_steps(e)
    assert_unchanged(model, before)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_gradcam_explorer_default_layer(name):
    """Without a layer the explorer starts at the last layer of its chooser (a block, not a BatchNorm an
    in-place F.relu overwrites: DenseNet, Inception), which every layer change can come back to."""
    model, x, kw = build(name)
    e = GradCAMExplorer(model, x, **kw)
    assert_drawn(e)
    assert e.controls["layer"].value == list(e.layers)[-1]
    for layer in list(e.layers)[:3]:
        e.controls["layer"].value = layer
        assert ERROR not in e.status.value, (layer, e.status.value)


# --- saliency, deconvnet, guided backprop -------------------------------------------------------------


@pytest.mark.parametrize("name", list(FAMILIES))
def test_backprop_explorer(name):
    model, x, kw = build(name)
    family, before = FAMILIES[name], snapshot(model)
    e = BackpropExplorer(model, x, **kw)
    assert_drawn(e)
    no_relu = family.activations == "no relu"
    for method in ("deconvnet", "guided backprop"):
        assert e.panels[method].disabled == no_relu
    assert e.controls["method"].options == (("saliency",) if no_relu else ("saliency", "deconvnet", "guided backprop"))
    if no_relu:
        assert "ReLU" in e.panels["guided backprop"].reason.value
    if family.activations == "mixed":
        assert "hardswish" in e.status.value
    assert ("relu" in e.controls) == (name in WITH_RELU_MODULES)
    if "relu" not in e.controls:                      # F.relu, GELU: the magnifier says why it is off
        assert any("magnifier shows the input of an nn.ReLU" in getattr(c, "value", "") for c in e.children)
    saliency = e.panels["saliency"].picture.value
    e.controls["target"].value = (e.controls["target"].value + 1) % replicas.N_CLASSES
    assert e.panels["saliency"].picture.value != saliency
    e.controls["mode"].value = "neuron"
    e.controls["layer"].value = list(e.layers)[0]
    assert ERROR not in e.status.value and "neuron" in e.target_text.value
    walk_steps(e)
    assert_unchanged(model, before)


def test_backprop_magnifier_lists_a_reused_relu_by_call():
    """ResNet's BasicBlock calls its one nn.ReLU twice: each call is listed, and the magnifier shows the
    input of that call (after conv1-bn1 for #0, the residual sum for #1), not a guess."""
    model, x, kw = build("resnet")
    e = BackpropExplorer(model, x, **kw)
    options = dict((value, label) for label, value in e.controls["relu"].options)
    assert {"relu", "layer1.0.relu#0", "layer1.0.relu#1", "layer2.0.relu#0", "layer2.0.relu#1"} <= set(options)
    assert "1st call" in options["layer1.0.relu#0"] and "2nd call" in options["layer1.0.relu#1"]
    block = model.layer1[0]
    with torch.no_grad():
        stem = model.maxpool(torch.relu(model.bn1(model.conv1(x))))
        first = block.bn1(block.conv1(stem))
        second = block.bn2(block.conv2(torch.relu(first))) + stem
    for call, expected in (("layer1.0.relu#0", first), ("layer1.0.relu#1", second)):
        zoom = e.zoom_numbers.value
        e.controls["relu"].value = call
        assert ERROR not in e.status.value and e.zoom_numbers.value != zoom
        assert torch.allclose(e.relu_inputs(call), expected[0], atol=1e-6)
    e.controls["above"].value = "guided"
    e.controls["relu_channel"].value = 2
    assert ERROR not in e.status.value


def test_gradcam_explorer_lists_reused_relu_calls():
    model, x, kw = build("resnet")
    e = GradCAMExplorer(model, x, layer="layer1.0.relu#0", **kw)
    assert "layer1.0.relu#0" in e.layers and e.trace.meta["layer"] == "layer1.0.relu#0"
    assert e.status.value == ""                       # a call named: no LayerReuseWarning note
    e.controls["layer"].value = "layer2.0"            # the block: the same tensor as its ReLU's last call
    assert e.status.value == "" and e.trace.A.shape[2:] == (8, 8)


# --- CAM, GAP, gradient ascent, metrics, attention --------------------------------------------------------


@pytest.mark.parametrize("name", CAM_FAMILIES)
def test_cam_and_gap_explorers(name):
    model, x, kw = build(name)
    family, before = FAMILIES[name], snapshot(model)
    cam = CAMExplorer(model, x, layer=family.layer, **kw)
    assert_drawn(cam)
    weights, boxed = cam.weights.value, cam.boxed.value
    cam.controls["target"].value = (cam.controls["target"].value + 1) % replicas.N_CLASSES
    assert cam.weights.value != weights
    cam.controls["threshold"].value = 0.7
    assert cam.boxed.value != boxed
    gap = GAPExplorer(model, x, layer=family.layer, **kw)
    assert_drawn(gap)
    shifted = gap.shifted.value
    gap.controls["dx"].value = 4
    assert gap.shifted.value != shifted and ERROR not in gap.status.value
    assert_unchanged(model, before)


@pytest.mark.parametrize("name", ["resnet", "densenet", "convnext", "inception", "dict_output", "vit"])
def test_ascent_explorer(name):
    model, x, kw = build(name)
    before = snapshot(model)
    e = AscentExplorer(model, image=x, steps=4, chunk=2, target=1, **kw)
    assert_drawn(e)
    image = e.image.value
    e.controls["run"].value = True                    # no event loop: runs to the end
    assert e.done == 4 and e.image.value != image and ERROR not in e.status.value
    e.controls["mode"].value = "channel"
    assert e.done == 0 and ERROR not in e.status.value
    assert_unchanged(model, before)


@pytest.mark.parametrize("name", ["resnet", "densenet", "mobilenet_v3", "convnext", "inception", "dict_output"])
def test_metrics_explorer(name):
    model, x, kw = build(name)
    before = snapshot(model)
    e = MetricsExplorer(model, x, step=64, **kw)
    assert_drawn(e)
    perturbed = e.perturbed.value
    for method, symbol in (("saliency", "grad"), ("Grad-CAM++", "alpha")):
        e.controls["method"].value = method              # another map: other pixels removed first
        assert ERROR not in e.status.value and symbol in [t.symbol for t in e.trace.steps]
        assert e.perturbed.value != perturbed
        perturbed = e.perturbed.value
    e.controls["kind"].value = "insertion"
    assert e.perturbed.value != perturbed and "insertion" in e.curve_text.value
    assert_unchanged(model, before)


@pytest.mark.parametrize("student, teacher", [("resnet", "vgg"), ("dict_output", "densenet"),
                                              ("inception", "mobilenet_v2")])
def test_attention_explorer_needs_no_class_scores(student, teacher):
    s, x, _ = build(student)
    t = FAMILIES[teacher]()
    e = AttentionExplorer(s, t, x)                   # structured outputs: no logits needed for feature maps
    assert_drawn(e)
    maps = e.maps.value
    e.controls["p"].value = 4
    assert e.maps.value != maps and ERROR not in e.status.value
    assert hook_count(s) == hook_count(t) == 0


def test_a_structured_output_needs_logits():
    model, x, _ = build("dict_output")
    with pytest.raises(ValueError, match="logits="):
        GradCAMExplorer(model, x)
    e = GradCAMExplorer(model, x, logits="out", target=3)
    assert e.trace.meta["target"].tolist() == [3]


# --- large inputs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, shown", [((3, 512, 512), (256, 256)), ((3, 300, 400), (256, 192))])
def test_a_large_input_is_shown_at_256_px(shape, shown):
    model = FAMILIES["resnet"]()
    x = torch.rand(*shape)
    g = GradCAMExplorer(model, x)
    assert size(g.guided_panel.picture.value) == shown
    b = BackpropExplorer(model, x)
    assert size(b.panels["saliency"].picture.value) == (shown[0] + 8, 2 * shown[1] + 12)   # two, padded
    assert size(CAMExplorer(model, x).boxed.value) == shown
    assert size(GAPExplorer(model, x).shifted.value) == shown
    assert size(AscentExplorer(model, image=x, steps=2, chunk=2).image.value) == shown
    m = MetricsExplorer(model, x, step=shape[1] * shape[2] // 4)
    assert size(m.perturbed.value) == size(m.boxed.value) == shown


def test_fit_scales_small_pictures_up_and_large_ones_down():
    small = np.zeros((7, 5, 3), np.uint8)
    assert render.fit(small, 192, 256).shape == (189, 135, 3)     # x27, each cell an honest square
    assert render.fit(np.zeros((224, 224, 3), np.uint8), 192, 256).shape == (224, 224, 3)   # as it is
    large = np.full((600, 800, 3), 200, np.uint8)
    assert render.fit(large, 192, 256).shape == (192, 256, 3)
    assert (render.fit(large, 192, 256) == 200).all()


# --- the status line ------------------------------------------------------------------------------------


def test_a_reused_layer_named_without_its_call_is_noted():
    model, x, kw = build("resnet")
    e = GradCAMExplorer(model, x, layer="layer1.0.relu", **kw)      # LayerReuseWarning: on the status line
    assert "ran 2 times" in e.status.value and "layer1.0.relu#k" in e.status.value
    assert ERROR not in e.status.value


def test_other_warnings_are_not_swallowed():
    model, x, kw = build("vgg")
    e = GradCAMExplorer(model, x, **kw)
    with pytest.warns(RuntimeWarning, match="something else"):
        assert e.run(lambda: warnings.warn("something else", RuntimeWarning))
    assert e.status.value == ""
