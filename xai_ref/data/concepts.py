"""Concept masks for shapes images: which pixels show which concept, exactly (for Network Dissection).

>>> from xai_ref.data import concepts, shapes
>>> batch = shapes.generate(8, seed=0, biased=True)
>>> c = concepts.concepts(batch)
>>> c.names[:8]
('circle', 'square', 'triangle', 'plus', 'star', 'ring', 'red', 'yellow')
>>> c.masks.shape                                  # (images, concepts, H, W) bool
(8, 17, 64, 64)

The concepts, in this order (:func:`concept_names`):

- **each shape class** (``batch.classes``): the visible pixels of the objects of that class;
- **each colour** (:data:`COLOURS`): the pixels of the objects painted in that colour. An object's colour is
  named by its hue ``H`` in HSV (:func:`colour_index`): ``"white"`` when its saturation ``S = 1 - min/max`` of
  its RGB is below :data:`PALE`, otherwise the nearest of red (0°), yellow (60°), green (120°), cyan (180°),
  blue (240°), magenta (300°);
- ``"edge"``: the object pixels with a 4-neighbour outside their object (the outline, one pixel thick);
- ``"clutter"``: the visible pixels of the clutter strokes;
- ``"cue"``: the bias cue's pixels (``biased=True``; empty otherwise);
- ``"background"``: every pixel that is none of object, stroke or cue.

Like Broden's labels in Network Dissection (Bau et al., CVPR 2017), concepts may overlap: an object pixel is
in its class, in its colour, and maybe in ``"edge"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .shapes import ShapesBatch

__all__ = ["COLOURS", "PALE", "Concepts", "colour_index", "concept_names", "concepts"]

#: The colour names, in order: the six hue sectors of 60° centred on 0°, 60°, ..., 300°, then the pale colours.
COLOURS = ("red", "yellow", "green", "cyan", "blue", "magenta", "white")

#: Saturation below which an object's colour is called ``"white"``.
PALE = 0.3

_OTHERS = ("edge", "clutter", "cue", "background")


@dataclass(frozen=True, eq=False)
class Concepts:
    """``names``: the concept names; ``masks``: ``(n, C, H, W)`` bool, pixel-exact, one per concept."""

    names: tuple[str, ...]
    masks: np.ndarray

    @property
    def present(self) -> np.ndarray:
        """``(n, C)`` bool: which concepts each image shows (at least one pixel)."""
        return self.masks.any((2, 3))


def concept_names(classes: tuple[str, ...]) -> tuple[str, ...]:
    """The concept names for images of these shape classes: classes, :data:`COLOURS`, edge, clutter, cue, background."""
    return (*classes, *COLOURS, *_OTHERS)


def colour_index(rgb: np.ndarray) -> np.ndarray:
    """Index into :data:`COLOURS` of each RGB colour ``(..., 3)`` in ``[0, 1]``.

    ``S = 1 - min/max``; if ``S < PALE``: white. Otherwise the HSV hue
    ``H = 60° * ((g - b)/d mod 6 | (b - r)/d + 2 | (r - g)/d + 4)`` for the largest channel ``r | g | b``,
    ``d = max - min``, rounded to the nearest multiple of 60° (mod 360°).
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    r, g, b = np.moveaxis(rgb, -1, 0)
    hi, lo = rgb.max(-1), rgb.min(-1)
    d = np.where(hi > lo, hi - lo, 1.0)
    sector = np.select([hi == r, hi == g], [((g - b) / d) % 6, (b - r) / d + 2], (r - g) / d + 4)
    hue = np.rint(sector).astype(np.int64) % 6
    pale = (1 - lo / np.where(hi > 0, hi, 1.0)) < PALE
    return np.where(pale, len(COLOURS) - 1, hue)


def _edges(masks: np.ndarray) -> np.ndarray:
    """Pixels of each mask ``(..., H, W)`` with a 4-neighbour outside it: ``m & ~erode(m)``."""
    inner = np.pad(masks, [(0, 0)] * (masks.ndim - 2) + [(1, 1), (1, 1)])
    eroded = inner[..., :-2, 1:-1] & inner[..., 2:, 1:-1] & inner[..., 1:-1, :-2] & inner[..., 1:-1, 2:]
    return masks & ~eroded


def concepts(batch: ShapesBatch) -> Concepts:
    """The pixel-exact concept masks of every image of a shapes batch (see the module docstring).

    Each concept's mask is a union over the image's objects ``k`` of their masks ``M_k``:
    class ``c``: ``∪_{label_k = c} M_k``; colour ``j``: ``∪_{colour_k = j} M_k``; edge: ``∪_k (M_k ∧ ¬erode(M_k))``.
    """
    if not isinstance(batch, ShapesBatch):
        raise TypeError(f"batch must be a shapes.ShapesBatch (from shapes.generate), got {type(batch).__name__}")
    n, m, h, w = batch.masks.shape
    names = concept_names(batch.classes)
    out = np.zeros((n, len(names), h, w), dtype=bool)
    colour = colour_index(batch.colours)  # (n, m)
    offset = len(batch.classes)
    for k in range(m):
        rows = np.arange(n)
        out[rows, batch.labels[:, k]] |= batch.masks[:, k]
        out[rows, offset + colour[:, k]] |= batch.masks[:, k]
    edge, clutter, cue, background = (names.index(s) for s in _OTHERS)
    out[:, edge] = _edges(batch.masks).any(1)
    out[:, clutter] = batch.clutter_masks
    if batch.cue_masks is not None:
        out[:, cue] = batch.cue_masks
    out[:, background] = ~(batch.masks.any(1) | out[:, clutter] | out[:, cue])
    return Concepts(names, out)
