"""One forward and one backward pass, shared by every gradient-based method.

`forward_backward` runs the model under the hook manager, picks the target score ``y^c`` of each image
and returns its gradient with respect to the input and/or to a layer's activation ``A``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .hooks import Hooks
from .inputs import check_batch, target_scores


@dataclass(frozen=True)
class Neuron:
    """A single intermediate neuron as a target (Zeiler & Fergus 2014: "pick a single neuron").

    ``layer``: a module or dotted name; ``channel``: the feature map k; ``position``: ``(i, j)`` in that
    map, ``"max"`` for each image's strongest activation in the map (what Zeiler & Fergus project
    down), or ``"sum"`` for the map's total response (their occlusion experiment on layer 5).
    """

    layer: object
    channel: int
    position: tuple[int, int] | str = "max"


@dataclass
class Pass:
    """What one forward + backward pass produced (all detached)."""

    output: torch.Tensor          # the model's output
    y: torch.Tensor               # (B,) the target scores y^c
    classes: torch.Tensor | None  # (B,) the target classes c (None for a callable or neuron target)
    dY_dx: torch.Tensor | None    # (B,C,H,W) gradient at the input
    A: torch.Tensor | None        # (B,K,h,w) the layer's activation
    dY_dA: torch.Tensor | None    # (B,K,h,w) gradient at the layer
    layer: str | None             # the layer's name


def forward_backward(model: nn.Module, x: torch.Tensor, target=None, layer="none", rule: str = "backprop",
                     wrt_input: bool = True, layer_rule: str | None = None) -> Pass:
    """Forward ``x``, take each image's target score ``y^c``, and backpropagate it.

    ``target``: None / int / sequence / callable (see `xai_ref.inputs.target_scores`) or a `Neuron`.
    ``layer``: ``"none"`` for no layer, else a module, dotted name or None (the last spatial layer).
    ``rule``: how ReLUs pass the signal down (backprop, deconvnet, guided). ``layer_rule``: the rule for
    the signal at the layer, when it differs from the input's (Guided Grad-CAM: the ordinary gradient at
    the layer, the guided signal at the input); the forward pass is then shared by two backward passes.
    The batch is explained in one pass: images do not interact in an eval-mode network, so the gradient
    of ``sum_b y_b`` with respect to image b is the gradient of ``y_b``.
    """
    check_batch(model, x)
    layer_rule = rule if layer_rule is None else layer_rule
    layers = [] if layer == "none" else [layer]
    if isinstance(target, Neuron):
        layers.append(target.layer)
    with Hooks(model, layers=layers, rule=rule if rule != "backprop" else layer_rule) as h:
        x_ = h.watch(x)
        output = model(x_)
        if isinstance(target, Neuron):
            y, classes = neuron_scores(h.activation(len(layers) - 1), target), None
        else:
            y, classes = target_scores(output, target)
        A = h.A if layer != "none" else None
        wrt = ([x_] if wrt_input else []) + ([A] if A is not None else [])
        if not wrt:
            raise ValueError("nothing to differentiate: ask for the input gradient or a layer")
        if len(wrt) == 2 and layer_rule != rule:
            h.rule = layer_rule
            (dA,) = torch.autograd.grad(y.sum(), [A], retain_graph=True, allow_unused=True)
            h.rule = rule
            grads = [*torch.autograd.grad(y.sum(), [x_], allow_unused=True), dA]
        else:  # one backward pass: the input's rule, or the layer's when only the layer is asked for
            h.rule = rule if wrt_input else layer_rule
            grads = list(torch.autograd.grad(y.sum(), wrt, allow_unused=True))
        name = h.layer_name(0) if A is not None else None
    grads = [torch.zeros_like(w) if g is None else g for g, w in zip(grads, wrt)]
    dY_dx = grads.pop(0) if wrt_input else None
    return Pass(output.detach(), y.detach(), classes, dY_dx,
                None if A is None else A.detach(), grads[0] if A is not None else None, name)


def neuron_scores(A: torch.Tensor, neuron: Neuron) -> torch.Tensor:
    """For each image b: ``A[b,k,i,j]``, ``max_ij A[b,k,i,j]`` or ``sum_ij A[b,k,i,j]`` (see `Neuron`)."""
    if not isinstance(A, torch.Tensor) or A.dim() != 4:
        raise ValueError(f"a Neuron target needs a layer with (B,K,h,w) output; layer {neuron.layer!r} "
                         f"gives {tuple(A.shape) if isinstance(A, torch.Tensor) else type(A).__name__}")
    K, h, w = A.shape[1:]
    k = neuron.channel
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < K:
        raise ValueError(f"neuron channel must be an int in 0..{K - 1} (the layer has {K} feature maps), got {k!r}")
    fmap = A[:, k].flatten(1)
    if neuron.position == "sum":
        return fmap.sum(1)
    if neuron.position == "max":
        idx = fmap.argmax(1)
    elif isinstance(neuron.position, str):
        raise ValueError(f"neuron position must be (i, j), 'max' or 'sum', got {neuron.position!r}")
    else:
        i, j = neuron.position
        if not (0 <= i < h and 0 <= j < w):
            raise ValueError(f"neuron position {(i, j)} is outside the {h}x{w} feature map")
        idx = torch.full((A.shape[0],), i * w + j, device=A.device)
    return fmap.gather(1, idx[:, None])[:, 0]
