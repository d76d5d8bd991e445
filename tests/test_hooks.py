"""The hook manager: capture, ReLU rules, and the guarantee that the model is left as it was."""

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xai_ref.hooks import Hooks, LayerReuseWarning, ReLURuleWarning, relu_backward
from xai_ref.layer_names import named_layer
from conftest import hook_count


def small_net(inplace=True):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=inplace), nn.MaxPool2d(2),
        nn.Sequential(nn.Conv2d(4, 5, 3, padding=1), nn.ReLU6(inplace=inplace)),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3),
    )


class FunctionalReLUNet(nn.Module):
    """ReLUs as F.relu calls: invisible to module hooks."""

    def __init__(self, with_module_relu=False):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.act = nn.ReLU() if with_module_relu else nn.Identity()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = F.relu(self.act(self.conv(x)))
        return self.fc(x.mean((2, 3)))


def state(model):
    return ([m.training for m in model.modules()],
            [getattr(m, "inplace", None) for m in model.modules()],
            [(p.requires_grad, None if p.grad is None else p.grad.clone()) for p in model.parameters()],
            [p.grad for p in model.parameters()])


def assert_same_state(before, after):
    assert before[0] == after[0] and before[1] == after[1]
    for (rg0, g0), (rg1, g1) in zip(before[2], after[2]):
        assert rg0 == rg1
        assert (g0 is None and g1 is None) or torch.equal(g0, g1)
    assert all(a is b for a, b in zip(before[3], after[3]))  # the very same .grad tensors


def prepared_model():
    """A model in an awkward state: training mode, one submodule in eval, one frozen parameter, a .grad."""
    model = small_net(inplace=True).train()
    model[3].eval()
    model[0].bias.requires_grad_(False)
    model[6].weight.grad = torch.full_like(model[6].weight, 0.5)
    return model


# --- capture ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("layer", ["3.0", "module", None])
def test_capture_by_name_module_or_default(layer):
    model = small_net()
    spec = model[3][1] if layer == "module" else layer
    x = torch.randn(2, 3, 8, 8)
    with Hooks(model, layers=[spec]) as h:
        model(x)
        A = h.A
        name = h.layer_name()
    expected = {"3.0": "3.0", "module": "3.1", None: "3.1"}[layer]  # None: last spatial output (B,5,4,4)
    assert name == expected and A.shape == (2, 5, 4, 4)
    ref = model[3][0](model[2](model[1](model[0](x))))
    assert torch.allclose(A, ref if layer == "3.0" else ref.clamp(0, 6))


def test_captured_activation_not_overwritten_by_inplace_relu():
    model = small_net(inplace=True)
    x = torch.randn(1, 3, 8, 8)
    with Hooks(model, layers=["0"]) as h:
        x_ = h.watch(x)
        y = model(x_)
        (dA,) = torch.autograd.grad(y[:, 0].sum(), [h.A])
    conv_out = model[0](x)
    assert (h.activations["0"] < 0).any() and torch.equal(h.activations["0"], conv_out)
    assert dA.shape == conv_out.shape


class AddsInPlace(nn.Module):
    """Changes a layer's output in place after the layer (as ``out += identity`` in a ResNet block, or
    DenseNet's ``F.relu(features, inplace=True)``)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        a = self.conv(x)
        a += 1
        return a.sum((2, 3))


def test_named_layer_is_captured_before_a_later_in_place_change():
    model, x = AddsInPlace(), torch.randn(1, 3, 4, 4)
    with Hooks(model, layers=["conv"]) as h:
        y = model(h.watch(x))
        (dA,) = torch.autograd.grad(y[:, 0].sum(), [h.A])
    assert torch.equal(h.A, model.conv(x))                       # the conv's output, not the output + 1
    assert torch.equal(dA, torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 4, 4))
    assert torch.equal(y, model(x))                              # the network itself computed the same


def test_in_place_change_after_default_layer_is_reported():
    with Hooks(AddsInPlace(), layers=[None]) as h:
        h.model(torch.randn(1, 3, 4, 4))
        with pytest.raises(ValueError, match=r"modified in place.*name the layer \(layer='conv'\)"):
            h.A


def test_unknown_layer_lists_nearest_names():
    with pytest.raises(ValueError, match=r"unknown layer '3\.O'.*'3\.0'"):
        named_layer(small_net(), "3.O")


def test_bad_layer_types():
    model = small_net()
    with pytest.raises(TypeError, match="nn.Module, a dotted name"):
        Hooks(model, layers=[3])
    with pytest.raises(ValueError, match="not a module of this model"):
        Hooks(model, layers=[nn.Conv2d(1, 1, 1)])
    with pytest.raises(TypeError, match="torch.nn.Module"):
        Hooks("model")
    with pytest.raises(ValueError, match="must be a ReLU rule, one of"):
        Hooks(model, rule="guidedd")


def test_no_spatial_layer_for_default():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    with Hooks(model, layers=[None]) as h:
        model(torch.randn(1, 3, 2, 2))
        with pytest.raises(ValueError, match="no spatial"):
            h.A


# --- restoring the model -------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["backprop", "deconvnet", "guided"])
def test_model_restored_after_success(rule):
    model = prepared_model()
    before = state(model)
    x = torch.randn(2, 3, 8, 8)
    x_copy = x.clone()
    with Hooks(model, layers=[None, "0"], rule=rule) as h:
        assert not model.training and not any(p.requires_grad for p in model.parameters())
        x_ = h.watch(x)
        y = model(x_)
        torch.autograd.grad(y[:, 1].sum(), [x_, h.A])
    assert hook_count(model) == 0
    assert_same_state(before, state(model))
    assert torch.equal(x, x_copy) and not x.requires_grad


@pytest.mark.parametrize("rule", ["backprop", "guided"])
def test_model_restored_after_exception(rule):
    model = prepared_model()
    before = state(model)
    with pytest.raises(RuntimeError, match="boom"):
        with Hooks(model, layers=[None], rule=rule) as h:
            model(h.watch(torch.randn(1, 3, 8, 8)))
            raise RuntimeError("boom")
    assert hook_count(model) == 0
    assert_same_state(before, state(model))


def test_model_restored_when_forward_raises():
    model = prepared_model()
    before = state(model)
    with pytest.raises(ValueError, match=r"first convolution the model runs \('0'\) expects 3 channels and receives 5"):
        with Hooks(model, layers=[None], rule="guided"):
            model(torch.randn(1, 5, 8, 8))  # wrong channel count: the first conv raises
    assert hook_count(model) == 0
    assert_same_state(before, state(model))
    # and the model still works normally afterwards
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 3)


# --- the ReLU rules, worked by hand ----------------------------------------------------------------


@pytest.mark.parametrize("relu", [nn.ReLU, nn.ReLU6])
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("rule, expected", [
    #  x = [1, -1, 2, -2, 7],  signal from above R = w = [1, 1, -1, -1, 1]
    ("backprop", {nn.ReLU: [1, 0, -1, 0, 1], nn.ReLU6: [1, 0, -1, 0, 0]}),  # R * [x > 0] (ReLU6: 0<x<6)
    ("deconvnet", {nn.ReLU: [1, 1, 0, 0, 1], nn.ReLU6: [1, 1, 0, 0, 1]}),   # max(R, 0)
    ("guided", {nn.ReLU: [1, 0, 0, 0, 1], nn.ReLU6: [1, 0, 0, 0, 0]}),      # max(R, 0) * [x > 0]
])
def test_relu_rules_by_hand(relu, inplace, rule, expected):
    fc = nn.Linear(5, 1, bias=False)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor([[1.0, 1, -1, -1, 1]]))
    model = nn.Sequential(nn.Identity(), relu(inplace=inplace), fc)
    x = torch.tensor([[1.0, -1, 2, -2, 7]])
    with Hooks(model, rule=rule) as h:
        x_ = h.watch(x)
        (grad,) = torch.autograd.grad(model(x_).sum(), [x_])
    assert grad.tolist() == [expected[relu]]
    assert x.tolist() == [[1.0, -1, 2, -2, 7]]


def test_relu_backward_function():
    R = torch.tensor([1.0, 1, -1, -1, 1])
    x = torch.tensor([1.0, -1, 2, -2, 7])
    assert relu_backward(R, x, "guided", upper=6.0).tolist() == [1, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="must be a ReLU rule, one of"):
        relu_backward(R, x, "zeiler")


def test_guided_rule_differs_from_plain_gradient_on_a_real_net():
    model = small_net()
    x = torch.randn(2, 3, 8, 8)
    grads = {}
    for rule in ("backprop", "guided", "deconvnet"):
        with Hooks(model, rule=rule) as h:
            x_ = h.watch(x)
            (grads[rule],) = torch.autograd.grad(model(x_)[:, 0].sum(), [x_])
    assert not torch.allclose(grads["backprop"], grads["guided"])
    assert not torch.allclose(grads["guided"], grads["deconvnet"])


def test_rule_can_switch_between_backward_passes_of_one_forward_pass():
    model, x = small_net(), torch.randn(2, 3, 8, 8)
    separate = {}
    for rule in ("backprop", "guided", "deconvnet"):
        with Hooks(model, rule=rule) as h:
            x_ = h.watch(x)
            (separate[rule],) = torch.autograd.grad(model(x_)[:, 0].sum(), [x_])
    with Hooks(model, rule="guided") as h:
        x_ = h.watch(x)
        y = model(x_)[:, 0].sum()
        for rule in ("backprop", "deconvnet", "guided"):
            h.rule = rule
            (shared,) = torch.autograd.grad(y, [x_], retain_graph=True)
            assert torch.equal(shared, separate[rule]), rule
    with Hooks(model) as h, pytest.raises(ValueError, match="enter Hooks with rule='guided'"):
        h.rule = "guided"                       # entered with plain gradients: the ReLUs are not hooked
    with Hooks(model, rule="guided") as h, pytest.raises(ValueError, match="must be a ReLU rule, one of"):
        h.rule = "zeiler"
    assert hook_count(model) == 0


# --- ReLUs no hook can reach ---------------------------------------------------------------------


#: Every way of writing a ReLU / ReLU6 as a function call, in and out of place.
FUNCTIONAL = {
    "F.relu": lambda h: F.relu(h), "F.relu inplace": lambda h: F.relu(h, inplace=True),
    "F.relu positional inplace": lambda h: F.relu(h, True), "torch.relu": torch.relu, "torch.relu_": torch.relu_,
    "Tensor.relu": lambda h: h.relu(), "Tensor.relu_": lambda h: h.relu_(), "F.relu_": F.relu_,
    "F.relu6": F.relu6, "F.relu6 inplace": lambda h: F.relu6(h, inplace=True),
    "F.hardtanh(0, 6)": lambda h: F.hardtanh(h, 0.0, 6.0), "F.hardtanh_(0, 6)": lambda h: F.hardtanh_(h, 0.0, 6.0),
}


class Twin(nn.Module):
    """conv -> act -> pool -> conv -> act -> linear: the activations as nn modules or as function calls."""

    def __init__(self, act=None, relu6=False):
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 5, 3, padding=1)
        self.act1, self.act2 = (nn.ReLU6() if relu6 else nn.ReLU()), (nn.ReLU6() if relu6 else nn.ReLU())
        self.pool, self.fc, self.act = nn.MaxPool2d(2), nn.Linear(5 * 4 * 4, 3), act

    def forward(self, x):
        act1, act2 = (self.act, self.act) if self.act is not None else (self.act1, self.act2)
        h = self.pool(act1(self.conv1(x) * 3))              # * 3: some inputs above 6, so ReLU6 caps matter
        return self.fc(act2(self.conv2(h) * 3).flatten(1))


def input_gradient(model, x, rule, target=1):
    with Hooks(model, rule=rule) as h:
        x_ = h.watch(x)
        return torch.autograd.grad(model(x_)[:, target].sum(), [x_])[0]


@pytest.mark.parametrize("rule", ["backprop", "deconvnet", "guided"])
@pytest.mark.parametrize("call", list(FUNCTIONAL))
def test_functional_relu_equals_module_twin(call, rule):
    """A ReLU computed by any function gets the rule its nn.ReLU / nn.ReLU6 twin gets: the very same numbers."""
    relu6 = "6" in call
    twin, functional = Twin(relu6=relu6).double(), Twin(act=FUNCTIONAL[call], relu6=relu6).double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    expected = input_gradient(twin, x, rule)
    assert torch.equal(input_gradient(functional, x, rule), expected)
    assert torch.equal(functional(x), twin(x))              # and the forward pass is untouched after the call
    assert hook_count(functional) == 0


def test_rule_differs_where_it_should_on_functional_relus():
    model, x = Twin(act=F.relu).double(), torch.randn(2, 3, 8, 8, dtype=torch.float64)
    grads = {rule: input_gradient(model, x, rule) for rule in ("backprop", "deconvnet", "guided")}
    assert not torch.equal(grads["backprop"], grads["guided"]) and not torch.equal(grads["guided"], grads["deconvnet"])


@pytest.mark.parametrize("act, name", [(nn.GELU(), "gelu"), (nn.SiLU(), "silu"), (nn.Hardswish(), "hardswish"),
                                       (nn.LeakyReLU(0.1), "leaky_relu"), (nn.ELU(), "elu"),
                                       (lambda h: h.clamp(min=0), "clamp(min=0)"), (nn.Hardtanh(), "hardtanh")])
@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_no_relu_at_all_is_refused(act, name, rule):
    model = Twin(act=act)
    before = state(model)
    with pytest.raises(ValueError, match=rf"the {rule} rule is a rule for ReLUs.*\(activations seen: {re.escape(name)}\)"):
        input_gradient(model, torch.randn(1, 3, 8, 8), rule)
    assert hook_count(model) == 0
    assert_same_state(before, state(model))


class Mixed(Twin):
    """ReLU then SiLU, then a sigmoid gate: the rule at the ReLU, the ordinary gradient elsewhere."""

    def forward(self, x):
        h = self.pool(F.relu(self.conv1(x)))
        h = F.silu(self.conv2(h))
        return self.fc((h * torch.sigmoid(h.mean((2, 3), keepdim=True))).flatten(1))


def test_mixed_activations_warn_and_rule_only_the_relus():
    model, x = Mixed().double(), torch.randn(2, 3, 8, 8, dtype=torch.float64)
    with pytest.warns(ReLURuleWarning, match=r"applied at the model's ReLUs \(1 call\).*\(sigmoid, silu\)"):
        guided = input_gradient(model, x, "guided")
    # by hand: the same net with the ReLU's backward replaced by the guided rule and nothing else changed
    x_ = x.clone().requires_grad_()
    a = model.conv1(x_)

    class Guided(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a.clamp(min=0)

        @staticmethod
        def backward(ctx, g):
            (a,) = ctx.saved_tensors
            return g.clamp(min=0) * (a > 0)
    h = F.silu(model.conv2(model.pool(Guided.apply(a))))
    y = model.fc((h * torch.sigmoid(h.mean((2, 3), keepdim=True))).flatten(1))[:, 1].sum()
    (by_hand,) = torch.autograd.grad(y, [x_])
    assert torch.allclose(guided, by_hand, rtol=1e-12, atol=1e-14)


class Reused(nn.Module):
    """One nn.ReLU(inplace=True) module used three times, as torchvision's ResNet BasicBlock does."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.relu, self.fc = nn.ReLU(inplace=True), nn.Linear(4, 3)

    def forward(self, x):
        h = self.relu(self.conv1(x))
        h = self.relu(self.conv2(h) + h)
        return self.fc(self.relu(h).mean((2, 3)))


def test_every_call_of_the_requested_layers_in_the_order_they_ran():
    model, x = Reused(), torch.randn(2, 3, 8, 8)
    with Hooks(model, layers=["relu#0", "relu#1", "relu#2"]) as h:
        model(x)
        by_call = [(h.activation(k), h.inputs[f"relu#{k}"]) for k in range(3)]
    with pytest.warns(LayerReuseWarning), Hooks(model, layers=["relu", "conv2"]) as h:
        model(x)
        calls = h.calls()
    assert list(calls) == ["relu#0", "conv2", "relu#1", "relu#2"]
    for k, (out, inp) in enumerate(by_call):
        assert torch.equal(calls[f"relu#{k}"][0], out) and torch.equal(calls[f"relu#{k}"][1], inp)
    assert torch.equal(calls["conv2"][1], by_call[0][0])        # conv2 reads the first call's output


def test_reused_module_is_captured_at_its_last_call_with_a_warning():
    model, x = Reused(), torch.randn(2, 3, 8, 8)
    with pytest.warns(LayerReuseWarning, match=r"layer 'relu' ran 3 times.*'relu#k'"):
        with Hooks(model, layers=["relu"]) as h:
            model(x)
            last = h.A
    with Hooks(model, layers=["relu#0", "relu#1", "relu#2"]) as h:
        model(x)
        first, second, third = h.activation(0), h.activation(1), h.activation(2)
        inputs = [h.inputs[f"relu#{k}"] for k in range(3)]
    assert torch.equal(first, F.relu(model.conv1(x))) and torch.equal(last, third)
    assert torch.equal(second, F.relu(model.conv2(first) + first))
    assert torch.equal(inputs[0], model.conv1(x)) and torch.equal(third, second)   # relu(relu(.)) = relu(.)
    with Hooks(model, layers=["relu#3"]) as h, pytest.raises(ValueError, match=r"ran 3 times, so it has no call #3"):
        model(x)
        h.A


def test_functional_relu_fine_for_plain_gradients():
    model = FunctionalReLUNet()
    with Hooks(model, layers=["conv"]) as h:
        x_ = h.watch(torch.randn(1, 3, 5, 5))
        grad, dA = torch.autograd.grad(model(x_)[:, 0].sum(), [x_, h.A])
    assert grad.shape == (1, 3, 5, 5) and dA.shape == (1, 4, 3, 3)
