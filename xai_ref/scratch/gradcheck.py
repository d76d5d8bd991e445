"""Checking a backward pass against finite differences."""
import numpy as np


def rel_error(a, b):
    """Relative error between two arrays of the same shape:

        rel_error(a, b) = max_i |a_i - b_i| / max_i (|a_i| + |b_i|)      (0 when both are all zeros)

    CS231n's formula with the maximum over the whole array taken before dividing, so entries that are
    almost zero do not blow it up. In float64, about 1e-7 or less means a backward pass is right.

    Lesson: ``lessons/01_gap_nin.ipynb``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(a) + np.abs(b), initial=0.0)
    return 0.0 if scale == 0 else float(np.max(np.abs(a - b)) / scale)


def numerical_gradient(f, x, df=None, h=1e-6):
    """Central finite differences of L(x) = f(x) (a scalar) or, given df, L(x) = sum(f(x) * df):

        dL/dx_i ~ (L(x + h e_i) - L(x - h e_i)) / (2h)

    x: any shape, changed in place one entry at a time and restored -> dL/dx, the shape of x.

    Lesson: ``lessons/01_gap_nin.ipynb``.
    """
    def L():
        y = f(x)
        return float(np.sum(y * df)) if df is not None else float(y)

    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = L()
        x[i] = old - h
        minus = L()
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


def check_layer_gradient(layer, x, dout=None, h=1e-6, seed=0):
    """Compare layer.backward with finite differences of sum(layer.forward(x) * dout).

    x: a valid input; dout: the upstream signal (random normal if None). Returns a dict of rel_error
    values for "dx", and for "dW", "db" when the layer has those parameters.

    Lesson: ``lessons/01_gap_nin.ipynb``.
    """
    if dout is None:
        dout = np.random.default_rng(seed).standard_normal(layer.forward(x).shape).astype(x.dtype)
    layer.forward(x)
    errors = {"dx": rel_error(layer.backward(dout), numerical_gradient(layer.forward, x, dout, h))}
    for p in ("W", "b"):
        if getattr(layer, p, None) is not None:
            numeric = numerical_gradient(lambda _: layer.forward(x), getattr(layer, p), dout, h)
            layer.forward(x)
            layer.backward(dout)
            errors["d" + p] = rel_error(getattr(layer, "d" + p), numeric)
    return errors
