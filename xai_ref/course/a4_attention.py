"""Assignment 4 checks: attention maps, their normalisation, and the attention-transfer loss.

The references are `xai_ref.scratch`'s attention functions (`attention_map`, `normalised_attention`,
`at_loss`); the functions here build the typical wrong implementations (`Mistake` s) that the checks
recognise by name.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..scratch import at_loss as at_loss_ref
from ..scratch import attention_map as attention_map_ref
from ..scratch import normalised_attention
from .runner import MAP_AXES, Mistake, register, run


# --------------------------------------------------------------------------------------------------
# attention_map
# --------------------------------------------------------------------------------------------------


_ATT_MISTAKES = register("attention_map", attention_map_ref, [
    Mistake("|A| instead of |A|^p",
            "Q = sum_c |A_c|^p: raise the absolute values to the power p before summing over channels "
            "(you ignored p).",
            lambda A, p: attention_map_ref(A, 1)),
    Mistake("A^p without the absolute value",
            "take the absolute value first: |A_c|^p. With p = 1 or 3, A^p keeps the sign, and negative "
            "activations would cancel positive ones.",
            lambda A, p: (A ** p).sum(axis=1) if float(p).is_integer() else None),
    Mistake("power after the sum",
            "Q = sum_c |A_c|^p: the power applies to each channel before summing, not to the sum "
            "((sum_c |A_c|)^p).",
            lambda A, p: np.abs(A).sum(axis=1) ** p),
    Mistake("mean over channels instead of sum",
            "sum over the channels (axis 1); you averaged (C times too small).",
            lambda A, p: (np.abs(A) ** p).mean(axis=1)),
    Mistake("max over channels instead of sum",
            "this map sums over the channels (the paper's F_sum^p); you took the max.",
            lambda A, p: attention_map_ref(A, p, kind="max")),
    Mistake("normalised",
            "return Q itself; normalising is the next function's job (normalise_attention).",
            lambda A, p: normalised_attention(A, p).reshape(len(A), *A.shape[2:])),
])


def attention_map(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(A, p) -> Q``: Q = sum_c |A_c|^p (Zagoruyko & Komodakis 2017).

    A: (N, C, h, w) activations (negative values too); p > 0; Q: (N, h, w).
    """
    rng = np.random.default_rng(seed)
    cases = [("random A (2, 5, 4, 4), p=2", (rng.standard_normal((2, 5, 4, 4)), 2)),
             ("random A (1, 3, 3, 5) with negative values, p=1", (rng.standard_normal((1, 3, 3, 5)), 1)),
             ("random A (2, 4, 2, 2) with negative values, p=3", (rng.standard_normal((2, 4, 2, 2)), 3)),
             ("random A (1, 6, 4, 4) >= 0, p=4", (np.abs(rng.standard_normal((1, 6, 4, 4))), 4))]
    run("attention_map", fn, cases, attention_map_ref, _ATT_MISTAKES, outputs=("Q",), axes=[MAP_AXES],
        arg_names=("A", "p"), verbose=verbose,
        hint="np.abs(A) ** p, then the sum over axis 1 (the channels).")


# --------------------------------------------------------------------------------------------------
# normalise_attention
# --------------------------------------------------------------------------------------------------


def _norm_ref(Q):
    """The reference: q = vec(Q) / max(||vec(Q)||_2, 1e-12) per image. A map Q >= 0 is the attention map
    (p = 1) of a one-channel activation equal to Q, so scratch's normalised_attention does it."""
    return normalised_attention(Q[:, None], p=1)


_NORM_MISTAKES = register("normalise_attention", _norm_ref, [
    Mistake("not normalising the attention map",
            "divide each flattened map by its L2 norm: q = vec(Q) / ||vec(Q)||_2.",
            lambda Q: Q.reshape(len(Q), -1)),
    Mistake("L1 instead of L2 norm",
            "divide by the L2 norm sqrt(sum q^2), not by the sum of the entries.",
            lambda Q: Q.reshape(len(Q), -1) / np.abs(Q.reshape(len(Q), -1)).sum(1, keepdims=True)),
    Mistake("one norm for the whole batch",
            "normalise each image's map by its own norm (sum over the h*w positions of that image only).",
            lambda Q: Q.reshape(len(Q), -1) / np.sqrt((Q ** 2).sum())),
    Mistake("divided by the squared norm", "divide by ||vec(Q)||_2 = sqrt(sum q^2), not by sum q^2.",
            lambda Q: Q.reshape(len(Q), -1) / (Q.reshape(len(Q), -1) ** 2).sum(1, keepdims=True)),
    Mistake("max instead of norm", "divide by the L2 norm, not by the largest value.",
            lambda Q: Q.reshape(len(Q), -1) / Q.reshape(len(Q), -1).max(1, keepdims=True)),
    Mistake("not flattened",
            "return vec(Q): one row of h*w numbers per image, shape (N, h*w) (use Q.reshape(len(Q), -1)).",
            lambda Q: _norm_ref(Q).reshape(Q.shape)),
])


def normalise_attention(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(Q) -> q``: q = vec(Q) / max(||vec(Q)||_2, 1e-12) per image. Q: (N, h, w) -> q: (N, h*w).

    An all-zero map gives zeros (not NaN).
    """
    rng = np.random.default_rng(seed)
    zero = np.abs(rng.standard_normal((2, 3, 3))) + 0.1
    zero[1] = 0.0
    cases = [("random Q (2, 4, 4) > 0", (np.abs(rng.standard_normal((2, 4, 4))) + 0.1,)),
             ("random Q (3, 2, 5) > 0", (np.abs(rng.standard_normal((3, 2, 5))) + 0.1,)),
             ("Q (2, 3, 3) whose second map is all zeros (a layer that is off)", (zero,))]
    run("normalise_attention", fn, cases, _norm_ref, _NORM_MISTAKES, outputs=("q",),
        axes=[("image", "position")], arg_names=("Q",), verbose=verbose,
        hint="q = Q.reshape(N, -1), then divide each row by its length sqrt(sum of squares); an all-zero "
             "map must give zeros, not NaN: divide by np.maximum(norm, 1e-12).")


# --------------------------------------------------------------------------------------------------
# at_loss
# --------------------------------------------------------------------------------------------------


def _flat_map(A, p):
    """vec(Q), Q = sum_c |A_c|^p, (N, h*w): not normalised (a mistake)."""
    return attention_map_ref(A, p).reshape(len(A), -1)


def _q_difference(A_S, A_T, p):
    """q_S - q_T, (N, h*w): the difference of the normalised maps that the loss reduces."""
    return normalised_attention(A_S, p) - normalised_attention(A_T, p)


_AT_MISTAKES = register("at_loss", at_loss_ref, [
    Mistake("not normalising the attention map",
            "normalise both maps before comparing them: q = vec(Q) / ||vec(Q)||_2 (so a network with larger "
            "activations is not penalised for their size).",
            lambda S, T, p: float(((_flat_map(S, p) - _flat_map(T, p)) ** 2).mean())),
    Mistake("sum instead of mean",
            "average the squared difference over the batch and the h*w positions (the reference code's "
            "(q_S - q_T).pow(2).mean()); you summed.",
            lambda S, T, p: float((_q_difference(S, T, p) ** 2).sum())),
    Mistake("summed over the batch",
            "average over the batch too: the loss is the mean over (image, position) of (q_S - q_T)^2.",
            lambda S, T, p: float((_q_difference(S, T, p) ** 2).mean(axis=1).sum())),
    Mistake("norm instead of mean squared difference",
            "use the mean of the squared differences (as the authors' code), not the norm ||q_S - q_T||.",
            lambda S, T, p: float(np.sqrt((_q_difference(S, T, p) ** 2).sum(axis=1)).mean())),
    Mistake("|A| instead of |A|^p",
            "build each attention map with the power p: Q = sum_c |A_c|^p.",
            lambda S, T, p: at_loss_ref(S, T, 1)),
])


def at_loss(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(A_S, A_T, p) -> loss`` (a float): the attention-transfer loss of one pair of layers.

    A_S: (N, C_S, h, w) student activations, A_T: (N, C_T, h, w) teacher activations (C_S may differ
    from C_T). loss = mean over images b and positions i of (q_S - q_T)[b, i]^2, with q the normalised
    attention maps (as in the authors' code; multiply by beta/2 when training).
    """
    rng = np.random.default_rng(seed)
    cases = [("random A_S (2, 4, 4, 4), A_T (2, 8, 4, 4), p=2",
              (rng.standard_normal((2, 4, 4, 4)), 3 * rng.standard_normal((2, 8, 4, 4)), 2)),
             ("random A_S (3, 2, 3, 3), A_T (3, 5, 3, 3), p=1",
              (rng.standard_normal((3, 2, 3, 3)), rng.standard_normal((3, 5, 3, 3)), 1))]
    run("at_loss", fn, cases, at_loss_ref, _AT_MISTAKES, outputs=("loss",), axes=[()],
        arg_names=("A_S", "A_T", "p"), verbose=verbose,
        hint="q_S = normalise_attention(attention_map(A_S, p)), the same for the teacher, then the mean of "
             "(q_S - q_T)**2.")
