"""Assignment 3 checks: CAM, the three steps of Grad-CAM, bilinear upsampling, and the whole Grad-CAM.

The references of the one-line formulas (cam, grad_cam_alpha, grad_cam_map) are written here; bilinear
upsampling is `xai_ref.scratch.resize` and the whole Grad-CAM is `xai_ref.scratch.grad_cam`. The other
functions build the typical wrong implementations (`Mistake` s) that the checks recognise by name.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..scratch import grad_cam as scratch_grad_cam
from ..scratch import resize
from ..scratch.gradients import target_classes
from .a2_saliency import wrong_gradient
from .nets import small_net
from .runner import MAP_AXES, Mistake, register, run


# --------------------------------------------------------------------------------------------------
# cam
# --------------------------------------------------------------------------------------------------


def _cam_ref(f, W, c):
    """The reference: M[n] = sum_k W[c[n], k] f[n, k]."""
    return np.einsum("nk,nkhw->nhw", W[target_classes(c, len(f), len(W))], f)


def _normalised(M):
    """Mistake: each map min-max normalised to [0, 1]."""
    lo = M.min(axis=(1, 2), keepdims=True)
    hi = M.max(axis=(1, 2), keepdims=True)
    return (M - lo) / np.where(hi > lo, hi - lo, 1)


_CAM_MISTAKES = register("cam", _cam_ref, [
    Mistake("mean instead of sum",
            "CAM is the weighted SUM over the K maps, M_c = sum_k w_k^c f_k; you averaged over k "
            "(K times too small).",
            lambda f, W, c: _cam_ref(f, W, c) / f.shape[1]),
    Mistake("ReLU added",
            "the CAM of Zhou et al. has no ReLU: keep the negative values (it is Grad-CAM that adds one).",
            lambda f, W, c: np.maximum(_cam_ref(f, W, c), 0)),
    Mistake("normalised",
            "return the raw map: normalising to [0, 1] is a display decision, made when plotting.",
            lambda f, W, c: _normalised(_cam_ref(f, W, c))),
    Mistake("weights of the wrong class",
            "use the row of W of each image's own class c[n] (W has shape (classes, K)): w^c = W[c].",
            lambda f, W, c: _cam_ref(f, W, np.zeros(len(f), dtype=int))),
    Mistake("transposed weights",
            "W has shape (classes, K): the weights of class c are the ROW W[c], not the column W[:, c].",
            lambda f, W, c: np.einsum("kn,nkhw->nhw", W[:, c], f) if W.shape[0] == W.shape[1]
            else None),
])


def cam(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(f, W, c) -> M``: the class activation map (Zhou et al. 2016).

    f: (N, K, h, w) the last feature maps; W: (classes, K) the weights of the linear layer after GAP;
    c: (N,) class indices. M: (N, h, w), M[n] = sum_k W[c[n], k] * f[n, k]. Raw: no ReLU, no normalising.
    """
    rng = np.random.default_rng(seed)
    f1, W1 = np.abs(rng.standard_normal((2, 6, 4, 4))), rng.standard_normal((5, 6))
    cases = [("random f (3, 4, 3, 5), W (4, 4), c = [0, 3, 2]",
              (np.abs(rng.standard_normal((3, 4, 3, 5))), rng.standard_normal((4, 4)), np.array([0, 3, 2]))),
             ("random f (2, 6, 4, 4), W (5, 6), c = [4, 1]", (f1, W1, np.array([4, 1])))]
    run("cam", fn, cases, _cam_ref, _CAM_MISTAKES, outputs=("M",), axes=[MAP_AXES],
        arg_names=("f", "W", "c"), verbose=verbose,
        hint="for each image n: M[n] = sum over k of W[c[n], k] * f[n, k] (np.einsum('nk,nkhw->nhw', ...) "
             "does it in one line).")


# --------------------------------------------------------------------------------------------------
# grad_cam_alpha
# --------------------------------------------------------------------------------------------------


def _alpha_ref(dY_dA):
    """The reference: alpha_k = the mean of dY/dA^k over the positions i, j."""
    return dY_dA.mean(axis=(2, 3))


_ALPHA_MISTAKES = register("grad_cam_alpha", _alpha_ref, [
    Mistake("sum instead of mean",
            "did you average over i and j? alpha_k = (1/Z) sum_ij dY/dA^k_ij with Z = h * w: you summed "
            "(Z times too large).",
            lambda g: g.sum(axis=(2, 3))),
    Mistake("abs of the gradient",
            "average the gradient itself, with its sign: negative gradients lower alpha_k.",
            lambda g: np.abs(g).mean(axis=(2, 3))),
    Mistake("ReLU on the gradient",
            "Grad-CAM averages the raw gradient (positive and negative); clamping it first is a different "
            "method.",
            lambda g: np.maximum(g, 0).mean(axis=(2, 3))),
    Mistake("max instead of mean", "alpha_k is the average of the gradient over positions, not its maximum.",
            lambda g: g.max(axis=(2, 3))),
    Mistake("averaged over one spatial axis only",
            "average over both spatial axes i and j (axis=(2, 3)).",
            lambda g: g.mean(axis=2)),
])


def grad_cam_alpha(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(dY_dA) -> alpha``: alpha_k = (1/Z) sum_ij dy^c/dA^k_ij.

    dY_dA: (N, K, h, w) the gradient of the class score at the feature maps; alpha: (N, K).
    """
    rng = np.random.default_rng(seed)
    cases = [("random dY_dA (2, 8, 4, 4)", (rng.standard_normal((2, 8, 4, 4)),)),
             ("non-square random dY_dA (1, 3, 2, 5)", (rng.standard_normal((1, 3, 2, 5)),)),
             ("hand-made: one map with gradient 1 at one of 4 positions",
              (np.array([[[[1.0, 0.0], [0.0, 0.0]], [[0.5, 0.5], [0.5, 0.5]]]]),))]
    run("grad_cam_alpha", fn, cases, _alpha_ref, _ALPHA_MISTAKES, outputs=("alpha",), axes=[("image", "channel")],
        arg_names=("dY_dA",), verbose=verbose,
        hint="alpha has one number per image and channel: the mean of dY_dA over the two spatial axes.")


# --------------------------------------------------------------------------------------------------
# grad_cam_map
# --------------------------------------------------------------------------------------------------


def _weighted(A, alpha):
    """sum_k alpha_k A^k, (N, h, w)."""
    return np.einsum("nk,nkhw->nhw", alpha, A)


def _gc_map_ref(A, alpha):
    """The reference: L = ReLU(sum_k alpha_k A^k)."""
    return np.maximum(_weighted(A, alpha), 0)


_GC_MAP_MISTAKES = register("grad_cam_map", _gc_map_ref, [
    Mistake("forgot the ReLU",
            "Grad-CAM keeps only what increases the score: L = ReLU(sum_k alpha_k A^k). Apply np.maximum(., 0).",
            lambda A, a: _weighted(A, a)),
    Mistake("abs instead of ReLU",
            "L = ReLU(sum_k alpha_k A^k): negative values become 0, they do not flip sign.",
            lambda A, a: np.abs(_weighted(A, a))),
    Mistake("ReLU on alpha instead of on the sum",
            "apply the ReLU once, after the weighted sum: L = ReLU(sum_k alpha_k A^k).",
            lambda A, a: _weighted(A, np.maximum(a, 0))),
    Mistake("mean instead of sum",
            "L is the weighted SUM over the K maps (then the ReLU); you averaged over k.",
            lambda A, a: _gc_map_ref(A, a) / A.shape[1]),
    Mistake("normalised",
            "return the raw map: normalising to [0, 1] is a display decision, made when plotting.",
            lambda A, a: _normalised(_gc_map_ref(A, a))),
])


def grad_cam_map(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(A, alpha) -> L``: L = ReLU(sum_k alpha_k A^k).

    A: (N, K, h, w) feature maps; alpha: (N, K); L: (N, h, w), raw (not normalised).
    """
    rng = np.random.default_rng(seed)
    cases = [("random A (2, 6, 4, 4) >= 0, alpha of both signs",
              (np.abs(rng.standard_normal((2, 6, 4, 4))), rng.standard_normal((2, 6)))),
             ("random A (1, 3, 3, 5), alpha of both signs",
              (np.abs(rng.standard_normal((1, 3, 3, 5))), np.array([[1.0, -2.0, 0.5]])))]
    run("grad_cam_map", fn, cases, _gc_map_ref, _GC_MAP_MISTAKES, outputs=("L",), axes=[MAP_AXES],
        arg_names=("A", "alpha"), verbose=verbose,
        hint="weighted = sum over k of alpha[n, k] * A[n, k]; L = max(weighted, 0).")


# --------------------------------------------------------------------------------------------------
# upsample_bilinear
# --------------------------------------------------------------------------------------------------


def _wrong_bilinear(M, size, source):
    """Bilinear resize of (N, h, w) to size (H, W) reading output pixel i at the input coordinate
    source(i, n_in, n_out), for the mistakes (the reference is scratch's resize). It mixes pixels
    trunc(src) and trunc(src) + 1 (clipped to the image): where src < 0 it extrapolates."""
    def coords(n_in, n_out):
        src = source(np.arange(n_out, dtype=np.float64), n_in, n_out)
        i0 = np.clip(np.trunc(src).astype(np.int64), 0, n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    r0, r1, lr = coords(M.shape[1], int(size[0]))
    c0, c1, lc = coords(M.shape[2], int(size[1]))
    top = M[:, r0][:, :, c0] * (1 - lc) + M[:, r0][:, :, c1] * lc
    bottom = M[:, r1][:, :, c0] * (1 - lc) + M[:, r1][:, :, c1] * lc
    return top * (1 - lr)[:, None] + bottom * lr[:, None]


def _corner_to_corner(i, n_in, n_out):
    """align_corners=True: the corner pixels of input and output coincide."""
    return i * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)


def _no_half_pixel(i, n_in, n_out):
    """Pixel i read at i * n_in / n_out: the half-pixel offset forgotten."""
    return i * (n_in / n_out)


def _unclamped(i, n_in, n_out):
    """Pixel centres mapped to pixel centres, but a negative coordinate not clamped at 0."""
    return (i + 0.5) * (n_in / n_out) - 0.5


def _nearest(M, size):
    """Mistake: nearest-neighbour upsampling."""
    N, h, w = M.shape
    H, W = size
    r = np.minimum((np.arange(H) * h / H).astype(int), h - 1)
    c = np.minimum((np.arange(W) * w / W).astype(int), w - 1)
    return M[:, r][:, :, c]


_UPSAMPLE_MISTAKES = register("upsample_bilinear", resize, [
    Mistake("align_corners=True",
            "use pixel centres (align_corners=False, as PyTorch's default, torch-cam and Captum): "
            "output pixel i samples the input at src = (i + 0.5) * h / H - 0.5; you used i * (h - 1) / (H - 1).",
            lambda M, size: _wrong_bilinear(M, size, _corner_to_corner)),
    Mistake("nearest neighbour",
            "interpolate linearly between the two nearest input pixels (in both directions); you copied the "
            "nearest pixel (that is np.repeat / nearest-neighbour upsampling).",
            _nearest),
    Mistake("no half-pixel offset",
            "map pixel centres to pixel centres: src = (i + 0.5) * h / H - 0.5, not src = i * h / H.",
            lambda M, size: _wrong_bilinear(M, size, _no_half_pixel)),
    Mistake("no clamp at the border",
            "near the border src = (i + 0.5) * h / H - 0.5 is negative: clamp it at 0 (the edge pixel "
            "is repeated, not extrapolated).",
            lambda M, size: _wrong_bilinear(M, size, _unclamped)),
    Mistake("rows and columns swapped",
            "size is (H, W), rows first: the result has shape (N, H, W). You returned (N, W, H).",
            lambda M, size: resize(M, size[::-1])),
])


def upsample_bilinear(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(M, size) -> up``: bilinear upsampling of maps (N, h, w) to size (H, W).

    As ``torch.nn.functional.interpolate(M[:, None], size, mode="bilinear", align_corners=False)``:
    output pixel i reads the input at src = max((i + 0.5) * h / H - 0.5, 0), mixing pixels floor(src)
    and floor(src) + 1 (clipped to h - 1) with weights 1 - (src - floor(src)) and src - floor(src).
    """
    rng = np.random.default_rng(seed)
    cases = [("hand-made (1, 2, 2) -> (4, 4)", (np.array([[[0.0, 1.0], [2.0, 3.0]]]), (4, 4))),
             ("random (2, 3, 5) -> (12, 20), non-integer scale", (rng.standard_normal((2, 3, 5)), (12, 20))),
             ("random (1, 4, 4) -> (4, 4), same size", (rng.standard_normal((1, 4, 4)), (4, 4))),
             ("random (1, 1, 1) -> (3, 5), one pixel", (rng.standard_normal((1, 1, 1)), (3, 5)))]
    run("upsample_bilinear", fn, cases, resize, _UPSAMPLE_MISTAKES, outputs=("up",), axes=[MAP_AXES],
        arg_names=("M", "size"), verbose=verbose,
        hint="work out the hand-made case on paper: (1, 2, 2) -> (4, 4), the first output row should be "
             "[0, 0.25, 0.75, 1].")


# --------------------------------------------------------------------------------------------------
# grad_cam
# --------------------------------------------------------------------------------------------------


def _grad_cam_ref(net, x, c, layer):
    """The reference: scratch's Grad-CAM, (alpha, L, L upsampled)."""
    t = scratch_grad_cam(net, x, c, layer)
    return t.alpha, t.L, t.map


def _wrong_target_grad_cam(net, x, c, layer, top):
    """Mistake: Grad-CAM of a wrong target (see `wrong_gradient`)."""
    alpha = _alpha_ref(wrong_gradient(net, x, c, top, stop=layer))
    L = _gc_map_ref(net.activations[layer], alpha)
    return alpha, L, resize(L, x.shape[2:])


_GRAD_CAM_MISTAKES = register("grad_cam", _grad_cam_ref, [
    Mistake("softmax probability instead of score",
            "Grad-CAM differentiates the raw class score y^c (before the softmax): start the backward pass "
            "from a one-hot vector.",
            lambda net, x, c, layer: _wrong_target_grad_cam(net, x, c, layer, "prob")),
    Mistake("all classes instead of one",
            "backpropagate the score of class c alone: one-hot dscores, not all ones.",
            lambda net, x, c, layer: _wrong_target_grad_cam(net, x, c, layer, "sum")),
    Mistake("the layer below",
            "A is the OUTPUT of `layer` (net.activations[layer]) and dY_dA the signal there "
            "(net.backward(dscores, stop=layer)); you used the layer below it.",
            lambda net, x, c, layer: _grad_cam_ref(net, x, c, net.names[net.names.index(layer) - 1])),
])


def grad_cam(fn: Callable, seed: int = 0, verbose: bool = True) -> None:
    """Check ``fn(net, x, c, layer) -> (alpha, L, up)``: Grad-CAM on a scratch network.

    net: a scratch Sequential; x: (N, C, H, W); c: (N,) classes; layer: the name of the layer whose
    output A (N, K, h, w) is explained. alpha (N, K), L = ReLU(sum_k alpha_k A^k) (N, h, w), and L
    upsampled bilinearly to (N, H, W).
    """
    rng = np.random.default_rng(seed)
    cases = [("random net, x (2, 3, 8, 8), c = [1, 4], layer 'relu2'",
              (small_net(seed), rng.standard_normal((2, 3, 8, 8)), np.array([1, 4]), "relu2")),
             ("random GAP net, x (1, 3, 8, 8), c = [2], layer 'relu2'",
              (small_net(seed + 3, gap=True), rng.standard_normal((1, 3, 8, 8)), np.array([2]), "relu2"))]
    run("grad_cam", fn, cases, _grad_cam_ref, _GRAD_CAM_MISTAKES, outputs=("alpha", "L", "up"),
        axes=[("image", "channel"), MAP_AXES, MAP_AXES], arg_names=("net", "x", "c", "layer"), verbose=verbose,
        hint="scores = net.forward(x); dY_dA = net.backward(one-hot, stop=layer); A = net.activations[layer]; "
             "then your grad_cam_alpha, grad_cam_map and upsample_bilinear.")
