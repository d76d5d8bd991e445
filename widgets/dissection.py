"""DissectionExplorer: Network Dissection (Bau et al. 2017), one unit at a time.

    P(a_k > T_k) = q,    M_k = up(a_k) >= T_k,    IoU_{k,c} = Σ|M_k ∩ L_c| / Σ|M_k ∪ L_c|

Pick a unit k (units are counted from 0, as the trace indexes them): its top images (those with its largest
activations), its threshold T_k, its masks M_k over those images, its IoU with every concept (bar chart, the
compared concept in red, the best one marked c*, drawn over the images) and the name it gets. Every step
writes its equation with this unit's numbers. A unit whose T_k ties with its floor (its minimum over the
set, 0 after a ReLU) shows the floor rule of `xai_ref.dissection` (no mask pixel at the floor); a unit
never above its floor is said to never fire.
"""

from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
import torch

from xai_ref import dissection
from xai_ref.data import shapes

from . import render
from .cache import Memo
from .explorer import Explorer, captioned, row, section
from .stepper import Stepper

#: Colours of the overlap pictures: only the unit's mask, only the concept's mask, both.
ONLY_M, ONLY_L, BOTH = (230, 25, 45), (40, 200, 60), (255, 225, 25)
TILE = 128  # the side of each top image, in display pixels


class UnitStepper(Stepper):
    """A `Stepper` over a dissection Trace whose ``channel`` slider picks the unit k and whose views are
    drawn by ``draw(symbol, k) -> (picture PNG, detail PNG, numbers HTML)`` (the explorer's); ``latex(symbol,
    k)`` (a step's equation, None: the trace's) and ``describe(symbol, k)`` (the header's HTML) are the
    explorer's too, so that the text says what the pictures show."""

    def __init__(self, draw, trace, latex=lambda symbol, k: None, describe=lambda symbol, k: "", **kw):
        self.draw_step, self.latex, self.describe = draw, latex, describe
        super().__init__(trace, **kw)
        self.channel.description = "unit k"

    def kind(self, term=None) -> str:
        return "unit"

    def _channel_range(self, term, kind: str) -> None:
        self.channel.layout.display = ""
        K = len(self.trace.T)
        if self.channel.max != K - 1:
            self.channel.max = K - 1

    def _draw(self, term, kind: str):
        return self.draw_step(term.symbol, self.channel.value)

    def _equations(self) -> str:
        """The steps' equations for this unit (units counted from 0; the floor rule where it applies)."""
        rows = []
        for i, t in enumerate(self.trace.steps, start=1):
            current = i == self.step.value
            style = "background:#fff3b0;font-weight:bold;" if current else "color:#666;"
            latex = self.latex(t.symbol, self.channel.value) or t.latex
            rows.append(f"<div style='{style}padding:1px 6px'>{'&#9654;' if current else '&nbsp;&nbsp;'} "
                        f"{i}. <code>{html.escape(t.symbol)}</code>: ${latex}$</div>")
        return "<div style='font-size:13px;line-height:1.9'>" + "".join(rows) + "</div>"

    def redraw(self) -> None:
        super().redraw()
        if self.trace is not None:
            n = len(self.trace.steps)
            self.header.value = (f"<b>{html.escape(self.trace.method)}</b> &nbsp; step {self.step.value} of {n}: "
                                 f"<code>{html.escape(self.term.symbol)}</code> &mdash; "
                                 f"{self.describe(self.term.symbol, self.channel.value)}")


class DissectionExplorer(Explorer):
    """Step through Network Dissection for one unit of a layer.

    Usage: ``DissectionExplorer()`` dissects the last convolutional layer of ``nin_shapes`` on 200 test
    shapes images; ``DissectionExplorer("vgg_shapes", "block2_relu2", probe)`` another model and layer;
    ``DissectionExplorer(model, trace=t, probe=probe)`` shows a dissection already computed
    (`xai_ref.dissection.dissect`) on the same probe set. Accepted: ``model`` any ``nn.Module`` or a model
    name; ``layer`` a module, a dotted name or None (the last spatial layer); ``probe`` a
    ``shapes.ShapesBatch`` (its concept masks come with it) or a batch (N,C,H,W) with ``concepts`` (an
    `xai_ref.data.concepts.Concepts`); ``unit`` the unit shown first (default: the best-named one);
    ``top`` top images shown; ``quantile`` and ``iou_floor`` as in `dissect`.

    Controls: ``unit`` (k, from 0 to K-1), ``concept`` (-1: the unit's best concept c*, else a concept index:
    the concept compared in the I, U and IoU steps), ``step`` (the term of the trace shown: A, T, M, I, U,
    IoU, name). Panels: the unit's name line; per step a strip of its top images (activation maps with a
    colour bar, the cells above T_k, the masks M_k, at I only M_k ∩ L_c, at U and IoU M_k against L_c: red
    only M_k, green only L_c, yellow both; at the last step L_c of the best concept c*, whatever
    ``concept`` says, and the step says so); the IoU of every concept (bars: the compared concept in red,
    the best one labelled c*; none for a unit that never fires above its floor); and the step's equation
    with this unit's numbers.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """

    title = "Network Dissection: IoU of unit k and concept c = Σ|Mk ∩ Lc| / Σ|Mk ∪ Lc|"
    title_html = ("Network Dissection: IoU<sub>k,c</sub> = Σ|M<sub>k</sub> ∩ L<sub>c</sub>| / "
                  "Σ|M<sub>k</sub> ∪ L<sub>c</sub>|")
    needs_classes = False

    def __init__(self, model=None, layer=None, probe=None, concepts=None, *, trace=None, unit=None, top: int = 6,
                 quantile: float = 0.005, iou_floor: float = 0.04):
        probe = shapes.generate(200, seed=0, split="test") if probe is None else probe
        images, self.concepts = dissection.probe_set(probe, concepts, (np.ndarray, torch.Tensor))
        self.images = torch.as_tensor(images)
        super().__init__(model, self.images[:1], "nin_shapes")
        self.images = self.images.to(self.x.dtype)
        if trace is None:
            trace = dissection.dissect(self.model, layer, self.images, self.concepts, quantile=quantile,
                                       iou_floor=iou_floor, top=max(top, 1), progress=False)
        self.trace, self.top = trace, min(top, trace.meta["top"].shape[1])
        self.units = trace.name
        self.maps = Memo(self._unit_maps, maxsize=16)
        best = max(self.units, key=lambda u: (u.named, u.iou)).k if unit is None else int(unit)

        self.stepper = UnitStepper(self.draw_step, None, latex=self.latex, describe=self.describe, rgb=self.rgb)
        self.controls["unit"] = self.stepper.channel
        self.controls["concept"] = W.Dropdown(
            options=[("best concept c*", -1)] + [(n, i) for i, n in enumerate(trace.meta["concepts"])],
            value=-1, description="concept c")
        self.controls["step"] = self.stepper.step
        self.name_line = W.HTML()
        self.iou_bars = self.picture()
        self.bars_caption = captioned("", self.iou_bars)
        self.children = [
            W.HTML(f"<h3>{self.title_html}</h3>"),
            W.HTML(f"<div style='font-size:12px'>layer <code>{html.escape(trace.meta['layer'])}</code>, "
                   f"{trace.meta['n']} probe images, q = {trace.meta['quantile']:g}, IoU floor "
                   f"{trace.meta['iou_floor']:g}; units k = 0 … {len(trace.T) - 1} (counted from 0)</div>"),
            row(self.controls["concept"]),
            self.status,
            self.name_line,
            row(self.bars_caption),
            section("The dissection of unit k, step by step"),
            self.stepper,
        ]
        self.stepper.show(trace)
        self.controls["unit"].value = best
        self.on("unit", self.draw_unit)
        self.on("concept", self.draw_unit, self.stepper.forget_drawn, self.stepper.redraw)
        self.run(self.draw_unit)

    # --- numbers --------------------------------------------------------------------------------

    def concept_index(self, k: int) -> int:
        """The concept compared: the chosen one, or unit k's best concept c*."""
        c = self.controls["concept"].value
        return int(np.asarray(self.trace.IoU[k]).argmax()) if c < 0 else c

    def at_floor(self, k: int) -> bool:
        """Whether unit k's threshold ties with its floor (its minimum over the set): then more than a
        fraction q of its positions sit at the floor, and the floor rule (no mask pixel at the floor) decides."""
        return float(self.trace.T[k]) <= float(self.trace.meta["floor"][k])

    def dead(self, k: int) -> bool:
        """Whether unit k never fires above its floor: no position above T_k = floor, an empty mask."""
        return self.at_floor(k) and int(self.trace.meta["above"][k]) == 0

    def worked(self, k: int, c: int | None = None) -> dict:
        """Unit k's numbers, read from the trace: those each step's equation shows (c: the concept)."""
        t, meta = self.trace, self.trace.meta
        c = self.concept_index(k) if c is None else c
        best = int(np.asarray(t.IoU[k]).argmax())
        h, w = tuple(t.A.shape[-2:])
        return {"k": k, "c": c, "concept": meta["concepts"][c], "T": float(t.T[k]), "q": meta["quantile"],
                "floor_value": float(meta["floor"][k]), "h": h, "w": w, "shown": self.top,
                "above": int(meta["above"][k]), "positions": int(meta["positions"]), "n": int(meta["n"]),
                "pixels": int(meta["n"] * self.images.shape[2] * self.images.shape[3]),
                "M_size": int(meta["M_size"][k]), "L_size": int(meta["L_size"][c]), "I": int(t.I[k, c]),
                "U": int(t.U[k, c]), "IoU": float(t.IoU[k, c]), "best": meta["concepts"][best],
                "best_iou": float(t.IoU[k, best]), "floor": meta["iou_floor"], "name": self.units[k].name}

    def latex(self, symbol: str, k: int) -> str | None:
        """The step's equation in the list of steps (LaTeX; None: the trace's own)."""
        if symbol == "A":
            return r"a_k(x),\ k = 0, \dots, K-1 \ \text{(units counted from 0)}"
        if symbol == "M" and self.at_floor(k):
            return (r"M_k(x) = [S_k(x) \geq T_k] \wedge [S_k(x) > \mathrm{floor}_k],\quad "
                    r"S_k = \mathrm{up}(a_k)")
        return None

    def describe(self, symbol: str, k: int) -> str:
        """What the step shows, in words that match the pictures (HTML)."""
        v = self.worked(k)
        top = (f"the strip: unit {k}'s top {v['shown']} probe images (its largest activations); "
               f"the numbers: all {v['n']} images")
        text = {
            "A": f"the activations a<sub>{k}</sub> of layer {html.escape(self.trace.meta['layer'])}; {top}",
            "T": (f"unit {k}'s top-quantile threshold over all {v['n']} × {v['h']}×{v['w']} positions "
                  f"(the strip: cells at or below T<sub>{k}</sub> dimmed)"),
            "M": f"unit {k}'s mask M<sub>{k}</sub>: its upsampled map at or above T<sub>{k}</sub>; {top}",
            "I": f"pixels in both M<sub>{k}</sub> and L<sub>c</sub> (yellow); {top}",
            "U": f"pixels in either M<sub>{k}</sub> or L<sub>c</sub>; {top}",
            "IoU": f"how well M<sub>{k}</sub> matches L<sub>c</sub>; {top}",
            "name": f"unit {k}'s best concept c*, or unnamed when its IoU is not above the floor; {top}",
        }
        return text[symbol]

    def equation(self, symbol: str, k: int) -> str:
        """The step's equation with unit k's numbers substituted (HTML)."""
        v = self.worked(k)
        c_tex = v["concept"].replace("_", r"\_")                          # the concept's name in LaTeX
        Lc = rf"L_{{\text{{{c_tex}}}}}"                                   # concept c's masks
        at_floor, dead = self.at_floor(k), self.dead(k)
        share = 100 * v['above'] / v['positions']
        T_line = (f"P(a<sub>{k}</sub> &gt; T<sub>{k}</sub>) = {v['q']:g} &nbsp;⇒&nbsp; T<sub>{k}</sub> = {v['T']:.4g}"
                  f"<br>{v['above']} of {v['positions']} positions above T<sub>{k}</sub> = {share:.3f} %")
        if at_floor:
            T_line = (f"P(a<sub>{k}</sub> &gt; T<sub>{k}</sub>) = {v['q']:g} asked &nbsp;⇒&nbsp; T<sub>{k}</sub> = "
                      f"{v['T']:.4g} = the unit's floor (its minimum over the set)<br>"
                      f"only {v['above']} of {v['positions']} positions above T<sub>{k}</sub> = {share:.3f} % "
                      f"&lt; {100 * v['q']:g} %: P(a &gt; T) &lt; q, because more than {100 * v['q']:g} % of the "
                      f"positions tie at the floor")
            if dead:
                T_line += f"<br>unit {k} <b>never fires above its floor</b>"
        M_rule = (f"M<sub>{k}</sub> = [up(a<sub>{k}</sub>) ≥ {v['T']:.4g}] and up(a<sub>{k}</sub>) &gt; floor "
                  f"{v['floor_value']:.4g}" if at_floor else f"M<sub>{k}</sub> = up(a<sub>{k}</sub>) ≥ {v['T']:.4g}")
        if dead:
            name_line = (f"unit {k} never fires above its floor: M<sub>{k}</sub> is empty, every IoU is 0, "
                         f"no best concept &nbsp;⇒&nbsp; unit {k} is <b>{html.escape(v['name'])}</b>")
        else:
            name_line = (f"c* = {html.escape(v['best'])}, IoU = {v['best_iou']:.4f} "
                         f"{'&gt;' if v['best_iou'] > v['floor'] else '≤'} {v['floor']:g} &nbsp;⇒&nbsp; "
                         f"unit {k} is <b>{html.escape(v['name'])}</b>")
            if v["concept"] != v["best"]:
                name_line += (f"<br><i>this step shows c* = {html.escape(v['best'])} (the name is always the "
                              f"best concept), not the concept {html.escape(v['concept'])} chosen above</i>")
        lines = {
            "A": (f"a<sub>{k}</sub>(x) at {v['n']} images × {v['h']}×{v['w']} positions = {v['positions']} values"
                  f" (unit {k} of 0 … {len(self.trace.T) - 1})"),
            "T": T_line,
            "M": (f"{M_rule}: |M<sub>{k}</sub>| = {v['M_size']} pixels "
                  f"of {v['pixels']} ({100 * v['M_size'] / v['pixels']:.2f} %)"),
            "I": rf"$\sum_x |M_{{{k}}}(x) \cap {Lc}(x)| = {v['I']}$",
            "U": (rf"$\sum_x |M_{{{k}}} \cup {Lc}| = |M_{{{k}}}| + |{Lc}| - |M_{{{k}}} \cap {Lc}| = "
                  rf"{v['M_size']} + {v['L_size']} - {v['I']} = {v['U']}$"),
            "IoU": (rf"$\mathrm{{IoU}}_{{{k},\,\text{{{c_tex}}}}} = \frac{{{v['I']}}}{{{v['U']}}} = "
                    rf"{v['IoU']:.4f}$"),
            "name": name_line,
        }
        if dead and symbol in ("I", "U", "IoU") and self.controls["concept"].value < 0:
            lines[symbol] += (f"<br><i>unit {k} never fires above its floor: its IoU is 0 with every concept, "
                              f"it has no best concept; shown: {html.escape(v['concept'])}, the first one "
                              "(pick another in the concept menu)</i>")
        return f"<div style='font-size:14px;font-family:serif;padding:6px'>{lines[symbol]}</div>"

    # --- pictures -------------------------------------------------------------------------------

    def _unit_maps(self, k: int) -> dict:
        """Unit k's top images: their indices, pictures, maps a_k (n,h,w) and masks M_k (n,H,W)."""
        idx = np.asarray(self.trace.meta["top"][k][:self.top])
        x = self.images[idx]
        a = dissection.activations(self.model, self.trace.meta["layer"], x)[0][:, k:k + 1]
        T = torch.as_tensor(self.trace.T[k:k + 1]).to(a.dtype)
        floor = torch.as_tensor(self.trace.meta["floor"][k:k + 1]).to(a.dtype)
        M = dissection.masks(a, tuple(x.shape[2:]), T, floor)[:, 0].numpy()
        return {"idx": idx, "rgb": [render.image_rgb(xi) for xi in x], "a": a[:, 0].numpy(), "M": M}

    def strip(self, pictures: list[np.ndarray]) -> bytes:
        return render.png(render.tile([render.fit(p, TILE) for p in pictures], cols=len(pictures)))

    def heat_strip(self, k: int, dim_below_T: bool) -> bytes:
        """The maps a_k of the top images on one colour scale (cells at or below T_k dimmed), a colour bar."""
        m, T = self.maps(k), float(self.trace.T[k])
        vmin, vmax = float(self.trace.meta["floor"][k]), max(float(m["a"].max()), T)
        tiles = []
        for a in m["a"]:
            pic = render.colourise(a, render.MAPS, vmin, vmax)
            if dim_below_T:
                pic = np.where((a > T)[..., None], pic, (pic * 0.3).astype(np.uint8))
            tiles.append(render.fit(pic, TILE))
        bar = render.colour_bar(render.MAPS, vmin, vmax, TILE, marker=T, label="T=")
        return render.png(render.tile(tiles + [bar], cols=len(tiles) + 1))

    def overlap_strip(self, k: int, c: int, only_both: bool = False) -> bytes:
        """The top images with M_k against L_c: red only M_k, green only L_c, yellow both (``only_both``:
        yellow M_k ∩ L_c alone, the intersection that step I counts)."""
        m = self.maps(k)
        pics = []
        for rgb, M, L in zip(m["rgb"], m["M"], self.concepts.masks[m["idx"], c]):
            pic = (rgb * 0.45).astype(np.uint8)
            parts = ((M & L, BOTH),) if only_both else ((M & ~L, ONLY_M), (L & ~M, ONLY_L), (M & L, BOTH))
            for where, colour in parts:
                pic[where] = colour
            pics.append(pic)
        return self.strip(pics)

    def mask_strip(self, k: int) -> bytes:
        m = self.maps(k)
        return self.strip([np.where(M[..., None], (0.5 * rgb + 0.5 * np.array(ONLY_M)).astype(np.uint8),
                                    (rgb * 0.45).astype(np.uint8)) for rgb, M in zip(m["rgb"], m["M"])])

    def draw_step(self, symbol: str, k: int):
        """What the stepper shows at a step for unit k: (picture, detail, numbers HTML)."""
        if symbol == "A":
            return self.heat_strip(k, False), self.strip(self.maps(k)["rgb"]), self.equation(symbol, k)
        if symbol == "T":
            return self.heat_strip(k, True), None, self.equation(symbol, k)
        if symbol == "M":
            return self.mask_strip(k), None, self.equation(symbol, k)
        c = int(np.asarray(self.trace.IoU[k]).argmax()) if symbol == "name" else self.concept_index(k)
        if symbol == "I":
            return self.overlap_strip(k, c, only_both=True), None, self.equation(symbol, k) + LEGEND_I
        return self.overlap_strip(k, c), None, self.equation(symbol, k) + LEGEND

    def draw_unit(self) -> None:
        """The name line and the IoU bars of the chosen unit (the compared concept in red, c* labelled)."""
        k = self.controls["unit"].value
        u, iou = self.units[k], np.asarray(self.trace.IoU[k])
        names = list(self.trace.meta["concepts"])
        chosen = self.controls["concept"].value
        if self.dead(k):
            self.name_line.value = (f"<div style='font-size:14px'>unit <b>{k}</b>: <b>{html.escape(u.name)}</b> "
                                    f"(it never fires above its floor {float(self.trace.meta['floor'][k]):.4g}: "
                                    f"an empty mask, no best concept; T<sub>{k}</sub> = {u.T:.4g})</div>")
            labels, highlight = names, ([] if chosen < 0 else [chosen])
            caption = "IoU of unit k with every concept: all 0, no best concept" + (
                "" if chosen < 0 else " (red: the concept chosen above)")
        else:
            best = int(iou.argmax())
            self.name_line.value = (f"<div style='font-size:14px'>unit <b>{k}</b>: <b>{html.escape(u.name)}</b> "
                                    f"(best concept {html.escape(u.concept)}, IoU {u.iou:.3f}; T<sub>{k}</sub> = "
                                    f"{u.T:.4g})</div>")
            c = best if chosen < 0 else chosen
            labels = [f"{n}  (c*)" if i == best else f"{n}  ◀ chosen" if i == c else n for i, n in enumerate(names)]
            highlight = [c]
            caption = ("IoU of unit k with every concept (red: the best concept c*)" if c == best else
                       "IoU of unit k with every concept (red: the concept chosen above; c* marks the best)")
        self.bars_caption.children[0].value = f"<div style='font-size:12px;font-weight:bold'>{caption}</div>"
        self.iou_bars.value = render.bar_chart(iou, labels, highlight=highlight, title=f"IoU of unit {k}",
                                               top=len(iou))


LEGEND_I = ("<div style='font-size:11px'><span style='color:#c8b000'>■</span> M<sub>k</sub> ∩ L<sub>c</sub> "
            "(the pixels step I counts)</div>")
LEGEND = ("<div style='font-size:11px'><span style='color:#e6192d'>■</span> only M<sub>k</sub> &nbsp; "
          "<span style='color:#28c83c'>■</span> only L<sub>c</sub> &nbsp; "
          "<span style='color:#c8b000'>■</span> both</div>")


__all__ = ["DissectionExplorer", "UnitStepper"]
