"""AttentionExplorer: activation-based attention maps and the attention-transfer loss
(Zagoruyko & Komodakis 2017).

    Q = Σ_c |A_c|^p  (or max_c)      q = vec(Q) / ‖vec(Q)‖₂      L_AT = mean (q_S − q_T)²

Two networks look at the same image; at layers of the same resolution each gives a map of where it
"looks". Choose the pair of layers, p and sum/max; compare the maps and read the loss a student would
minimise to look where the teacher looks.
"""

from __future__ import annotations

import html

import ipywidgets as W
import torch

import xai_ref as xr
from xai_ref.hooks import Hooks
from xai_ref.models import shapes_nets

from . import inputs, render
from .cache import Memo
from .explorer import Explorer, captioned, row, section, toggles
from .stepper import Stepper


def default_pair() -> tuple[str, str]:
    """(student, teacher) model names: trained AT nets when the package has them, else NIN vs VGG."""
    names = list(shapes_nets.BUILDERS)
    student = next((n for n in names if "student" in n), "nin_shapes")
    teacher = next((n for n in names if "teacher" in n), "vgg_shapes")
    return student, teacher


def matching_layers(student: dict, teacher: dict) -> list[tuple[str, str]]:
    """Pairs (student layer, teacher layer) at the same h×w: the last layer of each resolution in each net
    (the output of a group of layers, as the paper pairs them)."""
    def last_by_size(layers: dict) -> dict:
        out = {}
        for name, (_, h, w) in layers.items():
            out[(h, w)] = name
        return out
    s, t = last_by_size(student), last_by_size(teacher)
    return [(s[size], t[size]) for size in s if size in t]


class AttentionExplorer(Explorer):
    """Compare a student's and a teacher's attention maps on one image.

    Usage: ``AttentionExplorer()`` (``nin_shapes`` against ``vgg_shapes``, their layers of equal size),
    ``AttentionExplorer(student, teacher, image)`` for any two models (names or ``nn.Module``s) with layers
    of equal h x w (``pairs`` picks them); ``image`` as in the other explorers.
    Panels: the teacher's Q_T and the student's Q_S over the image and their difference q_S - q_T; the
    loss L_AT; and the stepper through A_S, A_T -> Q -> q -> loss with this image's numbers.

    Parameters: ``student``, ``teacher`` (models or names; default `default_pair`), ``image``,
    ``pairs`` (a list of (student layer, teacher layer) with equal h×w; default `matching_layers`),
    ``p`` (the exponent), ``kind`` ("sum" or "max"), ``pixel_range``.

    Controls: ``pair``, ``p``, ``kind``, and the stepper's ``step`` and ``channel``.

    Lesson: ``lessons/06_attention_transfer.ipynb``.
    """

    title = "Attention transfer: where does each network look?"
    needs_classes = False  # only feature maps: a model with any output structure works as it is

    def __init__(self, student=None, teacher=None, image=None, pairs=None, p: float = 2, kind: str = "sum",
                 pixel_range=None):
        default_student, default_teacher = default_pair()
        super().__init__(student, image, default_student, pixel_range)
        self.student = self.model
        self.teacher = inputs.resolve_model(teacher, default_teacher)
        if pairs is None:
            pairs = matching_layers(inputs.spatial_layers(self.student, self.x),
                                    inputs.spatial_layers(self.teacher, self.x))
        if not pairs:
            raise ValueError("the two networks have no layers with the same spatial size; pass pairs=[(student "
                             "layer, teacher layer), ...] (interpolate one of them in your own code if needed)")
        self.pairs = [tuple(pair) for pair in pairs]
        self.acts_student = _activations(self.student, self.x, [s for s, _ in self.pairs])
        self.acts_teacher = _activations(self.teacher, self.x, [t for _, t in self.pairs])
        self.traces = Memo(self._trace, maxsize=64)

        options = [(f"{'×'.join(map(str, self.acts_student[s].shape[2:]))}: {s} ↔ {t}", i)
                   for i, (s, t) in enumerate(self.pairs)]
        self.controls["pair"] = W.Dropdown(options=options, value=len(options) - 1, description="layers",
                                           layout=W.Layout(width="440px"))
        self.controls["p"] = W.Dropdown(options=[1, 2, 3, 4], value=p, description="p",
                                        layout=W.Layout(width="110px"), style={"description_width": "24px"})
        self.controls["kind"] = toggles(xr.attention.KINDS, kind, "over channels", "70px")
        self.stepper = Stepper(rgb=self.rgb, pixel_range=self.pixel_range)
        self.controls.update(self.stepper.controls)
        self.maps, self.loss, self.losses = self.picture(), W.HTML(), W.HTML()
        self.children = [
            W.HTML(f"<h3>{self.title}</h3>"),
            row(self.controls["pair"], self.controls["p"], self.controls["kind"]),
            self.status,
            row(captioned("teacher Q_T · student Q_S (over the image) · q_S − q_T", self.maps),
                W.VBox([self.loss, self.losses])),
            section("The equation, step by step"),
            self.stepper,
        ]
        for name in ("pair", "p", "kind"):
            self.on(name, self.compute, self.draw)
        self.run(self.compute, self.draw)

    def _trace(self, pair: int, p: float, kind: str):
        s, t = self.pairs[pair]
        return xr.attention_transfer(self.acts_student[s], self.acts_teacher[t], p, kind)

    def compute(self) -> None:
        c = self.controls
        self.trace = self.traces(c["pair"].value, c["p"].value, c["kind"].value)
        self.stepper.show(self.trace)

    def draw(self) -> None:
        t, c = self.trace, self.controls
        QT, QS = t.Q_T[0].numpy(), t.Q_S[0].numpy()
        diff = (t.q_S[0] - t.q_T[0]).reshape(QS.shape).numpy()
        size = self.fit(self.rgb).shape[0]
        pics = [render.shown(QT, size, self.rgb), render.shown(QS, size, self.rgb),
                render.shown(render.resize_nearest(diff, *self.rgb.shape[:2]), size)]
        self.maps.value = render.png(render.tile(pics, cols=3, pad=6))
        s_name, t_name = (html.escape(n) for n in self.pairs[c["pair"].value])
        self.loss.value = (f"<div style='font-size:14px'>L<sub>AT</sub> = <b>{float(t.loss):.4g}</b><br>"
                           f"<span style='font-size:12px'>student {s_name} ({t.A_S.shape[1]} channels) vs "
                           f"teacher {t_name} ({t.A_T.shape[1]} channels)</span></div>")
        rows = [[f"{s} ↔ {tn}", float(self.traces(i, c["p"].value, c["kind"].value).loss)]
                for i, (s, tn) in enumerate(self.pairs)]
        rows.append(["Σ over the pairs", sum(r[1] for r in rows)])
        self.losses.value = render.table_html(rows, header=["pair", "L_AT"], highlight_row=c["pair"].value,
                                              title=f"every pair (p = {c['p'].value}, {c['kind'].value})")


def _activations(model, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
    """The outputs of ``layers`` for ``x`` (one forward pass, no gradients)."""
    with torch.no_grad(), Hooks(model, layers=layers) as h:
        model(x)
        return {name: h.activations[name] for name in layers}
