"""Argument checks shared by the PyTorch methods and their NumPy twins (NumPy and the standard library
only): each returns the value in its plain Python type, or raises a TypeError / ValueError that names the
argument and the valid range. NumPy integers and floats are accepted wherever an int or a float is.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


#: The three ways a ReLU passes a signal down (`xai_ref.hooks.relu_backward`): the gradient (saliency),
#: deconvnet, guided backpropagation.
RULES = ("backprop", "deconvnet", "guided")


def as_rule(rule, name: str = "rule") -> str:
    """One of :data:`RULES` (how ReLUs pass a signal down)."""
    if not isinstance(rule, str) or rule not in RULES:
        raise ValueError(f"{name} must be a ReLU rule, one of {RULES}, got {rule!r}")
    return rule


def as_pair(v, name: str, low: int = 1) -> tuple[int, int]:
    """An int >= ``low`` or a pair of them (NumPy integers accepted) as ``(h, w)``: a window, a stride, a
    kernel (``low=1``, positive), a padding (``low=0``)."""
    pair = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(pair) != 2:
        what = "positive int" if low == 1 else f"int >= {low}"
        raise ValueError(f"{name} must be a {what} or a pair of {what}s, got {v!r}")
    return as_count(pair[0], name, low), as_count(pair[1], name, low)


def check_wrt(wrt) -> tuple[bool, bool]:
    """``(wrt_input, wrt_layer)`` from ``wrt``, a non-empty tuple of ``"input"`` and/or ``"layer"``."""
    if not isinstance(wrt, tuple) or not wrt or not set(wrt) <= {"input", "layer"}:
        raise ValueError(f"wrt must be a non-empty tuple of 'input' and/or 'layer', got {wrt!r}")
    return "input" in wrt, "layer" in wrt


def is_int(v) -> bool:
    """An int or a NumPy integer (not a bool)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def as_classes(target, n: int) -> list[int]:
    """``target`` as a list of class indices: an int repeated ``n`` times, or a non-empty sequence of ints
    (a list, a tuple, a NumPy array or a torch tensor) as it is."""
    if hasattr(target, "tolist") and hasattr(target, "ndim"):  # an array or a tensor (a 0-d one: its number)
        target = target.tolist()
    if is_int(target):
        return [int(target)] * n
    if isinstance(target, (list, tuple)) and target and all(is_int(c) for c in target):
        return [int(c) for c in target]
    raise TypeError(f"target must be a class index (int) or a non-empty sequence of class indices (one per "
                    f"image), got {target!r}")


def as_index(v, name: str) -> int:
    """An int >= 0 (NumPy integers accepted)."""
    if not is_int(v):
        raise TypeError(f"{name} must be an int >= 0, got {v!r}")
    if v < 0:
        raise ValueError(f"{name} must be an int >= 0, got {v!r}")
    return int(v)


def as_count(v, name: str, low: int = 1, high: int | None = None) -> int:
    """An int in ``[low, high]`` (no upper bound when ``high`` is None; NumPy integers accepted): a count,
    a size, a number of steps, a batch size."""
    span = f">= {low}" if high is None else f"in [{low}, {high}]"
    if not is_int(v):
        raise TypeError(f"{name} must be an int {span}, got {v!r}")
    if not (low <= v and (high is None or v <= high)):
        raise ValueError(f"{name} must be an int {span}, got {v!r}")
    return int(v)


#: The largest image side or channel count an argument may ask for: a guard against typos (10**30) that
#: would otherwise fail deep inside torch.
MAX_SIZE = 2**16

#: The largest exponent p of an attention map: |A|^p overflows float32 for p much above this.
MAX_P = 64

#: The largest seed a torch.Generator takes (and any NumPy generator).
MAX_SEED = 2**63 - 1


def as_seed(v, name: str = "seed") -> int:
    """A random seed: an int in ``[0, 2**63 - 1]``."""
    return as_count(v, name, 0, MAX_SEED)


def as_flag(v, name: str) -> bool:
    """True or False (a NumPy bool accepted); anything else is refused rather than read as truthy."""
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {v!r}")
    return bool(v)


def as_choice(v, name: str, choices: tuple) -> str:
    """One of ``choices`` (strings)."""
    if not isinstance(v, str) or v not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {v!r}")
    return v


def as_number(v, name: str, low: float = -math.inf, high: float = math.inf, low_open: bool = False) -> float:
    """A finite real number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a number, got {v!r}")
    v = float(v)
    inside = (v > low if low_open else v >= low) and v <= high
    if not (math.isfinite(v) and inside):
        span = f"{'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"{name} must be a finite number in {span}, got {v!r}")
    return v


def as_range(v, name: str, bounded: bool = True) -> tuple[float, float]:
    """A pair ``(low, high)`` of numbers with ``low < high``: finite, or with ``bounded=False`` possibly
    infinite (no bound on that side, e.g. ``pixel_range=(-inf, inf)``: no clamping); never NaN."""
    if not isinstance(v, (tuple, list)) or len(v) != 2:
        raise TypeError(f"{name} must be a pair (low, high), got {v!r}")
    low, high = (as_number(a, name) if bounded else _as_bound(a, name) for a in v)
    if not low < high:
        raise ValueError(f"{name} must have low < high, got {v!r}")
    return low, high


def _as_bound(v, name: str) -> float:
    """A real number or +-inf, not NaN."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a pair of numbers (low, high), got {v!r} in it")
    if math.isnan(v):
        raise ValueError(f"{name} must not contain NaN")
    return float(v)


def check_ascent_args(shape, steps, lr, l2, jitter, blur_every, blur_sigma, pixel_range) -> None:
    """The settings of gradient ascent (`xai_ref.class_model` and its NumPy twin)."""
    if not (isinstance(shape, (tuple, list)) and len(shape) == 3
            and all(is_int(s) and 0 < s <= MAX_SIZE for s in shape)):
        raise ValueError(f"shape must be one image's (C, H, W) with sizes in [1, {MAX_SIZE}], e.g. (3, 64, 64), "
                         f"got {shape!r}")
    as_count(steps, "steps")
    as_number(lr, "lr", 0, low_open=True)
    as_number(l2, "l2", 0)
    as_count(jitter, "jitter", 0, max(shape[1:]))  # a larger roll repeats a smaller one
    as_count(blur_every, "blur_every", 0)
    as_number(blur_sigma, "blur_sigma", 0)
    if blur_every and not blur_sigma > 0:
        raise ValueError(f"blur_sigma must be > 0 when blur_every > 0 (blur_every=0 switches blurring off), "
                         f"got {blur_sigma!r}")
    as_range(pixel_range, "pixel_range", bounded=False)


def check_gap_head(f_ndim: int, K: int, name: str, fc_name: str, pooled_ok: bool, output_ok: bool) -> None:
    """CAM's requirement (both twins): the layer's maps ``f`` (``f_ndim`` dimensions, ``K`` maps) are averaged
    and fed to the linear layer ``fc_name`` (``pooled_ok``: ``W GAP(f) + b`` equals that layer's output), and
    the model's output is that layer's output (``output_ok``)."""
    if f_ndim != 4:
        raise ValueError(f"CAM needs the layer before GAP, with (B,K,h,w) output; {name!r} is not one")
    if not pooled_ok:
        raise ValueError(f"CAM needs GAP followed by one linear layer: the input of {fc_name!r} is not the "
                         f"spatial average of the {K} feature maps of {name!r}. For a flatten + "
                         "fully-connected head use grad_cam, which needs no particular head")
    if not output_ok:
        raise ValueError(f"CAM needs the model's output to be the class scores computed by {fc_name!r}, "
                         "but something comes after it; pass the final linear layer as fc")


def check_spatial(method: str, layer: str, shape: tuple) -> None:
    """A Grad-CAM-family method needs a layer whose output is maps (B,K,h,w) (both twins)."""
    if len(shape) != 4:
        tokens = ("; if they are a transformer's tokens (B, 1 + h*w, C), pass reshape=xr.token_grid"
                  if len(shape) == 3 else "")
        raise ValueError(f"{method} needs a layer with spatial output (B,K,h,w); layer {layer!r} gives "
                         f"{tuple(shape)}. Pick a convolutional layer (layer=None picks the last one){tokens}")
