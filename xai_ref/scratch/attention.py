"""Activation-based attention maps and attention transfer from scratch (Zagoruyko & Komodakis, ICLR 2017).

The NumPy twin of `xai_ref.attention`. An attention map collapses a layer's activations ``A`` (B,C,h,w)
over channels into one spatial map; attention transfer asks a student's normalised maps to match a
teacher's at matching depths.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..checks import MAX_P, as_choice, as_number
from ..trace import Trace

KINDS = ("sum", "max")


def attention_map(A: np.ndarray, p: float = 2, kind: str = "sum") -> np.ndarray:
    """``Q = sum_c |A_c|^p`` (kind="sum") or ``max_c |A_c|^p`` (kind="max"): (B,C,h,w) -> (B,h,w).

    Lesson: ``lessons/06_attention_transfer.ipynb``.
    """
    if not isinstance(A, np.ndarray) or A.ndim != 4:
        raise ValueError(f"A must be activations (B,C,h,w), got {np.shape(A) if isinstance(A, np.ndarray) else type(A).__name__}")
    as_number(p, "p (the paper uses 1, 2 or 4)", 0, MAX_P, low_open=True)
    as_choice(kind, "kind", KINDS)
    Q = np.abs(A) ** p
    return Q.sum(1) if kind == "sum" else Q.max(1)


def normalised_attention(A: np.ndarray, p: float = 2, kind: str = "sum") -> np.ndarray:
    """``q = vec(Q) / ||vec(Q)||_2`` (B, h*w): the attention map flattened and scaled to unit length.

    Lesson: ``lessons/06_attention_transfer.ipynb``.
    """
    Q = attention_map(A, p, kind)
    Q = Q.reshape(len(Q), -1)
    return Q / np.maximum(np.sqrt((Q**2).sum(1, keepdims=True)), 1e-12)


def _pairs(student, teacher) -> list[tuple[np.ndarray, np.ndarray]]:
    student = [student] if isinstance(student, np.ndarray) else list(student)
    teacher = [teacher] if isinstance(teacher, np.ndarray) else list(teacher)
    if len(student) != len(teacher):
        raise ValueError(f"got {len(student)} student and {len(teacher)} teacher activations; pass one per "
                         "matching depth (e.g. the output of each group)")
    for j, (S, T) in enumerate(zip(student, teacher)):
        if S.ndim != 4 or T.ndim != 4 or S.shape[0] != T.shape[0] or S.shape[2:] != T.shape[2:]:
            raise ValueError(f"pair {j}: student {S.shape} and teacher {T.shape} must be (B,C,h,w) "
                             "with the same batch and spatial size (channels may differ); interpolate one first")
    return list(zip(student, teacher))


def at_loss(student: Sequence[np.ndarray] | np.ndarray, teacher: Sequence[np.ndarray] | np.ndarray,
            p: float = 2) -> float:
    """The attention-transfer loss, summed over the pairs j of matching layers:

        L_AT = sum_j mean_{b,i} (q_S^j - q_T^j)_{b,i}^2,      q = vec(Q) / ||vec(Q)||_2,  Q = sum_c |A_c|^p

    As in the authors' reference code (the paper writes beta/2 sum_j ||q_S^j - q_T^j||_p; multiply by
    beta/2, beta = 1000 in the paper, when adding it to a training loss).

    Lesson: ``lessons/06_attention_transfer.ipynb``.
    """
    return float(sum(((normalised_attention(S, p) - normalised_attention(T, p)) ** 2).mean()
                     for S, T in _pairs(student, teacher)))


def attention_transfer(student: np.ndarray, teacher: np.ndarray, p: float = 2, kind: str = "sum") -> Trace:
    """The attention-transfer equation for one pair of layers, term by term:
    ``A_S``, ``A_T`` -> ``Q_S``, ``Q_T`` (B,h,w) -> ``q_S``, ``q_T`` (B,h*w) -> ``loss``.

    Lesson: ``lessons/06_attention_transfer.ipynb``.
    """
    (S, T), = _pairs(student, teacher)
    t = Trace("attention_transfer", meta={"target": None, "p": p, "kind": kind})
    t.add("A_S", S)
    t.add("A_T", T)
    agg = r"\sum_c" if kind == "sum" else r"\max_c"
    t.add("Q_S", attention_map(S, p, kind), agg=agg, p=p)
    t.add("Q_T", attention_map(T, p, kind), agg=agg, p=p)
    qS = t.add("q_S", normalised_attention(S, p, kind))
    qT = t.add("q_T", normalised_attention(T, p, kind))
    t.add("loss", ((qS - qT) ** 2).mean())
    return t
