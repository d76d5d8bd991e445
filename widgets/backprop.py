"""BackpropExplorer: saliency, deconvnet and guided backprop side by side, and one ReLU under a magnifier.

The three methods send a signal from the target score down to the pixels through the same network;
they differ only in what a ReLU passes down (`xai_ref.hooks.relu_backward`). With ``x`` the ReLU's
forward input and ``R`` the signal arriving from above:

    saliency (gradient)   R · [x > 0]
    deconvnet             max(R, 0)
    guided backprop       max(R, 0) · [x > 0]

The zoom shows a small patch of one ReLU with those numbers.
"""

from __future__ import annotations

import html

import ipywidgets as W
import torch
from torch import nn

import xai_ref as xr
from xai_ref.hooks import Hooks, relu_backward
from xai_ref.layer_names import split_call

from . import inputs, render
from .cache import Memo
from .explorer import Explorer, Panel, captioned, row, section, toggles
from .stepper import Stepper

METHODS = {"saliency": xr.saliency, "deconvnet": xr.deconvnet, "guided backprop": xr.guided_backprop}
RULE_OF = {"saliency": "backprop", "deconvnet": "deconvnet", "guided backprop": "guided"}


class BackpropExplorer(Explorer):
    """Explore the three backward signals for a class or for one neuron.

    Parameters: ``model`` (default ``"vgg_shapes"``: max-pool switches), ``image``, ``target`` (a class,
    default the prediction), ``neuron`` (an `xai_ref.Neuron`: start in neuron mode), ``relu`` (the ReLU
    call to zoom into: a module name, or ``"name#k"`` for one call of a reused module; default the last
    one with a spatial output), ``patch`` (side of the zoomed patch), ``class_names``, ``pixel_range``,
    ``logits`` (where the class scores are in a structured output).

    Controls: ``mode`` ("class" / "neuron"), ``target``, ``layer`` and ``unit`` (the neuron: its layer and
    channel, strongest position), ``method`` (the one the stepper walks through), ``relu``,
    ``relu_channel``, ``patch_row``, ``patch_col`` (the patch), ``above`` (which rule produced the signal
    arriving at the ReLU; the magnifier's controls exist only when the model has a ReLU module to zoom
    into), and the stepper's ``step`` and ``channel``.

    What a model cannot show is switched off with its reason: deconvnet and guided backprop on a model
    with no ReLU (GELU, SiLU), the magnifier on a model with no ``nn.ReLU``/``nn.ReLU6`` module (ReLUs
    computed by ``F.relu`` have no module whose input could be shown; the side-by-side maps still work).

    Lesson: ``lessons/03_deconvnet_guided_backprop.ipynb``.
    """

    title = "Saliency, deconvnet, guided backprop: one backward pass, three ReLU rules"

    def __init__(self, model=None, image=None, target=None, neuron: xr.Neuron | None = None, relu=None,
                 patch: int = 4, class_names=None, pixel_range=None, logits=None):
        super().__init__(model, image, "vgg_shapes", pixel_range, class_names, logits)
        self.patch = patch
        self.layers = inputs.spatial_layers(self.model, self.x)
        self.relus = relu_layers(self.model, self.x)
        self.traces = Memo(lambda method, spec: METHODS[method](self.model, self.x, self._target(spec),
                                                                logits=logits), maxsize=24)
        self.signals = Memo(self._signal, maxsize=16)
        self.relu_inputs = Memo(lambda relu: relu_input(self.model, self.x, relu), maxsize=16)
        self.panels = {m: Panel(m) for m in METHODS}
        self.methods = self.available_methods(("class", int(self.output.argmax()) if target is None else int(target)))

        layer = neuron.layer if neuron is not None else list(self.layers)[-1]
        self.controls["mode"] = toggles(["class", "neuron"], "neuron" if neuron else "class", "explain", "80px")
        self.controls["target"] = self.class_dropdown(target)
        self.controls["layer"] = self.layer_dropdown(self.layers, layer, "neuron layer")
        self.controls["unit"] = W.IntSlider(value=neuron.channel if neuron else 0, min=0,
                                            max=self.layers[layer][0] - 1, description="channel")
        shown = "guided backprop" if "guided backprop" in self.methods else "saliency"
        self.controls["method"] = toggles(self.methods, shown, "stepper shows", "130px")
        magnifier = self.build_magnifier(relu)
        self.stepper = Stepper(rgb=self.rgb, pixel_range=self.pixel_range, class_names=self.class_names)
        self.controls.update(self.stepper.controls)
        self.target_text = W.HTML()
        self.children = [
            W.HTML(f"<h3>{self.title}</h3>"),
            row(self.controls["mode"], self.controls["target"]),
            row(self.controls["layer"], self.controls["unit"]),
            self.status, self.target_text,
            row(*self.panels.values()),
            W.HTML("<div style='font-size:12px'>top: the signal at the pixels (grey = 0, each method on its own "
                   "scale); bottom: the map, max over colour channels of its magnitude</div>"),
            section("One ReLU under a magnifier"),
            *magnifier,
            section("The equation, step by step"),
            self.controls["method"],
            self.stepper,
        ]
        target_handlers = (self.compute, self.draw_side_by_side) + ((self.draw_zoom,) if self.relus else ())
        self.on("mode", self.show_target_controls, *target_handlers)
        for name in ("target", "unit"):
            self.on(name, *target_handlers)
        self.on("layer", self.fit_unit, *target_handlers)
        self.on("method", self.compute)
        self.run(self.show_target_controls, *target_handlers)

    def available_methods(self, spec: tuple) -> list[str]:
        """The methods this model allows, computed once for ``spec``: deconvnet and guided backprop need
        ReLUs (`xai_ref` says why not); their panels are switched off with that reason."""
        methods = ["saliency"]
        with self.noting():
            for method in ("deconvnet", "guided backprop"):
                try:
                    self.traces(method, spec)
                    methods.append(method)
                except ValueError as e:
                    self.panels[method].disable(str(e))
        return methods

    def build_magnifier(self, relu) -> list[W.Widget]:
        """The magnifier's controls and pictures, or one line saying why there is none: it shows the input
        of an ``nn.ReLU``/``nn.ReLU6`` call, and the model has none."""
        if not self.relus:
            return [W.HTML("<div style='font-size:12px;color:#777'>&#8856; not available for this model: the "
                           "magnifier shows the input of an nn.ReLU / nn.ReLU6 module with a spatial output, and "
                           "this model has none (a ReLU computed by F.relu has no module to look into)</div>")]
        relu = relu if relu is not None else list(self.relus)[-1]
        K, h, w = self.relus[relu]
        self.controls["relu"] = self.layer_dropdown(self.relus, relu, "zoom ReLU")
        self.controls["relu_channel"] = W.IntSlider(value=0, min=0, max=K - 1, description="channel")
        self.controls["patch_row"] = W.IntSlider(value=0, min=0, max=max(0, h - self.patch), description="patch row")
        self.controls["patch_col"] = W.IntSlider(value=0, min=0, max=max(0, w - self.patch), description="patch col")
        self.controls["above"] = toggles(list(RULE_OF.values()), "backprop", "R computed above with", "90px",
                                         tooltip="the rule used by the layers above this ReLU")
        self.zoom_map, self.zoom_numbers = self.picture(), W.HTML()
        self.start_patch()
        self.on("relu", self.fit_patch, self.draw_zoom)
        for name in ("relu_channel", "patch_row", "patch_col", "above"):
            self.on(name, self.draw_zoom)
        c = self.controls
        return [row(W.VBox([c["relu"], c["relu_channel"], c["patch_row"], c["patch_col"], c["above"]]),
                    captioned("forward input x of the ReLU (patch in red)", self.zoom_map)),
                self.zoom_numbers]

    # --- targets ----------------------------------------------------------------------------------

    def spec(self) -> tuple:
        """The target as hashable control values: ("class", c) or ("neuron", layer, channel)."""
        if self.controls["mode"].value == "class":
            return ("class", self.controls["target"].value)
        return ("neuron", self.controls["layer"].value, self.controls["unit"].value)

    def _target(self, spec: tuple):
        return spec[1] if spec[0] == "class" else xr.Neuron(spec[1], spec[2], "max")

    def show_target_controls(self) -> None:
        """Show the class chooser in class mode, the layer and channel choosers in neuron mode."""
        neuron = self.controls["mode"].value == "neuron"
        self.controls["target"].layout.display = "none" if neuron else ""
        for name in ("layer", "unit"):
            self.controls[name].layout.display = "" if neuron else "none"

    def start_patch(self) -> None:
        """Start the zoom where the signal from above is strongest (its channel, a patch around it)."""
        R = self.signals(self.spec(), self.controls["relu"].value, self.controls["above"].value)
        k = int(R.abs().sum((1, 2)).argmax())
        i, j = divmod(int(R[k].abs().argmax()), R.shape[2])
        self.controls["relu_channel"].value = k
        self.controls["patch_row"].value = min(max(0, i - self.patch // 2), self.controls["patch_row"].max)
        self.controls["patch_col"].value = min(max(0, j - self.patch // 2), self.controls["patch_col"].max)

    def fit_unit(self) -> None:
        """Keep the neuron's channel within the chosen layer's channels."""
        K = self.layers[self.controls["layer"].value][0]
        u = self.controls["unit"]
        u.value, u.max = min(u.value, K - 1), K - 1

    def fit_patch(self) -> None:
        """Keep the channel and patch inside the chosen ReLU's maps."""
        K, h, w = self.relus[self.controls["relu"].value]
        for name, n in (("relu_channel", K), ("patch_row", h - self.patch + 1), ("patch_col", w - self.patch + 1)):
            s = self.controls[name]
            s.value, s.max = min(s.value, max(0, n - 1)), max(0, n - 1)

    def describe(self) -> str:
        spec = self.spec()
        if spec[0] == "class":
            return f"target: the score of class <b>{html.escape(self.class_name(spec[1]))}</b>"
        return (f"target: neuron <b>{html.escape(spec[1])}</b>, channel {spec[2]}, at its strongest position "
                "(Zeiler &amp; Fergus)")

    # --- computing and drawing --------------------------------------------------------------------

    def compute(self) -> None:
        self.trace = self.traces(self.controls["method"].value, self.spec())
        self.stepper.show(self.trace)

    def draw_side_by_side(self) -> None:
        spec = self.spec()
        for method in self.methods:
            t = self.traces(method, spec)
            m = t.map[0].numpy()
            signal = self.fit(render.signed_rgb(t.grad[0]))
            magnitude = self.fit(render.magnitude(m))
            self.panels[method].picture.value = render.png(render.tile([signal, magnitude], cols=1, pad=4))
        self.target_text.value = f"<div style='font-size:13px'>{self.describe()}</div>"

    def _signal(self, spec: tuple, relu: str, above: str) -> torch.Tensor:
        """R (K,h,w): the signal arriving at the ReLU from above, the layers above using rule ``above``."""
        p = xr.forward_backward(self.model, self.x, self._target(spec), wrt=("layer",), layer=relu, rule=above,
                                logits=self.logits)
        return p.dY_dA[0]

    def draw_zoom(self) -> None:
        relu = self.controls["relu"].value
        x, R = self.relu_inputs(relu), self.signals(self.spec(), relu, self.controls["above"].value)
        k = self.controls["relu_channel"].value
        i, j, n = self.controls["patch_row"].value, self.controls["patch_col"].value, self.patch
        xk = x[k].numpy()
        scale = render.scale(xk)
        pic = render.fit(render.colourise(xk, *scale), 224)
        sy, sx = pic.shape[0] / xk.shape[0], pic.shape[1] / xk.shape[1]
        patch = (j * sx, i * sy, (j + n) * sx, (i + n) * sy)
        self.zoom_map.value = render.png(render.with_bar(render.draw_rect(pic, patch), *scale))
        xp, Rp = x[k, i:i + n, j:j + n], R[k, i:i + n, j:j + n]
        upper = relu_upper(self.model, relu)
        gate = ((xp > 0) if upper is None else (xp > 0) & (xp < upper)).numpy()
        grids = [render.grid_html(xp, "forward input x", gate),
                 render.grid_html(Rp, f"R from above ({self.controls['above'].value})")]
        for name, rule in RULE_OF.items():
            grids.append(render.grid_html(relu_backward(Rp, xp, rule, upper), f"{name}: passes down"))
        self.zoom_numbers.value = (
            "<div style='font-size:12px;margin:4px 0'>Framed bold cells: the forward gate [x &gt; 0] is open. "
            "saliency: R·[x&gt;0] &nbsp;|&nbsp; deconvnet: max(R,0) &nbsp;|&nbsp; guided: max(R,0)·[x&gt;0]"
            + (" &nbsp;(ReLU6: the gate is 0 &lt; x &lt; 6)" if upper else "") + "</div>" + "".join(grids))


def relu_layers(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """The calls of ``nn.ReLU``/``nn.ReLU6`` modules with a spatial output, name -> (K,h,w), in execution
    order; a module reused by several layers is listed once per call, ``"name#k"`` (`inputs.module_calls`)."""
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    calls = inputs.module_calls(model, x, names)
    return {n: tuple(out.shape[1:]) for n, (out, _) in calls.items()
            if out.dim() == 4 and out.shape[2] * out.shape[3] > 1}


def relu_input(model: nn.Module, x: torch.Tensor, relu: str) -> torch.Tensor:
    """The forward input (K,h,w) of the ReLU call ``relu`` (a module name, or ``"name#k"`` for the k-th call
    of a reused module), as `xai_ref.hooks.Hooks` captures it."""
    with torch.no_grad(), Hooks(model, layers=[relu]) as h:
        model(x)
        return h.inputs[relu][0]


def relu_upper(model: nn.Module, relu: str) -> float | None:
    """6 for a ReLU6 call (its gate is 0 < x < 6), None for a ReLU."""
    module = dict(model.named_modules())[split_call(relu)[0]]
    return 6.0 if isinstance(module, nn.ReLU6) else None
