"""The networks and images of the exercises: a small random network, and one whose weights are set by
hand with scenes to explain, so we know what it looks at.

>>> net = colour_net()                          # scores (N, 3): red, green, blue
>>> x, labels, masks = colour_scenes(4, seed=0)
"""

from __future__ import annotations

import numpy as np

from ..scratch import Conv2d, Flatten, GlobalAvgPool, Linear, MaxPool2d, ReLU, Sequential


def small_net(seed: int = 0, in_channels: int = 3, size: int = 8, n_classes: int = 5,
              gap: bool = False) -> Sequential:
    """A small random scratch network (float64) for checks and exercises.

    conv3x3(in->4) ReLU maxpool2 conv3x3(4->6) ReLU, then either flatten + linear (``gap=False``) or
    global average pooling + linear (``gap=True``, the CAM architecture). Layer names: "conv1", "relu1",
    "pool1", "conv2", "relu2" (the last feature maps A), then "flatten" "fc" or "gap" "flatten" "fc".
    """
    rng = np.random.default_rng(seed)

    def he(*shape):
        fan_in = int(np.prod(shape[1:]))
        return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)

    layers = [Conv2d(he(4, in_channels, 3, 3), 0.1 * rng.standard_normal(4), padding=1), ReLU(), MaxPool2d(2),
              Conv2d(he(6, 4, 3, 3), 0.1 * rng.standard_normal(6), padding=1), ReLU()]
    names = ["conv1", "relu1", "pool1", "conv2", "relu2"]
    h = size // 2
    if gap:
        layers += [GlobalAvgPool(), Flatten(), Linear(he(n_classes, 6), 0.1 * rng.standard_normal(n_classes))]
        names += ["gap", "flatten", "fc"]
    else:
        layers += [Flatten(), Linear(he(n_classes, 6 * h * h), 0.1 * rng.standard_normal(n_classes))]
        names += ["flatten", "fc"]
    return Sequential(layers, names)


#: the classes of colour_net, in order
COLOURS = ("red", "green", "blue")


def colour_scenes(n: int = 1, seed: int = 0, size: int = 32):
    """``n`` images with two objects of different colours: a square in the left half, a disc in the right.

    Returns ``x`` (n, 3, size, size) float64 in [0, 1] (a dark noisy background), ``labels`` (n, 2) the
    colour index (into :data:`COLOURS`) of the square and of the disc, and ``masks`` (n, 2, size, size)
    bool, each object's exact pixels. A pure function of ``(n, seed, size)``.
    """
    rng = np.random.default_rng(seed)
    x = np.clip(0.1 + 0.03 * rng.standard_normal((n, 3, size, size)), 0, 1)
    labels = np.zeros((n, 2), dtype=np.int64)
    masks = np.zeros((n, 2, size, size), dtype=bool)
    rr, cc = np.mgrid[0:size, 0:size]
    side, radius = size // 4, size / 6
    palette = np.full((3, 3), 0.1) + 0.85 * np.eye(3)
    for i in range(n):
        labels[i] = rng.permutation(3)[:2]
        r0 = rng.integers(1, size - side - 1)
        c0 = rng.integers(1, size // 2 - side)
        masks[i, 0, r0:r0 + side, c0:c0 + side] = True
        cr = rng.uniform(radius + 1, size - radius - 1)
        cc0 = rng.uniform(size / 2 + radius, size - radius - 1)
        masks[i, 1] = (rr + 0.5 - cr) ** 2 + (cc + 0.5 - cc0) ** 2 <= radius ** 2
        for k in range(2):
            x[i][:, masks[i, k]] = palette[labels[i, k]][:, None]
    return x, labels, masks


def colour_net() -> Sequential:
    """A small GAP network with hand-set weights that scores how much red, green and blue "stuff" an
    image holds (scores (N, 3), in the order of :data:`COLOURS`).

    conv1 (3 -> 3, 3x3): map k = the average over the window of channel k minus half the other two
    (a detector of pure colour k), bias -0.2; relu1; pool1 (2x2 max); conv2 (3 -> 6, 3x3): maps 2k and
    2k+1 of colour k, an average ("blob") and a centre-minus-surround ("edge") filter; relu2 (A, the
    CAM layer); gap; flatten; fc: class k weights its two maps by 10 and 5, the other maps by -2.
    """
    W1 = np.full((3, 3, 3, 3), -0.5 / 9)
    for k in range(3):
        W1[k, k] = 1 / 9
    W2 = np.zeros((6, 3, 3, 3))
    surround = -np.ones((3, 3)) / 8
    surround[1, 1] = 1.0
    for k in range(3):
        W2[2 * k, k] = 1 / 9
        W2[2 * k + 1, k] = surround
    Wfc = np.full((3, 6), -2.0)
    for k in range(3):
        Wfc[k, 2 * k], Wfc[k, 2 * k + 1] = 10.0, 5.0
    layers = [Conv2d(W1, np.full(3, -0.2), padding=1), ReLU(), MaxPool2d(2),
              Conv2d(W2, np.zeros(6), padding=1), ReLU(), GlobalAvgPool(), Flatten(), Linear(Wfc, np.zeros(3))]
    return Sequential(layers, ["conv1", "relu1", "pool1", "conv2", "relu2", "gap", "flatten", "fc"])
