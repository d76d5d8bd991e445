"""MetricsExplorer: is a map right? Deletion / insertion curves and the localization box, step by step.

* Deletion (Petsiuk et al. 2018): remove the pixels the map ranks first, a row's worth at a time, and
  watch the class probability fall; a faithful map makes it fall fast (small area under the curve).
  Insertion: start from a blurred image and put the pixels back in the same order (large AUC is good).
* Localization (Zhou et al. 2016): threshold the map at a fraction of its maximum, box the largest
  connected region, compare with the ground-truth box (IoU).

The curves, AUCs, boxes and IoUs come from `xai_ref.metrics`.
"""

from __future__ import annotations

import ipywidgets as W
import torch

import xai_ref as xr
from xai_ref import metrics

from . import inputs, render
from .cache import Memo
from .explorer import Explorer, captioned, localization, row, section, toggles, truth_box
from .stepper import Stepper

METHODS = {"Grad-CAM": xr.grad_cam, "Grad-CAM++": xr.grad_cam_pp, "XGrad-CAM": xr.xgrad_cam, "CAM": xr.cam,
           "saliency": xr.saliency, "guided backprop": xr.guided_backprop}
CURVES = {"deletion": metrics.deletion, "insertion": metrics.insertion}
LAYER_METHODS = ("Grad-CAM", "Grad-CAM++", "XGrad-CAM")   # the methods that take the ``layer`` parameter


class MetricsExplorer(Explorer):
    """Step through a deletion or insertion run of one explanation, and localize with a threshold.

    Usage: ``MetricsExplorer()`` (``nin_shapes`` on a shapes image, Grad-CAM), ``MetricsExplorer(model,
    image, method="saliency", kind="insertion")`` for any model the chosen method accepts; ``image``: None (a shapes
    image; the cat-and-coffee photo for EfficientNet), a photo name from
    ``xai_ref.data.photos.NAMES``, a uint8 picture (H,W,3), or a tensor (C,H,W) / (B,C,H,W) (the first image).
    Panels: the image at step k of the run and the class probability curve (its area under the curve);
    the localization box at the threshold against the ground truth (IoU); and the stepper through the
    explanation's own terms with their numbers.

    Parameters: ``model`` (default ``"nin_shapes"``), ``image``, ``target`` (default the prediction),
    ``method`` (a key of `METHODS`), ``kind`` ("deletion" / "insertion"), ``step`` (pixels changed per
    step; default one row), ``threshold`` (fraction of the max for the box), ``box`` (ground truth
    (x0, y0, x1, y1); the default shapes image brings its own), ``class_names``, ``pixel_range``,
    ``logits`` (where the class scores are in a structured output), ``layer`` (of the Grad-CAM family;
    default the last layer `inputs.spatial_layers` lists, as in the GradCAMExplorer).

    Controls: ``method``, ``target``, ``kind``, ``k`` (the step of the run shown), ``threshold``, and the
    stepper's ``step`` and ``channel`` (the explanation's trace).

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """

    title = "Evaluating a map: deletion / insertion and the localization box"

    def __init__(self, model=None, image=None, target=None, method: str = "Grad-CAM", kind: str = "deletion",
                 step: int | None = None, threshold: float = 0.2, box=None, class_names=None, pixel_range=None,
                 logits=None, layer=None):
        super().__init__(model, image, "nin_shapes", pixel_range, class_names, logits)
        if layer is None:
            layer = list(inputs.spatial_layers(self.model, self.x))[-1]
        self.step = step if step is not None else self.x.shape[3]
        self.truth = truth_box(image, box, self.model)
        self.traces = Memo(lambda m, c: METHODS[m](self.model, self.x, c, logits=logits,
                                                    **({"layer": layer} if m in LAYER_METHODS else {})))
        self.curves = Memo(lambda m, c, kind: CURVES[kind](self.model, self.x, self.traces(m, c), c, step=self.step,
                                                           logits=logits))
        H, W_ = self.x.shape[2:]
        n_steps = -(-H * W_ // self.step)
        c = self.controls
        c["method"] = W.Dropdown(options=list(METHODS), value=method, description="map")
        c["target"] = self.class_dropdown(target)
        c["kind"] = toggles(list(CURVES), kind, "curve", "90px")
        c["k"] = W.IntSlider(value=n_steps // 4, min=0, max=n_steps, description="step k")
        c["threshold"] = W.FloatSlider(value=threshold, min=0.05, max=0.95, step=0.05, description="threshold",
                                       readout_format=".2f")
        self.stepper = Stepper(rgb=self.rgb, pixel_range=self.pixel_range, class_names=self.class_names)
        self.controls.update(self.stepper.controls)
        self.perturbed, self.curve, self.boxed = self.picture(), self.picture(), self.picture()
        self.curve_text, self.box_text = W.HTML(), W.HTML()
        self.children = [
            W.HTML(f"<h3>{self.title}</h3>"),
            row(c["method"], c["target"]),
            self.status,
            section("Deletion / insertion"),
            row(c["kind"], c["k"]),
            row(captioned("the image at step k", self.perturbed), captioned("class probability", self.curve),
                self.curve_text),
            section("Localization"),
            row(W.VBox([c["threshold"], self.box_text]), self.boxed),
            section("The explanation, step by step"),
            self.stepper,
        ]
        for name in ("method", "target"):
            self.on(name, self.compute, self.draw_curve, self.draw_box)
        self.on("kind", self.draw_curve)
        self.on("k", self.draw_curve)
        self.on("threshold", self.draw_box)
        self.run(self.compute, self.draw_curve, self.draw_box)

    def key(self) -> tuple:
        return self.controls["method"].value, self.controls["target"].value

    def compute(self) -> None:
        self.trace = self.traces(*self.key())
        self.stepper.show(self.trace)

    def image_at(self, k: int) -> torch.Tensor:
        """x_k: the image after k steps of the run (what the model scored for point k of the curve)."""
        m = self.trace.map
        if m.shape[1:] != self.x.shape[2:]:
            m = torch.nn.functional.interpolate(m[:, None], size=self.x.shape[2:], mode="bilinear",
                                                align_corners=False)[:, 0]
        # Same order as xai_ref.metrics: decreasing map value, ties in raster order (a stable sort).
        order = torch.argsort(-m.flatten(), stable=True)
        changed = torch.zeros(m.numel(), dtype=torch.bool)
        changed[order[:min(k * self.step, m.numel())]] = True
        changed = changed.view(1, 1, *m.shape[1:])
        if self.controls["kind"].value == "deletion":
            return torch.where(changed, torch.zeros_like(self.x), self.x)      # baseline 0, as RISE
        return torch.where(changed, self.x, metrics.gaussian_blur(self.x, 5.0))

    def draw_curve(self) -> None:
        kind, k = self.controls["kind"].value, self.controls["k"].value
        cv = self.curves(*self.key(), kind)
        k = min(k, len(cv.fraction) - 1)
        x_k = self.image_at(k)[0]
        self.perturbed.value = render.png(self.fit(render.image_rgb(x_k, self.pixel_range)))
        self.curve.value = render.curve_chart({kind: cv.scores[0, :k + 1]}, x=cv.fraction, xlim=(0, 1),
                                              marker=float(cv.fraction[k]), xlabel="fraction of pixels changed",
                                              title=f"{kind}, AUC = {float(cv.auc[0]):.3f}")
        better = "lower" if kind == "deletion" else "higher"
        self.curve_text.value = render.table_html(
            [["step k", k], ["pixels changed", f"{float(cv.fraction[k]):.1%}"], ["probability", float(cv.scores[0, k])],
             ["AUC (whole run)", float(cv.auc[0])]],
            title=f"{kind} of {self.class_name(cv.classes[0])} ({better} AUC is better)")

    def draw_box(self) -> None:
        pic, self.box_text.value = localization(self.rgb, self.trace.map, self.controls["threshold"].value, self.truth)
        self.boxed.value = render.png(self.fit(pic))
