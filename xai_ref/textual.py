"""Textual explanations (Selvaraju et al., Grad-CAM, ICCV 2017, "Textual Explanations with Grad-CAM"):
the units that matter most for a class, named by Network Dissection.

Grad-CAM's neuron importance ``alpha^c_k = 1/Z sum_ij dy^c/dA^k_ij`` says how much unit k of a layer counts
for class c in this image: a large positive value means the unit's presence raises the score, a large
negative one that its *absence* does. On a GAP network CAM's weight ``w^c_k`` plays the same part for every
image (``alpha^c_k = w^c_k / Z`` there). The paper sorts the units of the last convolutional layer by
``alpha``, takes the top-5 and bottom-5, and reads their Network Dissection names (Bau et al. 2017) as the
explanation. Here:

>>> d = xr.dissection.dissect(model, "mlpconv4_relu2", probe)        # doctest: +SKIP
>>> t = explain(model, x, d, class_names=shapes.CLASSES, model_name="nin_shapes")   # doctest: +SKIP
>>> t.sentence[0]                                                    # doctest: +SKIP
'nin_shapes says triangle mostly because of units 12 (triangle, IoU 0.31), 5 (edge, IoU 0.12) and 40 (unnamed).'

Terms: ``alpha`` (or ``w`` with ``by="cam"``) (B,K) the importance of every unit, ``top`` and ``bottom``
(B,n) the n most and least important units, ``units`` the K dissected units (`xai_ref.dissection.Unit`),
``sentence`` one sentence per image, built by `sentences` from the terms before it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .cam import cam, grad_cam
from .checks import as_choice, as_count
from .trace import Trace

__all__ = ["explain", "presence", "sentences"]

BY = ("grad_cam", "cam")


def explain(model: nn.Module, x: torch.Tensor, dissection: Trace, target=None, *, by: str = "grad_cam",
            n: int = 3, class_names=None, model_name: str = "the model") -> Trace:
    """The textual explanation of ``model``'s score for ``target`` (default: the prediction) on each image.

    ``dissection``: the Trace of `xai_ref.dissection.dissect` of the layer to explain (its units' names;
    the importance is taken at ``dissection.meta["layer"]``). ``by``: ``"grad_cam"`` (``alpha^c_k``, any
    model) or ``"cam"`` (``w^c_k``, a GAP -> linear head, the dissected layer being the one before GAP).
    ``n``: units named for and against the class. ``class_names``: for the sentence (default "class c").

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    if not isinstance(dissection, Trace) or dissection.method != "dissection":
        raise TypeError("dissection must be the Trace returned by xai_ref.dissection.dissect(model, layer, probe), "
                        f"got {type(dissection).__name__}")
    by, n = as_choice(by, "by", BY), as_count(n, "n")
    layer = dissection.meta["layer"]
    importance = (grad_cam if by == "grad_cam" else cam)(model, x, target, layer=layer)
    K = len(dissection.name)
    weights = (importance.alpha if by == "grad_cam" else importance.w).detach().cpu()
    if weights.shape[1] != K:
        raise ValueError(f"the dissection has {K} units but layer {layer!r} of this model has {weights.shape[1]}; "
                         "dissect this model's layer")
    n = min(n, K)
    classes = importance.meta["target"].cpu()
    t = Trace("textual", meta={"target": classes, "layer": layer, "by": by, "model_name": model_name,
                               "class_names": None if class_names is None else tuple(class_names)})
    symbol = "alpha" if by == "grad_cam" else "w"
    weight = t.add(symbol, weights)
    order = weight.argsort(dim=1, descending=True, stable=True)
    letter = t.steps[-1].latex.split("=")[0]
    t.add("top", order[:, :n], weight=letter, n=n)
    t.add("bottom", order.flip(1)[:, :n], weight=letter, n=n)
    t.add("units", list(dissection.name), floor=f"{dissection.meta['iou_floor']:g}")
    t.add("sentence", sentences(t))
    return t


def _unit_text(unit) -> str:
    return f"{unit.k} ({unit.name}, IoU {unit.iou:.2f})" if unit.named else f"{unit.k} (unnamed)"


def _listing(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def sentences(t: Trace) -> list[str]:
    """One sentence per image from the terms of a textual trace: its class, the ``top`` units with
    positive importance and the ``bottom`` units with negative importance, each with its dissection name
    and IoU (from ``units``). Change a term and the sentence follows.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    weights = t["alpha"] if "alpha" in t else t["w"]
    names = t.meta.get("class_names")
    out = []
    for b, c in enumerate(np.asarray(t.meta["target"]).tolist()):
        label = names[c] if names else f"class {c}"
        pro = [_unit_text(t.units[k]) for k in t.top[b].tolist() if weights[b, k] > 0]
        con = [_unit_text(t.units[k]) for k in t.bottom[b].tolist() if weights[b, k] < 0]
        text = f"{t.meta['model_name']} says {label}"
        text += f" mostly because of unit{'s' if len(pro) > 1 else ''} {_listing(pro)}" if pro else \
            ", though no unit has a positive importance"
        text += f"; against it: unit{'s' if len(con) > 1 else ''} {_listing(con)}." if con else "."
        out.append(text)
    return out


def presence(t: Trace, concepts) -> np.ndarray:
    """``(B, n)``: for each of each image's ``top`` units, whether its concept is present in that image
    (1.0: at least one pixel of it in the exact mask, 0.0: absent), NaN for an unnamed unit.
    ``concepts``: the images' `xai_ref.data.concepts.Concepts` (same order as the explained batch).

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    present = concepts.present
    if present.shape[0] != len(t.top):
        raise ValueError(f"concepts has masks of {present.shape[0]} images but the explanation is of {len(t.top)}; "
                         "pass the concepts of the explained images")
    index = {name: i for i, name in enumerate(concepts.names)}
    out = np.full(tuple(t.top.shape), np.nan)
    for b, row in enumerate(t.top.tolist()):
        for j, k in enumerate(row):
            unit = t.units[k]
            if unit.named:
                out[b, j] = float(present[b, index[unit.name]])
    return out
