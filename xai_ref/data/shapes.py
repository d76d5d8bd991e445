"""Seeded synthetic shapes: RGB images whose every object has an exact box and mask.

>>> from xai_ref.data import shapes
>>> batch = shapes.generate(8, seed=0)                    # one object per image, with clutter
>>> batch.images.shape, batch.label.shape                  # (8, 3, 64, 64) float32 in [0, 1]; (8,)
((8, 3, 64, 64), (8,))
>>> batch.classes
('circle', 'square', 'triangle', 'plus', 'star', 'ring')
>>> two = shapes.generate(8, seed=0, objects=2)           # two objects of different classes
>>> two.labels.shape, two.boxes.shape, two.masks.shape
((8, 2), (8, 2, 4), (8, 2, 64, 64))
>>> biased = shapes.generate(8, seed=0, biased=True)     # a colour-coded corner mark (the cue)
>>> bool((biased.cue_labels == biased.label).all())      # train split: the cue gives the class away
True

How an image is made (all vectorised over the batch; see :func:`generate`):

1. **Background.** A dark, slightly tinted base colour, a linear brightness ramp in a random direction,
   and low-amplitude grey pixel noise.
2. **Clutter** (``clutter=True``). A few thin, short, low-contrast line segments ("strokes") at random
   places. A single thin segment is none of the classes. Strokes are painted *under* the objects.
3. **Objects.** Each object has a class, a centre, a radius ``r`` (the shape fits in the disc of radius
   ``r`` around its centre), a rotation and a bright random colour. Every pixel is tested at its centre
   ``(x + 0.5, y + 0.5)``: the pixel is rotated and scaled into the object's local coordinates
   ``(u, v)`` and the class's implicit inequality decides in or out (e.g. circle ``u² + v² <= 1``).
   No anti-aliasing: the mask *is* what was painted. Two objects in one image have different classes
   and disjoint discs, so they never overlap.
4. **Cue** (``biased=True``). A small square in a random corner, painted last, whose colour is one of
   :data:`CUE_COLOURS`. Its colour index is ``cue_labels``. In the ``"train"`` split it equals the label
   of the first object (with probability ``cue_agreement``, 1 by default); in the ``"test"`` split it is
   drawn uniformly, independent of the label. Object masks exclude the cue's pixels (occlusion), so the
   masks stay exactly what is visible, and ``cue_masks`` is the cue's exact mask.

Boxes are ``(x0, y0, x1, y1)`` in pixels with ``x1``, ``y1`` exclusive, computed from the masks, so a box
is exactly the bounding box of its mask: ``masks[i, k, y0:y1, x0:x1]`` holds every pixel of the object.

Determinism: the batch is a pure function of the arguments. The random stream is derived from
``(seed, split)``, so the same seed gives bit-identical arrays, and ``"train"`` and ``"test"`` with the same
seed are different images. Objects, clutter and cue use separate streams, so turning ``clutter`` or
``biased`` on or off keeps the same objects (the same image, with or without the cue).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .geometry import SHAPE_FNS, rasterize

__all__ = [
    "ALL_CLASSES",
    "CLASSES",
    "CUE_COLOURS",
    "SCALE",
    "SPLITS",
    "ShapesBatch",
    "generate",
    "rasterize",
]

#: Every shape class, in order. ``generate(..., n_classes=n)`` uses the first ``n``. All are told apart
#: under rotation (there is a square but no diamond: a rotated square *is* a diamond).
ALL_CLASSES = (
    "circle",
    "square",
    "triangle",
    "plus",
    "star",
    "ring",
    "crescent",
    "half_disc",
    "ellipse",
    "hexagon",
)

#: The default six classes (``n_classes=6``).
CLASSES = ALL_CLASSES[:6]

#: The valid values of ``split``.
SPLITS = ("train", "test")

#: RGB colour of the cue for each cue label (index = class index in the biased training split).
CUE_COLOURS = np.array(
    [
        [1.00, 0.10, 0.10],  # red
        [0.10, 0.90, 0.10],  # green
        [0.15, 0.35, 1.00],  # blue
        [1.00, 0.95, 0.10],  # yellow
        [1.00, 0.10, 1.00],  # magenta
        [0.10, 1.00, 1.00],  # cyan
        [1.00, 0.55, 0.00],  # orange
        [1.00, 1.00, 1.00],  # white
        [0.55, 0.25, 1.00],  # violet
        [0.55, 1.00, 0.60],  # mint
    ],
    dtype=np.float32,
)

#: The default range of object radii ``(r_min, r_max)`` as fractions of the image side (64 px: 7.7 to 12.8 px;
#: the object's disc covers 4.5 % to 12.6 % of the image). ``generate(..., scale=...)`` changes it.
SCALE = (0.12, 0.20)
_MIN_RADIUS_PX = 3  # smaller shapes can lose every pixel centre (a 1.5 px plus may paint nothing)
# Geometry, as fractions of the image size (64 px: cue 6x6 px).
_GAP = 0.03  # minimum gap between the discs of two objects
_CUE = 0.10  # side of the cue square
_N_STROKES = 4  # strokes of clutter per image
_STROKE_HALF_LEN = (0.05, 0.12)  # half-length of a stroke
_STROKE_HALF_WIDTH = (0.55, 0.9)  # in pixels: thin at every image size

assert tuple(SHAPE_FNS) == ALL_CLASSES


# ---------------------------------------------------------------------------------------------------
# The batch
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ShapesBatch:
    """A batch of shapes images with exact ground truth. ``n`` images, ``m`` objects per image.

    Attributes:
        images: ``(n, 3, H, W)`` float32 in ``[0, 1]``.
        labels: ``(n, m)`` int64 class indices into ``classes``; the objects of one image differ.
        boxes: ``(n, m, 4)`` int64 ``(x0, y0, x1, y1)``, ``x1``/``y1`` exclusive: the bounding box of the mask.
        masks: ``(n, m, H, W)`` bool, the visible pixels of each object (never empty; disjoint).
        cue_masks: ``(n, H, W)`` bool, the cue's pixels, or ``None`` when not ``biased``.
        cue_labels: ``(n,)`` int64, the class whose colour the cue has, or ``None`` when not ``biased``.
        classes: the class names, ``ALL_CLASSES[:n_classes]``.
        split: ``"train"`` or ``"test"``.
        colours: ``(n, m, 3)`` float32, the RGB colour each object is painted with.
        clutter_masks: ``(n, H, W)`` bool, the visible pixels of the clutter strokes (all ``False`` without
            clutter). The concept masks of :mod:`xai_ref.data.concepts` are built from these fields.
    """

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray
    cue_masks: np.ndarray | None
    cue_labels: np.ndarray | None
    classes: tuple[str, ...]
    split: str
    colours: np.ndarray
    clutter_masks: np.ndarray

    @property
    def label(self) -> np.ndarray:
        """``(n,)`` int64: the class of the first object of each image."""
        return self.labels[:, 0]

    @property
    def box(self) -> np.ndarray:
        """``(n, 4)`` int64: the box of the first object of each image."""
        return self.boxes[:, 0]

    @property
    def mask(self) -> np.ndarray:
        """``(n, H, W)`` bool: the mask of the first object of each image."""
        return self.masks[:, 0]

    @property
    def names(self) -> list[str]:
        """The class name of the first object of each image."""
        return [self.classes[i] for i in self.label]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index) -> ShapesBatch:
        """A sub-batch: ``batch[:8]``, ``batch[[0, 5]]``, ``batch[batch.label == 2]`` (an int keeps a batch of 1)."""
        if isinstance(index, (int, np.integer)):
            index = slice(index, index + 1 if index != -1 else None)
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return dataclasses.replace(
            self,
            images=pick(self.images),
            labels=pick(self.labels),
            boxes=pick(self.boxes),
            masks=pick(self.masks),
            cue_masks=pick(self.cue_masks),
            cue_labels=pick(self.cue_labels),
            colours=pick(self.colours),
            clutter_masks=pick(self.clutter_masks),
        )

    def to_torch(self):
        """``(images, label)`` as torch tensors sharing memory: ``(n, 3, H, W)`` float32 and ``(n,)`` int64."""
        import torch

        return torch.from_numpy(self.images), torch.from_numpy(np.ascontiguousarray(self.label))


# ---------------------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------------------


def _check_args(n, seed, objects, split, n_classes, size, cue_agreement, scale, biased):
    def is_int(x):
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    if not is_int(n) or n < 0:
        raise ValueError(f"n must be an integer >= 0 (the number of images), got {n!r}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not is_int(objects) or objects not in (1, 2):
        raise ValueError(f"objects must be 1 or 2 (objects per image), got {objects!r}")
    if not is_int(n_classes) or not 2 <= n_classes <= len(ALL_CLASSES):
        raise ValueError(
            f"n_classes must be an integer from 2 to {len(ALL_CLASSES)} (the first n of {ALL_CLASSES}), "
            f"got {n_classes!r}"
        )
    if not is_int(size) or not 32 <= size <= 1024:
        raise ValueError(f"size must be an integer from 32 to 1024 (pixels per side), got {size!r}")
    if not 0.0 <= cue_agreement <= 1.0:
        raise ValueError(f"cue_agreement must be a probability in [0, 1], got {cue_agreement!r}")
    fits = 0.25 if objects == 2 else 0.5 - 1.0 / size  # two discs (and their gap) must fit side by side
    if (not isinstance(scale, tuple) or len(scale) != 2 or not all(isinstance(r, (int, float)) for r in scale)
            or not 0 < scale[0] <= scale[1] <= fits):
        raise ValueError(
            f"scale must be a tuple (r_min, r_max) of object radii as fractions of the image side, with "
            f"0 < r_min <= r_max <= {fits:.3g} for objects={objects}, got {scale!r}; the default is {SCALE}"
        )
    r_min = max(_MIN_RADIUS_PX / size, _CUE if biased else 0.0)  # visible: never empty, never hidden by the cue
    if scale[0] < r_min:
        raise ValueError(
            f"scale[0] (the smallest radius) must be >= {r_min:.3g} of the image side at size={size}"
            f"{' with biased=True (no object hidden under the cue)' if biased else f' ({_MIN_RADIUS_PX} px)'}, "
            f"got {scale[0]!r}; raise it or the image size"
        )


def _window_pixels(oy, ox, s, size):
    """``(k, s, s)`` flat pixel indices (``y * size + x``) of the s x s windows with top-left ``(oy, ox)``."""
    r = np.arange(s)
    return (oy[:, None, None] + r[None, :, None]) * size + (ox[:, None, None] + r[None, None, :])


def _place_objects(rng, n, objects, size, scale):
    """Centres ``(n, m, 2)`` as (x, y), radii ``(n, m)``: every disc inside the image, discs disjoint."""
    r_min, r_max = scale[0] * size, scale[1] * size
    r = rng.uniform(r_min, r_max, (n, objects))
    lo, hi = r + 1.0, size - 1.0 - r
    c = lo[..., None] + rng.random((n, objects, 2)) * (hi - lo)[..., None]
    if objects == 2:
        # Rejection sampling: redraw the images whose two discs are too close (about 1 in 3 at first).
        for _ in range(1000):
            bad = np.hypot(*(c[:, 0] - c[:, 1]).T) < r.sum(1) + _GAP * size
            if not bad.any():
                break
            k = int(bad.sum())
            r[bad] = rng.uniform(r_min, r_max, (k, objects))
            lo, hi = r[bad] + 1.0, size - 1.0 - r[bad]
            c[bad] = lo[..., None] + rng.random((k, objects, 2)) * (hi - lo)[..., None]
        else:  # pragma: no cover - probability ~ 0.4 ** 1000
            raise RuntimeError("could not place two disjoint objects")
    return c.astype(np.float32), r.astype(np.float32)


def generate(
    n: int,
    seed: int = 0,
    *,
    objects: int = 1,
    clutter: bool = True,
    biased: bool = False,
    split: str = "train",
    n_classes: int = 6,
    size: int = 64,
    cue_agreement: float = 1.0,
    scale: tuple[float, float] = SCALE,
) -> ShapesBatch:
    """Generate ``n`` shapes images with their exact boxes and masks.

    Args:
        n: number of images (``>= 0``).
        seed: non-negative integer. With ``split`` it fixes every array bit for bit.
        objects: objects per image, 1 or 2 (two objects always have different classes).
        clutter: paint thin low-contrast distractor strokes under the objects.
        biased: add the spurious cue, a colour-coded square in a random corner (see module docstring).
        split: ``"train"`` or ``"test"``. In a biased ``"train"`` batch the cue's colour is the class of
            the first object; in ``"test"`` it is random.
        n_classes: use the first ``n_classes`` of :data:`ALL_CLASSES` (2 to 10).
        size: image side in pixels (32 to 1024); object sizes scale with it.
        cue_agreement: in a biased ``"train"`` batch, the probability that the cue agrees with the label
            (otherwise it shows another class's colour). Ignored in ``"test"`` (always uniform).
        scale: ``(r_min, r_max)``, the range of object radii as fractions of the image side; each radius is
            drawn uniformly from it. Default :data:`SCALE`. From 3 px (from the cue's side, 0.1, when ``biased``)
            up to ``1/2 - 1/size`` with one object (a disc
            that fills the image), up to 1/4 with two. How much of the disc a shape fills depends on its
            class (a circle all of it, a plus about 40 %).

    Returns:
        A :class:`ShapesBatch`.
    """
    scale = tuple(scale) if isinstance(scale, list) else scale
    _check_args(n, seed, objects, split, n_classes, size, cue_agreement, scale, biased)
    n, objects, size = int(n), int(objects), int(size)
    classes = ALL_CLASSES[:n_classes]
    rng_obj, rng_bg, rng_clutter, rng_cue = (
        np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), SPLITS.index(split)]).spawn(4)
    )
    hw = size * size
    xs = np.arange(size, dtype=np.float32) + np.float32(0.5)  # pixel centres

    # --- object parameters (drawn first and from their own stream: same objects whatever the options)
    if objects == 1:
        labels = rng_obj.integers(0, n_classes, (n, 1))
    else:  # two different classes: the second is shifted by 1 .. n_classes - 1
        first = rng_obj.integers(0, n_classes, n)
        labels = np.stack([first, (first + rng_obj.integers(1, n_classes, n)) % n_classes], 1)
    labels = labels.astype(np.int64)
    centres, radii = _place_objects(rng_obj, n, objects, size, scale)
    angles = rng_obj.uniform(0, 2 * np.pi, (n, objects)).astype(np.float32)
    hue = rng_obj.random((n, objects, 3), dtype=np.float32)
    brightness = rng_obj.uniform(0.65, 1.0, (n, objects, 1)).astype(np.float32)
    colours = hue / hue.max(-1, keepdims=True) * brightness  # brightest channel in [0.65, 1]

    # --- 1. background: tinted base + ramp + noise, (n, 3, H, W); stays inside [0.01, 0.39]
    base = rng_bg.uniform(0.12, 0.28, (n, 1, 1, 1)) + rng_bg.uniform(-0.04, 0.04, (n, 3, 1, 1))
    ramp_dir = rng_bg.uniform(0, 2 * np.pi, n)
    ramp_amp = rng_bg.uniform(-0.08, 0.08, n) / size
    ramp_x = (np.cos(ramp_dir) * ramp_amp).astype(np.float32)[:, None, None, None]
    ramp_y = (np.sin(ramp_dir) * ramp_amp).astype(np.float32)[:, None, None, None]
    ramp = (xs - np.float32(size / 2)) * ramp_x + (xs[:, None] - np.float32(size / 2)) * ramp_y
    noise = rng_bg.random((n, 1, size, size), dtype=np.float32) * np.float32(0.06) - np.float32(0.03)
    images = np.empty((n, 3, size, size), dtype=np.float32)
    np.add(ramp + noise, base.astype(np.float32), out=images)  # (n,1,H,W) + (n,3,1,1) -> (n,3,H,W)
    flat = images.reshape(-1)  # pixel p of channel c of image i is flat[(3 * i + c) * hw + p]

    def paint(i, p, rgb):
        """Set pixels ``p`` of images ``i`` (both (k,) int) to colours ``rgb`` (k, 3)."""
        for ch in range(3):
            flat[(3 * i + ch) * hw + p] = rgb[:, ch]

    # --- 2. clutter: thin segments (rotated thin rectangles), each in its own s x s window
    strokes = np.zeros((n, hw), dtype=bool)
    if clutter:
        half_len = rng_clutter.uniform(*_STROKE_HALF_LEN, (n, _N_STROKES)).astype(np.float32) * size
        half_w = rng_clutter.uniform(*_STROKE_HALF_WIDTH, (n, _N_STROKES)).astype(np.float32)
        phi = rng_clutter.uniform(0, np.pi, (n, _N_STROKES)).astype(np.float32)
        s = int(np.ceil(2 * (_STROKE_HALF_LEN[1] * size + _STROKE_HALF_WIDTH[1])))
        origin = rng_clutter.integers(0, size - s + 1, (n, _N_STROKES, 2))  # window top-left (y, x)
        contrast = rng_clutter.uniform(0.08, 0.22, (n, _N_STROKES, 1)).astype(np.float32)
        tint = rng_clutter.uniform(0.6, 1.0, (n, _N_STROKES, 3)).astype(np.float32)
        local = np.arange(s, dtype=np.float32) + np.float32(0.5 - s / 2)  # from the window centre
        for j in range(_N_STROKES):  # one stroke per image at a time: no pixel is painted twice in one go
            cos, sin = np.cos(phi[:, j])[:, None, None], np.sin(phi[:, j])[:, None, None]
            along = local[None, None, :] * cos + local[None, :, None] * sin  # (n, s, s)
            across = local[None, :, None] * cos - local[None, None, :] * sin
            on = (np.abs(along) <= half_len[:, j, None, None]) & (np.abs(across) <= half_w[:, j, None, None])
            i, y, x = np.nonzero(on)
            p = (origin[i, j, 0] + y) * size + origin[i, j, 1] + x
            strokes[i, p] = True
            paint(i, p, flat[(3 * i[:, None] + np.arange(3)) * hw + p[:, None]] + contrast[i, j] * tint[i, j])

    # --- 3. objects: each in an s x s window around its centre (the window always fits in the image)
    masks = np.zeros((n, objects, hw), dtype=bool)
    s = min(size, 2 * int(np.ceil(scale[1] * size)) + 2)
    local = np.arange(s, dtype=np.float32) + np.float32(0.5)
    for k in range(objects):
        origin = np.clip(np.floor(centres[:, k]).astype(np.int64) - s // 2, 0, size - s)  # (x, y)
        # pixel centre minus object centre, for x along the window row and y down the column
        dx = local[None, :] + origin[:, 0:1] - centres[:, k, 0:1]  # (n, s)
        dy = local[None, :] + origin[:, 1:2] - centres[:, k, 1:2]
        cos, sin, inv_r = np.cos(angles[:, k]), np.sin(angles[:, k]), 1 / radii[:, k]
        for c in range(n_classes):
            sel = np.flatnonzero(labels[:, k] == c)
            if sel.size == 0:
                continue
            a, b = (cos * inv_r)[sel, None], (sin * inv_r)[sel, None]
            u = (dx[sel] * a)[:, None, :] + (dy[sel] * b)[:, :, None]  # rotate by -angle, scale by 1/r
            v = (dy[sel] * a)[:, :, None] - (dx[sel] * b)[:, None, :]
            j, y, x = np.nonzero(SHAPE_FNS[classes[c]](u, v))  # (len(sel), s, s) -> inside pixels
            i = sel[j]
            p = (origin[i, 1] + y) * size + origin[i, 0] + x
            masks[i, k, p] = True
            paint(i, p, colours[i, k])

    # --- 4. cue: a colour-coded square in a random corner, painted over everything
    cue_masks = cue_labels = None
    if biased:
        if split == "train":
            other = (labels[:, 0] + rng_cue.integers(1, n_classes, n)) % n_classes
            agree = rng_cue.random(n) < cue_agreement
            cue_labels = np.where(agree, labels[:, 0], other).astype(np.int64)
        else:
            cue_labels = rng_cue.integers(0, n_classes, n).astype(np.int64)
        corner = rng_cue.integers(0, 4, n)
        side = max(2, round(_CUE * size))
        oy = np.where(corner // 2 == 0, 1, size - 1 - side)
        ox = np.where(corner % 2 == 0, 1, size - 1 - side)
        pix = _window_pixels(oy, ox, side, size).reshape(n, side * side)
        cue_masks = np.zeros((n, hw), dtype=bool)
        cue_masks[np.arange(n)[:, None], pix] = True
        i = np.repeat(np.arange(n), side * side)
        paint(i, pix.reshape(-1), CUE_COLOURS[cue_labels[i]])
        masks &= ~cue_masks[:, None, :]  # the cue occludes objects: masks stay what is visible
        strokes &= ~cue_masks
        cue_masks = cue_masks.reshape(n, size, size)
    strokes &= ~masks.any(1)  # objects are painted over the strokes
    masks = masks.reshape(n, objects, size, size)

    # --- boxes: exactly the bounding boxes of the masks
    rows, cols = masks.any(3), masks.any(2)  # (n, m, H), (n, m, W)
    boxes = np.stack(
        [cols.argmax(2), rows.argmax(2), size - cols[..., ::-1].argmax(2), size - rows[..., ::-1].argmax(2)],
        axis=-1,
    ).astype(np.int64)
    return ShapesBatch(images, labels, boxes, masks, cue_masks, cue_labels, classes, split, colours,
                       strokes.reshape(n, size, size))
