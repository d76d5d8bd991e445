"""Occlusion sensitivity (Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014).

Slide a grey (baseline) square over the image and record how much the target score drops at each
position of the square. A large drop means the network needed what the square covered.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from .gradients import Neuron, neuron_scores
from .hooks import Hooks
from .checks import as_count, as_flag, as_pair
from .inputs import as_fill, check_batch, class_logits, fast_layout, target_classes, target_scores, where_fast
from .trace import Trace


def scores_no_grad(model: nn.Module, x: torch.Tensor, target, logits=None) -> torch.Tensor:
    """The target scores ``(N,)`` of a batch without gradients: ``target`` is a (N,) class tensor, a Neuron
    or a callable ``f(output) -> (N,)``; ``logits`` where the class scores are in a structured output."""
    layers = [target.layer] if isinstance(target, Neuron) else []
    with torch.no_grad(), Hooks(model, layers=layers) as h:
        out = model(fast_layout(x))
        if isinstance(target, Neuron):
            return neuron_scores(h.A, target)
        if callable(target):
            return target_scores(out, target)[0]
        out = class_logits(out, logits)
        return out.gather(1, target[:, None].to(out.device))[:, 0]


def occlusion(model: nn.Module, x: torch.Tensor, target=None, window=8, stride=4, baseline=0.0,
              batch_size: int = 64, progress: bool = False, logits=None) -> Trace:
    """Occlusion sensitivity: the drop of the target score when a square is occluded, at every position.

    For each top-left corner (u, v) on the grid with step ``stride``, ``x_uv`` is x with the window
    ``[u, u+h) x [v, v+w)`` (all channels) set to ``baseline``, and
    ``drop[u,v] = y^c(x) - y^c(x_uv)``. ``map`` (B,H,W) gives each pixel the mean drop over the windows
    that cover it (0 where none does) — the same attribution as Captum's ``Occlusion`` when ``H - h`` and
    ``W - w`` are multiples of the stride (otherwise Captum adds windows cut off at the border; we do not).

    ``target``: None / int / sequence of B class indices, a `Neuron` (e.g.
    ``Neuron("features.10", 5, "sum")``: one channel's summed response, Zeiler & Fergus fig. 7), or a
    callable ``f(output) -> (N,)`` scores; it is applied to batches of occluded copies of one image, so it
    must score each row of the output on its own (``lambda out: out[:, 3]``).
    ``baseline``: a finite number or a tensor broadcastable to (C,H,W). The occluded images are evaluated
    ``batch_size`` at a time. ``logits``: where the class scores are in a structured output
    (`xai_ref.inputs.class_logits`).

    Lesson: ``lessons/03_deconvnet_guided_backprop.ipynb``.
    """
    check_batch(model, x)
    (h, w), (sh, sw) = as_pair(window, "window"), as_pair(stride, "stride")
    batch_size, progress = as_count(batch_size, "batch_size"), as_flag(progress, "progress")
    B, C, H, W = x.shape
    base = as_fill(baseline, "baseline", (C, H, W), x)
    if h > H or w > W:
        raise ValueError(f"window {(h, w)} is larger than the image {(H, W)}")
    if isinstance(target, Neuron) or callable(target):
        key = target
        y = scores_no_grad(model, x, key)
    else:
        with torch.no_grad(), Hooks(model):
            out = class_logits(model(fast_layout(x)), logits)
        if out.dim() != 2:
            raise ValueError(f"a class target needs (B, classes) scores from the model, got output shape "
                             f"{tuple(out.shape)}; pass a callable target f(output) -> (N,) scores instead")
        key = target_classes(target, B, out.shape[1], default=out.argmax(1)).to(x.device)
        y = out.gather(1, key[:, None])[:, 0]

    us, vs = torch.tensor(range(0, H - h + 1, sh)), torch.tensor(range(0, W - w + 1, sw))  # any stride, even 10**30
    corners = torch.cartesian_prod(us, vs)                                    # (P, 2)
    windows = torch.zeros(len(corners), H, W, dtype=torch.bool, device=x.device)
    for p, (u, v) in enumerate(corners.tolist()):
        windows[p, u:u + h, v:v + w] = True

    drops = torch.empty(B, len(corners), dtype=x.dtype, device=x.device)
    with tqdm(total=B * len(corners), desc="occlusion", disable=not progress) as bar:
        for b in range(B):
            for start in range(0, len(corners), batch_size):
                m = windows[start:start + batch_size, None]                    # (n,1,H,W)
                occluded = where_fast(m, base, x[b])                           # (n,C,H,W)
                key_b = key if isinstance(key, Neuron) or callable(key) else key[b].repeat(len(m))
                drops[b, start:start + len(m)] = y[b] - scores_no_grad(model, occluded, key_b, logits)
                bar.update(len(m))

    t = Trace("occlusion", meta={"target": None if isinstance(key, Neuron) or callable(key) else key, "y": y,
                                 "window": (h, w), "stride": (sh, sw), "baseline": baseline})
    t.add("corners", corners)
    t.add("drop", drops.view(B, len(us), len(vs)))
    coverage = windows.sum(0)
    total = torch.einsum("bp,phw->bhw", drops, windows.to(x.dtype))
    t.add("map", torch.where(coverage > 0, total / coverage.clamp(min=1), torch.zeros((), dtype=x.dtype)))
    return t
