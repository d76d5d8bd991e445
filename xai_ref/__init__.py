"""xai-ref: a readable reference for how convolutional networks explain their decisions.

>>> import xai_ref as xr
>>> t = xr.grad_cam(model, x)         # a Trace: t.A, t.alpha, t.L, t.map, t.steps
"""

from . import data, dissection, hooks, inputs, models, results, study, textual, trace
from .ascent import class_model, fooling_image
from .attention import at_loss, attention_map, attention_transfer, normalised_attention
from .backprop import deconvnet, guided_backprop, saliency
from .cam import cam, gap, grad_cam, grad_cam_pp, guided_grad_cam, token_grid, xgrad_cam
from .gradients import Neuron, forward_backward
from .occlusion import occlusion
from .trace import Term, Trace

__version__ = "0.1.0"

__all__ = [
    "Neuron", "Term", "Trace", "at_loss", "attention_map", "attention_transfer", "cam", "class_model", "data",
    "deconvnet", "dissection", "fooling_image", "forward_backward", "gap", "grad_cam", "grad_cam_pp",
    "guided_backprop", "guided_grad_cam", "hooks", "inputs", "models", "normalised_attention", "occlusion",
    "results", "saliency", "study", "textual", "token_grid", "trace", "xgrad_cam",
]
