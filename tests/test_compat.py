"""Every public method on every replica of `replicas.FAMILIES` (issue 13): agreement, refusal, warnings,
grad modes, and the model and input left exactly as they were.

`measure(method, family)` runs one method on one replica (float64) and checks it against every
independent reference that applies, returning a `Cell`; the tests assert on the cells and
``python benchmarks/compat.py`` prints the same cells as the compatibility table. The references:

* Captum 0.9.0 (Saliency, Deconvolution, GuidedBackprop, LayerGradCam, GuidedGradCam, Occlusion) and
  torch-cam 0.5.0 (GradCAM, GradCAMpp, XGradCAM, CAM), given the class scores through `Scores`;
* `ReferenceReLU`: the deconvnet / guided ReLU rules written again as an autograd Function and swapped
  in for every ``nn.ReLU`` / ``nn.ReLU6`` module (Captum hooks ``nn.ReLU`` only, so it cannot check
  ReLU6 models);
* twins (`replicas.relu_twin`, `replicas.single_output_twin`, `replicas.out_of_place_twin`): the same
  weights written the plain way, explained by our own method;
* Grad-CAM (also on the vision transformer's token grid) and occlusion by hand.

Where a library gives something else, the cell records it: Captum's guided / deconvnet rules see no
``F.relu`` (it silently returns the plain gradient there), nor ``nn.ReLU6``; Captum and torch-cam run the
model on the caller's tensor, which a model that normalises in place changes.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field

import pytest
import torch
from captum.attr import (Deconvolution, GuidedBackprop, GuidedGradCam, LayerAttribution, LayerGradCam, Occlusion,
                         Saliency)
from torch import nn
from torchcam.methods import CAM, GradCAM, GradCAMpp, XGradCAM

import xai_ref as xr
from xai_ref import metrics
from xai_ref.hooks import ReLURuleWarning
from xai_ref.inputs import class_logits

from conftest import hook_count
from replicas import FAMILIES, example_input, out_of_place_twin, relu_twin, single_output_twin

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-10                      # float64: max |ours - reference| / max |reference|
WINDOW = 8                       # occlusion window and stride on 32x32 images
METHODS = ["saliency", "deconvnet", "guided_backprop", "grad_cam", "grad_cam_pp", "xgrad_cam", "guided_grad_cam",
           "cam", "occlusion", "deletion"]
RULE_METHODS = {"deconvnet": "deconvnet", "guided_backprop": "guided", "guided_grad_cam": "guided"}


# --- running one method the way a user would -----------------------------------------------------------


def run(method: str, name: str, model: nn.Module, x: torch.Tensor, target=None, **extra) -> xr.Trace:
    """``method`` on ``model`` with the family's keywords (``layer``, ``logits``, ``reshape``); ``extra``
    overrides them (``logits=None`` with a callable target)."""
    fam = FAMILIES[name]
    kw = {"logits": fam.logits}
    if method in ("grad_cam", "grad_cam_pp", "xgrad_cam", "guided_grad_cam"):
        kw.update(layer=fam.layer, reshape=fam.reshape)
    if method == "cam":
        kw.update(layer=fam.layer)
    if method == "occlusion":
        kw.update(window=WINDOW, stride=WINDOW)
    kw.update(extra)
    if method == "deletion":
        maps = xr.saliency(model, x, target, logits=kw["logits"])
        return metrics.deletion(model, x, maps, target, step=128, logits=kw["logits"])
    return getattr(xr, method)(model, x, target, **kw)


def result(method: str, t) -> torch.Tensor:
    """The term a method's result is compared on: its signal at the input, its map, or its curve."""
    if method == "deletion":
        return t.scores
    term = {"saliency": "grad", "deconvnet": "grad", "guided_backprop": "grad", "guided_grad_cam": "guided",
            "cam": "M"}.get(method, "map")
    return getattr(t, term)


def rel_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """``max |ours - ref| / max |ref|`` (the reference must not be all zero: that would prove nothing)."""
    ours, ref = ours.detach().double(), ref.detach().double()
    assert ours.shape == ref.shape, f"shapes {tuple(ours.shape)} vs {tuple(ref.shape)}"
    scale = ref.abs().max().item()
    assert scale > 0, "the reference is all zero"
    return (ours - ref).abs().max().item() / scale


class Scores(nn.Module):
    """A model's class scores alone (``xr.inputs.class_logits``): what Captum and torch-cam need."""

    def __init__(self, model: nn.Module, logits=None):
        super().__init__()
        self.model, self.logits = model, logits

    def forward(self, x):
        return class_logits(self.model(x), self.logits)


# --- an independent ReLU rule: swap every ReLU module for one with a new backward -----------------------


class _RuleFunction(torch.autograd.Function):
    """ReLU (capped at ``upper``) whose backward pass follows ``rule`` (written independently of xai_ref)."""

    @staticmethod
    def forward(ctx, x, rule, upper):
        ctx.save_for_backward(x)
        ctx.rule, ctx.upper = rule, upper
        return x.clamp(0, upper) if upper is not None else x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        active = (x > 0) & (x < ctx.upper) if ctx.upper is not None else x > 0
        positive = grad > 0
        keep = {"deconvnet": positive, "guided": positive & active}[ctx.rule]
        return grad * keep, None, None


class ReferenceReLU(nn.Module):
    def __init__(self, rule: str, upper: float | None):
        super().__init__()
        self.rule, self.upper = rule, upper

    def forward(self, x):
        return _RuleFunction.apply(x, self.rule, self.upper)


def rule_swapped(model: nn.Module, rule: str) -> nn.Module:
    """A copy of ``model`` with every ``nn.ReLU`` / ``nn.ReLU6`` module replaced by a `ReferenceReLU`."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, (nn.ReLU, nn.ReLU6)):
                setattr(parent, child_name, ReferenceReLU(rule, 6.0 if isinstance(child, nn.ReLU6) else None))
    return model


def swapped_signal(model: nn.Module, x: torch.Tensor, targets: list[int], rule: str, logits) -> torch.Tensor:
    """The deconvnet / guided signal at the input by `rule_swapped` and plain autograd."""
    x_ = x.clone().requires_grad_(True)
    scores = class_logits(rule_swapped(model, rule)(x_), logits)
    (g,) = torch.autograd.grad(scores.gather(1, torch.tensor(targets)[:, None]).sum(), [x_])
    return g


def has_relu6(model: nn.Module) -> bool:
    return any(isinstance(m, nn.ReLU6) for m in model.modules())


# --- the references of each method ---------------------------------------------------------------------


@dataclass
class Cell:
    """What one method does on one family: ``outcome`` "agrees", "warns" or "refused"; ``checks`` the
    references compared: (label, measured max relative error, tolerance); ``notes`` peers that disagree and
    why, the warned activations or the refusal's reason."""

    outcome: str
    checks: list[tuple[str, float, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        parts = [f"{self.outcome}: {n}" for n in self.notes[:1]] if self.outcome != "agrees" else []
        parts += [f"= {label} ({err:.0e})" for label, err, _ in self.checks]
        parts += self.notes[1:] if self.outcome != "agrees" else self.notes
        return "; ".join(parts)


def leaf(x: torch.Tensor) -> torch.Tensor:
    return x.detach().clone().requires_grad_(True)


def peer_model(name: str, model: nn.Module) -> nn.Module:
    """The model a peer library is given: the class scores alone (`Scores`), and for the model that
    normalises its input in place, its out-of-place twin (Captum and torch-cam would edit the caller's x)."""
    if name == "inplace_norm":
        model = out_of_place_twin(model)
    return Scores(model, FAMILIES[name].logits)


def layer_of(peer: Scores, name: str) -> nn.Module:
    return dict(peer.model.named_modules())[FAMILIES[name].layer]


def torchcam_map(cls, peer: Scores, name: str, x: torch.Tensor, targets: list[int], **kw):
    """torch-cam's raw map (``normalized=False``) and the activation and gradient it hooked."""
    with cls(peer, layer_of(peer, name), input_shape=tuple(x.shape[1:]), **kw) as extractor:
        scores = peer(leaf(x))
        ref = extractor(targets, scores, normalized=False)[0]
        A, g = extractor.hook_a[0], extractor.hook_g[0]
    assert hook_count(peer) == 0
    return ref, A, g


def layer_by_hand(peer: Scores, name: str, x: torch.Tensor, targets: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The family's Grad-CAM layer output and its gradient, by a plain forward hook and autograd (the network
    goes on with a copy, so an in-place op after the layer cannot change it), as (B,K,h,w) maps."""
    captured = []

    def hook(module, args, out):
        captured.append(out)
        return out.clone()

    handle = layer_of(peer, name).register_forward_hook(hook)
    try:
        scores = peer(x)
    finally:
        handle.remove()
    (g,) = torch.autograd.grad(scores.gather(1, torch.tensor(targets)[:, None]).sum(), captured)
    A = captured[0].detach()
    if A.dim() == 3:                                 # ViT tokens (B, 1 + 8*8, C): drop the class token
        grid = lambda t: t[:, 1:].reshape(t.shape[0], 8, 8, -1).permute(0, 3, 1, 2)  # noqa: E731
        A, g = grid(A), grid(g)
    return A, g


def grad_cam_by_hand(A: torch.Tensor, g: torch.Tensor, method: str) -> torch.Tensor:
    """L of Grad-CAM, Grad-CAM++ (the paper's weights without exp(S), see test_against_libraries) or
    XGrad-CAM from an activation A (B,K,h,w) and its gradient g."""
    if method == "grad_cam":
        weights = g.mean((2, 3))
    elif method == "xgrad_cam":
        total = A.sum((2, 3))                        # 0 for an all-zero map (after a ReLU): weight 0
        weights = torch.where(total != 0, (A * g).sum((2, 3)) / torch.where(total != 0, total, 1), 0)
    else:
        denominator = 2 * g**2 + g**3 * A.sum((2, 3), keepdim=True)
        a = torch.where(g != 0, g**2 / torch.where(g != 0, denominator, 1), 0)
        weights = (a * g.clamp(min=0)).sum((2, 3))
    return torch.einsum("bk,bkhw->bhw", weights, A).clamp(min=0)


def references(method: str, name: str, model: nn.Module, x: torch.Tensor, targets: list[int], ours: xr.Trace):
    """``(label, ours, reference)`` triples for every independent reference of ``method`` on this family,
    and notes on the peers that disagree."""
    fam, checks, notes = FAMILIES[name], [], []
    peer = peer_model(name, model)
    twin = relu_twin(name, model)
    if method in ("saliency", "occlusion"):
        if method == "saliency":
            ref = Saliency(peer).attribute(leaf(x), target=targets, abs=False)
        else:
            ref = Occlusion(peer).attribute(x.clone(), sliding_window_shapes=(3, WINDOW, WINDOW),
                                            strides=(3, WINDOW, WINDOW), target=targets, perturbations_per_eval=16)[:, 0]
        if method == "occlusion":      # Captum's float64 occlusion is ~3e-8 off the by-hand drops: tolerance 1e-6
            checks.append(("by hand", ours.drop, occlusion_by_hand(peer, x, targets)))
        checks.append(("Captum", result(method, ours), ref, TOL if method == "saliency" else 1e-6))
        if name == "inplace_norm":
            notes.append("Captum on the model itself: " + captum_on_inplace_model(method, model, x, targets))
    elif method in RULE_METHODS:
        rule = RULE_METHODS[method]
        explained = twin if twin is not None else peer.model
        if twin is not None:
            checks.append(("nn.ReLU twin", result(method, ours),
                           result(method, run(method, name, twin, x, targets))))
        captum_cls = {"deconvnet": Deconvolution, "guided_backprop": GuidedBackprop}.get(method)
        if has_relu6(explained):
            R = swapped_signal(explained, x, targets, rule, fam.logits)
            ref = R if method != "guided_grad_cam" else R * ours.L_up
            checks.append(("ReLU rules swapped in", result(method, ours), ref))
            notes.append("Captum: no rule at ReLU6")
        else:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Setting backward hooks on ReLU")
                on = Scores(explained, fam.logits) if twin is not None else peer
                if method == "guided_grad_cam":
                    ref = GuidedGradCam(on, dict(on.model.named_modules())[fam.layer]).attribute(
                        leaf(x), target=targets, interpolate_mode="bilinear")
                else:
                    ref = captum_cls(on).attribute(leaf(x), target=targets)
            checks.append(("Captum" + (" on the twin" if twin is not None else ""), result(method, ours), ref))
        if twin is not None:
            notes.append(f"Captum on the model itself: no rule at F.relu, differs by "
                         f"{rel_error(result(method, ours), plain_captum(method, peer, x, targets, name)):.0e}")
    elif method in ("grad_cam", "grad_cam_pp", "xgrad_cam"):
        A, g = layer_by_hand(peer, name, leaf(x), targets)
        checks.append(("by hand" + (" on the token grid" if fam.reshape else ""), ours.L, grad_cam_by_hand(A, g, method)))
        if fam.reshape is None:
            cls = {"grad_cam": GradCAM, "grad_cam_pp": GradCAMpp, "xgrad_cam": XGradCAM}[method]
            ref, A_tc, g_tc = torchcam_map(cls, peer, name, x, targets)
            if method == "grad_cam_pp":        # torch-cam's own weights lose a division: the paper's, on its A and g
                ref = grad_cam_by_hand(A_tc, g_tc, method)
            if not torch.equal(A_tc, A):
                notes.append(f"torch-cam: its captured A was then changed in place (F.relu(inplace=True)), "
                             f"differs by {rel_error(ours.L, ref):.0e}")
            elif method == "grad_cam_pp":
                checks.append(("paper on torch-cam's A, dy/dA", ours.L, ref))
            else:
                checks.append(("torch-cam", ours.L, ref, 1e-6 if method == "xgrad_cam" else TOL))
            if method == "grad_cam":
                ref = LayerGradCam(peer, layer_of(peer, name)).attribute(leaf(x), target=targets,
                                                                         relu_attributions=True)
                checks.append(("Captum", ours.map, LayerAttribution.interpolate(ref, tuple(x.shape[2:]),
                                                                                "bilinear")[:, 0]))
    elif method == "cam":
        fc = [m for m in peer.modules() if isinstance(m, nn.Linear)][-1]
        with CAM(peer, layer_of(peer, name), fc, input_shape=tuple(x.shape[1:])) as extractor:
            with torch.no_grad():
                scores = peer(x)
            checks.append(("torch-cam", ours.M, extractor(targets, scores, normalized=False)[0]))
    elif method == "deletion":
        with torch.no_grad():
            probs = peer(x).softmax(1)[torch.arange(len(targets)), targets]
        checks.append(("softmax of the model at step 0", ours.scores[:, 0], probs))
    if method in ("saliency", "deletion", "occlusion", "grad_cam") and name in ("inception", "dict_output"):
        callable_target = lambda out: class_logits(out, fam.logits)[:, targets[0]]  # noqa: E731
        single = single_output_twin(name, model)
        checks.append(("single-output twin", result(method, ours),
                       result(method, run(method, name, single, x, targets, logits=None))))
        if method != "deletion":
            same = run(method, name, model, x[:1], callable_target, logits=None)
            checks.append(("callable target", result(method, same),
                           result(method, run(method, name, single, x[:1], targets[0], logits=None))))
    return [(label, rel_error(a, b), tol) for label, a, b, tol in (c if len(c) == 4 else (*c, TOL) for c in checks)], notes


def plain_captum(method: str, peer: Scores, x: torch.Tensor, targets: list[int], name: str) -> torch.Tensor:
    """What Captum returns for ``method`` on a model whose ReLUs are function calls (no hook sees them)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Setting backward hooks on ReLU")
        if method == "guided_grad_cam":
            return GuidedGradCam(peer, layer_of(peer, name)).attribute(leaf(x), target=targets,
                                                                       interpolate_mode="bilinear")
        cls = Deconvolution if method == "deconvnet" else GuidedBackprop
        return cls(peer).attribute(leaf(x), target=targets)


def occlusion_by_hand(peer: Scores, x: torch.Tensor, targets: list[int]) -> torch.Tensor:
    """The score drops (B, 4, 4) of the occlusion grid, one occluded copy at a time."""
    rows, c = torch.arange(len(targets)), torch.tensor(targets)
    n = x.shape[2] // WINDOW
    drops = torch.zeros(len(targets), n, n, dtype=x.dtype)
    with torch.no_grad():
        y = peer(x)[rows, c]
        for i in range(n):
            for j in range(n):
                occluded = x.clone()
                occluded[:, :, i * WINDOW:(i + 1) * WINDOW, j * WINDOW:(j + 1) * WINDOW] = 0
                drops[:, i, j] = y - peer(occluded)[rows, c]
    return drops


def captum_on_inplace_model(method: str, model: nn.Module, x: torch.Tensor, targets: list[int]) -> str:
    """What Captum does when the model normalises its input in place (it gives the model its own tensors)."""
    x_ = leaf(x) if method == "saliency" else x.clone()
    try:
        if method == "saliency":
            Saliency(model).attribute(x_, target=targets)
        else:
            Occlusion(model).attribute(x_, sliding_window_shapes=(3, WINDOW, WINDOW), strides=(3, WINDOW, WINDOW),
                                       target=targets, perturbations_per_eval=16)
    except RuntimeError as e:
        return "RuntimeError (" + str(e).split(" is being")[0].strip() + " ...)"
    return "changes the caller's x" if not torch.equal(x_, x) else "works"


def predicted(name: str, model: nn.Module, x: torch.Tensor) -> list[int]:
    with torch.no_grad():
        return class_logits(model(x.clone()), FAMILIES[name].logits).argmax(1).tolist()


def replica(name: str) -> tuple[nn.Module, torch.Tensor]:
    return FAMILIES[name]().double(), example_input(dtype=torch.float64)


def measure(method: str, name: str) -> Cell:
    """Run ``method`` on the replica ``name`` (float64) and compare it with every reference that applies."""
    model, x = replica(name)
    targets = predicted(name, model, x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ours = run(method, name, model, x, targets)
        except ValueError as e:
            return Cell("refused", notes=[short_reason(str(e))])
    rule_warnings = [w for w in caught if issubclass(w.category, ReLURuleWarning)]
    checks, notes = references(method, name, model, x, targets, ours)
    if rule_warnings:
        others = str(rule_warnings[0].message).split("activations (")[1].split(")")[0]
        return Cell("warns", checks, [f"no ReLU rule at {others}"] + notes)
    return Cell("agrees", checks, notes)


def short_reason(message: str) -> str:
    """The first clause of a refusal, for the table."""
    if "computed no ReLU" in message:
        return "no ReLU (" + message.split("activations seen: ")[1].split(")")[0] + ")"
    if "CAM needs" in message:
        return "head is not GAP + linear"
    return message.split(";")[0]


# --- the tests ----------------------------------------------------------------------------------------

EXPECTED_REFUSALS = {("cam", n) for n, f in FAMILIES.items() if not f.cam} | {
    (m, n) for m in RULE_METHODS for n, f in FAMILIES.items() if f.activations == "no relu"}


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("method", METHODS)
def test_every_method_on_every_family(method, name):
    """Each method equals every reference that applies, refuses only where it must (CAM on a head that
    is not GAP + linear, ReLU rules on a model without ReLUs), and warns on mixed activations."""
    cell = measure(method, name)
    if (method, name) in EXPECTED_REFUSALS:
        assert cell.outcome == "refused", cell.text()
        return
    assert cell.outcome == ("warns" if method in RULE_METHODS and FAMILIES[name].activations == "mixed"
                            else "agrees"), cell.text()
    assert cell.checks, f"{method} on {name}: no reference was checked"
    for label, err, tol in cell.checks:
        assert err <= tol, f"{method} on {name}: {label} differs by {err:.3g} > {tol}"


def test_captum_misses_functional_relus():
    """The disagreement recorded in the table is real: on a model whose ReLUs are F.relu calls Captum's
    guided backprop is the plain gradient, while ours equals the nn.ReLU twin."""
    model, x = replica("densenet")
    targets = predicted("densenet", model, x)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Setting backward hooks on ReLU")
        captum = GuidedBackprop(model).attribute(leaf(x), target=targets)
    plain = xr.saliency(model, x, targets).grad
    ours = xr.guided_backprop(model, x, targets).grad
    assert rel_error(captum, plain) <= TOL
    assert rel_error(ours, plain) > 0.1


# --- refusals and warnings, with their messages ---------------------------------------------------------


@pytest.mark.parametrize("name", [n for n, f in FAMILIES.items() if f.activations == "no relu"])
@pytest.mark.parametrize("method", list(RULE_METHODS))
def test_rule_methods_refuse_models_without_relu(method, name):
    model, x = replica(name)
    with pytest.raises(ValueError, match=r"computed no ReLU.*(gelu|silu).*saliency .* or grad_cam"):
        run(method, name, model, x)


@pytest.mark.parametrize("method", list(RULE_METHODS))
def test_rule_methods_warn_on_mixed_activations(method):
    model, x = replica("mobilenet_v3")
    with pytest.warns(ReLURuleWarning, match=r"ReLUs \(\d+ calls\).*hardsigmoid, hardswish"):
        run(method, "mobilenet_v3", model, x)


@pytest.mark.parametrize("name", [n for n, f in FAMILIES.items() if not f.cam])
def test_cam_refuses_heads_that_are_not_gap_linear(name):
    model, x = replica(name)
    with pytest.raises(ValueError, match="CAM needs"):
        run("cam", name, model, x)


def test_structured_output_without_logits_shows_both_fixes():
    model, x = replica("inception")
    with pytest.raises(ValueError, match=r"logits=.*callable target"):
        xr.grad_cam(model, x, layer="Mixed_6a")


# --- grad modes, and the model and input left as they were ---------------------------------------------


def expectation(method: str, name: str):
    """A context that expects what ``method`` does on ``name``: refuse, warn or neither."""
    if (method, name) in EXPECTED_REFUSALS:
        return pytest.raises(ValueError)
    if method in RULE_METHODS and FAMILIES[name].activations == "mixed":
        return pytest.warns(ReLURuleWarning)
    return warnings.catch_warnings()          # nothing expected (and pytest turns any warning into an error)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_results_inside_no_grad_and_inference_mode(name):
    """Every method gives the same result inside torch.no_grad() and torch.inference_mode() (with an
    input made there) as outside."""
    model, x = replica(name)
    for method in METHODS:
        if (method, name) in EXPECTED_REFUSALS:
            continue
        with expectation(method, name):
            normal = result(method, run(method, name, model, x))
        with expectation(method, name), torch.no_grad():
            no_grad = result(method, run(method, name, model, x))
        with expectation(method, name), torch.inference_mode():
            x_inf = x.clone()
            inference = result(method, run(method, name, model, x_inf))
        assert torch.equal(no_grad, normal), f"{method} on {name} under no_grad"
        assert torch.equal(inference.clone(), normal), f"{method} on {name} under inference_mode"


def awkward_state(model: nn.Module) -> nn.Module:
    """The model as a student may hand it over: in training mode with one submodule in eval, a frozen
    parameter, a parameter with a .grad."""
    model.train()
    list(model.children())[0].eval()
    params = list(model.parameters())
    params[0].requires_grad_(False)
    params[-1].grad = torch.full_like(params[-1], 0.5)
    return model


def snapshot(model: nn.Module) -> list:
    return [hook_count(model), [m.training for m in model.modules()],
            [getattr(m, "inplace", None) for m in model.modules()],
            [(p.requires_grad, p.grad) for p in model.parameters()]]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_model_and_input_as_before_after_every_call(name):
    """After every method, successful, warning or refusing: no hook left, every module's training flag and
    ReLU inplace flag, every parameter's requires_grad and the very same .grad tensor as before; the
    input's values and version counter unchanged (also for the model that normalises in place)."""
    model, x = replica(name)
    awkward_state(model)
    before, x_before, version = snapshot(model), x.clone(), x._version
    grads = [p.grad.clone() if p.grad is not None else None for p in model.parameters()]
    for method in METHODS:
        with expectation(method, name):
            run(method, name, model, x)
        after = snapshot(model)
        assert after[:3] == before[:3], f"{method} on {name}: hooks, training or inplace flags changed"
        assert all(rg0 == rg1 and g0 is g1 for (rg0, g0), (rg1, g1) in zip(before[3], after[3])), method
        assert all(g is None or torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads)), method
        assert torch.equal(x, x_before) and x._version == version, f"{method} on {name} changed the input"


@pytest.mark.parametrize("method", METHODS)
def test_model_normalising_in_place_equals_out_of_place_twin(method):
    """A model that runs ``x.sub_(mean).div_(std)`` gives every method the result of its twin that
    normalises out of place, and the caller's tensor is left unchanged."""
    model, x = replica("inplace_norm")
    x_before = x.clone()
    ours = result(method, run(method, "inplace_norm", model, x))
    assert torch.equal(x, x_before)
    twin = result(method, run(method, "inplace_norm", out_of_place_twin(model), x))
    assert rel_error(ours, twin) <= TOL
