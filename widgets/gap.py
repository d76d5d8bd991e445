"""GAPExplorer: global average pooling (Lin et al. 2014) and why it does not care where things are.

    A (K maps, h×w)  ->  F^k = 1/Z Σ_ij A^k_ij  ->  S = W F + b

Step through the three terms; compare the GAP head's parameter count with a flatten + fully connected
head on the same maps; shift the input and watch the GAP scores stay (almost) where they were, while
the flattened vector an FC head would read changes completely.
"""

from __future__ import annotations

import ipywidgets as W
import torch
from torch import nn

import xai_ref as xr

from . import render
from .cache import Memo
from .explorer import Explorer, captioned, row, section, toggles
from .stepper import Stepper

SHIFTS = ("roll", "pad")


def shift(x: torch.Tensor, dy: int, dx: int, mode: str) -> torch.Tensor:
    """``x`` (B,C,H,W) moved by (dy, dx) pixels: ``"roll"`` wraps around (torch.roll), ``"pad"`` fills the
    uncovered border with the image's top-left pixel (a background colour)."""
    if mode == "roll":
        return torch.roll(x, (dy, dx), dims=(2, 3))
    if mode != "pad":
        raise ValueError(f"mode must be one of {SHIFTS}, got {mode!r}")
    out = x[:, :, :1, :1].expand_as(x).clone()
    H, W_ = x.shape[2:]
    ys, yd = (slice(0, H - dy), slice(dy, H)) if dy >= 0 else (slice(-dy, H), slice(0, H + dy))
    xs, xd = (slice(0, W_ - dx), slice(dx, W_)) if dx >= 0 else (slice(-dx, W_), slice(0, W_ + dx))
    out[:, :, yd, xd] = x[:, :, ys, xs]
    return out


class GAPExplorer(Explorer):
    """Explore the GAP head of a network (default ``"nin_shapes"``).

    Usage: ``GAPExplorer()`` (``nin_shapes`` on a shapes image), ``GAPExplorer(model, image)`` for any model
    whose head is global average pooling then one ``nn.Linear`` (a name for `xai_ref.models.load` or an
    ``nn.Module``); ``image``: None (a shapes image; the cat-and-coffee photo for EfficientNet), a photo name from
    ``xai_ref.data.photos.NAMES``, a uint8 picture (H,W,3), or a tensor (C,H,W) / (B,C,H,W) (the first image).
    Panels: the GAP head against a flatten + FC head on the same maps; the input shifted by (dx, dy) with
    its class scores (GAP's scores hardly move); and the stepper through A -> F -> S of the shifted input,
    each step with its numbers written out.

    Parameters (as `xai_ref.gap`): ``model``, ``image``, ``layer`` (the maps A; default the last
    spatial layer), ``fc`` (the linear layer; default the last ``nn.Linear``), ``logits`` (where the class
    scores are in a structured output); and ``class_names``, ``pixel_range``, ``max_shift`` (pixels;
    default a quarter of the image).

    Controls: ``dx``, ``dy`` (the shift of the input), ``mode`` (``"roll"`` or ``"pad"``), and the
    stepper's ``step`` and ``channel``.

    Lesson: ``lessons/01_gap_nin.ipynb``.
    """

    title = "Global average pooling: A → F = mean of each map → S = W F + b"

    def __init__(self, model=None, image=None, layer=None, fc=None, class_names=None, pixel_range=None,
                 max_shift: int | None = None, logits=None):
        super().__init__(model, image, "nin_shapes", pixel_range, class_names, logits)
        self.layer, self.fc = layer, fc
        self.traces = Memo(self._trace, maxsize=32)
        base = self.traces(0, 0, "roll")
        H, W_ = self.x.shape[2:]
        m = max_shift if max_shift is not None else max(1, min(H, W_) // 4)
        self.controls["dx"] = W.IntSlider(value=0, min=-m, max=m, description="shift x")
        self.controls["dy"] = W.IntSlider(value=0, min=-m, max=m, description="shift y")
        self.controls["mode"] = toggles(SHIFTS, "roll", "border", "70px")
        self.stepper = Stepper(base, self.rgb, self.pixel_range, self.class_names)
        self.controls.update(self.stepper.controls)
        self.shifted, self.scores = self.picture(), self.picture()
        self.heads, self.compare = W.HTML(self._heads_html(base)), W.HTML()
        self.children = [
            W.HTML(f"<h3>{self.title}</h3>"),
            self.status,
            row(captioned("the GAP head vs a flatten + FC head on the same maps", self.heads)),
            section("Shift the input: GAP scores hardly move"),
            row(W.VBox([self.controls["dx"], self.controls["dy"], self.controls["mode"], self.compare]),
                captioned("shifted input", self.shifted), captioned("class scores S", self.scores)),
            section("The equation, step by step (for the shifted input)"),
            self.stepper,
        ]
        for name in ("dx", "dy", "mode"):
            self.on(name, self.compute, self.draw_shift)
        self.run(self.compute, self.draw_shift)

    def _trace(self, dy: int, dx: int, mode: str):
        return xr.gap(self.model, shift(self.x, dy, dx, mode), self.layer, self.fc, self.logits)

    def key(self) -> tuple:
        return self.controls["dy"].value, self.controls["dx"].value, self.controls["mode"].value

    def compute(self) -> None:
        self.trace = self.traces(*self.key())
        rgb = render.image_rgb(shift(self.x, *self.key())[0], self.pixel_range)
        self.stepper.show(self.trace, rgb)

    def draw_shift(self) -> None:
        base, t = self.traces(0, 0, "roll"), self.trace
        self.shifted.value = render.png(self.fit(self.stepper.rgb))
        S0, S = base.S[0], t.S[0]
        names = self.class_names or [str(i) for i in range(len(S0))]
        if len(S0) <= 12:
            self.scores.value = render.grouped_bar_chart({"no shift": S0, "shifted": S}, names,
                                                         title="S: no shift vs shifted")
        else:                                            # many classes: the top classes of the unshifted image
            top = torch.argsort(S0, descending=True)[:8]
            self.scores.value = render.grouped_bar_chart({"no shift": S0[top], "shifted": S[top]},
                                                         [names[i][:10] for i in top], title="S (top 8 classes)")
        rows = [["GAP values F (K numbers)", _corr(base.F[0], t.F[0]), float((t.F[0] - base.F[0]).abs().max())],
                ["flattened maps A (K·h·w numbers)", _corr(base.A[0], t.A[0]),
                 float((t.A[0] - base.A[0]).abs().max())],
                ["scores S", _corr(base.S[0], t.S[0]), float((t.S[0] - base.S[0]).abs().max())]]
        pred0, pred = int(S0.argmax()), int(S.argmax())
        self.compare.value = render.table_html(
            rows, header=["what the head reads", "correlation with no shift", "max |change|"],
            title=f"prediction: {names[pred0]} → {names[pred]}")

    def _heads_html(self, t) -> str:
        K, h, w = t.A.shape[1:]
        n_classes = t.S.shape[1]
        fc = self.fc if isinstance(self.fc, nn.Linear) else [m for m in self.model.modules()
                                                             if isinstance(m, nn.Linear)][-1]
        gap_params = sum(p.numel() for p in fc.parameters())
        flat_params = K * h * w * n_classes + n_classes
        rows = [["GAP → linear", f"{K} → {n_classes}", f"{gap_params:,}"],
                ["flatten → linear", f"{K}·{h}·{w} = {K * h * w:,} → {n_classes}", f"{flat_params:,}"]]
        return render.table_html(rows, header=["head", "inputs → outputs", "parameters"]) + (
            f"<div style='font-size:12px;max-width:560px'>The flatten head needs {flat_params / gap_params:.0f}× "
            f"more parameters, and gives every position of every map its own weight: the same object at another "
            f"place meets other weights. GAP averages each map first, so S = W F + b sees "
            f"<i>how much</i> of each feature there is, not <i>where</i>.</div>")


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    d = float(a.norm() * b.norm())
    return float((a * b).sum()) / d if d > 0 else 1.0
