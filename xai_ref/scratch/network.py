"""A network as a list of layers that remembers every activation and every backward signal.

    net = Sequential([Conv2d(W1, b1, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(W2, b2)])
    scores = net.forward(x)                     # net.activations["input"], ["0"], ["1"], ...
    dx = net.backward(dscores, rule="guided")   # net.grads[name]: the signal at that layer's output
"""
import numpy as np

from ..checks import as_pair, as_rule
from .layers import Conv2d, Flatten, GlobalAvgPool, Identity, Linear, MaxPool2d, ReLU

SUPPORTED = "Conv2d, ReLU, ReLU6, MaxPool2d, AdaptiveAvgPool2d(1), Flatten, Linear, Dropout, Identity"


class Sequential:
    """Layers applied in order: a^0 = x, a^i = layer_i(a^{i-1}).

    layers: list of layer objects; names: one string per layer (default "0", "1", ... as in torch's
    nn.Sequential). After forward, `activations[name]` is the output of that layer and
    `activations["input"]` is x. After backward, `grads[name]` is the signal at that layer's output and
    `grads["input"]` the signal at x (only for the layers the signal went through).

    Lesson: ``lessons/01_gap_nin.ipynb``.
    """

    def __init__(self, layers, names=None):
        self.layers = list(layers)
        self.names = [str(i) for i in range(len(self.layers))] if names is None else list(names)
        if len(self.names) != len(self.layers) or len(set(self.names)) != len(self.names):
            raise ValueError(f"need one distinct name per layer, got {len(self.names)} names "
                             f"for {len(self.layers)} layers")
        if "input" in self.names:
            raise ValueError('"input" is reserved for the network input; rename that layer')
        self.activations, self.grads = {}, {}

    def forward(self, x):
        """x: (N, ...) -> output of the last layer; keeps every activation in self.activations."""
        self.activations = {"input": x}
        for name, layer in zip(self.names, self.layers):
            try:
                x = layer.forward(x)
            except ValueError as e:
                self.activations = {}
                raise ValueError(f"layer {name!r}: {e}") from e
            self.activations[name] = x
        return x

    __call__ = forward

    def backward(self, dout, rule="backprop", start=None, stop=None):
        """Pass a signal down the network, applying `rule` at every ReLU.

        dout: the signal at the output of layer `start` (index or name; default the last layer), same
        shape as that output. It goes down through layer `start`, then the layers below it, and stops at
        the output of layer `stop` (index or name) or, by default, at the input x.
        rule: "backprop" (the gradient), "deconvnet" or "guided" (see ReLU); convolution, linear and
        pooling layers always pass the signal through their ordinary transposes.
        Returns the signal at `stop` (or at x); every intermediate signal is kept in self.grads.
        """
        as_rule(rule)
        if not self.activations:
            raise RuntimeError("call forward(x) before backward")
        hi = len(self.layers) - 1 if start is None else self._index(start)
        lo = -1 if stop is None else self._index(stop)
        if lo > hi:
            raise ValueError(f"stop ({self.names[lo]!r}) must not be above start ({self.names[hi]!r})")
        expected = self.activations[self.names[hi]].shape
        if np.shape(dout) != expected:
            raise ValueError(f"dout must have the shape of the output of layer {self.names[hi]!r}, "
                             f"{expected}, got {np.shape(dout)}")
        keys = ["input"] + self.names                    # keys[i] names the input of layer i
        self.grads = {self.names[hi]: dout}
        for i in range(hi, lo, -1):
            layer = self.layers[i]
            dout = layer.backward(dout, rule) if isinstance(layer, ReLU) else layer.backward(dout)
            self.grads[keys[i]] = dout
        return dout

    def _index(self, key):
        """A layer given by name or (possibly negative) index -> its index."""
        if isinstance(key, str):
            if key not in self.names:
                raise ValueError(f"no layer named {key!r}; the layers are {self.names}")
            return self.names.index(key)
        if not -len(self.layers) <= key < len(self.layers):
            raise ValueError(f"layer index {key} out of range for {len(self.layers)} layers")
        return key % len(self.layers)

    def __getitem__(self, key):
        return self.layers[self._index(key)]

    def __len__(self):
        return len(self.layers)

    def __repr__(self):
        lines = [f"  ({name}): {layer!r}" for name, layer in zip(self.names, self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)"


def _named_leaves(module, prefix=""):
    """Yield (dotted name, module) for every layer of a possibly nested nn.Sequential, in order."""
    import torch.nn as nn
    for name, child in module.named_children():
        full = f"{prefix}{name}"
        if isinstance(child, nn.Sequential):
            yield from _named_leaves(child, full + ".")
        else:
            yield full, child


def _numpy(t, dtype):
    return None if t is None else t.detach().cpu().numpy().astype(dtype)


def _convert(name, m, dtype):
    """One torch layer -> the scratch layer with the same weights and settings."""
    import torch.nn as nn

    def refuse(setting):
        raise ValueError(f"cannot convert layer {name!r} ({type(m).__name__}): {setting} is not supported")

    if isinstance(m, nn.Conv2d):
        if m.groups != 1:
            refuse(f"groups={m.groups}")
        if as_pair(m.dilation, "dilation") != (1, 1):
            refuse(f"dilation={m.dilation}")
        if m.padding_mode != "zeros":
            refuse(f"padding_mode={m.padding_mode!r}")
        if isinstance(m.padding, str):
            refuse(f"padding={m.padding!r} (use integer padding)")
        return Conv2d(_numpy(m.weight, dtype), _numpy(m.bias, dtype), m.stride, m.padding)
    if isinstance(m, nn.ReLU6):
        return ReLU(upper=6.0)
    if isinstance(m, nn.ReLU):
        return ReLU()
    if isinstance(m, nn.MaxPool2d):
        if as_pair(m.dilation, "dilation") != (1, 1):
            refuse(f"dilation={m.dilation}")
        if m.ceil_mode:
            refuse("ceil_mode=True")
        return MaxPool2d(m.kernel_size, m.stride, m.padding)
    if isinstance(m, nn.AdaptiveAvgPool2d):
        if m.output_size not in (1, (1, 1), [1, 1]):
            refuse(f"output_size={m.output_size} (only 1)")
        return GlobalAvgPool(keepdims=True)
    if isinstance(m, nn.Flatten):
        if (m.start_dim, m.end_dim) != (1, -1):
            refuse(f"start_dim={m.start_dim}, end_dim={m.end_dim} (only 1, -1)")
        return Flatten()
    if isinstance(m, nn.Linear):
        return Linear(_numpy(m.weight, dtype), _numpy(m.bias, dtype))
    if isinstance(m, (nn.Dropout, nn.Identity)):
        return Identity()
    raise TypeError(f"cannot convert layer {name!r} ({type(m).__name__}): from_torch supports {SUPPORTED}")


def from_torch(model, dtype=np.float64):
    """A torch nn.Sequential (nested ones are flattened) -> a scratch Sequential with copied weights.

    Layer names are torch's module names ("3", or "features.3" inside a nested Sequential). The result
    computes what the torch model computes in eval mode (Dropout becomes the identity).
    Raises TypeError for a model that is not an nn.Sequential or a layer of an unsupported type, and
    ValueError for a supported type with an unsupported setting (groups, dilation, ceil_mode, ...).

    Lesson: ``lessons/01_gap_nin.ipynb``.
    """
    import torch.nn as nn
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"from_torch needs an nn.Sequential, got {type(model).__name__}; "
                        "pass the layers as nn.Sequential(...)")
    named = list(_named_leaves(model))
    return Sequential([_convert(name, m, dtype) for name, m in named], [name for name, _ in named])
