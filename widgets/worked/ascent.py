"""Worked equations of gradient ascent on the input: the class model (Simonyan et al. 2014) and fooling
images (Szegedy et al. 2014, as in CS231n).

Their curves run over the steps (axes ``step, image``): the channel slider does not apply, each term is
written out at the last step (``S[t]`` is the score of ``I_t``, the image after t steps), and the pixel
terms at the pixel the optimisation changed most (or the chosen position)."""

from __future__ import annotations

import numpy as np

from widgets.render import to_numpy

from . import Worked, num, strongest, sum_of, worked
from .signals import class_of


def _signs(latex: str) -> str:
    """``a + -b`` as ``a - b`` and ``a - -b`` as ``a + b``."""
    return latex.replace("+ -", "- ").replace("- -", "+ ")


def _changed(change: np.ndarray, pos) -> tuple[int, int, int]:
    """(ch, i, j): pixel ``pos`` (default: where ``|change|`` (C,H,W) is largest) and its colour channel
    that changed most."""
    a = np.abs(change)
    i, j = pos if pos is not None else strongest(a.max(0))
    return int(a[:, i, j].argmax()), i, j


def _ascent_pixel(t, pos) -> tuple[int, int, int]:
    """The pixel of image 0 the class model changed most (`_changed`)."""
    return _changed(to_numpy(t.image[0]) - to_numpy(t.I0[0]), pos)


# --- class model -----------------------------------------------------------------------------------------

@worked("class_model", "I0")
def start(t, k, pos) -> Worked:
    """I_0 = 0 (the paper's start; or the start given): its value at the pixel the ascent changed most."""
    I0 = to_numpy(t.I0[0])
    ch, i, j = _ascent_pixel(t, pos)
    result = float(I0[ch, i, j])
    head = r"I_0 = 0" if not I0.any() else r"I_0\ \text{(the start given)}"
    which = r"\text{at the pixel the ascent changes most, }" if pos is None else ""
    latex = rf"{head}:\ {which}(I_0)_{{{ch},{i},{j}}} = {num(result)}"
    return Worked(latex, result, result)


def _rise(t, image: str) -> Worked:
    """S_c at the last step: the score of the start (``I_0`` / ``x_0``) plus what the steps added."""
    S = to_numpy(t.S[:, 0]).astype(np.float64)
    c, last = class_of(t), len(S) - 1
    rise = S[-1] - S[0]
    result = S[0] + rise
    latex = _signs(rf"S_{{{c}}}({image}_{{{last}}}) = S_{{{c}}}({image}_0) + \text{{rise}} = {num(S[0])} + "
                   rf"{num(rise)} = {num(result)}")
    return Worked(latex, result, float(S[-1]))


@worked("class_model", "S")
def score(t, k, pos) -> Worked:
    """S_c(I_t) at the last step t: the score of I_0 plus what the ascent added."""
    return _rise(t, "I")


@worked("class_model", "R")
def penalty(t, k, pos) -> Worked:
    """lambda ||I_t||_2^2 = lambda sum_{ch,i,j} I_t^2 at the last step t whose image the trace keeps (the
    last snapshot before the end, or I_0)."""
    R = to_numpy(t.R[:, 0])
    kept = [(0, t.I0[0])] + [(s, I[0]) for s, I in zip(t.meta["snapshot_steps"], t.snapshots) if s < len(R)]
    step, I = kept[-1]
    squares, lam = to_numpy(I).astype(np.float64) ** 2, float(t.meta["l2"])
    result = lam * squares.sum()
    latex = (rf"\lambda \lVert I_{{{step}}} \rVert_2^2 = \lambda \sum_{{ch,i,j}} (I_{{{step}}})^2_{{ch,i,j}} = "
             rf"{num(lam)} \cdot {sum_of(squares)} = {num(lam)} \cdot {num(squares.sum())} = {num(result)}")
    return Worked(latex, result, float(R[step]))


@worked("class_model", "J")
def objective(t, k, pos) -> Worked:
    """J(I_t) = S_c(I_t) - lambda ||I_t||_2^2 at the last step."""
    S, R = float(t.S[-1, 0]), float(t.R[-1, 0])
    c, last = class_of(t), len(t.S) - 1
    result = S - R
    latex = _signs(rf"J(I_{{{last}}}) = S_{{{c}}}(I_{{{last}}}) - \lambda \lVert I_{{{last}}} \rVert_2^2 = "
                   rf"{num(S)} - {num(R)} = {num(result)}")
    return Worked(latex, result, float(t.J[-1, 0]))


@worked("class_model", "grad_norm")
def grad_norm(t, k, pos) -> Worked:
    """||grad_I J||_2 at the first and the last step (each step moves I by lr grad J / ||grad J||)."""
    g = to_numpy(t.grad_norm[:, 0])
    result = float(g[-1])
    norm = t.term("grad_norm").latex                                  # ||grad_I J||_2
    latex = (rf"\text{{each step: }} I \leftarrow I + \mathrm{{lr}}\,\frac{{\nabla_I J}}{{{norm}}},\ "
             rf"\mathrm{{lr}} = {num(t.meta['lr'])};\quad \lVert \nabla_I J(I_0) \rVert_2 = {num(g[0])},\ \dots,\ "
             rf"\lVert \nabla_I J(I_{{{len(g) - 1}}}) \rVert_2 = {num(result)}")
    return Worked(latex, result, result)


@worked("class_model", "snapshots")
def snapshots(t, k, pos) -> Worked:
    """I_t at the last snapshot, at the pixel the ascent changed most."""
    ch, i, j = _ascent_pixel(t, pos)
    n, step = len(t.snapshots), t.meta["snapshot_steps"][-1]
    result = float(to_numpy(t.snapshots[-1, 0, ch, i, j]))
    latex = rf"\text{{snapshot {n} of {n}, after step {step}: }} (I_{{{step}}})_{{{ch},{i},{j}}} = {num(result)}"
    return Worked(latex, result, result)


@worked("class_model", "image")
def image(t, k, pos) -> Worked:
    """I* = I_T, the image after the last step: at the pixel the ascent changed most, the start plus the
    sum of the steps' changes."""
    I0, final = to_numpy(t.I0[0]).astype(np.float64), to_numpy(t.image[0]).astype(np.float64)
    ch, i, j = _ascent_pixel(t, pos)
    change = final[ch, i, j] - I0[ch, i, j]
    result = I0[ch, i, j] + change
    where = f"{ch},{i},{j}"
    latex = _signs(rf"I^* = I_{{{len(t.S)}}}:\ I^*_{{{where}}} = (I_0)_{{{where}}} + \sum_t \Delta I_{{t,{where}}} = "
                   rf"{num(I0[ch, i, j])} + {num(change)} = {num(result)}")
    return Worked(latex, result, float(final[ch, i, j]))


# --- fooling image ---------------------------------------------------------------------------------------

@worked("fooling_image", "S")
def target_score(t, k, pos) -> Worked:
    """S_t(x_k) at the last step k: the target's score on the real image plus what the steps added."""
    return _rise(t, "x")


@worked("fooling_image", "pred")
def prediction(t, k, pos) -> Worked:
    """argmax_c S_c(x_k) on the real image and at the last step, beside the target."""
    pred = to_numpy(t.pred[:, 0])
    result = float(pred[-1])
    latex = (rf"\text{{target }} t = {class_of(t)}:\ \arg\max_c S_c(x_0) = {int(pred[0])} \ \rightarrow\ "
             rf"\arg\max_c S_c(x_{{{len(pred) - 1}}}) = {num(result)}")
    return Worked(latex, result, result)


@worked("fooling_image", "image")
def fooling(t, k, pos) -> Worked:
    """x' = x + sum_k eta g_k / ||g_k|| at the pixel changed most: the real pixel plus the steps' sum."""
    delta, final = to_numpy(t.delta[0]).astype(np.float64), to_numpy(t.image[0]).astype(np.float64)
    ch, i, j = _changed(delta, pos)
    x, where = final[ch, i, j] - delta[ch, i, j], f"{ch},{i},{j}"
    result = x + delta[ch, i, j]
    latex = _signs(rf"x'_{{{where}}} = x_{{{where}}} + \sum_k \eta\, \frac{{g_{{k,{where}}}}}{{\lVert g_k \rVert}} = "
                   rf"{num(x)} + {num(delta[ch, i, j])} = {num(result)}")
    return Worked(latex, result, float(final[ch, i, j]))


@worked("fooling_image", "delta")
def delta(t, k, pos) -> Worked:
    """x' - x at the pixel changed most: the fooling image's pixel minus the real one."""
    d, final = to_numpy(t.delta[0]).astype(np.float64), to_numpy(t.image[0]).astype(np.float64)
    ch, i, j = _changed(d, pos)
    x, where = final[ch, i, j] - d[ch, i, j], f"{ch},{i},{j}"
    result = final[ch, i, j] - x
    latex = _signs(rf"(x' - x)_{{{where}}} = {num(final[ch, i, j])} - {num(x)} = {num(result)}")
    return Worked(latex, result, float(d[ch, i, j]))


@worked("fooling_image", "fooled")
def fooled(t, k, pos) -> Worked:
    """[argmax_c S_c(x') = t]: 1 when the last prediction is the target."""
    pred, c = int(t.pred[-1, 0]), int(t.meta["target"][0])
    result = float(pred == c)
    latex = rf"\left[\arg\max_c S_c(x') = t\right] = [{pred} = {c}] = {num(result)}"
    return Worked(latex, result, float(t.fooled[0]))
