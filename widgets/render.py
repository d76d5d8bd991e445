"""Arrays -> PNG bytes, fast: every picture the widgets show is made here.

Two ways to draw, one for each kind of picture:

* **Pixels** (images, heatmaps, feature maps): normalise to [0, 1], look the values up in a colour
  table taken from a matplotlib colormap (NumPy indexing, no figure), upscale small maps by
  repeating pixels (nearest neighbour, so a 7x7 map shows 49 honest squares), encode with PIL.
  A few milliseconds per picture.
* **Charts with axes** (bar charts, curves): a small `Chart` drawn with PIL (matplotlib's ticks and
  font, a few ms per chart; see the note at `Chart`).

Normalisation for display is decided here and only here: ``xai_ref`` returns raw values.

Shapes: an RGB picture is ``(H, W, 3)`` uint8; a map is ``(h, w)`` float.
"""

from __future__ import annotations

import io
from functools import lru_cache

import matplotlib
import numpy as np
from matplotlib import font_manager
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw, ImageFont

#: Colormaps used throughout: signed values (diverging, blue < 0 < red, centred on 0) and values of one
#: sign (sequential); heatmaps over an image use the sequential one too. `scale` picks between them.
SIGNED, MAPS = "RdBu_r", "viridis"
#: Colours for highlights drawn into pictures (RGB).
RED, WHITE, BLACK, YELLOW = (230, 25, 45), (255, 255, 255), (0, 0, 0), (255, 225, 25)


# --- arrays ---------------------------------------------------------------------------------------


def to_numpy(a) -> np.ndarray:
    """A torch tensor, NumPy array or number as a float NumPy array (on the CPU, detached)."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64 if np.asarray(a).dtype == np.float64 else np.float32)


def value_range(a: np.ndarray, signed: bool | None = None) -> tuple[float, float]:
    """The (vmin, vmax) used to show ``a``: symmetric around 0 when ``a`` has both signs (or signed=True)."""
    lo, hi = float(np.min(a)), float(np.max(a))
    if signed is None:
        signed = lo < 0 < hi
    if signed:
        m = max(abs(lo), abs(hi))
        return -m, m
    return lo, hi


def scale(a) -> tuple[str, float, float]:
    """``(cmap, vmin, vmax)`` for showing ``a``: values of both signs on `SIGNED`, centred on 0; otherwise on
    `MAPS` from min to max, a constant map from 0 to its value (all zero: 0 to 1, so "nothing" is the
    bottom colour, in a grid and enlarged alike)."""
    a = to_numpy(a)
    lo, hi = (float(np.min(a)), float(np.max(a))) if a.size else (0.0, 0.0)
    if lo < 0 < hi:
        return (SIGNED, *value_range(a, True))
    if lo == hi:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        hi = hi if hi > lo else lo + 1.0
    return MAPS, lo, hi


def colour_bar(cmap: str, vmin: float, vmax: float, height: int, marker: float | None = None,
               label: str = "") -> np.ndarray:
    """A vertical colour bar (vmin at the bottom) with its ends (and 0, when inside) labelled, and a
    ``marker`` value drawn as a red line with its ``label``: (height, 72, 3) uint8."""
    height = max(height, 40)
    ramp = colour_table(cmap)[np.linspace(255, 0, height).round().astype(int)]
    img = Image.new("RGB", (72, height), WHITE)
    img.paste(Image.fromarray(np.repeat(ramp[:, None], 10, axis=1)), (0, 0))
    draw, f = ImageDraw.Draw(img), font(9)
    y_of = lambda v: round((1 - normalise(np.array(v), vmin, vmax).item()) * (height - 1))  # noqa: E731
    draw.text((13, 0), fmt(vmax), fill=BLACK, font=f)
    draw.text((13, height - 11), fmt(vmin), fill=BLACK, font=f)
    if vmin < 0 < vmax:
        draw.text((13, min(max(y_of(0) - 5, 11), height - 22)), "0", fill=BLACK, font=f)
    if marker is not None:
        y = y_of(marker)
        draw.line([(0, y), (12, y)], fill=RED, width=2)
        draw.text((13, min(max(y - 5, 11), height - 22)), f"{label}{fmt(marker)}", fill=RED, font=f)
    return np.asarray(img)


def with_bar(pic: np.ndarray, cmap: str, vmin: float, vmax: float, **marker) -> np.ndarray:
    """A picture with its colour bar on the right (4 px apart)."""
    bar = colour_bar(cmap, vmin, vmax, pic.shape[0], **marker)
    out = np.full((max(pic.shape[0], bar.shape[0]), pic.shape[1] + 4 + bar.shape[1], 3), 255, dtype=np.uint8)
    out[:pic.shape[0], :pic.shape[1]] = pic
    out[:bar.shape[0], pic.shape[1] + 4:] = bar
    return out


def shown(a, size: int, rgb: np.ndarray | None = None) -> np.ndarray:
    """A map (h, w) scaled up to ``size`` (over the picture ``rgb`` when given) with its colour bar: one
    colour rule everywhere (`scale`)."""
    cmap, vmin, vmax = scale(a)
    pic = fit(colourise(a, cmap, vmin, vmax), size) if rgb is None else fit(overlay(rgb, a, cmap=cmap, vmin=vmin,
                                                                                     vmax=vmax), size)
    return with_bar(pic, cmap, vmin, vmax)


def normalise(a: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """``(a - vmin) / (vmax - vmin)`` clipped to [0, 1]; all 0.5 when the range is empty."""
    if vmax <= vmin:
        return np.full(a.shape, 0.5, dtype=np.float32)
    return np.clip((a - vmin) / (vmax - vmin), 0.0, 1.0).astype(np.float32)


@lru_cache(maxsize=None)
def colour_table(cmap: str) -> np.ndarray:
    """The colormap ``cmap`` sampled at 256 points: a (256, 3) uint8 lookup table."""
    return (matplotlib.colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def colourise(a, cmap: str = MAPS, vmin: float | None = None, vmax: float | None = None,
              signed: bool | None = None) -> np.ndarray:
    """A map (h, w) -> (h, w, 3) uint8 through a colour table (range from `value_range` unless given)."""
    a = to_numpy(a)
    if vmin is None or vmax is None:
        vmin, vmax = value_range(a, signed)
    idx = (normalise(a, vmin, vmax) * 255).round().astype(np.uint8)
    return colour_table(cmap)[idx]


def image_rgb(x, pixel_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """One network input (C, H, W) with pixels in ``pixel_range`` -> (H, W, 3) uint8 (grey for C = 1)."""
    x = to_numpy(x)
    lo, hi = pixel_range
    rgb = (normalise(x, lo, hi) * 255).round().astype(np.uint8).transpose(1, 2, 0)
    return np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb[..., :3]


def magnitude(m, cmap: str = "gray", percentile: float = 99.5) -> np.ndarray:
    """A non-negative map (h, w) of gradient magnitudes as a picture: 0 is black, the ``percentile``-th
    value and above white (a few extreme pixels would otherwise leave everything else black)."""
    m = to_numpy(m)
    top = float(np.percentile(m, percentile)) if m.size else 0.0
    return colourise(m, cmap, 0.0, top if top > 0 else max(float(m.max()), 1e-12))


def signed_rgb(g) -> np.ndarray:
    """A signed (3, H, W) signal (a gradient at the pixels) as a picture: 0 is grey, scaled by max |g|."""
    g = to_numpy(g)
    m = float(np.abs(g).max())
    rgb = 0.5 + 0.5 * g / m if m > 0 else np.full(g.shape, 0.5)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)


# --- geometry -------------------------------------------------------------------------------------


def upscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor: each pixel becomes a factor x factor square."""
    if factor <= 1:
        return img
    return np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)


def fit(img: np.ndarray, size: int, largest: int | None = None) -> np.ndarray:
    """A picture (h, w, 3) uint8 at display size.

    A picture smaller than ``size`` is upscaled (nearest) by the largest integer factor that keeps its
    longer side <= ``size``, so each pixel stays an honest square; one whose longer side is above
    ``largest`` (default ``size``; a 512x512 photo) is scaled down to ``largest``, each display pixel
    the average of the pixels it covers; one in between is shown as it is.
    """
    largest = size if largest is None else largest
    longest = max(img.shape[:2])
    if longest <= largest:
        return upscale(img, max(1, size // longest))
    height, width = (max(1, round(n * largest / longest)) for n in img.shape[:2])
    return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((width, height), Image.Resampling.BOX))


def resize_nearest(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a (h, w) or (h, w, 3) array to (height, width): what a pixel covers."""
    rows = (np.arange(height) * a.shape[0] // height)
    cols = (np.arange(width) * a.shape[1] // width)
    return a[rows][:, cols]


def overlay(rgb: np.ndarray, heat, alpha: float = 0.5, cmap: str = MAPS,
            vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Blend a heatmap (h, w) over a picture (H, W, 3): ``(1 - alpha) * picture + alpha * colour(heat)``.

    A heatmap smaller than the picture is resized nearest-neighbour (each cell covers its pixels); the
    colour range is the map's min..max unless ``vmin``/``vmax`` are given.
    """
    heat = to_numpy(heat)
    if vmin is None or vmax is None:
        vmin, vmax = float(heat.min()), float(heat.max())
    colour = colourise(heat, cmap, vmin, vmax)
    if colour.shape[:2] != rgb.shape[:2]:
        colour = resize_nearest(colour, *rgb.shape[:2])
    return ((1 - alpha) * rgb + alpha * colour).round().astype(np.uint8)


def draw_rect(rgb: np.ndarray, box, colour=RED, width: int = 2) -> np.ndarray:
    """A copy of ``rgb`` with the outline of ``box`` = (x0, y0, x1, y1) (x1, y1 exclusive) drawn in."""
    out = rgb.copy()
    H, W = out.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    if x1 <= x0 or y1 <= y0:
        return out
    w = max(1, min(width, (x1 - x0 + 1) // 2, (y1 - y0 + 1) // 2))
    out[y0:y0 + w, x0:x1] = colour
    out[y1 - w:y1, x0:x1] = colour
    out[y0:y1, x0:x0 + w] = colour
    out[y0:y1, x1 - w:x1] = colour
    return out


def mark_cell(rgb: np.ndarray, row: int, col: int, rows: int, cols: int, colour=WHITE) -> np.ndarray:
    """Outline cell (row, col) of a rows x cols grid laid over the picture (the pixel picker's cursor)."""
    H, W = rgb.shape[:2]
    box = (col * W / cols, row * H / rows, (col + 1) * W / cols, (row + 1) * H / rows)
    return draw_rect(draw_rect(rgb, box, BLACK, 3), box, colour, 1)


def tile(tiles: list[np.ndarray], cols: int, pad: int = 2, highlight: int | None = None,
         background=(255, 255, 255)) -> np.ndarray:
    """Lay (h, w, 3) pictures out in a grid, ``pad`` pixels apart (cells as large as the largest picture,
    pictures at their top left); outline ``highlight`` in red."""
    h, w = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    rows = -(-len(tiles) // cols)
    out = np.empty((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), dtype=np.uint8)
    out[:] = background
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y:y + t.shape[0], x:x + t.shape[1]] = t
        if i == highlight:
            out[:] = draw_rect(out, (x - pad, y - pad, x + t.shape[1] + pad, y + t.shape[0] + pad), RED, pad)
    return out


# --- encoding -------------------------------------------------------------------------------------


def png(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes (light compression: encoding speed matters more than size here)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="png", compress_level=1)
    return buf.getvalue()


# --- charts ---------------------------------------------------------------------------------------
#
# Charts are drawn with PIL: a frame, "nice" ticks from matplotlib's MaxNLocator, bars or lines, and
# text in matplotlib's DejaVu Sans. A matplotlib figure would look the same but costs 50-120 ms of CPU
# per draw on a laptop-class CPU (even an empty axes costs ~45 ms), too slow for a slider; these cost a
# few ms.

BLUE, GREY, LINE_COLOURS = (31, 119, 180), (127, 127, 127), [(31, 119, 180), (255, 127, 14), (44, 160, 44),
                                                           (214, 39, 40), (148, 103, 189)]


@lru_cache(maxsize=None)
def font(size: int = 11) -> ImageFont.FreeTypeFont:
    """matplotlib's DejaVu Sans at ``size`` px (PIL's default font if it cannot be found)."""
    try:
        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except OSError:
        return ImageFont.load_default(size=size)


def ticks(lo: float, hi: float, n: int = 4) -> np.ndarray:
    """About ``n`` round tick values covering [lo, hi] (matplotlib's MaxNLocator)."""
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return MaxNLocator(nbins=n).tick_values(lo, hi)


class Chart:
    """A blank chart: a frame at fixed margins and a mapping from data (x, y) to pixels.

    ``xlim``/``ylim`` are the data ranges; draw with ``bar``, ``line``, ``vline``, ``text``; ``png()``.
    """

    def __init__(self, xlim, ylim, width: int = 360, height: int = 200, title: str = "", xlabel: str = "",
                 ylabel: str = "", left: int = 52, bottom: int = 34, xticks: bool = True, yticks: bool = True):
        self.img = Image.new("RGB", (width, height), WHITE)
        self.draw = ImageDraw.Draw(self.img)
        y_ticks = ticks(*ylim)
        self.ylim = (min(ylim[0], y_ticks[0]), max(ylim[1], y_ticks[-1]))
        self.xlim = xlim
        self.box = (left, 20, width - 18, height - bottom)             # x0, y0, x1, y1 (room for the last tick)
        x0, y0, x1, y1 = self.box
        self.draw.rectangle(self.box, outline=BLACK)
        for t in y_ticks if yticks else ():
            y = self.py(t)
            self.draw.line([(x0 - 3, y), (x0, y)], fill=BLACK)
            self.text(x0 - 5, y, f"{t:.3g}", anchor="rm")
        if xticks:
            for t in ticks(*xlim, n=6):
                if xlim[0] <= t <= xlim[1]:
                    self.draw.line([(self.px(t), y1), (self.px(t), y1 + 3)], fill=BLACK)
                    self.text(self.px(t), y1 + 5, f"{t:.4g}", anchor="mt")
        self.text((x0 + x1) / 2, 3, title, anchor="mt", size=12)
        self.text((x0 + x1) / 2, height - 3, xlabel, anchor="mb")
        if ylabel:
            self.text(3, y0 - 14, ylabel, anchor="lt")

    def px(self, x: float) -> float:
        (a, b), (x0, _, x1, _) = self.xlim, self.box
        return x0 + (x - a) / ((b - a) or 1) * (x1 - x0)

    def py(self, y: float) -> float:
        (a, b), (_, y0, _, y1) = self.ylim, self.box
        return y1 - (y - a) / ((b - a) or 1) * (y1 - y0)

    def text(self, x, y, s: str, anchor: str = "la", size: int = 11, fill=BLACK) -> None:
        if s:
            self.draw.text((x, y), s, fill=fill, font=font(size), anchor=anchor)

    def bar(self, x: float, height: float, width: float = 0.8, colour=BLUE) -> None:
        top, base = sorted((self.py(height), self.py(0)))
        self.draw.rectangle([self.px(x - width / 2), top, max(self.px(x + width / 2) - 1, self.px(x - width / 2)),
                             base], fill=colour)

    def line(self, xs, ys, colour=BLUE, width: int = 2) -> None:
        points = [(self.px(x), self.py(y)) for x, y in zip(xs, ys)]
        if len(points) == 1:
            x, y = points[0]
            self.draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        elif points:
            self.draw.line(points, fill=colour, width=width, joint="curve")

    def hline(self, y: float, colour=BLACK) -> None:
        x0, _, x1, _ = self.box
        self.draw.line([(x0, self.py(y)), (x1, self.py(y))], fill=colour)

    def vline(self, x: float, colour=RED) -> None:
        _, y0, _, y1 = self.box
        self.draw.line([(self.px(x), y0), (self.px(x), y1)], fill=colour, width=1)

    def legend(self, names: list[str]) -> None:
        x1, y0 = self.box[2], self.box[1]
        for i, name in enumerate(names):
            y = y0 + 6 + 13 * i
            self.draw.line([(x1 - 112, y), (x1 - 98, y)], fill=LINE_COLOURS[i % len(LINE_COLOURS)], width=3)
            self.text(x1 - 94, y, name, anchor="lm", size=10)

    def png(self) -> bytes:
        return png(np.asarray(self.img))


def _ylim(*arrays) -> tuple[float, float]:
    v = np.concatenate([np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays] + [np.zeros(1)])
    v = v[np.isfinite(v)]
    return float(v.min()), float(v.max())


def bar_chart(values, labels=None, highlight=(), title: str = "", xlabel: str = "", top: int = 64,
              width: int = 360, height: int = 200) -> bytes:
    """Bars of ``values`` (K,), those in ``highlight`` (an index or indices) in red.

    With ``labels`` (names, e.g. classes) the bars are horizontal, one named row each. With more than
    ``top`` values, only the ``top`` largest are drawn, largest first (largest in magnitude without
    labels, e.g. weights; largest with labels, e.g. class scores), and then the highlighted ones that
    are not among them, last: a highlighted bar is always drawn.
    """
    v = to_numpy(values).reshape(-1).astype(np.float64)
    highlight = {int(highlight)} if np.isscalar(highlight) else {int(h) for h in highlight}
    idx = np.arange(len(v))
    if len(v) > top:
        idx = np.argsort(-(v if labels is not None else np.abs(v)), kind="stable")[:top]
        extra = sorted(h for h in highlight if 0 <= h < len(v) and h not in set(idx.tolist()))
        title = f"{title} ({top} largest of {len(v)}{', and the one in red' if extra else ''})".strip()
        idx = np.concatenate([idx, np.array(extra, dtype=idx.dtype)])
    colour = [RED if i in highlight else BLUE for i in idx]
    if labels is not None:
        return _hbar_chart(v[idx], [str(labels[i]) for i in idx], colour, title, xlabel, width)
    chart = Chart((-0.6, len(idx) - 0.4), _ylim(v[idx]), width, height, title, xlabel, xticks=len(idx) == len(v))
    for x, i in enumerate(idx):
        chart.bar(x, v[i], colour=colour[x])
    if len(idx) != len(v):                      # the bars' indices, under the frame (every highlighted one)
        for x, i in enumerate(idx):
            if x % max(1, len(idx) // 8) == 0 or i in highlight:
                chart.text(chart.px(x), chart.box[3] + 4, str(i), anchor="mt", size=9)
    chart.hline(0)
    return chart.png()


def _hbar_chart(v: np.ndarray, names: list[str], colour: list, title: str, xlabel: str, width: int) -> bytes:
    """Horizontal bars, one labelled row per value (class names read left to right)."""
    left = 12 + max(int(font(11).getlength(n)) for n in names)
    height = 20 + 34 + 15 * len(v)
    lo, hi = _ylim(v)
    chart = Chart((lo, hi), (0, 1), width + left - 52, height, title, xlabel, left=left, xticks=False,
                  yticks=False)
    # Chart maps y to the vertical; here values run along x, so draw the rows by hand.
    x0, y0, x1, y1 = chart.box
    chart.draw.rectangle(chart.box, fill=WHITE, outline=BLACK)
    xt = ticks(lo, hi)
    lo, hi = min(lo, xt[0]), max(hi, xt[-1])
    px = lambda a: x0 + (a - lo) / ((hi - lo) or 1) * (x1 - x0)  # noqa: E731
    for t in xt:
        chart.draw.line([(px(t), y1), (px(t), y1 + 3)], fill=BLACK)
        chart.text(px(t), y1 + 5, f"{t:.3g}", anchor="mt")
    row = (y1 - y0) / len(v)
    for r, (a, name) in enumerate(zip(v, names)):
        yc = y0 + (r + 0.5) * row
        a0, a1 = sorted((px(0), px(a)))
        chart.draw.rectangle([a0, yc - row * 0.35, max(a1, a0 + 1), yc + row * 0.35], fill=colour[r])
        chart.text(x0 - 4, yc, name, anchor="rm")
    chart.draw.line([(px(0), y0), (px(0), y1)], fill=BLACK)
    return chart.png()


def grouped_bar_chart(groups: dict, labels, title: str = "", xlabel: str = "", width: int = 360,
                      height: int = 200) -> bytes:
    """Side-by-side bars: ``groups`` maps a legend name to values (K,), one group of bars per label."""
    values = [to_numpy(v).reshape(-1) for v in groups.values()]
    n, K = len(values), len(labels)
    chart = Chart((-0.6, K - 0.4), _ylim(*values), width, height, title, xlabel, xticks=False)
    for g, v in enumerate(values):
        for k in range(K):
            chart.bar(k + (g - (n - 1) / 2) * 0.8 / n, v[k], 0.8 / n, LINE_COLOURS[g % len(LINE_COLOURS)])
    for k, label in enumerate(labels):
        chart.text(chart.px(k), chart.box[3] + 4, str(label), anchor="mt", size=10)
    chart.hline(0)
    chart.legend(list(groups))
    return chart.png()


def curve_chart(curves: dict, title: str = "", xlabel: str = "step", marker: float | None = None, x=None,
                xlim=None, width: int = 360, height: int = 200) -> bytes:
    """Lines of ``curves`` (name -> values (T,)) against ``x`` (default 1..T); a red line at ``marker``."""
    values = [to_numpy(v).reshape(-1) for v in curves.values()]
    xs = [np.arange(1, len(v) + 1) if x is None else to_numpy(x).reshape(-1)[:len(v)] for v in values]
    if xlim is None:
        xlim = _ylim(*xs) if any(len(a) for a in xs) else (0.0, 1.0)
    chart = Chart(xlim, _ylim(*values), width, height, title, xlabel)
    for i, (a, v) in enumerate(zip(xs, values)):
        chart.line(a, v, LINE_COLOURS[i % len(LINE_COLOURS)])
    if marker is not None:
        chart.vline(marker)
    if len(curves) > 1:
        chart.legend(list(curves))
    return chart.png()


# --- numbers as HTML ------------------------------------------------------------------------------


def fmt(v: float) -> str:
    """A number in a short readable form (4 significant digits)."""
    return f"{float(v):.4g}"


def table_html(rows: list[list], header: list | None = None, highlight_row: int | None = None,
               title: str = "") -> str:
    """A small HTML table of numbers (floats formatted with `fmt`)."""
    def cell(v, tag="td"):
        text = fmt(v) if isinstance(v, (float, np.floating)) or (hasattr(v, "item") and not isinstance(v, str)) \
            else str(v)
        return f"<{tag} style='padding:1px 6px;text-align:right'>{text}</{tag}>"
    out = [f"<div style='font-size:12px'><b>{title}</b>" if title else "<div style='font-size:12px'>",
           "<table style='border-collapse:collapse;font-family:monospace'>"]
    if header:
        out.append("<tr>" + "".join(cell(h, "th") for h in header) + "</tr>")
    for i, r in enumerate(rows):
        style = " style='background:#fff3b0'" if i == highlight_row else ""
        out.append(f"<tr{style}>" + "".join(cell(v) for v in r) + "</tr>")
    return "".join(out) + "</table></div>"


def grid_html(a, title: str = "", highlight=None) -> str:
    """A small 2-D array (h, w) as an HTML table of its numbers, cells tinted by sign and size."""
    a = to_numpy(a)
    m = float(np.abs(a).max()) or 1.0
    rows = []
    for i in range(a.shape[0]):
        cells = []
        for j in range(a.shape[1]):
            v = float(a[i, j])
            tint = f"rgba(214,39,40,{0.6 * v / m:.2f})" if v > 0 else f"rgba(31,119,180,{-0.6 * v / m:.2f})"
            # a highlighted cell gets its own frame inside it (cells are apart), so each reads on its own
            framed = highlight is not None and highlight[i, j]
            frame = ";box-shadow:inset 0 0 0 2px black;font-weight:bold" if framed else ""
            cells.append(f"<td style='padding:3px 5px;text-align:right;background:{tint};border:1px solid #ddd"
                         f"{frame}'>{v:.3g}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div style='font-size:11px;display:inline-block;margin-right:10px'><b>{title}</b>"
            "<table style='border-collapse:separate;border-spacing:2px;font-family:monospace'>" + "".join(rows)
            + "</table></div>")
