"""Photos from scikit-image and the EfficientNet preprocessing (resize 256, crop 224, (p-127)/128)."""

import numpy as np
import pytest
import torch

from xai_ref.data import photos

SHAPES = {"chelsea": (300, 451, 3), "coffee": (400, 600, 3), "rocket": (427, 640, 3),
          "astronaut": (512, 512, 3), "cat_coffee": (512, 512, 3)}


@pytest.mark.parametrize("name", photos.NAMES)
def test_load(name):
    img = photos.load(name)
    assert img.dtype == np.uint8 and img.shape == SHAPES[name]


def test_names():
    assert set(photos.NAMES) == set(SHAPES)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="chelsea.*coffee.*rocket.*astronaut.*cat_coffee"):
        photos.load("kitten")
    with pytest.raises(TypeError):
        photos.load(3)


def test_cat_coffee_composite():
    img = photos.cat_coffee()
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    assert (img[:144] == 127).all() and (img[368:] == 127).all()
    assert (img[:, :32] == 127).all() and (img[:, 480:] == 127).all()
    # the squares fill the centre crop's columns, rows 56..168 (one row of antialiasing blur)
    crop = photos.crop(img)
    assert (crop[:55] == 127).all() and (crop[169:] == 127).all()
    assert crop[56:168].std() > 20 and (crop[56:168, :2] != 127).any() and (crop[56:168, -2:] != 127).any()
    assert np.array_equal(photos.load("cat_coffee"), img)


def test_preprocess_shapes_and_range():
    x = photos.preprocess(photos.load("chelsea"))
    assert x.shape == (1, 3, 224, 224) and x.dtype == torch.float32
    lo, hi = photos.PIXEL_RANGE
    assert (lo, hi) == (-127 / 128, 1.0)
    assert x.min() >= lo and x.max() <= hi
    batch = photos.preprocess([photos.load(n) for n in ("chelsea", "rocket", "astronaut")])
    assert batch.shape == (3, 3, 224, 224)
    assert torch.equal(batch[:1], x)
    stacked = photos.preprocess(np.stack([photos.load("astronaut")] * 2))  # (B, H, W, 3) array
    assert stacked.shape == (2, 3, 224, 224)
    grey = np.full((300, 400, 3), 127, np.uint8)
    assert torch.equal(photos.preprocess(grey), torch.zeros(1, 3, 224, 224))


def test_recipe_resize_then_centre_crop():
    # shorter side already 256: no resampling, the crop is a plain centre slice
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (256, 300, 3), dtype=np.uint8)
    assert np.array_equal(photos.crop(img), img[16:240, 38:262])
    tall = rng.integers(0, 256, (300, 256, 3), dtype=np.uint8)
    assert np.array_equal(photos.crop(tall), tall[38:262, 16:240])
    # channel order is RGB, NCHW
    x = photos.preprocess(img)
    assert torch.equal(x[0, 0], (torch.from_numpy(img[16:240, 38:262, 0]).float() - 127) / 128)
    # a larger image is shrunk so that the shorter side is 256
    assert photos.crop(photos.load("rocket")).shape == (224, 224, 3)


@pytest.mark.parametrize("name", photos.NAMES)
def test_deprocess_round_trips_the_crop(name):
    img = photos.load(name)
    back = photos.deprocess(photos.preprocess(img))
    assert back.shape == (1, 224, 224, 3) and back.dtype == np.uint8
    diff = np.abs(back[0].astype(int) - photos.crop(img).astype(int))
    assert diff.max() <= 1


def test_deprocess_clips_and_accepts_single():
    x = torch.full((3, 4, 5), 10.0)
    out = photos.deprocess(x)
    assert out.shape == (1, 4, 5, 3) and (out == 255).all()
    assert (photos.deprocess(-x) == 0).all()


def test_crop_shapes():
    assert photos.crop(photos.load("coffee")).shape == (224, 224, 3)
    imgs = [photos.load("coffee"), photos.load("astronaut")]
    out = photos.crop(imgs)
    assert out.shape == (2, 224, 224, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("bad, error", [
    (np.zeros((300, 300, 3), np.float32), TypeError),   # not uint8
    (np.zeros((300, 300), np.uint8), ValueError),       # greyscale
    (np.zeros((300, 300, 4), np.uint8), ValueError),    # RGBA
    ([], ValueError),
    ([np.zeros((300, 300, 3), np.uint8), "x"], TypeError),
    ("chelsea", TypeError),
    (torch.zeros(1, 3, 224, 224), TypeError),
])
def test_bad_input(bad, error):
    with pytest.raises(error):
        photos.preprocess(bad)
    with pytest.raises(error):
        photos.crop(bad)


def test_deprocess_bad_input():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        photos.deprocess(torch.zeros(1, 1, 8, 8))
    with pytest.raises(TypeError):
        photos.deprocess(np.zeros((1, 3, 8, 8)))
