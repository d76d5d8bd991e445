"""Checking what a method is given: the image batch, the target, the model's output.

Every public method calls these first, so bad input fails early with a message that says what was
expected and how to fix it.
"""

from __future__ import annotations

import numbers
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

Target = "None | int | Sequence[int] | torch.Tensor | Callable[[torch.Tensor], torch.Tensor]"


def fast_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` with the same values, a batch of images in channels-last memory layout (B,H,W,C in memory):
    the layout CPU convolutions run fastest in (1.3-1.5x faster forward passes on the shipped models).
    Used for forward passes without gradients (scores, CAM); other tensors are returned as they are."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def where_fast(condition: torch.Tensor, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None):
    """``torch.where(condition, a, b)`` for a batch of images, written straight into channels-last memory
    (`fast_layout`), or into ``out``: one pass over the result, no copy before the forward pass. For
    images to score without gradients: nothing is differentiated through it."""
    if out is None:
        shape = torch.broadcast_shapes(condition.shape, a.shape, b.shape)
        out = torch.empty(shape, dtype=torch.result_type(a, b), device=a.device, memory_format=torch.channels_last)
    return torch.where(condition, a.detach(), b.detach(), out=out)


def check_batch(model: nn.Module, x) -> None:
    """``x`` must be a finite floating-point batch ``(B,C,H,W)``, B >= 1, on the model's device."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor batch (B,C,H,W), got {type(x).__name__}; "
                        "convert with torch.as_tensor(x, dtype=torch.float32)")
    if x.dim() != 4:
        hint = " (for one image use x[None])" if x.dim() == 3 else ""
        raise ValueError(f"x must be a batch of shape (B,C,H,W), got shape {tuple(x.shape)}{hint}")
    if x.shape[0] == 0:
        raise ValueError("x is an empty batch (B=0); pass at least one image")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}; for uint8 pixels use "
                        "x.float() / 255 or the model's preprocessing (xai_ref.data.photos.preprocess)")
    param = next(model.parameters(), None)
    if param is not None and param.device != x.device:  # before looking at the values, which may be elsewhere
        raise ValueError(f"x is on {x.device} but the model is on {param.device}; move one of them, "
                         f"e.g. x = x.to({str(param.device)!r})")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values; explanations need finite pixels")
    if param is not None and param.dtype != x.dtype:
        raise TypeError(f"x is {x.dtype} but the model's parameters are {param.dtype}; "
                        f"use x.to({param.dtype}) or model.to({x.dtype})")
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is not None and conv.in_channels != x.shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels but the model's first convolution expects "
                         f"{conv.in_channels}; x must be (B,{conv.in_channels},H,W)")


def target_scores(output: torch.Tensor, target) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The scores ``y^c`` to explain, one per image ``(B,)``, and the classes ``c`` ``(B,)`` (or None).

    ``target``: ``None`` (each image's predicted class), an ``int`` (that class for every image), a
    sequence or 1-D tensor of B class indices, or a callable ``f(output) -> (B,)`` scores for any
    differentiable target (then the classes are None).
    """
    B = output.shape[0]
    if callable(target):
        scores = target(output)
        if not isinstance(scores, torch.Tensor) or scores.shape != (B,):
            got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise ValueError(f"a callable target must return one score per image, shape ({B},), got {got}")
        return scores, None
    if output.dim() != 2:
        raise ValueError(f"a class target needs (B, classes) scores from the model, got output shape "
                         f"{tuple(output.shape)}; pass a callable target f(output) -> (B,) scores instead")
    c = target_classes(target, B, output.shape[1], default=output.argmax(1))
    return output.gather(1, c[:, None].to(output.device))[:, 0], c


def target_classes(target, B: int, n_classes: int, default: torch.Tensor | None = None) -> torch.Tensor:
    """``target`` as a ``(B,)`` int64 tensor of class indices in ``[0, n_classes)``."""
    if target is None:
        if default is None:
            raise ValueError("target=None means the predicted class, which is not known here; pass a class")
        return default.detach().long().cpu()
    if isinstance(target, (torch.Tensor, np.ndarray)) and target.ndim == 0:
        target = target.item()  # one class as a 0-d tensor, e.g. labels[i]
    if isinstance(target, bool) or isinstance(target, float):
        raise TypeError(f"target must be an int class index, a sequence of B ints, None or a callable, "
                        f"got {target!r}")
    if isinstance(target, numbers.Integral):  # int, numpy integers
        c = torch.full((B,), int(target), dtype=torch.long)
    elif isinstance(target, (Sequence, torch.Tensor, np.ndarray)) and not isinstance(target, str):
        c = torch.as_tensor(target).detach().cpu()
        if c.dim() != 1 or c.shape[0] != B:
            raise ValueError(f"target has {len(c) if c.dim() else 'no'} entries but the batch has {B} "
                             f"images; pass one class per image, or one int for all")
        if c.is_floating_point() or c.dtype == torch.bool:
            raise TypeError(f"target classes must be integers, got dtype {c.dtype}")
        c = c.long()
    else:
        raise TypeError(f"target must be None, an int, a sequence of B ints, or a callable "
                        f"f(output) -> (B,) scores; got {type(target).__name__}")
    bad = (c < 0) | (c >= n_classes)
    if bad.any():
        raise ValueError(f"target class {c[bad][0].item()} is out of range: the model has {n_classes} "
                         f"classes, so valid targets are 0..{n_classes - 1}")
    return c


def resize(m: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of maps ``(B,h,w)`` to ``(B,H,W)`` (``align_corners=False``, as torch-cam and
    Captum's ``LayerAttribution.interpolate``)."""
    return torch.nn.functional.interpolate(m[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
