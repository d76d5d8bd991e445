"""Real photographs shipped with scikit-image (offline), and the ImageNet preprocessing.

Photos (CC0 / public domain, from ``skimage.data``), uint8 arrays (H, W, 3), RGB:

- ``chelsea``    (300, 451, 3)  Chelsea the cat (a tabby)
- ``coffee``     (400, 600, 3)  a cup of espresso on a saucer
- ``rocket``     (427, 640, 3)  a rocket on the launch pad
- ``astronaut``  (512, 512, 3)  the astronaut Eileen Collins
- ``cat_coffee`` (512, 512, 3)  the cat and the coffee side by side (see :func:`cat_coffee`)

Preprocessing for EfficientNet-Lite0 (``preprocess``):

1. resize so that the shorter side is 256 (longer side: ``round(long * 256 / short)``), with
   PIL's bilinear filter (which antialiases when shrinking), result rounded to uint8;
2. centre crop 224 x 224 (top = ``round((H - 224) / 2)``, left likewise);
3. x = (pixel - 127) / 128 for pixels in 0..255, RGB, NCHW float32.

So preprocessed pixels lie in ``PIXEL_RANGE`` = (-127/128, 1), and mid-grey (127) maps to 0.
``deprocess`` inverts step 3 (for display); ``crop`` returns steps 1-2 as uint8, the picture the
input tensor shows (for overlays).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

__all__ = ["NAMES", "PIXEL_RANGE", "RESIZE", "CROP", "MEAN", "STD",
           "load", "cat_coffee", "crop", "preprocess", "deprocess"]

RESIZE = 256  # shorter side after resizing
CROP = 224    # side of the centre crop (the network input)
MEAN = 127.0  # x = (pixel - MEAN) / STD
STD = 128.0
PIXEL_RANGE = ((0 - MEAN) / STD, (255 - MEAN) / STD)  # (-127/128, 128/128): clamp range for images

_SKIMAGE = ("chelsea", "coffee", "rocket", "astronaut")
NAMES = _SKIMAGE + ("cat_coffee",)


def load(name: str) -> np.ndarray:
    """The photo called ``name`` (one of ``NAMES``) as a uint8 array (H, W, 3), RGB."""
    if not isinstance(name, str):
        raise TypeError(f"photo name must be a string, one of {list(NAMES)}; got {type(name).__name__}")
    if name == "cat_coffee":
        return cat_coffee()
    if name not in _SKIMAGE:
        raise ValueError(f"unknown photo {name!r}; valid names: {', '.join(NAMES)}")
    import skimage.data

    img = getattr(skimage.data, name)()
    return np.ascontiguousarray(img[..., :3], dtype=np.uint8)


def _square(img: np.ndarray) -> np.ndarray:
    """Centre crop to a square (side = the shorter side)."""
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return img[top:top + s, left:left + s]


def _resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a uint8 (H, W, 3) array with PIL bilinear (antialiased when shrinking)."""
    return np.asarray(Image.fromarray(img).resize((width, height), Image.Resampling.BILINEAR))


def cat_coffee() -> np.ndarray:
    """The cat (left) and the coffee (right) in one 512 x 512 uint8 image, for class discrimination.

    Each photo is cropped to a square (the cat: the centre square, 300 x 300; the coffee: the
    340 x 340 square at rows 0..340, columns 110..450, centred on the cup, so the cup is large
    enough to register as 'espresso') and resized to 224 x 224; the two squares sit side by side at
    rows 144..368, columns 32..256 (cat) and 256..480 (coffee), on a mid-grey (127) canvas, which
    ``preprocess`` maps to exactly 0. The squares fill exactly the region kept by
    the centre crop of ``preprocess`` (columns 32..480 of 512), so in the (224 x 224) network
    input the cat covers columns 0..112 and the coffee columns 112..224, rows 56..168.
    """
    canvas = np.full((512, 512, 3), 127, dtype=np.uint8)
    cat = _resize(_square(load("chelsea")), 224, 224)
    coffee = _resize(load("coffee")[0:340, 110:450], 224, 224)
    canvas[144:368, 32:256] = cat
    canvas[144:368, 256:480] = coffee
    return canvas


def _as_list(images) -> list[np.ndarray]:
    """Accept one (H, W, 3) uint8 image, a (B, H, W, 3) uint8 array, or a list of images."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    elif isinstance(images, np.ndarray):
        images = [images]
    elif isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("expected at least one image, got an empty sequence")
        images = list(images)
    else:
        raise TypeError("expected a uint8 numpy array (H, W, 3) or a list of them, "
                        f"got {type(images).__name__}")
    for i, img in enumerate(images):
        if not isinstance(img, np.ndarray):
            raise TypeError(f"image {i}: expected a numpy array, got {type(img).__name__}")
        if img.dtype != np.uint8:
            raise TypeError(f"image {i}: expected dtype uint8 (pixels 0..255), got {img.dtype}; "
                            "convert with skimage.util.img_as_ubyte or (x * 255).round().astype(np.uint8)")
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"image {i}: expected shape (H, W, 3) RGB, got {img.shape}")
        if min(img.shape[:2]) < 1:
            raise ValueError(f"image {i}: empty image of shape {img.shape}")
    return images


def _crop_one(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    if h <= w:
        new_h, new_w = RESIZE, round(w * RESIZE / h)
    else:
        new_h, new_w = round(h * RESIZE / w), RESIZE
    resized = _resize(img, new_h, new_w)
    top, left = round((new_h - CROP) / 2), round((new_w - CROP) / 2)
    return resized[top:top + CROP, left:left + CROP]


def crop(images) -> np.ndarray:
    """The 224 x 224 uint8 picture(s) the network sees: resize shorter side to 256, centre crop 224.

    ``images``: uint8 (H, W, 3), (B, H, W, 3) or a list of (H, W, 3).
    Returns (224, 224, 3) for a single (H, W, 3) image, else (B, 224, 224, 3).
    """
    single = isinstance(images, np.ndarray) and images.ndim == 3
    out = np.stack([_crop_one(img) for img in _as_list(images)])
    return out[0] if single else out


def preprocess(images) -> torch.Tensor:
    """uint8 image(s) -> network input (B, 3, 224, 224) float32: crop, then (pixel - 127) / 128.

    ``images``: uint8 (H, W, 3), (B, H, W, 3) or a list of (H, W, 3) (sizes may differ).
    Always returns a batch, B = 1 for a single image.
    """
    crops = np.stack([_crop_one(img) for img in _as_list(images)])  # (B, 224, 224, 3) uint8
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float()
    return ((x - MEAN) / STD).contiguous()


def deprocess(x: torch.Tensor) -> np.ndarray:
    """Network input (B, 3, H, W) or (3, H, W) -> uint8 (B, H, W, 3) for display.

    Inverts ``(pixel - 127) / 128``; values outside ``PIXEL_RANGE`` (e.g. after gradient ascent)
    are clipped to 0..255. Always returns a batch.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"deprocess expects a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"deprocess expects shape (B, 3, H, W) or (3, H, W), got {tuple(x.shape)}")
    pixels = (x.detach().to("cpu", torch.float32) * STD + MEAN).round().clamp(0, 255)
    return pixels.to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
