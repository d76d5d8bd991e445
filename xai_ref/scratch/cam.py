"""Class activation maps from scratch: GAP, CAM, Grad-CAM, Grad-CAM++, XGrad-CAM, Guided Grad-CAM.

The NumPy twin of `xai_ref.cam`: the same Traces (method names, term symbols in the same order, the same
LaTeX), computed on a scratch `Sequential` with NumPy arrays as values.

Notation: ``A^k`` (or ``f_k``) the K feature maps of a layer, each ``h x w`` with ``Z = h*w`` positions;
``y^c`` (``S_c``) the pre-softmax score of class c; ``c`` one class per image.
"""
from __future__ import annotations

import numpy as np

from ..checks import check_gap_head, check_spatial
from ..compose import guided
from ..trace import Trace
from .backprop import guided_backprop
from .gradients import Pass, check_batch, forward_backward, layer_name, resize, target_classes
from .layers import Linear
from .network import Sequential


# --- GAP and CAM: read the weights of a GAP -> linear head ----------------------------------------


def _gap_head(net: Sequential, x: np.ndarray, layer, fc):
    """Forward once; return (f, scores, W, b, layer name) after checking scores = W GAP(f) + b."""
    check_batch(net, x)
    scores = net.forward(x)
    if fc is None:
        linears = [n for n, l in zip(net.names, net.layers) if isinstance(l, Linear)]
        if not linears:
            raise ValueError("CAM needs global average pooling followed by a linear layer giving the class "
                             "scores, and this net has no Linear layer; use grad_cam instead")
        fc = linears[-1]
    fc_name = layer_name(net, fc)
    if not isinstance(net[fc_name], Linear):
        raise ValueError(f"fc must be the Linear layer after GAP, got {fc_name!r} ({type(net[fc_name]).__name__})")
    name = layer_name(net, layer)
    f, fc_out = net.activations[name], net.activations[fc_name]
    W = net[fc_name].W                                                       # (classes, K)
    b = net[fc_name].b if net[fc_name].b is not None else np.zeros(W.shape[0], dtype=f.dtype)
    pooled_ok = f.ndim == 4 and W.shape[1] == f.shape[1] and _close(f.mean((2, 3)) @ W.T + b, fc_out)
    check_gap_head(f.ndim, f.shape[1] if f.ndim > 1 else 0, name, fc_name, pooled_ok,
                   scores.shape == fc_out.shape and _close(scores, fc_out))
    return f, scores, W, b, name


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    tol = 1e-4 if a.dtype.itemsize <= 4 else 1e-9
    return a.shape == b.shape and np.allclose(a, b, rtol=tol, atol=tol * max(float(np.abs(b).max()), 1.0))


def gap(net: Sequential, x: np.ndarray, layer=None, fc=None) -> Trace:
    """Global average pooling into linear class scores (Lin, Chen & Yan, "Network in Network", ICLR 2014).

        F^k = 1/Z sum_ij A^k_ij,      S_c = sum_k W_{c,k} F^k + b_c

    ``A`` (B,K,h,w) -> ``F`` (B,K) -> ``S`` (B,classes). ``layer``: the layer before GAP (default: the
    last spatial layer); ``fc``: the linear layer (default: the last Linear).

    Lesson: ``lessons/01_gap_nin.ipynb``.
    """
    A, _, W, b, name = _gap_head(net, x, layer, fc)
    t = Trace("gap", meta={"target": None, "layer": name, "W": W, "b": b})   # the head, for checking S by hand
    t.add("A", A)
    F = t.add("F", A.mean((2, 3)))
    t.add("S", F @ W.T + b)
    return t


def cam(net: Sequential, x: np.ndarray, target=None, layer=None, fc=None) -> Trace:
    """Class Activation Mapping (Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016).

        w^c_k = W_{c,k},      M_c(x,y) = sum_k w^c_k f_k(x,y)      (their eq. 2)
        S_c = 1/Z sum_{x,y} M_c(x,y) + b_c                          (GAP and the sum over k commute)

    ``f`` (B,K,h,w) the maps before GAP, ``w`` (B,K) the weights of each image's class, ``M`` (B,h,w),
    ``S`` (B,) equal to the net's score, ``map`` (B,H,W) M upsampled bilinearly, raw (no ReLU, not
    normalised). Raises ValueError when the head is not GAP followed by linear class scores.

    Lesson: ``lessons/02_cam.ipynb``.
    """
    f, scores, W, b, name = _gap_head(net, x, layer, fc)
    c = target_classes(target, x.shape[0], W.shape[0], default=scores.argmax(1))
    t = Trace("cam", meta={"target": c, "layer": name, "y": scores[np.arange(len(c)), c],
                           "b": b[c]})   # the bias, for checking S by hand
    t.add("f", f)
    w = t.add("w", W[c])
    M = t.add("M", (w[:, :, None, None] * f).sum(1))                           # sum_k w^c_k f_k
    t.add("S", M.mean((1, 2)) + b[c])
    t.add("map", resize(M, x.shape[2:]))
    return t


# --- the Grad-CAM family: the same pipeline, different alphas -------------------------------------


def _alpha_grad_cam(p: Pass, t: Trace, sign: float) -> np.ndarray:
    """Grad-CAM: alpha^c_k = 1/Z sum_ij dy^c/dA^k_ij  (B,K)."""
    return t.add("alpha", sign * p.dY_dA.mean((2, 3)), sign="-" if sign < 0 else "",
                 counterfactual=" (negated: counterfactual)" if sign < 0 else "")


def _alpha_grad_cam_pp(p: Pass, t: Trace, sign: float) -> np.ndarray:
    """Grad-CAM++ with g = dy^c/dA:  a_ij = g_ij^2 / (2 g_ij^2 + (sum_ab A_ab) g_ij^3),  alpha_k = sum_ij a_ij ReLU(g_ij)."""
    g, A = sign * p.dY_dA, p.A
    denominator = 2 * g**2 + g**3 * A.sum((2, 3), keepdims=True)     # sum_ab A_ab times g_ij cubed
    nonzero = denominator != 0
    a = t.add("a", np.where(nonzero, g**2 / np.where(nonzero, denominator, 1), 0))
    return t.add("alpha", (a * np.maximum(g, 0)).sum((2, 3)))


def _alpha_xgrad_cam(p: Pass, t: Trace, sign: float) -> np.ndarray:
    """XGrad-CAM: alpha_k = sum_ij (A^k_ij / sum_ab A^k_ab) dy^c/dA^k_ij  (0 for an all-zero map)."""
    g, A = sign * p.dY_dA, p.A
    total = A.sum((2, 3))
    nonzero = total != 0
    return t.add("alpha", np.where(nonzero, (A * g).sum((2, 3)) / np.where(nonzero, total, 1), 0))


def _grad_cam_family(method: str, alpha_fn, net, x, target, layer, counterfactual) -> Trace:
    """A -> dY_dA -> alpha (by ``alpha_fn``) -> weighted = sum_k alpha_k A^k -> L = ReLU(weighted) -> map."""
    p = forward_backward(net, x, target, wrt=("layer",), layer=layer)
    check_spatial(method, p.layer, p.A.shape)
    t = Trace(method, meta={"target": p.classes, "layer": p.layer, "y": p.y, "counterfactual": counterfactual})
    A = t.add("A", p.A, layer=p.layer)
    t.add("dY_dA", p.dY_dA)
    alpha = alpha_fn(p, t, -1.0 if counterfactual else 1.0)
    weighted = t.add("weighted", (alpha[:, :, None, None] * A).sum(1))          # sum_k alpha_k A^k
    L = t.add("L", np.maximum(weighted, 0))
    t.add("map", resize(L, x.shape[2:]))
    return t


def grad_cam(net: Sequential, x: np.ndarray, target=None, layer=None, counterfactual: bool = False) -> Trace:
    """Grad-CAM (Selvaraju et al., ICCV 2017).

        alpha^c_k = 1/Z sum_i sum_j dy^c/dA^k_ij,      L^c = ReLU(sum_k alpha^c_k A^k)

    ``A``, ``dY_dA`` (B,K,h,w), ``alpha`` (B,K), ``weighted`` and ``L`` (B,h,w), ``map`` (B,H,W) L
    upsampled bilinearly, raw. ``counterfactual=True`` negates the gradient: regions whose removal would
    raise the score. ``layer``: a name, index or None (the last spatial layer).

    Lesson: ``lessons/05_grad_cam.ipynb``.
    """
    return _grad_cam_family("grad_cam", _alpha_grad_cam, net, x, target, layer, counterfactual)


def grad_cam_pp(net: Sequential, x: np.ndarray, target=None, layer=None, counterfactual: bool = False) -> Trace:
    """Grad-CAM++ (Chattopadhay et al., WACV 2018): the Grad-CAM pipeline with other channel weights.

        a^{kc}_ij = g_ij^2 / (2 g_ij^2 + sum_ab A^k_ab g_ij^3),      alpha^c_k = sum_ij a^{kc}_ij ReLU(g_ij)

    with ``g = dy^c/dA`` (their eq. 19 with ``Y = exp(S)``, leaving out the factor ``exp(S^c)`` that only
    rescales each image's map). Terms: ``A``, ``dY_dA``, ``a`` (B,K,h,w), ``alpha`` (B,K), ``weighted``,
    ``L``, ``map``.

    Lesson: ``lessons/05_grad_cam.ipynb``.
    """
    return _grad_cam_family("grad_cam_pp", _alpha_grad_cam_pp, net, x, target, layer, counterfactual)


def xgrad_cam(net: Sequential, x: np.ndarray, target=None, layer=None, counterfactual: bool = False) -> Trace:
    """XGrad-CAM (Fu et al., BMVC 2020).

        alpha^c_k = sum_ij (A^k_ij / sum_ab A^k_ab) dy^c/dA^k_ij

    Terms as Grad-CAM: ``A``, ``dY_dA``, ``alpha`` (B,K), ``weighted``, ``L``, ``map``.

    Lesson: ``lessons/05_grad_cam.ipynb``.
    """
    return _grad_cam_family("xgrad_cam", _alpha_xgrad_cam, net, x, target, layer, counterfactual)


def guided_grad_cam(net: Sequential, x: np.ndarray, target=None, layer=None) -> Trace:
    """Guided Grad-CAM (Selvaraju et al., ICCV 2017): guided backpropagation times the upsampled Grad-CAM.

        guided = R * up(L^c),      M_ij = max_ch |guided_ch,ij|

    The Grad-CAM terms (``A`` ... ``L``), then ``L_up`` (B,1,H,W), ``R`` (B,C,H,W) the guided-backprop
    signal, ``guided`` (B,C,H,W) and ``map`` (B,H,W).

    Lesson: ``lessons/05_grad_cam.ipynb``.
    """
    gc = grad_cam(net, x, target, layer)
    classes = gc.meta["target"]
    gb = guided_backprop(net, x, classes if classes is not None else target)
    return guided(gc, gb.grad)
