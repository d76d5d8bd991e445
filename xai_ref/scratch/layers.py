"""Layers of a convolutional network in NumPy, each with its forward and its backward side by side.

Every layer works on a batch, channels first (NCHW), like PyTorch:

    out = layer.forward(x)      # computes the output and caches what backward needs
    dx = layer.backward(dout)   # dout = dL/d(out)  ->  dx = dL/dx; stores dW, db where the layer has them

Symbols: N batch, C input channels, H x W input size, F filters (output channels), kh x kw kernel,
Ho x Wo output size. Arrays keep the dtype they are given (float64 for gradient checks, float32 works too).
"""
import numpy as np

from ..checks import as_pair, as_rule



def _output_size(H, W, kernel, stride):
    """Number of window positions: Ho = (H - kh) // sh + 1, Wo = (W - kw) // sw + 1."""
    return (H - kernel[0]) // stride[0] + 1, (W - kernel[1]) // stride[1] + 1


def window_index(H, W, kernel, stride):
    """Row and column of every pixel under every sliding window of an H x W image.

    Returns rows (Ho, 1, kh, 1) and cols (1, Wo, 1, kw); broadcast together they give, for window (p, q)
    and kernel offset (i, j), the input pixel (rows[p, 0, i, 0], cols[0, q, 0, j]) = (sh*p + i, sw*q + j).
    So `x[:, :, rows, cols]` has shape (N, C, Ho, Wo, kh, kw): every window, without a Python loop.

    Lesson: ``lessons/01_gap_nin.ipynb``.
    """
    (kh, kw), (sh, sw) = kernel, stride
    Ho, Wo = _output_size(H, W, kernel, stride)
    rows = sh * np.arange(Ho)[:, None, None, None] + np.arange(kh)[None, None, :, None]
    cols = sw * np.arange(Wo)[None, :, None, None] + np.arange(kw)[None, None, None, :]
    return rows, cols


def _pad(x, padding, value=0.0):
    """Pad the last two axes of (N, C, H, W) by (ph, pw) on both sides -> (N, C, H+2ph, W+2pw)."""
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _check_input(layer, x, C=None):
    """Raise a ValueError unless x is (N, C, H, W) (with C channels, when C is given)."""
    if x.ndim != 4 or (C is not None and x.shape[1] != C):
        want = f"(N, {C}, H, W)" if C is not None else "(N, C, H, W)"
        raise ValueError(f"{layer} expects input of shape {want}, got shape {x.shape}")


def im2col(x, kernel, stride=1, padding=0):
    """Unroll every window of x into a row of a matrix, so a convolution becomes one matrix product.

    x: (N, C, H, W) -> cols: (N*Ho*Wo, C*kh*kw); row (n, p, q) holds window (p, q) of image n, ordered
    like a filter W[f].ravel() (channel, then kernel row, then kernel column).

    Lesson: ``lessons/01_gap_nin.ipynb``.
    """
    kernel, stride, padding = as_pair(kernel, "kernel"), as_pair(stride, "stride"), as_pair(padding, "padding", 0)
    xp = _pad(x, padding)
    # every kh x kw window as a view (no copy), every stride-th one kept: (N, C, Ho, Wo, kh, kw)
    windows = np.lib.stride_tricks.sliding_window_view(xp, kernel, axis=(2, 3))[:, :, ::stride[0], ::stride[1]]
    N, C, Ho, Wo, kh, kw = windows.shape
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, C * kh * kw)     # the one copy


def col2im(dcols, x_shape, kernel, stride=1, padding=0):
    """The transpose of im2col: add every row of dcols back onto the pixels its window came from.

    dcols: (N*Ho*Wo, C*kh*kw) -> dx: x_shape = (N, C, H, W). A pixel covered by several windows receives
    the sum of their entries: for each kernel offset (i, j), the entries of all windows land on the
    pixels (sh*p + i, sw*q + j), a strided slice, and are added there.

    Lesson: ``lessons/01_gap_nin.ipynb``.
    """
    kernel, stride, padding = as_pair(kernel, "kernel"), as_pair(stride, "stride"), as_pair(padding, "padding", 0)
    N, C, H, W = x_shape
    (ph, pw), (kh, kw), (sh, sw) = padding, kernel, stride
    Ho, Wo = _output_size(H + 2 * ph, W + 2 * pw, kernel, stride)
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=dcols.dtype)
    d = dcols.reshape(N, Ho, Wo, C, kh, kw).transpose(0, 3, 1, 2, 4, 5)   # (N, C, Ho, Wo, kh, kw)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + sh * Ho:sh, j:j + sw * Wo:sw] += d[..., i, j]
    return dxp[:, :, ph:ph + H, pw:pw + W]


class Conv2d:
    """2-D convolution (cross-correlation, as in every deep-learning library), via im2col.

        out[n, f, p, q] = b[f] + sum_{c,i,j} W[f, c, i, j] * xpad[n, c, sh*p + i, sw*q + j]

    W: (F, C, kh, kw), b: (F,) or None; stride and padding: int or (h, w), zero padding on both sides.
    x: (N, C, H, W) -> out: (N, F, Ho, Wo), Ho = (H + 2ph - kh) // sh + 1 (Wo likewise).

    With X = im2col(x) (N*Ho*Wo, C*kh*kw) and Wm = W.reshape(F, -1), the layer is out = X Wm^T + b, so
        dW = dout^T X,   db = sum of dout over rows,   dX = dout Wm,   dx = col2im(dX).
    backward returns dx; dW and db are computed when first read (an explanation needs only dx), from the
    dout and the X of that backward pass (a later forward pass does not change them).

    Lesson: ``lessons/01_gap_nin.ipynb``.
    """

    def __init__(self, W, b=None, stride=1, padding=0):
        self.W = np.asarray(W)
        self.b = None if b is None else np.asarray(b)
        self.stride, self.padding = as_pair(stride, "stride"), as_pair(padding, "padding", 0)
        self.kernel = self.W.shape[2:]
        self.x_shape = self.cols = None    # set by forward
        self.d = self.d_cols = None        # set by backward: dout as rows, and the X it belongs to

    def forward(self, x):
        """x: (N, C, H, W) -> out: (N, F, Ho, Wo)."""
        F, C = self.W.shape[:2]
        _check_input("Conv2d", x, C)
        (ph, pw), (kh, kw) = self.padding, self.kernel
        if x.shape[2] + 2 * ph < kh or x.shape[3] + 2 * pw < kw:
            raise ValueError(f"Conv2d kernel {self.kernel} is larger than the padded input {x.shape}")
        self.x_shape = x.shape
        self.cols = im2col(x, self.kernel, self.stride, self.padding)    # (N*Ho*Wo, C*kh*kw)
        out = self.cols @ self.W.reshape(F, -1).T                        # (N*Ho*Wo, F)
        if self.b is not None:
            out = out + self.b
        N, _, H, W = x.shape
        Ho, Wo = _output_size(H + 2 * ph, W + 2 * pw, self.kernel, self.stride)
        return out.reshape(N, Ho, Wo, F).transpose(0, 3, 1, 2)

    def backward(self, dout):
        """dout: (N, F, Ho, Wo) -> dx: (N, C, H, W); stores dW (F, C, kh, kw) and db (F,) (or None)."""
        if self.cols is None:
            raise RuntimeError("Conv2d.backward needs a forward pass first")
        F = self.W.shape[0]
        self.d, self.d_cols = dout.transpose(0, 2, 3, 1).reshape(-1, F), self.cols   # (N*Ho*Wo, F), its X
        return col2im(self.d @ self.W.reshape(F, -1), self.x_shape, self.kernel, self.stride, self.padding)

    @property
    def dW(self):
        """dW = dout^T X, (F, C, kh, kw), for the last backward pass."""
        if self.d is None:
            raise RuntimeError("Conv2d.dW is computed by a backward pass; call backward first")
        return (self.d.T @ self.d_cols).reshape(self.W.shape)

    @property
    def db(self):
        """db = sum of dout over rows, (F,) (None without a bias), for the last backward pass."""
        if self.d is None:
            raise RuntimeError("Conv2d.db is computed by a backward pass; call backward first")
        return None if self.b is None else self.d.sum(axis=0)

    def __repr__(self):
        F, C = self.W.shape[:2]
        return (f"Conv2d({C}, {F}, kernel={tuple(self.kernel)}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.b is not None})")


class ReLU:
    """Rectified linear unit, optionally capped: out = min(max(x, 0), upper) (upper=6 gives ReLU6).

    x: any shape -> out: same shape. Three ways to pass a signal R = dout down through it:
        "backprop"  (the gradient):                      dx = R * [0 < x < upper]
        "deconvnet" (Zeiler & Fergus 2014):              dx = max(R, 0)           (x is ignored)
        "guided"    (Springenberg et al. 2015):          dx = max(R, 0) * [0 < x < upper]
    At exactly x == 0 (and x == upper) the gradient is taken as 0, as in PyTorch.

    Lesson: ``lessons/03_deconvnet_guided_backprop.ipynb``.
    """

    def __init__(self, upper=None):
        self.upper = upper

    def forward(self, x):
        """x: any shape -> max(x, 0), capped at `upper` if set."""
        self.x = x
        out = np.maximum(x, 0)
        return out if self.upper is None else np.minimum(out, self.upper)

    def backward(self, dout, rule="backprop"):
        """dout: shape of x -> dx: shape of x, by `rule` (one of RULES)."""
        as_rule(rule)
        if rule == "deconvnet":
            return np.maximum(dout, 0)
        mask = self.x > 0
        if self.upper is not None:
            mask &= self.x < self.upper
        signal = np.maximum(dout, 0) if rule == "guided" else dout
        return signal * mask

    def __repr__(self):
        return "ReLU()" if self.upper is None else f"ReLU(upper={self.upper})"


class MaxPool2d:
    """Max pooling: out[n, c, p, q] = max over the window (p, q) of x[n, c] (padded with -inf).

    x: (N, C, H, W) -> out: (N, C, Ho, Wo), Ho = (H + 2ph - kh) // sh + 1; stride defaults to the kernel.
    forward records the *switches*: for each output element, where its maximum came from, as the flat
    index row * W + col into its H x W input plane (the same convention as torch's return_indices=True).
    Ties go to the first maximum in row-major window order, like torch.
    backward routes each dout element to its switch alone; where windows overlap, a pixel that is the
    maximum of several windows receives the sum. (Deconvnet "unpooling" is this same routing.)

    Lesson: ``lessons/03_deconvnet_guided_backprop.ipynb``.
    """

    def __init__(self, kernel, stride=None, padding=0):
        self.kernel = as_pair(kernel, "kernel")
        self.stride = self.kernel if stride is None else as_pair(stride, "stride")
        self.padding = as_pair(padding, "padding", 0)

    def forward(self, x):
        """x: (N, C, H, W) -> out: (N, C, Ho, Wo); sets self.switches (N, C, Ho, Wo) int64."""
        _check_input("MaxPool2d", x)
        N, C, H, W = x.shape
        (ph, pw), (kh, kw) = self.padding, self.kernel
        xp = _pad(x, self.padding, value=-np.inf)
        rows, cols = window_index(H + 2 * ph, W + 2 * pw, self.kernel, self.stride)
        windows = xp[:, :, rows, cols]                                   # (N, C, Ho, Wo, kh, kw)
        windows = windows.reshape(windows.shape[:4] + (kh * kw,))
        k = windows.argmax(axis=-1)                                      # first maximum in each window
        row = rows[:, 0, 0, 0][:, None] + k // kw - ph                   # (N, C, Ho, Wo), unpadded
        col = cols[0, :, 0, 0] + k % kw - pw
        self.x_shape, self.switches = x.shape, row * W + col
        return np.take_along_axis(windows, k[..., None], axis=-1)[..., 0]

    def backward(self, dout):
        """dout: (N, C, Ho, Wo) -> dx: (N, C, H, W), nonzero only at the switches."""
        N, C, H, W = self.x_shape
        # flat index of each switch in dx; np.bincount adds up the entries of windows that share one
        n, c = np.arange(N)[:, None, None, None], np.arange(C)[None, :, None, None]
        index = ((n * C + c) * (H * W) + self.switches).ravel()
        dx = np.bincount(index, weights=dout.ravel(), minlength=N * C * H * W)
        return dx.astype(dout.dtype, copy=False).reshape(self.x_shape)

    def __repr__(self):
        return f"MaxPool2d(kernel={self.kernel}, stride={self.stride}, padding={self.padding})"


class GlobalAvgPool:
    """Global average pooling (Lin et al. 2014): F_k = (1/Z) sum_ij A^k_ij, Z = H * W.

    A: (N, K, H, W) -> F: (N, K), or (N, K, 1, 1) with keepdims=True (like nn.AdaptiveAvgPool2d(1)).
    backward spreads each dF_k evenly: dA^k_ij = dF_k / Z.

    Lesson: ``lessons/01_gap_nin.ipynb``.
    """

    def __init__(self, keepdims=False):
        self.keepdims = keepdims

    def forward(self, A):
        """A: (N, K, H, W) -> F: (N, K) or (N, K, 1, 1)."""
        _check_input("GlobalAvgPool", A)
        self.A_shape = A.shape
        return A.mean(axis=(2, 3), keepdims=self.keepdims)

    def backward(self, dF):
        """dF: (N, K) or (N, K, 1, 1) -> dA: (N, K, H, W)."""
        N, K, H, W = self.A_shape
        return np.broadcast_to(dF.reshape(N, K, 1, 1) / (H * W), self.A_shape).copy()

    def __repr__(self):
        return f"GlobalAvgPool(keepdims={self.keepdims})"


class Flatten:
    """x: (N, d1, d2, ...) -> (N, d1*d2*...); backward reshapes dout back to x's shape.

    Lesson: ``lessons/01_gap_nin.ipynb``.
    """

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self.x_shape)

    def __repr__(self):
        return "Flatten()"


class Identity:
    """out = x, dx = dout. Stands in for layers that do nothing at inference, such as Dropout.

    Lesson: ``lessons/01_gap_nin.ipynb``.
    """

    def forward(self, x):
        return x

    def backward(self, dout):
        return dout

    def __repr__(self):
        return "Identity()"


class Linear:
    """Fully connected layer: s = x W^T + b.

    W: (out, in) (as in torch), b: (out,) or None. x: (N, in) -> s: (N, out).
    dx = dout W,  dW = dout^T x,  db = sum over the batch of dout.

    Lesson: ``lessons/01_gap_nin.ipynb``.
    """

    def __init__(self, W, b=None):
        self.W = np.asarray(W)
        self.b = None if b is None else np.asarray(b)

    def forward(self, x):
        """x: (N, in) -> (N, out)."""
        if x.ndim != 2 or x.shape[1] != self.W.shape[1]:
            raise ValueError(f"Linear expects input of shape (N, {self.W.shape[1]}), got shape {x.shape}")
        self.x = x
        s = x @ self.W.T
        return s if self.b is None else s + self.b

    def backward(self, dout):
        """dout: (N, out) -> dx: (N, in); stores dW (out, in) and db (out,) (None without bias)."""
        self.dW = dout.T @ self.x
        self.db = None if self.b is None else dout.sum(axis=0)
        return dout @ self.W

    def __repr__(self):
        return f"Linear({self.W.shape[1]}, {self.W.shape[0]}, bias={self.b is not None})"


def softmax(s, axis=-1):
    """p_c = exp(s_c) / sum_k exp(s_k), computed as exp(s_c - max s) / ... so large scores cannot overflow.

    s: (N, classes) -> p: (N, classes), each row summing to 1.

    Lesson: ``lessons/01_gap_nin.ipynb``.
    """
    e = np.exp(s - s.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(s, axis=-1):
    """log p_c = s_c - log sum_k exp(s_k), computed stably (shift by max s). s: (N, classes) -> same shape.

    Lesson: ``lessons/01_gap_nin.ipynb``.
    """
    shifted = s - s.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
