"""One forward and one backward pass, shared by every gradient-based method.

`forward_backward` runs the model under the hook manager, picks the target score ``y^c`` of each image
and returns its gradient with respect to the input and/or to a layer's activation ``A``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .hooks import Hooks
from .checks import as_index, as_rule, check_wrt
from .inputs import check_batch, class_logits, target_scores


@dataclass(frozen=True)
class Neuron:
    """A single intermediate neuron as a target (Zeiler & Fergus 2014: "pick a single neuron").

    ``layer``: a module or dotted name; ``channel``: the feature map k; ``position``: ``(i, j)`` in that
    map, ``"max"`` for each image's strongest activation in the map (what Zeiler & Fergus project
    down), or ``"sum"`` for the map's total response (their occlusion experiment on layer 5).

    Lesson: ``lessons/03_deconvnet_guided_backprop.ipynb``.
    """

    layer: object
    channel: int
    position: tuple[int, int] | str = "max"

    def __post_init__(self):
        if not isinstance(self.layer, (nn.Module, str)):
            raise TypeError(f"Neuron layer must be an nn.Module or a dotted name (str), got "
                            f"{type(self.layer).__name__}")
        object.__setattr__(self, "channel", as_index(self.channel, "Neuron channel"))
        if isinstance(self.position, str):
            if self.position not in ("max", "sum"):
                raise ValueError(f"Neuron position must be (i, j), 'max' or 'sum', got {self.position!r}")
        elif isinstance(self.position, (tuple, list)) and len(self.position) == 2:
            object.__setattr__(self, "position", tuple(as_index(p, "Neuron position") for p in self.position))
        else:
            raise ValueError(f"Neuron position must be (i, j), 'max' or 'sum', got {self.position!r}")


@dataclass
class Pass:
    """What one forward + backward pass produced (all detached)."""

    scores: torch.Tensor | None   # (B, classes) the model's class scores (None: a callable target on an output
                                  #   whose class scores were not named with ``logits``)
    y: torch.Tensor               # (B,) the target scores y^c
    classes: torch.Tensor | None  # (B,) the target classes c (None for a callable or neuron target)
    dY_dx: torch.Tensor | None    # (B,C,H,W) gradient at the input
    A: torch.Tensor | None        # (B,K,h,w) the layer's activation
    dY_dA: torch.Tensor | None    # (B,K,h,w) gradient at the layer
    layer: str | None             # the layer's name


def forward_backward(model: nn.Module, x: torch.Tensor, target=None, *, wrt: tuple[str, ...] = ("input",),
                     layer=None, rule: str = "backprop", layer_rule: str | None = None, logits=None) -> Pass:
    """Forward ``x``, take each image's target score ``y^c``, and backpropagate it.

    ``target``: None / int / sequence / callable (see `xai_ref.inputs.target_scores`) or a `Neuron`;
    ``logits``: which part of a structured output holds the class scores (`xai_ref.inputs.class_logits`).
    ``wrt``: what to differentiate with respect to: ``("input",)`` (``dY_dx``), ``("layer",)`` (the
    activation ``A`` of ``layer`` and ``dY_dA``) or both. ``layer``: a module, dotted name, or None (the
    last layer with a spatial output); used only with ``"layer"`` in ``wrt``.
    ``rule``: how ReLUs pass the signal down (backprop, deconvnet, guided). ``layer_rule``: the rule for
    the signal at the layer, when it differs from the input's (Guided Grad-CAM: the ordinary gradient at
    the layer, the guided signal at the input); the forward pass is then shared by two backward passes.
    The batch is explained in one pass: images do not interact in an eval-mode network, so the gradient
    of ``sum_b y_b`` with respect to image b is the gradient of ``y_b``. Gradients are computed also when
    called inside ``torch.no_grad()`` or ``torch.inference_mode()``.

    Lesson: ``lessons/03_deconvnet_guided_backprop.ipynb``.
    """
    check_batch(model, x)
    wrt_input, wrt_layer = check_wrt(wrt)
    layer_rule = as_rule(rule) if layer_rule is None else as_rule(layer_rule, "layer_rule")
    layers = [layer] if wrt_layer else []
    if isinstance(target, Neuron):
        layers.append(target.layer)
    with torch.inference_mode(False), torch.enable_grad(), \
            Hooks(model, layers=layers, rule=rule if rule != "backprop" else layer_rule) as h:
        x_ = h.watch(x)
        output = model(x_)
        scores = class_logits(output, logits, required=not (callable(target) or isinstance(target, Neuron)))
        if isinstance(target, Neuron):
            y, classes = neuron_scores(h.activation(len(layers) - 1), target), None
        else:
            y, classes = target_scores(output, target, logits)
        check_differentiable(y, target)
        A = h.A if wrt_layer else None
        inputs = ([x_] if wrt_input else []) + ([A] if wrt_layer else [])
        if wrt_input and wrt_layer and layer_rule != rule:
            h.rule = layer_rule
            (dA,) = torch.autograd.grad(y.sum(), [A], retain_graph=True, allow_unused=True)
            h.rule = rule
            grads = [*torch.autograd.grad(y.sum(), [x_], allow_unused=True), dA]
        else:  # one backward pass: the input's rule, or the layer's when only the layer is asked for
            h.rule = rule if wrt_input else layer_rule
            grads = list(torch.autograd.grad(y.sum(), inputs, allow_unused=True))
        name = h.layer_name(0) if wrt_layer else None
    grads = [torch.zeros_like(w) if g is None else g for g, w in zip(grads, inputs)]
    dY_dx = grads.pop(0) if wrt_input else None
    return Pass(None if scores is None else scores.detach(), y.detach(), classes, dY_dx,
                None if A is None else A.detach(), grads[0] if A is not None else None, name)


def check_differentiable(y: torch.Tensor, target) -> None:
    """The target scores must depend on the model through autograd (a callable may have detached them)."""
    if not y.requires_grad:
        what = "the callable target returned scores" if callable(target) else "the target scores are"
        raise ValueError(f"{what} not connected to the model by autograd (detached, e.g. by .detach(), .item(), "
                         ".numpy() or torch.tensor(...)); compute them from the output with torch operations, "
                         "e.g. lambda out: out[:, 3]")


def neuron_scores(A: torch.Tensor, neuron: Neuron) -> torch.Tensor:
    """For each image b: ``A[b,k,i,j]``, ``max_ij A[b,k,i,j]`` or ``sum_ij A[b,k,i,j]`` (see `Neuron`)."""
    if not isinstance(A, torch.Tensor) or A.dim() != 4:
        raise ValueError(f"a Neuron target needs a layer with (B,K,h,w) output; layer {neuron.layer!r} "
                         f"gives {tuple(A.shape) if isinstance(A, torch.Tensor) else type(A).__name__}")
    K, h, w = A.shape[1:]
    k = neuron.channel
    if not k < K:
        raise ValueError(f"Neuron channel must be in 0..{K - 1} (the layer has {K} feature maps), got {k}")
    fmap = A[:, k].flatten(1)
    if neuron.position == "sum":
        return fmap.sum(1)
    if neuron.position == "max":
        idx = fmap.argmax(1)
    else:
        i, j = neuron.position
        if not (i < h and j < w):
            raise ValueError(f"Neuron position {(i, j)} is outside the {h}x{w} feature map")
        idx = torch.full((A.shape[0],), i * w + j, device=A.device)
    return fmap.gather(1, idx[:, None])[:, 0]
