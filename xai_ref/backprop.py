"""Gradients at the input: saliency maps, deconvnet and guided backpropagation.

All three pass a signal from the target score down to the pixels through the same network; they
differ only in what a ReLU passes down (`xai_ref.hooks.relu_backward`):

* saliency (Simonyan et al. 2014): the gradient ``dS_c/dI``;
* deconvnet (Zeiler & Fergus 2014): the ReLU applied to the signal from above;
* guided backpropagation (Springenberg et al. 2015): both masks.

Max-pooling passes the signal to the position that won the forward pass (the "switches") in all three.
"""

from __future__ import annotations

import torch
from torch import nn

from .gradients import forward_backward
from .trace import Trace

def _input_signal(method: str, rule: str, model: nn.Module, x: torch.Tensor, target, logits) -> Trace:
    p = forward_backward(model, x, target, rule=rule, logits=logits)
    t = Trace(method, meta={"target": p.classes, "y": p.y, "rule": rule})
    g = t.add("grad", p.dY_dx)
    t.add("map", g.abs().amax(1))
    return t


def saliency(model: nn.Module, x: torch.Tensor, target=None, logits=None) -> Trace:
    """Image-specific class saliency (Simonyan, Vedaldi & Zisserman, ICLR 2014 workshop).

    ``grad = dS_c/dI`` (B,C,H,W), the gradient of the pre-softmax score; ``map = max_ch |grad|`` (B,H,W).
    ``target``: None (predicted class), int, sequence of B ints, a callable ``f(output) -> (B,)``, or a
    `Neuron`.

    Lesson: ``lessons/04_saliency_gradient_ascent.ipynb``.
    """
    return _input_signal("saliency", "backprop", model, x, target, logits)


def deconvnet(model: nn.Module, x: torch.Tensor, target=None, logits=None) -> Trace:
    """Deconvnet visualisation (Zeiler & Fergus, ECCV 2014) as a backward pass.

    The top signal (one-hot class score, or a single `Neuron`) goes down with transposed convolutions,
    max-pool switches, and at each ReLU ``R^l = max(R^{l+1}, 0)``. ``grad`` (B,C,H,W), ``map`` =
    ``max_ch |grad|``.

    Lesson: ``lessons/03_deconvnet_guided_backprop.ipynb``.
    """
    return _input_signal("deconvnet", "deconvnet", model, x, target, logits)


def guided_backprop(model: nn.Module, x: torch.Tensor, target=None, logits=None) -> Trace:
    """Guided backpropagation (Springenberg et al., ICLR 2015 workshop).

    At each ReLU ``R^l = [f^l > 0] * max(R^{l+1}, 0)``: only positive signal, only where the forward
    pass was active. ``grad`` (B,C,H,W), ``map`` = ``max_ch |grad|``.

    Lesson: ``lessons/03_deconvnet_guided_backprop.ipynb``.
    """
    return _input_signal("guided_backprop", "guided", model, x, target, logits)
