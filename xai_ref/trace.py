r"""The `Trace`: an explanation method's equation, term by term.

Every method in `xai_ref` returns a Trace: the named terms of its paper's equation, in the order the
paper computes them, each with its LaTeX, a one-line description and its value, and last the final
`map`. A reader can hold the trace next to the paper; a widget can step through it.

>>> t = Trace("gap")
>>> t.add("F", 2.0)                  # the LaTeX and description come from xai_ref.equations
2.0
>>> t.F, t.steps[0].latex
(2.0, 'F^k = \\frac{1}{Z}\\sum_{i}\\sum_{j} A^k_{ij}')

Each term's text lives once, in `xai_ref.equations`, keyed by method and symbol; a Trace only holds
values. A term also carries the names of its value's axes (``("image", "channel", "row", "col")``),
which is all a widget needs to choose how to draw it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .equations import equation


@dataclass(frozen=True)
class Term:
    """One term of an equation.

    symbol: the paper's symbol as a Python name (``"alpha"``, ``"dY_dA"``, ``"map"``).
    latex: the term's defining equation in LaTeX (without ``$``).
    description: one line saying what the term is.
    value: the term's value (a tensor, an array, a number, or a small dict/list of them).
    axes: the names of the value's axes (`xai_ref.equations.AXES`), one per dimension.

    Lesson: ``lessons/00_tour.ipynb``.
    """

    symbol: str
    latex: str
    description: str
    value: Any
    axes: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Term({self.symbol}: {_describe(self.value)})"


@dataclass
class Trace:
    """The ordered terms of one method's equation, readable as attributes by their symbol.

    ``method`` names the method, ``meta`` holds the settings that produced it (target classes, layer
    name, hyper-parameters). ``steps`` lists the terms in the order the paper computes them.

    Lesson: ``lessons/00_tour.ipynb``.
    """

    method: str
    meta: dict = field(default_factory=dict)
    steps: list[Term] = field(default_factory=list)

    def add(self, symbol: str, value: Any, *, of: str | None = None, **fill) -> Any:
        """Append term ``symbol`` with its equation from `xai_ref.equations` (of this trace's method, or
        of ``of``; ``fill`` fills the equation's placeholders) and return its value (so a method can
        write ``alpha = t.add("alpha", ...)``)."""
        eq = equation(of or self.method, symbol, **fill)
        self.extend([Term(symbol, eq.latex, eq.description, value, eq.axes)])
        return value

    def extend(self, terms) -> None:
        """Append terms taken from another trace (a method built on another: Guided Grad-CAM)."""
        for term in terms:
            if term.symbol in self.symbols:
                raise ValueError(f"the trace already has a term {term.symbol!r}; symbols must be unique")
            self.steps.append(term)

    @property
    def symbols(self) -> list[str]:
        """The terms' symbols, in order."""
        return [s.symbol for s in self.steps]

    def term(self, symbol: str) -> Term:
        """The term called ``symbol`` (KeyError listing the symbols if there is none)."""
        for s in self.steps:
            if s.symbol == symbol:
                return s
        raise KeyError(f"{self.method} trace has no term {symbol!r}; its terms are {self.symbols}")

    def __getattr__(self, symbol: str) -> Any:
        # Only called when normal attribute lookup fails: terms read as attributes (t.alpha, t.map).
        if symbol.startswith("__") or symbol in ("method", "meta", "steps"):
            raise AttributeError(symbol)
        try:
            return self.term(symbol).value
        except KeyError as e:
            raise AttributeError(e.args[0]) from None

    def __getitem__(self, symbol: str) -> Any:
        return self.term(symbol).value

    def __contains__(self, symbol: str) -> bool:
        return symbol in self.symbols

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        lines = [f"Trace({self.method!r}, {len(self.steps)} terms)"]
        lines += [f"  {i + 1}. {s.symbol:<10} {_describe(s.value):<28} {s.description}"
                  for i, s in enumerate(self.steps)]
        return "\n".join(lines)


def _describe(value: Any) -> str:
    """A short description of a term's value: shape and dtype for arrays, the number for scalars."""
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) > 0:
        return f"{tuple(shape)} {str(getattr(value, 'dtype', '')).replace('torch.', '')}"
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return f"{value:.6g}"
    return type(value).__name__ if isinstance(value, (dict, list, tuple)) else repr(value)
