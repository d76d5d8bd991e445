"""GradCAMExplorer: Grad-CAM (Selvaraju et al. 2017) and its variants, term by term.

    A  ->  dy^c/dA  ->  alpha_k^c = 1/Z Σ_ij dy^c/dA^k_ij  ->  Σ_k alpha_k^c A^k  ->  ReLU  ->  upsample
       ->  Guided Grad-CAM = guided backprop ⊙ upsampled map

Choose the class, the layer, the way alpha is computed (Grad-CAM, Grad-CAM++, XGrad-CAM) and the
counterfactual sign; step through the terms; pick a position to see the weighted sum with its numbers.
"""

from __future__ import annotations

import ipywidgets as W
import numpy as np

import xai_ref as xr
from xai_ref import compose

from . import inputs, render
from .cache import Memo
from .explorer import Explorer, Panel, captioned, row, section, toggles
from .stepper import Stepper

METHODS = {"Grad-CAM": xr.grad_cam, "Grad-CAM++": xr.grad_cam_pp, "XGrad-CAM": xr.xgrad_cam}


class GradCAMExplorer(Explorer):
    """Explore Grad-CAM for one image.

    Usage: ``GradCAMExplorer()`` (``vgg_shapes`` on a shapes image), ``GradCAMExplorer(model, image,
    target=c, layer=name)`` for any model with a layer of (B,K,h,w) maps (convolutional nets; a vision
    transformer with ``reshape=xr.token_grid``); ``image``: None (a shapes image; the cat-and-coffee photo for
    EfficientNet), a photo name from
    ``xai_ref.data.photos.NAMES``, a uint8 picture (H,W,3), or a tensor (C,H,W) / (B,C,H,W) (the first image).
    Panels: L at the layer's resolution and over the image (colour bars); Guided Grad-CAM (guided backprop
    times the upsampled map); the table of sum_k alpha_k A^k_ij term by term at the chosen position; and
    the stepper through A -> dy/dA -> alpha -> weighted -> L -> map (then the guided terms), each step
    with this image's numbers written out.

    Parameters (as `xai_ref.grad_cam`): ``model`` (default ``"vgg_shapes"``), ``image``, ``target``
    (default the prediction), ``layer`` (default the last layer of the chooser, `inputs.spatial_layers`:
    a block rather than a BatchNorm that an in-place ``F.relu`` overwrites), ``method`` (a key of
    `METHODS`), ``counterfactual``, ``logits`` (where the class scores are in a structured output),
    ``reshape`` (turns a token layer's output into maps, e.g. ``xr.token_grid`` for a vision transformer;
    layers whose output is already (B,K,h,w) are used as they are); and ``class_names``, ``pixel_range``,
    ``top_k`` (terms listed in the pixel table).

    Controls: ``target``, ``layer``, ``method``, ``counterfactual``, ``row``, ``col`` (a position of the
    layer's h×w map), and the stepper's ``step`` and ``channel``. The guided-backprop signal depends on the
    class only, so changing the layer or the method does not recompute it. On a model without ReLUs
    (GELU, SiLU, Hardswish) the Guided Grad-CAM panel says why it is off; everything else works.

    Lesson: ``lessons/05_grad_cam.ipynb``.
    """

    title = "Grad-CAM: weights from gradients, then a weighted sum of feature maps"

    def __init__(self, model=None, image=None, target=None, layer=None, method: str = "Grad-CAM",
                 counterfactual: bool = False, class_names=None, pixel_range=None, top_k: int = 5, logits=None,
                 reshape=None):
        super().__init__(model, image, "vgg_shapes", pixel_range, class_names, logits)
        if method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
        self.top_k = top_k
        self.layers = inputs.spatial_layers(self.model, self.x)
        grid = None if reshape is None else (lambda a: a if a.dim() == 4 else reshape(a))
        self.traces = Memo(lambda c, layer, m, cf: METHODS[m](self.model, self.x, c, layer, cf, logits=logits,
                                                               reshape=grid), maxsize=16)
        self.guided = Memo(lambda c: xr.guided_backprop(self.model, self.x, c, logits=logits))
        self.guided_panel = Panel("Guided Grad-CAM: guided backprop ⊙ the map")
        c = int(self.output.argmax()) if target is None else int(target)
        if layer is None and self.layers:
            layer = list(self.layers)[-1]
        with self.noting():
            first = self.traces(c, layer, method, counterfactual)
            self.try_guided(c)
        layer = first.meta["layer"]
        if layer not in self.layers:
            self.layers[layer] = tuple(first.A.shape[1:])

        self.controls["target"] = self.class_dropdown(c)
        self.controls["layer"] = self.layer_dropdown(self.layers, layer)
        self.controls["method"] = toggles(list(METHODS), method, "αₖ by", "120px")
        self.controls["counterfactual"] = W.Checkbox(value=counterfactual, description="counterfactual (−gradient)")
        h, w = first.A.shape[2:]
        self.controls["row"] = W.IntSlider(value=h // 2, min=0, max=h - 1, description="row i")
        self.controls["col"] = W.IntSlider(value=w // 2, min=0, max=w - 1, description="col j")
        self.stepper = Stepper(rgb=self.rgb, pixel_range=self.pixel_range, class_names=self.class_names)
        self.controls.update(self.stepper.controls)
        self.maps = self.picture()
        self.pixel_table = W.HTML()
        self.children = [
            W.HTML(f"<h3>{self.title}</h3>"),
            row(self.controls["target"], self.controls["layer"]),
            row(self.controls["method"], self.controls["counterfactual"]),
            self.status,
            row(captioned("L at layer resolution · over the image", self.maps), self.guided_panel),
            section("A position: Σₖ αₖ Aᵏᵢⱼ term by term"),
            row(W.VBox([self.controls["row"], self.controls["col"]]), self.pixel_table),
            section("The equation, step by step"),
            self.stepper,
        ]
        for name in ("target", "layer", "method", "counterfactual"):
            self.on(name, self.compute, self.draw_maps, self.draw_pixel)
        self.on("row", self.draw_pixel, self.draw_maps)
        self.on("col", self.draw_pixel, self.draw_maps)
        self.run(self.compute, self.draw_maps, self.draw_pixel)

    def try_guided(self, c: int) -> None:
        """Compute the guided-backprop signal once: a model with no ReLU has none (`xai_ref` says why), and
        its Guided Grad-CAM panel is switched off with that reason; Grad-CAM itself works with any model."""
        try:
            self.guided(c)
        except ValueError as e:
            self.guided_panel.disable(str(e))

    def compute(self) -> None:
        """The method's trace (cached per class, layer, method, sign) followed by the guided terms."""
        c = self.controls["target"].value
        t = self.traces(c, self.controls["layer"].value, self.controls["method"].value,
                        self.controls["counterfactual"].value)
        self.trace = t if self.guided_panel.disabled else compose.guided(t, self.guided(c).grad)
        self.stepper.show(self.trace)
        h, w = t.A.shape[2:]
        for name, n in (("row", h), ("col", w)):       # the pixel picker follows the layer's resolution
            s = self.controls[name]
            if s.max != n - 1:
                s.value = min(s.value, n - 1)
                s.max = n - 1

    def draw_maps(self) -> None:
        t = self.trace
        guided = t.method.startswith("guided_")          # the map is then Guided Grad-CAM's, up(L) is L_up
        L, up = t.L[0].numpy(), (t.L_up[0, 0] if guided else t.map[0]).numpy()
        scale = render.scale(L)
        small = render.mark_cell(render.fit(render.colourise(L, *scale), self.size), *self.position(*L.shape), *L.shape)
        over = render.shown(up, self.size, self.rgb)             # the same size as L beside it
        self.maps.value = render.png(render.tile([render.with_bar(small, *scale), over], cols=2, pad=6))
        if guided:
            self.guided_panel.picture.value = render.png(self.fit(render.magnitude(t.map[0].numpy())))

    def draw_pixel(self) -> None:
        t = self.trace
        i, j = self.position(*t.A.shape[2:])
        alpha, A = t.alpha[0].numpy(), t.A[0, :, i, j].numpy()
        terms = alpha * A
        top = np.argsort(-np.abs(terms), kind="stable")[:self.top_k]
        rows = [[f"k = {k}", alpha[k], A[k], terms[k]] for k in top]
        rows.append([f"other {len(alpha) - len(top)} maps", "", "", np.delete(terms, top).sum()])
        rows.append(["Σₖ αₖ Aᵏᵢⱼ", "", "", terms.sum()])
        rows.append(["weighted(i,j) in the trace", "", "", float(t.weighted[0, i, j])])
        rows.append(["L(i,j) = ReLU(weighted)", "", "", float(t.L[0, i, j])])
        self.pixel_table.value = render.table_html(rows, header=["", "αₖᶜ", f"Aᵏ({i},{j})", "product"],
                                                   highlight_row=len(rows) - 1,
                                                   title=f"largest {len(top)} terms by |αₖ Aᵏᵢⱼ|")
        self.stepper.set_marker((i, j))

