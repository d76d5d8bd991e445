"""Units and their names: the NumPy part of Network Dissection, shared by `xai_ref.dissection` (PyTorch) and
`xai_ref.scratch.dissection` (NumPy), so both twins check their arguments, read thresholds, name units and
build their Trace the same way (NumPy and the standard library only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .checks import as_count, as_number
from .data import concepts as concepts_module
from .data.shapes import ShapesBatch
from .trace import Trace

__all__ = ["UNNAMED", "Unit", "check_masks", "check_settings", "probe_set", "quantile_position", "trace",
           "units"]

#: The name of a unit whose best IoU is not above the floor.
UNNAMED = "unnamed"

@dataclass(frozen=True)
class Unit:
    """One dissected unit: its index ``k``, its ``name`` (a concept, or ``"unnamed"``), the ``concept`` it
    matches best (even when unnamed), that concept's ``iou`` and the unit's threshold ``T``.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """

    k: int
    name: str
    concept: str
    iou: float
    T: float

    @property
    def named(self) -> bool:
        return self.name != UNNAMED

    def __repr__(self) -> str:
        """Rounded for reading (``iou`` to 4 decimals, ``T`` to 4 significant digits); the fields keep
        the full values."""
        return (f"Unit(k={self.k}, name={self.name!r}, concept={self.concept!r}, iou={self.iou:.4f}, "
                f"T={self.T:.4g})")


def quantile_position(n: int, q: float) -> tuple[int, float]:
    """Where the ``1 - q`` quantile of ``n`` values lies, counted from the **largest** value.

    NumPy's linear quantile of sorted values ``v_0 <= ... <= v_{n-1}`` sits at ``p = (n - 1)(1 - q)``:
    ``v_i + f (v_{i+1} - v_i)`` with ``i = floor(p)``, ``f = p - i``. Returns ``(m, f)`` with ``m = n - i``:
    the quantile needs only the ``m`` largest values (``v_i`` is the m-th largest, ``v_{i+1}`` the
    (m-1)-th).

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    p = (n - 1) * (1.0 - q)
    i = math.floor(p)
    return n - i, p - i


def units(iou: np.ndarray, T: np.ndarray, concept_names, floor: float) -> list[Unit]:
    """The `Unit` of each row of ``iou`` (K, C): its best concept, named if that IoU is above ``floor``.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    best = iou.argmax(1)
    return [Unit(k, concept_names[c] if iou[k, c] > floor else UNNAMED, concept_names[c], float(iou[k, c]),
                 float(T[k])) for k, c in enumerate(best)]


def probe_set(images, concepts, array_types: tuple = (np.ndarray,)):
    """``(images, Concepts)`` from the arguments of `dissect`: a ShapesBatch brings its own concepts;
    ``array_types``: what a batch of images may be (the PyTorch twin adds ``torch.Tensor``)."""
    if isinstance(images, ShapesBatch):
        if concepts is None:
            concepts = concepts_module.concepts(images)
        images = images.images
    if not isinstance(images, array_types):
        raise TypeError(f"images must be a batch (N,C,H,W), a tensor or an array, or a shapes.ShapesBatch, got "
                        f"{type(images).__name__}")
    if concepts is None:
        raise ValueError("concepts is None: pass the probe set's concept masks, "
                         "xai_ref.data.concepts.concepts(batch), or pass the ShapesBatch itself as images")
    if not isinstance(concepts, concepts_module.Concepts):
        raise TypeError(f"concepts must be an xai_ref.data.concepts.Concepts (from concepts.concepts(batch)), "
                        f"got {type(concepts).__name__}")
    masks = concepts.masks
    if not (isinstance(masks, np.ndarray) and masks.dtype == bool and masks.ndim == 4):
        raise ValueError(f"concepts.masks must be a bool array (N, concepts, H, W), got "
                         f"{getattr(masks, 'dtype', type(masks).__name__)} of shape {np.shape(masks)}")
    if masks.shape[1] != len(concepts.names):
        raise ValueError(f"concepts has {len(concepts.names)} names but masks for {masks.shape[1]} concepts")
    return images, concepts


def check_masks(concepts, shape: tuple) -> None:
    """The concept masks must be (N, concepts, H, W) for images of ``shape`` (N, C, H, W)."""
    masks = concepts.masks
    if masks.shape[0] != shape[0] or masks.shape[2:] != tuple(shape[2:]):
        raise ValueError(f"concepts.masks {masks.shape} do not match the images {tuple(shape)}: one mask per "
                         "concept per image, at the images' resolution (N, concepts, H, W)")


def check_settings(quantile, iou_floor, batch_size, keep, top) -> tuple[float, float, int, int, int]:
    """The settings of a dissection, checked (shared with the NumPy twin)."""
    q = as_number(quantile, "quantile", 0.0, 1.0, low_open=True)
    if q >= 1:
        raise ValueError(f"quantile must be in (0, 1): the fraction of positions above T_k (the paper: 0.005), "
                         f"got {quantile!r}")
    return (q, as_number(iou_floor, "iou_floor", 0.0, 1.0), as_count(batch_size, "batch_size"),
            as_count(keep, "keep", 0), as_count(top, "top"))


def trace(counts: dict, layer: str, concepts, q: float, floor: float, keep: int, top: int, positions: int,
          as_value=lambda a: a) -> Trace:
    """The Trace of a dissection from its counts, for both twins (``as_value`` turns the NumPy IoU into the
    twin's array type: ``torch.from_numpy`` for the PyTorch one).

    ``counts``: ``A``, ``M`` (the kept images), ``T``, ``I`` (K,C), ``M_size`` (K,), ``L_size`` (C,),
    ``above`` (K,), ``floor`` (K,) each unit's minimum over the set, ``a_max`` (N,K) each image's largest
    activation of each unit.
    ``U = |M_k| + |L_c| - I`` and ``IoU = I / U`` (0 where U = 0: neither mask has a pixel).

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    I, M_size, L_size, a_max = counts["I"], counts["M_size"], counts["L_size"], counts["a_max"]
    U = M_size[:, None] + L_size[None, :] - I
    iou = np.divide(np.asarray(I, dtype=np.float64), np.asarray(U, dtype=np.float64),
                    out=np.zeros(tuple(U.shape)), where=np.asarray(U) > 0)
    n = len(a_max)
    order = np.argsort(-np.asarray(a_max), axis=0, kind="stable")[:top].T      # (K, top): each unit's top images
    t = Trace("dissection", meta={"target": None,
        "layer": layer, "concepts": tuple(concepts.names), "quantile": q, "iou_floor": floor, "n": n,
        "positions": positions, "M_size": M_size, "L_size": L_size, "above": counts["above"],
        "floor": counts["floor"], "top": np.ascontiguousarray(order)})
    for symbol in ("A", "T", "M", "I", "U"):
        t.add(symbol, {"A": counts["A"], "T": counts["T"], "M": counts["M"], "I": I, "U": U}[symbol],
              layer=layer, keep=min(keep, n), n=n, q=f"{q:g}")
    t.add("IoU", as_value(iou))
    t.add("name", units(iou, np.asarray(counts["T"]), concepts.names, floor), floor=f"{floor:g}")
    return t
