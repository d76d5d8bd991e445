"""Worked equations of the CAM family: GAP, CAM, Grad-CAM, Grad-CAM++, XGrad-CAM, Guided Grad-CAM."""

from __future__ import annotations

import numpy as np

from widgets.render import to_numpy

from . import Worked, num, strongest, sum_of, worked


@worked("grad_cam", "alpha")
def grad_cam_alpha(t, k, pos) -> Worked:
    """alpha^c_k = (1/Z) sum_ij dy^c/dA^k_ij: the gradients of map k, their sum, Z = h w."""
    g = to_numpy(t.dY_dA[0, k]).astype(np.float64)
    sign = -1.0 if t.meta.get("counterfactual") else 1.0
    Z = g.size
    result = sign * g.sum() / Z
    minus = "-" if sign < 0 else ""
    latex = (rf"\alpha^c_{{{k}}} = \frac{{1}}{{Z}}\sum_i\sum_j {minus}\frac{{\partial y^c}}{{\partial A^{{{k}}}_{{ij}}}}"
             rf" = {minus}\frac{{1}}{{{Z}}}{sum_of(g)} = {minus}\frac{{1}}{{{Z}}}({num(g.sum())}) = {num(result)}")
    return Worked(latex, result, float(to_numpy(t.alpha[0, k])))


@worked("grad_cam", "weighted")
def weighted(t, k, pos) -> Worked:
    """sum_k alpha_k A^k_ij at one position: the largest terms, the rest, the sum."""
    A, alpha = to_numpy(t.A[0]).astype(np.float64), to_numpy(t.alpha[0]).astype(np.float64)
    i, j = pos if pos is not None else strongest(to_numpy(t.weighted[0]))
    terms = alpha * A[:, i, j]
    top = np.argsort(-np.abs(terms), kind="stable")[:3]
    rest = float(np.delete(terms, top).sum())
    shown = " + ".join(rf"{num(alpha[q])} \cdot {num(A[q, i, j])}" for q in top).replace("+ -", "- ")
    result = float(terms[top].sum() + rest)
    latex = (rf"\sum_k \alpha^c_k A^k_{{{i},{j}}} = {shown} + \underbrace{{{num(rest)}}}_{{\text{{other "
             rf"{len(terms) - len(top)} maps}}}} = {num(result)}")
    return Worked(latex, result, float(to_numpy(t.weighted[0, i, j])))
