"""Teacher and student residual networks for attention transfer (Zagoruyko & Komodakis, ICLR 2017).

Input ``(B, 3, 32, 32)`` float32 in ``[0, 1]``: the hard shapes task of :mod:`xai_ref.training.attention_transfer`
(``shapes.generate(..., n_classes=10, size=32)``, clutter on). Both nets are ResNet/WRN-style: a 3x3 stem
conv, three *groups* of basic residual blocks at 32x32, 16x16 and 8x8, then global average pooling and one
linear layer (so CAM applies). Attention is taken at the end of each group, ``group1``, ``group2``,
``group3`` (their outputs have the same h x w in teacher and student; channels differ).

Only ``Conv2d``, ``BatchNorm2d`` and ``ReLU`` modules (each activation its own instance; the residual
addition is out of place), ``AdaptiveAvgPool2d(1)``, ``Flatten`` and ``Linear``: hooks see every layer.

- :func:`at_teacher` -- widths 16/32/64, 2 blocks per group (a ResNet-14-style net, ~175 k parameters).
- :func:`at_student` -- widths 8/16/32, 1 block per group (a ResNet-8-style net, ~20 k parameters).

Weights: ``xai_ref.models.load("at_teacher")``, ``load("at_student")`` (the student trained alone),
``load("at_student_at")`` (the student trained with attention transfer), reproduced by
``python -m xai_ref.training.attention_transfer ship``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

__all__ = ["ATNet", "BasicBlock", "BUILDERS", "GROUPS", "at_student", "at_teacher"]

#: The names of the modules whose outputs are the attention layers (one per resolution).
GROUPS = ("group1", "group2", "group3")


class BasicBlock(nn.Module):
    """``relu2(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x))``; the shortcut is the identity, or a
    strided 1x1 conv + BN when the shape changes. (B, c_in, h, w) -> (B, c_out, h/stride, w/stride)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(OrderedDict(
                conv=nn.Conv2d(c_in, c_out, 1, stride, bias=False), bn=nn.BatchNorm2d(c_out)))
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))  # out of place: the input stays intact for hooks


class ATNet(nn.Module):
    """stem (conv-BN-ReLU) -> group1 (32x32) -> group2 (16x16) -> group3 (8x8) -> gap -> flatten -> fc."""

    def __init__(self, widths=(16, 32, 64), blocks: int = 1, n_classes: int = 10, stem: int | None = None):
        super().__init__()
        stem = stem or widths[0]
        self.widths, self.blocks, self.n_classes = tuple(widths), blocks, n_classes
        self.stem = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(3, stem, 3, 1, 1, bias=False), bn=nn.BatchNorm2d(stem), relu=nn.ReLU()))
        c = stem
        for g, w in enumerate(widths, start=1):
            layers = []
            for b in range(blocks):
                layers.append((f"block{b + 1}", BasicBlock(c, w, 2 if (b == 0 and g > 1) else 1)))
                c = w
            setattr(self, f"group{g}", nn.Sequential(OrderedDict(layers)))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c, n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def groups(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The outputs of the three groups (the attention layers; the last is CAM's ``f``) and the class
        scores, in one differentiable pass: ``([A1 (B,w1,32,32), A2 (B,w2,16,16), A3 (B,w3,8,8)], logits)``."""
        feats = []
        x = self.stem(x)
        for name in GROUPS:
            x = getattr(self, name)(x)
            feats.append(x)
        return feats, self.fc(self.flatten(self.gap(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.groups(x)[1]


def at_teacher(n_classes: int = 10) -> ATNet:
    """The teacher: widths 16/32/64, two basic blocks per group."""
    return ATNet((16, 32, 64), blocks=2, n_classes=n_classes)


def at_student(n_classes: int = 10) -> ATNet:
    """The student: widths 8/16/32, one basic block per group."""
    return ATNet((8, 16, 32), blocks=1, n_classes=n_classes)


#: Shipped names -> builders (``at_student_at`` is the student architecture trained with AT).
BUILDERS = {"at_teacher": at_teacher, "at_student": at_student, "at_student_at": at_student}

#: Held-out accuracy of the shipped weights on ``xai_ref.training.attention_transfer.task()``'s 1000 test images, and on its
#: first 400 (what the tests check, exactly). The student trained alone is far behind the teacher: the gap
#: that attention transfer and distillation try to close (see benchmarks/attention_transfer.json).
SHIPPED_ACCURACY = {"at_teacher": 0.872, "at_student": 0.548, "at_student_at": 0.388}
SHIPPED_ACCURACY_400 = {"at_teacher": 0.895, "at_student": 0.5925, "at_student_at": 0.4425}
