"""What every explorer shares: the model and the image it explains, the class names, the ``controls``
dict, a status line, and small helpers to build controls and captioned pictures.

An explorer is an ``ipywidgets.VBox``: display it, or drive it from Python through ``controls``
(setting ``controls["target"].value = 3`` runs the same code as picking class 3 in the browser).

How an explorer reacts to a control (the rule every explorer follows):

* a control that changes what must be computed (class, layer, method) goes through a `Memo` keyed by
  those control values, then the stepper and the panels are redrawn;
* any other control (step, channel, threshold, pixel position) only redraws the parts that show it.
"""

from __future__ import annotations

import html
import re
import traceback
import warnings
from contextlib import contextmanager
from typing import Callable

import ipywidgets as W
import numpy as np
import torch

from xai_ref import metrics
from xai_ref.hooks import LayerReuseWarning, ReLURuleWarning

from . import inputs, render

#: The warnings an explorer shows on its status line: what ``xai_ref`` says about this model.
NOTED = (ReLURuleWarning, LayerReuseWarning)


class Explorer(W.VBox):
    """Base class: resolves ``model`` / ``image`` / ``class_names``; subclasses build the widgets.

    Attributes: ``model``, ``x`` (1,C,H,W), ``rgb`` (H,W,3) uint8, ``pixel_range``, ``logits`` (where the
    class scores are in a structured output, passed to every ``xai_ref`` call), ``output`` (the model's
    class scores for ``x``, (classes,)), ``class_names``, ``controls`` (name -> ipywidget), ``status``
    (an HTML line showing errors raised by a control, e.g. a layer a method cannot use, and ``notes``:
    what ``xai_ref`` warned about this model, e.g. activations that have no ReLU rule).
    """

    title = ""
    size = 192      # small pictures of the input are scaled up to this longer side (px) ...
    largest = 256   # ... and large ones down to this, whatever the input's resolution
    needs_classes = True  # False: an explorer that works without class scores (structured outputs need no logits)

    def __init__(self, model=None, image=None, default_model: str = "nin_shapes", pixel_range=None,
                 class_names=None, logits=None):
        self.model = inputs.resolve_model(model, default_model)
        inp = inputs.resolve_image(image, self.model, pixel_range)
        self.x, self.rgb, self.pixel_range = inp.x, inp.rgb, inp.pixel_range
        self.logits = logits
        output = inputs.scores(self.model, self.x, logits, required=self.needs_classes)
        self.output = None if output is None else output[0]
        self.class_names = inputs.class_names(self.model, self.output.shape[-1], class_names) \
            if self.output is not None and self.output.dim() == 1 else None
        self.controls: dict[str, W.ValueWidget] = {}
        self.status = W.HTML()
        self.notes: dict[str, None] = {}      # the warnings' messages, in the order they came (a set)
        self.last_error: str | None = None    # the traceback of the last refused update, for debugging
        super().__init__()
        self.add_class("xr-explorer")

    # --- building -------------------------------------------------------------------------------

    def class_dropdown(self, value=None, description: str = "class c") -> W.Dropdown:
        """A class chooser: every class with its score (sorted by score when there are many)."""
        options = inputs.class_options(self.class_names, self.output)
        value = int(self.output.argmax()) if value is None else int(value)
        return W.Dropdown(options=options, value=value, description=description,
                          layout=W.Layout(width="320px"))

    def layer_dropdown(self, layers: dict, value: str, description: str = "layer") -> W.Dropdown:
        """A layer chooser: ``name  (K×h×w)`` for each layer (a reused module's calls as ``name#k``),
        ``value`` preselected."""
        options = [(inputs.call_label(n, s), n) for n, s in layers.items()]
        return W.Dropdown(options=options, value=value, description=description, layout=W.Layout(width="380px"),
                          style={"description_width": "initial"})

    def picture(self) -> W.Image:
        """An empty picture (PNG bytes are written into its ``value``), shown at its natural size."""
        return picture()

    def on(self, name: str, *handlers: Callable[[], None]) -> None:
        """When control ``name`` changes, run ``handlers`` in order (errors go to the status line)."""
        def react(_change):
            self.run(*handlers)
        self.controls[name].observe(react, "value")

    def run(self, *handlers: Callable[[], None]) -> bool:
        """Run ``handlers``; a ValueError/TypeError (bad layer, unsupported model) is shown, not raised, and
        so are ``xai_ref``'s warnings about the model (see `noting`)."""
        error = None
        with self.noting():
            try:
                for h in handlers:
                    h()
            except (ValueError, TypeError) as e:
                error = e
                self.last_error = traceback.format_exc()
        self.show_status(error)
        return error is None

    @contextmanager
    def noting(self):
        """Inside this block, ``xai_ref``'s warnings about the model (`NOTED`: activations without a ReLU
        rule, a reused layer) become ``notes`` shown on the status line instead of being raised or lost;
        any other warning goes on as usual."""
        with warnings.catch_warnings(record=True) as caught:
            for category in NOTED:
                warnings.simplefilter("always", category)
            try:
                yield
            finally:
                for w in caught:
                    if issubclass(w.category, NOTED):
                        self.notes[str(w.message)] = None
        for w in caught:
            if not issubclass(w.category, NOTED):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    def show_status(self, error: Exception | None = None) -> None:
        """The status line: the error of the last control change (red), then the notes (amber)."""
        lines = [] if error is None else [f"<span style='color:#b00'>&#9888; {html.escape(type(error).__name__)}: "
                                          f"{html.escape(str(error))}</span>"]
        lines += [f"<span style='color:#8a5a00'>&#9432; {html.escape(n)}</span>" for n in self.notes]
        self.status.value = "<br>".join(lines)

    def position(self, h: int, w: int) -> tuple[int, int]:
        """The pixel picker's (row, col), clamped to an h×w map (the sliders follow a layer change one at a
        time, so in between they may point past a smaller map)."""
        return min(self.controls["row"].value, h - 1), min(self.controls["col"].value, w - 1)

    def class_name(self, c) -> str:
        return self.class_names[int(c)] if self.class_names else str(int(c))

    def fit(self, rgb: np.ndarray) -> np.ndarray:
        """A picture of the input at display size, between ``size`` and ``largest`` pixels on its longer
        side whatever the input's resolution (`render.fit`)."""
        return render.fit(rgb, self.size, self.largest)


class Panel(W.VBox):
    """A captioned picture that can be switched off for a model it cannot be computed for (the Guided
    Grad-CAM panel of a GELU network): then one line says why, instead of the picture."""

    def __init__(self, caption: str):
        self.picture, self.reason = picture(), W.HTML()
        super().__init__([W.HTML(f"<div style='font-size:12px;font-weight:bold'>{caption}</div>"), self.picture,
                          self.reason])

    @property
    def disabled(self) -> bool:
        return bool(self.reason.value)

    def disable(self, reason: str) -> None:
        """Show ``reason`` (its first clause; the whole message as a tooltip) instead of the picture."""
        self.picture.layout.display = "none"
        self.reason.value = (f"<div style='font-size:12px;color:#777;max-width:256px' title='{html.escape(reason)}'>"
                             f"&#8856; not available for this model: {html.escape(first_clause(reason))}</div>")


def first_clause(message: str) -> str:
    """The first clause of an error message (up to its first ';' or '. '), for a one-line reason."""
    return re.split(r";|\. ", message, maxsplit=1)[0].rstrip(".")


def picture() -> W.Image:
    """An ``ipywidgets.Image`` for PNG bytes that keeps its natural size inside boxes."""
    return W.Image(format="png", layout=W.Layout(align_self="flex-start"))


def toggles(options, value, description: str, width: str = "100px", **kw) -> W.ToggleButtons:
    """ToggleButtons wide enough for their labels."""
    return W.ToggleButtons(options=options, value=value, description=description,
                           style={"button_width": width, "description_width": "initial"}, **kw)


def captioned(caption: str, *widgets: W.Widget, width: str | None = None) -> W.VBox:
    """A caption (HTML) above ``widgets``."""
    box = W.VBox([W.HTML(f"<div style='font-size:12px;font-weight:bold'>{caption}</div>"), *widgets])
    if width:
        box.layout.width = width
    return box


def section(title: str) -> W.HTML:
    return W.HTML(f"<h4 style='margin:6px 0 2px 0'>{html.escape(title)}</h4>")


def row(*widgets: W.Widget) -> W.HBox:
    return W.HBox(list(widgets), layout=W.Layout(flex_flow="row wrap", align_items="flex-start",
                                                 grid_gap="12px"))


# --- localization: shared by the CAM and metrics explorers ---------------------------------------------


def truth_box(image, box, model) -> torch.Tensor | None:
    """The ground-truth box (x0, y0, x1, y1): the one given, or the default shapes image's, else None."""
    if box is not None:
        return torch.as_tensor(box).long().reshape(4)
    if image is None and not inputs.is_imagenet(model):
        from xai_ref.data import shapes
        return torch.as_tensor(shapes.generate(1, seed=0).boxes).long().reshape(-1, 4)[0]
    return None


def localization(rgb: np.ndarray, m: torch.Tensor, fraction: float,
                 truth: torch.Tensor | None) -> tuple[np.ndarray, str]:
    """The map over the picture, pixels below ``fraction`` of the range dimmed, the box of the largest
    region above it in red (`xai_ref.metrics.threshold_boxes`), the ground truth in green with the IoU.
    ``m``: (1,H,W) at the picture's resolution. Returns (the picture (H,W,3), HTML text)."""
    box = metrics.threshold_boxes(m, fraction)[0]
    m0 = m[0].numpy()
    keep = render.normalise(m0, m0.min(), m0.max()) >= fraction     # the thresholded region (min-max, as xai_ref)
    pic = render.overlay(rgb, m0)
    pic = np.where(keep[..., None], pic, (pic * 0.45).astype(np.uint8))
    text = f"box (x0, y0, x1, y1) = {tuple(box.tolist())}"
    if truth is not None:
        pic = render.draw_rect(pic, truth.tolist(), (40, 200, 60))
        iou = float(metrics.box_iou(box[None], truth[None])[0])
        text += f"<br>ground truth (green) = {tuple(truth.tolist())}<br><b>IoU = {iou:.3f}</b>"
    pic = render.draw_rect(pic, box.tolist(), render.RED)
    text = f"<div style='font-size:12px'>{text}<br>(dimmed: below the threshold)</div>"
    return pic, text
