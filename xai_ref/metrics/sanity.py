"""Sanity checks for saliency maps (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

If an explanation depends on what the model learned, destroying the learned weights must change it. The
model parameter randomization test re-initialises the weights and compares the maps before and after:

* **cascading** randomization: re-initialise layers from the top (the logits) down, cumulatively: after
  step l, every layer from the top down to layer l is random;
* **independent** randomization: re-initialise one layer at a time, the others keep their trained weights.

Similarity to the original map: Spearman rank correlation with and without absolute value, and SSIM on
maps normalised to [0, 1]. A method that "survives" (stays similar) is insensitive to the model: Adebayo
et al. found guided backpropagation and Guided Grad-CAM nearly unchanged, gradients and Grad-CAM not.

Everything happens on deep copies: the model passed in is never modified.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from ..checks import MAX_SEED, as_choice, as_flag, as_seed
from ..inputs import check_batch
from ._common import as_maps, resolve_target
from .similarity import spearman, ssim

MODES = ("cascading", "independent")


def randomizable_layers(model: nn.Module) -> list[str]:
    """Names of the modules that own parameters (conv, linear, ...), top (output side) first.

    The order is the reverse of registration order, which is the forward order for an ``nn.Sequential``
    and for most models; pass ``layers=`` to `model_randomization` when yours differs.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    names = [name for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]
    return names[::-1]


def randomize_layer(module: nn.Module, seed: int, init: Callable[[nn.Module], None] | None = None) -> None:
    """Re-initialise one module's own parameters in place, reproducibly, under ``torch.manual_seed(seed)``.

    ``init``: a function that re-initialises the module in place (e.g. the scheme the model was trained
    from, such as He initialisation); default: the module's ``reset_parameters()`` (PyTorch's default
    initialisation, Kaiming-uniform for conv and linear), or N(0, 0.01^2) for modules without it. The
    global random state is left as it was.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    seed = as_seed(seed)
    if init is not None and not callable(init):
        raise TypeError(f"init must be None or a function init(module) that re-initialises it in place, got {init!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if init is not None:
            with torch.no_grad():
                init(module)
        elif hasattr(module, "reset_parameters"):
            module.reset_parameters()
        else:
            with torch.no_grad():
                for p in module.parameters(recurse=False):
                    p.normal_(0.0, 0.01)


@dataclass
class Randomization:
    """Result of `model_randomization`. ``layers`` (L names) in the order they were randomized; per layer
    and image: ``spearman``, ``spearman_abs`` and ``ssim`` (L,B) similarity to ``original`` (B,H,W);
    ``maps`` (L,B,H,W) the randomized maps when ``keep_maps=True``.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """

    mode: str
    layers: list[str]
    spearman: torch.Tensor
    spearman_abs: torch.Tensor
    ssim: torch.Tensor
    original: torch.Tensor
    maps: torch.Tensor | None = None

    def table(self) -> list[dict]:
        """One row per layer: the mean of each similarity over the images."""
        return [{"layer": name, "spearman": float(self.spearman[i].mean()),
                 "spearman_abs": float(self.spearman_abs[i].mean()), "ssim": float(self.ssim[i].mean())}
                for i, name in enumerate(self.layers)]


def _layer_names(model: nn.Module, layers) -> list[str]:
    """``layers`` (None: `randomizable_layers`) as a non-empty list of names of modules with parameters."""
    valid = randomizable_layers(model)
    if layers is None:
        return valid
    if isinstance(layers, str) or not isinstance(layers, (list, tuple)):
        raise TypeError(f"layers must be a list of module names, top first, e.g. {valid[:2]}, got {layers!r}")
    unknown = [n for n in layers if n not in valid]
    if unknown or not layers:
        raise ValueError(f"layers must name modules with parameters; got unknown or parameter-free {unknown}; "
                         f"valid: {valid}")
    return list(layers)


def _map(method: Callable, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    out = method(model, x, target)
    return as_maps(out, "the method's output", batch=x.shape[0]).cpu()


def model_randomization(model: nn.Module, x: torch.Tensor, method: Callable, target=None,
                        mode: str = "cascading", layers=None, seed: int = 0, init=None,
                        keep_maps: bool = False, progress: bool = False, logits=None) -> Randomization:
    """The model parameter randomization test (Adebayo et al., NeurIPS 2018, sec. 3.1).

    ``method(model, x, target)`` returns a Trace or a (B,H,W) map (e.g. ``xr.grad_cam``, or
    ``lambda m, x, t: xr.saliency(m, x, t).grad.sum(1)`` for a signed map). The class is fixed to
    ``target`` (None: the trained model's prediction) for every randomized model. ``layers``: names, top
    first (default `randomizable_layers`). Layer ``layers[i]`` gets the random weights of
    ``randomize_layer(·, seed + i, init)`` in both modes (``init``: see `randomize_layer`; pass the
    scheme the model was initialised with, so "random" means "as before training"). For each step l:

    ``rho_l = spearman(M, M_l)``, ``rho^abs_l = spearman(|M|, |M_l|)``, ``SSIM_l = ssim(M, M_l)``

    with M the map of the trained model and M_l the map after randomization step l. ``logits``: where the
    class scores are in a structured output (`xai_ref.inputs.class_logits`), to find the predicted class;
    the method needs it too, e.g. ``functools.partial(xr.grad_cam, logits="out")``.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    check_batch(model, x)
    mode = as_choice(mode, "mode", MODES)
    if not callable(method):
        raise TypeError(f"method must be a callable method(model, x, target) -> Trace or (B,H,W) map, got "
                        f"{type(method).__name__}")
    layers = _layer_names(model, layers)
    seed, keep_maps, progress = as_seed(seed), as_flag(keep_maps, "keep_maps"), as_flag(progress, "progress")
    if init is not None and not callable(init):
        raise TypeError(f"init must be None or a function init(module) that re-initialises it in place, got {init!r}")
    if seed + len(layers) > MAX_SEED:
        raise ValueError(f"seed must leave room for one seed per layer: at most {MAX_SEED - len(layers)}, got {seed}")
    classes = resolve_target(model, x, target, logits=logits)
    work = copy.deepcopy(model)
    original = _map(method, work, x, classes)
    rows = {"spearman": [], "spearman_abs": [], "ssim": []}
    kept = []
    for i, name in enumerate(tqdm(layers, desc=f"{mode} randomization", disable=not progress)):
        if mode == "independent":
            work = copy.deepcopy(model)
        randomize_layer(dict(work.named_modules())[name], seed + i, init)
        m = _map(method, work, x, classes)
        rows["spearman"].append(spearman(original, m))
        rows["spearman_abs"].append(spearman(original, m, absolute=True))
        rows["ssim"].append(ssim(original, m))
        if keep_maps:
            kept.append(m)
    return Randomization(mode, layers, torch.stack(rows["spearman"]), torch.stack(rows["spearman_abs"]),
                         torch.stack(rows["ssim"]), original, torch.stack(kept) if keep_maps else None)
