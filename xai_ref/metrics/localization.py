"""Does the map point at the object? Weakly-supervised localization, energy-based pointing, pointing game.

Ground truth comes as boxes ``(B,4)`` = ``(x0, y0, x1, y1)`` in pixels with exclusive ends (the convention
of `xai_ref.data.shapes`) and/or masks ``(B,H,W)`` bool, at the maps' resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from ..checks import as_count, as_number
from ..inputs import INT_DTYPES
from ._common import as_boxes, as_maps, as_masks, as_tensor, boxes_to_masks, minmax

#: 8-connectivity: diagonal neighbours belong to the same component.
EIGHT = np.ones((3, 3), dtype=bool)


def largest_component(region: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a bool ``(H,W)`` region (ties: the first in raster order).

    Lesson: ``lessons/02_cam.ipynb``.
    """
    if not (isinstance(region, np.ndarray) and region.ndim == 2 and region.dtype == bool):
        got = f"{region.dtype} {region.shape}" if isinstance(region, np.ndarray) else type(region).__name__
        raise TypeError(f"region must be a bool NumPy array (H,W), got {got}")
    labels, n = ndimage.label(region, structure=EIGHT)
    if n == 0:
        return np.zeros_like(region, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == 1 + int(np.argmax(sizes))


def threshold_boxes(maps, fraction: float = 0.20) -> torch.Tensor:
    """The box around the largest connected region of each map above a fraction of its maximum.

    The CAM protocol (Zhou et al., CVPR 2016, sec. 3; the released code normalises the map first):
    ``m' = (m - min m) / (max m - min m)`` (min-max to [0, 1]), keep ``{(i,j) : m'_ij >= fraction}``,
    take its largest 8-connected component and return that component's bounding box ``(x0, y0, x1, y1)``
    (x1, y1 exclusive), ``(B,4)`` int64. ``fraction`` = 0.20 for CAM, 0.15 for Grad-CAM (Selvaraju et
    al., sec. 4.1). A constant map keeps no pixel (for ``fraction > 0``) and gets the empty box (0,0,0,0).

    Lesson: ``lessons/02_cam.ipynb``.
    """
    maps = as_maps(maps)
    fraction = as_number(fraction, "fraction", 0, 1)
    keep = (minmax(maps) >= fraction).cpu().numpy()
    if fraction > 0:
        keep &= (maps.flatten(1).max(1).values > maps.flatten(1).min(1).values).cpu().numpy()[:, None, None]
    boxes = np.zeros((len(keep), 4), dtype=np.int64)
    for i, region in enumerate(keep):
        comp = largest_component(region)
        if comp.any():
            ys, xs = np.nonzero(comp)
            boxes[i] = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return torch.from_numpy(boxes)


def box_iou(a, b) -> torch.Tensor:
    """Intersection over union of pixel boxes ``(x0, y0, x1, y1)`` (exclusive ends), ``(B,)`` float64.

    ``IoU = |a ∩ b| / |a ∪ b|``, areas counted in pixels; 0 when both boxes are empty.

    Lesson: ``lessons/02_cam.ipynb``.
    """
    a, b = (_pixel_boxes(v, name) for v, name in ((a, "a"), (b, "b")))
    if a.shape != b.shape:
        raise ValueError(f"box_iou needs a and b of the same shape (B,4), got {tuple(a.shape)} and {tuple(b.shape)}")
    w = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    h = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = (w * h).double()
    area = lambda r: ((r[:, 2] - r[:, 0]).clamp(min=0) * (r[:, 3] - r[:, 1]).clamp(min=0)).double()  # noqa: E731
    union = area(a) + area(b) - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros((), dtype=torch.float64))


def _pixel_boxes(boxes, name: str) -> torch.Tensor:
    """``boxes`` (a (B,4) tensor, array or nested list of integer pixel coordinates) as an int64 tensor."""
    boxes = as_tensor(boxes, name, "a (B,4) tensor, array or list of (x0, y0, x1, y1) boxes", lists=True)
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (B,4) (one (x0, y0, x1, y1) box per row), got {tuple(boxes.shape)}")
    if boxes.dtype not in INT_DTYPES:
        raise TypeError(f"{name} must hold integer pixel coordinates, got dtype {boxes.dtype}")
    return boxes.long()


@dataclass
class Localization:
    """Result of `localization`: per image ``boxes`` (B,4), ``iou`` (B,), ``correct`` (B,) bool, and
    ``accuracy`` = mean of ``correct`` (the share of images localized at IoU >= ``iou_threshold``).

    Lesson: ``lessons/02_cam.ipynb``.
    """

    boxes: torch.Tensor
    iou: torch.Tensor
    correct: torch.Tensor
    accuracy: float


def localization(maps, boxes, fraction: float = 0.20, iou_threshold: float = 0.5) -> Localization:
    """Weakly-supervised localization accuracy (Zhou et al., CVPR 2016; Selvaraju et al., ICCV 2017).

    For each map: the predicted box ``b̂`` from `threshold_boxes` (``fraction`` of the max, largest
    connected component), ``IoU(b̂, b)`` with the ground-truth box ``b``, and a hit when
    ``IoU >= iou_threshold`` (0.5, the ILSVRC criterion). ``accuracy = 1/N sum_n [IoU_n >= 0.5]``.
    (The papers' "top-1 localization" also requires the predicted class to be right: combine
    ``correct`` with your own class check.)

    Lesson: ``lessons/02_cam.ipynb``.
    """
    maps = as_maps(maps)
    gt = as_boxes(boxes, tuple(maps.shape))
    iou_threshold = as_number(iou_threshold, "iou_threshold", 0, 1)
    pred = threshold_boxes(maps, fraction)
    iou = box_iou(pred, gt)
    correct = iou >= iou_threshold
    return Localization(pred, iou, correct, float(correct.double().mean()))


def energy_pointing(maps, region) -> torch.Tensor:
    """Energy-based pointing (Wang et al., Score-CAM, CVPRW 2020): the share of the map's positive mass
    inside the object, ``(B,)`` float64.

    ``E = sum_{(i,j) in region} max(m_ij, 0) / sum_{(i,j)} max(m_ij, 0)``; 0 for a map with no positive
    mass. ``region``: ground-truth boxes ``(B,4)`` or masks ``(B,H,W)`` bool.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    maps = as_maps(maps).double()
    if isinstance(region, (torch.Tensor, np.ndarray)) and region.ndim == 2:
        inside = boxes_to_masks(as_boxes(region, tuple(maps.shape), "region"), *maps.shape[1:])
    else:
        inside = as_masks(region, tuple(maps.shape), "region")
    pos = maps.clamp(min=0)
    total = pos.flatten(1).sum(1)
    within = (pos * inside.to(maps.device)).flatten(1).sum(1)
    return torch.where(total > 0, within / torch.where(total > 0, total, 1), torch.zeros((), dtype=maps.dtype)).cpu()


def default_tolerance(size: int) -> float:
    """Zhang et al.'s 15-pixel tolerance at 224 px, scaled to an image of ``size`` pixels: ``15 size / 224``.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    return 15.0 * as_count(size, "size") / 224.0


@dataclass
class Pointing:
    """Result of `pointing_game`: ``points`` (B,2) the (row, col) of each map's maximum (-1, -1 for a
    constant map), ``distance`` (B,) from it to the nearest mask pixel, ``hits`` (B,) bool, ``per_class``
    {class: accuracy}, ``accuracy`` (the mean over classes, the paper's number) and ``overall`` (the mean
    over images).

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """

    points: torch.Tensor
    distance: torch.Tensor
    hits: torch.Tensor
    per_class: dict
    accuracy: float
    overall: float


def _labels(labels, B: int) -> torch.Tensor:
    """``labels`` (a sequence, array or tensor of B integer classes) as an int64 tensor."""
    labels = as_tensor(labels, "labels", f"one class per map ({B},)", lists=True).cpu()
    if labels.shape != (B,):
        raise ValueError(f"labels must have one class per map, shape ({B},), got {tuple(labels.shape)}")
    if labels.dtype not in INT_DTYPES:
        raise TypeError(f"labels must be integer classes, got dtype {labels.dtype}")
    return labels.long()


def pointing_game(maps, masks, labels=None, tolerance: float | None = None) -> Pointing:
    """The pointing game (Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016).

    The map's maximum ``p = argmax_ij m_ij`` (the first in raster order when tied) is a hit when it lies
    within ``tolerance`` pixels of the object: ``min_{q in mask} ||p - q||_2 <= tolerance`` (distances
    between pixel centres). Default tolerance: 15 px at 224 px, scaled to the map's height
    (`default_tolerance`: 4.29 px at 64). A constant map points nowhere: a miss. Accuracy is computed
    per class, ``Acc_c = #hits_c / (#hits_c + #misses_c)``, then averaged over the classes present in
    ``labels`` (B,) (all images one class when None).

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    maps = as_maps(maps)
    B, H, W = maps.shape
    masks = as_masks(masks, (B, H, W)).cpu()
    if tolerance is None:
        tolerance = default_tolerance(H)
    tolerance = as_number(tolerance, "tolerance", 0.0, float(np.hypot(H, W)))
    labels = torch.zeros(B, dtype=torch.long) if labels is None else _labels(labels, B)
    if not masks.flatten(1).any(1).all():
        raise ValueError("masks: every mask must contain at least one pixel (an object to point at)")

    flat = maps.flatten(1).cpu()
    idx = flat.argmax(1)
    constant = flat.max(1).values == flat.min(1).values
    row, col = idx // W, idx % W
    ys = torch.arange(H, dtype=torch.float64)[None, :, None]
    xs = torch.arange(W, dtype=torch.float64)[None, None, :]
    d2 = (ys - row[:, None, None]) ** 2 + (xs - col[:, None, None]) ** 2       # (B,H,W)
    distance = torch.where(masks, d2, torch.inf).flatten(1).min(1).values.sqrt()
    hits = (distance <= tolerance + 1e-9) & ~constant
    points = torch.stack([torch.where(constant, -1, row), torch.where(constant, -1, col)], 1)
    per_class = {int(c): float(hits[labels == c].double().mean()) for c in torch.unique(labels)}
    return Pointing(points, torch.where(constant, torch.inf, distance), hits, per_class,
                    float(np.mean(list(per_class.values()))), float(hits.double().mean()))
