"""The shapes of `xai_ref.data.shapes` as implicit inequalities in local coordinates ``(u, v)``: a point is
inside when its class's inequality holds (e.g. circle ``u² + v² <= 1``). Every shape lies inside the unit
disc ``u² + v² <= 1``; the generator rotates and scales each pixel centre into these coordinates.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SHAPE_FNS", "rasterize"]


def _polygon(u, v, m):
    """Regular ``m``-gon with circumradius 1: inside iff inside every edge's half-plane."""
    apothem = np.float32(np.cos(np.pi / m))
    inside = None
    for k in range(m):
        theta = (2 * k + 1) * np.pi / m  # direction of the normal of edge k
        half = u * np.float32(np.cos(theta)) + v * np.float32(np.sin(theta)) <= apothem
        inside = half if inside is None else inside & half
    return inside


def _star(u, v, points=5, inner=0.45):
    """Star with outer radius 1 and inner radius ``inner``: fold the angle into one half-spike."""
    alpha = 2 * np.pi / points
    phi = np.abs(np.mod(np.arctan2(v, u) + np.float32(alpha / 2), np.float32(alpha)) - np.float32(alpha / 2))
    rho = np.hypot(u, v)
    pu, pv = rho * np.cos(phi), rho * np.sin(phi)
    # The edge from the outer vertex O = (1, 0) to the inner vertex I at angle alpha / 2; the origin
    # lies on the side where cross(I - O, p - O) >= 0.
    du, dv = inner * np.cos(alpha / 2) - 1.0, inner * np.sin(alpha / 2)
    return np.float32(du) * pv - np.float32(dv) * (pu - 1) >= 0


def _circle(u, v):
    return u * u + v * v <= 1


def _square(u, v):
    return _polygon(u, v, 4)


def _triangle(u, v):
    return _polygon(u, v, 3)


def _plus(u, v):
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95))


def _ring(u, v):
    rr = u * u + v * v
    return (rr <= 1) & (rr >= 0.55**2)


def _crescent(u, v):
    return (u * u + v * v <= 1) & ((u - 0.5) ** 2 + v * v > 0.8**2)


def _half_disc(u, v):
    w = v + np.float32(0.4)  # shift so the half disc is centred in its disc
    return (u * u + w * w <= 0.84) & (w >= 0)


def _ellipse(u, v):
    return u * u + (2 * v) ** 2 <= 1


def _hexagon(u, v):
    return _polygon(u, v, 6)


SHAPE_FNS = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "plus": _plus,
    "star": _star,
    "ring": _ring,
    "crescent": _crescent,
    "half_disc": _half_disc,
    "ellipse": _ellipse,
    "hexagon": _hexagon,
}


def rasterize(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of shape ``name`` at local coordinates ``(u, v)`` (any matching shapes).

    Local coordinates are the pixel centre minus the object centre, rotated by minus the object's angle
    and divided by its radius; every shape lies inside ``u² + v² <= 1``.
    """
    if name not in SHAPE_FNS:
        raise ValueError(f"unknown shape {name!r}; valid shapes: {tuple(SHAPE_FNS)}")
    return SHAPE_FNS[name](np.asarray(u, np.float32), np.asarray(v, np.float32))
