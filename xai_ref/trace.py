"""The `Trace`: an explanation method's equation, term by term.

Every method in `xai_ref` returns a Trace: the named terms of its paper's equation, in the order the
paper computes them, each with its LaTeX, a one-line description and its value, and last the final
`map`. A reader can hold the trace next to the paper; a widget can step through it.

>>> t = Trace("toy")
>>> t.add("F", r"F^k = \\frac{1}{Z}\\sum_{i,j} A^k_{ij}", "global average of each feature map", 2.0)
>>> t.add("map", r"M", "the final map", 3.0)
>>> t.F, t.map, [s.symbol for s in t.steps]
(2.0, 3.0, ['F', 'map'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Term:
    """One term of an equation.

    symbol: the paper's symbol as a Python name (``"alpha"``, ``"dY_dA"``, ``"map"``).
    latex: the term's defining equation in LaTeX (without ``$``).
    description: one line saying what the term is.
    value: the term's value (a tensor, an array, a number, or a small dict/list of them).
    """

    symbol: str
    latex: str
    description: str
    value: Any

    def __repr__(self) -> str:
        return f"Term({self.symbol}: {_describe(self.value)})"


@dataclass
class Trace:
    """The ordered terms of one method's equation, readable as attributes by their symbol.

    ``method`` names the method, ``meta`` holds the settings that produced it (target classes, layer
    name, hyper-parameters). ``steps`` lists the terms in the order the paper computes them.
    """

    method: str
    meta: dict = field(default_factory=dict)
    steps: list[Term] = field(default_factory=list)

    def add(self, symbol: str, latex: str, description: str, value: Any) -> Any:
        """Append a term and return its value (so a method can write ``alpha = t.add(...)``)."""
        if not symbol.isidentifier():
            raise ValueError(f"a term's symbol must be a Python name, got {symbol!r}")
        if symbol in self.symbols:
            raise ValueError(f"the trace already has a term {symbol!r}; symbols must be unique")
        self.steps.append(Term(symbol, latex, description, value))
        return value

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
