"""A convolutional network written from scratch in NumPy: every forward beside its backward.

Read `layers.py` first (one small class per layer), then `network.py` (a Sequential that keeps every
activation and every backward signal, and `from_torch`), then `gradcheck.py` (how we know it is right),
then `methods.py`: every explanation method on that network (CAM, Grad-CAM, saliency, deconvnet, guided
backprop, occlusion, class models, attention), each returning the same Trace as its twin in `xai_ref`.
"""
from ..checks import RULES
from .gradcheck import check_layer_gradient, numerical_gradient, rel_error
from .layers import (Conv2d, Flatten, GlobalAvgPool, Identity, Linear, MaxPool2d, ReLU,
                     col2im, im2col, log_softmax, softmax, window_index)
from .methods import (Neuron, at_loss, attention_map, attention_transfer, cam, class_model, deconvnet,
                      fooling_image, forward_backward, gap, gaussian_blur, grad_cam, grad_cam_pp,
                      guided_backprop, guided_grad_cam, normalised_attention, occlusion, resize, saliency,
                      xgrad_cam)
from .network import Sequential, from_torch
from . import dissection

__all__ = ["RULES", "Conv2d", "ReLU", "MaxPool2d", "GlobalAvgPool", "Flatten", "Identity", "Linear",
           "softmax", "log_softmax", "im2col", "col2im", "window_index", "Sequential", "from_torch",
           "numerical_gradient", "rel_error", "check_layer_gradient",
           # the methods (methods.py)
           "Neuron", "forward_backward", "resize", "gap", "cam", "grad_cam", "grad_cam_pp", "xgrad_cam",
           "guided_grad_cam", "saliency", "deconvnet", "guided_backprop", "occlusion", "class_model",
           "fooling_image", "gaussian_blur", "attention_map", "normalised_attention", "at_loss",
           "attention_transfer", "dissection"]
