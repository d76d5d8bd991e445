"""Interactive explorers for xai_ref: what a student touches.

>>> from widgets import CAMExplorer
>>> CAMExplorer()                              # the shapes NIN and a shapes image
>>> CAMExplorer("efficientnet_lite0", "cat_coffee", target=281)

Every explorer is an ``ipywidgets.VBox`` built on one `Stepper` (which walks through any
`xai_ref.Trace`), draws its pictures as PNG bytes (`widgets.render`) and exposes ``controls``
(name -> ipywidget) for tests and benchmarks. ``widgets`` reads what ``xai_ref`` returns; ``xai_ref``
never imports ``widgets``.
"""

from .answers import answer
from .ascent import AscentExplorer
from .attention import AttentionExplorer
from .backprop import BackpropExplorer
from .cam import CAMExplorer
from .dissection import DissectionExplorer
from .gap import GAPExplorer
from .gradcam import GradCAMExplorer
from .metrics import MetricsExplorer
from .quiz import HumanStudy
from .stepper import Stepper

__all__ = ["AscentExplorer", "AttentionExplorer", "BackpropExplorer", "CAMExplorer", "DissectionExplorer",
           "GAPExplorer", "GradCAMExplorer", "HumanStudy", "MetricsExplorer", "Stepper", "answer"]
