"""The magnifier's arithmetic for `widgets.backprop`: a ReLU's gate, sums over patches, which ReLU calls run
when, a ReLU call's cap.
"""

from __future__ import annotations

import torch
from torch import nn

from xai_ref.layer_names import split_call

from . import inputs
from .cache import Memo


def seed(memo: Memo, key: tuple, value) -> None:
    """Put a value computed elsewhere into ``memo`` (as if ``memo(*key)`` had computed it)."""
    memo.store[key] = value
    memo.store.move_to_end(key)
    while len(memo.store) > memo.maxsize:
        memo.store.popitem(last=False)


def gate(x: torch.Tensor, upper: float | None) -> torch.Tensor:
    """The forward gate of a ReLU (``x > 0``) or ReLU6 (``0 < x < upper``), as a bool tensor."""
    return (x > 0) if upper is None else (x > 0) & (x < upper)


def patch_sums(a: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    """(K, h-ph+1, w-pw+1): the sum of ``a`` (K,h,w) over each ph x pw patch (top-left corner indexed)."""
    return torch.nn.functional.avg_pool2d(a[None].float(), (ph, pw), stride=1)[0] * (ph * pw)


def call_order(model: nn.Module, x: torch.Tensor, calls) -> dict[str, int]:
    """The position of each call name (``name`` or ``"name#k"``) in the order the forward pass completes
    them (a block after its children): a call completed after the neuron's layer cannot reach it."""
    names = list(dict.fromkeys(split_call(c)[0] for c in calls))
    return {name: i for i, name in enumerate(inputs.module_calls(model, x, names))}


def relu_layers(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """The calls of ``nn.ReLU``/``nn.ReLU6`` modules with a spatial output, name -> (K,h,w), in execution
    order; a module reused by several layers is listed once per call, ``"name#k"`` (`inputs.module_calls`)."""
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    calls = inputs.module_calls(model, x, names)
    return {n: tuple(out.shape[1:]) for n, (out, _) in calls.items()
            if out.dim() == 4 and out.shape[2] * out.shape[3] > 1}


def relu_upper(model: nn.Module, relu: str) -> float | None:
    """6 for a ReLU6 call (its gate is 0 < x < 6), None for a ReLU."""
    module = dict(model.named_modules())[split_call(relu)[0]]
    return 6.0 if isinstance(module, nn.ReLU6) else None
