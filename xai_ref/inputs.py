"""Checking what a method is given: the image batch, the target, the model's output.

Every public method calls these first, so bad input fails early with a message that says what was
expected and how to fix it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .checks import as_number, is_int

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
    # the channel count is checked by the first convolution that runs (`xai_ref.hooks.Hooks`)


INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def is_real(t: torch.Tensor | np.ndarray) -> bool:
    """A tensor or array of real numbers: integers or floats (not bools, complex numbers or strings)."""
    if isinstance(t, np.ndarray):
        return t.dtype.kind in "iuf"
    return t.is_floating_point() or t.dtype in INT_DTYPES


def as_fill(value, name: str, shape: tuple, like: torch.Tensor) -> torch.Tensor:
    """``value`` -- a finite number, or a tensor or array of finite numbers broadcastable to ``shape`` -- as a
    tensor of ``shape`` with ``like``'s dtype and device: the value put in place of pixels (an occluder, a
    deletion baseline, an insertion start)."""
    if not isinstance(value, (torch.Tensor, np.ndarray)):
        value = as_number(value, name)
    elif not is_real(value):
        raise TypeError(f"{name} must be a number or a tensor of real numbers, got dtype {value.dtype}")
    fill = torch.as_tensor(value).to(like.device, like.dtype)
    if not torch.isfinite(fill).all():
        raise ValueError(f"{name} contains NaN or infinite values (in {like.dtype})")
    try:
        return fill.expand(shape)
    except RuntimeError:
        raise ValueError(f"{name} of shape {tuple(fill.shape)} does not broadcast to {tuple(shape)}; pass a number "
                         f"or a tensor of shape (C,1,1) or {tuple(shape)}") from None


def check_logits(logits) -> None:
    """``logits`` must be None, an int index or a str key / attribute name (see `class_logits`)."""
    if logits is not None and not (isinstance(logits, str) or is_int(logits)):
        raise TypeError(f"logits must be an int index or a str key / attribute name of the model's output, "
                        f"got {type(logits).__name__}")


def class_logits(output, logits=None, required: bool = True) -> torch.Tensor | None:
    """The ``(B, classes)`` class scores in a model's output.

    A tensor output is the scores. For a structured output (tuple, list, namedtuple, dict, dict-like or any
    object with attributes: an Inception-style ``(logits, aux_logits)``, ``{"out": ..., "aux": ...}``),
    ``logits`` says where they are: an int index (tuple, list, namedtuple) or a str key (dict, dict-like)
    or attribute name. ``required=False`` returns None instead of raising when it is not said (a callable
    target needs no class scores).
    """
    check_logits(logits)
    if logits is None:
        if isinstance(output, torch.Tensor):
            return output
        if not required:
            return None
        raise ValueError(f"the model returns {describe_output(output)}, not one tensor of class scores; say which "
                         "part holds them with logits= (e.g. logits=0 for the first of a tuple, logits='out' "
                         "for a dict key or attribute), or pass a callable target f(output) -> (B,) scores")
    part = _part(output, logits)
    if not isinstance(part, torch.Tensor) or part.dim() != 2:
        raise ValueError(f"logits={logits!r} picks {describe_output(part)} from the model's output; it must be "
                         "the (B, classes) class scores")
    return part


def _part(output, logits):
    """``output[logits]`` or ``output.logits`` (a clear error listing what there is)."""
    if isinstance(output, torch.Tensor):
        raise ValueError(f"logits={logits!r} was given but the model returns one tensor {tuple(output.shape)}; "
                         "leave logits=None")
    if is_int(logits):
        if isinstance(output, (tuple, list)):
            if -len(output) <= logits < len(output):
                return output[int(logits)]
            raise ValueError(f"logits={logits!r} is out of range: the model returns {len(output)} outputs, "
                             f"so use 0..{len(output) - 1}")
        raise TypeError(f"logits={logits!r} is an index, but the model returns {describe_output(output)}; "
                        "name the key or attribute as a str")
    if isinstance(output, Mapping) or hasattr(output, "keys"):
        if logits in output.keys():
            return output[logits]
        raise ValueError(f"logits={logits!r} is not a key of the model's output; its keys are {list(output.keys())}")
    if hasattr(output, logits):
        return getattr(output, logits)
    names = list(getattr(output, "_fields", ())) or [n for n in dir(output) if not n.startswith("_")][:10]
    raise ValueError(f"logits={logits!r} is not an attribute of the model's output; it has {names}")


def describe_output(output) -> str:
    """A short description of a model's output for messages: ``tensor (2, 10)``, ``tuple of 2 [...]``."""
    if isinstance(output, torch.Tensor):
        return f"a tensor {tuple(output.shape)}"
    if isinstance(output, Mapping) or hasattr(output, "keys"):
        return f"{type(output).__name__} with keys {list(output.keys())}"
    if isinstance(output, (tuple, list)):
        kind = "namedtuple " + type(output).__name__ if hasattr(output, "_fields") else type(output).__name__
        parts = [tuple(o.shape) if isinstance(o, torch.Tensor) else type(o).__name__ for o in output]
        return f"a {kind} of {len(output)}: {parts}"
    return f"a {type(output).__name__}"


def target_scores(output, target, logits=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The scores ``y^c`` to explain, one per image ``(B,)``, and the classes ``c`` ``(B,)`` (or None).

    ``target``: ``None`` (each image's predicted class), an ``int`` (that class for every image), a
    sequence or 1-D tensor of B class indices, or a callable ``f(output) -> (B,)`` scores for any
    differentiable target (it receives the model's raw output; then the classes are None). ``logits``:
    where the class scores are in a structured output (`class_logits`).
    """
    if callable(target):
        scores = target(output)
        B = _batch_size(output)
        if not isinstance(scores, torch.Tensor):
            raise TypeError(f"a callable target must return a tensor of scores, one per image, got "
                            f"{type(scores).__name__}")
        if not scores.is_floating_point():
            raise TypeError(f"a callable target must return floating-point scores, got dtype {scores.dtype} "
                            "(an argmax or a class index is not a score: return output[:, c] instead)")
        if B is not None and tuple(scores.shape) != (B,):
            raise ValueError(f"a callable target must return one score per image, shape ({B},), "
                             f"got {tuple(scores.shape)}")
        return scores, None
    scores = class_logits(output, logits)
    if scores.dim() != 2:
        raise ValueError(f"a class target needs (B, classes) scores from the model, got output shape "
                         f"{tuple(scores.shape)}; pass a callable target f(output) -> (B,) scores instead")
    c = target_classes(target, scores.shape[0], scores.shape[1], default=scores.argmax(1))
    return scores.gather(1, c[:, None].to(scores.device))[:, 0], c


def _batch_size(output) -> int | None:
    """The batch size of a (possibly structured) output: that of its first tensor."""
    if isinstance(output, torch.Tensor):
        return output.shape[0] if output.dim() else None
    parts = output.values() if isinstance(output, Mapping) or hasattr(output, "values") else \
        output if isinstance(output, (tuple, list)) else ()
    return next((_batch_size(o) for o in parts if isinstance(o, torch.Tensor)), None)


def target_classes(target, B: int, n_classes: int, default: torch.Tensor | None = None) -> torch.Tensor:
    """``target`` as a ``(B,)`` int64 tensor of class indices in ``[0, n_classes)``."""
    if target is None:
        if default is None:
            raise ValueError("target=None means the predicted class, which is not known here; pass a class")
        return default.detach().long().cpu()
    if isinstance(target, (torch.Tensor, np.ndarray)) and target.ndim == 0:
        target = target.item()  # one class as a 0-d tensor, e.g. labels[i]
    if is_int(target):
        classes = [int(target)] * B
    elif isinstance(target, (torch.Tensor, np.ndarray)):
        if target.ndim != 1:
            raise ValueError(f"target must be one class index per image, shape ({B},), got shape {tuple(target.shape)}")
        if not (target.dtype in INT_DTYPES or (isinstance(target, np.ndarray) and target.dtype.kind in "iu")):
            raise TypeError(f"target classes must be integers, got dtype {target.dtype}")
        classes = [int(c) for c in target.tolist()]
    elif isinstance(target, Sequence) and not isinstance(target, str):
        if not all(is_int(c) for c in target):
            raise TypeError(f"target classes must be ints, got {list(target)[:5]!r}")
        classes = [int(c) for c in target]
    else:
        raise TypeError(f"target must be None, an int, a sequence of B ints, or a callable "
                        f"f(output) -> (B,) scores; got {type(target).__name__}")
    if len(classes) != B:
        raise ValueError(f"target has {len(classes)} entries but the batch has {B} images; pass one class per "
                         "image, or one int for all")
    bad = [c for c in classes if not 0 <= c < n_classes]
    if bad:
        raise ValueError(f"target class {bad[0]} is out of range: the model has {n_classes} classes, so valid "
                         f"targets are 0..{n_classes - 1}")
    return torch.tensor(classes, dtype=torch.long)


def resize(m: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of maps ``(B,h,w)`` to ``(B,H,W)`` (``align_corners=False``, as torch-cam and
    Captum's ``LayerAttribution.interpolate``)."""
    return torch.nn.functional.interpolate(m[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


#: How :func:`gaussian_blur` fills the border: ``"reflect"`` mirrors the image without repeating the edge
#: pixel (class model visualisation), ``"replicate"`` repeats the edge pixel (works at any image size).
BLUR_PADDING = ("reflect", "replicate")
MAX_SIGMA = 1e4


def gaussian_blur(x: torch.Tensor, sigma: float, padding: str = "replicate") -> torch.Tensor:
    """Each channel of ``x`` (B,C,H,W) blurred by a Gaussian of std ``sigma`` pixels:

        k_t = exp(-t^2 / (2 sigma^2)) / sum_s exp(-s^2 / (2 sigma^2)),   t = -r..r,  r = max(1, ceil(3 sigma))

    separable: the rows filtered with k, then the columns; the border filled by ``padding`` (one of
    :data:`BLUR_PADDING`). ``sigma`` = 0 returns a copy. The NumPy twin is `xai_ref.scratch.gaussian_blur`.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    if not (isinstance(x, torch.Tensor) and x.dim() == 4 and x.is_floating_point()):
        raise TypeError(f"x must be a floating-point tensor (B,C,H,W), got "
                        f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    sigma = as_number(sigma, "sigma", 0, MAX_SIGMA)
    if padding not in BLUR_PADDING:
        raise ValueError(f"padding must be one of {BLUR_PADDING}, got {padding!r}")
    if sigma == 0:
        return x.clone()
    r = max(1, math.ceil(3 * sigma))
    if padding == "reflect" and r >= min(x.shape[2:]):
        raise ValueError(f"sigma={sigma} needs a {r}-pixel reflected border, more than the {tuple(x.shape[2:])} "
                         f"image has; use a smaller sigma or padding='replicate'")
    k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2 / (2 * sigma**2))
    k = k / k.sum()
    C = x.shape[1]
    pad = torch.nn.functional.pad
    x = torch.nn.functional.conv2d(pad(x, (r, r, 0, 0), mode=padding), k.view(1, 1, 1, -1).expand(C, 1, 1, -1),
                                   groups=C)
    return torch.nn.functional.conv2d(pad(x, (0, 0, r, r), mode=padding), k.view(1, 1, -1, 1).expand(C, 1, -1, 1),
                                      groups=C)
