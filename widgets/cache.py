"""One caching mechanism for every explorer: results keyed by the control values they depend on.

A control that changes a key (the class, the layer, the method) computes once per new key; going back
to a key seen recently costs nothing; a control that is not part of any key (the step, a threshold,
a pixel position) never computes anything, it only redraws.

>>> square = Memo(lambda n: n * n, maxsize=2)
>>> square(3), square(3), square.misses
(9, 9, 1)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable


class Memo:
    """Remember ``fn(*key)`` for the ``maxsize`` most recently used keys (hashable control values).

    ``misses`` counts the calls of ``fn`` (tests use it to check that a redraw computed nothing).
    """

    def __init__(self, fn: Callable[..., Any], maxsize: int = 8):
        self.fn, self.maxsize = fn, maxsize
        self.store: OrderedDict = OrderedDict()
        self.misses = 0

    def __call__(self, *key) -> Any:
        if key in self.store:
            self.store.move_to_end(key)
            return self.store[key]
        value = self.fn(*key)
        self.misses += 1
        self.store[key] = value
        if len(self.store) > self.maxsize:
            self.store.popitem(last=False)
        return value

    def clear(self) -> None:
        self.store.clear()
