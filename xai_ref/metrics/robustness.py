"""Is the explanation stable? Transform the image, and the map should follow (or stay, for noise).

For a transform T acting on images and on maps (the seminar's "injecting noise; rotating and translating
the image"), compare the map of the transformed image with the transformed map of the original image:

``rho = spearman(M(T x), T M(x))``, ``SSIM(M(T x), T M(x))``, on the pixels valid in both

(for a rotation or a translation, the pixels of T x that came from inside the original frame). Noise and
adversarial perturbations leave the map where it is: T M = M. The class explained is the one of the
original image, so an adversarial image is explained for the class it no longer predicts, as in the
Grad-CAM paper's adversarial experiment (Selvaraju et al., ICCV 2017, sec. 6.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import as_count, as_number, as_range, as_seed, is_int
from ..hooks import Hooks
from ..inputs import check_batch, check_logits, class_logits
from ._common import as_maps, model_scores, resolve_target
from .similarity import spearman, ssim


@dataclass(frozen=True)
class Transform:
    """A named transform: ``image`` maps (B,C,H,W) -> (B,C,H,W), ``map`` maps (B,H,W) -> (B,H,W) (where
    the explanation of the original should move). The valid region is where ``map`` of an all-ones map
    is 1 (pixels with content from inside the original frame).

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """

    name: str
    image: Callable[[torch.Tensor], torch.Tensor]
    map: Callable[[torch.Tensor], torch.Tensor]

    def valid(self, shape, device=None) -> torch.Tensor:
        """``(B,H,W)`` bool: the pixels where the transformed map is fully defined."""
        return self.map(torch.ones(shape, dtype=torch.float64, device=device)) >= 1 - 1e-6


def _clamp(clamp) -> tuple[float, float] | None:
    """The pixel range ``(low, high)`` to clamp images to, or None (no clamping)."""
    return None if clamp is None else as_range(clamp, "clamp", bounded=False)


def identity() -> Transform:
    """The identity: every similarity is 1 (a test of the machinery).

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    return Transform("identity", lambda x: x.clone(), lambda m: m.clone())


def gaussian_noise(sigma: float, seed: int = 0, clamp=(0.0, 1.0)) -> Transform:
    """``T x = clamp(x + sigma * n, *clamp)`` with ``n ~ N(0, 1)`` per pixel and channel (seeded); the map
    stays: ``T M = M``. ``clamp=None`` for no clamping.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    sigma, seed, clamp = as_number(sigma, "sigma", 0), as_seed(seed), _clamp(clamp)

    def image(x):
        gen = torch.Generator().manual_seed(seed)
        y = x + sigma * torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        return y if clamp is None else y.clamp(*clamp)

    return Transform(f"noise(sigma={sigma})", image, lambda m: m.clone())


def _rotate(t: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate the last two dims of ``t`` (B,[C,]H,W) by ``degrees`` (counter-clockwise on screen) about the
    image centre, bilinear, zeros outside the original frame."""
    squeeze = t.dim() == 3
    img = t[:, None] if squeeze else t
    H, W = img.shape[2:]
    a = math.radians(degrees)
    ys = torch.arange(H, dtype=img.dtype, device=img.device) + 0.5 - H / 2
    xs = torch.arange(W, dtype=img.dtype, device=img.device) + 0.5 - W / 2
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    # the output pixel at (x, y) takes the input at the position rotated back by -a
    xsrc = math.cos(a) * x - math.sin(a) * y
    ysrc = math.sin(a) * x + math.cos(a) * y
    grid = torch.stack([2 * (xsrc + W / 2) / W - 1, 2 * (ysrc + H / 2) / H - 1], -1)
    out = F.grid_sample(img, grid.expand(img.shape[0], H, W, 2), mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out[:, 0] if squeeze else out


def rotation(degrees: float) -> Transform:
    """Rotate the image and the map by ``degrees`` about the centre (bilinear; zeros outside).

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    degrees = as_number(degrees, "degrees")
    return Transform(f"rotation({degrees:g} deg)", lambda x: _rotate(x, degrees), lambda m: _rotate(m, degrees))


def _shift(t: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """``out[..., i, j] = t[..., i - dy, j - dx]``, zeros where that falls outside."""
    H, W = t.shape[-2:]
    out = torch.zeros_like(t)
    if abs(dx) >= W or abs(dy) >= H:
        return out
    src = t[..., max(0, -dy):H - max(0, dy), max(0, -dx):W - max(0, dx)]
    out[..., max(0, dy):H - max(0, -dy), max(0, dx):W - max(0, -dx)] = src
    return out


def translation(dx: int, dy: int) -> Transform:
    """Move the image and the map ``dx`` pixels right and ``dy`` down (whole pixels; zeros come in).

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    for v, name in ((dx, "dx"), (dy, "dy")):
        if not is_int(v):
            raise TypeError(f"{name} must be a whole number of pixels (int), got {v!r}")
    dx, dy = int(dx), int(dy)
    return Transform(f"translation({dx}, {dy})", lambda x: _shift(x, dx, dy), lambda m: _shift(m, dx, dy))


def fgsm(model: nn.Module, x: torch.Tensor, target=None, epsilon: float = 4 / 255, steps: int = 5,
         clamp=(0.0, 1.0), logits=None) -> torch.Tensor:
    """Adversarial images by iterative FGSM (Goodfellow et al., ICLR 2015; Kurakin et al., ICLR 2017).

    ``x_0 = x``; ``x_{t+1} = clip_{x, eps}(x_t + (eps/steps) sign(grad_x CE(f(x_t), c)))``: step up the
    cross-entropy of the class c (the prediction, or ``target``), staying within ``epsilon`` of x in every
    pixel (L-infinity) and inside ``clamp`` (None: no clamping). The model is left as it was. ``logits``:
    where the class scores are in a structured output (`xai_ref.inputs.class_logits`).

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    check_batch(model, x)
    steps, epsilon, clamp = as_count(steps, "steps"), as_number(epsilon, "epsilon", 0), _clamp(clamp)
    classes = resolve_target(model, x, target, logits=logits)
    alpha = epsilon / steps
    with torch.inference_mode(False), torch.enable_grad(), Hooks(model):   # gradients even inside torch.no_grad()
        adv = x.detach().clone()
        for _ in range(steps):
            adv.requires_grad_(True)
            loss = F.cross_entropy(class_logits(model(adv), logits), classes, reduction="sum")
            (g,) = torch.autograd.grad(loss, [adv])
            adv = adv.detach() + alpha * g.sign()
            adv = torch.minimum(torch.maximum(adv, x - epsilon), x + epsilon)
            if clamp is not None:
                adv = adv.clamp(*clamp)
    return adv.detach()


def adversarial(model: nn.Module, epsilon: float = 4 / 255, steps: int = 5, clamp=(0.0, 1.0),
                logits=None) -> Transform:
    """``T x = fgsm(model, x, epsilon=epsilon, steps=steps)`` against the model's own prediction; the map
    should stay: ``T M = M``.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    steps, epsilon, clamp = as_count(steps, "steps"), as_number(epsilon, "epsilon", 0), _clamp(clamp)
    check_logits(logits)  # now, not at the first image
    return Transform(f"adversarial(eps={epsilon:.4g})", lambda x: fgsm(model, x, None, epsilon, steps, clamp, logits),
                     lambda m: m.clone())


@dataclass
class Robustness:
    """Result of `robustness`: per image ``spearman`` and ``ssim`` (B,) between M(T x) and T M(x) on the
    ``valid`` pixels (B,H,W), and ``flipped`` (B,) bool: the prediction on T x differs from the class.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """

    transform: str
    spearman: torch.Tensor
    ssim: torch.Tensor
    valid: torch.Tensor
    flipped: torch.Tensor


def robustness(model: nn.Module, x: torch.Tensor, method: Callable, transform: Transform,
               target=None, logits=None) -> Robustness:
    """Similarity of the map of a transformed image to the transformed map (see the module docstring).

    ``method(model, x, target)`` returns a Trace or (B,H,W) maps at the image size (e.g. ``xr.grad_cam``).
    ``transform``: `identity`, `gaussian_noise`, `rotation`, `translation`, `adversarial` or your own
    `Transform`. ``target``: the class to explain (None: the prediction on the original image).
    ``logits``: where the class scores are in a structured output (`xai_ref.inputs.class_logits`); the
    method needs it too, e.g. ``functools.partial(xr.grad_cam, logits="out")``.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    check_batch(model, x)
    if not callable(method):
        raise TypeError(f"method must be a callable method(model, x, target) -> Trace or (B,H,W) map, got "
                        f"{type(method).__name__}")
    if not isinstance(transform, Transform):
        raise TypeError(f"transform must be a metrics.Transform (e.g. rotation(10)), got {type(transform).__name__}")
    classes = resolve_target(model, x, target, logits=logits)
    M = as_maps(method(model, x, classes), "the method's output", batch=x.shape[0])
    xt = transform.image(x)
    if not isinstance(xt, torch.Tensor) or xt.shape != x.shape:
        raise ValueError(f"transform.image must return a tensor of the batch's shape {tuple(x.shape)}, got "
                         f"{tuple(xt.shape) if isinstance(xt, torch.Tensor) else type(xt).__name__}")
    Mt = as_maps(method(model, xt, classes), "the method's output", batch=x.shape[0])
    ref = transform.map(M)
    valid = transform.valid(tuple(M.shape), M.device)
    flipped = (model_scores(model, xt, logits).argmax(1) != classes).cpu()
    return Robustness(transform.name, spearman(Mt.cpu(), ref.cpu(), mask=valid.cpu()),
                      ssim(Mt.cpu(), ref.cpu(), mask=valid.cpu()), valid.cpu(), flipped)
