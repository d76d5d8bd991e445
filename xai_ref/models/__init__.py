"""Offline models: small networks trained on the shapes data, and EfficientNet-Lite0 on ImageNet.

>>> import xai_ref as xr
>>> model = xr.models.load("nin_shapes")      # eval mode, trained weights, on the CPU

Names: ``"nin_shapes"`` (NIN-style mlpconv blocks, GAP straight into linear class scores: CAM applies),
``"vgg_shapes"`` (conv/ReLU/max-pool blocks and a fully-connected head: deconvnet with switches,
Grad-CAM where CAM does not apply), ``"nin_shapes_biased"`` (``nin_shapes`` trained on the biased variant,
where a corner square's colour gives the class away: it learns the cue, not the shape; reproduced by
``python -m xai_ref.training.shapes_nets nin_shapes --biased --epochs 3 --images-per-epoch 4000``),
``"efficientnet_lite0"`` (ImageNet, 224x224 input). The shapes nets'
weights ship in this package (``weights/NAME.pt``, reproduced by ``python -m xai_ref.training.shapes_nets NAME``) and
load with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

from importlib import resources

import torch
from torch import nn

from . import at_nets, efficientnet, shapes_nets

#: Shipped shapes nets trained on another recipe: name -> architecture (a key of ``shapes_nets.BUILDERS``).
VARIANTS = {"nin_shapes_biased": "nin_shapes"}
NAMES = (*shapes_nets.BUILDERS, *VARIANTS, *at_nets.BUILDERS, "efficientnet_lite0")


def weights_path(name: str):
    """The path of a shapes net's shipped state_dict."""
    return resources.files(__package__).joinpath("weights", f"{name}.pt")


def load(name: str) -> nn.Module:
    """The named model with its trained weights, in eval mode."""
    if name == "efficientnet_lite0":
        return efficientnet.efficientnet_lite0()
    if name not in NAMES:
        raise ValueError(f"unknown model {name!r}; available: {NAMES}")
    builders = {**shapes_nets.BUILDERS, **at_nets.BUILDERS}  # at_*: attention transfer (at_nets)
    model = builders[VARIANTS.get(name, name)]()
    with resources.as_file(weights_path(name)) as path:
        model.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"), strict=True)
    return model.eval()
