"""Network Dissection (Bau, Zhou, Khosla, Oliva & Torralba, CVPR 2017): name each unit of a layer by the
concept its strongest activations cover.

>>> from xai_ref import models
>>> from xai_ref.data import shapes
>>> probe = shapes.generate(200, seed=0, split="test")
>>> t = dissect(models.load("nin_shapes"), "mlpconv4_relu2", probe, progress=False)   # doctest: +SKIP
>>> t.name[58]                                    # doctest: +SKIP
Unit(k=58, name='circle', concept='circle', iou=0.2521..., T=51.82...)
>>> [u.k for u in t.name if u.name == "circle"][:4]  # doctest: +SKIP
[1, 10, 18, 21]

For a layer with K units (feature maps ``a_k``, ``h x w``) and a probe set of N images (``H x W``) with a
pixel-exact mask ``L_c`` of every concept c in every image (`xai_ref.data.concepts`), the paper computes,
in this order (the terms of the returned Trace):

1. ``A``: the activation ``a_k(x)`` of each unit at every position of every image (streamed in batches).
2. ``T``: each unit's **top-quantile threshold** ``T_k``, with ``P(a_k > T_k) = q`` over every spatial
   position of every image of the set, q = ``quantile`` (0.005 in the paper). As in the paper, ``T_k`` is a
   quantile of the activations at the layer's resolution, before any upsampling; here exactly the
   ``1 - q`` quantile with linear interpolation (NumPy's default), ``T_k = np.quantile(a_k, 1 - q)``.
3. ``M``: each map upsampled to the image, ``S_k = up(a_k)`` (bilinear, ``align_corners=False``: the
   interpolants sit at the centres of the map's cells, the paper's "anchoring interpolants at the center
   of each unit's receptive field"), and thresholded, ``M_k(x) = S_k(x) >= T_k``. One addition to the
   paper: a position where a unit is at its lowest value over the set (0 for a unit after a ReLU) is never
   in ``M_k``. It changes nothing unless more than a fraction q of all positions tie at that floor (a dead
   unit, or one active at fewer than 0.5 % of positions), where ``P(a_k > T_k) = q`` has no solution and
   ``S_k >= T_k`` would select the whole image.
4. ``I``, ``U``, ``IoU``: each unit against each concept over the whole set,

       IoU_{k,c} = sum_x |M_k(x) ∩ L_c(x)| / sum_x |M_k(x) ∪ L_c(x)|

   (``x`` runs over every pixel of every image). The paper sums only over the images annotated with some
   concept of c's category, because Broden's images are partly labelled. The shapes masks are complete
   (a pixel not in ``L_c`` is known not to show c), so every image counts for every concept, also the
   images where c is absent: a unit firing there pays for it in the union.
5. ``name``: the unit's best concept ``c* = argmax_c IoU_{k,c}``, or ``"unnamed"`` unless
   ``IoU_{k,c*} > iou_floor`` (0.04 in the paper). Each entry is a `Unit` (``k``, ``name``, ``concept``,
   ``iou``, ``T``), usable programmatically.

Memory stays bounded: two passes over the set, the first keeping each unit's ``m`` largest activations
(about ``q N h w``, enough for the exact quantile: `quantile_position`) and its minimum, the second adding each
batch's intersections ``|M_k ∩ L_c|`` and mask sizes into ``(K, C)`` and ``(K,)`` counts. No mask of the
whole set is ever held. `xai_ref.scratch.dissection` computes the same in NumPy.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .checks import as_flag
from .hooks import Hooks
from .inputs import check_batch, resize
from .trace import Trace
from .units import UNNAMED, Unit, check_masks, check_settings, probe_set, quantile_position, trace, units

__all__ = ["UNNAMED", "Unit", "activations", "dissect", "masks", "quantile_position", "trace", "units"]

def _as_batch(images, model: nn.Module) -> torch.Tensor:
    """The probe images as a tensor (a NumPy array is converted to the model's dtype)."""
    if isinstance(images, np.ndarray):
        param = next(model.parameters(), None)
        images = torch.from_numpy(images).to(param.dtype if param is not None else torch.float32)
    check_batch(model, images)
    return images


# --- the two passes -----------------------------------------------------------------------------------


def activations(model: nn.Module, layer, x: torch.Tensor) -> tuple[torch.Tensor, str]:
    """One forward pass; the layer's output (B,K,h,w) and its name.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    with torch.no_grad(), Hooks(model, layers=[layer]) as h:
        model(x)
        a, name = h.activation(0), h.layer_name(0)
    if not isinstance(a, torch.Tensor) or a.dim() != 4:
        shape = tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
        raise ValueError(f"dissect needs a layer with spatial output (B,K,h,w); layer {name!r} gives {shape}. "
                         "Pick a convolutional layer (layer=None picks the last one)")
    return a.detach(), name


def _batches(n: int, batch_size: int):
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def dissect(model: nn.Module, layer=None, images=None, concepts=None, *, quantile: float = 0.005,
            iou_floor: float = 0.04, batch_size: int = 50, keep: int = 8, top: int = 8,
            progress: bool = True) -> Trace:
    """Network Dissection of one layer of any model (see the module docstring for the equations).

    ``model``: any ``nn.Module``; ``layer``: a module, a dotted name, or None (the last spatial layer);
    ``images``: the probe set, a batch ``(N,C,H,W)`` (tensor, or array converted to the model's dtype) or a
    ``shapes.ShapesBatch`` (then ``concepts`` defaults to its concept masks); ``concepts``: an
    `xai_ref.data.concepts.Concepts` with masks ``(N, C, H, W)``. ``quantile``: q in ``P(a_k > T_k) = q``;
    ``iou_floor``: a unit is named when its best IoU is above it; ``batch_size``: images per forward pass;
    ``keep``: the first images whose ``A`` and ``M`` the trace keeps (for pictures); ``top``: images kept
    per unit in ``meta["top"]``, those with the largest activation of the unit; ``progress``: a tqdm bar.

    Returns a Trace with terms ``A`` (keep,K,h,w), ``T`` (K,), ``M`` (keep,K,H,W) bool, ``I`` and ``U``
    (K,C) int64 pixel counts, ``IoU`` (K,C), ``name`` (a list of K `Unit`). ``meta``: ``layer``,
    ``concepts`` (names), ``quantile``, ``iou_floor``, ``n`` (images), ``positions`` (N h w, the values each
    quantile is taken over), ``M_size`` (K,) and ``L_size`` (C,) (so that ``U = M_size + L_size - I``),
    ``above`` (K,) positions with ``a_k > T_k``, ``floor`` (K,) each unit's minimum over the set (no mask
    pixel sits at it), ``top`` (K, top) the indices of the images with each unit's largest activations.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if images is None:
        raise ValueError("images is None: pass the probe set, e.g. shapes.generate(500, seed=0, split='test')")
    images, concepts = probe_set(images, concepts, (np.ndarray, torch.Tensor))
    x = _as_batch(images, model)
    q, floor, batch_size, keep, top = check_settings(quantile, iou_floor, batch_size, keep, top)
    progress = as_flag(progress, "progress")
    check_masks(concepts, tuple(x.shape))
    slices = _batches(len(x), batch_size)
    bar = tqdm(total=2 * len(slices), desc="dissect", disable=not progress, leave=False)
    try:
        T, floor_value, a_max, name, hw = _thresholds(model, layer, x, slices, q, bar)
        counts = _overlaps(model, name, x, concepts.masks, slices, T, floor_value, keep, bar)
    finally:
        bar.close()
    counts.update(T=T, a_max=a_max, floor=floor_value)
    return trace(counts, name, concepts, q, floor, keep, top, len(x) * hw[0] * hw[1], torch.from_numpy)


def _thresholds(model, layer, x, slices, q, bar):
    """Pass 1: each unit's T_k (exact 1-q quantile over all positions), its minimum, each image's maximum."""
    largest = low = None
    a_max = []
    for s in slices:
        a, name = activations(model, layer, x[s])
        B, K, h, w = a.shape
        if largest is None:
            m, f = quantile_position(len(x) * h * w, q)
            largest = torch.full((K, 0), -math.inf, dtype=a.dtype)
            low = torch.full((K,), math.inf, dtype=a.dtype)
        values = a.transpose(0, 1).reshape(K, -1)                     # (K, B h w)
        pool = torch.cat([largest, values], 1)
        largest = pool.topk(min(m, pool.shape[1]), dim=1).values      # the m largest so far, descending
        low = torch.minimum(low, values.amin(1))
        a_max.append(a.amax((2, 3)))
        bar.update()
    lower, upper = largest[:, m - 1], largest[:, max(m - 2, 0)]      # v_i and v_{i+1} of quantile_position
    T = lower + f * (upper - lower)
    return T, low, torch.cat(a_max), name, (h, w)


def masks(a: torch.Tensor, size: tuple[int, int], T: torch.Tensor, floor_value: torch.Tensor) -> torch.Tensor:
    """``M_k = up(a_k) >= T_k`` (and above the unit's floor) for a batch ``a`` (B,K,h,w): (B,K,H,W) bool.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    B, K, h, w = a.shape
    S = resize(a.reshape(B * K, h, w), size).reshape(B, K, *size)
    return (S >= T[:, None, None]) & (S > floor_value[:, None, None])


def _overlaps(model, name, x, L_all, slices, T, floor_value, keep, bar) -> dict:
    """Pass 2: the masks, batch by batch; intersection counts |M_k ∩ L_c|, mask sizes, the kept terms."""
    size = tuple(x.shape[2:])
    I = M_size = None
    kept_A, kept_M, above = [], [], 0
    for s in slices:
        a = activations(model, name, x[s])[0]
        M = masks(a, size, T, floor_value)
        L = torch.from_numpy(L_all[s])
        B, K = M.shape[:2]
        exact = torch.float32 if B * size[0] * size[1] < 2**24 else torch.float64   # integer sums stay exact
        Mb, Lb = M.reshape(B, K, -1).to(exact), L.reshape(B, L.shape[1], -1).to(exact)
        overlap = torch.bmm(Mb, Lb.transpose(1, 2)).sum(0).long()       # (K, C): sum_x M_k(x) L_c(x)
        I = overlap if I is None else I + overlap
        M_size = Mb.sum((0, 2)).long() if M_size is None else M_size + Mb.sum((0, 2)).long()
        above = above + (a > T[:, None, None]).sum((0, 2, 3))
        n_kept = sum(len(k) for k in kept_A)
        if s.start == 0 or n_kept < keep:
            kept_A.append(a[:keep - n_kept])
            kept_M.append(M[:keep - n_kept])
        bar.update()
    return {"I": I, "M_size": M_size, "L_size": torch.from_numpy(L_all.sum((0, 2, 3))).long(), "above": above,
            "A": torch.cat(kept_A), "M": torch.cat(kept_M)}
