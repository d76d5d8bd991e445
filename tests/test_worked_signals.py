"""The worked equations of the methods no explorer walks in every setting (`tests/test_worked.py` walks the
explorers): saliency and deconvnet, occlusion, the class model run through its explorer, fooling images, and
attention maps with max and p = 1. Each term, at several channels and positions, gives the shown result,
and that result is the trace's own value."""

from __future__ import annotations

import re

import pytest
import torch

import xai_ref as xr
from widgets import AscentExplorer
from widgets.worked import num, work
from xai_ref import models
from xai_ref.data import shapes

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shapes_image():
    x, label = shapes.generate(1, seed=0).to_torch()
    return x, int(label[0])


def worked_out(trace, symbol: str, k: int = 0, pos=None):
    """The worked equation of a term: it exists, adds up to the trace's value and ends with its result."""
    w = work(trace, symbol, k, pos)
    assert w is not None, f"{trace.method}.{symbol} is not worked out"
    assert w.agrees, (trace.method, symbol, k, pos, w.result, w.value)
    assert re.search(re.escape(num(w.result)) + r"\s*$", w.latex), (trace.method, symbol, w.latex[-60:])
    assert w.latex.count("{") == w.latex.count("}"), w.latex
    return w


@pytest.mark.parametrize("method", [xr.saliency, xr.deconvnet, xr.guided_backprop])
def test_input_signals(method, shapes_image):
    t = method(models.load("vgg_shapes"), shapes_image[0])
    for k, pos in ((0, None), (2, (5, 7)), (9, (63, 0))):
        for symbol in t.symbols:
            worked_out(t, symbol, k, pos)
    assert r"\max(|" in worked_out(t, "map").latex


def test_occlusion(shapes_image):
    t = xr.occlusion(models.load("vgg_shapes"), shapes_image[0], window=8, stride=16)
    assert worked_out(t, "corners").latex.endswith(r"= 4 \cdot 4 = 16")
    worked_out(t, "drop")
    worked_out(t, "drop", pos=(3, 1))
    assert r"\frac{1}{1}" in worked_out(t, "map").latex
    assert r"\text{(no window covers it)}" in worked_out(t, "map", pos=(60, 60)).latex


def test_fooling_image(shapes_image):
    x, label = shapes_image
    target = (label + 1) % 6
    t = xr.fooling_image(models.load("nin_shapes"), x, target, max_steps=50, pixel_range=(0.0, 1.0))
    assert bool(t.fooled[0])
    for symbol in t.symbols:
        worked_out(t, symbol)
        worked_out(t, symbol, 2, (10, 20))
    assert worked_out(t, "fooled").latex.endswith(f"[{target} = {target}] = 1")
    assert rf"\text{{target }} t = {target}" in worked_out(t, "pred").latex


def test_class_model_through_its_explorer():
    e = AscentExplorer(steps=20, chunk=10)
    e.controls["run"].value = True
    s = e.stepper
    assert e.done == 20 and s.trace.meta["snapshot_steps"] == [10, 20]
    for step, symbol in enumerate(s.trace.symbols, start=1):
        s.step.value = step
        worked_out(s.trace, symbol, s.channel.value, s.marker)
        assert "With this image's numbers" in s.worked.value
    assert r"\lVert I_{10} \rVert_2^2" in worked_out(s.trace, "R").latex   # the last kept image before the end
    assert "I_0 = 0" in worked_out(s.trace, "I0").latex


@pytest.mark.parametrize("kind, p", [("sum", 1), ("max", 2), ("max", 4)])
def test_attention_transfer(kind, p):
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 5, 4, 4, generator=g), torch.randn(2, 2, 4, 4, generator=g)
    t = xr.attention_transfer(student, teacher, p=p, kind=kind)
    for k, pos in ((0, None), (15, (1, 2)), (99, (3, 3))):
        for symbol in t.symbols:
            worked_out(t, symbol, k, pos)
    assert r"\frac{1}{2 \cdot 16}" in worked_out(t, "loss").latex
