"""Every explanation method, from scratch in NumPy, on a scratch `Sequential`.

Each function returns the same `xai_ref.Trace` as its PyTorch twin in `xai_ref` (same method name, the
same terms in the same order, the same LaTeX), with NumPy arrays as values; `tests/test_agreement.py`
shows that the values agree to float64 round-off. Where to read each one:

    gradients.py   Neuron, targets, forward_backward (one forward + one backward pass), resize (bilinear)
    cam.py         gap, cam, grad_cam, grad_cam_pp, xgrad_cam, guided_grad_cam
    backprop.py    saliency, deconvnet, guided_backprop
    occlusion.py   occlusion
    ascent.py      class_model, fooling_image, gaussian_blur
    attention.py   attention_map, normalised_attention, at_loss, attention_transfer

    >>> import xai_ref.scratch as xs
    >>> net = xs.from_torch(model.double())           # doctest: +SKIP
    >>> t = xs.grad_cam(net, x)                         # doctest: +SKIP  (x: float64 (B,C,H,W) array)
"""
from .ascent import class_model, fooling_image, gaussian_blur
from .attention import at_loss, attention_map, attention_transfer, normalised_attention
from .backprop import deconvnet, guided_backprop, saliency
from .cam import cam, gap, grad_cam, grad_cam_pp, guided_grad_cam, xgrad_cam
from .gradients import Neuron, forward_backward, resize
from .occlusion import occlusion

__all__ = ["Neuron", "at_loss", "attention_map", "attention_transfer", "cam", "class_model", "deconvnet",
           "fooling_image", "forward_backward", "gap", "gaussian_blur", "grad_cam", "grad_cam_pp",
           "guided_backprop", "guided_grad_cam", "normalised_attention", "occlusion", "resize", "saliency",
           "xgrad_cam"]
