"""Offline data: the seeded shapes generator (exact boxes, masks and concept masks) and public-domain photographs."""

from . import concepts, photos, shapes
