"""The runner every check shares: run a student's function and the reference on the same cases.

Every check (one module per assignment: `a1_relu_pooling`, `a2_saliency`, `a3_cam`, `a4_attention`,
`a5_evaluation`) hands `run` its cases, its reference and its list of `Mistake` s. On the first case
that fails, `run` raises an ``AssertionError`` (so nbgrader, otter and pytest mark the test failed)
whose message says:

* which function and which case failed, and the relative error in the CS231n style
  (``max |a - b| / max (|a| + |b|)``, see :func:`xai_ref.scratch.rel_error`);
* where the largest difference is, with names for the axes ("at image 0, channel 3: expected 0.125,
  got 0.5");
* a hint naming the mistake, when the student's output equals what a typical wrong implementation
  gives (sum instead of mean, forgetting the ReLU, the pooling gradient sent to every position of the
  window, ...). Each check registers a list of such mistakes; ``MISTAKES[check_name]`` lists their names.

A stub that still raises ``NotImplementedError`` gets "not implemented yet". A function that changes its
inputs in place, returns ``None``, the wrong shape or NaN gets a message saying so. Nothing printed
depends on the machine: the PASSED line names the number of cases and the tolerance, not the exact error.
"""

from __future__ import annotations

import copy
import traceback
from typing import Callable, Sequence

import numpy as np

from ..scratch import Sequential, rel_error

TOL = 1e-9          # relative error below which a float64 result is right
MATCH = 1e-6        # relative error below which a student's output "is" a known mistake

IMAGE_AXES = ("image", "channel", "row", "column")
MAP_AXES = ("image", "row", "column")

#: check name -> {mistake name: hint}; filled in by `register` (the tests read it).
MISTAKES: dict[str, dict[str, str]] = {}


class Mistake:
    """A typical wrong implementation: ``fn`` computes what it gives (None where it does not apply)."""

    def __init__(self, name: str, hint: str, fn: Callable):
        self.name, self.hint, self.fn = name, hint, fn


#: check name -> (reference function, list of Mistake); for the tests.
CATALOGUE: dict[str, tuple[Callable, list[Mistake]]] = {}


def register(check: str, reference: Callable, mistakes: Sequence[Mistake]) -> list[Mistake]:
    """Record a check's reference and mistakes (in MISTAKES and CATALOGUE); returns the mistakes."""
    MISTAKES[check] = {m.name: m.hint for m in mistakes}
    CATALOGUE[check] = (reference, list(mistakes))
    return list(mistakes)


def run(name: str, fn: Callable, cases, reference: Callable, mistakes: Sequence[Mistake] = (),
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
        expected = [np.asarray(e) for e in (list(expected) if len(outputs) > 1 else [expected])]
        got = _call(name, fn, desc, args, arg_names, outputs)
        for j, out_name in enumerate(outputs):
            g, e = got[j], expected[j]
            is_exact = out_name in exact
            integral = np.issubdtype(g.dtype, np.integer) or np.issubdtype(g.dtype, np.bool_)
            if _same(g, e, is_exact, tol) and (integral or not is_exact):
                continue
            label = "" if len(outputs) == 1 else f" ({out_name})"
            lines = [f"{name}{label}: FAILED on {_case_text(desc)}"]
            matched = _match_mistakes(mistakes, args, g, e, j, len(outputs), is_exact, tol)
            lines += _difference(out_name, g, e, axes[j], is_exact, integral, tol, matched)
            if matched:
                lines += [f"  hint: {h}" for h in matched]
            elif hint:
                lines.append(f"  hint: {hint}")
            lines.append(f"  (inputs: {_describe_args(args, arg_names)})")
            raise AssertionError("\n".join(lines))
    if verbose:
        print(f"PASSED {name}: {n} cases agree with the reference (relative error < {tol:.0e})")


def _call(name, fn, desc, args, arg_names, outputs) -> list[np.ndarray]:
    """The student's outputs on one case, or an AssertionError saying what went wrong in the call."""
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
    return got


def _difference(out_name, g, e, axes, is_exact, integral, tol, matched) -> list[str]:
    """The lines saying how output g differs from the expected e (may add to `matched`)."""
    if g.shape != e.shape:
        return [f"  {out_name} should have shape {e.shape}, got shape {g.shape}"]
    if is_exact and not integral:
        if np.array_equal(g, e) and not matched:
            matched.append("the values are right: convert them with .astype(np.int64)")
        return [f"  {out_name} should hold integers (or booleans), got dtype {g.dtype}"]
    if not np.all(np.isfinite(g)) and np.all(np.isfinite(e)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(g))[0])
        return [f"  {out_name} contains NaN or inf{_where(bad, axes)}, where the reference has "
                f"{_fmt(e[bad])}: a division by zero?"]
    lines = []
    if not is_exact:
        lines.append(f"  relative error {_fmt(rel_error(g, e))} (should be below {tol:.0e})")
    diff = np.abs(g.astype(np.float64) - e.astype(np.float64))
    idx = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.ndim else ()
    if is_exact:
        idx = tuple(np.argwhere(g != e)[0]) if g.ndim else ()
        lines.append(f"  {int(np.sum(g != e))} of {g.size} entries differ")
    lines.append(f"  {out_name} differs{_where(idx, axes)}: expected {_fmt(e[idx])}, got {_fmt(g[idx])}"
                 + _ratio_text(g, e))
    return lines


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
    """The hints of every mistake whose output equals the student's output number j."""
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
