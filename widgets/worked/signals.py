"""Worked equations of the signals at the input: saliency, deconvnet, guided backprop, and occlusion."""

from __future__ import annotations

import numpy as np

from widgets.render import to_numpy

from . import Worked, num, strongest, sum_of, worked

#: What a ReLU passes down under each method's rule (R: the signal from above, x: the forward input).
_RULE = {
    "saliency": r"\text{the gradient: each ReLU passes } R \cdot [x > 0]",
    "deconvnet": r"\text{deconvnet: each ReLU passes } \max(R, 0)",
    "guided_backprop": r"\text{guided: each ReLU passes } [x > 0] \cdot \max(R, 0)",
}


def class_of(t) -> str:
    """The target class of image 0 as shown in a subscript (``c`` for a neuron or a callable target)."""
    target = t.meta.get("target")
    return "c" if target is None else num(int(target[0]))


@worked("saliency", "grad")
@worked("deconvnet", "grad")
@worked("guided_backprop", "grad")
def grad(t, k, pos) -> Worked:
    """g_{ch,ij} = dS_c/dI_{ch,ij} (saliency) or the signal the method's ReLU rule passes down to pixel
    (i, j) of colour channel ch = k: read from the backward pass, with the rule that produced it."""
    g = to_numpy(t.grad[0]).astype(np.float64)
    ch = min(k, g.shape[0] - 1)
    i, j = pos if pos is not None else strongest(to_numpy(t.map[0]))
    where = f"{ch},{i},{j}"
    source = (rf"\frac{{\partial S_{{{class_of(t)}}}}}{{\partial I_{{{where}}}}}" if t.method == "saliency"
              else rf"R^{{\text{{input}}}}_{{{where}}}")
    result = float(g[ch, i, j])
    latex = rf"g_{{{where}}} = {source}\quad ({_RULE[t.method]}) = {num(result)}"
    return Worked(latex, result, result)


@worked("saliency", "map")
@worked("deconvnet", "map")
@worked("guided_backprop", "map")
def grad_map(t, k, pos) -> Worked:
    """M_ij = max_ch |g_{ch,ij}|: the signal at pixel (i, j) in each colour channel, its largest magnitude."""
    g = to_numpy(t.grad[0]).astype(np.float64)
    i, j = pos if pos is not None else strongest(to_numpy(t.map[0]))
    values = g[:, i, j]
    shown = [rf"|{num(v)}|" for v in values] if len(values) <= 4 else \
        [rf"|{num(v)}|" for v in values[:3]] + [r"\dots", rf"|{num(values[-1])}|"]
    result = float(np.abs(values).max())
    latex = rf"M_{{{i},{j}}} = \max_{{ch}} |g_{{ch,{i},{j}}}| = \max({', '.join(shown)}) = {num(result)}"
    return Worked(latex, result, float(to_numpy(t.map[0, i, j])))


def _steps(n: int, s: int) -> str:
    """The set {0, s, 2s, ..., (n-1)s} written out (with dots beyond three)."""
    values = [str(a * s) for a in range(n)]
    return r"\{" + ", ".join(values if n <= 3 else [values[0], values[1], r"\dots", values[-1]]) + r"\}"


@worked("occlusion", "corners")
def corners(t, k, pos) -> Worked:
    """(u, v) in {0, s, 2s, ...}^2: the corners where a window of side h fits, (floor((H - h)/s) + 1) of
    them per axis, P in all."""
    (h, w), (sh, sw) = t.meta["window"], t.meta["stride"]
    H, W = t.map.shape[-2:]
    nu, nv = (H - h) // sh + 1, (W - w) // sw + 1
    result = float(nu * nv)
    latex = (rf"(u, v) \in {_steps(nu, sh)} \times {_steps(nv, sw)}:\ "
             rf"P = \left(\left\lfloor \tfrac{{{H} - {h}}}{{{sh}}} \right\rfloor + 1\right)"
             rf"\left(\left\lfloor \tfrac{{{W} - {w}}}{{{sw}}} \right\rfloor + 1\right) = {nu} \cdot {nv} = "
             rf"{num(result)}")
    return Worked(latex, result, float(len(t.corners)))


@worked("occlusion", "drop")
def drop(t, k, pos) -> Worked:
    """Delta_uv = y^c(x) - y^c(x_uv) at one occluder position (a, b) of the grid, corner (u, v) = (a s, b s):
    the score of the image, the score with the window occluded (y minus the drop), their difference."""
    d = to_numpy(t.drop[0]).astype(np.float64)
    a, b = pos if pos is not None else strongest(d)
    (sh, sw), c = t.meta["stride"], class_of(t)
    y = float(to_numpy(t.meta["y"])[0])
    occluded = y - d[a, b]
    result = y - occluded
    latex = (rf"\Delta_{{{a * sh},{b * sw}}} = y^{{{c}}}(x) - y^{{{c}}}(x_{{{a * sh},{b * sw}}}) = {num(y)} - "
             rf"{num(occluded)} = {num(result)}").replace("- -", "+ ")
    return Worked(latex, result, float(d[a, b]))


@worked("occlusion", "map")
def occlusion_map(t, k, pos) -> Worked:
    """M_ij = mean{Delta_uv : (i, j) in window(u, v)}: the drops of the windows that cover pixel (i, j)
    (0 where none does)."""
    m = to_numpy(t.map[0])
    i, j = pos if pos is not None else strongest(m)
    (h, w), corner = t.meta["window"], to_numpy(t.corners)
    covers = (corner[:, 0] <= i) & (i < corner[:, 0] + h) & (corner[:, 1] <= j) & (j < corner[:, 1] + w)
    drops = to_numpy(t.drop[0]).astype(np.float64).reshape(-1)[covers]
    head = rf"M_{{{i},{j}}} = \mathrm{{mean}}\{{\Delta_{{uv}} : ({i},{j}) \in \text{{window}}(u,v)\}}"
    if not len(drops):
        return Worked(head + r" = 0\ \text{(no window covers it)} = 0", 0.0, float(m[i, j]))
    at = ", ".join(f"({int(u)},{int(v)})" for u, v in corner[covers][:4]) + (r", \dots" if len(drops) > 4 else "")
    result = float(drops.sum() / len(drops))
    latex = (rf"{head} = \frac{{1}}{{{len(drops)}}}{sum_of(drops)}\ \text{{(windows at }} {at}\text{{)}} = "
             rf"\frac{{1}}{{{len(drops)}}}({num(drops.sum())}) = {num(result)}")
    return Worked(latex, result, float(m[i, j]))
