"""Traces composed for both twins (the values may be tensors or arrays).

Guided Grad-CAM (Selvaraju et al., ICCV 2017) multiplies guided backpropagation's fine signal by a
Grad-CAM-family map upsampled to the input: `guided` is the one place where that is written, used by
`xai_ref.guided_grad_cam`, `xai_ref.scratch.guided_grad_cam` and the Grad-CAM explorer (with Grad-CAM++ or
XGrad-CAM maps too).
"""

from __future__ import annotations

from .equations import NAMES
from .trace import Trace

__all__ = ["FAMILY_NAMES", "class_model_terms", "guided"]

#: The Grad-CAM-family methods Guided Grad-CAM can be composed from, with their names.
FAMILY_NAMES = {method: NAMES[method] for method in ("grad_cam", "grad_cam_pp", "xgrad_cam")}


def guided(gc: Trace, R) -> Trace:
    """Guided Grad-CAM from a Grad-CAM-family trace ``gc`` and the guided-backprop signal ``R`` (B,C,H,W) of
    the same images and class:

        L_up = up(L^c) (B,1,H,W),      guided = R * L_up,      M_ij = max_ch |guided_ch,ij|

    The trace holds ``gc``'s terms up to ``L``, then ``L_up``, ``R``, ``guided`` and ``map``; its method is
    ``"guided_" + gc.method`` (``"guided_grad_cam"`` for Grad-CAM).

    Lesson: ``lessons/05_grad_cam.ipynb``.
    """
    if not isinstance(gc, Trace) or gc.method not in FAMILY_NAMES:
        raise TypeError(f"gc must be the Trace of a Grad-CAM-family method {tuple(FAMILY_NAMES)}, got "
                        f"{gc.method if isinstance(gc, Trace) else type(gc).__name__!r}")
    name = FAMILY_NAMES[gc.method]
    t = Trace(f"guided_{gc.method}", meta=dict(gc.meta))
    t.extend(gc.steps[:-1])
    L_up = t.add("L_up", gc.map[:, None], of="guided", name=name)
    t.add("R", R, of="guided")
    magnitude = abs(t.add("guided", R * L_up, of="guided", name=name))
    t.add("map", magnitude.amax(1) if hasattr(magnitude, "amax") else magnitude.max(1), of="guided")  # torch | NumPy
    return t


def class_model_terms(t: Trace, curves: dict, snapshots: list, image, stack) -> Trace:
    """The last terms of a class model visualisation (both twins; ``stack`` is ``torch.stack`` or
    ``np.stack``): the curves over the steps ``S``, ``R`` and ``J = S - R``, the gradient's norm, the
    snapshots and the final image."""
    S = t.add("S", stack(curves["S"]))
    R = t.add("R", stack(curves["R"]))
    t.add("J", S - R)
    t.add("grad_norm", stack(curves["grad_norm"]))
    t.add("snapshots", stack(snapshots))
    t.add("image", image)
    return t
