"""Is the map faithful to the model? Change the pixels it ranks first and watch the class score.

* deletion and insertion curves (Petsiuk, Das & Saenko, "RISE", BMVC 2018);
* Average Drop % and Increase in Confidence (Chattopadhay et al., "Grad-CAM++", WACV 2018);
* region perturbation, most relevant first, and AOPC (Samek et al., "Evaluating the visualization of what
  a deep neural network has learned", IEEE TNNLS 2017);
* faithfulness as rank correlation with occlusion (Selvaraju et al., "Grad-CAM", ICCV 2017, sec. 5.3).

Every function builds its perturbed images ``batch_size`` at a time and scores each chunk with one
forward pass (no gradients). Scores are the softmax probability of the class (``output="softmax"``) or
its pre-softmax score (``output="logit"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..checks import as_count, as_flag, as_number, as_range, as_seed
from ..inputs import MAX_SIGMA, as_fill, check_batch, gaussian_blur, where_fast
from ._common import as_maps, as_tensor, batched_scores, check_output, minmax, resolve_target, upsample_to
from .similarity import spearman

#: The largest Gaussian blur (std, px) accepted: a blur far wider than any image is a typo.


def auc(scores, fraction=None) -> torch.Tensor:
    """Area under each curve by the trapezoid rule, ``(B,)`` (or a scalar tensor for one curve).

    ``AUC = sum_k (f_{k+1} - f_k) (s_k + s_{k+1}) / 2`` over the x values ``fraction`` (default: evenly
    spaced in [0, 1]). A straight line from 0 to 1 has AUC 0.5; a constant 1 has AUC 1.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    scores = _curve(scores, "scores", "a curve (S,) or curves (B,S)")
    if scores.dim() not in (1, 2) or scores.shape[-1] < 2:
        raise ValueError(f"scores must be a curve (S,) or curves (B,S) with S >= 2 points, got {tuple(scores.shape)}")
    S = scores.shape[-1]
    fraction = torch.linspace(0, 1, S, dtype=torch.float64) if fraction is None else _curve(
        fraction, "fraction", f"x values ({S},)")
    if fraction.shape != (S,):
        raise ValueError(f"fraction must have one x value per point, shape ({S},), got {tuple(fraction.shape)}")
    if (fraction.diff() < 0).any():
        raise ValueError("fraction must be non-decreasing")
    return torch.trapezoid(scores, fraction, dim=-1)


def _curve(values, name: str, what: str) -> torch.Tensor:
    """``values`` (a sequence, array or tensor of finite numbers) as a float64 tensor."""
    values = as_tensor(values, name, f"{what} (a tensor, array or list)", lists=True).detach().cpu().double()
    if not torch.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return values


def _pixel_rank(maps: torch.Tensor) -> torch.Tensor:
    """``rank[b, p]``: the position of pixel p when image b's pixels are sorted by decreasing map value
    (ties keep raster order: a stable sort)."""
    flat = maps.flatten(1)
    order = torch.argsort(-flat, dim=1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return rank


def _mix(image_of_row: torch.Tensor, changed: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Perturbed images: row r is ``old[b]`` with its ``changed[r]`` pixels taken from ``new[b]``, where
    ``b = image_of_row[r]``. The rows of one image are consecutive; each run is written with one
    `where_fast` into a channels-last batch (no gathered copies of the images)."""
    out = torch.empty((len(image_of_row), *old.shape[1:]), dtype=old.dtype, device=old.device,
                      memory_format=torch.channels_last)
    images, runs = torch.unique_consecutive(image_of_row, return_counts=True)
    r = 0
    for b, n in zip(images.tolist(), runs.tolist()):
        where_fast(changed[r:r + n], new[b], old[b], out=out[r:r + n])
        r += n
    return out


def _stepwise_scores(model, classes, new, old, n_steps: int, changed, desc: str, output: str, batch_size: int,
                     progress: bool, logits) -> torch.Tensor:
    """The class score of every image b after every step k = 0..n_steps-1, ``(B, n_steps)`` float64: the
    image is ``old[b]`` with the pixels ``changed(b, k)`` (rows of image and step indices -> (n, H*W) bool)
    taken from ``new[b]``, built and scored ``batch_size`` at a time."""
    B, _, H, W = old.shape
    b_of = torch.arange(B, device=old.device).repeat_interleave(n_steps)   # the image of each row
    k_of = torch.arange(n_steps, device=old.device).repeat(B)              # the step of each row

    def make(lo, hi):
        b, k = b_of[lo:hi], k_of[lo:hi]
        return _mix(b, changed(b, k).view(-1, 1, H, W), new, old)

    with tqdm(total=B * n_steps, desc=desc, disable=not progress) as bar:
        scores = batched_scores(model, make, B * n_steps, classes[b_of], output, batch_size, bar, logits)
    return scores.view(B, n_steps).cpu().double()


@dataclass
class Curves:
    """Deletion or insertion curves: ``fraction`` (S+1,) of pixels changed, ``scores`` (B,S+1) the class
    score after each step, ``auc`` (B,) the area under each curve, ``classes`` (B,) the classes scored.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """

    kind: str
    fraction: torch.Tensor
    scores: torch.Tensor
    auc: torch.Tensor
    classes: torch.Tensor

    @property
    def mean_auc(self) -> float:
        return float(self.auc.mean())


def _pixel_curves(kind, model, x, maps, target, step, start, end, output, batch_size, progress, logits) -> Curves:
    B, C, H, W = x.shape
    N = H * W
    step = W if step is None else as_count(step, "step")
    batch_size, progress = as_count(batch_size, "batch_size"), as_flag(progress, "progress")
    classes = resolve_target(model, x, target, maps, logits)
    m = upsample_to(as_maps(maps, batch=B), (H, W)).to(x.device)
    rank = _pixel_rank(m)                                                    # (B,N)
    S = math.ceil(N / step)
    counts = (torch.arange(S + 1, device=x.device) * step).clamp(max=N)    # pixels changed after k steps
    scores = _stepwise_scores(model, classes, end, start, S + 1, lambda b, k: rank[b] < counts[k][:, None], kind,
                              output, batch_size, progress, logits)
    fraction = counts.cpu().double() / N
    return Curves(kind, fraction, scores, auc(scores, fraction), classes.cpu())


def deletion(model: nn.Module, x: torch.Tensor, maps, target=None, step: int | None = None, baseline=0.0,
             output: str = "softmax", batch_size: int = 256, progress: bool = False, logits=None) -> Curves:
    """Deletion curve and AUC (Petsiuk et al., RISE, BMVC 2018; lower is better).

    Sort the pixels by decreasing map value (``maps`` (B,h,w) or a Trace, upsampled to the image size if
    needed). ``x_k`` is x with its first ``min(k step, N)`` pixels (all channels) set to ``baseline``
    (0: black, as in RISE; a number or a tensor broadcastable to x), ``k = 0 .. ceil(N/step)``;
    ``scores[b,k] = p_c(x_k)`` (softmax probability of the class, ``output="logit"`` for the score).
    ``AUC = trapezoid(scores, fraction)`` with ``fraction_k = min(k step, N) / N`` in [0, 1]. A good
    map makes the probability fall fast: a small AUC. ``step`` defaults to one row (W pixels; RISE used
    224 at 224x224). ``target``: None (the Trace's classes, else the prediction), int or (B,) classes.
    ``logits``: where the class scores are in a structured output (`xai_ref.inputs.class_logits`).

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    check_batch(model, x)
    check_output(output)
    return _pixel_curves("deletion", model, x, maps, target, step, x, as_fill(baseline, "baseline", x.shape, x),
                         output, batch_size, progress, logits)


def insertion(model: nn.Module, x: torch.Tensor, maps, target=None, step: int | None = None, start=None,
              blur_sigma: float = 5.0, output: str = "softmax", batch_size: int = 256,
              progress: bool = False, logits=None) -> Curves:
    """Insertion curve and AUC (Petsiuk et al., RISE, BMVC 2018; higher is better).

    Start from a blurred copy of the image (``start=None``: a Gaussian blur of std ``blur_sigma`` px, as
    RISE; or pass ``start``, a number or a tensor broadcastable to x) and put the original pixels back in
    order of decreasing map value, ``step`` pixels at a time: ``x_k`` has the first ``min(k step, N)``
    pixels of x and the rest from ``start``. ``scores[b,k] = p_c(x_k)``,
    ``AUC = trapezoid(scores, fraction)``. A good map makes the probability rise fast: a large AUC.
    ``logits``: where the class scores are in a structured output (`xai_ref.inputs.class_logits`).

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    check_batch(model, x)
    check_output(output)
    blur_sigma = as_number(blur_sigma, "blur_sigma", 0, MAX_SIGMA)
    begin = gaussian_blur(x, blur_sigma) if start is None else as_fill(start, "start", x.shape, x)
    return _pixel_curves("insertion", model, x, maps, target, step, begin, x, output, batch_size, progress, logits)


@dataclass
class Confidence:
    """Result of `average_drop`: per image ``Y`` (B,) the score on the image, ``O`` (B,) on the
    explanation map, ``drop`` (B,) = max(0, Y - O) / Y, ``increase`` (B,) bool = Y < O; and the paper's
    ``average_drop`` and ``increase_in_confidence``, both in %.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """

    Y: torch.Tensor
    O: torch.Tensor  # noqa: E741
    drop: torch.Tensor
    increase: torch.Tensor
    average_drop: float
    increase_in_confidence: float


def explanation_images(x: torch.Tensor, maps) -> torch.Tensor:
    """``E = x ⊙ norm(up(M))``: the image masked by its map, upsampled bilinearly to the image size and
    min-max normalised to [0, 1] per image (a constant map gives an all-zero E).

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    m = upsample_to(as_maps(maps, batch=x.shape[0]), tuple(x.shape[2:])).to(x.device, x.dtype)
    return x * minmax(m)[:, None]


def average_drop(model: nn.Module, x: torch.Tensor, maps, target=None, batch_size: int = 256,
                 logits=None) -> Confidence:
    """Average Drop % and Increase in Confidence (Chattopadhay et al., Grad-CAM++, WACV 2018, sec. 5.1).

    With ``E^c = x ⊙ norm(up(L^c))`` (`explanation_images`), ``Y^c_i`` the softmax score of class c on
    image i and ``O^c_i`` on its explanation map:

    ``Average Drop % = 100/N sum_i max(0, Y^c_i - O^c_i) / Y^c_i``   (lower is better)

    ``% Increase in Confidence = 100/N sum_i 1[Y^c_i < O^c_i]``       (higher is better)

    Scores are softmax probabilities (the ratio needs ``Y > 0``). ``target``: None (the Trace's classes,
    else the prediction), int or (B,) classes. ``logits``: where the class scores are in a structured output.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    check_batch(model, x)
    batch_size = as_count(batch_size, "batch_size")
    classes = resolve_target(model, x, target, maps, logits)
    E = explanation_images(x, maps)
    Y = batched_scores(model, lambda i, j: x[i:j], len(x), classes, "softmax", batch_size, logits=logits)
    O = batched_scores(model, lambda i, j: E[i:j], len(x), classes, "softmax", batch_size, logits=logits)  # noqa: E741
    Y, O = Y.cpu().double(), O.cpu().double()  # noqa: E741
    drop = torch.where(Y > 0, (Y - O).clamp(min=0) / Y.clamp(min=torch.finfo(Y.dtype).tiny), 0.0)
    increase = Y < O
    return Confidence(Y, O, drop, increase, 100 * float(drop.mean()), 100 * float(increase.double().mean()))


@dataclass
class MoRF:
    """Result of `region_perturbation`: ``scores`` (B,L+1) the class score after k = 0..L regions are
    perturbed, ``drop`` (B,L+1) = scores[:, :1] - scores, ``aopc`` (B,), ``classes`` (B,), and ``order``
    (B,R) the regions (row-major index on the grid) from most to least relevant.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """

    scores: torch.Tensor
    drop: torch.Tensor
    aopc: torch.Tensor
    classes: torch.Tensor
    order: torch.Tensor

    @property
    def mean_aopc(self) -> float:
        return float(self.aopc.mean())


def region_perturbation(model: nn.Module, x: torch.Tensor, maps, target=None, region: int = 4,
                        steps: int | None = 100, value_range=(0.0, 1.0), seed: int = 0,
                        output: str = "softmax", batch_size: int = 256, progress: bool = False, logits=None) -> MoRF:
    """Region perturbation, most relevant first, and AOPC (Samek et al., IEEE TNNLS 2017, sec. III).

    Tile the image into non-overlapping ``region`` x ``region`` squares (edge squares may be smaller; the
    paper perturbs a 9x9 neighbourhood around each location in the order of the map's values, a fixed
    grid is the usual simplification) and give each the summed map
    value inside it. ``x^(0) = x``; ``x^(k)`` is ``x^(k-1)`` with the k-th most relevant square replaced
    by uniform noise in ``value_range`` (seeded by ``seed``: the same noise for every method, so the
    comparison is fair). With ``f`` the class score (softmax or logit), ``L = steps`` (100 in the paper;
    None: every region):

    ``AOPC = 1/(L+1) sum_{k=0}^{L} (f(x^(0)) - f(x^(k)))``   (per image; higher = more faithful).
    ``logits``: where the class scores are in a structured output (`xai_ref.inputs.class_logits`).

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    check_batch(model, x)
    check_output(output)
    B, C, H, W = x.shape
    region = as_count(region, "region")
    if region > min(H, W):
        raise ValueError(f"region {region} is larger than the image {(H, W)}")
    steps = None if steps is None else as_count(steps, "steps")
    batch_size, progress = as_count(batch_size, "batch_size"), as_flag(progress, "progress")
    lo, hi = as_range(value_range, "value_range")
    seed = as_seed(seed)
    classes = resolve_target(model, x, target, maps, logits)
    m = upsample_to(as_maps(maps, batch=B), (H, W)).to(x.device, x.dtype)
    relevance = F.avg_pool2d(m[:, None], region, ceil_mode=True, divisor_override=1)[:, 0]  # (B,gh,gw) sums
    gh, gw = relevance.shape[1:]
    R = gh * gw
    L = R if steps is None else min(steps, R)
    order = torch.argsort(-relevance.flatten(1), dim=1, stable=True)       # (B,R) most relevant first
    region_rank = torch.empty_like(order)
    region_rank.scatter_(1, order, torch.arange(R, device=x.device).expand_as(order))
    cell = ((torch.arange(H, device=x.device) // region)[:, None] * gw
            + (torch.arange(W, device=x.device) // region)[None, :]).flatten()   # (N,) region of each pixel
    pixel_rank = region_rank[:, cell]                                       # (B,N)
    gen = torch.Generator().manual_seed(seed)
    noise = (lo + (hi - lo) * torch.rand(x.shape, generator=gen, dtype=x.dtype)).to(x.device)
    scores = _stepwise_scores(model, classes, noise, x, L + 1, lambda b, k: pixel_rank[b] < k[:, None], "MoRF",
                              output, batch_size, progress, logits)
    drop = scores[:, :1] - scores
    return MoRF(scores, drop, drop.mean(1), classes.cpu(), order.cpu())


def occlusion_faithfulness(model: nn.Module, x: torch.Tensor, maps, target=None, occlusion_maps=None,
                           window: int = 8, stride: int = 4, baseline=0.0, batch_size: int = 256,
                           progress: bool = False, logits=None) -> torch.Tensor:
    """Faithfulness as in Grad-CAM (Selvaraju et al., ICCV 2017, sec. 5.3): the Spearman rank correlation
    of each map with the occlusion map of the same class, ``(B,)``.

    ``rho_b = spearman(M_b, O_b)`` over all pixels, ``O`` = `xai_ref.occlusion` (a ``window`` square of
    ``baseline``, moved by ``stride``: the mean score drop of the windows covering each pixel). Pass
    ``occlusion_maps`` (B,H,W) to reuse ones already computed. Higher = the map ranks pixels the way the
    model's own sensitivity to occluding them does. ``logits``: where the class scores are in a
    structured output (`xai_ref.inputs.class_logits`).

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    from ..occlusion import occlusion

    check_batch(model, x)
    B, _, H, W = x.shape
    m = upsample_to(as_maps(maps, batch=B), (H, W))
    if occlusion_maps is None:
        classes = resolve_target(model, x, target, maps, logits)
        occlusion_maps = occlusion(model, x, classes, window=window, stride=stride, baseline=baseline,
                                   batch_size=batch_size, progress=progress, logits=logits).map
    o = as_maps(occlusion_maps, "occlusion_maps", batch=B)
    if o.shape != m.shape:
        raise ValueError(f"occlusion_maps must have the image size {(B, H, W)}, got {tuple(o.shape)}")
    return spearman(m.cpu(), o.cpu())
