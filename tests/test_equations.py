"""Equations as data: every term's text has one home (`xai_ref.equations`), every term says what its axes are,
every method's ``meta`` has the same target type, and a widget chooses a display from the axes alone."""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest
import torch

import xai_ref as xr
from widgets.stepper import kind_of
from xai_ref import compose, scratch
from xai_ref.data import shapes
from xai_ref.equations import AXES, EQUATIONS, Equation, equation

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def traces():
    """Every method's trace, PyTorch and NumPy, on two shapes images."""
    nin, vgg = xr.models.load("nin_shapes").double(), xr.models.load("vgg_shapes").double()
    x = torch.from_numpy(shapes.generate(2, seed=3).images).double()
    net, gap_net = scratch.from_torch(vgg), scratch.from_torch(nin)
    xn = x.numpy()
    feats = torch.rand(2, 4, 8, 8, dtype=torch.float64), torch.rand(2, 6, 8, 8, dtype=torch.float64)
    torch_traces = [xr.gap(nin, x), xr.cam(nin, x), xr.grad_cam(vgg, x), xr.grad_cam_pp(vgg, x), xr.xgrad_cam(vgg, x),
                    xr.guided_grad_cam(vgg, x), xr.saliency(vgg, x), xr.deconvnet(vgg, x), xr.guided_backprop(vgg, x),
                    xr.occlusion(vgg, x, window=16, stride=16), xr.class_model(nin, [1, 2], steps=2, progress=False),
                    xr.fooling_image(nin, x, target=[2, 3], max_steps=2, progress=False), xr.attention_transfer(*feats)]
    numpy_traces = [scratch.gap(gap_net, xn), scratch.cam(gap_net, xn), scratch.grad_cam(net, xn),
                    scratch.grad_cam_pp(net, xn), scratch.xgrad_cam(net, xn), scratch.guided_grad_cam(net, xn),
                    scratch.saliency(net, xn), scratch.occlusion(net, xn, window=16, stride=16),
                    scratch.class_model(gap_net, [1, 2], steps=2), scratch.fooling_image(gap_net, xn, [2, 3], max_steps=2),
                    scratch.attention_transfer(*(f.numpy() for f in feats))]
    return torch_traces, numpy_traces


def test_every_term_names_one_axis_per_dimension(traces):
    for t in [*traces[0], *traces[1]]:
        for term in t.steps:
            assert all(a in AXES for a in term.axes), (t.method, term.symbol)
            if hasattr(term.value, "shape"):
                assert len(term.axes) == term.value.ndim, (t.method, term.symbol, term.axes, term.value.shape)


def test_meta_target_is_a_class_per_image_or_none(traces):
    for t in traces[0]:
        target = t.meta["target"]
        assert target is None or (isinstance(target, torch.Tensor) and target.dtype == torch.int64
                                  and target.dim() == 1), t.method
    for t in traces[1]:
        target = t.meta["target"]
        assert target is None or (isinstance(target, np.ndarray) and target.dtype == np.int64
                                  and target.ndim == 1), t.method


def test_the_display_follows_the_axes(traces):
    kinds = {t.method: {term.symbol: kind_of(term) for term in t.steps} for t in traces[0]}
    assert kinds["grad_cam"] == {"A": "maps", "dY_dA": "maps", "alpha": "bars", "weighted": "heatmap", "L": "heatmap",
                                 "map": "heatmap"}
    assert kinds["saliency"] == {"grad": "signed_rgb", "map": "heatmap"}
    assert kinds["guided_grad_cam"]["L_up"] == "heatmap" and kinds["guided_grad_cam"]["guided"] == "signed_rgb"
    assert kinds["class_model"]["S"] == kinds["class_model"]["J"] == "series"
    assert kinds["class_model"]["snapshots"] == "images"
    assert kinds["fooling_image"]["pred"] == "numbers" and kinds["occlusion"]["corners"] == "numbers"
    assert kinds["gap"]["S"] == "bars" and kinds["attention_transfer"]["q_S"] == "bars"
    assert kinds["attention_transfer"]["loss"] == "numbers"


def _string_literals(path: pathlib.Path) -> list[str]:
    """The string constants of a module's code (docstrings, which quote the equations, left out)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_no_term_text_is_written_outside_the_equations_module():
    # a whole equation (25 characters or more, as the issue counted them); a worked equation may repeat a
    # short symbol such as \mathrm{up}(L^c) before its numbers
    texts = {eq.latex for table in EQUATIONS.values() for eq in table.values() if len(eq.latex) >= 25}
    texts |= {eq.description for table in EQUATIONS.values() for eq in table.values() if len(eq.description) >= 25}
    found = [(path.name, text) for folder in ("xai_ref", "widgets") for path in (ROOT / folder).rglob("*.py")
             if path.name != "equations.py" for literal in _string_literals(path) for text in texts if text in literal]
    assert not found, found


def test_equations_fill_their_placeholders_and_say_what_is_missing():
    eq = equation("attention_transfer", "Q_T", agg=r"\max_c", p=1.5)
    assert eq.latex == r"Q_T = \max_c |A_{T,c}|^{1.5}" and eq.axes == ("image", "row", "col")
    assert equation("grad_cam", "A", layer="conv5").description == "feature maps of layer conv5"
    with pytest.raises(KeyError, match="needs layer="):
        equation("grad_cam", "A")
    with pytest.raises(KeyError, match="no equation for term 'beta' of method 'grad_cam'"):
        equation("grad_cam", "beta")
    with pytest.raises(ValueError, match="unknown axes"):
        Equation("x", "y", ("batch",))


def test_guided_grad_cam_is_composed_once_from_any_grad_cam_family_trace():
    vgg = xr.models.load("vgg_shapes").double()
    x = torch.from_numpy(shapes.generate(2, seed=4).images).double()
    R = xr.guided_backprop(vgg, x).grad
    for method in (xr.grad_cam, xr.grad_cam_pp, xr.xgrad_cam):
        gc = method(vgg, x)
        t = compose.guided(gc, R)
        assert t.method == f"guided_{gc.method}" and t.symbols[-4:] == ["L_up", "R", "guided", "map"]
        assert torch.equal(t.map, (R * gc.map[:, None]).abs().amax(1))
        assert compose.FAMILY_NAMES[gc.method] in t.term("L_up").description
    assert torch.equal(xr.guided_grad_cam(vgg, x).map, compose.guided(xr.grad_cam(vgg, x), R).map)
    with pytest.raises(TypeError, match="Grad-CAM-family"):
        compose.guided(xr.saliency(vgg, x), R)


def test_every_public_function_names_the_lesson_that_builds_it():
    import inspect

    import widgets
    from xai_ref import metrics

    public = [getattr(m, n) for m in (xr, metrics, scratch, widgets, xr.dissection, xr.textual) for n in m.__all__
              if callable(getattr(m, n))]
    missing = []
    for f in public:
        doc = inspect.getdoc(f) or ""
        lesson = doc.rpartition("Lesson: ``")[2].partition("``")[0]
        if not lesson or not (ROOT / lesson).is_file():
            missing.append(f.__qualname__)
    assert not missing, missing
