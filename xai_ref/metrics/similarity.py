"""How similar are two explanation maps? Spearman rank correlation and SSIM, one number per image.

Used by the sanity checks (Adebayo et al., NeurIPS 2018: "we use Spearman rank correlation with and
without absolute value, and the structural similarity index (SSIM)") and by the robustness metrics.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata
from skimage.metrics import structural_similarity

from ..checks import as_count, as_flag
from ._common import as_masks, as_maps


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (0 where a row is constant)."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    num = (a * b).sum(1)
    return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def _pair_of_maps(a, b) -> tuple[torch.Tensor, torch.Tensor]:
    """``a`` and ``b`` as maps (B,H,W) of the same shape."""
    a, b = as_maps(a, "a"), as_maps(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return a, b


def spearman(a, b, mask=None, absolute: bool = False) -> torch.Tensor:
    """Spearman rank correlation of each pair of maps, ``(B,)`` float64.

    ``rho = corr(rank(a), rank(b))``: the Pearson correlation of the pixels' ranks (ties get their
    average rank, as ``scipy.stats.spearmanr``). For untied ranks this is
    ``1 - 6 sum_i d_i^2 / (n (n^2 - 1))`` with ``d_i`` the rank difference of pixel i. 1 for maps that
    order the pixels the same way, -1 for reversed orders. ``absolute=True`` compares ``|a|`` and ``|b|``
    (Adebayo et al. report both). ``mask`` (B,H,W) bool restricts each image to its valid pixels.

    A constant map (or a mask with fewer than two pixels) has no ranking to share, so its correlation,
    which is 0/0, is defined here as 0.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    a, b = _pair_of_maps(a, b)
    if as_flag(absolute, "absolute"):
        a, b = a.abs(), b.abs()
    A, Bm = a.flatten(1).double().cpu().numpy(), b.flatten(1).double().cpu().numpy()
    if mask is None:
        rho = _pearson_rows(rankdata(A, axis=1), rankdata(Bm, axis=1))
    else:
        m = as_masks(mask, tuple(a.shape), "mask").flatten(1).cpu().numpy()
        rho = np.array([_pearson_rows(rankdata(A[i, m[i]])[None], rankdata(Bm[i, m[i]])[None])[0]
                        if m[i].sum() >= 2 else 0.0 for i in range(len(A))])
    return torch.from_numpy(np.asarray(rho, dtype=np.float64))


def normalise01(maps: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Each map rescaled to [0, 1] by its min and max (over ``mask`` when given, 0 outside it); a
    constant map becomes 0.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    maps = as_maps(maps).double()
    mask = torch.ones_like(maps, dtype=torch.bool) if mask is None else as_masks(mask, tuple(maps.shape), "mask")
    big = torch.finfo(maps.dtype).max
    lo = torch.where(mask, maps, big).flatten(1).min(1).values[:, None, None]
    hi = torch.where(mask, maps, -big).flatten(1).max(1).values[:, None, None]
    span = hi - lo
    out = torch.where(span > 0, (maps - lo) / torch.where(span > 0, span, 1), torch.zeros((), dtype=maps.dtype))
    return torch.where(mask, out, torch.zeros((), dtype=maps.dtype))


def ssim(a, b, mask=None, win_size: int = 7) -> torch.Tensor:
    """Structural similarity of each pair of maps, ``(B,)`` float64 (Wang et al., IEEE TIP 2004).

    Both maps are first rescaled to [0, 1] (`normalise01`), then
    ``SSIM = mean over windows of (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2))``
    with ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, ``L = data_range = 1``, ``win_size`` x ``win_size``
    uniform windows (``skimage.metrics.structural_similarity``). 1 for identical maps. With ``mask``
    (B,H,W) bool, each map is normalised over its valid pixels and the local SSIM values are averaged
    over those pixels only.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    a, b = _pair_of_maps(a, b)
    side = min(a.shape[1:])
    win_size = as_count(win_size, "win_size", 3)
    if win_size % 2 == 0 or win_size > side:
        raise ValueError(f"win_size must be odd and at most the maps' smaller side {side}, got {win_size}"
                         + ("; the maps are too small for SSIM (at least 3x3)" if side < 3 else ""))
    m = None if mask is None else as_masks(mask, tuple(a.shape), "mask")
    A, Bn = normalise01(a, m).cpu().numpy(), normalise01(b, m).cpu().numpy()
    out = np.empty(len(A))
    for i in range(len(A)):
        if m is None:
            out[i] = structural_similarity(A[i], Bn[i], data_range=1.0, win_size=win_size)
        else:
            valid = m[i].cpu().numpy()
            _, local = structural_similarity(A[i], Bn[i], data_range=1.0, win_size=win_size, full=True)
            out[i] = local[valid].mean() if valid.any() else 0.0
    return torch.from_numpy(out)
