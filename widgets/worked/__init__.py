"""Worked equations: each term of each method written out with this image's numbers, and the result.

A student should be able to check any number on the screen by hand. For the term a stepper shows, at the
chosen channel ``k`` and position ``(i, j)``, `work` returns the paper's equation with the numbers
substituted (MathJax), the result those numbers give, and the trace's own value there, e.g.

    alpha^c_7 = (1/Z) sum_ij dy/dA^7_ij = (1/49)(0.012 + 0.003 + ... + 0.001) = (1/49)(0.1234) = 0.002518

Each method's terms are written in one module of this package (`cam`, `signals`, `ascent`, `attention`),
registered with `worked` by (method, symbol). The tests check, for every registered term of every explorer,
that the shown numbers give the shown result and that it equals the trace's value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["Worked", "WORKED", "at", "num", "sum_of", "work", "worked"]


@dataclass(frozen=True)
class Worked:
    """A term with this image's numbers: ``latex`` (without ``$$``, ending in ``= result``), ``result``
    (what the numbers shown give, computed from the same numbers) and ``value`` (the trace's own number
    at that place: the check)."""

    latex: str
    result: float
    value: float

    @property
    def agrees(self) -> bool:
        return bool(np.isclose(self.result, self.value, rtol=1e-4, atol=1e-6 * max(1.0, abs(self.value))))


#: (method, symbol) -> f(trace, k, (i, j)) -> Worked. ``k``: the channel shown; ``(i, j)``: the position
#: chosen, at the resolution of the term's own map (`at` converts), or None (each function picks one).
WORKED: dict[tuple[str, str], Callable] = {}


def worked(method: str, *symbols: str):
    """Register the decorated function as the worked equation of ``symbols`` of ``method``."""
    def register(fn):
        for symbol in symbols:
            WORKED[(method, symbol)] = fn
        return fn
    return register


def work(trace, symbol: str, k: int = 0, pos: tuple[int, int] | None = None) -> Worked | None:
    """The worked equation of term ``symbol`` of ``trace`` (None when there is none). A composed method
    (``guided_grad_cam_pp``) finds its own terms under ``guided`` and the others under its Grad-CAM method."""
    method = trace.method
    for key in ((method, symbol), ("guided", symbol), (method.removeprefix("guided_"), symbol)):
        if key in WORKED and (key[0] != "guided" or method.startswith("guided_")):
            return WORKED[key](trace, k, pos)
    return None


def num(v: float) -> str:
    """A number as it is shown in a worked equation: 4 significant digits, a minus sign, no exponent
    clutter (``1.2 \\times 10^{-5}``)."""
    v = float(v)
    if v == 0:
        return "0"
    text = f"{v:.4g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = rf"{mantissa} \times 10^{{{int(exponent)}}}"
    return text


def sum_of(values, shown: int = 3) -> str:
    """``(a + b + c + \\dots + z)``: the first ``shown`` numbers, the last one, the rest as dots."""
    values = [float(v) for v in np.asarray(values).reshape(-1)]
    parts = [num(v) for v in values] if len(values) <= shown + 1 else \
        [num(v) for v in values[:shown]] + [r"\dots", num(values[-1])]
    return "(" + " + ".join(parts).replace("+ -", "- ") + ")"


def at(pos, shape_from: tuple[int, int], shape_to: tuple[int, int]) -> tuple[int, int]:
    """The position ``pos`` of a ``shape_from`` map (its cell's centre) in a ``shape_to`` map."""
    (i, j), (h, w), (H, W) = pos, shape_from, shape_to
    return min(int((i + 0.5) * H / h), H - 1), min(int((j + 0.5) * W / w), W - 1)


def strongest(m) -> tuple[int, int]:
    """The position of a map's largest value (the default position)."""
    m = np.asarray(m)
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(m)), m.shape))


def _register_all() -> None:
    """Import every module of this package: each registers its methods' terms with `worked`."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_register_all()
