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
* the model gets a copy of its input tensors, so a model that edits its input in place
  (``x.sub_(mean)``) never changes the caller's tensor;
* the output of each requested layer is captured (``h.activations[name]``, ``h.A`` for the first, and its
  input in ``h.inputs[name]``); a layer is an ``nn.Module``, a dotted name from ``model.named_modules()``,
  or ``None``: the last module, in execution order, whose output is a spatial map ``(B,K,h,w)`` with
  ``h*w > 1``. A module that runs several times in one forward pass (one ``nn.ReLU`` reused by a whole
  ResNet block) is captured at its **last** call, with a `LayerReuseWarning`; name one call with
  ``"name#k"`` (``k = 0`` the first call) to capture that call instead, without a warning;
* the first convolution that runs checks that it receives as many channels as it expects (a clear
  ValueError instead of torch's);
* with ``rule="deconvnet"`` or ``rule="guided"``, every ReLU passes signals down by that rule instead of
  the ordinary gradient (see `relu_backward`): ``nn.ReLU`` / ``nn.ReLU6`` modules through their hooks,
  and ReLUs computed by functions (``F.relu``, ``torch.relu``, ``x.relu_()``, ``F.relu6``,
  ``F.hardtanh(x, 0, 6)``) where the call is made, so the result equals the same model written with
  modules. Other activations (GELU, SiLU, Hardswish, LeakyReLU, ELU, sigmoid, ``clamp(min=0)`` ...) have
  no such rule: a model that computes no ReLU at all is refused (ValueError), a model that mixes them
  gets the rule at its ReLUs and the ordinary gradient elsewhere, with a `ReLURuleWarning` naming them.

On exit, also when the body raises: no hook is left on any module, and each module's ``training`` and
ReLU ``inplace`` flag, each parameter's ``requires_grad`` and ``.grad`` are as they were before.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .checks import as_rule
from .layer_names import named_layers, split_call


class ReLURuleWarning(UserWarning):
    """A deconvnet / guided pass went through activations that have no ReLU rule (ordinary gradient there)."""


class LayerReuseWarning(UserWarning):
    """A requested layer ran more than once in one forward pass; its last call was captured."""




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
    as_rule(rule)
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


# --- ReLUs computed by functions: the same rule, applied where the call is made ----------------

F = nn.functional

#: ReLU functions -> (the names of their arguments after the input, in order; is the call in place?)
_RELU_FUNCTIONS = {
    torch.relu: ((), False), torch.Tensor.relu: ((), False), F.relu: (("inplace",), False),
    torch.relu_: ((), True), torch.Tensor.relu_: ((), True),
    F.relu6: (("inplace",), False),
    F.hardtanh: (("min_val", "max_val", "inplace"), False), F.hardtanh_: (("min_val", "max_val"), True),
}

#: Activations with no ReLU rule: a backward pass goes through them as the ordinary gradient.
_OTHER_ACTIVATIONS = {
    F.gelu: "gelu", F.silu: "silu", F.hardswish: "hardswish", F.mish: "mish", F.elu: "elu", F.elu_: "elu",
    F.selu: "selu", F.celu: "celu", F.leaky_relu: "leaky_relu", F.leaky_relu_: "leaky_relu", F.prelu: "prelu",
    F.rrelu: "rrelu", F.softplus: "softplus", F.hardsigmoid: "hardsigmoid", torch.sigmoid: "sigmoid",
    torch.Tensor.sigmoid: "sigmoid", torch.tanh: "tanh", torch.Tensor.tanh: "tanh", F.logsigmoid: "logsigmoid",
}
_CLAMPS = {torch.clamp, torch.Tensor.clamp, torch.clamp_, torch.Tensor.clamp_, torch.clamp_min,
           torch.Tensor.clamp_min, torch.Tensor.clamp_min_}


def relu_call(func, args: tuple, kwargs: dict) -> tuple[torch.Tensor, float | None, bool] | None:
    """``(x, upper, inplace)`` when ``func(*args, **kwargs)`` computes a ReLU of ``x`` (``upper`` None) or a
    ReLU capped at ``upper`` (``F.relu6``, ``F.hardtanh(x, 0, upper)``); None for any other call."""
    if func not in _RELU_FUNCTIONS:
        return None
    names, inplace = _RELU_FUNCTIONS[func]
    given = dict(zip(names, args[1:]), **kwargs)
    upper = 6.0 if func is F.relu6 else None
    if func in (F.hardtanh, F.hardtanh_):
        low, upper = float(given.get("min_val", -1.0)), float(given.get("max_val", 1.0))
        if low != 0 or upper <= 0:
            return None                                # hardtanh(-1, 1) and the like: not a ReLU
    return args[0], upper, inplace or bool(given.get("inplace", False))


def other_activation(func, args: tuple, kwargs: dict) -> str | None:
    """The name of a non-ReLU activation computed by this call (``"gelu"``, ``"clamp(min=0)"`` ...), else None.
    ``hardtanh`` with bounds other than (0, upper) and ``clamp(min=0)`` count as such activations."""
    if func in _OTHER_ACTIVATIONS:
        return _OTHER_ACTIVATIONS[func]
    if func in (F.hardtanh, F.hardtanh_) and relu_call(func, args, kwargs) is None:
        return "hardtanh"
    if func in _CLAMPS:
        low = kwargs.get("min", args[1] if len(args) > 1 else None)
        if isinstance(low, (int, float)) and low == 0:
            return "clamp(min=0)"
    return None


class _ReLUCalls(TorchFunctionMode):
    """While the model's forward pass runs: gives ReLUs computed by functions the rule that `Hooks` gives
    ``nn.ReLU`` modules, and notes the other activations it sees. Calls inside a ReLU module (the module's
    hook handles those) and calls outside the forward pass go through untouched."""

    def __init__(self, hooks: "Hooks"):
        super().__init__()
        self.hooks = hooks

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        h = self.hooks
        if not h.in_forward or h.relu_depth:
            return func(*args, **kwargs)
        call = relu_call(func, args, kwargs)
        if call is None:
            name = other_activation(func, args, kwargs)
            if name is not None:
                h.other_activations.add(name)
            return func(*args, **kwargs)
        x, upper, inplace = call
        with torch.no_grad():
            out = func(*args, **kwargs)            # in place: out is x, now holding the ReLU's output
        return h.rule_at(x if not inplace else out, out, upper)


def _version(out) -> int:
    """A tensor's in-place version counter (0 for anything else, and for a tensor made under
    ``torch.inference_mode()``, which has none)."""
    return out._version if isinstance(out, torch.Tensor) and not out.is_inference() else 0


def _is_spatial(out) -> bool:
    return isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[2] * out.shape[3] > 1


# --- the context manager -----------------------------------------------------------------------


class Hooks:
    """Capture layer outputs and set the ReLU backward rule on ``model`` for the duration of a ``with``.

    Parameters
    ----------
    model: the network (any ``nn.Module``).
    layers: layers whose outputs to capture: modules, dotted names (``"name#k"`` for the k-th call of a
        module that runs several times), or ``None`` for the last spatial layer. Captured outputs are in
        ``activations`` (by name) and ``A`` (the first layer's), their inputs in ``inputs``.
    rule: ``"backprop"`` (plain gradients), ``"deconvnet"`` or ``"guided"``: how every ReLU passes a
        signal down (module or function, see the module docstring). Entered with one of the last two,
        ``h.rule`` may be set to any rule between backward passes: each backward pass follows the rule
        set when it runs. After each forward pass ``relu_count`` says how many ReLUs got the rule and
        ``other_activations`` names the activations that have none.
    """

    def __init__(self, model: nn.Module, layers: Sequence | None = (), rule: str = "backprop"):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        as_rule(rule)
        self.model, self._rule, self._hooked_rules = model, rule, rule != "backprop"
        layers = list(layers or ())
        found = iter(named_layers(model, [l for l in layers if l is not None]))
        self.layers = [None if l is None else next(found) for l in layers]
        self.activations: dict[str, torch.Tensor] = {}
        self.inputs: dict[str, object] = {}
        self._versions: dict[str, int] = {}
        self._calls: dict[str, int] = {}          # how often each requested layer ran in this forward pass
        self._every_call: list[tuple[str, object, object]] = []   # (layer, output, input) of each call, in order
        self._handles: list = []
        self._saved: dict | None = None
        self._last_spatial: str | None = None
        self._mode: _ReLUCalls | None = None
        self._conv_checked = False
        self.in_forward = False                   # the model's forward pass is running
        self.relu_depth = 0                       # inside an nn.ReLU module (its own F.relu call is not ruled)
        self.relu_count = 0                       # ReLUs given the rule in the last forward pass
        self.other_activations: set[str] = set()  # activations with no ReLU rule seen in it
        self._warned: set[str] = set()

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
            self._register_forward()
            if self._hooked_rules:
                self._register_rules()  # before capture: a capture hook on a ReLU must see the rule's output
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
        as_rule(rule)
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
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None
        self.in_forward, self.relu_depth = False, 0
        for m, training in self._saved["training"]:
            m.training = training
        for m, inplace in self._saved["inplace"]:
            m.inplace = inplace
        for p, requires_grad, grad in self._saved["params"]:
            p.requires_grad_(requires_grad)
            p.grad = grad

    # the forward pass as a whole ----------------------------------------------------------------

    def _register_forward(self) -> None:
        self._handles.append(self.model.register_forward_pre_hook(self._start_forward, with_kwargs=True))
        self._handles.append(self.model.register_forward_hook(self._end_forward))
        convs = [(n, m) for n, m in self.model.named_modules() if isinstance(m, nn.Conv2d)]
        for name, conv in convs:
            self._handles.append(conv.register_forward_pre_hook(self._first_conv_check(name)))

    def _start_forward(self, module, args, kwargs):
        """A fresh count for this pass, and copies of the input tensors for the model to use (and edit)."""
        self.in_forward, self.relu_count, self._conv_checked = True, 0, False
        self.other_activations.clear()
        self._calls.clear()
        self._every_call.clear()
        def fresh(a):
            return a.clone() if isinstance(a, torch.Tensor) else a
        return tuple(fresh(a) for a in args), {k: fresh(v) for k, v in kwargs.items()}

    def _end_forward(self, module, args, out) -> None:
        self.in_forward = False
        for spec in self.layers:
            if spec is not None and split_call(spec[0])[1] is None and self._calls.get(spec[0], 0) > 1:
                self._warn(LayerReuseWarning(
                    f"layer {spec[0]!r} ran {self._calls[spec[0]]} times in one forward pass (one module used for "
                    f"several steps); its last call is the one explained. Name another call as "
                    f"'{spec[0]}#k' (k = 0 for the first), or give the model one module per step"))
        if not self._hooked_rules:
            return
        others = ", ".join(sorted(self.other_activations)) or "none"
        if self.relu_count == 0:
            raise ValueError(f"the {self.rule} rule is a rule for ReLUs, and this model computed no ReLU in its "
                             f"forward pass (activations seen: {others}); at every other activation the signal "
                             "would be the plain gradient. Use saliency (the gradient) or grad_cam, which work "
                             "with any activation")
        if self.other_activations:
            self._warn(ReLURuleWarning(
                f"the {self.rule} rule was applied at the model's ReLUs ({self.relu_count} "
                f"call{'s' if self.relu_count != 1 else ''}); its other activations ({others}) have no such rule and "
                "pass the ordinary gradient"))

    def _warn(self, warning: Warning) -> None:
        """Warn once per ``with`` block (a method may run several forward passes)."""
        if str(warning) not in self._warned:
            self._warned.add(str(warning))
            warnings.warn(warning, stacklevel=2)

    def _first_conv_check(self, name: str):
        def hook(module, args):
            if self._conv_checked or not self.in_forward:
                return
            self._conv_checked = True
            x = args[0] if args else None
            if isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[1] != module.in_channels:
                raise ValueError(f"the first convolution the model runs ({name!r}) expects {module.in_channels} "
                                 f"channels and receives {x.shape[1]}; x must be (B,{module.in_channels},H,W) "
                                 "for this model")
        return hook

    # capturing activations ----------------------------------------------------------------------

    def _register_capture(self) -> None:
        for name, module in dict.fromkeys(spec for spec in self.layers if spec is not None):  # each once
            self._handles.append(module.register_forward_hook(self._capture(name, spatial_only=False)))
        if None in self.layers:
            for name, module in self.model.named_modules():
                if not list(module.children()):
                    self._handles.append(module.register_forward_hook(self._capture(name, spatial_only=True)))

    def _capture(self, name: str, spatial_only: bool):
        call = split_call(name)[1]
        def hook(module, args, out):
            if spatial_only:
                if not _is_spatial(out):
                    return
                self._last_spatial = name
            else:
                n = self._calls[name] = self._calls.get(name, 0) + 1
                if call is None:
                    self._every_call.append((name, out, args[0] if args else None))
                elif n - 1 != call:
                    return
            self.activations[name] = out
            self.inputs[name] = args[0] if args else None
            self._versions[name] = _version(out)
            if not spatial_only and isinstance(out, torch.Tensor):
                return out.clone()  # the network goes on with a copy: an in-place op after the layer
                                    # (DenseNet's F.relu(features, inplace=True)) cannot change the capture
        return hook

    def layer_name(self, i: int = 0) -> str:
        """The name of the i-th requested layer (for ``None``: the last spatial layer of the last pass)."""
        spec = self.layers[i]
        if spec is not None:
            return spec[0]
        if self._last_spatial is None:
            raise ValueError("the model produced no spatial (B,K,h,w) output with h*w > 1, so there is no "
                             "default layer; pass layer= explicitly")
        return self._last_spatial

    def activation(self, i: int = 0) -> torch.Tensor:
        """The captured output of the i-th requested layer in the last forward pass."""
        if not self.layers:
            raise ValueError("no layer was requested; pass layers=[...] to Hooks")
        name = self.layer_name(i)
        if name not in self.activations:
            base, call = split_call(name)
            if call is not None and self._calls.get(name, 0):
                raise ValueError(f"layer {base!r} ran {self._calls[name]} times, so it has no call #{call}; "
                                 f"valid calls are #0..#{self._calls[name] - 1}")
            raise ValueError(f"layer {name!r} was not run in the forward pass; pick a layer the model uses")
        out = self.activations[name]
        if _version(out) != self._versions[name]:
            raise ValueError(f"the output of layer {name!r} was modified in place after it was computed, "
                             "so it is not the value the network used; name the layer (layer="
                             f"{split_call(name)[0]!r}): a named layer's output is kept as a copy")
        return out

    def calls(self) -> dict[str, tuple[object, object]]:
        """Every call of the requested layers (named without ``#k``) in the last forward pass, in the order
        they ran: ``name -> (output, input)`` for a layer that ran once, ``"name#k" -> (output, input)`` for
        each call k of a layer that ran several times (the names every ``layer`` argument accepts)."""
        runs = {}
        for name, _, _ in self._every_call:
            runs[name] = runs.get(name, 0) + 1
        seen, out = {}, {}
        for name, output, inp in self._every_call:
            k = seen[name] = seen.get(name, -1) + 1
            out[name if runs[name] == 1 else f"{name}#{k}"] = (output, inp)
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
        caller's layout match Captum's to the last bits. An input made under ``torch.inference_mode()``
        is copied (such a tensor cannot take part in autograd)."""
        return (x.clone() if x.is_inference() else x.detach()).requires_grad_(True)

    # ReLU rules ---------------------------------------------------------------------------------

    def _register_rules(self) -> None:
        for m in self.model.modules():
            if _is_relu(m):
                self._handles.append(m.register_forward_pre_hook(self._enter_relu))
                self._handles.append(m.register_forward_hook(self._apply_rule))
        self._mode = _ReLUCalls(self)
        self._mode.__enter__()

    def _enter_relu(self, module, args):
        self.relu_depth += 1

    def _apply_rule(self, module, args, out):
        self.relu_depth -= 1
        return self.rule_at(args[0], out.detach(), _relu_upper(module))

    def rule_at(self, x: torch.Tensor, out: torch.Tensor, upper: float | None) -> torch.Tensor:
        """``out`` (a ReLU's output, computed from ``x``) with the backward pass of ``self.rule``."""
        self.relu_count += 1
        return _RuleReLU.apply(x, out, upper, self)
