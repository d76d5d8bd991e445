"""A convolutional network written from scratch in NumPy: every forward beside its backward.

Read `layers.py` first (one small class per layer), then `network.py` (a Sequential that keeps every
activation and every backward signal, and `from_torch`), then `gradcheck.py` (how we know it is right).
"""
from .gradcheck import check_layer_gradient, numerical_gradient, rel_error
from .layers import (RULES, Conv2d, Flatten, GlobalAvgPool, Identity, Linear, MaxPool2d, ReLU,
                     col2im, im2col, log_softmax, softmax, window_index)
from .network import Sequential, from_torch

__all__ = ["RULES", "Conv2d", "ReLU", "MaxPool2d", "GlobalAvgPool", "Flatten", "Identity", "Linear",
           "softmax", "log_softmax", "im2col", "col2im", "window_index", "Sequential", "from_torch",
           "numerical_gradient", "rel_error", "check_layer_gradient"]
