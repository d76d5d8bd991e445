"""The checks of the course assignments: run a student's function and a reference on the same inputs.

>>> from xai_ref.course import check
>>> check.grad_cam_alpha(grad_cam_alpha)      # prints one PASSED line, or raises AssertionError

Each check runs the student's function and a reference on seeded random inputs and small hand-made edge
cases, and on the first case that fails raises an ``AssertionError`` saying which case, how large the
error is, where the largest difference is and, when the output equals what a typical wrong
implementation gives, which mistake it is (``MISTAKES[check_name]`` lists them). How: `runner`; the
checks of each assignment: `a1_relu_pooling` ... `a5_evaluation`; the exercise networks: `nets`.
"""

from ..scratch import rel_error
from .a1_relu_pooling import maxpool_backward, maxpool_forward, relu_backward
from .a2_saliency import class_model_step, saliency
from .a3_cam import cam, grad_cam, grad_cam_alpha, grad_cam_map, upsample_bilinear
from .a4_attention import at_loss, attention_map, normalise_attention
from .a5_evaluation import deletion_curve, pointing_game
from .nets import COLOURS, colour_net, colour_scenes, small_net
from .runner import MISTAKES

__all__ = [
    "MISTAKES", "rel_error",
    # A1
    "relu_backward", "maxpool_forward", "maxpool_backward",
    # A2
    "saliency", "class_model_step",
    # A3
    "cam", "grad_cam_alpha", "grad_cam_map", "upsample_bilinear", "grad_cam",
    # A4
    "attention_map", "normalise_attention", "at_loss",
    # A5
    "pointing_game", "deletion_curve",
    # the networks and images of the exercises
    "COLOURS", "colour_net", "colour_scenes", "small_net",
]
