"""AscentExplorer: class model visualisation by gradient ascent (Simonyan et al. 2014), live.

    I* = argmax_I  S_c(I) − λ ‖I‖²        each step: I ← I + lr · ∇J / ‖∇J‖, then jitter / blur

Choose a class (or a channel of a layer), the learning rate, the L2 weight λ, jitter and blur; press
run: the image and the score curve update every few steps; pause, change a setting (the run starts
over), run again. The same seed gives the same images.

How the run proceeds: each chunk is one `xai_ref.class_model` call of ``chunk`` steps that continues
from the previous chunk's image (``init=image``), with the jitter seed ``seed + steps done``; the chunks'
curves and snapshots are joined into one trace. The same settings give the same images; without jitter
the result equals one call with all the steps.
"""

from __future__ import annotations

import asyncio

import ipywidgets as W
import torch

import xai_ref as xr

from . import inputs, render
from .explorer import Explorer, captioned, row, section, toggles
from .stepper import Stepper

KINDS = {"I0": "image", "image": "image"}


class AscentExplorer(Explorer):
    """Watch gradient ascent make the image a class (or a channel) likes most.

    Usage: ``AscentExplorer()`` (``nin_shapes``, class 0), ``AscentExplorer(model, target=c)`` for any
    model (a name or an ``nn.Module``), or ``neuron=xr.Neuron(layer, k)`` for a channel; ``image`` only
    gives the input's shape and pixel range. Press run (a toggle) to take ``steps`` steps, chunk by chunk.
    Panels: the image I so far; the score S and the objective J over the steps; and the stepper through
    I0 -> S -> R -> J -> grad_norm -> snapshots -> image with their numbers.

    Parameters (as `xai_ref.class_model`): ``model`` (default ``"nin_shapes"``), ``target`` (a class,
    default 0), ``neuron`` (an `xai_ref.Neuron`: start in channel mode), ``steps`` (per run), ``lr``,
    ``l2``, ``jitter``, ``blur_every``, ``blur_sigma``, ``seed``, ``init``; ``chunk`` (steps between
    screen updates), ``max_steps`` (the end of the steps slider), ``image`` (only its shape and pixel
    range are used), ``class_names``, ``pixel_range``, ``logits`` (where the class scores are in a
    structured output).

    Controls: ``mode`` ("class" / "channel"), ``target``, ``layer``, ``unit``, ``lr``, ``l2``, ``jitter``,
    ``blur_every``, ``blur_sigma``, ``seed``, ``init``, ``steps``, ``run`` (a toggle: run / pause), and
    the stepper's ``step`` and ``channel``.

    In a running kernel the run advances one chunk per event-loop turn, so pause and the other controls
    respond while it runs; without one (tests, scripts) setting ``run`` to True runs to the end first.

    Lesson: ``lessons/04_saliency_gradient_ascent.ipynb``.
    """

    title = "Class model: gradient ascent on the input"

    def __init__(self, model=None, target: int = 0, neuron: xr.Neuron | None = None, steps: int = 60,
                 lr: float = 1.0, l2: float = 1e-3, jitter: int = 0, blur_every: int = 0, blur_sigma: float = 0.5,
                 seed: int = 0, init: str = "zeros", chunk: int = 10, max_steps: int | None = None, image=None,
                 class_names=None, pixel_range=None, logits=None):
        super().__init__(model, image, "nin_shapes", pixel_range, class_names, logits)
        self.chunk, self.done = chunk, 0
        self.shape = tuple(self.x.shape[1:])
        self.layers = inputs.spatial_layers(self.model, self.x)
        self.trace = None
        layer = neuron.layer if neuron is not None else list(self.layers)[-1]
        c = self.controls
        c["mode"] = toggles(["class", "channel"], "channel" if neuron else "class", "maximise", "80px")
        c["target"] = self.class_dropdown(target)
        c["layer"] = self.layer_dropdown(self.layers, layer)
        c["unit"] = W.IntSlider(value=neuron.channel if neuron else 0, min=0, max=self.layers[layer][0] - 1,
                                description="channel")
        c["lr"] = W.FloatLogSlider(value=lr, base=10, min=-2, max=1, description="lr", readout_format=".3g")
        c["l2"] = W.FloatLogSlider(value=l2, base=10, min=-6, max=-1, description="L2 λ", readout_format=".1e")
        c["jitter"] = W.IntSlider(value=jitter, min=0, max=8, description="jitter px")
        c["blur_every"] = W.IntSlider(value=blur_every, min=0, max=10, description="blur every")
        c["blur_sigma"] = W.FloatSlider(value=blur_sigma, min=0.1, max=2.0, step=0.1, description="blur σ")
        c["seed"] = W.IntSlider(value=seed, min=0, max=20, description="seed")
        c["init"] = toggles(["zeros", "random"], init, "start from", "80px")
        c["steps"] = W.IntSlider(value=steps, min=chunk, max=max(steps, max_steps or 20 * chunk), step=chunk,
                                 description="steps")
        c["run"] = W.ToggleButton(value=False, description="run", icon="play", tooltip="run / pause")
        self.reset_button = W.Button(description="start over", icon="undo")
        self.reset_button.on_click(lambda _: self.run(self.reset))
        self.stepper = Stepper(rgb=self.rgb, pixel_range=self.pixel_range, class_names=self.class_names,
                               kinds=KINDS)
        self.controls.update(self.stepper.controls)
        self.image, self.curve, self.progress = self.picture(), self.picture(), W.HTML()
        self.children = [
            W.HTML(f"<h3>{self.title}</h3>"),
            row(c["mode"], c["target"]), row(c["layer"], c["unit"]),
            row(W.VBox([c["lr"], c["l2"], c["jitter"]]), W.VBox([c["blur_every"], c["blur_sigma"], c["seed"]]),
                W.VBox([c["init"], c["steps"], W.HBox([c["run"], self.reset_button]), self.progress])),
            self.status,
            row(captioned("the image I", self.image), captioned("score and objective so far", self.curve)),
            section("The optimisation, term by term"),
            self.stepper,
        ]
        for name in ("mode", "target", "layer", "unit", "lr", "l2", "jitter", "blur_every", "blur_sigma", "seed",
                     "init"):
            self.on(name, self.reset)
        self.on("layer", self.fit_unit)
        self.on("mode", self.show_target_controls)
        self.on("steps", self.draw)
        c["run"].observe(self._on_run, "value")
        self.run(self.show_target_controls, self.draw)

    # --- settings ---------------------------------------------------------------------------------

    def settings(self) -> tuple:
        """Every control value the optimisation depends on (the cache key, with the number of steps)."""
        c = self.controls
        target = (c["target"].value if c["mode"].value == "class"
                  else ("channel", c["layer"].value, c["unit"].value))
        return (target, c["lr"].value, c["l2"].value, c["jitter"].value, c["blur_every"].value,
                c["blur_sigma"].value, c["seed"].value, c["init"].value)

    def _chunk(self, steps: int) -> xr.Trace:
        """``steps`` more steps of gradient ascent, from where the run is (or from ``init`` at step 0)."""
        target, lr, l2, jitter, blur_every, blur_sigma, seed, init = self.settings()
        if isinstance(target, tuple):
            target = xr.Neuron(target[1], target[2], "sum")
        start = init if self.trace is None else self.trace.image
        return xr.class_model(self.model, target, self.shape, steps=steps, lr=lr, l2=l2, jitter=jitter,
                              blur_every=blur_every, blur_sigma=blur_sigma, seed=seed + self.done, init=start,
                              pixel_range=self.pixel_range, snapshot_every=steps, logits=self.logits)

    def show_target_controls(self) -> None:
        """Show the class chooser in class mode, the layer and channel choosers in channel mode."""
        channel = self.controls["mode"].value == "channel"
        self.controls["target"].layout.display = "none" if channel else ""
        for name in ("layer", "unit"):
            self.controls[name].layout.display = "" if channel else "none"

    def fit_unit(self) -> None:
        K = self.layers[self.controls["layer"].value][0]
        u = self.controls["unit"]
        u.value, u.max = min(u.value, K - 1), K - 1

    # --- running ----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the run: back to step 0 (a running run goes on from there with the new settings)."""
        self.done, self.trace = 0, None
        self.stepper.show(None)
        self.draw()

    def advance(self) -> None:
        """Run one more chunk of steps (up to ``steps``) and show the result."""
        total = self.controls["steps"].value
        if self.done >= total:
            return
        more = self._chunk(min(self.chunk, total - self.done))
        self.trace = more if self.trace is None else joined(self.trace, more, self.done)
        self.done += len(more.S)
        self.stepper.show(self.trace)
        self.draw()

    def _on_run(self, change) -> None:
        self.controls["run"].icon = "pause" if change.new else "play"
        if not change.new:
            self.draw_progress()
            return
        if self.done >= self.controls["steps"].value:
            self.reset()
        try:
            asyncio.get_running_loop()
        except RuntimeError:              # no event loop (pytest, a script): run to the end now
            while self.controls["run"].value and self.done < self.controls["steps"].value:
                if not self.run(self.advance):
                    break
            self.controls["run"].value = False
            return
        asyncio.ensure_future(self._play())

    async def _play(self) -> None:
        """In a kernel: one chunk per turn of the event loop, so 'pause' and the sliders get through."""
        while self.controls["run"].value and self.done < self.controls["steps"].value:
            if not self.run(self.advance):
                break
            await asyncio.sleep(0.02)
        self.controls["run"].value = False

    # --- drawing ----------------------------------------------------------------------------------

    def draw_progress(self) -> None:
        total = self.controls["steps"].value
        state = ("running" if self.controls["run"].value else "done" if self.done >= total
                 else "paused" if self.done else "press run")
        self.progress.value = f"<div style='font-size:13px'>step <b>{self.done}</b> of {total} &mdash; {state}</div>"

    def draw(self) -> None:
        total, t = self.controls["steps"].value, self.trace
        self.draw_progress()
        if t is None:
            blank = render.image_rgb(torch.zeros(self.shape).clamp(*self.pixel_range), self.pixel_range)  # I0
            self.image.value = render.png(self.fit(blank))
            self.curve.value = render.curve_chart({"S": []}, title="target score S", xlim=(0, total))
            return
        self.image.value = render.png(self.fit(render.image_rgb(t.image[0], self.pixel_range)))
        self.curve.value = render.curve_chart({"J = S − λ‖I‖²": t.J[:, 0], "S (score)": t.S[:, 0]},  # S on top
                                              title=f"after {self.done} steps", xlim=(0, total))


def joined(before: xr.Trace, after: xr.Trace, done: int) -> xr.Trace:
    """One class-model trace from two consecutive runs: curves and snapshots concatenated."""
    t = xr.Trace(before.method, meta={**after.meta,
                                      "snapshot_steps": before.meta["snapshot_steps"]
                                      + [done + k for k in after.meta["snapshot_steps"]]})
    for a, b in zip(before.steps, after.steps):
        value = {"I0": a.value, "image": b.value}.get(a.symbol)
        t.add(a.symbol, torch.cat([a.value, b.value]) if value is None else value)
    return t
