"""Assignment 5 checks: evaluating maps with the pointing game and the deletion curve.

The references are written here in NumPy: `xai_ref.metrics` computes the same metrics in PyTorch on
real models (with more options: per-class accuracy, constant maps, a step size), not on plain arrays and
a score function. Each reference takes parameters whose other values give the typical wrong
implementations (`Mistake` s) that the checks recognise by name.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .runner import Mistake, register, run


# --------------------------------------------------------------------------------------------------
# pointing_game
# --------------------------------------------------------------------------------------------------


def _point(maps, masks, tolerance, locate="argmax", shape="disc"):
    """Hits (N,) bool: does a mask pixel lie within `tolerance` of the point the map picks?

    The reference picks the maximum (locate="argmax") and measures a Euclidean distance (shape="disc");
    the other values are mistakes: "argmin", "transposed" (rows and columns swapped), "square".
    """
    N, H, W = maps.shape
    hits = np.zeros(N, dtype=bool)
    for n in range(N):
        if locate == "argmin":
            r, c = np.unravel_index(np.argmin(maps[n]), (H, W))
        elif locate == "transposed":                 # unravel_index with (W, H): rows and columns swapped
            r, c = np.unravel_index(np.argmax(maps[n]), (W, H))
        else:
            r, c = np.unravel_index(np.argmax(maps[n]), (H, W))
        rr, cc = np.nonzero(masks[n])
        if shape == "disc":
            near = (rr - r) ** 2 + (cc - c) ** 2 <= tolerance ** 2
        else:
            near = (np.abs(rr - r) <= tolerance) & (np.abs(cc - c) <= tolerance)
        hits[n] = bool(near.any())
    return hits


def _pointing_ref(maps, masks, tolerance):
    """The reference: the first maximum of each map, a hit within Euclidean distance `tolerance`."""
    return _point(maps, masks, tolerance)


_POINTING_MISTAKES = register("pointing_game", _pointing_ref, [
    Mistake("argmin instead of argmax", "the map points at its MAXIMUM (np.argmax), not its minimum.",
            lambda m, k, t: _point(m, k, t, locate="argmin")),
    Mistake("tolerance ignored",
            "a point within `tolerance` pixels (Euclidean distance) of the object also counts as a hit.",
            lambda m, k, t: _point(m, k, 0) if t else None),
    Mistake("rows and columns swapped",
            "np.argmax gives a flat index: row = i // W, col = i % W (or use np.unravel_index).",
            lambda m, k, t: _point(m, k, t, locate="transposed")),
    Mistake("square instead of disc",
            "the tolerance is a distance: count pixels with (row - r)^2 + (col - c)^2 <= tolerance^2 (a disc), "
            "not a square window.",
            lambda m, k, t: _point(m, k, t, shape="square")),
])


def pointing_game(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(maps, masks, tolerance) -> hits``: the pointing game (Zhang et al. 2016).

    maps: (N, H, W) saliency maps; masks: (N, H, W) bool object masks; tolerance: pixels. A hit when a
    pixel of the mask lies within Euclidean distance ``tolerance`` of the map's maximum (the first
    maximum in row-major order). hits: (N,) bool.
    """
    rng = np.random.default_rng(seed)
    N, H, W = 6, 8, 12
    maps = rng.standard_normal((N, H, W))
    masks = np.zeros((N, H, W), dtype=bool)
    for n in range(N):
        r, c = np.unravel_index(np.argmax(maps[n]), (H, W))
        dr, dc = [(0, 0), (0, 2), (2, 2), (3, 0), (6, 6), (1, 1)][n]
        rr, cc = (r + dr) % H, (c + dc) % W
        masks[n, rr, cc] = True
    masks[4, 0, 0] = True
    big = rng.standard_normal((3, 5, 7))
    big_masks = rng.random((3, 5, 7)) < 0.15
    cases = [("hand-made objects near the maximum, tolerance 0", (maps, masks, 0)),
             ("hand-made objects near the maximum, tolerance 2", (maps, masks, 2)),
             ("random maps (3, 5, 7), random masks, tolerance 1", (big, big_masks, 1))]
    run("pointing_game", fn, cases, _pointing_ref, _POINTING_MISTAKES, outputs=("hits",), axes=[("image",)],
        exact=("hits",), arg_names=("maps", "masks", "tolerance"), verbose=verbose,
        hint="r, c = np.unravel_index(np.argmax(map), map.shape); hit if any mask pixel has "
             "(row - r)^2 + (col - c)^2 <= tolerance^2.")


# --------------------------------------------------------------------------------------------------
# deletion_curve
# --------------------------------------------------------------------------------------------------


def _deletion_ref(score_fn, x, M, n_steps, order="desc", mode="delete", trapezoid=True):
    """Scores as the most salient pixels are set to 0 (all channels), in n_steps equal chunks, and the
    area under that curve: (curve, auc).

    The other values of the parameters are mistakes: order="asc" (least salient first), mode="insert"
    (pixels put into a blank image), trapezoid=False (the plain mean of the scores).
    """
    N, C, H, W = x.shape
    HW = H * W
    ranks = np.argsort(-M.reshape(N, -1) if order == "desc" else M.reshape(N, -1), axis=1, kind="stable")
    scores = []
    for s in range(n_steps + 1):
        k = (s * HW) // n_steps
        keep = np.ones((N, HW), dtype=bool)
        np.put_along_axis(keep, ranks[:, :k], False, axis=1)
        keep = keep.reshape(N, 1, H, W)
        if mode == "delete":
            img = np.where(keep, x, 0.0)
        else:
            img = np.where(keep, 0.0, x)
        scores.append(np.asarray(score_fn(img), dtype=np.float64))
    curve = np.stack(scores, axis=1)                          # (N, n_steps + 1)
    if trapezoid:
        auc = (curve[:, :-1] + curve[:, 1:]).sum(1) / (2 * n_steps)
    else:
        auc = curve.mean(1)
    return curve, auc


def _linear_score(seed):
    """A score function that is linear in the image: sum of the pixels times seeded random weights."""
    w = np.random.default_rng(seed + 100).standard_normal((3, 6, 6))

    def score(img):
        return (img * w).sum(axis=(1, 2, 3))
    return score


_DELETION_MISTAKES = register("deletion_curve", _deletion_ref, [
    Mistake("least salient first",
            "delete the MOST salient pixels first (sort the map in decreasing order).",
            lambda f, x, M, n: _deletion_ref(f, x, M, n, order="asc")),
    Mistake("insertion instead of deletion",
            "deletion starts from the image and removes pixels (sets them to 0); you started from the blank "
            "image and inserted them.",
            lambda f, x, M, n: _deletion_ref(f, x, M, n, mode="insert")),
    Mistake("mean instead of trapezoid",
            "the area under the curve uses the trapezoid rule over x in [0, 1]: sum of (s_k + s_{k+1}) / 2 "
            "times 1 / n_steps; you took the plain mean of the scores.",
            lambda f, x, M, n: _deletion_ref(f, x, M, n, trapezoid=False)),
])


def deletion_curve(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(score_fn, x, M, n_steps) -> (curve, auc)``: the deletion metric (Petsiuk et al. 2018).

    x: (N, C, H, W); M: (N, H, W) saliency; score_fn: images (N, C, H, W) -> scores (N,). Step s = 0 ..
    n_steps sets the k = (s * H * W) // n_steps most salient pixels (all channels; ties in the map keep
    the row-major order, a stable sort) to 0 and records the score: curve (N, n_steps + 1); auc (N,)
    by the trapezoid rule on [0, 1].
    """
    rng = np.random.default_rng(seed)
    x = rng.random((2, 3, 6, 6))
    M = rng.random((2, 6, 6))
    cases = [("linear score, x (2, 3, 6, 6), 4 steps", (_linear_score(seed), x, M, 4)),
             ("linear score, x (2, 3, 6, 6), 36 steps (one pixel each)", (_linear_score(seed), x, M, 36))]
    run("deletion_curve", fn, cases, _deletion_ref, _DELETION_MISTAKES, outputs=("curve", "auc"),
        axes=[("image", "step"), ("image",)], arg_names=("score_fn", "x", "M", "n_steps"), verbose=verbose,
        hint="order = np.argsort(-M.reshape(N, -1), axis=1, kind='stable'); at step s zero the first "
             "(s * H * W) // n_steps pixels of that order in every channel, then call score_fn.")
