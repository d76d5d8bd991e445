"""Occlusion sensitivity from scratch (Zeiler & Fergus, "Visualizing and Understanding Convolutional
Networks", ECCV 2014): slide a grey square over the image and record how much the target score drops.

The NumPy twin of `xai_ref.occlusion`: the same windows, stride, baseline and map.
"""
from __future__ import annotations


import numpy as np

from ..checks import as_pair
from ..trace import Trace
from .gradients import check_batch, is_neuron, layer_name, neuron_signal, target_classes
from .network import Sequential


def target_scores(net: Sequential, x: np.ndarray, target) -> np.ndarray:
    """The target scores (N,) of a batch: ``target`` is a (N,) class array, a `Neuron` or a callable."""
    out = net.forward(x)
    if is_neuron(target):
        return neuron_signal(net.activations[layer_name(net, target.layer)], target)[0]
    if callable(target):
        y = np.asarray(target(out))
        if y.shape != (len(x),):
            raise ValueError(f"a callable target must return one score per image, shape ({len(x)},), got {y.shape}")
        return y
    return out[np.arange(len(x)), target]


def occlusion(net: Sequential, x: np.ndarray, target=None, window=8, stride=4, baseline=0.0,
              batch_size: int = 64) -> Trace:
    """Occlusion sensitivity: the drop of the target score when a square is occluded, at every position.

        Delta_uv = y^c(x) - y^c(x_uv),      M_ij = mean{ Delta_uv : (i,j) in window(u,v) }   (0 if none)

    ``x_uv`` is x with the window ``[u, u+h) x [v, v+w)`` (all channels) set to ``baseline``, for every
    top-left corner (u, v) on the grid with step ``stride``. Terms: ``corners`` (P,2), ``drop``
    (B, n_u, n_v), ``map`` (B,H,W). ``target``: None / int / sequence of B ints, a `Neuron`, or a callable
    ``f(output) -> (N,)`` scores (no gradient is needed here, so any NumPy function of the output works;
    it gets batches of occluded copies of one image, so it must score each row on its own).
    ``baseline``: a number or an array broadcastable to (C,H,W). Occluded images go through the net
    ``batch_size`` at a time.

    Lesson: ``lessons/03_deconvnet_guided_backprop.ipynb``.
    """
    check_batch(net, x)
    (h, w), (sh, sw) = as_pair(window, "window"), as_pair(stride, "stride")
    B, C, H, W = x.shape
    if h > H or w > W:
        raise ValueError(f"window {(h, w)} is larger than the image {(H, W)}")
    if is_neuron(target) or callable(target):
        key = target
    else:
        out = net.forward(x)
        if out.ndim != 2:
            raise ValueError(f"a class target needs (B, classes) scores from the net, got {out.shape}")
        key = target_classes(target, B, out.shape[1], default=out.argmax(1))
    y = target_scores(net, x, key)

    us, vs = np.arange(0, H - h + 1, sh), np.arange(0, W - w + 1, sw)
    corners = np.stack(np.meshgrid(us, vs, indexing="ij"), -1).reshape(-1, 2)   # (P, 2), row-major
    base = np.broadcast_to(np.asarray(baseline, dtype=x.dtype), (C, H, W))
    windows = np.zeros((len(corners), H, W), dtype=bool)                         # (P, H, W)
    for p, (u, v) in enumerate(corners):
        windows[p, u:u + h, v:v + w] = True

    drops = np.empty((B, len(corners)), dtype=x.dtype)
    for b in range(B):
        for start in range(0, len(corners), batch_size):
            m = windows[start:start + batch_size, None]                          # (n,1,H,W)
            occluded = np.where(m, base, x[b])                                   # (n,C,H,W)
            key_b = key if is_neuron(key) or callable(key) else np.repeat(key[b], len(m))
            drops[b, start:start + len(m)] = y[b] - target_scores(net, occluded, key_b)

    t = Trace("occlusion", meta={"target": None if is_neuron(key) or callable(key) else key, "y": y,
                                 "window": (h, w), "stride": (sh, sw), "baseline": baseline})
    t.add("corners", corners)
    t.add("drop",
          drops.reshape(B, len(us), len(vs)))
    coverage = windows.sum(0)                                                    # (H, W) windows per pixel
    total = np.einsum("bp,phw->bhw", drops, windows.astype(x.dtype))
    t.add("map",
          np.where(coverage > 0, total / np.maximum(coverage, 1), 0).astype(x.dtype))
    return t
