"""BackpropExplorer: the magnifier opens where the three ReLU rules differ and says why where they cannot,
neuron mode looks below the neuron, and the three maps come from one forward pass (issue 14, items 2, 7)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import xai_ref as xr
from widgets import BackpropExplorer
from widgets.backprop import RULE_OF
from widgets.magnifier import relu_upper
from xai_ref.backprop import three_rules
from xai_ref.data import shapes
from xai_ref.hooks import relu_backward
from widgets.inputs import resolve_model

warnings.filterwarnings("ignore", category=RuntimeWarning)   # "no trained weights yet"


@pytest.fixture(scope="module")
def vgg():
    return resolve_model("vgg_shapes")


@pytest.fixture(scope="module")
def x():
    return torch.from_numpy(shapes.generate(1, seed=0).images)


def passed_down(e: BackpropExplorer) -> dict[str, torch.Tensor]:
    """What each rule passes down in the magnifier's patch, and the patch's x and R."""
    c = e.controls
    relu, k = c["relu"].value, c["relu_channel"].value
    i, j, n = c["patch_row"].value, c["patch_col"].value, e.patch
    s = e.signals(e.spec(), relu)
    xp, Rp = s.x[k, i:i + n, j:j + n], s.R[c["above"].value][k, i:i + n, j:j + n]
    out = {name: relu_backward(Rp, xp, rule, relu_upper(e.model, relu)) for name, rule in RULE_OF.items()}
    return {**out, "x": xp, "R": Rp}


def all_same(d: dict[str, torch.Tensor]) -> bool:
    return torch.equal(d["saliency"], d["deconvnet"]) and torch.equal(d["deconvnet"], d["guided backprop"])


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
               and not getattr(m, "_backward_pre_hooks", None) for m in model.modules())


# --- the default magnifier ------------------------------------------------------------------------


def test_the_magnifier_opens_where_the_three_rules_differ(vgg, x):
    e = BackpropExplorer(vgg, x[0])
    assert e.status.value == ""
    d = passed_down(e)
    assert not all_same(d)                                    # the three grids show different numbers
    grids = e.zoom_numbers.value.split("<table")[1:]
    assert len(grids) == 5 and len({grids[2], grids[3], grids[4]}) == 3
    assert "xr-differ" in e.zoom_note.value and "differ in" in e.zoom_note.value
    # the patch is the best one of its ReLU: no patch has more cells where the rules disagree
    count, k, i, j = e.best_patch(e.controls["relu"].value)
    c = e.controls
    assert (c["relu_channel"].value, c["patch_row"].value, c["patch_col"].value) == (k, i, j)
    D = e.disagreements(c["relu"].value)
    n = e.patch
    best = max(int(D[kk, ii:ii + n, jj:jj + n].sum()) for kk in range(D.shape[0])
               for ii in range(D.shape[1] - n + 1) for jj in range(D.shape[2] - n + 1))
    assert count == best == int(D[k, i:i + n, j:j + n].sum()) > 0


def test_the_default_is_deterministic(vgg, x):
    a, b = BackpropExplorer(vgg, x[0]), BackpropExplorer(vgg, x[0])
    names = ("relu", "relu_channel", "patch_row", "patch_col")
    assert [a.controls[n].value for n in names] == [b.controls[n].value for n in names]


def test_a_place_where_the_rules_cannot_differ_says_why(vgg, x):
    e = BackpropExplorer(vgg, x[0])
    c = e.controls
    D = e.disagreements(c["relu"].value)
    n = e.patch
    k, i, j = next((k, i, j) for k in range(D.shape[0]) for i in range(D.shape[1] - n + 1)
                   for j in range(D.shape[2] - n + 1) if not D[k, i:i + n, j:j + n].any())
    c["relu_channel"].value, c["patch_row"].value, c["patch_col"].value = k, i, j
    assert all_same(passed_down(e))
    note = e.zoom_note.value
    assert "xr-same" in note and ("pass the same numbers" in note or "pass zeros" in note)
    assert "R &lt; 0 at an open gate or R &gt; 0 at a closed gate" in note
    assert e.auto is False                                     # the student moved it: a class change keeps it
    c["target"].value = (c["target"].value + 1) % 6
    assert (c["relu_channel"].value, c["patch_row"].value, c["patch_col"].value) == (k, i, j)


def test_every_gate_open_and_R_positive_is_named():
    """A ReLU whose gates are all open and whose signal from above is positive: the rules cannot differ."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(1.0)                               # x = 1 > 0 everywhere: every gate open
        model[4].weight.copy_(torch.tensor([[1.0, 2.0], [0.5, 0.5], [-1.0, -1.0]]))
    e = BackpropExplorer(model, torch.rand(3, 16, 16), target=0, class_names=["a", "b", "c"])
    assert e.status.value == ""
    assert all_same(passed_down(e))
    note = e.zoom_note.value
    assert "here R &ge; 0 and every gate is open: all three rules pass the same numbers" in note
    assert "they never differ for this target" in note
    e.controls["target"].value = 2                             # R < 0 at open gates: now they differ
    assert "xr-differ" in e.zoom_note.value and not all_same(passed_down(e))


# --- neuron mode ------------------------------------------------------------------------------------


def test_neuron_mode_starts_below_the_neuron_and_explains_a_relu_above(vgg, x):
    e = BackpropExplorer(vgg, x[0], neuron=xr.Neuron("block2_relu1", 3))
    c = e.controls
    assert c["relu"].value in ("block1_relu1", "block1_relu2", "block2_relu1")
    assert not e.above_neuron(c["relu"].value)
    assert "xr-above" not in e.zoom_note.value
    c["relu"].value = "block3_relu2"                           # above the neuron: no signal reaches it
    note = e.zoom_note.value
    assert e.above_neuron("block3_relu2") and "xr-above" in note
    assert "this ReLU is above the neuron's layer" in note and "no signal reaches it" in note
    assert "pick a ReLU below" in note
    s = e.signals(e.spec(), "block3_relu2")
    assert all(float(R.abs().max()) == 0 for R in s.R.values())
    assert e.status.value == ""


def test_switching_to_neuron_mode_leaves_a_relu_above_the_neuron(vgg, x):
    e = BackpropExplorer(vgg, x[0], relu="block3_relu2")
    c = e.controls
    c["mode"].value = "neuron"
    c["layer"].value = "block1_relu2"
    assert e.status.value == ""
    assert c["relu"].value in ("block1_relu1", "block1_relu2")
    assert "xr-above" not in e.zoom_note.value


# --- one forward pass, three backward passes --------------------------------------------------------


@pytest.mark.parametrize("target", [None, 2, xr.Neuron("block3_relu1", 5), xr.Neuron("block2_relu2", 1, "sum")])
def test_three_rules_equal_the_library_maps_exactly(vgg, x, target):
    p = three_rules(vgg, x, target, relu="block2_relu2")
    for rule, method in (("backprop", xr.saliency), ("deconvnet", xr.deconvnet), ("guided", xr.guided_backprop)):
        t = method(vgg, x, target)
        assert torch.equal(p.traces[rule].grad, t.grad) and torch.equal(p.traces[rule].map, t.map)
        assert p.traces[rule].symbols == t.symbols and p.traces[rule].method == t.method
        assert torch.equal(p.traces[rule].meta["y"], t.meta["y"])
        ref = xr.forward_backward(vgg, x, target, wrt=("layer",), layer="block2_relu2", rule=rule)
        assert torch.equal(p.R[rule], ref.dY_dA)
    assert no_hooks(vgg)


def test_three_rules_on_efficientnet_equal_the_library_maps_exactly():
    e = BackpropExplorer("efficientnet_lite0", "cat_coffee")
    c = 281
    p = three_rules(e.model, e.x, c)
    for rule, method in (("backprop", xr.saliency), ("deconvnet", xr.deconvnet), ("guided", xr.guided_backprop)):
        assert torch.equal(p.traces[rule].map, method(e.model, e.x, c).map)
    assert "xr-differ" in e.zoom_note.value and not all_same(passed_down(e))
    assert no_hooks(e.model)


def test_the_explorer_shows_the_library_maps_and_leaves_no_hook(vgg, x):
    training = [m.training for m in vgg.modules()]
    grads = [p.requires_grad for p in vgg.parameters()]
    e = BackpropExplorer(vgg, x[0])
    c = e.controls
    for name, value in (("target", 3), ("mode", "neuron"), ("unit", 2), ("relu", "block1_relu2"),
                        ("above", "guided"), ("patch_row", 1), ("mode", "class")):
        c[name].value = value
    spec = e.spec()
    maps = e.maps(spec)
    for method, f in (("saliency", xr.saliency), ("deconvnet", xr.deconvnet), ("guided backprop", xr.guided_backprop)):
        assert torch.equal(maps[method].map, f(vgg, e.x, spec[1]).map)
    assert e.status.value == ""
    assert no_hooks(vgg)
    assert [m.training for m in vgg.modules()] == training and [p.requires_grad for p in vgg.parameters()] == grads


def test_one_forward_pass_per_class_change(vgg, x):
    e = BackpropExplorer(vgg, x[0])
    calls = []
    handle = vgg.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        e.controls["target"].value = (e.controls["target"].value + 1) % 6
    finally:
        handle.remove()
    assert len(calls) == 1                   # the three maps and the magnifier's signals: one forward pass


def test_three_rules_checks_and_cleans_up(vgg, x):
    with pytest.raises(ValueError):
        three_rules(vgg, x, 99)                                # no class 99
    with pytest.raises(ValueError):
        three_rules(vgg, x, rules=("gradient",))
    assert no_hooks(vgg)
    gelu = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="ReLU"):
        three_rules(gelu, torch.rand(1, 3, 8, 8), 0)
    p = three_rules(gelu, torch.rand(1, 3, 8, 8), 0, rules=("backprop",))
    assert list(p.traces) == ["backprop"] and no_hooks(gelu)
