"""Class activation maps: GAP, CAM, Grad-CAM (and its variants Grad-CAM++ and XGrad-CAM), Guided Grad-CAM.

Shared notation: ``A^k`` (or ``f_k``) the K feature maps of a layer, of size ``h x w`` with
``Z = h*w`` positions; ``y^c`` (``S_c``) the pre-softmax score of class c.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

import torch
from torch import nn

from .checks import as_count, check_gap_head, check_spatial
from .compose import guided
from .gradients import Pass, forward_backward
from .hooks import Hooks
from .layer_names import named_layer
from .inputs import check_batch, class_logits, fast_layout, resize, target_classes
from .trace import Trace


# --- GAP and CAM: read the weights of a GAP -> linear head ----------------------------------------


def _gap_head(model: nn.Module, x: torch.Tensor, layer, fc, logits):
    """Forward once; return (f, scores, W, b, layer name) after checking scores = W GAP(f) + b."""
    check_batch(model, x)
    if fc is None:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("CAM needs global average pooling followed by a linear layer (nn.Linear) giving "
                             "the class scores, and this model has no nn.Linear; use grad_cam instead")
        fc = linears[-1]
    fc_name, fc = named_layer(model, fc, arg="fc")
    if not isinstance(fc, nn.Linear):
        raise ValueError(f"fc must be the nn.Linear layer after GAP, got {fc_name!r} ({type(fc).__name__})")
    with torch.no_grad(), Hooks(model, layers=[layer, fc]) as h:
        scores = class_logits(model(fast_layout(x)), logits)
        f, name, fc_out = h.activation(0), h.layer_name(0), h.activation(1)
    spatial = isinstance(f, torch.Tensor) and f.dim() == 4
    W, b = fc.weight.detach(), (fc.bias.detach() if fc.bias is not None else torch.zeros(fc.out_features,
                                                                                       dtype=f.dtype, device=f.device))
    pooled_ok = spatial and W.shape[1] == f.shape[1] and _close(f.mean((2, 3)) @ W.T + b, fc_out)
    check_gap_head(f.dim() if spatial else 0, f.shape[1] if spatial else 0, name, fc_name, pooled_ok,
                   scores.shape == fc_out.shape and _close(scores, fc_out))
    return f.contiguous(), scores, W, b, name


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    tol = 1e-4 if a.dtype in (torch.float32, torch.float16, torch.bfloat16) else 1e-9
    return a.shape == b.shape and torch.allclose(a, b, rtol=tol, atol=tol * float(b.abs().max().clamp(min=1)))


def gap(model: nn.Module, x: torch.Tensor, layer=None, fc=None, logits=None) -> Trace:
    """Global average pooling into linear class scores (Lin, Chen & Yan, "Network in Network", ICLR 2014).

    ``A`` (B,K,h,w) -> ``F^k = 1/Z sum_ij A^k_ij`` (B,K) -> ``S = W F + b`` (B,classes).

    Lesson: ``lessons/01_gap_nin.ipynb``.
    """
    A, _, W, b, name = _gap_head(model, x, layer, fc, logits)
    t = Trace("gap", meta={"target": None, "layer": name, "W": W, "b": b})   # the head, for checking S by hand
    t.add("A", A)
    F = t.add("F", A.mean((2, 3)))
    t.add("S", F @ W.T + b)
    return t


def cam(model: nn.Module, x: torch.Tensor, target=None, layer=None, fc=None, logits=None) -> Trace:
    """Class Activation Mapping (Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016).

    For a network ending in GAP -> linear: ``f_k`` the last feature maps, ``w_k^c`` the linear weights of
    class c, ``M_c(x,y) = sum_k w_k^c f_k(x,y)`` (their eq. 2); because GAP and the weighted sum commute,
    ``S_c = 1/Z sum_{x,y} M_c(x,y) + b_c`` (the term ``S``, equal to the model's score). ``map`` is M
    upsampled bilinearly to the input size, raw (not normalised, no ReLU, as in the paper).
    ``layer``: the layer before GAP (default: the last spatial layer); ``fc``: the linear layer (default:
    the last ``nn.Linear``); ``logits``: where the class scores are in a structured output
    (`xai_ref.inputs.class_logits`). Raises ValueError when the head is not GAP followed by linear class scores.

    Lesson: ``lessons/02_cam.ipynb``.
    """
    f, scores, W, b, name = _gap_head(model, x, layer, fc, logits)
    c = target_classes(target, x.shape[0], W.shape[0], default=scores.argmax(1)).to(x.device)
    t = Trace("cam", meta={"target": c.cpu(), "layer": name, "y": scores.gather(1, c[:, None])[:, 0], "b": b[c]})
    t.add("f", f)
    w = t.add("w", W[c])
    M = t.add("M", torch.einsum("bk,bkhw->bhw", w, f))
    t.add("S", M.mean((1, 2)) + b[c])
    t.add("map", resize(M, x.shape[2:]))
    return t


# --- the Grad-CAM family: the same pipeline, different alphas -------------------------------------


def _signed(g: torch.Tensor, sign: float) -> torch.Tensor:
    """The gradient, negated for a counterfactual map (no copy when it is not)."""
    return g if sign > 0 else -g


def _alpha_grad_cam(p: Pass, t: Trace, sign: float) -> torch.Tensor:
    return t.add("alpha", sign * p.dY_dA.mean((2, 3)), sign="-" if sign < 0 else "",
                 counterfactual=" (negated: counterfactual)" if sign < 0 else "")


def _alpha_grad_cam_pp(p: Pass, t: Trace, sign: float) -> torch.Tensor:
    g, A = _signed(p.dY_dA, sign), p.A
    denominator = 2 * g**2 + g**3 * A.sum((2, 3), keepdim=True)  # sum_ab A_ab times the (i,j) gradient cubed
    a = t.add("a", torch.where(denominator != 0, g**2 / torch.where(denominator != 0, denominator, 1), 0))
    return t.add("alpha", (a * g.clamp(min=0)).sum((2, 3)))


def _alpha_xgrad_cam(p: Pass, t: Trace, sign: float) -> torch.Tensor:
    g, A = _signed(p.dY_dA, sign), p.A
    total = A.sum((2, 3))
    return t.add("alpha", torch.where(total != 0, (A * g).sum((2, 3)) / torch.where(total != 0, total, 1), 0))


def _grad_cam_family(method: str, alpha_fn: Callable, model, x, target, layer, counterfactual, logits,
                     reshape) -> Trace:
    if not isinstance(counterfactual, (bool, np.bool_)):
        raise TypeError(f"counterfactual must be True or False, got {counterfactual!r}")
    p = forward_backward(model, x, target, wrt=("layer",), layer=layer, logits=logits)
    return _grad_cam_terms(method, alpha_fn, _as_grid(p, reshape), x, counterfactual)


def token_grid(tokens: torch.Tensor, prefix: int = 1) -> torch.Tensor:
    """Tokens of a vision transformer ``(B, prefix + h*w, C)`` as feature maps ``(B, C, h, w)``.

    The ``prefix`` tokens (the class token; 0 for a model without one) are dropped and the ``h*w = N``
    patch tokens, in row-major order, laid out on a square grid. Pass it to the Grad-CAM family as
    ``reshape=xr.token_grid`` (or ``reshape=lambda t: xr.token_grid(t, prefix=0)``): the activation and
    its gradient are reshaped alike, a pure re-indexing, so ``dy/dA`` on the grid is exact.

    Lesson: ``lessons/09_your_own_model.ipynb``.
    """
    prefix = as_count(prefix, "prefix", 0)
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 3:
        raise ValueError(f"token_grid needs tokens (B, prefix + h*w, C), got "
                         f"{tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__}")
    B, N, C = tokens.shape
    side = math.isqrt(max(N - prefix, 0))
    if N - prefix < 1 or side * side != N - prefix:
        raise ValueError(f"token_grid: {N} tokens minus prefix={prefix} is not a square grid h*w; set prefix to "
                         "the number of class/register tokens, or reshape with your own function")
    return tokens[:, prefix:].reshape(B, side, side, C).permute(0, 3, 1, 2)


def _as_grid(p: Pass, reshape) -> Pass:
    """The pass with its layer activation and gradient reshaped to (B,K,h,w) by ``reshape`` (if given)."""
    if reshape is None:
        return p
    if not callable(reshape):
        raise TypeError(f"reshape must be a function (B, ...) -> (B,K,h,w), e.g. xr.token_grid, got {reshape!r}")
    return dataclasses.replace(p, A=reshape(p.A), dY_dA=reshape(p.dY_dA))


def _grad_cam_terms(method: str, alpha_fn: Callable, p: Pass, x: torch.Tensor, counterfactual: bool) -> Trace:
    check_spatial(method, p.layer, tuple(p.A.shape))
    t = Trace(method, meta={"target": p.classes, "layer": p.layer, "y": p.y, "counterfactual": counterfactual})
    A = t.add("A", p.A, layer=p.layer)
    t.add("dY_dA", p.dY_dA)
    alpha = alpha_fn(p, t, -1.0 if counterfactual else 1.0)
    weighted = t.add("weighted", torch.einsum("bk,bkhw->bhw", alpha, A))
    L = t.add("L", weighted.clamp(min=0))
    t.add("map", resize(L, x.shape[2:]))
    return t


def grad_cam(model: nn.Module, x: torch.Tensor, target=None, layer=None, counterfactual: bool = False,
             logits=None, reshape=None) -> Trace:
    """Grad-CAM (Selvaraju et al., ICCV 2017).

    ``alpha^c_k = 1/Z sum_ij dy^c/dA^k_ij`` (B,K); ``weighted = sum_k alpha^c_k A^k``;
    ``L = ReLU(weighted)`` (B,h,w); ``map`` = L upsampled bilinearly to the input size, raw values.
    ``counterfactual=True`` negates the gradient (their section on counterfactual explanations): the map
    then shows regions whose removal would raise the score. ``logits``: where the class scores are in a
    structured output (`xai_ref.inputs.class_logits`); ``reshape``: a function turning the layer's output
    into ``(B,K,h,w)`` maps, for a layer whose output is not one (tokens of a vision transformer:
    `token_grid`).

    Lesson: ``lessons/05_grad_cam.ipynb``.
    """
    return _grad_cam_family("grad_cam", _alpha_grad_cam, model, x, target, layer, counterfactual, logits, reshape)


def grad_cam_pp(model: nn.Module, x: torch.Tensor, target=None, layer=None, counterfactual: bool = False,
                logits=None, reshape=None) -> Trace:
    """Grad-CAM++ (Chattopadhay et al., WACV 2018): the Grad-CAM pipeline with other channel weights.

    With ``g = dy^c/dA``: ``a_ij = g_ij^2 / (2 g_ij^2 + sum_ab A_ab g_ij^3)`` (0 where the denominator is
    0), ``alpha_k = sum_ij a_ij ReLU(g_ij)`` (the paper's eq. 19 with ``Y = exp(S)``). The paper's weights
    carry an extra factor ``exp(S^c)``, one positive number per image that only rescales the map (and
    overflows for large scores); like torch-cam and pytorch-grad-cam we leave it out.

    Lesson: ``lessons/05_grad_cam.ipynb``.
    """
    return _grad_cam_family("grad_cam_pp", _alpha_grad_cam_pp, model, x, target, layer, counterfactual, logits, reshape)


def xgrad_cam(model: nn.Module, x: torch.Tensor, target=None, layer=None, counterfactual: bool = False,
              logits=None, reshape=None) -> Trace:
    """XGrad-CAM (Fu et al., BMVC 2020): ``alpha_k = sum_ij (A^k_ij / sum_ab A^k_ab) dy^c/dA^k_ij``.

    Lesson: ``lessons/05_grad_cam.ipynb``.
    """
    return _grad_cam_family("xgrad_cam", _alpha_xgrad_cam, model, x, target, layer, counterfactual, logits, reshape)


def guided_grad_cam(model: nn.Module, x: torch.Tensor, target=None, layer=None, logits=None, reshape=None) -> Trace:
    """Guided Grad-CAM (Selvaraju et al., ICCV 2017): guided backpropagation times the upsampled Grad-CAM.

    The Grad-CAM terms (``A`` ... ``L``), then ``L_up`` (B,1,H,W) the bilinearly upsampled L,
    ``R`` (B,C,H,W) the guided-backprop gradient, ``guided = R * L_up`` (B,C,H,W), and
    ``map = max_ch |guided|`` (B,H,W).

    Lesson: ``lessons/05_grad_cam.ipynb``.
    """
    # one forward pass, two backward passes: the ordinary gradient at the layer, the guided signal at the input
    p = forward_backward(model, x, target, wrt=("input", "layer"), layer=layer, rule="guided", layer_rule="backprop",
                         logits=logits)
    gc = _grad_cam_terms("grad_cam", _alpha_grad_cam, _as_grid(p, reshape), x, counterfactual=False)
    return guided(gc, p.dY_dx)
