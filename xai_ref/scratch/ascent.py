"""Gradient ascent on the input from scratch: class model visualisation and fooling images.

The NumPy twin of `xai_ref.ascent`. Saliency asks which pixels of a given image matter; gradient ascent
asks which image the network likes best (Simonyan, Vedaldi & Zisserman, ICLR 2014 workshop): start from a
zero image and repeat forward -> backward -> a small step up the gradient of the pre-softmax score.
"""
from __future__ import annotations

import math

import numpy as np

from ..checks import as_classes, as_count, as_number, as_range, as_seed, check_ascent_args
from ..compose import class_model_terms
from ..trace import Trace
from .gradients import check_batch, forward_backward, is_neuron
from .network import Sequential


def gaussian_blur(img: np.ndarray, sigma: float, padding: str = "replicate") -> np.ndarray:
    """Blur each channel of ``img`` (B,C,H,W) with a Gaussian of std ``sigma`` pixels:

        k_t = exp(-t^2 / (2 sigma^2)) / sum_s exp(-s^2 / (2 sigma^2)),   t = -r..r,  r = max(1, ceil(3 sigma))

    The 2-D Gaussian is separable: filter the rows with k, then the columns. ``padding``: ``"reflect"``
    (mirror without repeating the edge pixel) or ``"replicate"`` (repeat it), as `xai_ref.inputs.gaussian_blur`.

    Lesson: ``lessons/04_saliency_gradient_ascent.ipynb``.
    """
    r = max(1, math.ceil(3 * sigma))
    t = np.arange(-r, r + 1, dtype=img.dtype)
    k = np.exp(-t**2 / (2 * sigma**2))
    k = k / k.sum()
    img = np.pad(img, ((0, 0), (0, 0), (r, r), (r, r)), mode={"reflect": "reflect", "replicate": "edge"}[padding])
    img = np.lib.stride_tricks.sliding_window_view(img, 2 * r + 1, axis=3) @ k    # along the width
    return np.lib.stride_tricks.sliding_window_view(img, 2 * r + 1, axis=2) @ k   # along the height


def _norm(g: np.ndarray) -> np.ndarray:
    """Per-image L2 norm of (B, ...) -> (B,), at least 1e-12 (so dividing by it is safe)."""
    return np.maximum(np.sqrt((g.reshape(len(g), -1) ** 2).sum(1)), 1e-12)


def class_model(net: Sequential, target, shape=(3, 64, 64), steps: int = 200, lr: float = 1.0,
                l2: float = 1e-3, jitter: int = 0, blur_every: int = 0, blur_sigma: float = 0.5,
                init="zeros", seed: int = 0, pixel_range=(0.0, 1.0), snapshot_every: int = 10) -> Trace:
    """Class model visualisation by gradient ascent:

        I* = argmax_I  J(I) = S_c(I) - lambda ||I||_2^2
        each step:  I <- clamp(I + lr * grad J / ||grad J||),   grad J = dS_c/dI - 2 lambda I

    Optionally: before each step roll the image by a random offset in ``[-jitter, jitter]`` (undone after
    the step; drawn from ``np.random.default_rng(seed)``), and every ``blur_every`` steps blur with a
    Gaussian of std ``blur_sigma``. ``target``: an int, a sequence (one image per entry) or a `Neuron`.
    ``init``: "zeros" (as in the paper), "random" (0.01 * standard normal from ``seed``) or an image
    array (C,H,W) / (B,C,H,W) to continue from. ``shape`` is one
    image's (C,H,W).

    Terms: ``I0``, ``S``, ``R`` = lambda ||I||^2, ``J`` = S - R, ``grad_norm`` (steps,B),
    ``snapshots`` (n,B,C,H,W) every ``snapshot_every`` steps (listed in ``meta["snapshot_steps"]``), and
    ``image`` (B,C,H,W). With ``jitter=0`` this follows `xai_ref.class_model` step for step.

    Lesson: ``lessons/04_saliency_gradient_ascent.ipynb``.
    """
    check_ascent_args(shape, steps, lr, l2, jitter, blur_every, blur_sigma, pixel_range)
    seed, snapshot_every = as_seed(seed), as_count(snapshot_every, "snapshot_every")
    dtype = next(l.W.dtype for l in net.layers if hasattr(l, "W"))
    classes = None if is_neuron(target) else as_classes(target, 1)
    n = 1 if classes is None else len(classes)
    rng = np.random.default_rng(seed)
    if isinstance(init, np.ndarray):
        if init.shape not in (tuple(shape), (1, *shape), (n, *shape)):
            raise ValueError(f"an init image must have shape {tuple(shape)} or ({n}, {', '.join(map(str, shape))}), "
                             f"got {init.shape}")
        I = np.broadcast_to(init.astype(dtype), (n, *shape)).copy()  # continue from a given image
    elif isinstance(init, str) and init == "zeros":
        I = np.zeros((n, *shape), dtype=dtype)
    elif isinstance(init, str) and init == "random":
        I = 0.01 * rng.standard_normal((n, *shape)).astype(dtype)
    else:
        raise ValueError(f"init must be 'zeros', 'random' or an image array of shape {tuple(shape)}, got {init!r}")
    I = np.clip(I, *pixel_range)
    t = Trace("class_model", meta={"target": None,
                                   "lr": lr, "l2": l2, "jitter": jitter, "blur_every": blur_every,
                                   "blur_sigma": blur_sigma, "seed": seed, "snapshot_steps": []})
    t.add("I0", I.copy())
    curves = {k: [] for k in ("S", "R", "grad_norm")}
    snapshots = []
    for step in range(steps):
        dy, dx = rng.integers(-jitter, jitter + 1, size=2) if jitter else (0, 0)
        shifted = np.roll(I, (dy, dx), axis=(2, 3))
        p = forward_backward(net, shifted, target if classes is None else classes)
        grad = np.roll(p.dY_dx, (-dy, -dx), axis=(2, 3)) - 2 * l2 * I
        norm = _norm(grad)
        curves["S"].append(p.y)
        curves["R"].append(l2 * (I.reshape(n, -1) ** 2).sum(1))
        curves["grad_norm"].append(norm)
        I = np.clip(I + lr * grad / norm[:, None, None, None], *pixel_range)
        if blur_every and (step + 1) % blur_every == 0:
            I = np.clip(gaussian_blur(I, blur_sigma, padding="reflect"), *pixel_range)
        if (step + 1) % snapshot_every == 0 or step == steps - 1:
            snapshots.append(I.copy())
            t.meta["snapshot_steps"].append(step + 1)
    t.meta["target"] = p.classes                    # the classes, as the pass checked them (None: a neuron)
    return class_model_terms(t, curves, snapshots, I, np.stack)


def fooling_image(net: Sequential, x: np.ndarray, target, lr: float = 1.0, max_steps: int = 100,
                  pixel_range=None) -> Trace:
    """Fooling images (Szegedy et al. 2014, as in CS231n): nudge x until the net predicts ``target``.

        x_{k+1} = x_k + lr * g_k / ||g_k||,   g_k = dS_t/dx (x_k),   for the images not yet fooled

    until each image is classified as its target or ``max_steps`` is reached (optionally clamped to
    ``pixel_range``). Terms: ``S`` (steps,B) the target score, ``pred`` (steps,B) the predicted class,
    ``image`` (B,C,H,W), ``delta`` = image - x, ``fooled`` (B,) bool.

    Lesson: ``lessons/04_saliency_gradient_ascent.ipynb``.
    """
    check_batch(net, x)
    max_steps, lr = as_count(max_steps, "max_steps"), as_number(lr, "lr", 0, low_open=True)
    if pixel_range is not None:
        pixel_range = as_range(pixel_range, "pixel_range", bounded=False)
    I = x.copy()
    classes = as_classes(target, x.shape[0])
    t = Trace("fooling_image", meta={"target": None, "lr": lr})
    c = np.asarray(classes)
    S, pred = [], []
    for k in range(max_steps + 1):
        p = forward_backward(net, I, classes)
        S.append(p.y)
        pred.append(p.output.argmax(1))
        active = pred[-1] != c                                   # (B,) images not fooled yet
        if not active.any() or k == max_steps:
            break
        g = p.dY_dx
        I = I + lr * g / _norm(g)[:, None, None, None] * active[:, None, None, None]
        if pixel_range is not None:
            I = np.clip(I, *pixel_range)
    t.meta["target"] = p.classes
    t.add("S", np.stack(S))
    pred_t = t.add("pred", np.stack(pred))
    image = t.add("image", I)
    t.add("delta", image - x)
    t.add("fooled",
          pred_t[-1] == c)
    return t
