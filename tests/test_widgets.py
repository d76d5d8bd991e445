"""The explorers, driven without a browser: setting ``control.value`` runs the same observers a browser
event runs (see TESTING.md, section 2).

* Hypothesis drives every control of every explorer with random sequences of values (>= 200 changes
  per explorer): no exception, no error on the status line, a step / threshold / pixel change computes
  nothing, the shown picture changes when the shown term changes, no matplotlib figure is left open and
  memory stays bounded.
* Targeted tests: the stepper on every kind of term, EfficientNet-Lite0 with a photo, a user's own model,
  reproducible gradient ascent, the metrics explorer's image at step k.
"""

from __future__ import annotations

import gc
import resource
import warnings

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import xai_ref as xr
from xai_ref.data import shapes
from xai_ref import models
from xai_ref.models import shapes_nets, weights_path
from widgets import (AscentExplorer, AttentionExplorer, BackpropExplorer, CAMExplorer, GAPExplorer,
                     GradCAMExplorer, MetricsExplorer, Stepper, render)
from widgets.cache import Memo

ACTIONS_PER_EXAMPLE, EXAMPLES = 14, 16          # 224 control changes per explorer
REDRAW_ONLY = {"step", "channel", "threshold", "row", "col", "top_k", "k", "relu_channel", "patch_row",
               "patch_col", "steps"}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One torch thread: these nets are tiny, and on a busy 2-core machine two threads waiting on each
    other make every convolution ~20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def shapes_net(name: str) -> nn.Module:
    """The trained shapes net when its weights are shipped, else the untrained one (seed 0)."""
    if weights_path(name).is_file():
        return models.load(name)
    torch.manual_seed(0)
    return shapes_nets.BUILDERS[name]().eval()


@pytest.fixture(scope="module")
def nin():
    return shapes_net("nin_shapes")


@pytest.fixture(scope="module")
def vgg():
    return shapes_net("vgg_shapes")


@pytest.fixture(scope="module")
def image():
    batch = shapes.generate(1, seed=0)
    return torch.from_numpy(batch.images), torch.as_tensor(batch.boxes).reshape(-1, 4)[0]


def build(name: str, nin, vgg, image):
    x, box = image
    return {
        "gap": lambda: GAPExplorer(nin, x),
        "cam": lambda: CAMExplorer(nin, x, box=box),
        "gradcam": lambda: GradCAMExplorer(vgg, x),
        "backprop": lambda: BackpropExplorer(vgg, x),
        "ascent": lambda: AscentExplorer(nin, steps=6, chunk=3, max_steps=9),
        "attention": lambda: AttentionExplorer(nin, vgg, x),
        "metrics": lambda: MetricsExplorer(nin, x, box=box, step=256),
    }[name]()


EXPLORERS = ["gap", "cam", "gradcam", "backprop", "ascent", "attention", "metrics"]


# --- driving controls ---------------------------------------------------------------------------


def pick(w: W.ValueWidget, u: float):
    """The value at position ``u`` in [0, 1) of a control's current range or options.

    The draw (u) does not depend on the explorer's state, so Hypothesis can replay a sequence; the value
    it maps to is always valid for the control as it is now (a slider's range can change with the layer).
    """
    if isinstance(w, (W.Dropdown, W.ToggleButtons)):
        options = [o[1] if isinstance(o, tuple) else o for o in w.options]
        return options[int(u * len(options))]
    if isinstance(w, W.IntSlider):
        n = (w.max - w.min) // w.step + 1
        return w.min + w.step * int(u * n)
    if isinstance(w, W.FloatLogSlider):
        return float(w.base ** (w.min + u * (w.max - w.min)))
    if isinstance(w, W.FloatSlider):
        n = int(round((w.max - w.min) / w.step)) + 1
        return round(w.min + w.step * int(u * n), 10)
    if isinstance(w, (W.Checkbox, W.ToggleButton)):
        return u < 0.5
    raise TypeError(f"no values for {type(w).__name__}")


def memo_misses(explorer) -> int:
    """How many results all of the explorer's caches have computed so far."""
    return sum(m.misses for m in vars(explorer).values() if isinstance(m, Memo))


def shown(stepper: Stepper) -> tuple:
    """What the stepper displays now (pictures and numbers)."""
    return stepper.picture.value, stepper.detail.value, stepper.numbers.value, stepper.picture.layout.display


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


@pytest.mark.parametrize("name", EXPLORERS)
def test_random_control_sequences(name, nin, vgg, image):
    explorer = build(name, nin, vgg, image)
    assert explorer.status.value == "", explorer.status.value
    controls = sorted(explorer.controls)
    initial = {name: w.value for name, w in explorer.controls.items()}   # in the order they were built
    counter = {"changes": 0}
    gc.collect()
    rss_before = rss_mb()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.data())
    def drive(data):
        for cname, value in initial.items():          # every example starts from the same state
            explorer.controls[cname].value = value
        for _ in range(ACTIONS_PER_EXAMPLE):
            cname = data.draw(st.sampled_from(controls), label="control")
            w = explorer.controls[cname]
            value = pick(w, data.draw(st.floats(0, 1, exclude_max=True), label=cname))
            term_before, display_before = explorer.stepper.term, shown(explorer.stepper)
            misses = memo_misses(explorer)
            w.value = value
            counter["changes"] += 1
            assert explorer.status.value == "", f"{cname}={value!r}: {explorer.status.value}"
            if cname in REDRAW_ONLY:
                assert memo_misses(explorer) == misses, f"changing {cname} recomputed something"
            if cname == "step" and explorer.stepper.term is not term_before:
                assert shown(explorer.stepper) != display_before, "a new term was shown but nothing changed"

    drive()
    assert counter["changes"] >= 200
    assert plt.get_fignums() == []
    gc.collect()
    growth = rss_mb() - rss_before
    assert growth < 200, f"memory grew by {growth:.0f} MB over {counter['changes']} changes"


# --- the stepper ----------------------------------------------------------------------------------


def test_stepper_shows_every_term_differently(nin, vgg, image):
    x, _ = image
    traces = [xr.gap(nin, x), xr.cam(nin, x), xr.grad_cam_pp(vgg, x), xr.guided_grad_cam(vgg, x),
              xr.deconvnet(vgg, x), xr.occlusion(nin, x, window=16, stride=16),
              xr.class_model(nin, 1, steps=4, snapshot_every=2)]
    rgb = render.image_rgb(x[0])
    seen_kinds = set()
    for t in traces:
        s = Stepper(t, rgb, class_names=list(shapes.CLASSES), kinds={"I0": "image", "image": "image"})
        before = None
        for k in range(1, len(t.steps) + 1):
            s.step.value = k
            assert s.term is t.steps[k - 1]
            assert f"step {k} of {len(t.steps)}" in s.header.value
            assert "background:#fff3b0" in s.equations.value          # the current line is highlighted
            now = shown(s)
            assert now != before, f"{t.method}: step {k} looks like step {k - 1}"
            if s.kind() not in ("numbers", "text"):
                assert bytes(now[0]).startswith(b"\x89PNG"), f"{t.method}: step {k} drew no picture"
            before = now
            seen_kinds.add(s.kind())
        s.prev.click()
        assert s.step.value == len(t.steps) - 1
    assert {"maps", "bars", "heatmap", "signed_rgb", "numbers", "series", "images", "image"} <= seen_kinds


def test_stepper_buttons_and_channel(nin, image):
    t = xr.cam(nin, image[0])
    s = Stepper(t, render.image_rgb(image[0][0]))
    s.next.click()
    s.next.click()
    assert s.step.value == 3
    s.step.value = 1
    picture = s.picture.value
    s.channel.value = 5
    assert s.picture.value != picture                      # the grid outlines channel k
    s.prev.click()
    assert s.step.value == 1                                # clamped at the first term


# --- real models, user models ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def efficientnet():
    return models.load("efficientnet_lite0")


def test_efficientnet_cam_and_gradcam_with_a_photo(efficientnet):
    cam = CAMExplorer(efficientnet, "cat_coffee")
    assert cam.status.value == ""
    assert "cat" in cam.controls["target"].label                           # the prediction is preselected
    before = cam.weights.value
    cam.controls["target"].value = 967                                       # espresso
    assert cam.status.value == "" and cam.weights.value != before
    cam.controls["threshold"].value = 0.5
    g = GradCAMExplorer(efficientnet, "cat_coffee", target=281)
    maps = g.maps.value
    g.controls["layer"].value = "blocks.10"
    assert g.status.value == "" and g.maps.value != maps
    assert g.controls["row"].max == 13                                       # 14x14 at blocks.10
    g.controls["method"].value = "Grad-CAM++"
    g.controls["step"].value = 3
    assert g.status.value == "" and g.stepper.term.symbol == "a"


def test_a_users_own_model_and_image():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)).eval()
    x = torch.rand(1, 3, 24, 24)
    names = ["cat", "dog", "fox"]
    for explorer in (CAMExplorer(model, x, target=2, layer="4", class_names=names),
                     GradCAMExplorer(model, x, target=1, layer="1", class_names=names),
                     BackpropExplorer(model, x, class_names=names), GAPExplorer(model, x, class_names=names)):
        assert explorer.status.value == ""
        for k in range(1, explorer.stepper.step.max + 1):
            explorer.controls["step"].value = k
    assert GradCAMExplorer(model, x, target=1, layer="1").controls["row"].max == 23


def test_errors_go_to_the_status_line(vgg, image):
    g = GradCAMExplorer(vgg, image[0])
    assert g.run(lambda: xr.cam(vgg, image[0])) is False                    # vgg has no GAP head
    assert "GAP" in g.status.value and "grad_cam" in g.status.value
    with pytest.raises(ValueError, match="GAP"):
        CAMExplorer(vgg, image[0])


# --- explorer-specific behaviour ------------------------------------------------------------------


def test_cam_pixel_table_adds_up(nin, image):
    e = CAMExplorer(nin, image[0], box=image[1])
    e.controls["row"].value, e.controls["col"].value = 3, 11
    t = e.trace
    assert f"{float(t.M[0, 3, 11]):.4g}" in e.pixel_table.value
    assert "IoU" in e.box_text.value


def test_gap_shift_keeps_scores_with_roll(nin, image):
    e = GAPExplorer(nin, image[0])
    e.controls["dx"].value = 8
    e.controls["dy"].value = -4
    assert e.trace.A.shape == e.traces(0, 0, "roll").A.shape
    assert "prediction" in e.compare.value
    e.controls["mode"].value = "pad"
    assert e.status.value == ""


def test_ascent_is_reproducible_and_matches_one_call(nin):
    images = []
    for _ in range(2):
        e = AscentExplorer(nin, target=2, steps=6, chunk=3, seed=3, jitter=2, init="random")
        e.controls["run"].value = True                        # no event loop: runs to the end
        assert e.done == 6 and e.controls["run"].value is False
        images.append(e.image.value)
    assert images[0] == images[1]
    assert e.trace.S.shape == (6, 1) and e.trace.meta["snapshot_steps"] == [3, 6]
    e = AscentExplorer(nin, target=2, steps=6, chunk=3, seed=3, init="random")   # no jitter: chunks == one call
    e.controls["run"].value = True
    one = xr.class_model(nin, 2, steps=6, seed=3, init="random")
    assert torch.allclose(e.trace.image, one.image, atol=1e-6) and torch.allclose(e.trace.S, one.S, atol=1e-5)
    e.controls["seed"].value = 4                              # a setting change starts over
    assert e.done == 0 and e.trace is None


def test_metrics_image_at_step_k_is_what_the_curve_scored(nin, image):
    e = MetricsExplorer(nin, image[0], step=256)
    for kind in ("deletion", "insertion"):
        e.controls["kind"].value = kind
        cv = e.curves(*e.key(), kind)
        for k in (0, 5, len(cv.fraction) - 1):
            with torch.no_grad():
                p = nin(e.image_at(k)).softmax(1)[0, int(cv.classes[0])]
            assert float(p) == pytest.approx(float(cv.scores[0, k]), abs=1e-5)


def test_backprop_zoom_matches_the_rules(vgg, image):
    e = BackpropExplorer(vgg, image[0], relu="block2_relu2")
    e.controls["relu_channel"].value = 3
    e.controls["patch_row"].value, e.controls["patch_col"].value = 5, 7
    html = e.zoom_numbers.value
    assert html.count("<table") == 5 and "deconvnet" in html
    e.controls["mode"].value = "neuron"
    e.controls["layer"].value = "block3_relu2"
    e.controls["unit"].value = 4
    assert e.status.value == "" and "neuron" in e.target_text.value


def test_no_warnings_and_no_figures(nin, image):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CAMExplorer(nin, image[0])
    assert plt.get_fignums() == []
    assert render.curve_chart({"a": np.arange(5.0)}).startswith(b"\x89PNG")
    assert render.bar_chart(np.arange(2000.0) - 1000, top=20).startswith(b"\x89PNG")


def test_the_term_shown_survives_a_method_switch():
    e = GradCAMExplorer()
    step = e.controls["step"]
    step.value = e.trace.symbols.index("L") + 1
    e.controls["method"].value = "Grad-CAM++"                  # one more term (a) before alpha: L moves
    assert e.stepper.term.symbol == "L" and "the nearest step" not in e.stepper.header.value
    step.value = e.trace.symbols.index("a") + 1
    e.controls["method"].value = "XGrad-CAM"                   # no term a: the same step number, said
    assert step.value == 3 and e.stepper.term.symbol == "alpha"
    assert "this method has no <code>a</code>; the nearest step" in e.stepper.header.value
    step.value = 4                                             # moving on clears the note
    assert "nearest step" not in e.stepper.header.value


def test_the_default_channel_is_the_most_important_one_until_the_student_picks_one():
    cam, gc = CAMExplorer(), GradCAMExplorer()
    assert cam.controls["channel"].value == int(cam.trace.w[0].argmax())      # the strongest support of the class
    assert gc.controls["channel"].value == int(gc.trace.alpha[0].argmax())
    attention = AttentionExplorer()                                             # no weights: the liveliest map
    A_S = attention.trace.A_S[0].abs().mean((1, 2))
    assert attention.controls["channel"].value == int(A_S.argmax()) and A_S.max() > 0
    gc.controls["channel"].value = 0
    gc.controls["target"].value = (gc.controls["target"].value + 1) % 6     # another class: the choice stays
    assert gc.controls["channel"].value == 0
