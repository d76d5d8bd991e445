"""What every explorer does first: turn ``(model, image, ...)`` arguments into a model, an input batch and
the picture of it, with the shipped defaults; list a model's layers and name its classes.

An explorer accepts the same things the ``xai_ref`` functions accept, and a few shortcuts:

* ``model``: an ``nn.Module``, a name for ``xai_ref.models.load`` (``"nin_shapes"``, ``"vgg_shapes"``,
  ``"efficientnet_lite0"``), or ``None`` for the explorer's default shapes net.
* ``image``: a batch ``(B,C,H,W)`` or one image ``(C,H,W)`` tensor (the first image is explained), a photo
  name from ``xai_ref.data.photos.NAMES``, a uint8 picture ``(H,W,3)``, or ``None`` (a shapes image for a
  shapes net, the cat-and-coffee photo for EfficientNet).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from xai_ref.data import photos, shapes
from xai_ref.hooks import Hooks, LayerReuseWarning
from xai_ref.layer_names import split_call
from xai_ref.inputs import class_logits
from xai_ref.models import efficientnet, load, shapes_nets, weights_path

from . import render

#: Where the shapes nets see their pixels; photos use ``photos.PIXEL_RANGE``.
SHAPES_RANGE = (0.0, 1.0)


def resolve_model(model, default: str = "nin_shapes") -> nn.Module:
    """An ``nn.Module`` in eval mode from a module, a model name, or None (``default``).

    A shapes net whose trained weights are not in the package yet is built untrained (seed 0), with a
    warning: the explorer still works, its explanations just explain an untrained net.
    """
    if model is None:
        model = default
    if isinstance(model, str):
        if model in shapes_nets.BUILDERS and not weights_path(model).is_file():
            warnings.warn(f"no trained weights for {model!r} yet (xai_ref/models/weights/{model}.pt); "
                          "using an untrained network", RuntimeWarning, stacklevel=3)
            with torch.random.fork_rng():
                torch.manual_seed(0)
                return shapes_nets.BUILDERS[model]().eval()
        return load(model)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, a model name {tuple(shapes_nets.BUILDERS)} + "
                        f"('efficientnet_lite0',) or None, got {type(model).__name__}")
    return model


def is_imagenet(model: nn.Module) -> bool:
    """True for EfficientNet-Lite0 (photos, ImageNet preprocessing, 1000 class names)."""
    return isinstance(model, efficientnet.EfficientNetLite0)


@dataclass
class Input:
    """The image an explorer explains: ``x`` (1,C,H,W) on the model's device and dtype, ``rgb`` the
    (H,W,3) uint8 picture of it, ``pixel_range`` the valid pixel values (for display and ascent)."""

    x: torch.Tensor
    rgb: np.ndarray
    pixel_range: tuple[float, float]


def resolve_image(image, model: nn.Module, pixel_range=None) -> Input:
    """The first image of ``image`` as a (1,C,H,W) batch for ``model``, and its picture (see module doc)."""
    param = next(model.parameters(), None)
    if image is None:
        image = "cat_coffee" if is_imagenet(model) else torch.from_numpy(shapes.generate(1, seed=0).images)
    if isinstance(image, str):
        x, pixel_range = photos.preprocess(photos.load(image)), photos.PIXEL_RANGE
    elif isinstance(image, np.ndarray) and image.dtype == np.uint8:
        if is_imagenet(model):
            x, pixel_range = photos.preprocess(image), photos.PIXEL_RANGE
        else:
            x, pixel_range = torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)[None], SHAPES_RANGE
    elif isinstance(image, (torch.Tensor, np.ndarray)):
        x = torch.as_tensor(image)
        x = x[None] if x.dim() == 3 else x
        if x.dim() != 4:
            raise ValueError(f"image must be (C,H,W) or a batch (B,C,H,W), got shape {tuple(x.shape)}")
        x = x[:1].float() if not x.is_floating_point() else x[:1]
    else:
        raise TypeError(f"image must be a tensor, a uint8 picture (H,W,3), a photo name {photos.NAMES} or None, "
                        f"got {type(image).__name__}")
    if param is not None:
        x = x.to(param.device, param.dtype)
    x = x.detach().clone()
    if pixel_range is None:
        pixel_range = _guess_range(x)
    return Input(x, render.image_rgb(x[0].cpu(), pixel_range), tuple(float(v) for v in pixel_range))


def _guess_range(x: torch.Tensor) -> tuple[float, float]:
    """[0, 1] or the photos' range when the pixels fit in it, else the image's own min..max."""
    lo, hi = float(x.min()), float(x.max())
    for r in (SHAPES_RANGE, photos.PIXEL_RANGE):
        if r[0] - 1e-6 <= lo and hi <= r[1] + 1e-6:
            return r
    return (lo, hi) if hi > lo else (lo - 1, hi + 1)


def class_names(model: nn.Module, n_classes: int, names=None) -> list[str]:
    """Names for the model's classes: given ones, the shapes classes, ImageNet's, or "class i"."""
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != n_classes:
            raise ValueError(f"class_names has {len(names)} names but the model has {n_classes} classes")
        return names
    if is_imagenet(model) and n_classes == len(efficientnet.IMAGENET_CLASSES):
        return list(efficientnet.IMAGENET_CLASSES)
    if n_classes == len(shapes.CLASSES):  # a shapes net (pass class_names for another 6-class model)
        return list(shapes.CLASSES)
    return [f"class {i}" for i in range(n_classes)]


def scores(model: nn.Module, x: torch.Tensor, logits=None, required: bool = True) -> torch.Tensor | None:
    """The model's class scores (B, classes) without gradients, under the hook manager (eval mode,
    restored). ``logits`` says where they are in a structured output (`xai_ref.inputs.class_logits`);
    with ``required=False`` a structured output without ``logits`` gives None instead of an error."""
    with torch.no_grad(), Hooks(model):
        return class_logits(model(x), logits, required)


def class_options(names: list[str], s: torch.Tensor) -> list[tuple[str, int]]:
    """Dropdown options ``(label, class index)``: every class with its score; with many classes, sorted by
    score (the prediction first), else in index order."""
    s = s.reshape(-1).tolist()
    order = sorted(range(len(s)), key=lambda i: -s[i]) if len(s) > 20 else range(len(s))
    return [(f"{names[i]}  ({s[i]:.2f})", i) for i in order]


def module_calls(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, tuple[torch.Tensor, object]]:
    """What the modules ``names`` computed for ``x``: call name -> (output, input), in the order they ran.

    A module that runs once is listed by its name. A module that runs several times in one forward pass
    (one ``nn.ReLU`` reused by every step of a ResNet block) is listed once per call, as ``"name#k"``
    (k = 0 the first call): the name every ``xai_ref`` ``layer`` argument accepts for that call
    (`xai_ref.hooks.Hooks.calls`).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LayerReuseWarning)   # listed by call here: nothing to warn about
        with torch.no_grad(), Hooks(model, layers=names) as h:
            model(x)
            return h.calls()


def call_label(name: str, shape: tuple[int, ...]) -> str:
    """A chooser's label: ``"conv5  (64×7×7)"``, or for one call of a reused module
    ``"layer1.0.relu#1  (2nd call, 16×8×8)"``."""
    k = split_call(name)[1]
    size = "×".join(map(str, shape))
    return f"{name}  ({size})" if k is None else f"{name}  ({_ordinal(k + 1)} call, {size})"


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def spatial_layers(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """The layers worth choosing, in execution order, with their output shape (K,h,w).

    Candidates: ReLUs and pooling layers, and blocks (modules with children other than ``nn.Sequential``
    containers), whose output is a spatial map (B,K,h,w) with h*w > 1; a module whose output is the very
    same tensor as an earlier candidate's (a block ending in its ReLU) is listed once, by the outer name;
    a module that runs several times is listed by call (`module_calls`). If no layer qualifies, every
    spatial leaf is listed.
    """
    acts = {n: out for n, (out, _) in module_calls(model, x, [n for n, _ in model.named_modules() if n]).items()}
    modules = dict(model.named_modules())

    def wanted(name: str) -> bool:
        m = modules[split_call(name)[0]]
        if isinstance(m, nn.Sequential):
            return False
        if list(m.children()):
            return True
        return isinstance(m, (nn.ReLU, nn.ReLU6, nn.MaxPool2d, nn.AvgPool2d))

    def spatial(a) -> bool:
        return isinstance(a, torch.Tensor) and a.dim() == 4 and a.shape[2] * a.shape[3] > 1

    # Forward hooks fire in execution order, a block's children before the block itself.
    out: dict[int, tuple[str, tuple]] = {}
    for n, a in acts.items():
        if spatial(a) and wanted(n):
            out[id(a)] = (n, tuple(a.shape[1:]))  # same tensor again: the outer block's name replaces it
    if not out:
        out = {id(a): (n, tuple(a.shape[1:])) for n, a in acts.items() if spatial(a)}
    return dict(out.values())
