"""Two small networks for the shapes data (input ``(B, 3, 64, 64)`` float32 in ``[0, 1]``).

Both are a flat ``nn.Sequential`` with readable layer names, built only from ``Conv2d``, ``ReLU``,
``MaxPool2d``, ``AdaptiveAvgPool2d(1)``, ``Flatten``, ``Linear`` and ``Dropout`` (no BatchNorm), every
activation its own module instance, so hooks see every layer and the NumPy converter handles them.

- :func:`nin_shapes` -- Network in Network (Lin et al. 2014): "mlpconv" blocks, a 3x3 convolution followed
  by 1x1 convolutions (a small MLP slid over the image), then global average pooling of the last feature
  maps ``A`` (K=64 maps of 16x16) and one linear layer ``S = W F + b``: exactly the architecture CAM
  (Zhou et al. 2016) needs.
- :func:`vgg_shapes` -- VGG-style (Simonyan & Zisserman 2015): blocks conv-ReLU-conv-ReLU-max-pool and a
  fully-connected head. CAM does not apply (no GAP); Grad-CAM does, and deconvnet uses the max-pool
  switches.

The builders return untrained networks (He-initialised, drawn from torch's global RNG); ``xai_ref.models.load(name)`` loads the shipped weights, which
``python -m xai_ref.training.shapes_nets NAME`` reproduces.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

__all__ = ["BUILDERS", "nin_shapes", "vgg_shapes"]


def _conv(c_in: int, c_out: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=k, padding=k // 2)


def _init(model: nn.Sequential) -> nn.Sequential:
    """He initialisation (He et al. 2015), zero biases: without BatchNorm, PyTorch's default init lets the
    signal fade through eight ReLU layers and training stalls at chance."""
    for m in model:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return model


def nin_shapes(n_classes: int = 6) -> nn.Sequential:
    """NIN-style GAP network: 64x64 -> mlpconv 32x32 -> mlpconv 16x16 -> 2 mlpconv at 16x16 -> GAP -> fc.

    Layers (output shape for a 64x64 input)::

        mlpconv1_conv3x3 (16,64,64) mlpconv1_relu1  mlpconv1_conv1x1 (16,64,64) mlpconv1_relu2  mlpconv1_pool (16,32,32)
        mlpconv2_conv3x3 (32,32,32) mlpconv2_relu1  mlpconv2_conv1x1 (32,32,32) mlpconv2_relu2  mlpconv2_pool (32,16,16)
        mlpconv3_conv3x3 (64,16,16) mlpconv3_relu1  mlpconv3_conv1x1 (64,16,16) mlpconv3_relu2
        mlpconv4_conv3x3 (64,16,16) mlpconv4_relu1  mlpconv4_conv1x1 (64,16,16) mlpconv4_relu2   <- A, the CAM layer
        gap (64,1,1)  flatten (64,)  fc (n_classes,)
    """
    widths = [(3, 16), (16, 32), (32, 64), (64, 64)]
    layers: list[tuple[str, nn.Module]] = []
    for b, (c_in, c_out) in enumerate(widths, start=1):
        layers += [
            (f"mlpconv{b}_conv3x3", _conv(c_in, c_out, 3)),
            (f"mlpconv{b}_relu1", nn.ReLU()),
            (f"mlpconv{b}_conv1x1", _conv(c_out, c_out, 1)),
            (f"mlpconv{b}_relu2", nn.ReLU()),
        ]
        if b <= 2:
            layers.append((f"mlpconv{b}_pool", nn.MaxPool2d(2)))
    layers += [
        ("gap", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(widths[-1][1], n_classes)),
    ]
    return _init(nn.Sequential(OrderedDict(layers)))


def vgg_shapes(n_classes: int = 6) -> nn.Sequential:
    """VGG-style network: 3 blocks (conv-ReLU-conv-ReLU-max-pool) 64 -> 32 -> 16 -> 8, then an FC head.

    Layers (output shape for a 64x64 input)::

        block1_conv1 (16,64,64) block1_relu1 block1_conv2 (16,64,64) block1_relu2 block1_pool (16,32,32)
        block2_conv1 (32,32,32) block2_relu1 block2_conv2 (32,32,32) block2_relu2 block2_pool (32,16,16)
        block3_conv1 (32,16,16) block3_relu1 block3_conv2 (32,16,16) block3_relu2 block3_pool (32,8,8)
        flatten (2048,)  fc1 (64,)  fc1_relu  dropout  fc2 (n_classes,)
    """
    widths = [(3, 16), (16, 32), (32, 32)]
    layers: list[tuple[str, nn.Module]] = []
    for b, (c_in, c_out) in enumerate(widths, start=1):
        layers += [
            (f"block{b}_conv1", _conv(c_in, c_out, 3)),
            (f"block{b}_relu1", nn.ReLU()),
            (f"block{b}_conv2", _conv(c_out, c_out, 3)),
            (f"block{b}_relu2", nn.ReLU()),
            (f"block{b}_pool", nn.MaxPool2d(2)),
        ]
    layers += [
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(widths[-1][1] * 8 * 8, 64)),
        ("fc1_relu", nn.ReLU()),
        ("dropout", nn.Dropout(0.3)),
        ("fc2", nn.Linear(64, n_classes)),
    ]
    return _init(nn.Sequential(OrderedDict(layers)))


#: name -> builder of the untrained network (``xai_ref.models.load`` adds the shipped weights).
BUILDERS = {"nin_shapes": nin_shapes, "vgg_shapes": vgg_shapes}
