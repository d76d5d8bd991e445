"""Finding a layer of a model: a module, a dotted name from ``model.named_modules()``, or ``"name#k"`` for the
k-th call of a module that runs several times (a reused ReLU, a block applied twice).
"""

from __future__ import annotations

import difflib
from typing import Sequence

from torch import nn

__all__ = ["named_layer", "named_layers", "split_call"]


def named_layer(model: nn.Module, layer, arg: str = "layer") -> tuple[str, nn.Module]:
    """``(name, module)`` for a layer given as a module or a dotted name in ``model.named_modules()``,
    optionally followed by ``#k``: the k-th call (from 0) of a module that runs several times.

    Raises ValueError listing the nearest valid names for an unknown name, and TypeError for a value
    that is neither; the messages call the value ``arg`` (the caller's argument name).
    """
    return named_layers(model, [layer], arg)[0]


def named_layers(model: nn.Module, layers: Sequence, arg: str = "layer") -> list[tuple[str, nn.Module]]:
    """`named_layer` for each of ``layers``, looking the model's modules up once."""
    modules = dict(model.named_modules())
    names = {m: n for n, m in modules.items()}
    return [_named(modules, names, layer, arg) for layer in layers]


def _named(modules: dict, names: dict, layer, arg: str) -> tuple[str, nn.Module]:
    if isinstance(layer, nn.Module):
        if layer not in names:
            raise ValueError(f"{arg}: the {type(layer).__name__} given is not a module of this model; pass one "
                             "of model.modules(), or its dotted name from model.named_modules()")
        return names[layer], layer
    if isinstance(layer, str):
        base, call = split_call(layer)
        if base in modules:
            return layer, modules[base]
        valid = [n for n in modules if n]
        near = difflib.get_close_matches(base, valid, n=5, cutoff=0.5) or valid[-5:]
        raise ValueError(f"unknown {arg} {layer!r}; nearest valid names: {near} "
                         "(all names: [n for n, _ in model.named_modules()])")
    raise TypeError(f"{arg} must be an nn.Module, a dotted name (str) or None, got {type(layer).__name__}")


def split_call(name: str) -> tuple[str, int | None]:
    """``"layer1.relu#2"`` -> ``("layer1.relu", 2)``; a name without ``#k`` -> ``(name, None)``."""
    base, sep, k = name.rpartition("#")
    if not sep:
        return name, None
    if not k.isdigit():
        raise ValueError(f"layer {name!r}: after '#' comes the call index, an int >= 0 (e.g. 'relu#0' for the "
                         "first call of a reused module)")
    return base, int(k)
