"""Assignment 1 checks: the three ReLU backward rules, and max-pooling with switches.

The references are the layers of `xai_ref.scratch` (`ReLU.backward`, `MaxPool2d`); every other function
here builds a typical wrong implementation (a `Mistake`) that the checks recognise by name.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..scratch import RULES, MaxPool2d, ReLU
from .runner import IMAGE_AXES, Mistake, register, run

# --------------------------------------------------------------------------------------------------
# relu_backward
# --------------------------------------------------------------------------------------------------


def _relu_ref(dout, x, rule):
    """The reference: scratch's ReLU, forward on x, then its backward rule on dout."""
    r = ReLU()
    r.forward(x)
    return r.backward(dout, rule)


def _when(rules, f):
    """A mistake f(dout, x) that only applies to the given rules (None for the others)."""
    return lambda dout, x, rule: f(dout, x) if rule in rules else None


_RELU_MISTAKES = register("relu_backward", _relu_ref, [
    Mistake("guided rule missing the forward mask",
            "guided backprop keeps the signal only where the forward input was positive: "
            "dx = max(dout, 0) * [x > 0]; you left out the mask [x > 0] (that is the deconvnet rule).",
            _when(("guided",), lambda d, x: np.maximum(d, 0))),
    Mistake("guided rule missing the positive top signal",
            "guided backprop also sets negative top signals to 0: dx = max(dout, 0) * [x > 0]; "
            "you only applied the forward mask (that is plain backprop).",
            _when(("guided",), lambda d, x: d * (x > 0))),
    Mistake("deconvnet using the forward mask",
            "the deconvnet rule ignores the forward pass: dx = max(dout, 0), whatever x was. "
            "Remove the mask [x > 0].",
            _when(("deconvnet",), lambda d, x: np.maximum(d, 0) * (x > 0))),
    Mistake("deconvnet rule gave the gradient",
            "the deconvnet rule does not use x at all: it applies the ReLU to the top signal, "
            "dx = max(dout, 0). You masked with the forward input instead (that is backprop).",
            _when(("deconvnet",), lambda d, x: d * (x > 0))),
    Mistake("no ReLU on the top signal",
            "deconvnet passes only the positive part of the top signal: dx = max(dout, 0).",
            _when(("deconvnet",), lambda d, x: d)),
    Mistake("backprop masked by the top signal",
            "the gradient of the ReLU depends on the forward input: dx = dout * [x > 0]. You masked with "
            "the sign of dout (that is the deconvnet rule).",
            _when(("backprop",), lambda d, x: np.maximum(d, 0))),
    Mistake("backprop with the guided rule",
            "plain backprop keeps negative gradients: dx = dout * [x > 0], without max(dout, 0).",
            _when(("backprop",), lambda d, x: np.maximum(d, 0) * (x > 0))),
    Mistake("no mask at all",
            "the gradient is zero where the ReLU was off in the forward pass: multiply by [x > 0].",
            _when(("backprop",), lambda d, x: d)),
    Mistake("mask x >= 0",
            "at exactly x == 0 the ReLU's gradient is taken as 0 (as in PyTorch): use [x > 0], not [x >= 0].",
            lambda d, x, rule: (d * (x >= 0) if rule == "backprop" else
                                np.maximum(d, 0) * (x >= 0) if rule == "guided" else None)),
    Mistake("forgot dout",
            "the rule passes the signal from above down: multiply the mask by dout (the upstream signal), "
            "do not return the mask alone.",
            lambda d, x, rule: (x > 0).astype(d.dtype) if rule != "deconvnet" else None),
    Mistake("multiplied by x",
            "the local gradient of max(x, 0) is the 0/1 mask [x > 0], not x itself.",
            lambda d, x, rule: d * np.maximum(x, 0) if rule == "backprop" else None),
])


def _relu_cases(seed, rules):
    rng = np.random.default_rng(seed)
    cases = []
    for rule in rules:
        x = rng.standard_normal((2, 3, 4, 4))
        dout = rng.standard_normal((2, 3, 4, 4))
        cases.append((f"rule={rule!r}, random x and dout (2, 3, 4, 4)", (dout, x, rule)))
    xz = np.array([[-1.0, 0.0, 2.0], [0.0, 3.0, -0.5]])
    dz = np.array([[1.0, 1.0, -2.0], [-1.0, 0.5, 4.0]])
    for rule in rules:
        cases.append((f"rule={rule!r}, hand-made 2x3 with x == 0 entries", (dz, xz, rule)))
        cases.append((f"rule={rule!r}, 1-D, all dout negative",
                      (-np.abs(rng.standard_normal(6)) - 0.1, rng.standard_normal(6), rule)))
    return cases


def relu_backward(fn: Callable, rules: Sequence[str] = RULES, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(dout, x, rule) -> dx`` for the ReLU backward rules "backprop", "deconvnet", "guided".

    dout, x: arrays of the same (any) shape; dx: that shape. Cases: random 4-D arrays, a hand-made case
    with x == 0 entries, and an all-negative top signal; for each rule in ``rules``.
    """
    rules = tuple(rules)
    bad = [r for r in rules if r not in RULES]
    if bad:
        raise ValueError(f"unknown rules {bad}; choose from {RULES}")
    run("relu_backward", fn, _relu_cases(seed, rules), _relu_ref, _RELU_MISTAKES, outputs=("dx",),
        axes=[IMAGE_AXES], arg_names=("dout", "x", "rule"), verbose=verbose,
        hint="write the rule as a formula first: backprop dx = dout * [x > 0]; "
             "deconvnet dx = max(dout, 0); guided dx = max(dout, 0) * [x > 0].")


# --------------------------------------------------------------------------------------------------
# maxpool_forward
# --------------------------------------------------------------------------------------------------


def _pool_ref(x, k):
    """The reference: scratch's MaxPool2d(k), its output and its switches."""
    p = MaxPool2d(k)
    out = p.forward(x)
    return out, p.switches


def _pool_windows(x, k):
    """(N, C, Ho, Wo, k*k) windows of a non-overlapping k x k pooling, and Ho, Wo (for the mistakes)."""
    N, C, H, W = x.shape
    Ho, Wo = H // k, W // k
    xw = x[:, :, :Ho * k, :Wo * k].reshape(N, C, Ho, k, Wo, k).transpose(0, 1, 2, 4, 3, 5)
    return xw.reshape(N, C, Ho, Wo, k * k), Ho, Wo


def _wrong_switches(x, k, variant):
    """Switches computed the wrong way (the mistakes): "local" (i * k + j inside the window), "colmajor"
    (j * k + i), "transposed" (col * H + row), "H" (row * H + col), "last" (the last tied maximum)."""
    N, C, H, W = x.shape
    xw, Ho, Wo = _pool_windows(x, k)
    if variant == "last":
        a = k * k - 1 - np.argmax(xw[..., ::-1], axis=-1)
    else:
        a = np.argmax(xw, axis=-1)
    i, j = a // k, a % k
    rows = np.arange(Ho)[:, None] * k + i
    cols = np.arange(Wo)[None, :] * k + j
    return {"local": a, "last": rows * W + cols, "transposed": cols * H + rows, "H": rows * H + cols,
            "colmajor": j * k + i}[variant]


def _switch_mistake(name, variant, hint):
    """A Mistake whose output is right and whose switches are computed the wrong way (`_wrong_switches`)."""
    return Mistake(name, hint, lambda x, k: (None, _wrong_switches(x, k, variant)))


_POOL_FWD_MISTAKES = register("maxpool_forward", _pool_ref, [
    Mistake("mean instead of max", "max pooling keeps the largest value of each window; you averaged it.",
            lambda x, k: (_pool_windows(x, k)[0].mean(-1), None)),
    Mistake("sum instead of max", "max pooling keeps the largest value of each window; you summed it.",
            lambda x, k: (_pool_windows(x, k)[0].sum(-1), None)),
    Mistake("max of |x|", "take the max of the values themselves, not of their absolute values.",
            lambda x, k: (np.abs(_pool_windows(x, k)[0]).max(-1), None)),
    Mistake("max started at 0",
            "a window of negative numbers has a negative maximum: start from -inf (or use .max()), not from 0.",
            lambda x, k: (np.maximum(_pool_windows(x, k)[0].max(-1), 0), None)),
    _switch_mistake("switch inside the window", "local",
                    "a switch is the position of the maximum in the whole H x W input plane, row * W + col, "
                    "not its position i * k + j inside the window."),
    _switch_mistake("switch inside the window (column-major)", "colmajor",
                    "a switch is the position of the maximum in the whole H x W input plane, row * W + col; you "
                    "stored a position inside the window (and in column-major order)."),
    _switch_mistake("rows and columns swapped", "transposed",
                    "the flat index of pixel (row, col) in an H x W plane is row * W + col; you wrote col * H + row."),
    _switch_mistake("row * H + col", "H",
                    "the flat index of pixel (row, col) in an H x W plane is row * W + col: multiply the row by "
                    "the width W (the number of columns), not the height H."),
    _switch_mistake("ties go to the last maximum", "last",
                    "when several entries of a window tie for the maximum, the switch is the first one in "
                    "row-major order (np.argmax and PyTorch do this); yours picks the last."),
])


def _pool_fwd_cases(seed):
    rng = np.random.default_rng(seed)
    ties = np.array([[[[1.0, 3.0, 0.0, 0.0],
                       [3.0, 2.0, 0.0, 0.0],
                       [5.0, 5.0, -1.0, -1.0],
                       [5.0, 5.0, -1.0, -1.0]]]])
    return [
        ("random x (2, 3, 4, 4), k=2", (rng.standard_normal((2, 3, 4, 4)), 2)),
        ("random x (1, 2, 6, 6), k=3", (rng.standard_normal((1, 2, 6, 6)), 3)),
        ("non-square x (1, 1, 4, 6), k=2", (rng.standard_normal((1, 1, 4, 6)), 2)),
        ("all negative x (1, 2, 4, 4), k=2", (-np.abs(rng.standard_normal((1, 2, 4, 4))) - 0.1, 2)),
        ("hand-made ties (1, 1, 4, 4), k=2", (ties, 2)),
    ]


def maxpool_forward(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(x, k) -> (out, switches)``: k x k max pooling with stride k, no padding.

    x: (N, C, H, W) with H, W multiples of k; out: (N, C, H//k, W//k); switches: (N, C, H//k, W//k)
    integers, the flat index row * W + col (in x's H x W plane) of each window's maximum, the first
    maximum in row-major order when several tie (like ``torch``'s ``return_indices=True``).
    """
    run("maxpool_forward", fn, _pool_fwd_cases(seed), _pool_ref, _POOL_FWD_MISTAKES,
        outputs=("out", "switches"), axes=[IMAGE_AXES, IMAGE_AXES], exact=("switches",),
        arg_names=("x", "k"), verbose=verbose,
        hint="out[n, c, p, q] = max of x[n, c, k*p:k*p+k, k*q:k*q+k]; the switch of that window is "
             "row * W + col of where the max is in x.")


# --------------------------------------------------------------------------------------------------
# maxpool_backward
# --------------------------------------------------------------------------------------------------


def _pool_bwd_ref(dout, switches, x_shape):
    """The reference: scratch's MaxPool2d.backward, given the switches and the input shape."""
    p = MaxPool2d(1)
    p.x_shape, p.switches = tuple(x_shape), switches
    return p.backward(dout)


def _pool_every_position(scale):
    """Mistake: dout copied to every position of its window (divided by the window size if scale)."""
    def f(dout, switches, x_shape):
        N, C, H, W = x_shape
        Ho, Wo = dout.shape[2:]
        if H % Ho or W % Wo:
            return None
        kh, kw = H // Ho, W // Wo
        return np.repeat(np.repeat(dout, kh, axis=2), kw, axis=3) / (kh * kw if scale else 1)
    return f


def _pool_assign(dout, switches, x_shape):
    """Mistake: dx[switches] = dout, which keeps one of two signals sent to the same pixel."""
    N, C, H, W = x_shape
    dx = np.zeros((N, C, H * W), dtype=dout.dtype)
    n, c = np.arange(N)[:, None, None, None], np.arange(C)[None, :, None, None]
    dx[n, c, switches] = dout
    return dx.reshape(x_shape)


def _pool_transposed(dout, switches, x_shape):
    """Mistake: a switch read as col * H + row."""
    N, C, H, W = x_shape
    dx = np.zeros((N, C, W, H), dtype=dout.dtype)
    n, c = np.arange(N)[:, None, None, None], np.arange(C)[None, :, None, None]
    np.add.at(dx, (n, c, switches // H, switches % H), dout)
    return dx.transpose(0, 1, 3, 2)


_POOL_BWD_MISTAKES = register("maxpool_backward", _pool_bwd_ref, [
    Mistake("pool gradient to every position",
            "only the maximum of each window gets the gradient (it alone affected the output): send each "
            "dout entry to its switch, and leave the other positions of the window at 0.",
            _pool_every_position(False)),
    Mistake("average-pool gradient",
            "you spread dout evenly over the window (dout / k^2): that is the gradient of average pooling. "
            "For max pooling the whole dout goes to the switch.",
            _pool_every_position(True)),
    Mistake("assignment drops repeated switches",
            "where windows overlap, one pixel can be the maximum of two windows and must receive the SUM of "
            "their signals. `dx[idx] = dout` (or `dx[idx] += dout`) with repeated indices keeps only one; "
            "use np.add.at(dx, idx, dout).",
            _pool_assign),
    Mistake("rows and columns swapped",
            "a switch s is the flat index row * W + col: row = s // W, col = s % W.",
            _pool_transposed),
])


def _pool_bwd_cases(seed):
    rng = np.random.default_rng(seed)
    cases = []
    for shape, k, stride, desc in [((2, 3, 4, 4), 2, 2, "random, k=2"), ((1, 2, 6, 6), 3, 3, "random, k=3"),
                                   ((1, 1, 4, 6), 2, 2, "non-square (1, 1, 4, 6), k=2"),
                                   ((1, 2, 7, 7), 3, 2, "overlapping windows (kernel 3, stride 2): a pixel can "
                                                        "be the max of two windows")]:
        x = rng.standard_normal(shape)
        if stride != k:       # make repeated switches certain: one large pixel shared by four windows
            x[:, :, 2, 2] = 10.0
        p = MaxPool2d(k, stride)
        p.forward(x)
        dout = rng.standard_normal(p.switches.shape)
        cases.append((desc + f" {shape}" if "non-square" not in desc else desc, (dout, p.switches.copy(), shape)))
    return cases


def maxpool_backward(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(dout, switches, x_shape) -> dx``: route each dout entry to its switch.

    dout, switches: (N, C, Ho, Wo); x_shape: (N, C, H, W); dx: (N, C, H, W), zero except at the
    switches. One case has overlapping windows, where a pixel that wins two windows gets the sum.
    """
    run("maxpool_backward", fn, _pool_bwd_cases(seed), _pool_bwd_ref, _POOL_BWD_MISTAKES, outputs=("dx",),
        axes=[IMAGE_AXES], arg_names=("dout", "switches", "x_shape"), verbose=verbose,
        hint="dx starts as zeros; each dout[n, c, p, q] is added at row = s // W, col = s % W of plane "
             "(n, c), where s = switches[n, c, p, q].")
