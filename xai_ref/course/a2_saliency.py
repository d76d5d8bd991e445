"""Assignment 2 checks: image-specific class saliency, and one step of class model visualisation.

The references use `xai_ref.scratch.saliency`: its ``grad`` is the gradient of the class score at the
input, dS_c/dx, and its ``map`` is max over channels of |grad|. The mistakes start the backward pass
from a wrong signal (`wrong_gradient`), or reduce or step the wrong way.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..scratch import saliency as scratch_saliency
from ..scratch import softmax
from ..scratch.gradients import class_signal
from .nets import small_net
from .runner import IMAGE_AXES, MAP_AXES, Mistake, register, run


def wrong_gradient(net, x, c, top, stop=None):
    """The signal at the input (or at the output of layer `stop`) when the backward pass starts from a
    wrong target, for the mistakes: top = "prob" (the softmax probability p_c), "logprob" (log p_c) or
    "sum" (every class's score). The right start is the one-hot vector of class c."""
    scores = net.forward(x)
    _, classes, one_hot = class_signal(scores, c)
    p = softmax(scores)
    signal = {"prob": p[np.arange(len(scores)), classes][:, None] * (one_hot - p),   # dp_c/ds = p_c (onehot - p)
              "logprob": one_hot - p,                                                # dlog p_c/ds = onehot - p
              "sum": np.ones_like(scores)}[top]
    return net.backward(signal, stop=stop)


# --------------------------------------------------------------------------------------------------
# saliency
# --------------------------------------------------------------------------------------------------


def _saliency_ref(net, x, c):
    """The reference: scratch's saliency, grad = dS_c/dx (N, C, H, W) and M = max_ch |grad| (N, H, W)."""
    t = scratch_saliency(net, x, c)
    return t.grad, t.map


def _max_abs(g):
    """The right reduction: M = max over channels of |g|."""
    return np.abs(g).max(1)


def _reduced(reduce, top=None):
    """Mistake: the gradient (of the wrong target `top`, or of the right one) reduced over channels by
    `reduce`."""
    def f(net, x, c):
        g = _saliency_ref(net, x, c)[0] if top is None else wrong_gradient(net, x, c, top)
        return g, reduce(g)
    return f


_SALIENCY_MISTAKES = register("saliency", _saliency_ref, [
    Mistake("softmax probability instead of score",
            "saliency uses the raw class score S_c (before the softmax): backpropagate a one-hot vector "
            "from the scores, not the gradient of the probability p_c.",
            _reduced(_max_abs, top="prob")),
    Mistake("log-probability instead of score",
            "saliency uses the raw class score S_c: backpropagate a one-hot vector, not onehot - softmax.",
            _reduced(_max_abs, top="logprob")),
    Mistake("all classes instead of one",
            "backpropagate the score of class c alone: dscores is one-hot (1 at class c, 0 elsewhere), "
            "not all ones.",
            _reduced(_max_abs, top="sum")),
    Mistake("sum over channels instead of max",
            "the map takes the largest |gradient| over the colour channels: M = max_ch |grad|, not the sum.",
            _reduced(lambda g: np.abs(g).sum(1))),
    Mistake("mean over channels instead of max",
            "the map takes the largest |gradient| over the colour channels: M = max_ch |grad|, not the mean.",
            _reduced(lambda g: np.abs(g).mean(1))),
    Mistake("forgot the absolute value",
            "take the absolute value before the max over channels: M = max_ch |grad| (a large negative "
            "gradient matters as much as a large positive one).",
            _reduced(lambda g: g.max(1))),
    Mistake("abs of the channel sum",
            "take the max over channels of |grad|: M = max_ch |grad|, not |sum_ch grad|.",
            _reduced(lambda g: np.abs(g.sum(1)))),
])


def saliency(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(net, x, c) -> (grad, M)``: image-specific class saliency (Simonyan et al. 2014).

    net: a scratch Sequential giving class scores (N, classes); x: (N, C, H, W); c: (N,) class indices.
    grad = dS_c/dx (N, C, H, W); M = max over channels of |grad| (N, H, W).
    """
    rng = np.random.default_rng(seed)
    net = small_net(seed)
    cases = [("random net, x (2, 3, 8, 8), c = [1, 3]", (net, rng.standard_normal((2, 3, 8, 8)), np.array([1, 3]))),
             ("random net, x (1, 3, 8, 8), c = [4]", (small_net(seed + 1), rng.standard_normal((1, 3, 8, 8)),
                                                      np.array([4])))]
    run("saliency", fn, cases, _saliency_ref, _SALIENCY_MISTAKES, outputs=("grad", "M"),
        axes=[IMAGE_AXES, MAP_AXES], arg_names=("net", "x", "c"), verbose=verbose,
        hint="scores = net.forward(x); dscores = one-hot of c; grad = net.backward(dscores); "
             "M = max over axis 1 of |grad|.")


# --------------------------------------------------------------------------------------------------
# class_model_step
# --------------------------------------------------------------------------------------------------


def _score_gradient(net, I, c):
    """dS_c/dI, the gradient of the raw class score at the image (scratch's saliency)."""
    return scratch_saliency(net, I, c).grad


def _objective_gradient(net, I, c, l2):
    """The gradient of J = S_c(I) - l2 ||I||^2: dS_c/dI - 2 l2 I."""
    return _score_gradient(net, I, c) - 2 * l2 * I


def _step(I, g, lr, norm="image"):
    """I + lr * g / ||g||, with one norm per image ("image"); "batch" (one norm for the whole batch) and
    "none" (no normalising) are mistakes."""
    if norm == "image":
        n = np.sqrt((g ** 2).reshape(len(g), -1).sum(1))[:, None, None, None]
    elif norm == "batch":
        n = np.sqrt((g ** 2).sum())
    else:
        n = 1.0
    return I + lr * g / n


def _ascent_ref(net, I, c, lr, l2):
    """The reference: one normalised step up the gradient of J = S_c(I) - l2 ||I||^2."""
    return _step(I, _objective_gradient(net, I, c, l2), lr)


_ASCENT_MISTAKES = register("class_model_step", _ascent_ref, [
    Mistake("descent instead of ascent",
            "gradient ASCENT: we want the score to go up, so step along +dJ/dI (I + lr * g / ||g||).",
            lambda net, I, c, lr, l2: _step(I, 2 * l2 * I - _score_gradient(net, I, c), lr)),
    Mistake("penalty sign",
            "the objective is J = S_c(I) - l2 * ||I||^2, so its gradient is dS_c/dI - 2 * l2 * I (minus).",
            lambda net, I, c, lr, l2: _step(I, _score_gradient(net, I, c) + 2 * l2 * I, lr)),
    Mistake("penalty gradient missing the factor 2",
            "the gradient of l2 * ||I||^2 is 2 * l2 * I.",
            lambda net, I, c, lr, l2: _step(I, _score_gradient(net, I, c) - l2 * I, lr)),
    Mistake("no L2 penalty", "include the regulariser: g = dS_c/dI - 2 * l2 * I.",
            lambda net, I, c, lr, l2: _step(I, _score_gradient(net, I, c), lr)),
    Mistake("step not normalised",
            "normalise the step by the gradient's length, one norm per image: I + lr * g / ||g||.",
            lambda net, I, c, lr, l2: _step(I, _objective_gradient(net, I, c, l2), lr, "none")),
    Mistake("one norm for the whole batch",
            "normalise each image's gradient by its own norm (sum over C, H, W), not by the norm of the batch.",
            lambda net, I, c, lr, l2: _step(I, _objective_gradient(net, I, c, l2), lr, "batch")),
    Mistake("softmax probability instead of score",
            "maximise the raw score S_c, not the softmax probability (which can grow by pushing other "
            "classes down).",
            lambda net, I, c, lr, l2: _step(I, wrong_gradient(net, I, c, "prob") - 2 * l2 * I, lr)),
])


def class_model_step(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(net, I, c, lr, l2) -> I_new``: one step of class model visualisation.

    g = dS_c/dI - 2 * l2 * I (the gradient of J = S_c(I) - l2 ||I||^2), then I_new = I + lr * g / ||g||
    with one norm per image (over C, H, W). I: (N, C, H, W); c: (N,) class indices.
    """
    rng = np.random.default_rng(seed)
    cases = [("random net, I (2, 3, 8, 8), c = [0, 2], lr=0.5, l2=0.1",
              (small_net(seed), rng.standard_normal((2, 3, 8, 8)), np.array([0, 2]), 0.5, 0.1)),
             ("random net, I (1, 3, 8, 8), c = [3], lr=1.0, l2=0.01",
              (small_net(seed + 2), rng.standard_normal((1, 3, 8, 8)), np.array([3]), 1.0, 0.01))]
    run("class_model_step", fn, cases, _ascent_ref, _ASCENT_MISTAKES, outputs=("I_new",), axes=[IMAGE_AXES],
        arg_names=("net", "I", "c", "lr", "l2"), verbose=verbose,
        hint="g = (gradient of S_c at I) - 2 * l2 * I; norm = sqrt of the sum of g**2 over (C, H, W) per "
             "image; I_new = I + lr * g / norm.")
