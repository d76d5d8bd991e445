"""Offline data: the seeded shapes generator (exact boxes and masks) and public-domain photographs."""

from . import photos, shapes
