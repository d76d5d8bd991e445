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

from dataclasses import dataclass

from .checks import RULES, as_rule
from .gradients import Neuron, check_differentiable, forward_backward, neuron_scores
from .hooks import Hooks
from .inputs import check_batch, class_logits, target_scores
from .trace import Trace

#: The method each ReLU rule gives at the input.
METHOD_OF = {"backprop": "saliency", "deconvnet": "deconvnet", "guided": "guided_backprop"}


def _trace(rule: str, classes, y: torch.Tensor, grad: torch.Tensor) -> Trace:
    """The trace of the input signal ``grad`` passed down with ``rule``, and its largest magnitude."""
    t = Trace(METHOD_OF[rule], meta={"target": classes, "y": y, "rule": rule})
    g = t.add("grad", grad)
    t.add("map", g.abs().amax(1))
    return t


def _input_signal(rule: str, model: nn.Module, x: torch.Tensor, target, logits) -> Trace:
    p = forward_backward(model, x, target, rule=rule, logits=logits)
    return _trace(rule, p.classes, p.y, p.dY_dx)


def saliency(model: nn.Module, x: torch.Tensor, target=None, logits=None) -> Trace:
    """Image-specific class saliency (Simonyan, Vedaldi & Zisserman, ICLR 2014 workshop).

    ``grad = dS_c/dI`` (B,C,H,W), the gradient of the pre-softmax score; ``map = max_ch |grad|`` (B,H,W).
    ``target``: None (predicted class), int, sequence of B ints, a callable ``f(output) -> (B,)``, or a
    `Neuron`.

    Lesson: ``lessons/04_saliency_gradient_ascent.ipynb``.
    """
    return _input_signal("backprop", model, x, target, logits)


def deconvnet(model: nn.Module, x: torch.Tensor, target=None, logits=None) -> Trace:
    """Deconvnet visualisation (Zeiler & Fergus, ECCV 2014) as a backward pass.

    The top signal (one-hot class score, or a single `Neuron`) goes down with transposed convolutions,
    max-pool switches, and at each ReLU ``R^l = max(R^{l+1}, 0)``. ``grad`` (B,C,H,W), ``map`` =
    ``max_ch |grad|``.

    Lesson: ``lessons/03_deconvnet_guided_backprop.ipynb``.
    """
    return _input_signal("deconvnet", model, x, target, logits)


def guided_backprop(model: nn.Module, x: torch.Tensor, target=None, logits=None) -> Trace:
    """Guided backpropagation (Springenberg et al., ICLR 2015 workshop).

    At each ReLU ``R^l = [f^l > 0] * max(R^{l+1}, 0)``: only positive signal, only where the forward
    pass was active. ``grad`` (B,C,H,W), ``map`` = ``max_ch |grad|``.

    Lesson: ``lessons/03_deconvnet_guided_backprop.ipynb``.
    """
    return _input_signal("guided", model, x, target, logits)


@dataclass
class ThreeRules:
    """What `three_rules` computed, each tensor detached.

    ``traces``: rule -> the Trace that ``xr.saliency`` / ``xr.deconvnet`` / ``xr.guided_backprop`` return
    (``grad`` (B,C,H,W), ``map`` (B,H,W)), for the rules asked for (None when ``input=False``);
    ``R``: rule -> (B,K,h,w), the signal arriving at the output of the ReLU call ``relu`` when every layer
    above it uses that rule (zeros where no signal reaches it); ``x_relu``: (B,K,h,w) that ReLU's forward
    input (both None without ``relu``)."""

    traces: dict[str, Trace] | None
    R: dict[str, torch.Tensor] | None
    x_relu: torch.Tensor | None


def three_rules(model: nn.Module, x: torch.Tensor, target=None, *, relu=None, logits=None,
                rules=RULES, input: bool = True) -> ThreeRules:
    """Saliency, deconvnet and guided backprop from ONE forward pass and one backward pass per rule (what
    lesson 03's explorer shows side by side).

    ``target``: as for ``xr.saliency`` (None, int, sequence, callable, or an ``xr.Neuron``); ``rules``:
    which of ``"backprop"``, ``"deconvnet"``, ``"guided"`` (default all three); ``relu``: a ReLU call
    (module name, ``"name#k"``) at whose output the signal ``R`` of each rule is also kept (same backward
    passes); ``input=False``: the backward passes stop at ``relu`` (no traces: cheaper for a deep ReLU).
    The rule is switched between backward passes of the one forward pass (`xai_ref.hooks.Hooks.rule`),
    so ``three_rules(m, x, c).traces["guided"].map`` equals ``xr.guided_backprop(m, x, c).map`` bit for
    bit (and likewise for the other two). As every ``xai_ref`` call: no hook is left on the model.
    A model that computes no ReLU raises ValueError unless ``rules == ("backprop",)``.

    Lesson: ``lessons/03_deconvnet_guided_backprop.ipynb``.
    """
    check_batch(model, x)
    rules = tuple(as_rule(r, "rules") for r in rules) if isinstance(rules, (tuple, list)) else ()
    if not rules:
        raise ValueError(f"rules must be a non-empty tuple of ReLU rules from {RULES}, got {rules!r}")
    if not input and relu is None:
        raise ValueError("input=False keeps only the signal at a ReLU: pass relu=")
    neuron = isinstance(target, Neuron)
    layers = ([relu] if relu is not None else []) + ([target.layer] if neuron else [])
    hooked = "guided" if "guided" in rules else ("deconvnet" if "deconvnet" in rules else "backprop")
    with torch.inference_mode(False), torch.enable_grad(), Hooks(model, layers=layers, rule=hooked) as h:
        x_ = h.watch(x)
        output = model(x_)
        class_logits(output, logits, required=not (callable(target) or neuron))   # checks the output
        if neuron:
            y, classes = neuron_scores(h.activation(len(layers) - 1), target), None
        else:
            y, classes = target_scores(output, target, logits)
        check_differentiable(y, target)
        wrt = ([x_] if input else []) + ([h.A] if relu is not None else [])
        grads = {}
        for i, rule in enumerate(rules):
            h.rule = rule
            got = torch.autograd.grad(y.sum(), wrt, retain_graph=i < len(rules) - 1, allow_unused=True)
            grads[rule] = [torch.zeros_like(w) if g is None else g for g, w in zip(got, wrt)]
        x_relu = h.inputs[h.layer_name(0)].detach() if relu is not None else None
    traces = {rule: _trace(rule, classes, y.detach(), grads[rule][0]) for rule in rules} if input else None
    R = {rule: grads[rule][-1] for rule in rules} if relu is not None else None
    return ThreeRules(traces, R, x_relu)
