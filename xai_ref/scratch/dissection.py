"""Network Dissection from scratch (Bau et al., CVPR 2017): the NumPy twin of `xai_ref.dissection`.

The same Trace (terms ``A``, ``T``, ``M``, ``I``, ``U``, ``IoU``, ``name``, the same LaTeX), computed on a
scratch `Sequential`, whose forward pass keeps every layer's activation. Written for reading rather than
for large probe sets: it keeps the layer's activations of the whole set, ``(N, K, h, w)``, and reads each
threshold with ``np.quantile``; the PyTorch version streams them and keeps only each unit's largest values.
Agreeing, the two check each other.

    T_k:         P(a_k > T_k) = q          over every position of every image (at the layer's resolution)
    M_k(x):      S_k(x) >= T_k,  S_k = up(a_k)   (bilinear; never at the unit's floor, its minimum)
    IoU_{k,c}:   sum_x |M_k(x) ∩ L_c(x)| / sum_x |M_k(x) ∪ L_c(x)|
    name_k:      argmax_c IoU_{k,c}  if that IoU > iou_floor, else "unnamed"
"""
from __future__ import annotations

import numpy as np

from ..units import check_masks, check_settings, probe_set, trace
from .gradients import check_batch, layer_name, resize
from .network import Sequential


def activations(net: Sequential, layer, x: np.ndarray, batch_size: int) -> tuple[np.ndarray, str]:
    """The layer's output for every image ``(N, K, h, w)``, batch by batch, and the layer's name."""
    parts, name = [], None
    for i in range(0, len(x), batch_size):
        net.forward(x[i:i + batch_size])
        name = layer_name(net, layer)
        parts.append(net.activations[name])
    if parts[0].ndim != 4:
        raise ValueError(f"dissect needs a layer with spatial output (B,K,h,w); layer {name!r} gives "
                         f"{parts[0].shape}. Pick a convolutional layer (layer=None picks the last one)")
    return np.concatenate(parts), name


def masks(a: np.ndarray, size: tuple[int, int], T: np.ndarray, floor_value: np.ndarray) -> np.ndarray:
    """``M_k = up(a_k) >= T_k`` and above the unit's floor, for maps ``a`` (B,K,h,w): (B,K,H,W) bool."""
    B, K, h, w = a.shape
    S = resize(a.reshape(B * K, h, w), size).reshape(B, K, *size)
    return (S >= T[:, None, None]) & (S > floor_value[:, None, None])


def dissect(net: Sequential, layer=None, images=None, concepts=None, *, quantile: float = 0.005,
            iou_floor: float = 0.04, batch_size: int = 50, keep: int = 8, top: int = 8):
    """Network Dissection of one layer of a scratch network; arguments and Trace as `xai_ref.dissect`
    (``images``: a NumPy batch (N,C,H,W) or a ``shapes.ShapesBatch``; ``layer``: a name, index or None).

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    if images is None:
        raise ValueError("images is None: pass the probe set, e.g. shapes.generate(500, seed=0, split='test')")
    x, concepts = probe_set(images, concepts)
    check_batch(net, x)
    check_masks(concepts, x.shape)
    q, floor, batch_size, keep, top = check_settings(quantile, iou_floor, batch_size, keep, top)

    A, name = activations(net, layer, x, batch_size)                        # (N, K, h, w)
    N, K, h, w = A.shape
    per_unit = A.transpose(1, 0, 2, 3).reshape(K, -1)                       # (K, N h w)
    T = np.quantile(per_unit, 1 - q, axis=1)                                # P(a_k > T_k) = q
    floor_value = per_unit.min(1)

    L = concepts.masks
    I, M_size = np.zeros((K, L.shape[1]), dtype=np.int64), np.zeros(K, dtype=np.int64)
    for i in range(0, N, batch_size):
        M = masks(A[i:i + batch_size], x.shape[2:], T, floor_value).reshape(-1, K, x.shape[2] * x.shape[3])
        Lb = L[i:i + batch_size].reshape(len(M), L.shape[1], -1)
        I += np.rint((M.astype(np.float64) @ Lb.transpose(0, 2, 1).astype(np.float64)).sum(0)).astype(np.int64)
        M_size += M.sum((0, 2))
    counts = {"A": A[:keep], "T": T, "M": masks(A[:keep], x.shape[2:], T, floor_value), "I": I,
              "M_size": M_size, "L_size": L.sum((0, 2, 3)).astype(np.int64),
              "above": (A > T[None, :, None, None]).sum((0, 2, 3)), "a_max": A.max((2, 3)), "floor": floor_value}
    return trace(counts, name, concepts, q, floor, keep, top, N * h * w)
