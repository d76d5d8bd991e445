"""Small replicas of the model families students bring, for the compatibility tests and benchmark.

Each replica copies the *patterns* of a real family that matter to an explanation method (how its
activations are computed, reused modules, in-place operations, its head, the structure of its output),
at a toy size: input ``(B, 3, 32, 32)``, a few channels, ``N_CLASSES = 5`` classes, randomly initialised
with a fixed seed (BatchNorm running statistics randomised too, so that eval-mode BatchNorm is not the
identity), fast on one CPU thread.

``FAMILIES`` maps a family name to a `Family`: call it to build the model (in eval mode, float32); it also
says which layer Grad-CAM uses by default (``layer``), the ``logits`` keyword for a structured output,
the ``reshape`` function for a layer whose output is not ``(B,K,h,w)``, and which twin models exist:

* `relu_twin`: for a replica that computes its ReLUs with functions (``F.relu``, ``torch.relu``,
  ``x.relu_()``, ``F.relu6``), the same network, same weights, with ``nn.ReLU`` / ``nn.ReLU6`` modules;
* `single_output_twin`: for a replica with a structured output, the same network, same weights,
  returning the class scores alone.

>>> fam = FAMILIES["densenet"]
>>> model, x = fam(), example_input()
>>> twin = relu_twin("densenet", model)       # nn.ReLU modules, the same weights
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

import xai_ref as xr

N_CLASSES = 5
INPUT_SHAPE = (3, 32, 32)


def example_input(batch: int = 2, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A seeded batch of random images ``(batch, 3, 32, 32)``."""
    return torch.randn(batch, *INPUT_SHAPE, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def randomize_batchnorm(model: nn.Module, seed: int = 1) -> None:
    """Give every BatchNorm random running statistics and affine parameters (a freshly initialised
    BatchNorm in eval mode is the identity, which would hide what it does to the signal)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.weight.copy_(1 + 0.2 * torch.randn(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))


# --- ResNet --------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: conv-BN-ReLU-conv-BN, add the shortcut, ReLU. Like torchvision it
    has ONE ``nn.ReLU(inplace=True)`` module, called twice."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """torchvision's ResNet-18 pattern: stem conv-BN-ReLU-maxpool, BasicBlocks with a reused in-place
    ReLU and a residual addition, global average pooling and one linear layer (so CAM applies)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(8, 8))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, stride=2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, N_CLASSES)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --- VGG -----------------------------------------------------------------------------------------


class VGG(nn.Module):
    """torchvision's VGG pattern: ``features`` (conv + ``nn.ReLU(inplace=True)`` modules, max-pooling),
    an adaptive average pool to a fixed grid, then flatten and a fully-connected head with dropout (so
    CAM does not apply: there is no global average pooling)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((4, 4))
        self.classifier = nn.Sequential(
            nn.Linear(16 * 4 * 4, 32), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(32, 32), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(32, N_CLASSES),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# --- DenseNet ------------------------------------------------------------------------------------


class DenseLayer(nn.Module):
    """torchvision's _DenseLayer (BN-ReLU-conv1x1-BN-ReLU-conv3x3) whose output is concatenated to its
    input. ``functional=True``: the ReLUs are ``F.relu`` calls (no module a hook could see)."""

    def __init__(self, cin: int, growth: int, functional: bool = True):
        super().__init__()
        self.norm1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, 2 * growth, 1, bias=False)
        self.norm2, self.conv2 = nn.BatchNorm2d(2 * growth), nn.Conv2d(2 * growth, growth, 3, padding=1, bias=False)
        self.functional = functional
        if not functional:
            self.relu1, self.relu2 = nn.ReLU(inplace=True), nn.ReLU(inplace=True)

    def relu(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x, inplace=True) if self.functional else getattr(self, f"relu{i}")(x)

    def forward(self, x):
        out = self.conv1(self.relu(1, self.norm1(x)))
        out = self.conv2(self.relu(2, self.norm2(out)))
        return torch.cat([x, out], 1)


class DenseNet(nn.Module):
    """torchvision's DenseNet pattern: dense blocks that concatenate every layer's output to its input,
    transitions (BN-ReLU-conv1x1-avgpool), a final BatchNorm ``features.norm5`` and then, in ``forward``,
    ``F.relu(features, inplace=True)``, ``F.adaptive_avg_pool2d`` and a linear classifier. torchvision
    uses ``nn.ReLU`` modules inside its dense layers and ``F.relu`` at the end; here every ReLU is a
    function call (``functional=False`` builds the twin with ``nn.ReLU`` modules). With functional
    ReLU and pooling there is no module whose output is the map that is pooled, so CAM cannot read it."""

    def __init__(self, functional: bool = True):
        super().__init__()
        self.functional = functional
        self.features = nn.Sequential(OrderedDict(
            conv0=nn.Conv2d(3, 8, 3, padding=1, bias=False), norm0=nn.BatchNorm2d(8),
            pool0=nn.MaxPool2d(2),
            denseblock1=nn.Sequential(DenseLayer(8, 4, functional), DenseLayer(12, 4, functional)),
            transition1=Transition(16, 8, functional),
            denseblock2=nn.Sequential(DenseLayer(8, 4, functional), DenseLayer(12, 4, functional)),
            norm5=nn.BatchNorm2d(16),
        ))
        if not functional:
            self.relu = nn.ReLU(inplace=True)
        self.classifier = nn.Linear(16, N_CLASSES)

    def forward(self, x):
        features = self.features(x)
        out = F.relu(features, inplace=True) if self.functional else self.relu(features)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class Transition(nn.Module):
    """torchvision's _Transition: BN-ReLU-conv1x1-avgpool(2)."""

    def __init__(self, cin: int, cout: int, functional: bool = True):
        super().__init__()
        self.norm, self.conv, self.pool = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2)
        self.functional = functional
        if not functional:
            self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.norm(x)
        x = F.relu(x) if self.functional else self.relu(x)
        return self.pool(self.conv(x))


# --- MobileNetV2 ---------------------------------------------------------------------------------


def conv_bn_act(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
                act: Callable[[], nn.Module] | None = nn.ReLU6) -> nn.Sequential:
    """torchvision's Conv2dNormActivation: conv (no bias) - BatchNorm - activation module (or none)."""
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(inplace=True) if act in (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU) else act())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """torchvision's MobileNetV2 block: expand 1x1 - depthwise 3x3 - project 1x1 (linear, no activation),
    ReLU6 modules, a residual addition when the shape allows it."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn_act(cin, hidden, 1)] if expand != 1 else []
        layers += [conv_bn_act(hidden, hidden, 3, stride, groups=hidden), conv_bn_act(hidden, cout, 1, act=None)]
        self.conv = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2 pattern: ``nn.ReLU6(inplace=True)`` modules, inverted residuals with
    depthwise convolutions, a last 1x1 conv-BN-ReLU6, then ``F.adaptive_avg_pool2d``, dropout and one
    linear layer (GAP + linear: CAM applies)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_act(3, 8, 3, 1),
            InvertedResidual(8, 8, 1, expand=1),
            InvertedResidual(8, 12, 2, expand=4),
            InvertedResidual(12, 12, 1, expand=4),
            conv_bn_act(12, 24, 1),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(24, N_CLASSES))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


# --- MobileNetV3 ---------------------------------------------------------------------------------


class SqueezeExcitation(nn.Module):
    """torchvision's SqueezeExcitation: pool, 1x1 conv, activation, 1x1 conv, a gate (``scale_activation``)
    that multiplies the input channel by channel. MobileNetV3: ReLU and Hardsigmoid; EfficientNet: SiLU
    and Sigmoid."""

    def __init__(self, channels: int, squeeze: int, activation=nn.ReLU, scale_activation=nn.Hardsigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Conv2d(channels, squeeze, 1), nn.Conv2d(squeeze, channels, 1)
        self.activation, self.scale_activation = activation(), scale_activation()

    def forward(self, x):
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class MobileNetV3Block(nn.Module):
    """torchvision's MobileNetV3 InvertedResidual: expand - depthwise - optional squeeze-excite - project,
    with ReLU or Hardswish (``act``), a residual addition when the shape allows it."""

    def __init__(self, cin: int, hidden: int, cout: int, stride: int, act, se: bool):
        super().__init__()
        layers = [conv_bn_act(cin, hidden, 1, act=act), conv_bn_act(hidden, hidden, 3, stride, groups=hidden, act=act)]
        if se:
            layers.append(SqueezeExcitation(hidden, max(hidden // 4, 4)))
        layers.append(conv_bn_act(hidden, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.use_res_connect else self.block(x)


class MobileNetV3(nn.Module):
    """torchvision's MobileNetV3 pattern: a Hardswish stem, blocks with ReLU (early) or Hardswish (late),
    squeeze-excite gated by Hardsigmoid, a last conv-BN-Hardswish, then pooling and a two-layer head
    (Linear-Hardswish-Dropout-Linear: CAM does not apply). ReLUs mixed with other activations."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_act(3, 8, 3, 1, act=nn.Hardswish),
            MobileNetV3Block(8, 16, 8, 1, nn.ReLU, se=True),
            MobileNetV3Block(8, 24, 12, 2, nn.ReLU, se=False),
            MobileNetV3Block(12, 32, 12, 1, nn.Hardswish, se=True),
            conv_bn_act(12, 32, 1, act=nn.Hardswish),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(32, 32), nn.Hardswish(inplace=True), nn.Dropout(0.2),
                                        nn.Linear(32, N_CLASSES))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# --- EfficientNet --------------------------------------------------------------------------------


class MBConv(nn.Module):
    """torchvision's EfficientNet MBConv: expand 1x1 - depthwise 3x3 - squeeze-excite (SiLU, Sigmoid) -
    project 1x1, SiLU activations, a residual addition when the shape allows it (stochastic depth is
    the identity in eval mode and left out)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.block = nn.Sequential(
            conv_bn_act(cin, hidden, 1, act=nn.SiLU),
            conv_bn_act(hidden, hidden, 3, stride, groups=hidden, act=nn.SiLU),
            SqueezeExcitation(hidden, max(cin // 4, 2), activation=nn.SiLU, scale_activation=nn.Sigmoid),
            conv_bn_act(hidden, cout, 1, act=None),
        )
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.use_res_connect else self.block(x)


class EfficientNet(nn.Module):
    """torchvision's EfficientNet-B0 pattern: SiLU everywhere (no ReLU at all), MBConv blocks with
    squeeze-excite gated by a sigmoid, a 1x1 head conv, then pooling, dropout and one linear layer
    (GAP + linear: CAM applies)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_act(3, 8, 3, 1, act=nn.SiLU),
            MBConv(8, 8, 1, expand=1),
            MBConv(8, 12, 2, expand=4),
            MBConv(12, 12, 1, expand=4),
            conv_bn_act(12, 32, 1, act=nn.SiLU),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(32, N_CLASSES))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# --- ConvNeXt ------------------------------------------------------------------------------------


class Permute(nn.Module):
    """torchvision's ``Permute`` module: ``x.permute(*dims)``."""

    def __init__(self, dims: list[int]):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return torch.permute(x, self.dims)


class LayerNorm2d(nn.LayerNorm):
    """torchvision's LayerNorm2d: LayerNorm over the channels of a (B,C,H,W) map, through two permutes."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class CNBlock(nn.Module):
    """torchvision's ConvNeXt block: depthwise 7x7 conv, then channels-last LayerNorm - Linear (4x) - GELU
    - Linear between two permutes, a learnt per-channel layer scale, and a residual addition."""

    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, 7, padding=3, groups=dim), Permute([0, 2, 3, 1]), nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), Permute([0, 3, 1, 2]),
        )
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), 0.5))

    def forward(self, x):
        return x + self.layer_scale * self.block(x)


class ConvNeXt(nn.Module):
    """torchvision's ConvNeXt-T pattern: a 4x4 stride-4 "patchify" stem with LayerNorm2d, stages of CNBlocks
    (GELU only: no ReLU at all), a LayerNorm2d + 2x2 stride-2 conv between stages, then average pooling,
    LayerNorm2d, flatten and a linear layer (a LayerNorm between GAP and the linear layer: CAM does not
    apply)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 8, 4, stride=4), LayerNorm2d(8, eps=1e-6)),
            nn.Sequential(CNBlock(8)),
            nn.Sequential(LayerNorm2d(8, eps=1e-6), nn.Conv2d(8, 16, 2, stride=2)),
            nn.Sequential(CNBlock(16)),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(LayerNorm2d(16, eps=1e-6), nn.Flatten(1), nn.Linear(16, N_CLASSES))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)))


# --- Inception / GoogLeNet: (logits, aux_logits) -------------------------------------------------

InceptionOutputs = namedtuple("InceptionOutputs", ["logits", "aux_logits"])
InceptionOutputs.__doc__ = "torchvision's InceptionOutputs: the class scores and the auxiliary head's."


class BasicConv2d(nn.Module):
    """torchvision's Inception BasicConv2d: conv - BN - ``F.relu(x, inplace=True)`` (a function call)."""

    def __init__(self, cin: int, cout: int, functional: bool = True, **conv):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(cin, cout, bias=False, **conv), nn.BatchNorm2d(cout, eps=0.001)
        self.functional = functional
        if not functional:
            self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.relu(x, inplace=True) if self.functional else self.relu(x)


class InceptionBlock(nn.Module):
    """An Inception module: 1x1, 3x3 and pool-projection branches, concatenated along the channels."""

    def __init__(self, cin: int, functional: bool = True):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 8, functional, kernel_size=1)
        self.branch3x3 = nn.Sequential(BasicConv2d(cin, 6, functional, kernel_size=1),
                                       BasicConv2d(6, 8, functional, kernel_size=3, padding=1))
        self.branch_pool = BasicConv2d(cin, 4, functional, kernel_size=1)

    def forward(self, x):
        pooled = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), self.branch3x3(x), self.branch_pool(pooled)], 1)


class Inception(nn.Module):
    """torchvision's Inception-v3 / GoogLeNet pattern: BasicConv2d with functional in-place ReLUs,
    Inception blocks concatenating branches, an auxiliary classifier on an intermediate map, and the
    output ``InceptionOutputs(logits, aux_logits)`` (torchvision returns it in training mode; here
    always). ``aux=False`` builds the single-output twin (the logits alone); ``functional=False`` the
    twin with ``nn.ReLU`` modules."""

    def __init__(self, aux: bool = True, functional: bool = True):
        super().__init__()
        self.aux, self.functional = aux, functional
        self.Conv2d_1a = BasicConv2d(3, 8, functional, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(2)
        self.Mixed_5b = InceptionBlock(8, functional)      # 20 channels out
        self.maxpool2 = nn.MaxPool2d(2)
        self.Mixed_6a = InceptionBlock(20, functional)
        self.AuxLogits = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(1), nn.Linear(20 * 4, N_CLASSES))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(20, N_CLASSES)

    def forward(self, x):
        x = self.maxpool2(self.Mixed_5b(self.maxpool1(self.Conv2d_1a(x))))
        aux = self.AuxLogits(x)
        logits = self.fc(torch.flatten(self.avgpool(self.Mixed_6a(x)), 1))
        return InceptionOutputs(logits, aux) if self.aux else logits


# --- a dict output -------------------------------------------------------------------------------


class DictOutputNet(nn.Module):
    """A dict output, as torchvision's segmentation models return (``OrderedDict(out=..., aux=...)``) and
    many multi-task models do: ``{"out": class scores, "aux": an auxiliary head's scores}``. Its ReLUs
    are written in three functional styles: ``torch.relu``, ``x.relu_()`` and ``F.relu6``.
    ``dict_output=False`` builds the single-output twin; ``functional=False`` the twin with
    ``nn.ReLU`` / ``nn.ReLU6`` modules."""

    def __init__(self, dict_output: bool = True, functional: bool = True):
        super().__init__()
        self.dict_output, self.functional = dict_output, functional
        self.conv1, self.conv2, self.conv3 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 12, 3, padding=1), \
            nn.Conv2d(12, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        if not functional:
            self.relu1, self.relu2, self.relu3 = nn.ReLU(), nn.ReLU(inplace=True), nn.ReLU6()
        self.aux_head = nn.Linear(12, N_CLASSES)
        self.head = nn.Linear(16, N_CLASSES)

    def forward(self, x):
        f = self.functional
        x = self.pool(torch.relu(self.conv1(x)) if f else self.relu1(self.conv1(x)))
        x = self.conv2(x)
        x = self.pool(x.relu_() if f else self.relu2(x))
        aux = self.aux_head(x.mean((2, 3)))
        x = F.relu6(self.conv3(x)) if f else self.relu3(self.conv3(x))
        out = self.head(x.mean((2, 3)))
        return OrderedDict(out=out, aux=aux) if self.dict_output else out


# --- a model that normalises its input in place --------------------------------------------------


class InPlaceNormNet(nn.Module):
    """A model that normalises its input *in place* (``x.sub_(mean).div_(std)`` in ``forward``), as some
    student and research code does: it would change the caller's tensor if it were given it. Then
    conv-ReLU-maxpool twice, GAP and a linear layer. ``inplace=False`` builds the twin that normalises
    out of place (``(x - mean) / std``)."""

    def __init__(self, inplace: bool = True):
        super().__init__()
        self.inplace = inplace
        self.register_buffer("mean", torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1))
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, N_CLASSES)

    def forward(self, x):
        x = x.sub_(self.mean).div_(self.std) if self.inplace else (x - self.mean) / self.std
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


# --- a tiny vision transformer -------------------------------------------------------------------


class ViT(nn.Module):
    """torchvision's ViT pattern, tiny: a 4x4 stride-4 patch-embedding conv (32x32 -> 8x8 = 64 tokens of
    dimension 16), a class token, learnt position embeddings, two ``nn.TransformerEncoderLayer`` blocks
    (pre-norm, GELU, ``batch_first=True``, dropout 0), a final LayerNorm and a linear head on the class
    token. Grad-CAM runs at the output of the first block, tokens ``(B, 1 + 8*8, 16)``, with
    ``reshape=xr.token_grid``; not at the last block, whose patch tokens never reach the head (only its
    class token does), so their gradient is zero."""

    def __init__(self, dim: int = 16, patch: int = 4):
        super().__init__()
        n = (INPUT_SHAPE[1] // patch) ** 2
        self.conv_proj = nn.Conv2d(3, dim, patch, stride=patch)
        self.class_token = nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.pos_embedding = nn.Parameter(0.02 * torch.randn(1, 1 + n, dim))
        layer = lambda: nn.TransformerEncoderLayer(dim, nhead=2, dim_feedforward=2 * dim, dropout=0.0,  # noqa: E731
                                                   activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.Module()
        self.encoder.layers = nn.Sequential(layer(), layer())
        self.encoder.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, N_CLASSES)

    def forward(self, x):
        tokens = self.conv_proj(x).flatten(2).transpose(1, 2)                   # (B, 64, dim)
        tokens = torch.cat([self.class_token.expand(x.shape[0], -1, -1), tokens], 1) + self.pos_embedding
        tokens = self.encoder.ln(self.encoder.layers(tokens))
        return self.head(tokens[:, 0])


# --- the registry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """How to build one replica and explain it: ``Family()`` builds the model (seeded, eval mode).

    ``pattern``: the real family it copies; ``layer``: the default Grad-CAM layer (dotted name);
    ``logits``: the ``logits=`` keyword for a structured output (None for a tensor output); ``reshape``:
    the Grad-CAM ``reshape=`` function (None for a ``(B,K,h,w)`` layer); ``activations``: ``"relu"``
    (ReLU modules only), ``"functional relu"`` (some ReLUs are function calls: a `relu_twin` exists),
    ``"mixed"`` (ReLU and others: guided / deconvnet warn) or ``"no relu"`` (they refuse); ``cam``: the
    head is GAP + linear on a module's output, so CAM applies.
    """

    cls: type
    pattern: str
    layer: str
    activations: str
    cam: bool
    logits: int | str | None = None
    reshape: Callable | None = None
    seed: int = 0

    def __call__(self, **options) -> nn.Module:
        torch.manual_seed(self.seed)
        model = self.cls(**options)
        randomize_batchnorm(model, self.seed + 1)
        return model.eval()


FAMILIES: dict[str, Family] = {
    "resnet": Family(ResNet, "ResNet-18: BasicBlock, one reused ReLU(inplace=True), BatchNorm, residual add",
                     "layer2", "relu", cam=True),
    "vgg": Family(VGG, "VGG-16: nn.ReLU modules, max-pool, flatten + FC head with dropout",
                  "features.7", "relu", cam=False),
    "densenet": Family(DenseNet, "DenseNet-121: F.relu calls, concatenation, BatchNorm",
                       "features", "functional relu", cam=False),
    "mobilenet_v2": Family(MobileNetV2, "MobileNetV2: ReLU6 modules, inverted residuals, depthwise convs",
                           "features.4", "relu", cam=True, seed=3),
    "mobilenet_v3": Family(MobileNetV3, "MobileNetV3: Hardswish, squeeze-excite with hardsigmoid, some ReLUs",
                           "features.4", "mixed", cam=False),
    "efficientnet": Family(EfficientNet, "EfficientNet-B0: SiLU, squeeze-excite with sigmoid",
                           "features.4", "no relu", cam=True),
    "convnext": Family(ConvNeXt, "ConvNeXt-T: GELU, LayerNorm via permutes, depthwise 7x7",
                       "features.3", "no relu", cam=False),
    "inception": Family(Inception, "Inception-v3 / GoogLeNet: (logits, aux_logits) namedtuple, F.relu(inplace=True)",
                        "Mixed_6a", "functional relu", cam=True, logits="logits"),
    "dict_output": Family(DictOutputNet, "dict output {'out', 'aux'}; torch.relu, x.relu_(), F.relu6",
                          "conv3", "functional relu", cam=False, logits="out"),
    "inplace_norm": Family(InPlaceNormNet, "normalises its input in place: x.sub_(mean).div_(std)",
                           "features.4", "relu", cam=True),
    "vit": Family(ViT, "ViT-B/16, tiny: patch conv, class token, TransformerEncoderLayer blocks, head on the class token",
                  "encoder.layers.0", "no relu", cam=False, reshape=xr.token_grid),
}


def _same_weights(twin: nn.Module, model: nn.Module) -> nn.Module:
    twin.load_state_dict(model.state_dict())
    return twin.to(next(model.parameters()).dtype).train(model.training)


def relu_twin(name: str, model: nn.Module) -> nn.Module | None:
    """For a replica whose ReLUs are function calls: the same network with the same weights (copied from
    ``model``, and its dtype) computing them with ``nn.ReLU`` / ``nn.ReLU6`` modules. None otherwise."""
    if FAMILIES[name].activations != "functional relu":
        return None
    return _same_weights(FAMILIES[name](functional=False), model)


#: the keyword that makes each structured-output replica return its class scores alone
_SINGLE_OUTPUT = {"inception": "aux", "dict_output": "dict_output"}


def single_output_twin(name: str, model: nn.Module) -> nn.Module | None:
    """For a replica with a structured output: the same network with the same weights (and dtype) returning
    the class scores alone (its ReLUs computed as in ``model``). None for a replica with a tensor output."""
    if name not in _SINGLE_OUTPUT:
        return None
    return _same_weights(FAMILIES[name](**{_SINGLE_OUTPUT[name]: False}), model)


def out_of_place_twin(model: InPlaceNormNet) -> InPlaceNormNet:
    """The `InPlaceNormNet` twin that normalises its input out of place, with the same weights."""
    return _same_weights(InPlaceNormNet(inplace=False), model)
