"""Worked equations of attention transfer (Zagoruyko & Komodakis 2017): the activations, the attention maps
Q = sum_c |A_c|^p (or max_c), their unit-length vectors q and the AT loss."""

from __future__ import annotations

import numpy as np

from widgets.render import to_numpy

from . import Worked, num, strongest, sum_of, worked


def _activation(t, who: str, k: int, pos) -> Worked:
    """(A_who)_{k,ij}: channel k of the layer's activations at (i, j) (default: where Q_who is largest)."""
    A = to_numpy(t[f"A_{who}"][0])
    k = min(k, len(A) - 1)
    i, j = pos if pos is not None else strongest(to_numpy(t[f"Q_{who}"][0]))
    result, shape = float(A[k, i, j]), r" \times ".join(map(str, A.shape))
    latex = rf"A_{who} \in \mathbb{{R}}^{{{shape}}}:\ (A_{who})_{{{k},{i},{j}}} = {num(result)}"
    return Worked(latex, result, result)


@worked("attention_transfer", "A_S")
def student_activation(t, k, pos) -> Worked:
    """(A_S)_{k,ij}: the student's activation (`_activation`)."""
    return _activation(t, "S", k, pos)


@worked("attention_transfer", "A_T")
def teacher_activation(t, k, pos) -> Worked:
    """(A_T)_{k,ij}: the teacher's activation (`_activation`)."""
    return _activation(t, "T", k, pos)


def _attention(t, who: str, pos) -> Worked:
    """Q_who(i,j) = sum_c |A_{who,c}(i,j)|^p (or max_c) at (i, j) (default: where Q is largest): the three
    largest channel terms written out, the other channels' sum (or their being smaller)."""
    A, Q = to_numpy(t[f"A_{who}"][0]).astype(np.float64), to_numpy(t[f"Q_{who}"][0])
    i, j = pos if pos is not None else strongest(Q)
    p, total = t.meta["p"], t.meta["kind"] == "sum"
    terms = np.abs(A[:, i, j]) ** p
    top = np.argsort(-terms, kind="stable")[:3]
    others = len(terms) - len(top)
    powers = (", " if not total else " + ").join(rf"|{num(A[c, i, j])}|^{{{num(p)}}}" for c in top)
    shown = [float(terms[c]) for c in top]
    over = r"\sum_c" if total else r"\max_c"
    head = rf"Q_{who}({i},{j}) = {over} |A_{{{who},c}}({i},{j})|^{{{num(p)}}}"
    if total:
        rest = float(np.delete(terms, top).sum())
        result = sum(shown) + rest
        more = rf" + \underbrace{{{num(rest)}}}_{{\text{{other {others} channels}}}}" if others else ""
        latex = rf"{head} = {powers}{more} = {sum_of(shown + [rest] if others else shown)} = {num(result)}"
    else:
        result = max(shown)
        more = rf", \underbrace{{\dots}}_{{\text{{other {others} channels, no larger}}}}" if others else ""
        latex = rf"{head} = \max({powers}{more}) = \max({', '.join(num(v) for v in shown)}) = {num(result)}"
    return Worked(latex.replace("+ -", "- "), result, float(Q[i, j]))


for _who in ("S", "T"):      # Q_S and Q_T: the same equation for the student and the teacher
    worked("attention_transfer", f"Q_{_who}")(lambda t, k, pos, who=_who: _attention(t, who, pos))


def _squared(values) -> str:
    """``(a^2 + b^2 + c^2 + \\dots + z^2)``: the first three values squared, dots, the last one."""
    parts = [rf"{num(v)}^2" for v in values[:3]] + ([r"\dots"] if len(values) > 4 else []) + \
        ([rf"{num(values[-1])}^2"] if len(values) > 3 else [])
    return "(" + " + ".join(parts) + ")"


def _unit(t, who: str, k: int) -> Worked:
    """q_who[n] = Q_who(i,j) / ||vec(Q_who)||_2 at the position n = i w + j highlighted in its bar chart
    (the slider k): the map's value there over the root of the sum of its squares."""
    Q = to_numpy(t[f"Q_{who}"][0]).astype(np.float64)
    n = min(k, Q.size - 1)
    i, j = divmod(n, Q.shape[1])
    squares = Q.reshape(-1) ** 2
    norm = max(float(np.sqrt(squares.sum())), 1e-12)
    result = Q[i, j] / norm
    latex = (rf"q_{{{who},{n}}} = \frac{{Q_{who}({i},{j})}}{{\lVert \mathrm{{vec}}(Q_{who}) \rVert_2}} = "
             rf"\frac{{{num(Q[i, j])}}}{{\sqrt{{{_squared(Q.reshape(-1))}}}}} = "
             rf"\frac{{{num(Q[i, j])}}}{{{num(norm)}}} = "
             rf"{num(result)}")
    return Worked(latex, result, float(to_numpy(t[f"q_{who}"][0, n])))


for _who in ("S", "T"):      # q_S and q_T: each map at unit length
    worked("attention_transfer", f"q_{_who}")(lambda t, k, pos, who=_who: _unit(t, who, k))



@worked("attention_transfer", "loss")
def loss(t, k, pos) -> Worked:
    """L_AT = 1/(B hw) sum_{b,i} (q_S - q_T)^2_{b,i}: the squared differences, their sum, the mean."""
    diff = to_numpy(t.q_S).astype(np.float64) - to_numpy(t.q_T).astype(np.float64)
    squares = diff.reshape(-1) ** 2
    B, hw = diff.shape
    result = squares.sum() / squares.size
    latex = (t.term("loss").latex + " = "
             + rf"\frac{{1}}{{{B} \cdot {hw}}}{sum_of(squares)} = \frac{{1}}{{{B * hw}}}({num(squares.sum())})"
             + rf" = {num(result)}")
    return Worked(latex, result, float(to_numpy(t.loss)))
