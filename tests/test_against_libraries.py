"""Our PyTorch methods against independent implementations: Captum 0.9.0 and torch-cam 0.5.0.

Every comparison is in float32 and asserts ``max |ours - theirs| <= 1e-5 * max |theirs|`` (the map's
own scale), on small seeded networks and on the shipped models (``nin_shapes``, ``vgg_shapes``,
``efficientnet_lite0``). Run with ``pytest -s`` to print the measured differences.

Where a library departs from the paper we do not paper over it; a test documents what it computes:

* torch-cam's ``GradCAMpp`` loses its division (``alpha[idx][mask].div_(...)`` divides a copy made by
  boolean-mask indexing), so its weights are ``sum_ij g^2 relu(g)`` instead of the paper's
  ``sum_ij a_ij relu(g)`` with ``a = g^2 / (2 g^2 + sum_ab A_ab g^3)``;
* torch-cam's ``CAM`` applies no ReLU (its docstring writes one): with ``normalized=False`` it returns
  the raw ``M`` of the paper, negative values included, exactly like ours.

Captum's guided and deconvnet rules hook only ``nn.ReLU`` (not ``nn.ReLU6``), so those two (and Guided
Grad-CAM) are compared on ReLU networks only; EfficientNet-Lite0 uses ReLU6.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from captum.attr import (Deconvolution, GuidedBackprop, GuidedGradCam, LayerAttribution, LayerGradCam, Occlusion,
                         Saliency)
from torch import nn
from torchcam.methods import CAM, GradCAM, GradCAMpp, XGradCAM

import xai_ref as xr
from conftest import hook_count


pytestmark = pytest.mark.usefixtures("one_thread")


RTOL = 1e-5  # of the reference map's largest magnitude


# --- helpers -----------------------------------------------------------------------------------------


def assert_matches(ours: torch.Tensor, ref: torch.Tensor, what: str) -> float:
    """``max |ours - ref| <= RTOL * max |ref|``, with a non-trivial reference; returns the relative difference."""
    ours, ref = ours.detach(), ref.detach()
    assert ours.shape == ref.shape, f"{what}: shapes {tuple(ours.shape)} vs {tuple(ref.shape)}"
    assert ours.dtype == ref.dtype == torch.float32
    scale = ref.abs().max().item()
    assert scale > 0, f"{what}: the reference is all zero, so the comparison would prove nothing"
    rel = (ours - ref).abs().max().item() / scale
    print(f"  {what:<55} max|diff|/max|ref| = {rel:.2e}")
    assert rel <= RTOL, f"{what}: relative difference {rel:.3g} > {RTOL}"
    return rel


def leaf(x: torch.Tensor) -> torch.Tensor:
    """A copy of x that requires grad (Captum warns when it has to set requires_grad itself)."""
    return x.detach().clone().requires_grad_(True)


def normalized(m: torch.Tensor) -> torch.Tensor:
    """Min-max normalisation per map, as torch-cam's ``normalized=True``."""
    flat = m.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo)).view_as(m)


# --- the networks ------------------------------------------------------------------------------------


def gap_net() -> nn.Module:
    """conv-ReLU-maxpool-conv-ReLU-GAP-linear: every method applies (CAM too), ReLU only."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 6, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4),
    ).eval()


def fc_net() -> nn.Module:
    """VGG-like: two conv-ReLU-maxpool blocks and a fully-connected head (no CAM)."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 5),
    ).eval()


def _import(module: str):
    """Import a module being written concurrently; skip (with the reason) only while it does not exist."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and module.startswith(e.name):
            pytest.skip(f"{module} does not exist yet; this comparison runs once it does")
        raise


def shipped(name: str) -> nn.Module:
    models = _import("xai_ref.models")
    if name != "efficientnet_lite0" and not Path(str(models.weights_path(name))).exists():
        pytest.skip(f"the trained weights of {name} are not shipped yet ({models.weights_path(name)} is missing; "
                    f"`python -m xai_ref.training.shapes_nets {name}` makes them)")
    return models.load(name)


def shapes_images(n: int = 2) -> torch.Tensor:
    return _import("xai_ref.data.shapes").generate(n, seed=3, split="test").to_torch()[0]


@dataclass
class Case:
    name: str
    model: nn.Module
    x: torch.Tensor
    layer: str            # the Grad-CAM / CAM layer (a dotted name)
    relu_only: bool       # ReLU and no ReLU6: Captum's guided / deconvnet rules apply
    fc: str | None        # the linear layer after GAP, for CAM (None: not a GAP net)
    window: int           # occlusion window and stride (H - window divisible by stride, as Captum assumes)
    stride: int
    targets: list[int] | None = None  # the predicted classes: computed once here, never inside a library's hooks

    def __post_init__(self):
        with torch.no_grad():
            self.targets = self.model(self.x).argmax(1).tolist()


def make_case(name: str) -> Case:
    if name == "gap_net":
        return Case(name, gap_net(), torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(0)),
                    "4", True, "7", 4, 2)
    if name == "fc_net":
        return Case(name, fc_net(), torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)),
                    "4", True, None, 4, 4)
    if name == "nin_shapes":
        return Case(name, shipped(name), shapes_images(), "mlpconv4_relu2", True, "fc", 16, 8)
    if name == "vgg_shapes":
        return Case(name, shipped(name), shapes_images(), "block3_relu2", True, None, 16, 8)
    if name == "efficientnet_lite0":
        photos = _import("xai_ref.data.photos")
        return Case(name, shipped(name), photos.preprocess(photos.load("chelsea")), "head", False, "classifier",
                    112, 112)
    raise ValueError(name)


NAMES = ["gap_net", "fc_net", "nin_shapes", "vgg_shapes", "efficientnet_lite0"]
_CASES: dict[str, Case] = {}


@pytest.fixture(scope="module", params=NAMES)
def case(request) -> Case:
    if request.param not in _CASES:
        _CASES[request.param] = make_case(request.param)
    c = _CASES[request.param]
    print(f"\n[{c.name}] x {tuple(c.x.shape)}, layer {c.layer!r}")
    yield c
    assert hook_count(c.model) == 0, "a hook was left on the model"


def relu_case(case: Case) -> Case:
    if not case.relu_only:
        pytest.skip(f"{case.name} uses ReLU6, which Captum's guided / deconvnet rules do not touch "
                    "(our ReLU6 rule is tested by hand in tests/test_hooks.py)")
    return case


def gap_case(case: Case) -> Case:
    if case.fc is None:
        pytest.skip(f"{case.name} has a flatten + fully-connected head: CAM does not apply")
    return case


# --- Captum: gradients at the input -------------------------------------------------------------------


def test_saliency_vs_captum(case):
    ours = xr.saliency(case.model, case.x, case.targets)
    ref = Saliency(case.model).attribute(leaf(case.x), target=case.targets, abs=False)
    assert_matches(ours.grad, ref, f"saliency grad vs Captum Saliency(abs=False) [{case.name}]")
    assert_matches(ours.map, ref.abs().amax(1), f"saliency map vs max_ch |Captum| [{case.name}]")


@pytest.mark.parametrize("method, captum_cls", [(xr.deconvnet, Deconvolution), (xr.guided_backprop, GuidedBackprop)],
                         ids=["deconvnet", "guided_backprop"])
def test_relu_rules_vs_captum(case, method, captum_cls):
    case = relu_case(case)
    ours = method(case.model, case.x, case.targets)
    with pytest.warns(UserWarning, match="Setting backward hooks on ReLU"):
        ref = captum_cls(case.model).attribute(leaf(case.x), target=case.targets)
    assert_matches(ours.grad, ref, f"{method.__name__} grad vs Captum {captum_cls.__name__} [{case.name}]")


def test_plain_gradient_differs_from_guided(case):
    """The comparisons above are not vacuous: the three rules give different signals on every model."""
    case = relu_case(case)
    grads = [m(case.model, case.x, case.targets).grad for m in (xr.saliency, xr.deconvnet, xr.guided_backprop)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert (grads[i] - grads[j]).abs().max() > 1e-3 * grads[j].abs().max()


# --- Captum: Grad-CAM and Guided Grad-CAM ----------------------------------------------------------------


def test_grad_cam_vs_captum_layer_grad_cam(case):
    ours = xr.grad_cam(case.model, case.x, case.targets, layer=case.layer)
    layer = dict(case.model.named_modules())[case.layer]
    ref = LayerGradCam(case.model, layer).attribute(leaf(case.x), target=case.targets, relu_attributions=True)
    assert_matches(ours.L, ref[:, 0], f"grad_cam L vs Captum LayerGradCam [{case.name}]")
    up = LayerAttribution.interpolate(ref, tuple(case.x.shape[2:]), "bilinear")
    assert_matches(ours.map, up[:, 0], f"grad_cam map vs LayerGradCam + interpolate [{case.name}]")


def test_guided_grad_cam_vs_captum(case):
    case = relu_case(case)
    ours = xr.guided_grad_cam(case.model, case.x, case.targets, layer=case.layer)
    layer = dict(case.model.named_modules())[case.layer]
    with pytest.warns(UserWarning, match="Setting backward hooks on ReLU"):
        ref = GuidedGradCam(case.model, layer).attribute(leaf(case.x), target=case.targets,
                                                         interpolate_mode="bilinear")
    assert_matches(ours.guided, ref, f"guided_grad_cam guided vs Captum GuidedGradCam [{case.name}]")


# --- Captum: occlusion ---------------------------------------------------------------------------------


def test_occlusion_vs_captum(case):
    C = case.x.shape[1]
    w, s = case.window, case.stride
    assert (case.x.shape[2] - w) % s == 0  # else Captum adds windows cut off at the border, and we do not
    ours = xr.occlusion(case.model, case.x, case.targets, window=w, stride=s)
    n = ours.drop.shape[1] * ours.drop.shape[2]
    ref = Occlusion(case.model).attribute(case.x, sliding_window_shapes=(C, w, w), strides=(C, s, s),
                                          target=case.targets, perturbations_per_eval=n)
    # the window covers all channels, so Captum's attribution is the same map in every channel
    for ch in range(C):
        assert_matches(ours.map, ref[:, ch], f"occlusion map vs Captum Occlusion, channel {ch} [{case.name}]")


# --- torch-cam -----------------------------------------------------------------------------------------


def test_cam_vs_torchcam(case):
    case = gap_case(case)
    ours = xr.cam(case.model, case.x, case.targets, layer=case.layer, fc=case.fc)
    with CAM(case.model, case.layer, case.fc) as extractor:
        with torch.no_grad():
            scores = case.model(case.x)
        ref = extractor(case.targets, scores, normalized=False)[0]
    assert hook_count(case.model) == 0
    assert_matches(ours.M, ref, f"cam M vs torch-cam CAM(normalized=False) [{case.name}]")


@pytest.mark.parametrize("method, torchcam_cls", [(xr.grad_cam, GradCAM), (xr.xgrad_cam, XGradCAM)],
                         ids=["grad_cam", "xgrad_cam"])
def test_grad_cam_family_vs_torchcam(case, method, torchcam_cls):
    ours = method(case.model, case.x, case.targets, layer=case.layer)
    with torchcam_cls(case.model, case.layer) as extractor:
        scores = case.model(leaf(case.x))
        ref = extractor(case.targets, scores, normalized=False)[0]
    assert hook_count(case.model) == 0
    assert_matches(ours.L, ref, f"{method.__name__} L vs torch-cam {torchcam_cls.__name__} [{case.name}]")


def paper_grad_cam_pp_weights(A: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ channel weights (Chattopadhay et al. 2018, eq. 19 without the exp(S) factor), vectorised:
    ``w_k = sum_ij a_ij relu(g_ij)``, ``a_ij = g_ij^2 / (2 g_ij^2 + g_ij^3 sum_ab A_ab)`` (0 where g_ij = 0)."""
    denominator = 2 * g**2 + g**3 * A.sum((2, 3), keepdim=True)
    a = torch.where(g != 0, g**2 / torch.where(g != 0, denominator, 1), 0)
    return (a * g.clamp(min=0)).sum((2, 3))


def test_grad_cam_pp_and_torchcam_departure(case):
    """torch-cam's GradCAMpp computes sum_ij g^2 relu(g), not the paper's weights; ours follows the paper."""
    ours = xr.grad_cam_pp(case.model, case.x, case.targets, layer=case.layer)
    with GradCAMpp(case.model, case.layer) as extractor:
        scores = case.model(leaf(case.x))
        ref = extractor(case.targets, scores, normalized=False)[0]
        A, g = extractor.hook_a[0], extractor.hook_g[0]  # torch-cam's own activations and gradients
    assert hook_count(case.model) == 0
    # same A and gradient as ours: the difference is in the weights alone
    assert_matches(ours.A, A, f"grad_cam_pp A vs torch-cam's hooked activation [{case.name}]")
    assert_matches(ours.dY_dA, g, f"grad_cam_pp dY_dA vs torch-cam's hooked gradient [{case.name}]")
    # ours: the paper's formula, from torch-cam's A and g
    paper = torch.einsum("bk,bkhw->bhw", paper_grad_cam_pp_weights(A, g), A).clamp(min=0)
    assert_matches(ours.L, paper, f"grad_cam_pp L vs paper formula [{case.name}]")
    # torch-cam: the same formula with the division by (2 g^2 + sum A g^3) lost
    undivided = torch.einsum("bk,bkhw->bhw", (g**2 * g.clamp(min=0)).sum((2, 3)), A).clamp(min=0)
    assert_matches(ref, undivided, f"torch-cam GradCAMpp vs undivided formula [{case.name}]")
    # and the two differ, by more than a scale factor: the channel weights point in other directions
    rel = ((ref - ours.L).abs().max() / ours.L.abs().max()).item()
    w_torchcam = (g**2 * g.clamp(min=0)).sum((2, 3))
    cos = torch.nn.functional.cosine_similarity(ours.alpha.double(), w_torchcam.double(), dim=1)
    print(f"  torch-cam GradCAMpp vs ours: L {rel:.3g} relative, 1 - cos(weights) = "
          f"{[round(v, 3) for v in (1 - cos).tolist()]} [{case.name}]")
    assert rel > 0.1 and (1 - cos > 0.01).all()


# --- the two findings about torch-cam, on a network small enough to check by hand ----------------------


def test_torchcam_grad_cam_pp_division_is_lost_by_hand():
    """torch-cam 0.5.0 ``GradCAMpp._get_weights`` runs ``alpha[idx][mask].div_(d[mask] + eps)``: indexing
    with a boolean mask returns a copy, so the in-place division never reaches ``alpha``.

    Here every term is computed with Python loops from an independent forward/backward (a layer with
    varying gradients: the first ReLU, before max-pooling and a second convolution).
    """
    model, x, c = gap_net(), torch.randn(2, 3, 6, 6), [1, 2]
    A = model[:2](x).detach().requires_grad_(True)        # (2,8,6,6): output of the first ReLU
    (g,) = torch.autograd.grad(model[2:](A).gather(1, torch.tensor(c)[:, None]).sum(), [A])
    A_, g_ = A.detach().tolist(), g.tolist()
    B, K, h, w = A.shape
    paper = torch.zeros(B, K)
    torchcam_like = torch.zeros(B, K)
    for b in range(B):
        for k in range(K):
            total = sum(A_[b][k][i][j] for i in range(h) for j in range(w))
            for i in range(h):
                for j in range(w):
                    gij = g_[b][k][i][j]
                    if gij != 0:
                        a = gij**2 / (2 * gij**2 + total * gij**3)  # the paper's eq. 19 (without exp(S))
                        paper[b, k] += a * max(gij, 0.0)
                    torchcam_like[b, k] += gij**2 * max(gij, 0.0)   # a never divided
    flat = g.flatten(2)
    assert (flat.amax(2) != flat.amin(2)).any()  # the gradient varies over positions (not just per channel)
    assert (paper != 0).any() and not torch.allclose(paper, torchcam_like)

    ours = xr.grad_cam_pp(model, x, c, layer="1")
    assert torch.allclose(ours.alpha, paper, rtol=1e-5, atol=1e-7 * paper.abs().max())
    with GradCAMpp(model, "1") as extractor:
        ref = extractor(c, model(leaf(x)), normalized=False)[0]
    assert hook_count(model) == 0
    expected_torchcam = torch.einsum("bk,bkhw->bhw", torchcam_like, A.detach()).clamp(min=0)
    assert_matches(ref, expected_torchcam, "torch-cam GradCAMpp vs undivided weights (by hand)")
    assert_matches(ours.L, torch.einsum("bk,bkhw->bhw", paper, A.detach()).clamp(min=0),
                   "grad_cam_pp L vs paper weights (by hand)")
    assert (ref - ours.L).abs().max() > 0.1 * ours.L.abs().max()


def test_torchcam_cam_applies_no_relu():
    """torch-cam's CAM docstring writes L = ReLU(sum_k w_k A_k), but CAM never sets ``_relu``: with
    ``normalized=False`` it returns the raw M, negative values included (as the paper and ours do).
    With ``normalized=True`` it min-max normalises M, still without a ReLU."""
    model, x, c = gap_net(), torch.randn(2, 3, 12, 12), [0, 3]
    ours = xr.cam(model, x, c)
    assert (ours.M < 0).any() and (ours.M > 0).any()  # M has both signs here
    with CAM(model, "4", "7") as extractor:
        with torch.no_grad():
            scores = model(x)
        raw = extractor(c, scores, normalized=False)[0]
        norm = extractor(c, scores, normalized=True)[0]
    assert hook_count(model) == 0
    assert_matches(raw, ours.M, "torch-cam CAM(normalized=False) vs raw M")
    assert (raw < 0).any()                                          # no ReLU
    assert_matches(norm, normalized(ours.M), "torch-cam CAM(normalized=True) vs min-max of raw M")
    relu_then_norm = normalized(ours.M.clamp(min=0))
    assert not torch.allclose(norm, relu_then_norm, atol=1e-3)     # would differ had a ReLU been applied
