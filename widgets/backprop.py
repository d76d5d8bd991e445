"""BackpropExplorer: saliency, deconvnet and guided backprop side by side, and one ReLU under a magnifier.

The three methods send a signal from the target score down to the pixels through the same network;
they differ only in what a ReLU passes down (`xai_ref.hooks.relu_backward`). With ``x`` the ReLU's
forward input and ``R`` the signal arriving from above:

    saliency (gradient)   R · [x > 0]
    deconvnet             max(R, 0)
    guided backprop       max(R, 0) · [x > 0]

So the three differ only where ``R < 0`` at an open gate (the gradient passes it, the other two block it)
or ``R > 0`` at a closed gate (deconvnet passes it, the other two block it). The zoom shows a small
patch of one ReLU with those numbers, opened where they differ.

`xai_ref.backprop.three_rules` computes the three signals from one forward pass and three backward passes (the ReLU
rule is switched between backward passes, `xai_ref.hooks.Hooks`); its maps are bit-identical to
``xr.saliency``, ``xr.deconvnet`` and ``xr.guided_backprop``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import ipywidgets as W
import torch

import xai_ref as xr
from xai_ref.backprop import three_rules
from xai_ref.checks import RULES
from xai_ref.hooks import relu_backward

from . import inputs, render
from .cache import Memo
from .explorer import Explorer, Panel, captioned, row, section, toggles
from .magnifier import call_order, gate, patch_sums, relu_layers, relu_upper, seed
from .stepper import Stepper

METHODS = {"saliency": xr.saliency, "deconvnet": xr.deconvnet, "guided backprop": xr.guided_backprop}
RULE_OF = {"saliency": "backprop", "deconvnet": "deconvnet", "guided backprop": "guided"}


@dataclass
class Signal:
    """The magnifier's numbers at one ReLU for one target: ``R`` rule -> (K,h,w), ``x`` (K,h,w)."""

    R: dict[str, torch.Tensor]
    x: torch.Tensor


class BackpropExplorer(Explorer):
    """Explore the three backward signals for a class or for one neuron.

    Usage: ``BackpropExplorer(model, image)`` takes any image classifier (an ``nn.Module`` or a shipped
    name: ``"vgg_shapes"`` by default, ``"efficientnet_lite0"``...) and one image (a ``(C,H,W)`` /
    ``(1,C,H,W)`` tensor, an RGB array, or a shipped photo name such as ``"cat_coffee"``). Controls: the
    target (a class, or in neuron mode a layer and channel), which method the stepper walks through, and
    the magnifier (which ReLU, channel and patch; which rule produced the signal arriving from above).
    Panels: the three signals at the pixels side by side with their maps; one ReLU under a magnifier (its
    forward input x, the signal R from above, what each rule passes down, and a line saying where and why
    the rules differ here, or why they cannot); the chosen method's equation step by step.

    Parameters: ``model`` (default ``"vgg_shapes"``: max-pool switches), ``image``, ``target`` (a class,
    default the prediction), ``neuron`` (an `xai_ref.Neuron`: start in neuron mode), ``relu`` (the ReLU
    call to zoom into: a module name, or ``"name#k"`` for one call of a reused module; default the last
    one with a spatial output, below the neuron in neuron mode), ``patch`` (side of the zoomed patch),
    ``class_names``, ``pixel_range``, ``logits`` (where the class scores are in a structured output).

    Controls: ``mode`` ("class" / "neuron"), ``target``, ``layer`` and ``unit`` (the neuron: its layer and
    channel, strongest position), ``method`` (the one the stepper walks through), ``relu``,
    ``relu_channel``, ``patch_row``, ``patch_col`` (the patch), ``above`` (which rule produced the signal
    arriving at the ReLU; the magnifier's controls exist only when the model has a ReLU module to zoom
    into), and the stepper's ``step`` and ``channel``.

    Where the magnifier opens: at the channel and patch of the ReLU with the most cells where the three
    rules pass different numbers (R < 0 at an open gate, R > 0 at a closed one; ties: the larger |R|
    there), searching the ReLUs from the last one down when the default has none. It follows the target
    (class, neuron) until the student moves its ReLU, channel or patch; choosing a ReLU opens it at its
    own best patch. In neuron mode a ReLU above the neuron's layer gets no signal: the magnifier starts
    below the neuron and says so when the student picks one above.

    The three maps come from one forward pass and three backward passes (`three_rules`), which also
    give the signal R at the zoomed ReLU under each rule.

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
        self.order = call_order(self.model, self.x, [*self.relus, *self.layers]) if self.relus else {}
        self.maps = Memo(self._maps, maxsize=24)            # spec -> {method: Trace}
        self.signals = Memo(self._signal, maxsize=16)       # (spec, relu) -> Signal
        self.panels = {m: Panel(m) for m in METHODS}
        self.auto = True          # the magnifier follows the target until the student moves it
        self._placing = False     # the explorer itself is moving the magnifier's controls
        self.rules = RULES        # the rules this model allows (set by available_methods)
        layer = neuron.layer if neuron is not None else list(self.layers)[-1]
        self.controls["mode"] = toggles(["class", "neuron"], "neuron" if neuron else "class", "explain", "80px")
        self.controls["target"] = self.class_dropdown(target)
        self.controls["layer"] = self.layer_dropdown(self.layers, layer, "neuron layer")
        self.controls["unit"] = W.IntSlider(value=neuron.channel if neuron else 0, min=0,
                                            max=self.layers[layer][0] - 1, description="channel")
        self.methods = self.available_methods(relu)
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
        target_handlers = (self.compute, self.draw_side_by_side) + ((self.follow_target, self.draw_zoom)
                                                                     if self.relus else ())
        self.on("mode", self.show_target_controls, *target_handlers)
        for name in ("target", "unit"):
            self.on(name, *target_handlers)
        self.on("layer", self.fit_unit, *target_handlers)
        self.on("method", self.compute)
        self.run(self.show_target_controls, self.compute, self.draw_side_by_side,
                 *((self.draw_zoom,) if self.relus else ()))

    def available_methods(self, relu) -> list[str]:
        """The methods this model allows, found by computing the first target's maps: deconvnet and
        guided backprop need ReLUs (`xai_ref` says why not); their panels are switched off with that
        reason."""
        spec = self.spec()
        with self.noting():
            try:
                self._first_relu = relu
                self.maps(spec)
                return list(METHODS)
            except ValueError:
                self.rules = ("backprop",)
            for method in ("deconvnet", "guided backprop"):
                try:
                    METHODS[method](self.model, self.x, self._target(spec), logits=self.logits)
                except ValueError as e:
                    self.panels[method].disable(str(e))
        return ["saliency"]

    def build_magnifier(self, relu) -> list[W.Widget]:
        """The magnifier's controls and pictures, or one line saying why there is none: it shows the input
        of an ``nn.ReLU``/``nn.ReLU6`` call, and the model has none."""
        if not self.relus:
            return [W.HTML("<div style='font-size:12px;color:#777'>&#8856; not available for this model: the "
                           "magnifier shows the input of an nn.ReLU / nn.ReLU6 module with a spatial output, and "
                           "this model has none (a ReLU computed by F.relu has no module to look into)</div>")]
        start = relu if relu is not None else list(self.relus)[-1]
        K, h, w = self.relus[start]
        self.controls["relu"] = self.layer_dropdown(self.relus, start, "zoom ReLU")
        self.controls["relu_channel"] = W.IntSlider(value=0, min=0, max=K - 1, description="channel")
        self.controls["patch_row"] = W.IntSlider(value=0, min=0, max=max(0, h - self.patch), description="patch row")
        self.controls["patch_col"] = W.IntSlider(value=0, min=0, max=max(0, w - self.patch), description="patch col")
        self.controls["above"] = toggles(list(RULE_OF.values()), "backprop", "R computed above with", "90px",
                                         tooltip="the rule used by the layers above this ReLU")
        self.zoom_map, self.zoom_numbers, self.zoom_note = self.picture(), W.HTML(), W.HTML()
        with self.noting():
            self.place(search=relu is None, keep_relu=relu is not None)
        self.on("relu", self.relu_chosen)
        for name in ("relu_channel", "patch_row", "patch_col"):
            self.on(name, self.patch_moved)
        self.on("above", self.draw_zoom)
        c = self.controls
        return [row(W.VBox([c["relu"], c["relu_channel"], c["patch_row"], c["patch_col"], c["above"]]),
                    captioned("forward input x of the ReLU (patch in red)", self.zoom_map)),
                self.zoom_note, self.zoom_numbers]

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

    def fit_unit(self) -> None:
        """Keep the neuron's channel within the chosen layer's channels."""
        K = self.layers[self.controls["layer"].value][0]
        u = self.controls["unit"]
        u.value, u.max = min(u.value, K - 1), K - 1

    def describe(self) -> str:
        spec = self.spec()
        if spec[0] == "class":
            return f"target: the score of class <b>{html.escape(self.class_name(spec[1]))}</b>"
        return (f"target: neuron <b>{html.escape(spec[1])}</b>, channel {spec[2]}, at its strongest position "
                "(Zeiler &amp; Fergus)")

    # --- where the magnifier looks ----------------------------------------------------------------

    def above_neuron(self, relu: str, spec: tuple | None = None) -> bool:
        """In neuron mode: does the ReLU call ``relu`` run after the neuron's layer (so that no signal from
        the neuron reaches it)?"""
        spec = self.spec() if spec is None else spec
        if spec[0] != "neuron" or relu == spec[1]:
            return False
        return self.order.get(relu, -1) > self.order.get(spec[1], len(self.order))

    def below(self, spec: tuple) -> list[str]:
        """The ReLU calls that the target's signal can reach, nearest to the target first."""
        return [r for r in reversed(self.relus) if not self.above_neuron(r, spec)]

    def disagreements(self, relu: str, spec: tuple | None = None) -> torch.Tensor:
        """(K,h,w) bool: the cells of ``relu`` where the three rules pass different numbers, for the signal
        computed above with the chosen rule: R < 0 at an open gate or R > 0 at a closed gate."""
        s = self.signals(self.spec() if spec is None else spec, relu)
        R, g = s.R[self.controls["above"].value], gate(s.x, relu_upper(self.model, relu))
        return (g & (R < 0)) | (~g & (R > 0))

    def best_patch(self, relu: str, spec: tuple | None = None) -> tuple[int, int, int, int]:
        """``(count, channel, row, col)``: the patch of ``relu`` with the most cells where the rules
        disagree (ties: the larger |R| on those cells, then the first in channel, row, column order); with
        no such cell, count 0 and the patch around the strongest |R|."""
        spec = self.spec() if spec is None else spec
        D = self.disagreements(relu, spec)
        R = self.signals(spec, relu).R[self.controls["above"].value]
        K, h, w = D.shape
        ph, pw = min(self.patch, h), min(self.patch, w)
        count = patch_sums(D.float(), ph, pw).round()
        if float(count.max()) > 0:
            weight = patch_sums(R.abs() * D, ph, pw)
            score = count + 0.5 * weight / (float(weight.max()) or 1.0)
            k, rest = divmod(int(score.flatten().argmax()), count.shape[1] * count.shape[2])
            i, j = divmod(rest, count.shape[2])
            return int(count.max()), k, i, j
        k = int(R.abs().sum((1, 2)).argmax())
        i, j = divmod(int(R[k].abs().argmax()), w)
        return 0, k, max(0, min(i - self.patch // 2, h - self.patch)), max(0, min(j - self.patch // 2, w - self.patch))

    def place(self, search: bool = False, keep_relu: bool = False) -> None:
        """Move the magnifier to the best patch (`best_patch`) of the current ReLU; with ``search`` (or in
        neuron mode when the ReLU is above the neuron), of the first ReLU in `below` order that has a
        patch where the rules disagree."""
        spec, relu = self.spec(), self.controls["relu"].value
        if keep_relu:
            candidates = [relu]
        elif self.above_neuron(relu, spec):
            candidates = self.below(spec) or [relu]
        elif search:
            candidates = [relu] + [r for r in self.below(spec) if r != relu]
        else:
            candidates = [relu]
        best = None
        for r in candidates:
            found = self.best_patch(r, spec)
            if best is None or found[0] > 0:
                best = (r, *found)
            if found[0] > 0:
                break
        r, _, k, i, j = best
        self.set_magnifier(r, k, i, j)

    def set_magnifier(self, relu: str, k: int, i: int, j: int) -> None:
        """Set the magnifier's controls without their handlers running (one redraw follows)."""
        self._placing = True
        try:
            c = self.controls
            c["relu"].value = relu
            self.fit_patch()
            c["relu_channel"].value, c["patch_row"].value, c["patch_col"].value = k, i, j
        finally:
            self._placing = False

    def follow_target(self) -> None:
        """After a target change: while the student has not moved the magnifier, it goes to the new
        target's best patch of its ReLU; a ReLU above the new neuron is always left for one below."""
        if self.auto or self.above_neuron(self.controls["relu"].value):
            self.place()

    def relu_chosen(self) -> None:
        """The student chose a ReLU: open it at its best patch."""
        if self._placing:
            return
        self.auto = False
        self.fit_patch()
        self.place(keep_relu=True)
        self.draw_zoom()

    def patch_moved(self) -> None:
        if self._placing:
            return
        self.auto = False
        self.draw_zoom()

    def fit_patch(self) -> None:
        """Keep the channel and patch inside the chosen ReLU's maps."""
        K, h, w = self.relus[self.controls["relu"].value]
        for name, n in (("relu_channel", K), ("patch_row", h - self.patch + 1), ("patch_col", w - self.patch + 1)):
            s = self.controls[name]
            s.value, s.max = min(s.value, max(0, n - 1)), max(0, n - 1)

    # --- computing and drawing --------------------------------------------------------------------

    def _maps(self, spec: tuple) -> dict:
        """The three methods' traces for ``spec`` from one forward pass (`three_rules`); the same pass keeps
        the signal at the zoomed ReLU, for the magnifier."""
        relu = self.controls["relu"].value if "relu" in self.controls else getattr(self, "_first_relu", None)
        if relu is None and self.relus:
            relu = list(self.relus)[-1]
        p = three_rules(self.model, self.x, self._target(spec), relu=relu, logits=self.logits, rules=self.rules)
        if relu is not None and p.R is not None and len(self.rules) == len(RULES):
            seed(self.signals, (spec, relu), Signal({r: v[0] for r, v in p.R.items()}, p.x_relu[0]))
        return {method: p.traces[rule] for method, rule in RULE_OF.items() if rule in p.traces}

    def _signal(self, spec: tuple, relu: str) -> Signal:
        """R under each rule and x at the ReLU ``relu``: one forward pass, backward passes down to it."""
        p = three_rules(self.model, self.x, self._target(spec), relu=relu, logits=self.logits, input=False)
        return Signal({r: v[0] for r, v in p.R.items()}, p.x_relu[0])

    def relu_inputs(self, relu: str) -> torch.Tensor:
        """The forward input (K,h,w) of the ReLU call ``relu`` (from the magnifier's pass)."""
        return self.signals(self.spec(), relu).x

    def compute(self) -> None:
        self.trace = self.maps(self.spec())[self.controls["method"].value]
        self.stepper.show(self.trace)

    def draw_side_by_side(self) -> None:
        traces = self.maps(self.spec())
        for method in self.methods:
            t = traces[method]
            m = t.map[0].numpy()
            signal = self.fit(render.signed_rgb(t.grad[0]))
            magnitude = self.fit(render.magnitude(m))
            self.panels[method].picture.value = render.png(render.tile([signal, magnitude], cols=1, pad=4))
        self.target_text.value = f"<div style='font-size:13px'>{self.describe()}</div>"

    def draw_zoom(self) -> None:
        relu, above = self.controls["relu"].value, self.controls["above"].value
        s = self.signals(self.spec(), relu)
        x, R = s.x, s.R[above]
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
        g = gate(xp, upper)
        grids = [render.grid_html(xp, "forward input x", g.numpy()),
                 render.grid_html(Rp, f"R from above ({above})")]
        for name, rule in RULE_OF.items():
            grids.append(render.grid_html(relu_backward(Rp, xp, rule, upper), f"{name}: passes down"))
        self.zoom_note.value = self.why(relu, k, i, j, xp, Rp, g)
        self.zoom_numbers.value = (
            "<div style='font-size:12px;margin:4px 0'>Framed bold cells: the forward gate [x &gt; 0] is open. "
            "saliency: R·[x&gt;0] &nbsp;|&nbsp; deconvnet: max(R,0) &nbsp;|&nbsp; guided: max(R,0)·[x&gt;0]"
            + (" &nbsp;(ReLU6: the gate is 0 &lt; x &lt; 6)" if upper else "") + "</div>" + "".join(grids))

    def why(self, relu: str, k: int, i: int, j: int, xp, Rp, g) -> str:
        """One line under the magnifier: where the three rules differ in this patch and why, or why they
        cannot differ here (and where they do)."""
        style = "font-size:12px;margin:4px 0;padding:3px 6px;border-left:3px solid {}"
        spec = self.spec()
        if self.above_neuron(relu, spec):
            below = self.below(spec)
            hint = f"pick a ReLU below it (e.g. <code>{html.escape(below[0])}</code>)" if below else \
                "pick a ReLU below it"
            return (f"<div class='xr-why xr-above' style='{style.format('#b00')}'>this ReLU is above the neuron's "
                    f"layer <code>{html.escape(spec[1])}</code>: no signal reaches it (R = 0 everywhere), so all "
                    f"three rules pass zeros; {hint}</div>")
        differ = (g & (Rp < 0)) | (~g & (Rp > 0))
        n = int(differ.sum())
        if n:
            neg, pos = int((g & (Rp < 0)).sum()), int((~g & (Rp > 0)).sum())
            parts = ([f"{neg} open gate{'s' if neg != 1 else ''} with R &lt; 0 (saliency passes R; deconvnet and "
                      "guided pass 0)"] if neg else []) + \
                    ([f"{pos} closed gate{'s' if pos != 1 else ''} with R &gt; 0 (deconvnet passes R; saliency and "
                      "guided pass 0)"] if pos else [])
            return (f"<div class='xr-why xr-differ' style='{style.format('#2ca02c')}'>the three rules differ in "
                    f"{n} of {Rp.numel()} cells here: " + "; ".join(parts) + "</div>")
        if not bool((Rp != 0).any()):
            reason = "no signal reaches this patch (R = 0 in every cell): all three rules pass zeros"
        elif bool(g.all()):
            reason = "here R &ge; 0 and every gate is open: all three rules pass the same numbers (R itself)"
        elif not bool(g.any()):
            reason = "here every gate is closed and R &le; 0: all three rules pass zeros"
        else:
            reason = ("here R &ge; 0 at every open gate and R &le; 0 at every closed gate: all three rules pass "
                      "the same numbers")
        count, kk, ii, jj = self.best_patch(relu, spec)
        where = (f"; at this ReLU they differ most at channel {kk}, patch row {ii}, col {jj} ({count} cells)"
                 if count else "; at this ReLU they never differ for this target")
        return (f"<div class='xr-why xr-same' style='{style.format('#8a5a00')}'>{reason}. The rules differ only "
                "where R &lt; 0 at an open gate or R &gt; 0 at a closed gate" + where + "</div>")
