"""CAMExplorer: Class Activation Mapping (Zhou et al. 2016), one weighted sum you can take apart.

    M_c(x, y) = sum_k w_k^c f_k(x, y)

Pick a class: its weights w^c (bars), the feature maps that contribute most to its score, their
weighted sum, the map over the image, and the box around the largest region above a threshold.
Pick a position (row, col): the table writes M_c there as the sum of its terms, with the numbers.
"""

from __future__ import annotations

import ipywidgets as W
import numpy as np

import xai_ref as xr

from . import render
from .cache import Memo
from .explorer import Explorer, captioned, localization, row, section, truth_box
from .stepper import Stepper


class CAMExplorer(Explorer):
    """Explore CAM for one image.

    Usage: ``CAMExplorer()`` (``nin_shapes`` on a shapes image), ``CAMExplorer(model, image, target=c)`` for
    any model ending in global average pooling then one ``nn.Linear`` (``"efficientnet_lite0"`` works);
    ``image``: None (a shapes image; the cat-and-coffee photo for EfficientNet), a photo name from
    ``xai_ref.data.photos.NAMES``, a uint8 picture (H,W,3), or a tensor (C,H,W) / (B,C,H,W) (the first image).
    Panels: the weights w_k^c of the class (the top k in red), the top-k maps w_k f_k, their sum next to
    M_c (the sum over all K); the table of M_c(i, j) term by term at the chosen position; the localization
    box at the threshold; and the stepper through f -> w -> M -> S -> map with this image's numbers.

    Parameters (as `xai_ref.cam`): ``model`` (default ``"nin_shapes"``; needs GAP -> linear),
    ``image``, ``target`` (class shown first; default the prediction), ``layer``, ``fc``; and
    ``class_names``, ``pixel_range``, ``top_k`` (maps shown), ``threshold`` (fraction of the max for
    the box), ``box`` (a ground-truth box (x0, y0, x1, y1) to compare with; the default shapes image
    brings its own), ``logits`` (where the class scores are in a structured output).

    Controls: ``target``, ``top_k``, ``row``, ``col`` (the position in the h×w map), ``threshold``,
    and the stepper's ``step`` and ``channel``.

    Lesson: ``lessons/02_cam.ipynb``.
    """

    title = "CAM: M<sub>c</sub>(x,y) = Σ<sub>k</sub> w<sub>k</sub><sup>c</sup> f<sub>k</sub>(x,y)"

    def __init__(self, model=None, image=None, target=None, layer=None, fc=None, class_names=None,
                 pixel_range=None, top_k: int = 4, threshold: float = 0.2, box=None, logits=None):
        super().__init__(model, image, "nin_shapes", pixel_range, class_names, logits)
        self.layer, self.fc = layer, fc
        self.truth = truth_box(image, box, self.model)
        self.traces = Memo(lambda c: xr.cam(self.model, self.x, c, self.layer, self.fc, logits))
        t = self.traces(int(self.output.argmax()) if target is None else int(target))
        K, h, w = t.f.shape[1:]

        self.controls["target"] = self.class_dropdown(target)
        self.controls["top_k"] = W.IntSlider(value=min(top_k, K), min=1, max=min(K, 16), description="top k")
        self.controls["row"] = W.IntSlider(value=h // 2, min=0, max=h - 1, description="row i")
        self.controls["col"] = W.IntSlider(value=w // 2, min=0, max=w - 1, description="col j")
        self.controls["threshold"] = W.FloatSlider(value=threshold, min=0.05, max=0.95, step=0.05,
                                                   description="threshold", readout_format=".2f")
        self.stepper = Stepper(rgb=self.rgb, class_names=self.class_names)
        self.controls.update(self.stepper.controls)

        self.weights, self.top_maps, self.sum_maps, self.boxed = (self.picture() for _ in range(4))
        self.top_caption, self.pixel_table, self.box_text = W.HTML(), W.HTML(), W.HTML()
        self.children = [
            W.HTML(f"<h3>{self.title}</h3>"),
            row(self.controls["target"], self.controls["top_k"]),
            self.status,
            row(captioned("weights w<sup>c</sup><sub>k</sub> (top k in red)", self.weights),
                captioned("top-k maps w<sub>k</sub>f<sub>k</sub> (largest w<sub>k</sub>F<sup>k</sup>)",
                          self.top_maps, self.top_caption),
                captioned("Σ over the top k | over all K = M<sub>c</sub>", self.sum_maps)),
            section("A position: M_c(i, j) term by term"),
            row(W.VBox([self.controls["row"], self.controls["col"], self.pixel_table])),
            section("Localization: threshold the map, box the largest region"),
            row(W.VBox([self.controls["threshold"], self.box_text]), self.boxed),
            section("The equation, step by step"),
            self.stepper,
        ]
        self.on("target", self.compute, self.draw_top, self.draw_pixel, self.draw_box)
        self.on("top_k", self.draw_top, self.draw_pixel)
        self.on("row", self.draw_pixel, self.draw_sums)
        self.on("col", self.draw_pixel, self.draw_sums)
        self.on("threshold", self.draw_box)
        self.run(self.compute, self.draw_top, self.draw_pixel, self.draw_box)

    # --- what each control invalidates ----------------------------------------------------------

    def compute(self) -> None:
        """The trace for the chosen class (cached per class); show it in the stepper."""
        self.trace = self.traces(self.controls["target"].value)
        self.stepper.show(self.trace)

    def top(self) -> np.ndarray:
        """Indices of the top-k maps by their contribution w_k F^k to the score (F^k = mean of f_k)."""
        t = self.trace
        contribution = (t.w[0] * t.f[0].mean((1, 2))).numpy()
        return np.argsort(-contribution, kind="stable")[:self.controls["top_k"].value]

    def draw_top(self) -> None:
        t, top = self.trace, self.top()
        w = t.w[0].numpy()
        self.weights.value = render.bar_chart(w, highlight=top, xlabel="feature map k", top=64,
                                              title=f"w for {self.class_name(t.meta['target'][0])}")
        weighted = (t.w[0][:, None, None] * t.f[0]).numpy()            # (K,h,w): w_k f_k
        scale = render.scale(weighted[top])
        tiles = [render.fit(render.colourise(weighted[k], *scale), 96) for k in top]
        self.top_maps.value = render.png(render.with_bar(render.tile(tiles, cols=min(4, len(tiles))), *scale))
        self.top_caption.value = "<span style='font-size:11px'>" + ", ".join(
            f"k={k}: w={w[k]:.3g}" for k in top) + "</span>"
        self.partial = weighted[top].sum(0)
        self.draw_sums()

    def draw_sums(self) -> None:
        """The sum over the top-k maps next to M (the sum over all K), one colour scale, the position marked."""
        M = self.trace.M[0].numpy()
        i, j = self.position(*M.shape)
        scale = render.scale(np.stack([self.partial, M]))
        pics = [render.mark_cell(render.fit(render.colourise(m, *scale), 160), i, j, *M.shape)
                for m in (self.partial, M)]
        self.sum_maps.value = render.png(render.with_bar(render.tile(pics, cols=2, pad=6), *scale))

    def draw_pixel(self) -> None:
        """M_c(i,j) = sum_k w_k f_k(i,j): the top-k terms, the rest summed, the total, the trace's M."""
        t, top = self.trace, self.top()
        i, j = self.position(*t.M.shape[1:])
        w, f = t.w[0].numpy(), t.f[0, :, i, j].numpy()
        terms = w * f
        rest = np.delete(terms, top).sum()
        rows = [[f"k = {k}", w[k], f[k], terms[k]] for k in top]
        rows.append([f"other {len(w) - len(top)} maps", "", "", rest])
        rows.append(["Σ_k w_k f_k(i,j)", "", "", terms.sum()])
        rows.append(["M_c(i,j) in the trace", "", "", float(t.M[0, i, j])])
        self.pixel_table.value = render.table_html(rows, header=["", "w_k^c", f"f_k({i},{j})", "product"],
                                                   highlight_row=len(rows) - 1)
        self.stepper.set_marker((i, j))

    def draw_box(self) -> None:
        """The box around the largest region above the threshold (see `explorer.localization`)."""
        pic, self.box_text.value = localization(self.rgb, self.trace.map, self.controls["threshold"].value, self.truth)
        self.boxed.value = render.png(self.fit(pic))
