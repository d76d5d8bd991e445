"""The stepper: one widget that walks through any `xai_ref.Trace`, term by term.

A Trace is a paper's equation split into its named terms. The stepper shows

* the whole equation, one line per term, with the current line highlighted, and
  "step k of n: description" above it;
* the current term's value, drawn the way that fits its shape (first image of the batch, b = 0):

  ======================  ====================================================================
  value shape             drawn as
  ======================  ====================================================================
  (B,K,h,w) feature maps  a grid of the maps (one colour scale), the chosen channel k enlarged
  (B,3,H,W) at the input  the signed signal as a picture (grey = 0), or the image itself
  (B,K) weights/scores    a bar chart (channel k in red)
  (B,h,w) a map           the map alone, and over the input picture
  (B,) or a number        a small table of numbers
  (T,B) a per-step curve  a curve (for the optimisation traces)
  (T,B,3,H,W) snapshots   a strip of pictures
  ======================  ====================================================================

Every explorer is built on this class. Changing the step (or the channel) only draws: the trace is
computed by whoever calls `show`, and each drawn step is kept until the next trace arrives.
"""

from __future__ import annotations

import html

import ipywidgets as W
import numpy as np

from xai_ref.equations import NAMES

from . import render
from .worked import at, work

KINDS = ("maps", "signed_rgb", "image", "heatmap", "bars", "numbers", "series", "images", "text")
GRID_MAX = 64  # feature maps shown at once in the grid (the page holding channel k)
DRAWN_MAX = 64  # drawn views kept per trace (step, channel, marker); the oldest are dropped beyond that

#: The display of each layout of axes (`xai_ref.equations.AXES`); a term's leading axis decides the rest.
_BY_AXES = {
    ("image", "row", "col"): "heatmap",
    ("image", "colour", "row", "col"): "signed_rgb",
    ("image", "channel", "row", "col"): "maps",
}


def kind_of(term) -> str:
    """How to draw a term (one of `KINDS`): from the names of its value's axes (``term.axes``) and its
    dtype, never from the method. Integers and booleans are listed as numbers; curves over steps are
    series, saved steps are images, one value per channel or class of each image are bars."""
    value, axes = term.value, tuple(term.axes)
    if not hasattr(value, "shape"):
        return "numbers" if isinstance(value, (int, float, bool)) else "text"
    shape = tuple(value.shape)
    floating = (value.dtype.is_floating_point if hasattr(value.dtype, "is_floating_point")
                else np.issubdtype(value.dtype, np.floating))
    if len(shape) <= 1 or not floating:
        return "numbers"
    if len(axes) != len(shape):       # a term built by hand, without axes
        return "text"
    if axes[0] == "step":
        return "series"
    if axes[0] == "snapshot":
        return "images"
    if axes == ("image", "channel", "row", "col") and shape[1] == 1:
        return "heatmap"
    return _BY_AXES.get(axes, "bars" if len(axes) == 2 else "text")


def important_channel(trace) -> int | None:
    """The channel that matters most for the first image: the largest weight (the strongest support of the
    class) of the first term with one value per channel (``alpha``, ``w``, ``F``); without one, the map with
    the largest mean of the first term of maps (never an empty map); None when there are no channels."""
    for term in trace.steps:
        if tuple(term.axes) == ("image", "channel") and hasattr(term.value, "shape"):
            return int(render.to_numpy(term.value[0]).argmax())
    for term in trace.steps:
        if tuple(term.axes) == ("image", "channel", "row", "col") and hasattr(term.value, "shape"):
            return int(np.abs(render.to_numpy(term.value[0])).mean((1, 2)).argmax())
    return None


class Stepper(W.VBox):
    """Step through a Trace: ◀ / ▶ buttons, a step slider, the equation and the current term's value.

    Parameters
    ----------
    trace: the Trace to show first (or None, then call `show`).
    rgb: the (H,W,3) uint8 picture of the input, for overlays.
    pixel_range: the input's pixel range, for terms that are images (``kinds={"image": "image"}``).
    class_names: labels for bar charts whose length is the number of classes.
    kinds: overrides of `kind_of`, symbol -> kind (e.g. ``{"I0": "image"}``).
    size: the side, in pixels, that pictures are scaled up to.

    ``controls``: ``step`` (1-based) and ``channel`` (the feature map k shown enlarged / in red; until the
    student moves it, the most important one for the shown class: `important_channel`).
    ``marker``: ``(row, col)`` a cell drawn on maps (the pixel picker of an explorer), or None.

    Lesson: ``lessons/00_tour.ipynb``.
    """

    def __init__(self, trace=None, rgb: np.ndarray | None = None, pixel_range=(0.0, 1.0), class_names=None,
                 kinds: dict | None = None, size: int = 224):
        self.rgb, self.pixel_range, self.class_names = rgb, pixel_range, class_names
        self.kinds, self.size = dict(kinds or {}), size
        self.trace, self.marker, self._default = None, None, None
        self._drawn: dict = {}      # (step, channel, marker) -> what was drawn, for the current trace
        self.step = W.IntSlider(value=1, min=1, max=1, description="step", continuous_update=True,
                                layout=W.Layout(width="360px"))
        self.channel = W.IntSlider(value=0, min=0, max=0, description="channel k", layout=W.Layout(width="360px"))
        self.prev = W.Button(description="◀", layout=W.Layout(width="40px"), tooltip="previous term")
        self.next = W.Button(description="▶", layout=W.Layout(width="40px"), tooltip="next term")
        self.header = W.HTML()
        self.equations = W.HTMLMath()
        self.worked = W.HTMLMath()         # the current term with this image's numbers (`widgets.worked`)
        self.picture = W.Image(format="png", layout=W.Layout(align_self="flex-start"))
        self.detail = W.Image(format="png", layout=W.Layout(align_self="flex-start"))
        self.numbers = W.HTMLMath()        # tables, and equations in $...$ (the dissection explorer's)
        self.controls = {"step": self.step, "channel": self.channel}
        self.prev.on_click(lambda _: self._move(-1))
        self.next.on_click(lambda _: self._move(+1))
        self._showing, self.instead_of = False, None   # instead_of: the term of the last trace it replaces
        self.step.observe(self._stepped, "value")
        self._channel_chosen = False          # until the student moves it, the channel follows the weights
        self._axis, self._slider_values = "channel", {}   # the axis the slider walks; its value on the others
        self.channel.observe(self._channel_moved, "value")
        views = W.HBox([self.picture, self.detail, self.numbers], layout=W.Layout(align_items="flex-start",
                                                                                  flex_flow="row wrap"))
        super().__init__([W.HBox([self.prev, self.step, self.next]), self.header, self.equations, self.worked,
                          self.channel, views])
        self.add_class("xr-stepper")
        self.show(trace)          # None: nothing shown yet (no empty pictures)

    # --- public -----------------------------------------------------------------------------------

    def show(self, trace, rgb: np.ndarray | None = None) -> None:
        """Show a (new) trace at the term shown before, found by its symbol (Grad-CAM -> Grad-CAM++ stays
        on ``L``); when the new trace has no such term, at the same step number (within range), and the
        header says which term it stands for (``None``: show nothing)."""
        before = self.term
        self.trace = trace
        if rgb is not None:
            self.rgb = rgb
        self._drawn.clear()
        if trace is None:
            self.header.value = self.equations.value = self.worked.value = self.numbers.value = ""
            self.picture.layout.display = self.detail.layout.display = self.channel.layout.display = "none"
            return
        self._default = default_position(trace)
        kept = before is None or before.symbol in trace.symbols
        step = trace.symbols.index(before.symbol) + 1 if before is not None and kept else self.step.value
        self._showing = True                  # one redraw below, not one per slider change
        self.step.max = len(trace.steps)
        self.step.value = min(step, self.step.max)
        k = important_channel(trace)
        if k is not None and not self._channel_chosen:
            self.channel.max = max(self.channel.max, k)
            self.channel.value = k
        self._showing = False
        self.instead_of = None if kept else before.symbol
        self.redraw()

    def forget_drawn(self) -> None:
        """Forget the drawn views (benchmarks use it to time drawing, not the cache)."""
        self._drawn.clear()

    def set_marker(self, marker) -> None:
        """Draw the cell ``(row, col)`` of the trace's first map grid on map views (None: the default
        position, `default_position`)."""
        if marker != self.marker:
            self.marker = marker
            self.redraw()

    @property
    def position(self) -> tuple[int, int] | None:
        """The cell every step works out and marks: the explorer's marker when it lies on the trace's grid
        (a new layer may have fewer cells than the picker still shows), else `default_position`."""
        grid = None if self.trace is None else _grid(self.trace)
        if self.marker is not None and grid is not None and all(0 <= m < g for m, g in zip(self.marker, grid)):
            return self.marker
        return self._default

    @property
    def term(self):
        """The term shown now (None when there is no trace)."""
        return None if self.trace is None else self.trace.steps[self.step.value - 1]

    def kind(self, term=None) -> str:
        term = term or self.term
        return self.kinds.get(term.symbol) or kind_of(term)

    # --- drawing ----------------------------------------------------------------------------------

    def _channel_moved(self, _) -> None:
        if not self._showing:
            self._channel_chosen = True
            self.redraw()

    def _stepped(self, _) -> None:
        if not self._showing:
            self.instead_of = None
            self.redraw()

    def _move(self, delta: int) -> None:
        self.step.value = min(max(self.step.value + delta, self.step.min), self.step.max)

    def redraw(self) -> None:
        """Draw the current term (from the cache of drawn steps when it was drawn before)."""
        if self.trace is None:
            return
        term, n = self.term, len(self.trace.steps)
        kind = self.kind(term)
        self._channel_range(term, kind)
        key = (self.step.value, self.channel.value if self.channel.layout.display != "none" else 0, self.position)
        if key not in self._drawn:
            if len(self._drawn) >= DRAWN_MAX:
                self._drawn.pop(next(iter(self._drawn)))
            self._drawn[key] = (*self._draw(term, kind), self._worked(term))
        picture, detail, numbers, worked_html = self._drawn[key]
        name = NAMES.get(self.trace.method, self.trace.method)
        self.header.value = (f"<b>{html.escape(name)}</b> &nbsp; step {self.step.value} of {n}: "
                             f"<code>{html.escape(term.symbol)}</code> &mdash; {html.escape(term.description)}"
                             + ("" if self.instead_of is None else f" <i>(this method has no <code>"
                                f"{html.escape(self.instead_of)}</code>; the nearest step)</i>"))
        self.equations.value = self._equations()
        self.worked.value = worked_html
        for widget, value in ((self.picture, picture), (self.detail, detail)):
            widget.layout.display = "" if value else "none"
            if value:
                widget.value = value
        self.numbers.value = numbers

    def _worked(self, term) -> str:
        """The term's equation with this image's numbers at the channel and position shown, and the
        trace's own value as the check (empty when the term has no worked form)."""
        w = work(self.trace, term.symbol, self.channel.value, self.position)
        if w is None:
            return ""
        check = (f"the trace's value: {render.fmt(w.value)} &#10003;" if w.agrees else
                 f"<span style='color:#c00'>the trace's value is {render.fmt(w.value)}</span>")
        classes = [self.channel.value] if term.axes[-1:] == ("class",) else _first_class(self.trace)
        where = ["image 0"] + [f"class c = {c}" + (f" ({html.escape(str(self.class_names[c]))})"
                                                   if self.class_names and c < len(self.class_names) else "")
                               for c in classes]                   # a class axis: the slider's class
        if self.position is not None and _has_grid(term):
            where.append(f"cell {self.position} (marked)")
        return ("<div style='font-size:13px;margin:4px 0;padding:2px 8px;border-left:3px solid #f0b400'>"
                f"<b>With this image's numbers</b> ({', '.join(where)}): $$ {w.latex} $$"
                f"<span style='font-size:11px;color:#555'>{check}</span></div>")

    def _equations(self) -> str:
        rows = []
        for i, t in enumerate(self.trace.steps, start=1):
            current = i == self.step.value
            style = "background:#fff3b0;font-weight:bold;font-size:15px;" if current else "color:#666;"
            rows.append(f"<div style='{style}padding:1px 6px'>{'&#9654;' if current else '&nbsp;&nbsp;'} "
                        f"{i}. <code>{html.escape(t.symbol)}</code>: ${t.latex}$</div>")
        return "<div style='font-size:13px;line-height:1.9'>" + "".join(rows) + "</div>"

    def _channel_range(self, term, kind: str) -> None:
        shape = tuple(term.value.shape) if hasattr(term.value, "shape") else ()
        has_channels = kind in ("maps", "bars") and len(shape) >= 2
        self.channel.layout.display = "" if has_channels else "none"
        if not has_channels:
            return
        axis = term.axes[1] if len(term.axes) > 1 else "channel"
        self._showing = True
        if axis != self._axis:          # the slider walks another axis now: each axis keeps its own value
            self._slider_values[self._axis] = self.channel.value
            self.channel.max = shape[1] - 1
            self.channel.value = min(self._slider_values.get(axis, self._start(axis, term)), shape[1] - 1)
            self._axis = axis
            self.channel.description = SLIDER_NAMES.get(axis, "channel k")
        elif self.channel.max != shape[1] - 1:
            self.channel.max = shape[1] - 1   # may clamp the value; this redraw goes on with it
        self._showing = False

    def _start(self, axis: str, term) -> int:
        """Where the slider starts on an axis it has not walked yet: the target (else the predicted) class on
        a class axis, the largest magnitude of the first image otherwise."""
        values = render.to_numpy(term.value[0])
        if axis == "class":                       # the target class, else the predicted one
            return (_first_class(self.trace) or [int(values.argmax())])[0]
        grid = _grid(self.trace)
        if axis == "position" and self.position is not None and grid is not None:
            return self.position[0] * grid[1] + self.position[1]      # the marked cell, as a flat position
        return int(np.abs(values).argmax())

    def _draw(self, term, kind: str) -> tuple[bytes | None, bytes | None, str]:
        """(picture PNG, detail PNG, numbers HTML) for the current term."""
        v, k = term.value, self.channel.value
        caption = _caption(term)
        if kind == "maps":
            maps = render.to_numpy(v[0])
            page = maps[(k // GRID_MAX) * GRID_MAX:][:GRID_MAX]
            scale = render.scale(page)                    # one colour scale for the grid and the enlarged map
            return (self._grid(page, k % GRID_MAX, scale), self._enlarged(maps[k], scale),
                    caption + _stats(maps[k], f"map {k}"))
        if kind == "heatmap":
            m = render.to_numpy(v[0]).reshape(v.shape[-2:])
            cmap, vmin, vmax = render.scale(m)
            alone = self._mark(render.fit(render.colourise(m, cmap, vmin, vmax), self.size), m.shape)
            over = None if self.rgb is None else self._mark(
                render.fit(render.overlay(self.rgb, m, cmap=cmap, vmin=vmin, vmax=vmax), self.size), m.shape)
            small = render.grid_html(m, "values") if m.size <= 100 else ""
            pictures = [render.png(render.with_bar(p, cmap, vmin, vmax)) if p is not None else None
                        for p in (alone, over)]
            return pictures[0], pictures[1], caption + small
        if kind == "bars":
            values = render.to_numpy(v[0])
            labels = self.class_names if self.class_names and term.axes[-1] == "class" else None
            xlabel = "" if labels else SLIDER_NAMES.get(term.axes[-1], "k").split()[-1]     # k, i, c
            chart = render.bar_chart(values, labels, highlight=k, title=term.symbol, top=12 if labels else 48,
                                     xlabel=xlabel)
            return chart, None, caption
        if kind == "signed_rgb":                 # 0 is grey; the colour bar gives the scale, -max|g| .. max|g|
            m = float(np.abs(render.to_numpy(v[0])).max()) or 1.0
            pic = self._mark(render.fit(render.signed_rgb(v[0]), self.size), v.shape[-2:])
            return render.png(render.with_bar(pic, "gray", -m, m)), None, caption
        if kind == "image":
            return render.png(render.fit(render.image_rgb(v[0], self.pixel_range), self.size)), None, caption
        if kind == "series":
            series = render.to_numpy(v)
            return render.curve_chart({term.symbol: series[:, 0] if series.ndim == 2 else series},
                                      title=term.symbol), None, caption
        if kind == "images":
            snaps = [render.image_rgb(s[0], self.pixel_range) for s in v]
            size = max(32, self.size * 2 // max(4, len(snaps)))
            return render.png(render.tile([render.fit(s, size) for s in snaps], cols=min(len(snaps), 8))), None, caption
        if kind == "numbers":
            return None, None, caption + _numbers(v)
        return None, None, caption + f"<pre>{html.escape(repr(v))[:2000]}</pre>"

    def _grid(self, page: np.ndarray, k: int, scale: tuple) -> bytes:
        """A page of up to GRID_MAX maps on one colour ``scale`` (`render.scale` of the page), map k of the
        page outlined, the colour bar beside it."""
        side = 40
        if max(page.shape[1:]) > side:       # large maps: sample them down to ~40 px for the grid
            page = np.stack([render.resize_nearest(m, side, side) for m in page])
        tiles = render.colourise(page, *scale)
        factor = max(1, side // max(page.shape[1:]))
        tiles = [render.upscale(t, factor) for t in tiles]
        cols = int(np.ceil(np.sqrt(len(tiles))))
        return render.png(render.with_bar(render.tile(tiles, cols=cols, highlight=k), *scale))

    def _enlarged(self, m: np.ndarray, scale: tuple) -> bytes:
        """One map on the grid's colour ``scale``, enlarged, with the colour bar."""
        pic = self._mark(render.fit(render.colourise(m, *scale), self.size), m.shape)
        return render.png(render.with_bar(pic, *scale))

    def _mark(self, pic: np.ndarray, shape) -> np.ndarray:
        """The position's cell drawn on a picture of any map of the trace (a map at another resolution
        than the grid covers the same image: the cell is drawn as the area it covers there)."""
        grid = _grid(self.trace)
        if self.position is None or grid is None:
            return pic
        (row, col), (rows, cols) = self.position, grid
        if not (0 <= row < rows and 0 <= col < cols):
            return pic
        return render.mark_cell(pic, row, col, rows, cols)


#: The stepper's slider, named after the axis it walks.
SLIDER_NAMES = {"channel": "channel k", "class": "class c", "position": "position i", "concept": "concept c"}


def _grid(trace) -> tuple[int, int] | None:
    """The (rows, cols) of the trace's first map: the grid the explorer's marker lives on."""
    for term in trace.steps:
        if _has_grid(term):
            return tuple(term.value.shape[-2:])
    return None


def _has_grid(term) -> bool:
    return tuple(term.axes[-2:]) == ("row", "col") and hasattr(term.value, "shape")


def default_position(trace) -> tuple[int, int] | None:
    """Where the trace's last map is strongest (summed over colour channels), as a cell of `_grid`: the
    one position every step works out and marks when the explorer has no picker."""
    grid, maps = _grid(trace), [t for t in trace.steps if _has_grid(t)]
    if grid is None:
        return None
    last = np.abs(render.to_numpy(maps[-1].value[0]))
    last = last.reshape(-1, *last.shape[-2:]).sum(0)
    i, j = np.unravel_index(int(np.argmax(last)), last.shape)
    return at((int(i), int(j)), last.shape, grid)


def _first_class(trace) -> list[int]:
    """The first image's target class, as a one-element list (empty when the target is not a class)."""
    target = trace.meta.get("target")
    return [] if target is None or len(target) == 0 else [int(target[0])]


def _caption(term) -> str:
    shape = getattr(term.value, "shape", None)
    where = (f"shape {tuple(shape)}" if shape is not None and len(shape) else
             "a number" if shape is not None else type(term.value).__name__)
    return f"<div style='font-size:12px;color:#444'><code>{html.escape(term.symbol)}</code>: {where}</div>"


def _stats(m: np.ndarray, name: str) -> str:
    return render.table_html([[name, m.min(), m.mean(), m.max()]], header=["", "min", "mean", "max"])


def _numbers(v) -> str:
    a = render.to_numpy(v)
    if a.ndim == 0:
        return render.table_html([["value", a.item()]])
    if a.ndim == 1:
        return render.table_html([[f"image {b}", x] for b, x in enumerate(a[:16])], header=["", "value"])
    rows = a.reshape(a.shape[0], -1)[:16]
    return render.table_html([[i, *r[:8]] for i, r in enumerate(rows)])
