"""Gradient ascent on the input: class model visualisation and fooling images.

Saliency asks which pixels of a given image matter; gradient ascent asks which image the network
would like best (Simonyan, Vedaldi & Zisserman, ICLR 2014 workshop): start from a zero image and
repeat forward -> backward -> small step up the gradient of the pre-softmax score.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from .checks import as_classes, as_count, as_flag, as_number, as_range, as_seed, check_ascent_args
from .compose import class_model_terms
from .gradients import Neuron, forward_backward
from .inputs import check_batch, check_logits, gaussian_blur
from .trace import Trace


def class_model(model: nn.Module, target, shape=(3, 64, 64), steps: int = 200, lr: float = 1.0,
                l2: float = 1e-3, jitter: int = 0, blur_every: int = 0, blur_sigma: float = 0.5,
                init="zeros", seed: int = 0, pixel_range=(0.0, 1.0), snapshot_every: int = 10,
                progress: bool = False, logits=None) -> Trace:
    """Class model visualisation: ``I* = argmax_I S_c(I) - l2 ||I||^2`` by gradient ascent.

    Each step (CS231n's recipe): shift the image by a random offset in ``[-jitter, jitter]`` (rolled,
    undone after the step), compute ``J = S_c(I) - l2 ||I||^2`` and its gradient, step
    ``I <- I + lr * dJ/dI / ||dJ/dI||`` (per image), clamp to ``pixel_range``, and every ``blur_every``
    steps blur with a Gaussian of std ``blur_sigma``. ``target``: an int, a sequence (one image per
    entry) or a `Neuron` (activation maximisation of a channel at any layer). ``init``: ``"zeros"`` (as
    in the paper), ``"random"`` (small noise from ``seed``) or an image tensor (C,H,W) or (B,C,H,W) to
    continue from (e.g. a previous run's ``image``, with another ``seed`` for the jitter). ``shape`` is one
    image's (C,H,W); choose ``pixel_range`` as the model's valid input range (for EfficientNet-Lite0 use
    ``xai_ref.data.photos.PIXEL_RANGE``).

    The trace: ``I0`` the start, ``S`` (steps,B) the score, ``R`` (steps,B) the penalty ``l2 ||I||^2``,
    ``J`` = S - R, ``grad_norm`` (steps,B), ``snapshots`` (n,B,C,H,W) every ``snapshot_every`` steps
    (steps listed in ``meta["snapshot_steps"]``) and ``image`` the result (B,C,H,W).

    Lesson: ``lessons/04_saliency_gradient_ascent.ipynb``.
    """
    check_ascent_args(shape, steps, lr, l2, jitter, blur_every, blur_sigma, pixel_range)
    seed, snapshot_every = as_seed(seed), as_count(snapshot_every, "snapshot_every")
    progress = as_flag(progress, "progress")
    check_logits(logits)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    param = next(model.parameters(), None)
    if param is None:
        raise ValueError("class_model needs a model with parameters (their dtype and device set the image's)")
    classes = None if isinstance(target, Neuron) else as_classes(target, 1)
    n = 1 if classes is None else len(classes)
    gen = torch.Generator().manual_seed(seed)
    I = _start(init, n, tuple(shape), gen, param.dtype).clamp(*pixel_range).to(param.device)
    t = Trace("class_model", meta={"target": None, "lr": lr, "l2": l2,
                                   "jitter": jitter, "blur_every": blur_every, "blur_sigma": blur_sigma, "seed": seed,
                                   "snapshot_steps": []})
    t.add("I0", I.clone())
    curves = {k: [] for k in ("S", "R", "grad_norm")}
    snapshots = []
    for step in tqdm(range(steps), desc="gradient ascent", disable=not progress):
        dy, dx = (torch.randint(-jitter, jitter + 1, (2,), generator=gen).tolist() if jitter else (0, 0))
        shifted = torch.roll(I, (dy, dx), dims=(2, 3))
        p = forward_backward(model, shifted, target if classes is None else classes, logits=logits)
        grad = torch.roll(p.dY_dx, (-dy, -dx), dims=(2, 3)) - 2 * l2 * I
        norm = grad.flatten(1).norm(dim=1).clamp(min=1e-12)
        curves["S"].append(p.y)
        curves["R"].append(l2 * I.flatten(1).pow(2).sum(1))
        curves["grad_norm"].append(norm)
        I = (I + lr * grad / norm[:, None, None, None]).clamp(*pixel_range)
        if blur_every and (step + 1) % blur_every == 0:
            I = gaussian_blur(I, blur_sigma, padding="reflect").clamp(*pixel_range)
        if (step + 1) % snapshot_every == 0 or step == steps - 1:
            snapshots.append(I.clone())
            t.meta["snapshot_steps"].append(step + 1)
    t.meta["target"] = None if p.classes is None else p.classes.cpu()   # as the pass checked them (None: a neuron)
    return class_model_terms(t, curves, snapshots, I, torch.stack)


def _start(init, n: int, shape: tuple, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """The starting images (n,C,H,W) of `class_model` (see its ``init``)."""
    if isinstance(init, torch.Tensor):
        if tuple(init.shape) not in (shape, (1, *shape), (n, *shape)):
            raise ValueError(f"an init image must have shape {shape} or ({n}, {', '.join(map(str, shape))}), "
                             f"got {tuple(init.shape)}")
        if not (init.is_floating_point() and torch.isfinite(init).all()):
            raise ValueError(f"an init image must hold finite floating-point pixels, got dtype {init.dtype}"
                             + ("" if not init.is_floating_point() else " with NaN or infinite values"))
        return init.detach().to(dtype).expand(n, *shape).clone()  # continue from a given image
    if isinstance(init, str) and init == "zeros":
        return torch.zeros(n, *shape, dtype=dtype)
    if isinstance(init, str) and init == "random":
        return 0.01 * torch.randn(n, *shape, generator=gen, dtype=dtype)
    raise ValueError(f"init must be 'zeros', 'random' or an image tensor of shape {shape}, got {init!r}")


def fooling_image(model: nn.Module, x: torch.Tensor, target, lr: float = 1.0, max_steps: int = 100,
                  pixel_range=None, progress: bool = False, logits=None) -> Trace:
    """Fooling images (Szegedy et al. 2014, as in CS231n): nudge x until the model predicts ``target``.

    Each step: ``x <- x + lr * dS_t/dx / ||dS_t/dx||`` for the images not yet fooled, until each is
    classified as its target or ``max_steps`` is reached (optionally clamped to ``pixel_range``). The
    trace: ``S`` (steps,B) the target score, ``pred`` (steps,B) the predicted class, ``image`` the
    result, ``delta`` = image - x (usually invisible to a human), and ``fooled`` (B,) bool.

    Lesson: ``lessons/04_saliency_gradient_ascent.ipynb``.
    """
    check_batch(model, x)
    max_steps, lr = as_count(max_steps, "max_steps"), as_number(lr, "lr", 0, low_open=True)
    progress = as_flag(progress, "progress")
    check_logits(logits)
    if pixel_range is not None:
        pixel_range = as_range(pixel_range, "pixel_range", bounded=False)
    I = x.detach().clone()
    classes = as_classes(target, x.shape[0])
    t = Trace("fooling_image", meta={"target": None, "lr": lr})
    S, pred = [], []
    for k in tqdm(range(max_steps + 1), desc="fooling", disable=not progress):
        p = forward_backward(model, I, classes, logits=logits)
        c = p.classes.to(x.device)  # the target classes, checked against the model's classes by the pass
        S.append(p.y)
        pred.append(p.scores.argmax(1))
        active = pred[-1] != c
        if not active.any() or k == max_steps:
            break
        g = p.dY_dx
        step = lr * g / g.flatten(1).norm(dim=1).clamp(min=1e-12)[:, None, None, None]
        I = I + step * active[:, None, None, None]
        if pixel_range is not None:
            I = I.clamp(*pixel_range)
    t.meta["target"] = p.classes.cpu()
    t.add("S", torch.stack(S))
    pred_t = t.add("pred", torch.stack(pred))
    image = t.add("image", I)
    t.add("delta", image - x)
    t.add("fooled", pred_t[-1] == c)
    return t
