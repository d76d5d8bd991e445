"""Shared helpers of the metrics: checking maps and regions, scoring batches, normalising maps."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..hooks import Hooks
from ..checks import as_choice
from ..inputs import check_batch, class_logits, fast_layout, target_classes
from ..trace import Trace

OUTPUTS = ("softmax", "logit")


def as_tensor(value, name: str, what: str, lists: bool = False) -> torch.Tensor:
    """``value`` (a tensor or a NumPy array of real numbers or bools; also a nested list or tuple with
    ``lists``) as a tensor; ``what`` describes the expected shape for the message."""
    if lists and isinstance(value, (list, tuple)):
        try:
            value = np.asarray(value)
        except ValueError:
            raise ValueError(f"{name} must be {what}; its rows have different lengths") from None
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be {what} of numbers, got an array of dtype {value.dtype}")
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    if value.dtype.is_complex:
        raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
    return value


def as_maps(maps, name: str = "maps", batch: int | None = None) -> torch.Tensor:
    """``maps`` as a finite float ``(B,H,W)`` tensor. A `Trace` gives its ``map``; NumPy arrays are accepted."""
    if isinstance(maps, Trace):
        if "map" not in maps:
            raise ValueError(f"{name}: the {maps.method} trace has no map; pass a trace with a 'map' term")
        maps = maps.map
    maps = as_tensor(maps, name, "a (B,H,W) tensor, array or a Trace")
    if maps.dim() != 3:
        hint = " (for one map use m[None])" if maps.dim() == 2 else ""
        raise ValueError(f"{name} must have shape (B,H,W), got {tuple(maps.shape)}{hint}")
    if 0 in maps.shape:
        raise ValueError(f"{name} is empty (shape {tuple(maps.shape)}); pass at least one map of at least one pixel")
    if batch is not None and maps.shape[0] != batch:
        raise ValueError(f"{name} has {maps.shape[0]} maps but the batch has {batch} images; pass one map per image")
    maps = maps.detach()
    if not maps.is_floating_point():
        maps = maps.float()
    if not torch.isfinite(maps).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return maps


def as_masks(masks, shape: tuple[int, int, int], name: str = "masks") -> torch.Tensor:
    """``masks`` as a bool ``(B,H,W)`` tensor of exactly ``shape`` (the maps' shape)."""
    masks = as_tensor(masks, name, "a (B,H,W) bool tensor or array")
    if tuple(masks.shape) != tuple(shape):
        raise ValueError(f"{name} must have the maps' shape {tuple(shape)}, got {tuple(masks.shape)}; "
                         "maps and masks must be at the same resolution, one per image")
    if masks.dtype != torch.bool:
        if masks.is_floating_point() or not ((masks == 0) | (masks == 1)).all():
            raise TypeError(f"{name} must be boolean (or 0/1 integers), got dtype {masks.dtype}")
        masks = masks.bool()
    return masks


def as_boxes(boxes, shape: tuple[int, int, int], name: str = "boxes") -> torch.Tensor:
    """``boxes`` as an int64 ``(B,4)`` tensor of ``(x0, y0, x1, y1)``, exclusive ends, inside the image."""
    boxes = as_tensor(boxes, name, "a (B,4) tensor or array of (x0, y0, x1, y1)")
    B, H, W = shape
    if tuple(boxes.shape) != (B, 4):
        raise ValueError(f"{name} must have shape ({B}, 4) (one (x0, y0, x1, y1) box per map), "
                         f"got {tuple(boxes.shape)}")
    if boxes.dtype == torch.bool or (boxes.is_floating_point() and not torch.equal(boxes, boxes.round())):
        raise TypeError(f"{name} must hold integer pixel coordinates, got dtype {boxes.dtype}")
    x0, y0, x1, y1 = boxes.unbind(1)      # checked before the int64 conversion, which would wrap huge values
    if ((x0 < 0) | (y0 < 0) | (x1 > W) | (y1 > H) | (x1 < x0) | (y1 < y0)).any():
        raise ValueError(f"{name} must satisfy 0 <= x0 <= x1 <= W={W} and 0 <= y0 <= y1 <= H={H} "
                         "(x1, y1 exclusive)")
    return boxes.long()


def boxes_to_masks(boxes: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """``(B,4)`` boxes ``(x0, y0, x1, y1)`` (exclusive ends) to ``(B,H,W)`` bool masks."""
    ys = torch.arange(H)[None, :, None]
    xs = torch.arange(W)[None, None, :]
    x0, y0, x1, y1 = (boxes[:, k, None, None] for k in range(4))
    return (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)


def minmax(maps: torch.Tensor) -> torch.Tensor:
    """Each map rescaled to ``[0, 1]``: ``(m - min m) / (max m - min m)``; a constant map becomes 0."""
    flat = maps.flatten(1)
    lo, hi = flat.min(1).values, flat.max(1).values
    span = (hi - lo).view(-1, *([1] * (maps.dim() - 1)))
    lo = lo.view_as(span)
    return torch.where(span > 0, (maps - lo) / torch.where(span > 0, span, 1), torch.zeros((), dtype=maps.dtype))


def check_output(output: str) -> str:
    """The kind of score: ``"softmax"`` (probability) or ``"logit"`` (pre-softmax score)."""
    return as_choice(output, "output", OUTPUTS)


def model_scores(model: nn.Module, x: torch.Tensor, logits=None) -> torch.Tensor:
    """One forward pass, no gradients: the ``(B, classes)`` class scores, found in a structured output by
    ``logits`` (`xai_ref.inputs.class_logits`)."""
    with torch.no_grad(), Hooks(model):
        out = class_logits(model(fast_layout(x)), logits)
    if out.dim() != 2:
        raise ValueError(f"the metrics need (B, classes) scores from the model, got output shape {tuple(out.shape)}")
    return out


def class_scores(model: nn.Module, x: torch.Tensor, classes: torch.Tensor, output: str = "softmax",
                 logits=None) -> torch.Tensor:
    """One forward pass, no gradients: the ``(N,)`` softmax probability (or logit) of ``classes`` (N,)."""
    out = model_scores(model, x, logits)
    if output == "softmax":
        out = out.softmax(1)
    return out.gather(1, classes[:, None].to(out.device))[:, 0]


def batched_scores(model: nn.Module, make, n: int, classes: torch.Tensor, output: str, batch_size: int,
                   bar=None, logits=None) -> torch.Tensor:
    """Scores of ``n`` perturbed images built ``batch_size`` at a time: ``make(start, stop)`` returns the
    images ``start:stop`` ``(stop-start,C,H,W)`` and ``classes`` (n,) their target classes."""
    parts = []
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        parts.append(class_scores(model, make(start, stop), classes[start:stop], output, logits))
        if bar is not None:
            bar.update(stop - start)
    return torch.cat(parts)


def resolve_target(model: nn.Module, x: torch.Tensor, target, maps=None, logits=None) -> torch.Tensor:
    """The ``(B,)`` classes to evaluate: ``target`` if given, else the classes a `Trace` explained, else the
    model's predictions on ``x``. ``logits``: where the class scores are in a structured output."""
    check_batch(model, x)
    if target is None and isinstance(maps, Trace) and isinstance(maps.meta.get("target"), torch.Tensor):
        target = maps.meta["target"]
    out = model_scores(model, x if target is None else x[:1], logits)  # a given target needs only the class count
    return target_classes(target, x.shape[0], out.shape[1],
                          default=out.argmax(1) if target is None else None).to(x.device)


def upsample_to(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of ``(B,h,w)`` maps to ``size`` (unchanged when already that size)."""
    if tuple(maps.shape[1:]) == tuple(size):
        return maps
    return torch.nn.functional.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
