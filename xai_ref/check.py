"""Checks for the course assignments: run a student's function and the reference on the same inputs.

>>> from xai_ref import check
>>> check.grad_cam_alpha(grad_cam_alpha)      # prints one PASSED line, or raises AssertionError

Every check runs the student's function and a reference on seeded random inputs and on small hand-made
edge cases. On the first case that fails it raises an ``AssertionError`` (so nbgrader, otter and pytest
mark the test failed) whose message says:

* which function and which case failed, and the relative error in the CS231n style
  (``max |a - b| / max (|a| + |b|)``, see :func:`xai_ref.scratch.rel_error`);
* where the largest difference is, with names for the axes ("at image 0, channel 3: expected 0.125,
  got 0.5");
* a hint naming the mistake, when the student's output equals what a typical wrong implementation
  gives (sum instead of mean, forgetting the ReLU, the pooling gradient sent to every position of the
  window, ...). Each check knows a list of such mistakes; ``MISTAKES[check_name]`` lists their names.

A stub that still raises ``NotImplementedError`` gets "not implemented yet". A function that changes its
inputs in place, returns ``None``, the wrong shape or NaN gets a message saying so.

The references are NumPy code here and the layers of :mod:`xai_ref.scratch`; the tests check them against
the PyTorch methods of :mod:`xai_ref`. Nothing here prints anything that depends on the machine: the
PASSED line names the number of cases and the tolerance, not the exact error.
"""

from __future__ import annotations

import copy
import traceback
from typing import Callable, Sequence

import numpy as np

from .scratch.gradcheck import rel_error
from .scratch.layers import Conv2d, Flatten, GlobalAvgPool, Linear, MaxPool2d, ReLU, softmax
from .scratch.network import Sequential

__all__ = [
    "MISTAKES", "rel_error",
    # A1
    "relu_backward", "maxpool_forward", "maxpool_backward",
    # A2
    "saliency", "class_model_step",
    # A3
    "cam", "grad_cam_alpha", "grad_cam_map", "upsample_bilinear", "grad_cam",
    # A4
    "attention_map", "normalise_attention", "at_loss",
    # A5
    "pointing_game", "deletion_curve",
    # the networks and images of the exercises
    "COLOURS", "colour_net", "colour_scenes", "small_net",
]

TOL = 1e-9          # relative error below which a float64 result is right
MATCH = 1e-6        # relative error below which a student's output "is" a known mistake

IMAGE_AXES = ("image", "channel", "row", "column")
MAP_AXES = ("image", "row", "column")

#: check name -> {mistake name: hint}; filled in by the checks below (the tests read it).
MISTAKES: dict[str, dict[str, str]] = {}


class Mistake:
    """A typical wrong implementation: ``fn`` computes what it gives (None where it does not apply)."""

    def __init__(self, name: str, hint: str, fn: Callable):
        self.name, self.hint, self.fn = name, hint, fn


#: check name -> (reference function, list of Mistake); for the tests.
_CATALOGUE: dict[str, tuple[Callable, list[Mistake]]] = {}


def _register(check: str, reference: Callable, mistakes: Sequence[Mistake]) -> list[Mistake]:
    MISTAKES[check] = {m.name: m.hint for m in mistakes}
    _CATALOGUE[check] = (reference, list(mistakes))
    return list(mistakes)


# --------------------------------------------------------------------------------------------------
# The runner shared by every check
# --------------------------------------------------------------------------------------------------


def _copy(args):
    return tuple(copy.deepcopy(a) for a in args)


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    return "0" if v == 0 else f"{v:.4g}"


def _where(index, axes) -> str:
    if not index:
        return ""
    if axes is not None and len(axes) == len(index):
        return " at " + ", ".join(f"{a} {i}" for a, i in zip(axes, index))
    return f" at index {tuple(int(i) for i in index)}"


def _as_outputs(value, names):
    """The student's return value -> a list of arrays, one per output name (or an error message)."""
    if value is None:
        return None, "returned None: did you forget the `return` statement?"
    if len(names) > 1:
        if not isinstance(value, (tuple, list)) or len(value) != len(names):
            return None, (f"should return {len(names)} values ({', '.join(names)}), "
                          f"got {type(value).__name__}"
                          + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""))
        values = list(value)
    else:
        values = [value]
    out = []
    for name, v in zip(names, values):
        if v is None:
            return None, f"returned None for {name}"
        try:
            a = np.asarray(v)
        except Exception:  # noqa: BLE001 - anything that is not an array is reported
            return None, f"{name} should be a NumPy array, got {type(v).__name__}"
        if a.dtype == object:
            return None, f"{name} should be a NumPy array of numbers, got {type(v).__name__}"
        out.append(a)
    return out, None


def _same(a: np.ndarray, b: np.ndarray, exact: bool, tol: float) -> bool:
    if a.shape != b.shape:
        return False
    if exact:
        return bool(np.array_equal(a, b))
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return False
    return rel_error(a, b) < tol


def _case_text(desc: str) -> str:
    return f'case "{desc}"'


def _run(name: str, fn: Callable, cases, reference: Callable, mistakes: Sequence[Mistake] = (),
         outputs: Sequence[str] = ("result",), axes: Sequence | None = None, exact: Sequence[str] = (),
         hint: str | None = None, arg_names: Sequence[str] | None = None, tol: float = TOL,
         verbose: bool = True) -> None:
    """Run fn and reference on each (description, args) case; raise AssertionError at the first failure.

    outputs: names of the returned values (a tuple of that length is expected when there are several);
    axes: for each output, names of its axes (for "at image 0, channel 3"); exact: outputs compared for
    equality (integers); hint: what to look at when no known mistake matches.
    """
    if not callable(fn):
        raise AssertionError(f"{name}: pass your function itself, e.g. check.{name}({name}), "
                             f"got {type(fn).__name__}")
    axes = list(axes) if axes is not None else [None] * len(outputs)
    n = 0
    for desc, args in cases:
        n += 1
        expected = reference(*_copy(args))
        expected = list(expected) if len(outputs) > 1 else [expected]
        expected = [np.asarray(e) for e in expected]
        given = _copy(args)
        try:
            value = fn(*given)
        except NotImplementedError as e:
            raise AssertionError(_not_implemented(name, fn, e)) from None
        except Exception as e:  # noqa: BLE001 - the student's error, reported with the case
            raise AssertionError(f"{name} raised {type(e).__name__} on {_case_text(desc)}: {e}\n"
                                 f"  (inputs: {_describe_args(args, arg_names)}; see the traceback above)") from e
        for i, (a, b) in enumerate(zip(args, given)):
            if isinstance(a, np.ndarray) and not (a.shape == np.shape(b) and np.array_equal(a, b, equal_nan=True)):
                what = arg_names[i] if arg_names else f"argument {i + 1}"
                raise AssertionError(f"{name} changed its input `{what}` in place on {_case_text(desc)}; work on "
                                     f"a copy (e.g. `{what}.copy()`, or build a new array) so the caller's "
                                     "data stays as it was.")
        got, problem = _as_outputs(value, outputs)
        if problem:
            raise AssertionError(f"{name} {problem} (on {_case_text(desc)})")
        for j, out_name in enumerate(outputs):
            g, e = got[j], expected[j]
            is_exact = out_name in exact
            integral = np.issubdtype(g.dtype, np.integer) or np.issubdtype(g.dtype, np.bool_)
            if _same(g, e, is_exact, tol) and (integral or not is_exact):
                continue
            label = "" if len(outputs) == 1 else f" ({out_name})"
            lines = [f"{name}{label}: FAILED on {_case_text(desc)}"]
            matched = _match_mistakes(mistakes, args, g, e, j, len(outputs), is_exact, tol)
            if g.shape != e.shape:
                lines.append(f"  {out_name} should have shape {e.shape}, got shape {g.shape}")
            elif is_exact and not integral:
                lines.append(f"  {out_name} should hold integers (or booleans), got dtype {g.dtype}")
                if np.array_equal(g, e):
                    matched = matched or ["the values are right: convert them with .astype(np.int64)"]
            elif not np.all(np.isfinite(g)) and np.all(np.isfinite(e)):
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(g))[0])
                lines.append(f"  {out_name} contains NaN or inf{_where(bad, axes[j])}, where the reference has "
                             f"{_fmt(e[bad])}: a division by zero?")
            else:
                if not is_exact:
                    lines.append(f"  relative error {_fmt(rel_error(g, e))} (should be below {tol:.0e})")
                diff = np.abs(g.astype(np.float64) - e.astype(np.float64))
                idx = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.ndim else ()
                if is_exact:
                    idx = tuple(np.argwhere(g != e)[0]) if g.ndim else ()
                    lines.append(f"  {int(np.sum(g != e))} of {g.size} entries differ")
                lines.append(f"  {out_name} differs{_where(idx, axes[j])}: expected {_fmt(e[idx])}, "
                             f"got {_fmt(g[idx])}" + _ratio_text(g, e))
            if matched:
                lines += [f"  hint: {h}" for h in matched]
            elif hint:
                lines.append(f"  hint: {hint}")
            lines.append(f"  (inputs: {_describe_args(args, arg_names)})")
            raise AssertionError("\n".join(lines))
    if verbose:
        print(f"PASSED {name}: {n} cases agree with the reference (relative error < {tol:.0e})")


def _not_implemented(name: str, fn: Callable, e: BaseException) -> str:
    """'not implemented yet', naming the function that still raises when it is not `fn` itself."""
    frames = traceback.extract_tb(e.__traceback__)
    culprit = frames[-1].name if len(frames) > 1 else getattr(fn, "__name__", name)
    own = getattr(fn, "__name__", name)
    where = f"`{own}`" if culprit in (own, "<lambda>") else f"`{culprit}` (called from `{own}`)"
    return (f"{name}: not implemented yet: {where} still raises NotImplementedError. Replace "
            "`raise NotImplementedError()` with your code, run that cell, then run this check again.")


def _ratio_text(g, e) -> str:
    """', everything is 4 times too large' when the whole output is off by one constant factor."""
    if g.shape != e.shape or not np.all(np.isfinite(g)):
        return ""
    nz = np.abs(e) > 1e-12
    if not nz.any() or np.any(np.abs(g[~nz]) > 1e-9):
        return ""
    r = g[nz] / e[nz]
    if np.ptp(r) < 1e-6 * max(1.0, abs(r[0])) and abs(r[0] - 1) > 1e-6:
        return f"; everything is {_fmt(r[0])} times the expected value"
    return ""


def _match_mistakes(mistakes, args, g, e, j, n_outputs, exact, tol) -> list[str]:
    hints = []
    for m in mistakes:
        try:
            wrong = m.fn(*_copy(args))
        except Exception:  # noqa: BLE001 - a mistake that does not apply to these inputs
            continue
        if wrong is None or (n_outputs > 1 and wrong[j] is None):
            continue
        wrong = np.asarray(wrong[j] if n_outputs > 1 else wrong)
        if wrong.shape == g.shape and _same(g, wrong, exact, MATCH) and not _same(wrong, e, exact, tol):
            hints.append(f"({m.name}) {m.hint}")
    return hints


def _describe_args(args, names) -> str:
    parts = []
    for i, a in enumerate(args):
        n = names[i] if names and i < len(names) else f"arg{i + 1}"
        if isinstance(a, np.ndarray):
            parts.append(f"{n} {a.dtype} array of shape {a.shape}")
        elif isinstance(a, Sequential):
            parts.append(f"{n} a Sequential of {len(a)} layers")
        else:
            parts.append(f"{n}={a!r}")
    return ", ".join(parts)


def _rng(seed):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------------------
# A1: the three ReLU backward rules; max-pooling with switches
# --------------------------------------------------------------------------------------------------

RULES = ("backprop", "deconvnet", "guided")


def _relu_ref(dout, x, rule):
    r = ReLU()
    r.forward(x)
    return r.backward(dout, rule)


def _when(rules, f):
    return lambda dout, x, rule: f(dout, x) if rule in rules else None


_RELU_MISTAKES = _register("relu_backward", _relu_ref, [
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
    rng = _rng(seed)
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
    _run("relu_backward", fn, _relu_cases(seed, rules), _relu_ref, _RELU_MISTAKES, outputs=("dx",),
         axes=[IMAGE_AXES], arg_names=("dout", "x", "rule"), verbose=verbose,
         hint="write the rule as a formula first: backprop dx = dout * [x > 0]; "
              "deconvnet dx = max(dout, 0); guided dx = max(dout, 0) * [x > 0].")


def _pool_ref(x, k):
    p = MaxPool2d(k)
    out = p.forward(x)
    return out, p.switches


def _pool_windows(x, k):
    """(N, C, Ho, Wo, k*k) windows of a non-overlapping k x k pooling, and rows/cols of each entry."""
    N, C, H, W = x.shape
    Ho, Wo = H // k, W // k
    xw = x[:, :, :Ho * k, :Wo * k].reshape(N, C, Ho, k, Wo, k).transpose(0, 1, 2, 4, 3, 5)
    return xw.reshape(N, C, Ho, Wo, k * k), Ho, Wo


def _pool_switch_variant(variant):
    def f(x, k):
        N, C, H, W = x.shape
        xw, Ho, Wo = _pool_windows(x, k)
        if variant == "last":
            a = k * k - 1 - np.argmax(xw[..., ::-1], axis=-1)
        else:
            a = np.argmax(xw, axis=-1)
        i, j = a // k, a % k
        rows = np.arange(Ho)[:, None] * k + i
        cols = np.arange(Wo)[None, :] * k + j
        out = xw.max(axis=-1)
        sw = {"local": a, "last": rows * W + cols, "transposed": cols * H + rows, "H": rows * H + cols,
              "colmajor": j * k + i}[variant]
        return out, sw
    return f


_POOL_FWD_MISTAKES = _register("maxpool_forward", _pool_ref, [
    Mistake("mean instead of max", "max pooling keeps the largest value of each window; you averaged it.",
            lambda x, k: (_pool_windows(x, k)[0].mean(-1), None)),
    Mistake("sum instead of max", "max pooling keeps the largest value of each window; you summed it.",
            lambda x, k: (_pool_windows(x, k)[0].sum(-1), None)),
    Mistake("max of |x|", "take the max of the values themselves, not of their absolute values.",
            lambda x, k: (np.abs(_pool_windows(x, k)[0]).max(-1), None)),
    Mistake("max started at 0",
            "a window of negative numbers has a negative maximum: start from -inf (or use .max()), not from 0.",
            lambda x, k: (np.maximum(_pool_windows(x, k)[0].max(-1), 0), None)),
    Mistake("switch inside the window",
            "a switch is the position of the maximum in the whole H x W input plane, row * W + col, "
            "not its position i * k + j inside the window.",
            lambda x, k: (None, _pool_switch_variant("local")(x, k)[1])),
    Mistake("switch inside the window (column-major)",
            "a switch is the position of the maximum in the whole H x W input plane, row * W + col; "
            "you stored a position inside the window (and in column-major order).",
            lambda x, k: (None, _pool_switch_variant("colmajor")(x, k)[1])),
    Mistake("rows and columns swapped",
            "the flat index of pixel (row, col) in an H x W plane is row * W + col; you wrote col * H + row.",
            lambda x, k: (None, _pool_switch_variant("transposed")(x, k)[1])),
    Mistake("row * H + col",
            "the flat index of pixel (row, col) in an H x W plane is row * W + col: multiply the row by the "
            "width W (the number of columns), not the height H.",
            lambda x, k: (None, _pool_switch_variant("H")(x, k)[1])),
    Mistake("ties go to the last maximum",
            "when several entries of a window tie for the maximum, the switch is the first one in row-major "
            "order (np.argmax and PyTorch do this); yours picks the last.",
            lambda x, k: (None, _pool_switch_variant("last")(x, k)[1])),
])


def _pool_fwd_cases(seed):
    rng = _rng(seed)
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
    _run("maxpool_forward", fn, _pool_fwd_cases(seed), _pool_ref, _POOL_FWD_MISTAKES,
         outputs=("out", "switches"), axes=[IMAGE_AXES, IMAGE_AXES], exact=("switches",),
         arg_names=("x", "k"), verbose=verbose,
         hint="out[n, c, p, q] = max of x[n, c, k*p:k*p+k, k*q:k*q+k]; the switch of that window is "
              "row * W + col of where the max is in x.")


def _pool_bwd_ref(dout, switches, x_shape):
    p = MaxPool2d(1)
    p.x_shape, p.switches = tuple(x_shape), switches
    return p.backward(dout)


def _pool_every_position(scale):
    def f(dout, switches, x_shape):
        N, C, H, W = x_shape
        Ho, Wo = dout.shape[2:]
        if H % Ho or W % Wo:
            return None
        kh, kw = H // Ho, W // Wo
        return np.repeat(np.repeat(dout, kh, axis=2), kw, axis=3) / (kh * kw if scale else 1)
    return f


def _pool_assign(dout, switches, x_shape):
    N, C, H, W = x_shape
    dx = np.zeros((N, C, H * W), dtype=dout.dtype)
    n, c = np.arange(N)[:, None, None, None], np.arange(C)[None, :, None, None]
    dx[n, c, switches] = dout
    return dx.reshape(x_shape)


def _pool_transposed(dout, switches, x_shape):
    N, C, H, W = x_shape
    dx = np.zeros((N, C, W, H), dtype=dout.dtype)
    n, c = np.arange(N)[:, None, None, None], np.arange(C)[None, :, None, None]
    np.add.at(dx, (n, c, switches // H, switches % H), dout)
    return dx.transpose(0, 1, 3, 2)


_POOL_BWD_MISTAKES = _register("maxpool_backward", _pool_bwd_ref, [
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
    rng = _rng(seed)
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
    _run("maxpool_backward", fn, _pool_bwd_cases(seed), _pool_bwd_ref, _POOL_BWD_MISTAKES, outputs=("dx",),
         axes=[IMAGE_AXES], arg_names=("dout", "switches", "x_shape"), verbose=verbose,
         hint="dx starts as zeros; each dout[n, c, p, q] is added at row = s // W, col = s % W of plane "
              "(n, c), where s = switches[n, c, p, q].")


# --------------------------------------------------------------------------------------------------
# A2: saliency and class model visualisation on a scratch network
# --------------------------------------------------------------------------------------------------


def small_net(seed: int = 0, in_channels: int = 3, size: int = 8, n_classes: int = 5,
              gap: bool = False) -> Sequential:
    """A small random scratch network (float64) for checks and exercises.

    conv3x3(in->4) ReLU maxpool2 conv3x3(4->6) ReLU, then either flatten + linear (``gap=False``) or
    global average pooling + linear (``gap=True``, the CAM architecture). Layer names: "conv1", "relu1",
    "pool1", "conv2", "relu2" (the last feature maps A), then "flatten" "fc" or "gap" "flatten" "fc".
    """
    rng = _rng(seed)

    def he(*shape):
        fan_in = int(np.prod(shape[1:]))
        return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)

    layers = [Conv2d(he(4, in_channels, 3, 3), 0.1 * rng.standard_normal(4), padding=1), ReLU(), MaxPool2d(2),
              Conv2d(he(6, 4, 3, 3), 0.1 * rng.standard_normal(6), padding=1), ReLU()]
    names = ["conv1", "relu1", "pool1", "conv2", "relu2"]
    h = size // 2
    if gap:
        layers += [GlobalAvgPool(), Flatten(), Linear(he(n_classes, 6), 0.1 * rng.standard_normal(n_classes))]
        names += ["gap", "flatten", "fc"]
    else:
        layers += [Flatten(), Linear(he(n_classes, 6 * h * h), 0.1 * rng.standard_normal(n_classes))]
        names += ["flatten", "fc"]
    return Sequential(layers, names)


def _classes(c, N):
    c = np.asarray(c)
    return np.full(N, int(c)) if c.ndim == 0 else c.astype(np.int64)


def _one_hot(scores, c):
    d = np.zeros_like(scores)
    d[np.arange(scores.shape[0]), _classes(c, scores.shape[0])] = 1.0
    return d


def _input_grad(net, x, c, top="score", stop=None):
    """d(target)/dx (or at the output of layer `stop`) for target = score S_c, softmax p_c, log p_c or sum."""
    s = net.forward(x)
    if top == "score":
        d = _one_hot(s, c)
    elif top == "sum":
        d = np.ones_like(s)
    else:
        p = softmax(s)
        oh = _one_hot(s, c)
        if top == "prob":      # dp_c/ds = p_c (onehot - p)
            d = p[np.arange(len(s)), _classes(c, len(s))][:, None] * (oh - p)
        else:                  # d log p_c / ds = onehot - p
            d = oh - p
    return net.backward(d, stop=stop)


def _saliency_ref(net, x, c, top="score", reduce="max_abs"):
    g = _input_grad(net, x, c, top)
    M = {"max_abs": lambda: np.abs(g).max(1), "sum_abs": lambda: np.abs(g).sum(1),
         "max": lambda: g.max(1), "mean_abs": lambda: np.abs(g).mean(1),
         "abs_sum": lambda: np.abs(g.sum(1))}[reduce]()
    return g, M


_SALIENCY_MISTAKES = _register("saliency", _saliency_ref, [
    Mistake("softmax probability instead of score",
            "saliency uses the raw class score S_c (before the softmax): backpropagate a one-hot vector "
            "from the scores, not the gradient of the probability p_c.",
            lambda net, x, c: _saliency_ref(net, x, c, "prob")),
    Mistake("log-probability instead of score",
            "saliency uses the raw class score S_c: backpropagate a one-hot vector, not onehot - softmax.",
            lambda net, x, c: _saliency_ref(net, x, c, "logprob")),
    Mistake("all classes instead of one",
            "backpropagate the score of class c alone: dscores is one-hot (1 at class c, 0 elsewhere), "
            "not all ones.",
            lambda net, x, c: _saliency_ref(net, x, c, "sum")),
    Mistake("sum over channels instead of max",
            "the map takes the largest |gradient| over the colour channels: M = max_ch |grad|, not the sum.",
            lambda net, x, c: _saliency_ref(net, x, c, reduce="sum_abs")),
    Mistake("mean over channels instead of max",
            "the map takes the largest |gradient| over the colour channels: M = max_ch |grad|, not the mean.",
            lambda net, x, c: _saliency_ref(net, x, c, reduce="mean_abs")),
    Mistake("forgot the absolute value",
            "take the absolute value before the max over channels: M = max_ch |grad| (a large negative "
            "gradient matters as much as a large positive one).",
            lambda net, x, c: _saliency_ref(net, x, c, reduce="max")),
    Mistake("abs of the channel sum",
            "take the max over channels of |grad|: M = max_ch |grad|, not |sum_ch grad|.",
            lambda net, x, c: _saliency_ref(net, x, c, reduce="abs_sum")),
])


def saliency(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(net, x, c) -> (grad, M)``: image-specific class saliency (Simonyan et al. 2014).

    net: a scratch Sequential giving class scores (N, classes); x: (N, C, H, W); c: (N,) class indices.
    grad = dS_c/dx (N, C, H, W); M = max over channels of |grad| (N, H, W).
    """
    rng = _rng(seed)
    net = small_net(seed)
    cases = [("random net, x (2, 3, 8, 8), c = [1, 3]", (net, rng.standard_normal((2, 3, 8, 8)), np.array([1, 3]))),
             ("random net, x (1, 3, 8, 8), c = [4]", (small_net(seed + 1), rng.standard_normal((1, 3, 8, 8)),
                                                      np.array([4])))]
    _run("saliency", fn, cases, _saliency_ref, _SALIENCY_MISTAKES, outputs=("grad", "M"),
         axes=[IMAGE_AXES, MAP_AXES], arg_names=("net", "x", "c"), verbose=verbose,
         hint="scores = net.forward(x); dscores = one-hot of c; grad = net.backward(dscores); "
              "M = max over axis 1 of |grad|.")


def _ascent_ref(net, I, c, lr, l2, sign=1.0, psign=-1.0, factor=2.0, normalise="image", top="score"):
    g = sign * _input_grad(net, I, c, top) + psign * factor * l2 * I
    if normalise == "image":
        n = np.sqrt((g ** 2).reshape(len(g), -1).sum(1))[:, None, None, None]
    elif normalise == "batch":
        n = np.sqrt((g ** 2).sum())
    else:
        n = 1.0
    return I + lr * g / n


_ASCENT_MISTAKES = _register("class_model_step", _ascent_ref, [
    Mistake("descent instead of ascent",
            "gradient ASCENT: we want the score to go up, so step along +dJ/dI (I + lr * g / ||g||).",
            lambda net, I, c, lr, l2: _ascent_ref(net, I, c, lr, l2, sign=-1.0, psign=1.0)),
    Mistake("penalty sign",
            "the objective is J = S_c(I) - l2 * ||I||^2, so its gradient is dS_c/dI - 2 * l2 * I (minus).",
            lambda net, I, c, lr, l2: _ascent_ref(net, I, c, lr, l2, psign=1.0)),
    Mistake("penalty gradient missing the factor 2",
            "the gradient of l2 * ||I||^2 is 2 * l2 * I.",
            lambda net, I, c, lr, l2: _ascent_ref(net, I, c, lr, l2, factor=1.0)),
    Mistake("no L2 penalty", "include the regulariser: g = dS_c/dI - 2 * l2 * I.",
            lambda net, I, c, lr, l2: _ascent_ref(net, I, c, lr, l2, factor=0.0)),
    Mistake("step not normalised",
            "normalise the step by the gradient's length, one norm per image: I + lr * g / ||g||.",
            lambda net, I, c, lr, l2: _ascent_ref(net, I, c, lr, l2, normalise="none")),
    Mistake("one norm for the whole batch",
            "normalise each image's gradient by its own norm (sum over C, H, W), not by the norm of the batch.",
            lambda net, I, c, lr, l2: _ascent_ref(net, I, c, lr, l2, normalise="batch")),
    Mistake("softmax probability instead of score",
            "maximise the raw score S_c, not the softmax probability (which can grow by pushing other "
            "classes down).",
            lambda net, I, c, lr, l2: _ascent_ref(net, I, c, lr, l2, top="prob")),
])


def class_model_step(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(net, I, c, lr, l2) -> I_new``: one step of class model visualisation.

    g = dS_c/dI - 2 * l2 * I (the gradient of J = S_c(I) - l2 ||I||^2), then I_new = I + lr * g / ||g||
    with one norm per image (over C, H, W). I: (N, C, H, W); c: (N,) class indices.
    """
    rng = _rng(seed)
    cases = [("random net, I (2, 3, 8, 8), c = [0, 2], lr=0.5, l2=0.1",
              (small_net(seed), rng.standard_normal((2, 3, 8, 8)), np.array([0, 2]), 0.5, 0.1)),
             ("random net, I (1, 3, 8, 8), c = [3], lr=1.0, l2=0.01",
              (small_net(seed + 2), rng.standard_normal((1, 3, 8, 8)), np.array([3]), 1.0, 0.01))]
    _run("class_model_step", fn, cases, _ascent_ref, _ASCENT_MISTAKES, outputs=("I_new",), axes=[IMAGE_AXES],
         arg_names=("net", "I", "c", "lr", "l2"), verbose=verbose,
         hint="g = (gradient of S_c at I) - 2 * l2 * I; norm = sqrt of the sum of g**2 over (C, H, W) per "
              "image; I_new = I + lr * g / norm.")


# --------------------------------------------------------------------------------------------------
# A3: CAM and Grad-CAM
# --------------------------------------------------------------------------------------------------


def _cam_ref(f, W, c):
    return np.einsum("nk,nkhw->nhw", W[_classes(c, len(f))], f)


def _normalised(M):
    lo = M.min(axis=(1, 2), keepdims=True)
    hi = M.max(axis=(1, 2), keepdims=True)
    return (M - lo) / np.where(hi > lo, hi - lo, 1)


_CAM_MISTAKES = _register("cam", _cam_ref, [
    Mistake("mean instead of sum",
            "CAM is the weighted SUM over the K maps, M_c = sum_k w_k^c f_k; you averaged over k "
            "(K times too small).",
            lambda f, W, c: _cam_ref(f, W, c) / f.shape[1]),
    Mistake("ReLU added",
            "the CAM of Zhou et al. has no ReLU: keep the negative values (it is Grad-CAM that adds one).",
            lambda f, W, c: np.maximum(_cam_ref(f, W, c), 0)),
    Mistake("normalised",
            "return the raw map: normalising to [0, 1] is a display decision, made when plotting.",
            lambda f, W, c: _normalised(_cam_ref(f, W, c))),
    Mistake("weights of the wrong class",
            "use the row of W of each image's own class c[n] (W has shape (classes, K)): w^c = W[c].",
            lambda f, W, c: _cam_ref(f, W, np.zeros(len(f), dtype=int))),
    Mistake("transposed weights",
            "W has shape (classes, K): the weights of class c are the ROW W[c], not the column W[:, c].",
            lambda f, W, c: np.einsum("kn,nkhw->nhw", W[:, _classes(c, len(f))], f) if W.shape[0] == W.shape[1]
            else None),
])


def cam(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(f, W, c) -> M``: the class activation map (Zhou et al. 2016).

    f: (N, K, h, w) the last feature maps; W: (classes, K) the weights of the linear layer after GAP;
    c: (N,) class indices. M: (N, h, w), M[n] = sum_k W[c[n], k] * f[n, k]. Raw: no ReLU, no normalising.
    """
    rng = _rng(seed)
    f1, W1 = np.abs(rng.standard_normal((2, 6, 4, 4))), rng.standard_normal((5, 6))
    cases = [("random f (3, 4, 3, 5), W (4, 4), c = [0, 3, 2]",
              (np.abs(rng.standard_normal((3, 4, 3, 5))), rng.standard_normal((4, 4)), np.array([0, 3, 2]))),
             ("random f (2, 6, 4, 4), W (5, 6), c = [4, 1]", (f1, W1, np.array([4, 1])))]
    _run("cam", fn, cases, _cam_ref, _CAM_MISTAKES, outputs=("M",), axes=[MAP_AXES],
         arg_names=("f", "W", "c"), verbose=verbose,
         hint="for each image n: M[n] = sum over k of W[c[n], k] * f[n, k] (np.einsum('nk,nkhw->nhw', ...) "
              "does it in one line).")


def _alpha_ref(dY_dA):
    return dY_dA.mean(axis=(2, 3))


_ALPHA_MISTAKES = _register("grad_cam_alpha", _alpha_ref, [
    Mistake("sum instead of mean",
            "did you average over i and j? alpha_k = (1/Z) sum_ij dY/dA^k_ij with Z = h * w: you summed "
            "(Z times too large).",
            lambda g: g.sum(axis=(2, 3))),
    Mistake("abs of the gradient",
            "average the gradient itself, with its sign: negative gradients lower alpha_k.",
            lambda g: np.abs(g).mean(axis=(2, 3))),
    Mistake("ReLU on the gradient",
            "Grad-CAM averages the raw gradient (positive and negative); clamping it first is a different "
            "method.",
            lambda g: np.maximum(g, 0).mean(axis=(2, 3))),
    Mistake("max instead of mean", "alpha_k is the average of the gradient over positions, not its maximum.",
            lambda g: g.max(axis=(2, 3))),
    Mistake("averaged over one spatial axis only",
            "average over both spatial axes i and j (axis=(2, 3)).",
            lambda g: g.mean(axis=2)),
])


def grad_cam_alpha(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(dY_dA) -> alpha``: alpha_k = (1/Z) sum_ij dy^c/dA^k_ij.

    dY_dA: (N, K, h, w) the gradient of the class score at the feature maps; alpha: (N, K).
    """
    rng = _rng(seed)
    cases = [("random dY_dA (2, 8, 4, 4)", (rng.standard_normal((2, 8, 4, 4)),)),
             ("non-square random dY_dA (1, 3, 2, 5)", (rng.standard_normal((1, 3, 2, 5)),)),
             ("hand-made: one map with gradient 1 at one of 4 positions",
              (np.array([[[[1.0, 0.0], [0.0, 0.0]], [[0.5, 0.5], [0.5, 0.5]]]]),))]
    _run("grad_cam_alpha", fn, cases, _alpha_ref, _ALPHA_MISTAKES, outputs=("alpha",), axes=[("image", "channel")],
         arg_names=("dY_dA",), verbose=verbose,
         hint="alpha has one number per image and channel: the mean of dY_dA over the two spatial axes.")


def _gc_map_ref(A, alpha, relu=True):
    w = np.einsum("nk,nkhw->nhw", alpha, A)
    return np.maximum(w, 0) if relu else w


_GC_MAP_MISTAKES = _register("grad_cam_map", _gc_map_ref, [
    Mistake("forgot the ReLU",
            "Grad-CAM keeps only what increases the score: L = ReLU(sum_k alpha_k A^k). Apply np.maximum(., 0).",
            lambda A, a: _gc_map_ref(A, a, relu=False)),
    Mistake("abs instead of ReLU",
            "L = ReLU(sum_k alpha_k A^k): negative values become 0, they do not flip sign.",
            lambda A, a: np.abs(_gc_map_ref(A, a, relu=False))),
    Mistake("ReLU on alpha instead of on the sum",
            "apply the ReLU once, after the weighted sum: L = ReLU(sum_k alpha_k A^k).",
            lambda A, a: _gc_map_ref(A, np.maximum(a, 0), relu=False)),
    Mistake("mean instead of sum",
            "L is the weighted SUM over the K maps (then the ReLU); you averaged over k.",
            lambda A, a: _gc_map_ref(A, a) / A.shape[1]),
    Mistake("normalised",
            "return the raw map: normalising to [0, 1] is a display decision, made when plotting.",
            lambda A, a: _normalised(_gc_map_ref(A, a))),
])


def grad_cam_map(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(A, alpha) -> L``: L = ReLU(sum_k alpha_k A^k).

    A: (N, K, h, w) feature maps; alpha: (N, K); L: (N, h, w), raw (not normalised).
    """
    rng = _rng(seed)
    cases = [("random A (2, 6, 4, 4) >= 0, alpha of both signs",
              (np.abs(rng.standard_normal((2, 6, 4, 4))), rng.standard_normal((2, 6)))),
             ("random A (1, 3, 3, 5), alpha of both signs",
              (np.abs(rng.standard_normal((1, 3, 3, 5))), np.array([[1.0, -2.0, 0.5]])))]
    _run("grad_cam_map", fn, cases, _gc_map_ref, _GC_MAP_MISTAKES, outputs=("L",), axes=[MAP_AXES],
         arg_names=("A", "alpha"), verbose=verbose,
         hint="weighted = sum over k of alpha[n, k] * A[n, k]; L = max(weighted, 0).")


def _bilinear(M, size, align_corners=False, clamp=True, half_pixel=True):
    """Bilinear resize of (N, h, w) to (N, H, W), as torch's interpolate(mode="bilinear")."""
    M = np.asarray(M)
    N, h, w = M.shape
    H, W = int(size[0]), int(size[1])

    def coords(n_in, n_out):
        dst = np.arange(n_out, dtype=np.float64)
        if align_corners:
            src = dst * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
        elif half_pixel:
            src = (dst + 0.5) * (n_in / n_out) - 0.5
        else:
            src = dst * (n_in / n_out)
        if clamp:
            src = np.maximum(src, 0.0)
            i0 = np.floor(src).astype(np.int64)
        else:                               # int() truncates towards 0: lam < 0 extrapolates at the border
            i0 = np.trunc(src).astype(np.int64)
        i0 = np.clip(i0, 0, n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    r0, r1, lr = coords(h, H)
    c0, c1, lc = coords(w, W)
    top = M[:, r0][:, :, c0] * (1 - lc) + M[:, r0][:, :, c1] * lc
    bottom = M[:, r1][:, :, c0] * (1 - lc) + M[:, r1][:, :, c1] * lc
    return top * (1 - lr)[:, None] + bottom * lr[:, None]


def _nearest(M, size):
    N, h, w = M.shape
    H, W = size
    r = np.minimum((np.arange(H) * h / H).astype(int), h - 1)
    c = np.minimum((np.arange(W) * w / W).astype(int), w - 1)
    return M[:, r][:, :, c]


_UPSAMPLE_MISTAKES = _register("upsample_bilinear", _bilinear, [
    Mistake("align_corners=True",
            "use pixel centres (align_corners=False, as PyTorch's default, torch-cam and Captum): "
            "output pixel i samples the input at src = (i + 0.5) * h / H - 0.5; you used i * (h - 1) / (H - 1).",
            lambda M, size: _bilinear(M, size, align_corners=True)),
    Mistake("nearest neighbour",
            "interpolate linearly between the two nearest input pixels (in both directions); you copied the "
            "nearest pixel (that is np.repeat / nearest-neighbour upsampling).",
            lambda M, size: _nearest(M, size)),
    Mistake("no half-pixel offset",
            "map pixel centres to pixel centres: src = (i + 0.5) * h / H - 0.5, not src = i * h / H.",
            lambda M, size: _bilinear(M, size, half_pixel=False)),
    Mistake("no clamp at the border",
            "near the border src = (i + 0.5) * h / H - 0.5 is negative: clamp it at 0 (the edge pixel "
            "is repeated, not extrapolated).",
            lambda M, size: _bilinear(M, size, clamp=False)),
    Mistake("rows and columns swapped",
            "size is (H, W), rows first: the result has shape (N, H, W). You returned (N, W, H).",
            lambda M, size: _bilinear(M, size[::-1])),
])


def upsample_bilinear(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(M, size) -> up``: bilinear upsampling of maps (N, h, w) to size (H, W).

    As ``torch.nn.functional.interpolate(M[:, None], size, mode="bilinear", align_corners=False)``:
    output pixel i reads the input at src = max((i + 0.5) * h / H - 0.5, 0), mixing pixels floor(src)
    and floor(src) + 1 (clipped to h - 1) with weights 1 - (src - floor(src)) and src - floor(src).
    """
    rng = _rng(seed)
    cases = [("hand-made (1, 2, 2) -> (4, 4)", (np.array([[[0.0, 1.0], [2.0, 3.0]]]), (4, 4))),
             ("random (2, 3, 5) -> (12, 20), non-integer scale", (rng.standard_normal((2, 3, 5)), (12, 20))),
             ("random (1, 4, 4) -> (4, 4), same size", (rng.standard_normal((1, 4, 4)), (4, 4))),
             ("random (1, 1, 1) -> (3, 5), one pixel", (rng.standard_normal((1, 1, 1)), (3, 5)))]
    _run("upsample_bilinear", fn, cases, _bilinear, _UPSAMPLE_MISTAKES, outputs=("up",), axes=[MAP_AXES],
         arg_names=("M", "size"), verbose=verbose,
         hint="work out the hand-made case on paper: (1, 2, 2) -> (4, 4), the first output row should be "
              "[0, 0.25, 0.75, 1].")


def _grad_cam_ref(net, x, c, layer, top="score", which="output"):
    if which == "input":                     # the mistake: the output of the layer below `layer`
        layer = net.names[net.names.index(layer) - 1]
    g = _input_grad(net, x, c, top, stop=layer)
    A = net.activations[layer]
    alpha = _alpha_ref(g)
    L = _gc_map_ref(A, alpha)
    return alpha, L, _bilinear(L, x.shape[2:])


_GRAD_CAM_MISTAKES = _register("grad_cam", _grad_cam_ref, [
    Mistake("softmax probability instead of score",
            "Grad-CAM differentiates the raw class score y^c (before the softmax): start the backward pass "
            "from a one-hot vector.",
            lambda net, x, c, layer: _grad_cam_ref(net, x, c, layer, top="prob")),
    Mistake("all classes instead of one",
            "backpropagate the score of class c alone: one-hot dscores, not all ones.",
            lambda net, x, c, layer: _grad_cam_ref(net, x, c, layer, top="sum")),
    Mistake("the layer below",
            "A is the OUTPUT of `layer` (net.activations[layer]) and dY_dA the signal there "
            "(net.backward(dscores, stop=layer)); you used the layer below it.",
            lambda net, x, c, layer: _grad_cam_ref(net, x, c, layer, which="input")),
])


def grad_cam(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(net, x, c, layer) -> (alpha, L, up)``: Grad-CAM on a scratch network.

    net: a scratch Sequential; x: (N, C, H, W); c: (N,) classes; layer: the name of the layer whose
    output A (N, K, h, w) is explained. alpha (N, K), L = ReLU(sum_k alpha_k A^k) (N, h, w), and L
    upsampled bilinearly to (N, H, W).
    """
    rng = _rng(seed)
    cases = [("random net, x (2, 3, 8, 8), c = [1, 4], layer 'relu2'",
              (small_net(seed), rng.standard_normal((2, 3, 8, 8)), np.array([1, 4]), "relu2")),
             ("random GAP net, x (1, 3, 8, 8), c = [2], layer 'relu2'",
              (small_net(seed + 3, gap=True), rng.standard_normal((1, 3, 8, 8)), np.array([2]), "relu2"))]
    _run("grad_cam", fn, cases, _grad_cam_ref, _GRAD_CAM_MISTAKES, outputs=("alpha", "L", "up"),
         axes=[("image", "channel"), MAP_AXES, MAP_AXES], arg_names=("net", "x", "c", "layer"), verbose=verbose,
         hint="scores = net.forward(x); dY_dA = net.backward(one-hot, stop=layer); A = net.activations[layer]; "
              "then your grad_cam_alpha, grad_cam_map and upsample_bilinear.")


# --------------------------------------------------------------------------------------------------
# A4: attention maps and the attention-transfer loss
# --------------------------------------------------------------------------------------------------


def _att_ref(A, p):
    return (np.abs(A) ** p).sum(axis=1)


_ATT_MISTAKES = _register("attention_map", _att_ref, [
    Mistake("|A| instead of |A|^p",
            "Q = sum_c |A_c|^p: raise the absolute values to the power p before summing over channels "
            "(you ignored p).",
            lambda A, p: np.abs(A).sum(axis=1)),
    Mistake("A^p without the absolute value",
            "take the absolute value first: |A_c|^p. With p = 1 or 3, A^p keeps the sign, and negative "
            "activations would cancel positive ones.",
            lambda A, p: (A ** p).sum(axis=1) if float(p).is_integer() else None),
    Mistake("power after the sum",
            "Q = sum_c |A_c|^p: the power applies to each channel before summing, not to the sum "
            "((sum_c |A_c|)^p).",
            lambda A, p: np.abs(A).sum(axis=1) ** p),
    Mistake("mean over channels instead of sum",
            "sum over the channels (axis 1); you averaged (C times too small).",
            lambda A, p: (np.abs(A) ** p).mean(axis=1)),
    Mistake("max over channels instead of sum",
            "this map sums over the channels (the paper's F_sum^p); you took the max.",
            lambda A, p: (np.abs(A) ** p).max(axis=1)),
    Mistake("normalised",
            "return Q itself; normalising is the next function's job (normalise_attention).",
            lambda A, p: _att_ref(A, p) / np.sqrt((_att_ref(A, p) ** 2).sum(axis=(1, 2), keepdims=True))),
])


def attention_map(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(A, p) -> Q``: Q = sum_c |A_c|^p (Zagoruyko & Komodakis 2017).

    A: (N, C, h, w) activations (negative values too); p > 0; Q: (N, h, w).
    """
    rng = _rng(seed)
    cases = [("random A (2, 5, 4, 4), p=2", (rng.standard_normal((2, 5, 4, 4)), 2)),
             ("random A (1, 3, 3, 5) with negative values, p=1", (rng.standard_normal((1, 3, 3, 5)), 1)),
             ("random A (2, 4, 2, 2) with negative values, p=3", (rng.standard_normal((2, 4, 2, 2)), 3)),
             ("random A (1, 6, 4, 4) >= 0, p=4", (np.abs(rng.standard_normal((1, 6, 4, 4))), 4))]
    _run("attention_map", fn, cases, _att_ref, _ATT_MISTAKES, outputs=("Q",), axes=[MAP_AXES],
         arg_names=("A", "p"), verbose=verbose,
         hint="np.abs(A) ** p, then the sum over axis 1 (the channels).")


def _norm_ref(Q):
    q = Q.reshape(len(Q), -1)
    return q / np.maximum(np.sqrt((q ** 2).sum(axis=1, keepdims=True)), 1e-12)


_NORM_MISTAKES = _register("normalise_attention", _norm_ref, [
    Mistake("not normalising the attention map",
            "divide each flattened map by its L2 norm: q = vec(Q) / ||vec(Q)||_2.",
            lambda Q: Q.reshape(len(Q), -1)),
    Mistake("L1 instead of L2 norm",
            "divide by the L2 norm sqrt(sum q^2), not by the sum of the entries.",
            lambda Q: Q.reshape(len(Q), -1) / np.abs(Q.reshape(len(Q), -1)).sum(1, keepdims=True)),
    Mistake("one norm for the whole batch",
            "normalise each image's map by its own norm (sum over the h*w positions of that image only).",
            lambda Q: Q.reshape(len(Q), -1) / np.sqrt((Q ** 2).sum())),
    Mistake("divided by the squared norm", "divide by ||vec(Q)||_2 = sqrt(sum q^2), not by sum q^2.",
            lambda Q: Q.reshape(len(Q), -1) / (Q.reshape(len(Q), -1) ** 2).sum(1, keepdims=True)),
    Mistake("max instead of norm", "divide by the L2 norm, not by the largest value.",
            lambda Q: Q.reshape(len(Q), -1) / Q.reshape(len(Q), -1).max(1, keepdims=True)),
    Mistake("not flattened",
            "return vec(Q): one row of h*w numbers per image, shape (N, h*w) (use Q.reshape(len(Q), -1)).",
            lambda Q: _norm_ref(Q).reshape(Q.shape)),
])


def normalise_attention(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(Q) -> q``: q = vec(Q) / max(||vec(Q)||_2, 1e-12) per image. Q: (N, h, w) -> q: (N, h*w).

    An all-zero map gives zeros (not NaN).
    """
    rng = _rng(seed)
    zero = np.abs(rng.standard_normal((2, 3, 3))) + 0.1
    zero[1] = 0.0
    cases = [("random Q (2, 4, 4) > 0", (np.abs(rng.standard_normal((2, 4, 4))) + 0.1,)),
             ("random Q (3, 2, 5) > 0", (np.abs(rng.standard_normal((3, 2, 5))) + 0.1,)),
             ("Q (2, 3, 3) whose second map is all zeros (a layer that is off)", (zero,))]
    _run("normalise_attention", fn, cases, _norm_ref, _NORM_MISTAKES, outputs=("q",),
         axes=[("image", "position")], arg_names=("Q",), verbose=verbose,
         hint="q = Q.reshape(N, -1), then divide each row by its length sqrt(sum of squares); an all-zero "
              "map must give zeros, not NaN: divide by np.maximum(norm, 1e-12).")


def _at_loss_ref(A_S, A_T, p, normalise=True, reduce="mean", power=True):
    Q = (lambda A: (np.abs(A) ** p).sum(1)) if power else (lambda A: np.abs(A).sum(1))
    qs, qt = Q(A_S).reshape(len(A_S), -1), Q(A_T).reshape(len(A_T), -1)
    if normalise:
        qs, qt = _norm_ref(qs), _norm_ref(qt)
    d = qs - qt
    if reduce == "mean":
        return float((d ** 2).mean())
    if reduce == "sum":
        return float((d ** 2).sum())
    if reduce == "batch-sum":
        return float((d ** 2).mean(axis=1).sum())
    if reduce == "norm":
        return float(np.sqrt((d ** 2).sum(axis=1)).mean())
    raise ValueError(reduce)


_AT_MISTAKES = _register("at_loss", _at_loss_ref, [
    Mistake("not normalising the attention map",
            "normalise both maps before comparing them: q = vec(Q) / ||vec(Q)||_2 (so a network with larger "
            "activations is not penalised for their size).",
            lambda S, T, p: _at_loss_ref(S, T, p, normalise=False)),
    Mistake("sum instead of mean",
            "average the squared difference over the batch and the h*w positions (the reference code's "
            "(q_S - q_T).pow(2).mean()); you summed.",
            lambda S, T, p: _at_loss_ref(S, T, p, reduce="sum")),
    Mistake("summed over the batch",
            "average over the batch too: the loss is the mean over (image, position) of (q_S - q_T)^2.",
            lambda S, T, p: _at_loss_ref(S, T, p, reduce="batch-sum")),
    Mistake("norm instead of mean squared difference",
            "use the mean of the squared differences (as the authors' code), not the norm ||q_S - q_T||.",
            lambda S, T, p: _at_loss_ref(S, T, p, reduce="norm")),
    Mistake("|A| instead of |A|^p",
            "build each attention map with the power p: Q = sum_c |A_c|^p.",
            lambda S, T, p: _at_loss_ref(S, T, p, power=False)),
])


def at_loss(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(A_S, A_T, p) -> loss`` (a float): the attention-transfer loss of one pair of layers.

    A_S: (N, C_S, h, w) student activations, A_T: (N, C_T, h, w) teacher activations (C_S may differ
    from C_T). loss = mean over images b and positions i of (q_S - q_T)[b, i]^2, with q the normalised
    attention maps (as in the authors' code; multiply by beta/2 when training).
    """
    rng = _rng(seed)
    cases = [("random A_S (2, 4, 4, 4), A_T (2, 8, 4, 4), p=2",
              (rng.standard_normal((2, 4, 4, 4)), 3 * rng.standard_normal((2, 8, 4, 4)), 2)),
             ("random A_S (3, 2, 3, 3), A_T (3, 5, 3, 3), p=1",
              (rng.standard_normal((3, 2, 3, 3)), rng.standard_normal((3, 5, 3, 3)), 1))]
    _run("at_loss", fn, cases, _at_loss_ref, _AT_MISTAKES, outputs=("loss",), axes=[()],
         arg_names=("A_S", "A_T", "p"), verbose=verbose,
         hint="q_S = normalise_attention(attention_map(A_S, p)), the same for the teacher, then the mean of "
              "(q_S - q_T)**2.")


# --------------------------------------------------------------------------------------------------
# A5: evaluating maps: the pointing game and the deletion curve
# --------------------------------------------------------------------------------------------------


def _point(maps, masks, tolerance, locate="argmax", shape="disc"):
    """Hits (N,) bool: does a mask pixel lie within `tolerance` of the point the map picks?"""
    N, H, W = maps.shape
    hits = np.zeros(N, dtype=bool)
    for n in range(N):
        if locate == "argmin":
            r, c = np.unravel_index(np.argmin(maps[n]), (H, W))
        elif locate == "transposed":                 # unravel_index with (W, H): rows and columns swapped
            r, c = np.unravel_index(np.argmax(maps[n]), (W, H))
        else:
            r, c = np.unravel_index(np.argmax(maps[n]), (H, W))
        rr, cc = np.nonzero(masks[n])
        if shape == "disc":
            near = (rr - r) ** 2 + (cc - c) ** 2 <= tolerance ** 2
        else:
            near = (np.abs(rr - r) <= tolerance) & (np.abs(cc - c) <= tolerance)
        hits[n] = bool(near.any())
    return hits


def _pointing_ref(maps, masks, tolerance=0):
    return _point(maps, masks, tolerance)


_POINTING_MISTAKES = _register("pointing_game", _pointing_ref, [
    Mistake("argmin instead of argmax", "the map points at its MAXIMUM (np.argmax), not its minimum.",
            lambda m, k, t: _point(m, k, t, locate="argmin")),
    Mistake("tolerance ignored",
            "a point within `tolerance` pixels (Euclidean distance) of the object also counts as a hit.",
            lambda m, k, t: _point(m, k, 0) if t else None),
    Mistake("rows and columns swapped",
            "np.argmax gives a flat index: row = i // W, col = i % W (or use np.unravel_index).",
            lambda m, k, t: _point(m, k, t, locate="transposed")),
    Mistake("square instead of disc",
            "the tolerance is a distance: count pixels with (row - r)^2 + (col - c)^2 <= tolerance^2 (a disc), "
            "not a square window.",
            lambda m, k, t: _point(m, k, t, shape="square")),
])


def pointing_game(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(maps, masks, tolerance) -> hits``: the pointing game (Zhang et al. 2016).

    maps: (N, H, W) saliency maps; masks: (N, H, W) bool object masks; tolerance: pixels. A hit when a
    pixel of the mask lies within Euclidean distance ``tolerance`` of the map's maximum (the first
    maximum in row-major order). hits: (N,) bool.
    """
    rng = _rng(seed)
    N, H, W = 6, 8, 12
    maps = rng.standard_normal((N, H, W))
    masks = np.zeros((N, H, W), dtype=bool)
    for n in range(N):
        r, c = np.unravel_index(np.argmax(maps[n]), (H, W))
        dr, dc = [(0, 0), (0, 2), (2, 2), (3, 0), (6, 6), (1, 1)][n]
        rr, cc = (r + dr) % H, (c + dc) % W
        masks[n, rr, cc] = True
    masks[4, 0, 0] = True
    big = rng.standard_normal((3, 5, 7))
    big_masks = rng.random((3, 5, 7)) < 0.15
    cases = [("hand-made objects near the maximum, tolerance 0", (maps, masks, 0)),
             ("hand-made objects near the maximum, tolerance 2", (maps, masks, 2)),
             ("random maps (3, 5, 7), random masks, tolerance 1", (big, big_masks, 1))]
    _run("pointing_game", fn, cases, _pointing_ref, _POINTING_MISTAKES, outputs=("hits",), axes=[("image",)],
         exact=("hits",), arg_names=("maps", "masks", "tolerance"), verbose=verbose,
         hint="r, c = np.unravel_index(np.argmax(map), map.shape); hit if any mask pixel has "
              "(row - r)^2 + (col - c)^2 <= tolerance^2.")


def _deletion_ref(score_fn, x, M, n_steps, order="desc", baseline=0.0, mode="delete", trapezoid=True):
    """Scores as the most salient pixels are set to `baseline` (all channels), n_steps equal chunks."""
    N, C, H, W = x.shape
    HW = H * W
    ranks = np.argsort(-M.reshape(N, -1) if order == "desc" else M.reshape(N, -1), axis=1, kind="stable")
    scores = []
    for s in range(n_steps + 1):
        k = (s * HW) // n_steps
        keep = np.ones((N, HW), dtype=bool)
        np.put_along_axis(keep, ranks[:, :k], False, axis=1)
        keep = keep.reshape(N, 1, H, W)
        if mode == "delete":
            img = np.where(keep, x, baseline)
        else:
            img = np.where(keep, baseline, x)
        scores.append(np.asarray(score_fn(img), dtype=np.float64))
    curve = np.stack(scores, axis=1)                          # (N, n_steps + 1)
    if trapezoid:
        auc = (curve[:, :-1] + curve[:, 1:]).sum(1) / (2 * n_steps)
    else:
        auc = curve.mean(1)
    return curve, auc


def _linear_score(seed):
    w = _rng(seed + 100).standard_normal((3, 6, 6))

    def score(img):
        return (img * w).sum(axis=(1, 2, 3))
    return score


_DELETION_MISTAKES = _register("deletion_curve", _deletion_ref, [
    Mistake("least salient first",
            "delete the MOST salient pixels first (sort the map in decreasing order).",
            lambda f, x, M, n: _deletion_ref(f, x, M, n, order="asc")),
    Mistake("insertion instead of deletion",
            "deletion starts from the image and removes pixels (sets them to 0); you started from the blank "
            "image and inserted them.",
            lambda f, x, M, n: _deletion_ref(f, x, M, n, mode="insert")),
    Mistake("mean instead of trapezoid",
            "the area under the curve uses the trapezoid rule over x in [0, 1]: sum of (s_k + s_{k+1}) / 2 "
            "times 1 / n_steps; you took the plain mean of the scores.",
            lambda f, x, M, n: _deletion_ref(f, x, M, n, trapezoid=False)),
])


def deletion_curve(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(score_fn, x, M, n_steps) -> (curve, auc)``: the deletion metric (Petsiuk et al. 2018).

    x: (N, C, H, W); M: (N, H, W) saliency; score_fn: images (N, C, H, W) -> scores (N,). Step s = 0 ..
    n_steps sets the k = (s * H * W) // n_steps most salient pixels (all channels; ties in the map keep
    the row-major order, a stable sort) to 0 and records the score: curve (N, n_steps + 1); auc (N,)
    by the trapezoid rule on [0, 1].
    """
    rng = _rng(seed)
    x = rng.random((2, 3, 6, 6))
    M = rng.random((2, 6, 6))
    cases = [("linear score, x (2, 3, 6, 6), 4 steps", (_linear_score(seed), x, M, 4)),
             ("linear score, x (2, 3, 6, 6), 36 steps (one pixel each)", (_linear_score(seed), x, M, 36))]
    _run("deletion_curve", fn, cases, _deletion_ref, _DELETION_MISTAKES, outputs=("curve", "auc"),
         axes=[("image", "step"), ("image",)], arg_names=("score_fn", "x", "M", "n_steps"), verbose=verbose,
         hint="order = np.argsort(-M.reshape(N, -1), axis=1, kind='stable'); at step s zero the first "
              "(s * H * W) // n_steps pixels of that order in every channel, then call score_fn.")


# --------------------------------------------------------------------------------------------------
# A network whose weights are set by hand, and scenes to explain: we know what it looks at
# --------------------------------------------------------------------------------------------------

COLOURS = ("red", "green", "blue")


def colour_scenes(n: int = 1, seed: int = 0, size: int = 32):
    """``n`` images with two objects of different colours: a square in the left half, a disc in the right.

    Returns ``x`` (n, 3, size, size) float64 in [0, 1] (a dark noisy background), ``labels`` (n, 2) the
    colour index (into :data:`COLOURS`) of the square and of the disc, and ``masks`` (n, 2, size, size)
    bool, each object's exact pixels. A pure function of ``(n, seed, size)``.
    """
    rng = _rng(seed)
    x = np.clip(0.1 + 0.03 * rng.standard_normal((n, 3, size, size)), 0, 1)
    labels = np.zeros((n, 2), dtype=np.int64)
    masks = np.zeros((n, 2, size, size), dtype=bool)
    rr, cc = np.mgrid[0:size, 0:size]
    side, radius = size // 4, size / 6
    palette = np.full((3, 3), 0.1) + 0.85 * np.eye(3)
    for i in range(n):
        labels[i] = rng.permutation(3)[:2]
        r0 = rng.integers(1, size - side - 1)
        c0 = rng.integers(1, size // 2 - side)
        masks[i, 0, r0:r0 + side, c0:c0 + side] = True
        cr = rng.uniform(radius + 1, size - radius - 1)
        cc0 = rng.uniform(size / 2 + radius, size - radius - 1)
        masks[i, 1] = (rr + 0.5 - cr) ** 2 + (cc + 0.5 - cc0) ** 2 <= radius ** 2
        for k in range(2):
            x[i][:, masks[i, k]] = palette[labels[i, k]][:, None]
    return x, labels, masks


def colour_net() -> Sequential:
    """A small GAP network with hand-set weights that scores how much red, green and blue "stuff" an
    image holds (scores (N, 3), in the order of :data:`COLOURS`).

    conv1 (3 -> 3, 3x3): map k = the average over the window of channel k minus half the other two
    (a detector of pure colour k), bias -0.2; relu1; pool1 (2x2 max); conv2 (3 -> 6, 3x3): maps 2k and
    2k+1 of colour k, an average ("blob") and a centre-minus-surround ("edge") filter; relu2 (A, the
    CAM layer); gap; flatten; fc: class k weights its two maps by 10 and 5, the other maps by -2.
    """
    W1 = np.full((3, 3, 3, 3), -0.5 / 9)
    for k in range(3):
        W1[k, k] = 1 / 9
    W2 = np.zeros((6, 3, 3, 3))
    surround = -np.ones((3, 3)) / 8
    surround[1, 1] = 1.0
    for k in range(3):
        W2[2 * k, k] = 1 / 9
        W2[2 * k + 1, k] = surround
    Wfc = np.full((3, 6), -2.0)
    for k in range(3):
        Wfc[k, 2 * k], Wfc[k, 2 * k + 1] = 10.0, 5.0
    layers = [Conv2d(W1, np.full(3, -0.2), padding=1), ReLU(), MaxPool2d(2),
              Conv2d(W2, np.zeros(6), padding=1), ReLU(), GlobalAvgPool(), Flatten(), Linear(Wfc, np.zeros(3))]
    return Sequential(layers, ["conv1", "relu1", "pool1", "conv2", "relu2", "gap", "flatten", "fc"])
