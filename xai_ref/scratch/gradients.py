"""What every method needs, in NumPy: checks, targets, one forward + one backward pass, upsampling.

The NumPy twin of `xai_ref.gradients` and `xai_ref.inputs`. There is no autograd here: to get the
gradient of the target score ``y^c`` we build the signal ``dy/d(output)`` by hand (a one-hot vector, or a
one-hot map for a single neuron) and pass it down with ``Sequential.backward``, which applies the chosen
ReLU rule at every ReLU. Every layer's signal is kept in ``net.grads``, so one backward pass gives the
gradient at a layer (``dY_dA``) and at the input (``dY_dx``) together.

    >>> p = forward_backward(net, x, target=None, layer=None)     # doctest: +SKIP
    >>> p.y, p.A, p.dY_dA, p.dY_dx                                  # (B,), (B,K,h,w), (B,K,h,w), (B,C,H,W)
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..checks import check_wrt
from .layers import Conv2d
from .network import Sequential


# --- what to explain ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Neuron:
    """A single intermediate neuron as a target (Zeiler & Fergus 2014: "pick a single neuron").

    ``layer``: a layer name (or index) of the scratch network; ``channel``: the feature map k;
    ``position``: ``(i, j)``, ``"max"`` (each image's strongest activation in the map) or ``"sum"`` (the
    map's total response). Same meaning as `xai_ref.Neuron`; any object with these three attributes
    (an `xai_ref.Neuron` whose layer is a name, for instance) is accepted as well.

    Lesson: ``lessons/03_deconvnet_guided_backprop.ipynb``.
    """

    layer: str | int
    channel: int
    position: tuple[int, int] | str = "max"


def is_neuron(target) -> bool:
    """Duck typing: anything with ``layer``, ``channel`` and ``position`` is a neuron target."""
    return all(hasattr(target, a) for a in ("layer", "channel", "position"))


def check_batch(net: Sequential, x) -> None:
    """``x`` must be a finite floating-point NumPy batch ``(B,C,H,W)``, B >= 1, with the net's channels."""
    if not isinstance(net, Sequential):
        raise TypeError(f"net must be a scratch Sequential, got {type(net).__name__}; "
                        "convert a torch nn.Sequential with xai_ref.scratch.from_torch(model)")
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a NumPy batch (B,C,H,W), got {type(x).__name__}; "
                        "convert with np.asarray(x, dtype=np.float64)")
    if x.ndim != 4:
        hint = " (for one image use x[None])" if x.ndim == 3 else ""
        raise ValueError(f"x must be a batch of shape (B,C,H,W), got shape {x.shape}{hint}")
    if x.shape[0] == 0:
        raise ValueError("x is an empty batch (B=0); pass at least one image")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be a floating-point array, got {x.dtype}; for uint8 pixels use x / 255")
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values; explanations need finite pixels")
    conv = next((l for l in net.layers if isinstance(l, Conv2d)), None)
    if conv is not None and conv.W.shape[1] != x.shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels but the net's first convolution expects "
                         f"{conv.W.shape[1]}; x must be (B,{conv.W.shape[1]},H,W)")


def target_classes(target, B: int, n_classes: int, default=None) -> np.ndarray:
    """``target`` as a ``(B,)`` int64 array of class indices in ``[0, n_classes)``.

    ``target``: None (``default``, the predicted classes), an int (that class for every image) or a
    sequence / 1-D array of B ints.
    """
    if target is None:
        if default is None:
            raise ValueError("target=None means the predicted class, which is not known here; pass a class")
        return np.asarray(default, dtype=np.int64)
    if isinstance(target, (bool, np.bool_, float, np.floating)):
        raise TypeError(f"target must be an int class index, a sequence of B ints or None, got {target!r}")
    if isinstance(target, numbers.Integral):
        c = np.full(B, int(target), dtype=np.int64)
    elif isinstance(target, (list, tuple, np.ndarray)):
        c = np.asarray(target)
        if c.ndim != 1 or c.shape[0] != B:
            raise ValueError(f"target has {len(c) if c.ndim else 'no'} entries but the batch has {B} "
                             f"images; pass one class per image, or one int for all")
        if not np.issubdtype(c.dtype, np.integer):
            raise TypeError(f"target classes must be integers, got dtype {c.dtype}")
        c = c.astype(np.int64)
    else:
        raise TypeError(f"target must be None, an int or a sequence of B ints, got {type(target).__name__}"
                        " (callable targets need autograd: use the PyTorch version)")
    bad = (c < 0) | (c >= n_classes)
    if bad.any():
        raise ValueError(f"target class {c[bad][0]} is out of range: the model has {n_classes} "
                         f"classes, so valid targets are 0..{n_classes - 1}")
    return c


def class_signal(output: np.ndarray, target) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scores to explain and the signal that starts the backward pass, for class targets.

    output: (B, classes) scores S. Returns ``y`` (B,) = S[b, c_b], ``c`` (B,) and ``dy_dS`` (B, classes),
    the one-hot rows e_{c_b}: the derivative of y_b with respect to the scores.
    """
    if output.ndim != 2:
        raise ValueError(f"a class target needs (B, classes) scores from the net, got output shape "
                         f"{output.shape}; pass a Neuron target instead")
    B = output.shape[0]
    c = target_classes(target, B, output.shape[1], default=output.argmax(1))
    dy_dS = np.zeros_like(output)
    dy_dS[np.arange(B), c] = 1.0
    return output[np.arange(B), c], c, dy_dS


def neuron_signal(A: np.ndarray, neuron) -> tuple[np.ndarray, np.ndarray]:
    """The neuron's value in each image and the signal that starts the backward pass at its layer.

    A: (B,K,h,w) the layer's output. ``y_b`` is ``A[b,k,i,j]`` (a position), ``max_ij A[b,k,i,j]``
    ("max": the first maximum, as torch's argmax) or ``sum_ij A[b,k,i,j]`` ("sum"); ``dy_dA`` (B,K,h,w) is
    one at that position (at every position of map k for "sum") and zero elsewhere.
    """
    if not isinstance(A, np.ndarray) or A.ndim != 4:
        raise ValueError(f"a Neuron target needs a layer with (B,K,h,w) output; layer {neuron.layer!r} "
                         f"gives {np.shape(A)}")
    B, K, h, w = A.shape
    k = neuron.channel
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral) or not 0 <= k < K:
        raise ValueError(f"neuron channel must be an int in 0..{K - 1} (the layer has {K} feature maps), got {k!r}")
    fmap = A[:, k].reshape(B, h * w)
    dy_dA = np.zeros_like(A)
    if isinstance(neuron.position, str) and neuron.position == "sum":
        dy_dA[:, k] = 1.0
        return fmap.sum(1), dy_dA
    if isinstance(neuron.position, str) and neuron.position == "max":
        idx = fmap.argmax(1)
    elif isinstance(neuron.position, str):
        raise ValueError(f"neuron position must be (i, j), 'max' or 'sum', got {neuron.position!r}")
    else:
        i, j = neuron.position
        if not (0 <= i < h and 0 <= j < w):
            raise ValueError(f"neuron position {(i, j)} is outside the {h}x{w} feature map")
        idx = np.full(B, i * w + j)
    dy_dA[np.arange(B), k, idx // w, idx % w] = 1.0
    return fmap[np.arange(B), idx], dy_dA


# --- which layer ----------------------------------------------------------------------------------


def layer_name(net: Sequential, layer) -> str:
    """A layer given by name, index or None -> its name. None: the last layer whose output (in the last
    forward pass) is a spatial map (B,K,h,w) with h*w > 1, as in the PyTorch version."""
    if layer is None:
        spatial = [n for n in net.names if _is_spatial(net.activations.get(n))]
        if not spatial:
            raise ValueError("the net produced no spatial (B,K,h,w) output with h*w > 1, so there is no "
                             "default layer; pass layer= explicitly")
        return spatial[-1]
    if isinstance(layer, (str, numbers.Integral)) and not isinstance(layer, bool):
        return net.names[net._index(layer)]
    raise TypeError(f"layer must be a layer name (str), an index or None, got {type(layer).__name__}")


def _is_spatial(a) -> bool:
    return isinstance(a, np.ndarray) and a.ndim == 4 and a.shape[2] * a.shape[3] > 1


# --- one forward and one backward pass ------------------------------------------------------------


@dataclass
class Pass:
    """What one forward + backward pass produced."""

    output: np.ndarray              # the net's output
    y: np.ndarray                   # (B,) the target scores y^c
    classes: np.ndarray | None      # (B,) the target classes c (None for a neuron target)
    dY_dx: np.ndarray | None        # (B,C,H,W) signal at the input
    A: np.ndarray | None            # (B,K,h,w) the layer's activation
    dY_dA: np.ndarray | None        # (B,K,h,w) signal at the layer's output
    layer: str | None               # the layer's name


def forward_backward(net: Sequential, x: np.ndarray, target=None, *, wrt: tuple[str, ...] = ("input",),
                     layer=None, rule: str = "backprop") -> Pass:
    """Forward ``x``, take each image's target score ``y^c``, pass ``dy/dy = 1`` down to the layer / input.

    ``target``: None / int / sequence of B ints, or a `Neuron`. ``wrt``: ``("input",)``, ``("layer",)``
    or both: where to read the signal. ``layer``: a name, index or None (the last spatial layer), used
    with ``"layer"`` in ``wrt``. ``rule``: how ReLUs pass the signal down (backprop, deconvnet, guided).
    Images do not interact, so one pass explains the whole batch. Without ``"input"`` the pass stops at
    the layer (the layers below it are not visited).

    Lesson: ``lessons/03_deconvnet_guided_backprop.ipynb``.
    """
    check_batch(net, x)
    wrt_input, wrt_layer = check_wrt(wrt)
    output = net.forward(x)
    if is_neuron(target):
        start = layer_name(net, target.layer)
        y, signal = neuron_signal(net.activations[start], target)
        classes = None
    else:
        start = net.names[-1]
        y, classes, signal = class_signal(output, target)
    name = layer_name(net, layer) if wrt_layer else None
    above_start = name is not None and net.names.index(name) > net.names.index(start)
    stop = name if (name is not None and not wrt_input and not above_start) else None
    dY_dx = net.backward(signal, rule, start=start, stop=stop)
    A = dY_dA = None
    if name is not None:
        A = net.activations[name]
        # a layer above the neuron gets no signal: its gradient is zero (as autograd's allow_unused)
        dY_dA = np.zeros_like(A) if above_start else net.grads[name]
    return Pass(output, y, classes, dY_dx if wrt_input else None, A, dY_dA, name)


# --- bilinear upsampling --------------------------------------------------------------------------


def interpolation_matrix(n_out: int, n_in: int, dtype=np.float64) -> np.ndarray:
    """(n_out, n_in) matrix R of 1-D linear interpolation, so that ``up = R @ v`` (align_corners=False).

    Output pixel ``o`` looks at the source coordinate ``s = max((o + 0.5) n_in/n_out - 0.5, 0)`` and mixes
    its two neighbours ``i0 = floor(s)``, ``i1 = min(i0 + 1, n_in - 1)`` with weights ``1 - l`` and
    ``l = s - i0`` (torch.nn.functional.interpolate's convention).
    """
    s = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.floor(s).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = s - i0
    R = np.zeros((n_out, n_in), dtype=dtype)
    np.add.at(R, (np.arange(n_out), i0), 1 - lam)
    np.add.at(R, (np.arange(n_out), i1), lam)
    return R


def resize(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of maps ``(B,h,w)`` to ``(B,H,W)``: ``up(M) = R_H M R_W^T`` (align_corners=False).

    Bilinear interpolation is separable: interpolate the rows, then the columns.

    Lesson: ``lessons/02_cam.ipynb``.
    """
    H, W = size
    h, w = m.shape[1:]
    return interpolation_matrix(H, h, m.dtype) @ m @ interpolation_matrix(W, w, m.dtype).T
