"""Signals at the input from scratch: saliency, deconvnet, guided backpropagation.

The NumPy twin of `xai_ref.backprop`. All three start from the same one-hot signal at the output and pass
it down the same network with `Sequential.backward`; they differ only in the ReLU rule
(`xai_ref.scratch.layers.ReLU.backward`), with R the signal from above and x the ReLU's forward input:

    saliency         (Simonyan et al. 2014):     R^l = R^{l+1} * [x > 0]          (the gradient dS_c/dI)
    deconvnet        (Zeiler & Fergus 2014):     R^l = max(R^{l+1}, 0)
    guided backprop  (Springenberg et al. 2015): R^l = max(R^{l+1}, 0) * [x > 0]

Max-pooling sends the signal to the position that won the forward pass (the switches) in all three.
"""
from __future__ import annotations

import numpy as np

from ..trace import Trace
from .gradients import forward_backward
from .network import Sequential

def _input_signal(method: str, rule: str, net: Sequential, x: np.ndarray, target) -> Trace:
    """``grad`` (B,C,H,W): the signal at the input under ``rule``; ``map`` (B,H,W) = max_ch |grad|."""
    p = forward_backward(net, x, target, rule=rule)
    t = Trace(method, meta={"target": p.classes, "y": p.y, "rule": rule})
    g = t.add("grad", p.dY_dx)
    t.add("map", np.abs(g).max(1))
    return t


def saliency(net: Sequential, x: np.ndarray, target=None) -> Trace:
    """Image-specific class saliency (Simonyan, Vedaldi & Zisserman, ICLR 2014 workshop).

        w = dS_c/dI,      M_ij = max_ch |w_ch,ij|

    ``grad`` (B,C,H,W) the gradient of the pre-softmax score, ``map`` (B,H,W). ``target``: None
    (predicted class), int, sequence of B ints, or a `Neuron`.

    Lesson: ``lessons/04_saliency_gradient_ascent.ipynb``.
    """
    return _input_signal("saliency", "backprop", net, x, target)


def deconvnet(net: Sequential, x: np.ndarray, target=None) -> Trace:
    """Deconvnet visualisation (Zeiler & Fergus, ECCV 2014) as a backward pass.

        R^l = max(R^{l+1}, 0) at every ReLU; transposed convolutions; max-pool switches

    ``grad`` (B,C,H,W) the projection down to the pixels, ``map`` (B,H,W) = max_ch |grad|.

    Lesson: ``lessons/03_deconvnet_guided_backprop.ipynb``.
    """
    return _input_signal("deconvnet", "deconvnet", net, x, target)


def guided_backprop(net: Sequential, x: np.ndarray, target=None) -> Trace:
    """Guided backpropagation (Springenberg et al., ICLR 2015 workshop).

        R^l = [f^l > 0] * max(R^{l+1}, 0) at every ReLU

    Only positive signal, only where the forward pass was active. ``grad`` (B,C,H,W), ``map`` (B,H,W).

    Lesson: ``lessons/03_deconvnet_guided_backprop.ipynb``.
    """
    return _input_signal("guided_backprop", "guided", net, x, target)
