"""Every method's equation as data: per method and term symbol, the LaTeX, a one-line description and the
names of the value's axes. The one home of this text: the PyTorch methods, their NumPy twins and the widgets
all read it through `Trace.add` (``t.add("alpha", value)``), so both twins show the same equation by
construction.

>>> equation("grad_cam", "alpha", sign="", counterfactual="").latex
'\\\\alpha^c_k = \\\\frac{1}{Z}\\\\sum_i\\\\sum_j \\\\frac{\\\\partial y^c}{\\\\partial A^k_{ij}}'
>>> equation("grad_cam", "A", layer="block3_pool").axes
('image', 'channel', 'row', 'col')

A few texts depend on the call (the layer's name, the sign of a counterfactual, the exponent p): they hold
``$name`` placeholders (`string.Template`; LaTeX never uses ``$`` here), filled from ``t.add``'s keywords.

Axes (what a widget needs to choose a display; `widgets.stepper` reads only these and the value's dtype):
``image`` one image of the batch, ``channel`` a feature map k (a unit) of a layer, ``colour`` a colour
channel of the input, ``row``/``col`` a position, ``step`` an optimisation step, ``snapshot`` a saved step,
``class`` a class, ``concept`` a concept, ``position`` a flattened position (``vec(Q)``), ``occluder`` an
occluder position and ``coordinate`` its (u, v), ``rank`` a place in a ranking; ``()`` a scalar.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Template

__all__ = ["AXES", "EQUATIONS", "NAMES", "Equation", "equation"]

AXES = ("image", "channel", "colour", "row", "col", "step", "snapshot", "class", "concept", "position",
        "occluder", "coordinate", "rank")


@dataclass(frozen=True)
class Equation:
    """One term of a method's equation: its ``latex`` (without ``$``), a one-line ``description`` and the
    ``axes`` of its value (names from :data:`AXES`, one per dimension; ``()`` for a scalar or a list)."""

    latex: str
    description: str
    axes: tuple[str, ...]

    def __post_init__(self):
        unknown = [a for a in self.axes if a not in AXES]
        if unknown:
            raise ValueError(f"unknown axes {unknown}; the axes are {AXES}")


#: Each method's name as a reader knows it (a trace's ``method`` is its Python name).
NAMES = {"gap": "GAP", "cam": "CAM", "grad_cam": "Grad-CAM", "grad_cam_pp": "Grad-CAM++", "xgrad_cam": "XGrad-CAM",
         "guided_grad_cam": "Guided Grad-CAM", "guided_grad_cam_pp": "Guided Grad-CAM++",
         "guided_xgrad_cam": "Guided XGrad-CAM", "saliency": "saliency", "deconvnet": "deconvnet",
         "guided_backprop": "guided backpropagation", "occlusion": "occlusion",
         "class_model": "class model visualisation", "fooling_image": "fooling image",
         "attention_transfer": "attention transfer", "dissection": "Network Dissection",
         "textual": "textual explanation"}

MAPS = ("image", "channel", "row", "col")
MAP = ("image", "row", "col")
PIXELS = ("image", "colour", "row", "col")
SERIES = ("step", "image")

# --- shared pieces ---------------------------------------------------------------------------------------

_UP_L = r"\mathrm{up}(L^c)"
_WEIGHTED = r"\sum_k \alpha^c_k A^k"
_DY_DA = r"\frac{\partial y^c}{\partial A^k_{ij}}"
_GRAD_CAM_ALPHA = r"\alpha^c_k = \frac{1}{Z}\sum_i\sum_j $sign" + _DY_DA
_CAM_W = r"w^c_k = W_{c,k}"
_GUIDED_RULE = r"R^{l} = [f^{l} > 0] \cdot \max(R^{l+1}, 0)\ \text{at every ReLU}"
_MAX_OVER_COLOURS = r"M_{ij} = \max_{ch} |g_{ch,ij}|"
_Q = r"Q_$who = $agg |A_{$who,c}|^{$p}"
_q = r"q_$who = \frac{\mathrm{vec}(Q_$who)}{\lVert \mathrm{vec}(Q_$who) \rVert_2}"
_L2 = r"\lambda \lVert I_t \rVert_2^2"
_NAME = r"c^* = \arg\max_c \mathrm{IoU}_{k,c}\ \text{if}\ \mathrm{IoU}_{k,c^*} > $floor"


def _grad_cam_family(alpha: Equation, **extra: Equation) -> dict[str, Equation]:
    """The Grad-CAM pipeline with a method's own alpha (and any terms it adds before alpha)."""
    return {
        "A": Equation(r"A^k,\ k = 1..K", "feature maps of layer $layer", MAPS),
        "dY_dA": Equation(_DY_DA, "gradient of the target score at the feature maps", MAPS),
        **extra,
        "alpha": alpha,
        "weighted": Equation(_WEIGHTED, "the maps weighted by their importance and summed", MAP),
        "L": Equation(r"L^c = \mathrm{ReLU}\left(" + _WEIGHTED + r"\right)",
                      "keep only what increases the score (layer resolution)", MAP),
        "map": Equation(_UP_L, "L upsampled bilinearly to the input size", MAP),
    }


def _input_signal(latex: str, description: str) -> dict[str, Equation]:
    """Saliency, deconvnet, guided backprop: the signal at the input and its largest magnitude."""
    return {"grad": Equation(latex, description, PIXELS),
            "map": Equation(_MAX_OVER_COLOURS, "largest magnitude over the colour channels at each pixel", MAP)}


EQUATIONS: dict[str, dict[str, Equation]] = {
    # Lin et al. 2014 (NIN)
    "gap": {
        "A": Equation(r"A^k \in \mathbb{R}^{h \times w},\ k = 1..K", "the last feature maps", MAPS),
        "F": Equation(r"F^k = \frac{1}{Z}\sum_{i}\sum_{j} A^k_{ij}", "global average of each feature map",
                      ("image", "channel")),
        "S": Equation(r"S_c = \sum_k W_{c,k} F^k + b_c", "class scores: one linear layer on the pooled values",
                      ("image", "class")),
    },
    # Zhou et al. 2016
    "cam": {
        "f": Equation(r"f_k(x,y),\ k = 1..K", "the last convolutional feature maps", MAPS),
        "w": Equation(_CAM_W, "weight of feature map k in the score of class c", ("image", "channel")),
        "M": Equation(r"M_c(x,y) = \sum_k w^c_k f_k(x,y)", "class activation map: the weighted sum of the maps",
                      MAP),
        "S": Equation(r"S_c = \frac{1}{Z}\sum_{x,y} M_c(x,y) + b_c",
                      "check: averaging M gives back the class score (GAP and the sum over k commute)", ("image",)),
        "map": Equation(r"\mathrm{up}(M_c)", "M upsampled bilinearly to the input size", MAP),
    },
    # Selvaraju et al. 2017; Chattopadhyay et al. 2018; Fu et al. 2020
    "grad_cam": _grad_cam_family(
        Equation(_GRAD_CAM_ALPHA, "importance of map k: its gradient averaged over positions$counterfactual",
                 ("image", "channel"))),
    "grad_cam_pp": _grad_cam_family(
        Equation(r"\alpha^c_k = \sum_i\sum_j a^{kc}_{ij}\,\mathrm{ReLU}\!\left(" + _DY_DA + r"\right)",
                 "importance of map k: positive gradients weighted by a (the paper's w_k^c)", ("image", "channel")),
        a=Equation(r"a^{kc}_{ij} = \frac{(\partial y^c/\partial A^k_{ij})^2}{2(\partial y^c/\partial A^k_{ij})^2"
                   r" + \sum_{a,b} A^k_{ab}(\partial y^c/\partial A^k_{ij})^3}",
                   "pixel-wise weighting coefficients (0 where the denominator is 0)", MAPS)),
    "xgrad_cam": _grad_cam_family(
        Equation(r"\alpha^c_k = \sum_i\sum_j \frac{A^k_{ij}}{\sum_{a,b} A^k_{ab}}\," + _DY_DA,
                 "importance of map k: gradient averaged with the activation as weights (0 for an all-zero map)",
                 ("image", "channel"))),
    # the terms Guided Grad-CAM adds to any Grad-CAM-family trace (`xai_ref.cam.guided`)
    "guided": {
        "L_up": Equation(_UP_L, "$name upsampled bilinearly to the input size", ("image", "channel", "row", "col")),
        "R": Equation(_GUIDED_RULE, "guided backpropagation: fine detail, not class-discriminative", PIXELS),
        "guided": Equation(r"R \odot " + _UP_L, "guided backprop kept where $name is high", PIXELS),
        "map": Equation(r"M_{ij} = \max_{ch} |(R \odot " + _UP_L + r")_{ch,ij}|",
                        "largest magnitude over colour channels", MAP),
    },
    # Simonyan et al. 2014; Zeiler & Fergus 2014; Springenberg et al. 2015
    "saliency": _input_signal(r"\frac{\partial S_c}{\partial I}", "gradient of the target score at the input pixels"),
    "deconvnet": _input_signal(r"R^{l} = \max(R^{l+1}, 0)\ \text{at every ReLU}",
                               "signal passed down by the deconvnet rule (ReLU on the top signal, pooling switches)"),
    "guided_backprop": _input_signal(_GUIDED_RULE,
                                     "signal passed down by the guided rule (forward mask and positive top signal)"),
    # Zeiler & Fergus 2014
    "occlusion": {
        "corners": Equation(r"(u, v) \in \{0, s, 2s, \dots\}^2", "top-left corner of each occluder position",
                            ("occluder", "coordinate")),
        "drop": Equation(r"\Delta_{uv} = y^c(x) - y^c(x_{uv})", "score drop with the square at (u, v) occluded", MAP),
        "map": Equation(r"M_{ij} = \mathrm{mean}\{\Delta_{uv} : (i,j) \in \text{window}(u,v)\}",
                        "mean score drop over the occluder positions covering each pixel", MAP),
    },
    # Simonyan et al. 2014
    "class_model": {
        "I0": Equation(r"I_0 = 0", "the starting image", PIXELS),
        "S": Equation(r"S_c(I_t)", "the target score at each step", SERIES),
        "R": Equation(_L2, "the L2 penalty at each step", SERIES),
        "J": Equation(r"J(I_t) = S_c(I_t) - " + _L2, "the objective being maximised", SERIES),
        "grad_norm": Equation(r"\lVert \nabla_I J \rVert_2", "size of the gradient at each step", SERIES),
        "snapshots": Equation(r"I_t", "the image every few steps", ("snapshot", *PIXELS)),
        "image": Equation(r"I^* = \arg\max_I S_c(I) - \lambda \lVert I \rVert_2^2", "the class model image", PIXELS),
    },
    # Szegedy et al. 2014, as in CS231n
    "fooling_image": {
        "S": Equation(r"S_t(x_k)", "the target class score at each step", SERIES),
        "pred": Equation(r"\arg\max_c S_c(x_k)", "the predicted class at each step", SERIES),
        "image": Equation(r"x' = x + \sum_k \eta\, g_k / \lVert g_k \rVert", "the fooling image", PIXELS),
        "delta": Equation(r"x' - x", "the change: small, yet it flips the prediction", PIXELS),
        "fooled": Equation(r"\arg\max_c S_c(x') = t", "whether each image is now classified as its target",
                           ("image",)),
    },
    # Zagoruyko & Komodakis 2017
    "attention_transfer": {
        "A_S": Equation(r"A_S \in \mathbb{R}^{C_S \times h \times w}", "student activations", MAPS),
        "A_T": Equation(r"A_T \in \mathbb{R}^{C_T \times h \times w}", "teacher activations", MAPS),
        "Q_S": Equation(Template(_Q).safe_substitute(who="S"), "student attention map", MAP),
        "Q_T": Equation(Template(_Q).safe_substitute(who="T"), "teacher attention map", MAP),
        "q_S": Equation(Template(_q).substitute(who="S"), "student map, unit length", ("image", "position")),
        "q_T": Equation(Template(_q).substitute(who="T"), "teacher map, unit length", ("image", "position")),
        "loss": Equation(r"\mathcal{L}_{AT} = \frac{1}{B\,hw}\sum_{b,i} (q_S - q_T)_{b,i}^2",
                         "the AT loss as in the reference code (mean squared difference)", ()),
    },
    # Bau et al. 2017
    "dissection": {
        "A": Equation(r"a_k(x),\ k = 1..K",
                      "activations of layer $layer (the first $keep probe images; all $n streamed)", MAPS),
        "T": Equation(r"P(a_k > T_k) = $q",
                      "each unit's top-quantile threshold over every position of every probe image", ("channel",)),
        "M": Equation(r"M_k(x) = S_k(x) \geq T_k,\quad S_k = \mathrm{up}(a_k)",
                      "the unit's mask: its bilinearly upsampled map above T_k (the first $keep probe images)", MAPS),
        "I": Equation(r"\sum_x |M_k(x) \cap L_c(x)|",
                      "pixels in both the unit's mask and concept c's mask, over the set",
                      ("channel", "concept")),
        "U": Equation(r"\sum_x |M_k(x) \cup L_c(x)|", "pixels in either mask, over the set", ("channel", "concept")),
        "IoU": Equation(r"\mathrm{IoU}_{k,c} = \frac{\sum_x |M_k(x) \cap L_c(x)|}{\sum_x |M_k(x) \cup L_c(x)|}",
                        "how well the unit's mask matches each concept's masks", ("channel", "concept")),
        "name": Equation(_NAME, "each unit's best concept, or 'unnamed' when its best IoU is not above the floor",
                         ("channel",)),
    },
    # Selvaraju et al. 2017, textual explanations
    "textual": {
        "alpha": Equation(Template(_GRAD_CAM_ALPHA).substitute(sign=""), "Grad-CAM's importance of unit k for class c",
                          ("image", "channel")),
        "w": Equation(_CAM_W, "CAM's weight of unit k in the score of class c", ("image", "channel")),
        "top": Equation(r"\mathrm{top}_n\,k \text{ by } $weight", "the $n most important units", ("image", "rank")),
        "bottom": Equation(r"\mathrm{bottom}_n\,k \text{ by } $weight",
                           "the $n least important units (their absence raises the score)", ("image", "rank")),
        "units": Equation(_NAME, "the dissected units: name, IoU, T", ("channel",)),
        "sentence": Equation(r"\text{model says } c \text{ because of units } \mathrm{top}_n",
                             "the units' names as a sentence", ()),
    },
}


def equation(method: str, symbol: str, **fill) -> Equation:
    """The equation of term ``symbol`` of ``method``, its ``$placeholders`` filled from ``fill``."""
    try:
        eq = EQUATIONS[method][symbol]
    except KeyError:
        known = sorted(EQUATIONS[method]) if method in EQUATIONS else sorted(EQUATIONS)
        raise KeyError(f"no equation for term {symbol!r} of method {method!r}; known: {known}") from None
    values = {k: str(v) for k, v in fill.items()}
    try:
        return Equation(Template(eq.latex).substitute(values), Template(eq.description).substitute(values), eq.axes)
    except KeyError as e:
        raise KeyError(f"the equation of term {symbol!r} of {method!r} needs {e.args[0]}=... to fill it") from None
