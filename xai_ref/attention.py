"""Activation-based attention maps and attention transfer (Zagoruyko & Komodakis, ICLR 2017).

An attention map collapses a layer's activations ``A`` (B,C,h,w) over channels into one spatial map:
``Q = sum_c |A_c|^p`` (or ``max_c |A_c|^p``). Attention transfer trains a student so that its
normalised maps match a teacher's at matching depths.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .checks import MAX_P, as_choice, as_number
from .trace import Trace

KINDS = ("sum", "max")


def _check_activations(A, name: str) -> None:
    """``A`` must be a floating-point tensor of activations (B,C,h,w)."""
    if not isinstance(A, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of activations (B,C,h,w), got {type(A).__name__}")
    if A.dim() != 4 or 0 in A.shape:
        raise ValueError(f"{name} must be activations (B,C,h,w), got shape {tuple(A.shape)}")
    if not A.is_floating_point():
        raise TypeError(f"{name} must be floating-point activations, got dtype {A.dtype}")


def _check_p(p) -> None:
    """The exponent p of the attention map: a number in (0, MAX_P]."""
    as_number(p, "p (the paper uses 1, 2 or 4)", 0, MAX_P, low_open=True)


def attention_map(A: torch.Tensor, p: float = 2, kind: str = "sum") -> torch.Tensor:
    """``Q = sum_c |A_c|^p`` (kind="sum") or ``max_c |A_c|^p`` (kind="max"): (B,C,h,w) -> (B,h,w).

    Lesson: ``lessons/06_attention_transfer.ipynb``.
    """
    _check_activations(A, "A")
    _check_p(p)
    as_choice(kind, "kind", KINDS)
    Q = A.abs().pow(p)
    return Q.sum(1) if kind == "sum" else Q.amax(1)


def normalised_attention(A: torch.Tensor, p: float = 2, kind: str = "sum") -> torch.Tensor:
    """``q = vec(Q) / ||vec(Q)||_2`` (B, h*w): the attention map flattened and scaled to unit length.

    Lesson: ``lessons/06_attention_transfer.ipynb``.
    """
    Q = attention_map(A, p, kind).flatten(1)
    return Q / Q.norm(dim=1, keepdim=True).clamp(min=1e-12)


def _as_list(v, name: str) -> list[torch.Tensor]:
    """One tensor or a list / tuple of tensors (one per depth) as a list."""
    if isinstance(v, torch.Tensor):
        return [v]
    if not isinstance(v, (list, tuple)) or not v:
        raise TypeError(f"{name} must be activations (B,C,h,w) or a non-empty list of them (one per depth), "
                        f"got {v!r}")
    return list(v)


def _pairs(student, teacher) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Matching (student, teacher) activations, checked: the same batch and spatial size in each pair."""
    student, teacher = _as_list(student, "student"), _as_list(teacher, "teacher")
    if len(student) != len(teacher):
        raise ValueError(f"got {len(student)} student and {len(teacher)} teacher activations; pass one per "
                         "matching depth (e.g. the output of each group)")
    for j, (S, T) in enumerate(zip(student, teacher)):
        _check_activations(S, f"student (pair {j})")
        _check_activations(T, f"teacher (pair {j})")
        if S.shape[0] != T.shape[0] or S.shape[2:] != T.shape[2:]:
            raise ValueError(f"pair {j}: student {tuple(S.shape)} and teacher {tuple(T.shape)} must be (B,C,h,w) "
                             "with the same batch and spatial size (channels may differ); interpolate one first")
    return list(zip(student, teacher))


def at_loss(student: Sequence[torch.Tensor] | torch.Tensor, teacher: Sequence[torch.Tensor] | torch.Tensor,
            p: float = 2) -> torch.Tensor:
    """The attention-transfer loss, summed over the pairs j of matching layers.

    The paper (eq. 2) writes ``beta/2 * sum_j || q_S^j - q_T^j ||_p`` with ``q = vec(Q)/||vec(Q)||_2``
    and ``Q = sum_c |A_c|^p``. We follow the authors' reference code, with which the paper's numbers
    were produced: ``sum_j mean_{b,i} (q_S^j - q_T^j)^2`` — the squared difference averaged over the
    batch and the h*w positions (and the channel mean instead of the sum in Q, which the normalisation
    cancels). Multiply by ``beta/2`` (the paper uses beta = 1000) when adding it to the training loss.
    The teacher's maps are treated as constants.

    Lesson: ``lessons/06_attention_transfer.ipynb``.
    """
    _check_p(p)
    return sum(((normalised_attention(S, p) - normalised_attention(T.detach(), p)) ** 2).mean()
               for S, T in _pairs(student, teacher))


def attention_transfer(student: torch.Tensor, teacher: torch.Tensor, p: float = 2, kind: str = "sum") -> Trace:
    """The attention-transfer equation for one pair of layers, term by term (for stepping through).

    Lesson: ``lessons/06_attention_transfer.ipynb``.
    """
    pairs = _pairs(student, teacher)
    if len(pairs) != 1:
        raise ValueError(f"attention_transfer steps through one pair of layers; got {len(pairs)} student and "
                         "teacher activations (at_loss sums over several)")
    (S, T), = pairs
    _check_p(p)
    as_choice(kind, "kind", KINDS)
    t = Trace("attention_transfer", meta={"target": None, "p": p, "kind": kind})
    t.add("A_S", S.detach())
    t.add("A_T", T.detach())
    agg = r"\sum_c" if kind == "sum" else r"\max_c"
    t.add("Q_S", attention_map(S.detach(), p, kind), agg=agg, p=p)
    t.add("Q_T", attention_map(T.detach(), p, kind), agg=agg, p=p)
    qS = t.add("q_S", normalised_attention(S.detach(), p, kind))
    qT = t.add("q_T", normalised_attention(T.detach(), p, kind))
    t.add("loss", ((qS - qT) ** 2).mean())
    return t
