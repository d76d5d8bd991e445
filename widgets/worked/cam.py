"""Worked equations of the CAM family: GAP, CAM, Grad-CAM, Grad-CAM++, XGrad-CAM, Guided Grad-CAM.

Positions: ``(i, j)`` is a cell of the layer's map (A, f); the terms at the input's resolution (``map``,
``L_up``, ``R``, ``guided``) show the input pixel ``(I, J)`` at the centre of that cell (`at`).
"""

from __future__ import annotations

import numpy as np

from widgets.render import to_numpy

from . import Worked, at, num, strongest, sum_of, worked

COLOURS = ("red", "green", "blue")


# --- helpers -----------------------------------------------------------------------------------------


def _first(v) -> np.ndarray:
    """The first image's values, float64."""
    return to_numpy(v[0]).astype(np.float64)


def _layer(t) -> str:
    r"""The layer's name in typewriter letters (``\_`` for MathJax)."""
    return r"\mathtt{" + str(t.meta["layer"]).replace("_", r"\_") + "}"


def _class(t) -> int:
    return int(t.meta["target"][0])


def _pos(pos, m) -> tuple[int, int]:
    """The chosen position, or the strongest of the map ``m`` when none is chosen."""
    return tuple(pos) if pos is not None else strongest(m)


def _input_pos(pos, layer_shape, m) -> tuple[int, int]:
    """A position of the layer's map as an input pixel of ``m`` (or ``m``'s strongest pixel)."""
    return at(pos, layer_shape, m.shape) if pos is not None else strongest(m)


def _sign(t) -> tuple[float, str]:
    """-1 and a minus sign for a counterfactual map (the gradient negated), else 1 and nothing."""
    return (-1.0, "-") if t.meta.get("counterfactual") else (1.0, "")


def _listed(parts: list[str], shown: int = 3) -> str:
    """``(p_1 + p_2 + p_3 + \\dots + p_n)``: the first ``shown`` parts, dots, the last one."""
    if len(parts) > shown + 1:
        parts = parts[:shown] + [r"\dots", parts[-1]]
    return "(" + " + ".join(parts).replace("+ -", "- ") + ")"


def _times(x, y) -> str:
    r"""``x \cdot y``, a negative y in parentheses."""
    return rf"{num(x)} \cdot {num(y) if y >= 0 else '(' + num(y) + ')'}"


def _products(xs, ys) -> str:
    r"""``(x_1 \cdot y_1 + ... + x_n \cdot y_n)`` over the nonzero products: the first ones, dots, the last."""
    pairs = [(x, y) for x, y in zip(np.ravel(xs), np.ravel(ys)) if x * y != 0]
    shown = _listed([_times(x, y) for x, y in pairs]) if pairs else "(0)"
    return rf"\underbrace{{{shown}}}_{{\text{{{len(pairs)} of {np.size(xs)} terms nonzero}}}}"


def _weighted_sum(weights, maps, i, j) -> tuple[str, float]:
    """sum_k weights_k maps^k_ij written as its 3 largest terms (each labelled with its k) plus the rest, and
    its value."""
    terms = weights * maps[:, i, j]
    top = np.argsort(-np.abs(terms), kind="stable")[:3]
    rest = float(np.delete(terms, top).sum())
    labelled = [rf"\underbrace{{{_times(weights[q], maps[q, i, j])}}}_{{k={q}}}" for q in top]
    shown = " + ".join(labelled).replace("+ -", "- ")
    latex = rf"{shown} + \underbrace{{{num(rest)}}}_{{\text{{other {len(terms) - len(top)} maps}}}}"
    return latex, float(terms[top].sum() + rest)


def _bilinear(m, I, J, shape) -> tuple[str, float]:
    """up(m) at pixel (I, J) of a ``shape`` map (bilinear, align_corners=False): the neighbours of m around
    the pixel's centre, weighted by closeness, as ``"0.5625 \\cdot 1.2 + ..."`` and its value."""
    def axis(d, n, N):          # the source coordinate of pixel d, its two neighbours and their weights
        s = max((d + 0.5) * n / N - 0.5, 0.0)
        lo = int(s)
        return ((lo, 1 - (s - lo)), (min(lo + 1, n - 1), s - lo))
    weights: dict[tuple[int, int], float] = {}
    for i, u in axis(I, m.shape[0], shape[0]):
        for j, v in axis(J, m.shape[1], shape[1]):
            if u * v > 0:
                weights[i, j] = weights.get((i, j), 0.0) + u * v
    cells = ",".join(f"({i},{j})" for i, j in weights)
    shown = " + ".join(_times(wt, m[i, j]) for (i, j), wt in weights.items())
    result = sum(wt * m[i, j] for (i, j), wt in weights.items())
    return rf"\text{{cells }} {cells}:\ {shown}", float(result)


def _reading(where: str, symbol: str, value: float) -> Worked:
    """A term that is read, not computed: where it comes from, the symbol, its number."""
    return Worked(rf"{where}:\ {symbol} = {num(value)}", float(value), float(value))


# --- GAP (Lin et al. 2014) ---------------------------------------------------------------------------


@worked("gap", "A")
@worked("grad_cam", "A")
@worked("grad_cam_pp", "A")
@worked("xgrad_cam", "A")
def feature_map(t, k, pos) -> Worked:
    """A^k_ij: read from the layer's output, map k, row i, col j."""
    return _map_value(t, t.A, k, pos, lambda i, j: rf"A^{{{k}}}_{{{i},{j}}}")


def _map_value(t, maps, k, pos, symbol) -> Worked:
    """A value of map k of the layer at (i, j), read off with where it comes from."""
    m = _first(maps)
    i, j = _pos(pos, m[k])
    return _reading(rf"{_layer(t)}\text{{, map {k}, row {i}, col {j}}}", symbol(i, j), m[k, i, j])


@worked("gap", "F")
def pooled(t, k, pos) -> Worked:
    """F^k = (1/Z) sum_ij A^k_ij: the map's values, their sum, Z = h w."""
    a = _first(t.A)[k]
    result = a.sum() / a.size
    latex = (rf"F^{{{k}}} = \frac{{1}}{{Z}}\sum_i\sum_j A^{{{k}}}_{{ij}} = \frac{{1}}{{{a.size}}}{sum_of(a)}"
             rf" = \frac{{1}}{{{a.size}}}({num(a.sum())}) = {num(result)}")
    return Worked(latex, result, float(_first(t.F)[k]))


@worked("gap", "S")
def gap_score(t, c, pos) -> Worked:
    """S_c = sum_k W_ck F^k + b_c: the pooled values F^k times class c's weights (the head, from ``meta``)."""
    F, W, b = _first(t.F), to_numpy(t.meta["W"]).astype(np.float64)[c], float(to_numpy(t.meta["b"])[c])
    products = W * F
    result = float(products.sum() + b)
    shown = _listed([rf"{num(W[q])} \cdot {num(F[q])}" for q in range(len(F))])
    latex = (rf"S_{{{c}}} = \sum_k W_{{{c},k}} F^k + b_{{{c}}} = {shown} + {num(b)} = {num(products.sum())} + "
             rf"{num(b)} = {num(result)}").replace("+ -", "- ")
    return Worked(latex, result, float(_first(t.S)[c]))


# --- CAM (Zhou et al. 2016) --------------------------------------------------------------------------


@worked("cam", "f")
def cam_feature_map(t, k, pos) -> Worked:
    """f_k(x, y): read from the last convolutional layer's output."""
    return _map_value(t, t.f, k, pos, lambda i, j: rf"f_{{{k}}}({i},{j})")


@worked("cam", "w")
def cam_weight(t, k, pos) -> Worked:
    """w^c_k = W_ck: read from row c of the linear layer's weights."""
    c = _class(t)
    return _reading(rf"\text{{row {c} of the linear layer's weights}}", rf"w^{{{c}}}_{{{k}}} = W_{{{c},{k}}}",
                    float(_first(t.w)[k]))


@worked("cam", "M")
def cam_map(t, k, pos) -> Worked:
    """M_c(x, y) = sum_k w^c_k f_k(x, y) at one position: the largest terms, the rest, the sum."""
    M = _first(t.M)
    i, j = _pos(pos, M)
    shown, result = _weighted_sum(_first(t.w), _first(t.f), i, j)
    latex = rf"M_c({i},{j}) = \sum_k w^c_k f_k({i},{j}) = {shown} = {num(result)}"
    return Worked(latex, result, float(M[i, j]))


@worked("cam", "S")
def cam_score(t, k, pos) -> Worked:
    """S_c = (1/Z) sum_xy M_c(x, y) + b_c (the bias from ``meta``), beside the model's own score y^c."""
    M, y, b = _first(t.M), float(to_numpy(t.meta["y"])[0]), float(to_numpy(t.meta["b"])[0])
    mean = M.sum() / M.size
    result = mean + b
    latex = (rf"\text{{the model's score }} y^c = {num(y)};\quad " + t.term("S").latex
             + rf" = \frac{{1}}{{{M.size}}}{sum_of(M)} + b_c = \frac{{1}}{{{M.size}}}({num(M.sum())}) + {num(b)}"
             rf" = {num(mean)} + {num(b)} = {num(result)}").replace("+ -", "- ")
    return Worked(latex, result, float(_first(t.S)))


@worked("cam", "map")
def cam_upsampled(t, k, pos) -> Worked:
    """up(M_c) at an input pixel: the bilinear mix of the 4 nearest cells of M."""
    M, m = _first(t.M), _first(t.map)
    I, J = _input_pos(pos, M.shape, m)
    shown, result = _bilinear(M, I, J, m.shape)
    return Worked(rf"\mathrm{{up}}(M_c)_{{{I},{J}}} = {shown} = {num(result)}", result, float(m[I, J]))


# --- the Grad-CAM family (Selvaraju et al. 2017; Chattopadhay et al. 2018; Fu et al. 2020) -------------


@worked("grad_cam", "dY_dA")
@worked("grad_cam_pp", "dY_dA")
@worked("xgrad_cam", "dY_dA")
def gradient(t, k, pos) -> Worked:
    """dy^c/dA^k_ij: backpropagated from the score. When it is the same at every position (a GAP head right
    after the layer: y^c = sum_k w^c_k (1/Z) sum_ij A^k_ij + b_c), it is w^c_k / Z, and the worked line says so."""
    g = _first(t.dY_dA)[k]
    i, j = _pos(pos, g)
    lhs = rf"\frac{{\partial y^{{{_class(t)}}}}}{{\partial A^{{{k}}}_{{{i},{j}}}}}"
    if g.flat[0] == 0 or np.any(g != g.flat[0]):
        return _reading(rf"\text{{backpropagated from the score to }} {_layer(t)}", lhs, g[i, j])
    Z = g.size
    w = g[i, j] * Z
    result = w / Z
    latex = (rf"\text{{the same at all {Z} positions: a GAP head, }} y^c = \sum_k w^c_k \frac{{1}}{{Z}}"
             rf"\sum_{{ij}} A^k_{{ij}} + b_c,\ \text{{so}}\ {lhs} = \frac{{w^c_{{{k}}}}}{{Z}}"
             rf" = \frac{{{num(w)}}}{{{Z}}} = {num(result)}")
    return Worked(latex, result, g[i, j])


@worked("grad_cam_pp", "a")
def grad_cam_pp_a(t, k, pos) -> Worked:
    """a^kc_ij = g^2 / (2 g^2 + sum_ab A^k_ab g^3), g = dy^c/dA^k_ij (negated for a counterfactual map);
    0 where the denominator is 0."""
    sign, minus = _sign(t)
    a = _first(t.a)[k]
    i, j = _pos(pos, a)
    g, total = sign * _first(t.dY_dA)[k, i, j], _first(t.A)[k].sum()
    top, bottom = g**2, 2 * g**2 + total * g**3
    result = top / bottom if bottom != 0 else 0.0
    d = rf"{minus}\partial y^c/\partial A^{{{k}}}_{{{i},{j}}}"
    latex = (rf"a^{{kc}}_{{{i},{j}}} = \frac{{({d})^2}}{{2({d})^2 + \sum_{{a,b}} A^{{{k}}}_{{ab}}({d})^3}}"
             rf" = \frac{{({num(g)})^2}}{{2({num(g)})^2 + {num(total)}\,({num(g)})^3}}"
             rf" = \frac{{{num(top)}}}{{{num(2 * g**2)} + {num(total * g**3)}}}"
             + (rf" = {num(result)}" if bottom != 0 else r"\ \text{(denominator 0, so } a \text{ is set to 0)} = 0"))
    return Worked(latex.replace("+ -", "- "), result, a[i, j])


@worked("grad_cam_pp", "alpha")
def grad_cam_pp_alpha(t, k, pos) -> Worked:
    """alpha^c_k = sum_ij a^kc_ij ReLU(g_ij): each position's coefficient times its positive gradient."""
    sign, minus = _sign(t)
    a, relu = _first(t.a)[k], np.maximum(sign * _first(t.dY_dA)[k], 0)
    result = (a * relu).sum()
    latex = (rf"\alpha^c_{{{k}}} = \sum_i\sum_j a^{{{k}c}}_{{ij}}\,\mathrm{{ReLU}}\!\left({minus}\frac{{\partial y^c}}"
             rf"{{\partial A^{{{k}}}_{{ij}}}}\right) = {_products(a, relu)} = {num(result)}")
    return Worked(latex, result, float(_first(t.alpha)[k]))


@worked("xgrad_cam", "alpha")
def xgrad_cam_alpha(t, k, pos) -> Worked:
    """alpha^c_k = sum_ij (A^k_ij / sum_ab A^k_ab) g_ij: the gradient averaged with the activations as
    weights (0 for an all-zero map)."""
    sign, minus = _sign(t)
    A, g = _first(t.A)[k], sign * _first(t.dY_dA)[k]
    total, dot = A.sum(), (A * g).sum()
    result = dot / total if total != 0 else 0.0
    grad = rf"{minus}\frac{{\partial y^c}}{{\partial A^{{{k}}}_{{ij}}}}"
    latex = (rf"\alpha^c_{{{k}}} = \sum_i\sum_j \frac{{A^{{{k}}}_{{ij}}}}{{\sum_{{a,b}} A^{{{k}}}_{{ab}}}}"
             rf"\left({grad}\right) = \frac{{1}}{{{num(total)}}}{_products(A, g)}"
             rf" = \frac{{{num(dot)}}}{{{num(total)}}}"
             + (rf" = {num(result)}" if total != 0 else r"\ \text{(an all-zero map gets weight 0)} = 0"))
    return Worked(latex, result, float(_first(t.alpha)[k]))


@worked("grad_cam", "alpha")
def grad_cam_alpha(t, k, pos) -> Worked:
    """alpha^c_k = (1/Z) sum_ij dy^c/dA^k_ij: the gradients of map k, their sum, Z = h w."""
    sign, minus = _sign(t)
    g = _first(t.dY_dA)[k]
    Z = g.size
    result = sign * g.sum() / Z
    latex = (rf"\alpha^c_{{{k}}} = \frac{{1}}{{Z}}\sum_i\sum_j {minus}"
             rf"\frac{{\partial y^c}}{{\partial A^{{{k}}}_{{ij}}}} = {minus}\frac{{1}}{{{Z}}}{sum_of(g)}"
             rf" = {minus}\frac{{1}}{{{Z}}}({num(g.sum())}) = {num(result)}")
    return Worked(latex, result, float(_first(t.alpha)[k]))


@worked("grad_cam", "weighted")
@worked("grad_cam_pp", "weighted")
@worked("xgrad_cam", "weighted")
def weighted(t, k, pos) -> Worked:
    """sum_k alpha_k A^k_ij at one position: the largest terms, the rest, the sum."""
    w = _first(t.weighted)
    i, j = _pos(pos, w)
    shown, result = _weighted_sum(_first(t.alpha), _first(t.A), i, j)
    return Worked(rf"\sum_k \alpha^c_k A^k_{{{i},{j}}} = {shown} = {num(result)}", result, float(w[i, j]))


@worked("grad_cam", "L")
@worked("grad_cam_pp", "L")
@worked("xgrad_cam", "L")
def relu(t, k, pos) -> Worked:
    """L^c_ij = ReLU(sum_k alpha_k A^k_ij) = max(0, weighted_ij)."""
    L, w = _first(t.L), _first(t.weighted)
    i, j = _pos(pos, L)
    result = max(0.0, w[i, j])
    latex = (rf"L^c_{{{i},{j}}} = \mathrm{{ReLU}}\left(\sum_k \alpha^c_k A^k_{{{i},{j}}}\right)"
             rf" = \max(0, {num(w[i, j])}) = {num(result)}")
    return Worked(latex, result, float(L[i, j]))


@worked("grad_cam", "map")
@worked("grad_cam_pp", "map")
@worked("xgrad_cam", "map")
@worked("guided", "L_up")
def upsampled(t, k, pos) -> Worked:
    """up(L^c) at an input pixel: the bilinear mix of the 4 nearest cells of L."""
    L = _first(t.L)
    m = _first(t.L_up)[0] if "L_up" in t else _first(t.map)
    I, J = _input_pos(pos, L.shape, m)
    shown, result = _bilinear(L, I, J, m.shape)
    return Worked(rf"\mathrm{{up}}(L^c)_{{{I},{J}}} = {shown} = {num(result)}", result, float(m[I, J]))


# --- Guided Grad-CAM (Selvaraju et al. 2017) ---------------------------------------------------------


def _guided_pixel(t, pos, m) -> tuple[int, int, int]:
    """The input pixel (I, J) for ``pos`` (or the strongest of ``m``) and its colour of largest |R|."""
    I, J = _input_pos(pos, t.A.shape[2:], m)
    return I, J, int(np.abs(_first(t.R)[:, I, J]).argmax())


@worked("guided", "R")
def guided_signal(t, k, pos) -> Worked:
    """R_ch,IJ: guided backpropagation's signal at the input pixel, read (its three colours, the largest)."""
    R = _first(t.R)
    I, J, ch = _guided_pixel(t, pos, np.abs(R).max(0))
    colours = ", ".join(num(v) for v in R[:, I, J])
    where = (rf"\text{{guided backprop to pixel }} ({I},{J}):\ R_{{\cdot,{I},{J}}} = ({colours})"
             rf"\ \text{{(red, green, blue); the largest, {COLOURS[ch]}}}")
    return _reading(where, rf"R_{{{ch},{I},{J}}}", R[ch, I, J])


@worked("guided", "guided")
def guided_product(t, k, pos) -> Worked:
    """(R ⊙ up(L))_ch,IJ = R_ch,IJ · up(L)_IJ, at the pixel's colour of largest |R|."""
    guided = _first(t.guided)
    I, J, ch = _guided_pixel(t, pos, np.abs(guided).max(0))
    r, up = _first(t.R)[ch, I, J], _first(t.L_up)[0, I, J]
    result = r * up
    latex = (rf"(R \odot \mathrm{{up}}(L^c))_{{{ch},{I},{J}}} = R_{{{ch},{I},{J}}}\,\mathrm{{up}}(L^c)_{{{I},{J}}}"
             rf" = {num(r)} \cdot {num(up)} = {num(result)}")
    return Worked(latex, result, float(guided[ch, I, J]))


@worked("guided", "map")
def guided_map(t, k, pos) -> Worked:
    """M_IJ = max_ch |(R ⊙ up(L))_ch,IJ|: the largest of the three colours' magnitudes."""
    m, guided = _first(t.map), _first(t.guided)
    I, J, _ = _guided_pixel(t, pos, m)
    values = guided[:, I, J]
    result = np.abs(values).max()
    shown = ", ".join(rf"|{num(v)}|" for v in values)
    latex = (rf"M_{{{I},{J}}} = \max_{{ch}} |(R \odot \mathrm{{up}}(L^c))_{{ch,{I},{J}}}|"
             rf" = \max({shown}) = {num(result)}")
    return Worked(latex, result, float(m[I, J]))
