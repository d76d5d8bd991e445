"""Every number on the screen can be checked by hand: each term of each explorer's trace, written out with the
image's numbers (`widgets.worked`), gives the shown result, and that result is the trace's own value."""

from __future__ import annotations

import re

import pytest

from widgets import (AscentExplorer, AttentionExplorer, BackpropExplorer, CAMExplorer, GAPExplorer,
                     GradCAMExplorer, MetricsExplorer)
from widgets.worked import WORKED, num, work

pytestmark = pytest.mark.usefixtures("one_thread")

EXPLORERS = {
    "gap": lambda: GAPExplorer(),
    "cam": lambda: CAMExplorer(),
    "grad_cam": lambda: GradCAMExplorer(),
    "grad_cam_pp": lambda: GradCAMExplorer(method="Grad-CAM++"),
    "xgrad_cam": lambda: GradCAMExplorer(method="XGrad-CAM", counterfactual=True),
    "backprop": lambda: BackpropExplorer(),
    "ascent": lambda: _run(AscentExplorer(steps=20)),
    "attention": lambda: AttentionExplorer(),
    "metrics": lambda: MetricsExplorer(),
}


def _run(explorer):
    """An AscentExplorer after one run (it has no trace before)."""
    explorer.controls["run"].value = True
    return explorer


def _walk(explorer):
    """Every step of the explorer's stepper, at two channels: (trace, term, channel, marker)."""
    s = explorer.stepper
    for step in range(1, len(s.trace.steps) + 1):
        s.step.value = step
        for channel in sorted({0, s.channel.max}):
            s.channel.value = channel
            yield s.trace, s.term, s.channel.value, s.marker


@pytest.mark.parametrize("name", list(EXPLORERS))
def test_every_term_is_worked_out_and_adds_up(name):
    e = EXPLORERS[name]()
    missing = []
    for trace, term, k, marker in _walk(e):
        w = work(trace, term.symbol, k, marker)
        if w is None:
            missing.append(f"{trace.method}.{term.symbol}")
            continue
        assert w.agrees, (trace.method, term.symbol, k, w.result, w.value)
        assert re.search(re.escape(num(w.result)) + r"\s*$", w.latex), (trace.method, term.symbol, w.latex[-60:])
        assert "With this image's numbers" in e.stepper.worked.value
    assert not missing, sorted(set(missing))


def test_the_worked_equation_follows_the_channel_and_the_position():
    e = GradCAMExplorer()
    s = e.stepper
    s.step.value = e.trace.symbols.index("alpha") + 1
    s.channel.value = 1
    one = s.worked.value
    s.channel.value = 2
    assert s.worked.value != one and r"\alpha^c_{2}" in s.worked.value
    s.step.value = e.trace.symbols.index("weighted") + 1
    before = s.worked.value
    e.controls["row"].value, e.controls["col"].value = 0, 0
    assert s.worked.value != before and "A^k_{0,0}" in s.worked.value


def test_registered_terms_exist():
    assert ("grad_cam", "alpha") in WORKED
