"""One mechanism for hooks and ReLU backward rules, used by every PyTorch method.

`Hooks` is a context manager around a model::

    with Hooks(model, layers=[None], rule="guided") as h:
        x_ = h.watch(x)                   # a leaf copy of the input that gradients can reach
        y = model(x_)                     # forward: the layer's output is captured
        A = h.A                           # (B,K,h,w) activation of the (first) requested layer
        dY_dx, dY_dA = torch.autograd.grad(y[:, c].sum(), [x_, A])

Inside the context:

* the model is in eval mode, its parameters do not require grad (so a backward pass computes only
  what an explanation needs and never writes ``.grad``), and every ``nn.ReLU``/``nn.ReLU6`` runs out of
  place (so a captured activation is never overwritten by an in-place ReLU after it);
* the output of each requested layer is captured (``h.activations[name]``, ``h.A`` for the first);
  a layer is an ``nn.Module``, a dotted name from ``model.named_modules()``, or ``None``: the last
  module, in execution order, whose output is a spatial map ``(B,K,h,w)`` with ``h*w > 1``;
* with ``rule="deconvnet"`` or ``rule="guided"``, every ReLU passes signals down by that rule instead
  of the ordinary gradient (see `relu_backward`).

On exit, also when the body raises: no hook is left on any module, and each module's ``training`` and
ReLU ``inplace`` flag, each parameter's ``requires_grad`` and ``.grad`` are as they were before.
"""

from __future__ import annotations

import difflib
import threading
from typing import Sequence

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

RULES = ("backprop", "deconvnet", "guided")


# --- the three ReLU backward rules -------------------------------------------------------------


def relu_backward(R: torch.Tensor, x: torch.Tensor, rule: str, upper: float | None = None) -> torch.Tensor:
    """The signal a ReLU passes down, given the signal ``R`` from above and its forward input ``x``.

    With the gate ``g = [0 < x < upper]`` (``upper`` is ``None`` for ReLU, 6 for ReLU6):

    * backprop (the gradient):                     ``R * g``
    * deconvnet (Zeiler & Fergus 2014):            ``max(R, 0)``       (the ReLU applied to the signal)
    * guided (Springenberg et al. 2015):           ``max(R, 0) * g``   (both of the above)
    """
    if rule == "deconvnet":
        return R.clamp(min=0)
    if rule not in RULES:
        raise ValueError(f"unknown ReLU rule {rule!r}; choose one of {RULES}")
    # R * g in one pass over the tensor: torch's own ReLU / ReLU6 backward kernels
    gated = (torch.ops.aten.threshold_backward(R, x, 0) if upper is None
             else torch.ops.aten.hardtanh_backward(R, x, 0.0, upper))
    return gated.clamp_(min=0) if rule == "guided" else gated   # max(R, 0) * g = max(R * g, 0)


class _RuleReLU(torch.autograd.Function):
    """A ReLU (or ReLU6) output ``out`` given a new backward pass to its input ``x``: `relu_backward`
    with the rule that ``hooks.rule`` names when the backward pass runs (so one forward pass can serve
    backward passes under two rules). ``out`` is passed detached and returned as it is (marked as
    changed in place, so that later in-place operations on it stay legal): nothing is computed twice.
    The gate is read from ``out`` (``0 < out < upper`` exactly where ``0 < x < upper``), so that, as for
    torch's own ReLU, the input need not be kept for the backward pass."""

    @staticmethod
    def forward(ctx, x, out, upper, hooks):
        ctx.upper, ctx.hooks = upper, hooks
        ctx.mark_dirty(out)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, R):
        (out,) = ctx.saved_tensors
        return relu_backward(R, out, ctx.hooks.rule, ctx.upper), None, None, None


def _relu_upper(module: nn.Module) -> float | None:
    return 6.0 if isinstance(module, nn.ReLU6) else None


def _is_relu(module: nn.Module) -> bool:
    return isinstance(module, (nn.ReLU, nn.ReLU6))


# --- detecting ReLUs that no hook can see ------------------------------------------------------

_FUNCTIONAL_RELUS = {
    torch.relu, torch.relu_, torch.nn.functional.relu, torch.nn.functional.relu_,
    torch.nn.functional.relu6, torch.nn.functional.hardtanh, torch.nn.functional.hardtanh_,
    torch.Tensor.relu, torch.Tensor.relu_,
}


class _FunctionalReLUDetector(TorchFunctionMode):
    """Raises on a relu computed outside an ``nn.ReLU``/``nn.ReLU6`` module during a forward pass."""

    def __init__(self, inside_relu_module: threading.local, rule: str):
        super().__init__()
        self.inside, self.rule = inside_relu_module, rule

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _FUNCTIONAL_RELUS and not getattr(self.inside, "depth", 0):
            raise ValueError(f"the model computes a ReLU with {getattr(func, '__name__', func)} outside an "
                             f"nn.ReLU / nn.ReLU6 module; no hook can reach it, so the {self.rule} rule would "
                             "silently give the plain gradient there. Use one nn.ReLU module per activation")
        return func(*args, **(kwargs or {}))


# --- finding layers ----------------------------------------------------------------------------


def named_layer(model: nn.Module, layer) -> tuple[str, nn.Module]:
    """``(name, module)`` for a layer given as a module or a dotted name in ``model.named_modules()``.

    Raises ValueError listing the nearest valid names for an unknown name, and TypeError for a value
    that is neither.
    """
    names = {m: n for n, m in model.named_modules()}
    if isinstance(layer, nn.Module):
        if layer not in names:
            raise ValueError(f"the layer {type(layer).__name__} is not a module of this model; pass one "
                             "of model.modules(), or its dotted name from model.named_modules()")
        return names[layer], layer
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer in modules:
            return layer, modules[layer]
        valid = [n for n in modules if n]
        near = difflib.get_close_matches(layer, valid, n=5, cutoff=0.5) or valid[-5:]
        raise ValueError(f"unknown layer {layer!r}; nearest valid names: {near} "
                         "(all names: [n for n, _ in model.named_modules()])")
    raise TypeError(f"layer must be an nn.Module, a dotted name (str) or None, got {type(layer).__name__}")


def _is_spatial(out) -> bool:
    return isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[2] * out.shape[3] > 1


# --- the context manager -----------------------------------------------------------------------


class Hooks:
    """Capture layer outputs and set the ReLU backward rule on ``model`` for the duration of a ``with``.

    Parameters
    ----------
    model: the network (any ``nn.Module``).
    layers: layers whose outputs to capture: modules, dotted names, or ``None`` for the last spatial
        layer. Captured outputs are in ``activations`` (by name) and ``A`` (the first layer's).
    rule: ``"backprop"`` (plain gradients), ``"deconvnet"`` or ``"guided"``: how every ReLU passes a
        signal down. The last two raise ValueError when the model computes a ReLU that is not an
        ``nn.ReLU``/``nn.ReLU6`` module (an ``F.relu`` call cannot be hooked, so it would silently
        give the plain gradient). Entered with one of those two, ``h.rule`` may be set to any rule
        between backward passes: each backward pass follows the rule set when it runs.
    """

    def __init__(self, model: nn.Module, layers: Sequence | None = (), rule: str = "backprop"):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if rule not in RULES:
            raise ValueError(f"unknown ReLU rule {rule!r}; choose one of {RULES}")
        self.model, self._rule, self._hooked_rules = model, rule, rule != "backprop"
        self.layers = [None if l is None else named_layer(model, l) for l in (layers or ())]
        self.activations: dict[str, torch.Tensor] = {}
        self._versions: dict[str, int] = {}
        self._handles: list = []
        self._inside_relu = threading.local()
        self._detector: _FunctionalReLUDetector | None = None

    # entering and leaving ----------------------------------------------------------------------

    def __enter__(self) -> "Hooks":
        self._saved = self._snapshot()
        try:
            self.model.eval()
            for p in self.model.parameters():
                p.requires_grad_(False)
            for m in self.model.modules():
                if _is_relu(m):
                    m.inplace = False
            if self._hooked_rules:
                self._register_rules()  # first: a capture hook on a ReLU must see the rule's output
            self._register_capture()
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    @property
    def rule(self) -> str:
        """The ReLU rule the next backward pass follows."""
        return self._rule

    @rule.setter
    def rule(self, rule: str) -> None:
        if rule not in RULES:
            raise ValueError(f"unknown ReLU rule {rule!r}; choose one of {RULES}")
        if rule != "backprop" and not self._hooked_rules:
            raise ValueError(f"the ReLUs were not hooked: enter Hooks with rule={rule!r} (or another non-backprop "
                             "rule) to switch rules between backward passes")
        self._rule = rule

    def _snapshot(self) -> dict:
        return {
            "training": [(m, m.training) for m in self.model.modules()],
            "inplace": [(m, m.inplace) for m in self.model.modules() if _is_relu(m)],
            "params": [(p, p.requires_grad, p.grad) for p in self.model.parameters()],
        }

    def _restore(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        if self._detector is not None:
            self._detector.__exit__(None, None, None)
            self._detector = None
        for m, training in self._saved["training"]:
            m.training = training
        for m, inplace in self._saved["inplace"]:
            m.inplace = inplace
        for p, requires_grad, grad in self._saved["params"]:
            p.requires_grad_(requires_grad)
            p.grad = grad

    # capturing activations ----------------------------------------------------------------------

    def _register_capture(self) -> None:
        for spec in self.layers:
            if spec is not None:
                self._handles.append(spec[1].register_forward_hook(self._capture(spec[0], spatial_only=False)))
        if None in self.layers:
            for name, module in self.model.named_modules():
                if not list(module.children()):
                    self._handles.append(module.register_forward_hook(self._capture(name, spatial_only=True)))

    def _capture(self, name: str, spatial_only: bool):
        def hook(module, args, out):
            if spatial_only and not _is_spatial(out):
                return
            if spatial_only:
                self._last_spatial = name
            self.activations[name] = out
            self._versions[name] = out._version if isinstance(out, torch.Tensor) else 0
        return hook

    def layer_name(self, i: int = 0) -> str:
        """The name of the i-th requested layer (for ``None``: the last spatial layer of the last pass)."""
        spec = self.layers[i]
        if spec is not None:
            return spec[0]
        if getattr(self, "_last_spatial", None) is None:
            raise ValueError("the model produced no spatial (B,K,h,w) output with h*w > 1, so there is no "
                             "default layer; pass layer= explicitly")
        return self._last_spatial

    def activation(self, i: int = 0) -> torch.Tensor:
        """The captured output of the i-th requested layer in the last forward pass."""
        if not self.layers:
            raise ValueError("no layer was requested; pass layers=[...] to Hooks")
        name = self.layer_name(i)
        if name not in self.activations:
            raise ValueError(f"layer {name!r} was not run in the forward pass; pick a layer the model uses")
        out = self.activations[name]
        if isinstance(out, torch.Tensor) and out._version != self._versions[name]:
            raise ValueError(f"the output of layer {name!r} was modified in place after it was computed, "
                             "so it is not the value the network used; pick the layer after that in-place op")
        return out

    @property
    def A(self) -> torch.Tensor:
        """The captured output of the first requested layer."""
        return self.activation(0)

    def watch(self, x: torch.Tensor) -> torch.Tensor:
        """A leaf tensor with ``x``'s values that gradients can reach (``x`` itself is never modified).

        It keeps ``x``'s memory layout. Channels-last would make the passes 1.25-1.6x faster on a CPU
        (`xai_ref.inputs.fast_layout`), but it rounds float32 sums in another order, enough to flip a
        ReLU6 gate here and there and move a gradient by 5e-4 (EfficientNet-Lite0); gradients in the
        caller's layout match Captum's to the last bits."""
        return x.detach().requires_grad_(True)

    # ReLU rules ---------------------------------------------------------------------------------

    def _register_rules(self) -> None:
        relus = [m for m in self.model.modules() if _is_relu(m)]
        if not relus:
            raise ValueError(f"the {self.rule} rule needs nn.ReLU / nn.ReLU6 modules, and this model has none "
                             "(ReLUs computed with F.relu or torch.relu cannot be hooked); rewrite the model "
                             "with one nn.ReLU module per activation")
        for m in relus:
            self._handles.append(m.register_forward_pre_hook(self._enter_relu))
            self._handles.append(m.register_forward_hook(self._apply_rule))
        self._detector = _FunctionalReLUDetector(self._inside_relu, self.rule)
        self._detector.__enter__()

    def _enter_relu(self, module, args):
        self._inside_relu.depth = getattr(self._inside_relu, "depth", 0) + 1

    def _apply_rule(self, module, args, out):
        self._inside_relu.depth -= 1
        return _RuleReLU.apply(args[0], out.detach(), _relu_upper(module), self)
