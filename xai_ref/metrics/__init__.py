"""Evaluating explanations: does a map localize the object, is it faithful to the model, does it
depend on what the model learned, is it stable?

>>> from xai_ref import metrics
>>> t = xr.grad_cam(model, x, target=labels)
>>> metrics.localization(t.map, boxes, fraction=0.15).accuracy      # CAM / Grad-CAM protocol
>>> metrics.pointing_game(t.map, masks, labels).accuracy              # Zhang et al. 2016
>>> metrics.deletion(model, x, t).mean_auc                            # RISE (lower is better)
>>> metrics.average_drop(model, x, t).average_drop                    # Grad-CAM++ (%)
>>> metrics.model_randomization(model, x, xr.grad_cam).table()       # Adebayo et al. 2018

=====================  ==========================================================================
localization           `threshold_boxes`, `box_iou`, `localization`, `energy_pointing`,
                       `pointing_game` (Zhou et al. 2016; Selvaraju et al. 2017; Zhang et al. 2016)
faithfulness           `deletion`, `insertion`, `auc` (Petsiuk et al. 2018); `average_drop`
                       (Chattopadhay et al. 2018); `region_perturbation` (Samek et al. 2017);
                       `occlusion_faithfulness` (Selvaraju et al. 2017)
sanity checks          `model_randomization` (cascading / independent; Adebayo et al. 2018)
robustness             `robustness` with `identity`, `gaussian_noise`, `rotation`, `translation`,
                       `adversarial` (`fgsm`)
similarity of maps     `spearman`, `ssim`
=====================  ==========================================================================

Maps are ``(B,H,W)`` tensors (or a Trace, whose ``map`` is used and whose classes become the default
target); boxes ``(B,4)`` ``(x0, y0, x1, y1)`` with exclusive ends; masks ``(B,H,W)`` bool.
"""

from .localization import (Localization, Pointing, box_iou, default_tolerance, energy_pointing,
                           largest_component, localization, pointing_game, threshold_boxes)
from .perturbation import (MoRF, Confidence, Curves, auc, average_drop, deletion, explanation_images,
                           gaussian_blur, insertion, occlusion_faithfulness, region_perturbation)
from .robustness import (Robustness, Transform, adversarial, fgsm, gaussian_noise, identity, robustness,
                         rotation, translation)
from .sanity import Randomization, model_randomization, randomizable_layers, randomize_layer
from .similarity import normalise01, spearman, ssim

__all__ = [
    "Confidence", "Curves", "Localization", "MoRF", "Pointing", "Randomization", "Robustness", "Transform",
    "adversarial", "auc", "average_drop", "box_iou", "default_tolerance", "deletion", "energy_pointing",
    "explanation_images", "fgsm", "gaussian_blur", "gaussian_noise", "identity", "insertion",
    "largest_component", "localization", "model_randomization", "normalise01", "occlusion_faithfulness",
    "pointing_game", "randomizable_layers", "randomize_layer", "region_perturbation", "robustness",
    "rotation", "spearman", "ssim", "threshold_boxes", "translation",
]
