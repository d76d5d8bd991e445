"""xai_ref.metrics: every metric checked against values computed by hand."""

import math

import pytest
import torch
from torch import nn

from xai_ref import metrics as M
from xai_ref.trace import Trace


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


class LinearTwoClass(nn.Module):
    """Logits (0, sum_p w_p x_p) for a 1-channel image: p(class 1) = sigmoid(w . x)."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.as_tensor(w, dtype=torch.float64).flatten())

    def forward(self, x):
        z = x.flatten(1) @ self.w
        return torch.stack([torch.zeros_like(z), z], 1)


def box_map(H, W, box, value=1.0):
    m = torch.zeros(1, H, W, dtype=torch.float64)
    x0, y0, x1, y1 = box
    m[0, y0:y1, x0:x1] = value
    return m


# ---------------------------------------------------------------------------------------------------
# localization
# ---------------------------------------------------------------------------------------------------

def test_map_equal_to_mask_localizes_perfectly():
    mask = torch.zeros(2, 16, 16, dtype=torch.bool)
    mask[0, 2:7, 3:12] = True                  # box (3, 2, 12, 7)
    mask[1, 9:15, 0:4] = True                  # box (0, 9, 4, 15)
    boxes = torch.tensor([[3, 2, 12, 7], [0, 9, 4, 15]])
    maps = mask.double()
    loc = M.localization(maps, boxes, fraction=0.2)
    assert torch.equal(loc.boxes, boxes)
    assert loc.iou.tolist() == [1.0, 1.0] and loc.accuracy == 1.0
    pg = M.pointing_game(maps, mask)
    assert pg.hits.all() and pg.accuracy == 1.0
    assert M.energy_pointing(maps, mask).tolist() == [1.0, 1.0]
    assert M.energy_pointing(maps, boxes).tolist() == [1.0, 1.0]


def test_largest_component_is_chosen_by_size_not_by_peak():
    m = torch.zeros(1, 12, 12, dtype=torch.float64)
    m[0, 1:3, 1:3] = 2.0                       # small, holds the maximum
    m[0, 6:10, 5:11] = 1.0                     # large: 1 >= 0.2 * 2 after min-max (0.5)
    assert M.threshold_boxes(m, 0.2).tolist() == [[5, 6, 11, 10]]
    # above 0.5 of the max only the peak survives
    assert M.threshold_boxes(m, 0.6).tolist() == [[1, 1, 3, 3]]


def test_threshold_uses_min_max_normalisation_and_fraction():
    m = torch.full((1, 10, 10), 1.0, dtype=torch.float64)   # min 1
    m[0, 4:6, 4:6] = 11.0                                    # max 11: block normalises to 1
    m[0, 3, 3:7] = 2.5                                       # (2.5 - 1) / 10 = 0.15: a row above, adjacent
    assert M.threshold_boxes(m, 0.20).tolist() == [[4, 4, 6, 6]]
    assert M.threshold_boxes(m, 0.15).tolist() == [[3, 3, 7, 6]]   # 0.15 >= 0.15: included
    assert M.threshold_boxes(m, 0.0).tolist() == [[0, 0, 10, 10]]


def test_diagonal_pixels_are_one_component():
    m = torch.zeros(1, 6, 6, dtype=torch.float64)
    m[0, 1, 1] = m[0, 2, 2] = m[0, 3, 3] = 1.0
    m[0, 5, 0] = m[0, 5, 1] = 1.0          # two pixels: smaller than the diagonal of three
    assert M.threshold_boxes(m, 0.5).tolist() == [[1, 1, 4, 4]]


def test_constant_map_gives_empty_box_and_no_hit():
    m = torch.full((1, 8, 8), 3.0)
    assert M.threshold_boxes(m, 0.2).tolist() == [[0, 0, 0, 0]]
    loc = M.localization(m, torch.tensor([[0, 0, 4, 4]]))
    assert loc.iou.item() == 0.0 and loc.accuracy == 0.0
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, 0, 0] = True                      # the first raster pixel: a tie-break would hit it
    pg = M.pointing_game(m, mask)
    assert not pg.hits.any() and pg.points.tolist() == [[-1, -1]]


def test_box_iou_by_hand():
    a = torch.tensor([[0, 0, 4, 4], [0, 0, 2, 2], [0, 0, 0, 0], [1, 1, 3, 3]])
    b = torch.tensor([[2, 2, 6, 6], [2, 2, 4, 4], [0, 0, 0, 0], [1, 1, 3, 3]])
    # 4 / (16 + 16 - 4); disjoint; both empty; identical
    assert M.box_iou(a, b).tolist() == pytest.approx([4 / 28, 0.0, 0.0, 1.0])


def test_iou_exactly_one_half_counts_as_localized():
    gt = torch.tensor([[0, 0, 4, 4], [0, 0, 4, 4]])
    maps = torch.cat([box_map(10, 10, (0, 0, 4, 8)),      # area 32, IoU 16/32 = 0.5
                      box_map(10, 10, (0, 0, 4, 9))])     # area 36, IoU 16/36 < 0.5
    loc = M.localization(maps, gt)
    assert loc.iou.tolist() == pytest.approx([0.5, 16 / 36])
    assert loc.correct.tolist() == [True, False] and loc.accuracy == 0.5


def test_energy_pointing_by_hand():
    m = torch.zeros(1, 6, 6, dtype=torch.float64)
    m[0, 1, 1], m[0, 2, 2] = 1.0, 2.0         # 3 inside the box (0, 0, 3, 3)
    m[0, 5, 5] = 1.0                          # 1 outside
    m[0, 4, 4] = -7.0                         # negative mass is ignored
    assert M.energy_pointing(m, torch.tensor([[0, 0, 3, 3]])).item() == pytest.approx(0.75)
    mask = torch.zeros(1, 6, 6, dtype=torch.bool)
    mask[0, 2, 2] = True
    assert M.energy_pointing(m, mask).item() == pytest.approx(0.5)
    assert M.energy_pointing(-m.abs(), mask).item() == 0.0   # no positive mass


def point_map(H, W, row, col):
    m = torch.zeros(1, H, W)
    m[0, row, col] = 1.0
    return m


def test_pointing_tolerance_edges():
    mask = torch.zeros(1, 32, 32, dtype=torch.bool)
    mask[0, 10, 10] = True
    # exactly at the tolerance: distance sqrt(3^2 + 4^2) = 5 -> hit; sqrt(3^2 + 5^2) = 5.83 -> miss
    assert M.pointing_game(point_map(32, 32, 13, 14), mask, tolerance=5).hits.item()
    assert not M.pointing_game(point_map(32, 32, 13, 15), mask, tolerance=5).hits.item()
    assert M.pointing_game(point_map(32, 32, 13, 14), mask, tolerance=5).distance.item() == 5.0
    # tolerance 0: only inside the mask
    assert M.pointing_game(point_map(32, 32, 10, 10), mask, tolerance=0).hits.item()
    assert not M.pointing_game(point_map(32, 32, 10, 11), mask, tolerance=0).hits.item()


def test_pointing_default_tolerance_is_15px_at_224_scaled():
    assert M.default_tolerance(224) == 15.0
    assert M.default_tolerance(64) == pytest.approx(4.2857, abs=1e-4)
    mask = torch.zeros(1, 64, 64, dtype=torch.bool)
    mask[0, 30, 30] = True
    hit = lambda r, c: M.pointing_game(point_map(64, 64, r, c), mask).hits.item()  # noqa: E731
    assert hit(30, 34)            # 4 px
    assert hit(33, 33)            # 4.24 px
    assert not hit(30, 35)        # 5 px
    assert not hit(33, 34)        # 5 px


def test_pointing_accuracy_is_averaged_over_classes():
    masks = torch.zeros(4, 8, 8, dtype=torch.bool)
    masks[:, 0, 0] = True
    maps = torch.cat([point_map(8, 8, 0, 0), point_map(8, 8, 0, 0), point_map(8, 8, 7, 7), point_map(8, 8, 7, 7)])
    pg = M.pointing_game(maps, masks, labels=torch.tensor([0, 0, 0, 1]), tolerance=1.0)
    assert pg.hits.tolist() == [True, True, False, False]
    assert pg.per_class == pytest.approx({0: 2 / 3, 1: 0.0})
    assert pg.accuracy == pytest.approx(1 / 3) and pg.overall == 0.5


def test_pointing_tie_takes_first_maximum_in_raster_order():
    m = torch.zeros(1, 8, 8)
    m[0, 1, 6] = m[0, 6, 1] = 1.0
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, 1, 6] = True
    pg = M.pointing_game(m, mask, tolerance=0)
    assert pg.points.tolist() == [[1, 6]] and pg.hits.item()


def test_localization_bad_input():
    maps = torch.rand(2, 8, 8)
    with pytest.raises(ValueError, match="shape"):
        M.localization(maps, torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="x1"):
        M.localization(maps, torch.tensor([[0, 0, 9, 4], [0, 0, 2, 2]]))
    with pytest.raises(ValueError, match=r"fraction must be a finite number in \[0, 1\]"):
        M.threshold_boxes(maps, 1.5)
    with pytest.raises(TypeError):
        M.threshold_boxes(maps, "0.2")
    with pytest.raises(ValueError, match="maps' shape"):
        M.pointing_game(maps, torch.ones(2, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one pixel"):
        M.pointing_game(maps, torch.zeros(2, 8, 8, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean"):
        M.pointing_game(maps, torch.full((2, 8, 8), 0.5))
    with pytest.raises(ValueError, match=r"\(B,H,W\)"):
        M.energy_pointing(torch.rand(8, 8), torch.ones(8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="NaN"):
        M.threshold_boxes(torch.full((1, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="one class per map"):
        M.pointing_game(maps, torch.ones(2, 8, 8, dtype=torch.bool), labels=[0, 1, 2])


# ---------------------------------------------------------------------------------------------------
# deletion, insertion, AUC
# ---------------------------------------------------------------------------------------------------

W4 = [[3.0, 2.0], [1.0, 0.0]]   # pixel weights of LinearTwoClass on a 2x2 image


def test_auc_of_known_curves():
    assert M.auc(torch.linspace(0, 1, 11)).item() == pytest.approx(0.5)
    assert M.auc(torch.linspace(1, 0, 5)).item() == pytest.approx(0.5)
    assert M.auc(torch.ones(3)).item() == pytest.approx(1.0)
    # uneven x: (0.75 - 0) * (1 + 0.5) / 2 + (1 - 0.75) * (0.5 + 0) / 2
    assert M.auc([1.0, 0.5, 0.0], [0.0, 0.75, 1.0]).item() == pytest.approx(0.5625 + 0.0625)
    assert M.auc(torch.tensor([[0.0, 1.0], [1.0, 1.0]])).tolist() == pytest.approx([0.5, 1.0])
    with pytest.raises(ValueError):
        M.auc([1.0])
    with pytest.raises(ValueError):
        M.auc([1.0, 0.0], [1.0, 0.0])


def test_deletion_on_a_linear_model():
    model = LinearTwoClass(W4)
    x = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    # deleting pixels in the order of the weights (3, 2, 1, 0): w.x = 6, 3, 1, 0, 0
    best = M.deletion(model, x, torch.tensor(W4)[None], target=1, step=1)
    expected = [sigmoid(z) for z in (6, 3, 1, 0, 0)]
    assert best.fraction.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert best.scores[0].tolist() == pytest.approx(expected)
    assert best.auc.item() == pytest.approx(0.25 * (sum(expected) - (expected[0] + expected[-1]) / 2))
    # the reversed map deletes the useless pixel first: 6, 6, 5, 3, 0 -- a larger (worse) AUC
    worst = M.deletion(model, x, -torch.tensor(W4)[None], target=1, step=1)
    assert worst.scores[0].tolist() == pytest.approx([sigmoid(z) for z in (6, 6, 5, 3, 0)])
    assert worst.mean_auc > best.mean_auc


def test_deletion_step_baseline_and_logit_output():
    model = LinearTwoClass(W4)
    x = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    c = M.deletion(model, x, torch.tensor(W4)[None], target=1, step=3, baseline=0.5, output="logit")
    assert c.fraction.tolist() == [0, 0.75, 1.0]                # 3 pixels, then the last one
    assert c.scores[0].tolist() == pytest.approx([6, 3, 3])     # (3+2+1)*0.5 + 0 = 3; then + 0*0.5
    img_baseline = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    img_baseline[0, 0, 0, 0] = 2.0
    c = M.deletion(model, x, torch.tensor(W4)[None], target=1, step=1, baseline=img_baseline, output="logit")
    assert c.scores[0].tolist() == pytest.approx([6, 9, 7, 6, 6])


def test_insertion_on_a_linear_model():
    model = LinearTwoClass(W4)
    x = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    c = M.insertion(model, x, torch.tensor(W4)[None], target=1, step=1, start=0.0)
    assert c.scores[0].tolist() == pytest.approx([sigmoid(z) for z in (0, 3, 5, 6, 6)])
    # the target comes from a Trace's classes when not given: class 0 has p = 1 - sigmoid(w.x)
    t = Trace("grad_cam", meta={"target": torch.tensor([0])})
    t.add("map", torch.tensor(W4)[None])
    c0 = M.insertion(model, x, t, step=1, start=0.0)
    assert c0.classes.tolist() == [0]
    assert c0.scores[0].tolist() == pytest.approx([1 - sigmoid(z) for z in (0, 3, 5, 6, 6)])


def test_curves_do_not_depend_on_batch_size_and_blur_keeps_constants():
    torch.manual_seed(0)
    model = LinearTwoClass(torch.randn(36))
    x = torch.rand(3, 1, 6, 6, dtype=torch.float64)
    maps = torch.rand(3, 6, 6, dtype=torch.float64)
    a = M.insertion(model, x, maps, step=5, batch_size=1, blur_sigma=1.0)
    b = M.insertion(model, x, maps, step=5, batch_size=1000, blur_sigma=1.0)
    assert torch.allclose(a.scores, b.scores)
    assert a.scores[:, -1].tolist() == pytest.approx(b.scores[:, -1].tolist())
    flat = torch.full((1, 2, 5, 7), 0.3)
    assert torch.allclose(M.gaussian_blur(flat, 2.0), flat)


def test_deletion_bad_input():
    model = LinearTwoClass(W4)
    x = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="1 images"):
        M.deletion(model, x, torch.rand(2, 2, 2))
    with pytest.raises(ValueError, match="step"):
        M.deletion(model, x, torch.rand(1, 2, 2), step=0)
    with pytest.raises(ValueError, match="baseline"):
        M.deletion(model, x, torch.rand(1, 2, 2), baseline=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="output"):
        M.deletion(model, x, torch.rand(1, 2, 2), output="probability")
    with pytest.raises(ValueError, match="out of range"):
        M.deletion(model, x, torch.rand(1, 2, 2), target=5)


# ---------------------------------------------------------------------------------------------------
# average drop / increase in confidence
# ---------------------------------------------------------------------------------------------------

def test_average_drop_and_increase_by_hand():
    model = LinearTwoClass([[3.0, 2.0], [1.0, -4.0]])          # on ones: w.x = 2
    x = torch.ones(2, 1, 2, 2, dtype=torch.float64)
    maps = torch.tensor([[[0.0, 0.0], [1.0, 0.0]],              # E keeps pixel 2 only: w.E = 1 -> drop
                         [[2.0, 3.0], [1.0, 1.0]]],             # min-max: 0.5, 1, 0, 0 -> w.E = 3.5 -> increase
                        dtype=torch.float64)
    r = M.average_drop(model, x, maps, target=1)
    Y, O1, O2 = sigmoid(2), sigmoid(1), sigmoid(3.5)
    assert r.Y.tolist() == pytest.approx([Y, Y]) and r.O.tolist() == pytest.approx([O1, O2])
    assert r.drop.tolist() == pytest.approx([(Y - O1) / Y, 0.0])
    assert r.increase.tolist() == [False, True]
    assert r.average_drop == pytest.approx(100 * (Y - O1) / Y / 2)
    assert r.increase_in_confidence == pytest.approx(50.0)


def test_explanation_images_upsample_and_normalise():
    x = torch.ones(1, 2, 4, 4)
    E = M.explanation_images(x, torch.tensor([[[0.0, 4.0], [4.0, 4.0]]]))   # upsampled bilinearly
    assert E.shape == (1, 2, 4, 4) and E.min() == 0.0 and E.max() == 1.0
    assert torch.equal(E[0, 0], E[0, 1])
    assert M.explanation_images(x, torch.full((1, 4, 4), 2.0)).abs().sum() == 0   # constant map: E = 0


# ---------------------------------------------------------------------------------------------------
# region perturbation (MoRF, AOPC) and occlusion faithfulness
# ---------------------------------------------------------------------------------------------------

def region_weights():
    """4x4 weights, constant on each 2x2 region: 4 (top-left), 3 (top-right), 2 (bottom-left), 1."""
    w = torch.empty(4, 4, dtype=torch.float64)
    w[:2, :2], w[:2, 2:], w[2:, :2], w[2:, 2:] = 4, 3, 2, 1
    return w


def test_region_perturbation_by_hand():
    w = region_weights()
    model = LinearTwoClass(w)
    x = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    # noise in [0.5, 0.5 + 1e-9]: each perturbed region of weight w_r lowers the logit by 4 * w_r * 0.5
    r = M.region_perturbation(model, x, w[None], target=1, region=2, steps=None, value_range=(0.5, 0.5 + 1e-9),
                              output="logit")
    assert r.order.tolist() == [[0, 1, 2, 3]]
    assert r.drop[0].tolist() == pytest.approx([0, 8, 14, 18, 20], abs=1e-6)
    assert r.aopc.item() == pytest.approx(60 / 5, abs=1e-6)
    r2 = M.region_perturbation(model, x, w[None], target=1, region=2, steps=2, value_range=(0.5, 0.5 + 1e-9),
                               output="logit")
    assert r2.aopc.item() == pytest.approx(22 / 3, abs=1e-6)
    # least relevant first: 2, 4, 6, 8 -> a smaller AOPC
    r3 = M.region_perturbation(model, x, -w[None], target=1, region=2, steps=None, value_range=(0.5, 0.5 + 1e-9),
                               output="logit")
    assert r3.aopc.item() == pytest.approx((0 + 2 + 6 + 12 + 20) / 5, abs=1e-6)


def test_region_perturbation_grid_noise_and_seed():
    torch.manual_seed(1)
    model = LinearTwoClass(torch.randn(25))
    x = torch.rand(2, 1, 5, 5, dtype=torch.float64)
    maps = torch.rand(2, 5, 5, dtype=torch.float64)
    a = M.region_perturbation(model, x, maps, region=2, steps=None, seed=3)
    assert a.order.shape == (2, 9) and a.scores.shape == (2, 10)     # 3x3 grid, edge regions smaller
    b = M.region_perturbation(model, x, maps, region=2, steps=None, seed=3, batch_size=3)
    c = M.region_perturbation(model, x, maps, region=2, steps=None, seed=4)
    assert torch.allclose(a.scores, b.scores) and not torch.allclose(a.scores, c.scores)
    with pytest.raises(ValueError, match="value_range"):
        M.region_perturbation(model, x, maps, value_range=(1, 0))
    with pytest.raises(ValueError, match="larger than the image"):
        M.region_perturbation(model, x, maps, region=6)


def test_occlusion_faithfulness_of_a_linear_model():
    w = torch.tensor([[3.0, -1.0, 2.0], [0.5, 4.0, -2.0], [1.0, 0.0, 2.5]], dtype=torch.float64)
    model = LinearTwoClass(w)
    x = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    # occluding pixel p (window 1, baseline 0) drops the logit by w_p: the occlusion map is w itself
    kw = dict(target=1, window=1, stride=1)
    assert M.occlusion_faithfulness(model, x, w[None], **kw).item() == pytest.approx(1.0)
    assert M.occlusion_faithfulness(model, x, -w[None], **kw).item() == pytest.approx(-1.0)
    assert M.occlusion_faithfulness(model, x, w[None], occlusion_maps=w[None]).item() == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------------
# similarity
# ---------------------------------------------------------------------------------------------------

def test_spearman_by_hand():
    a = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    assert M.spearman(a, a).item() == pytest.approx(1.0)
    assert M.spearman(a, -a).item() == pytest.approx(-1.0)
    assert M.spearman(a, torch.tensor([[[1.0, 3.0], [2.0, 4.0]]])).item() == pytest.approx(0.8)  # 1 - 6*2/60
    assert M.spearman(a, a**3 + 7).item() == pytest.approx(1.0)          # only the order matters
    s = torch.tensor([[[-3.0, 1.0], [2.0, 0.5]]])
    assert M.spearman(s, s.abs()).item() < 1 and M.spearman(s, s.abs(), absolute=True).item() == pytest.approx(1.0)
    # ties get average ranks: [1, 1, 2] -> ranks [1.5, 1.5, 3]; with [1, 2, 3]: corr = sqrt(3)/2
    t = torch.tensor([[[1.0, 1.0, 2.0]]])
    assert M.spearman(t, torch.tensor([[[1.0, 2.0, 3.0]]])).item() == pytest.approx(math.sqrt(3) / 2)
    assert M.spearman(torch.ones(1, 2, 2), a).item() == 0.0                # constant: defined as 0
    mask = torch.tensor([[[True, True], [True, False]]])
    b = torch.tensor([[[1.0, 2.0], [3.0, -100.0]]])
    assert M.spearman(a, b, mask=mask).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same shape"):
        M.spearman(a, torch.rand(1, 3, 3))


def test_ssim_of_identical_and_rescaled_maps_is_one():
    torch.manual_seed(0)
    a = torch.rand(3, 16, 16)
    assert M.ssim(a, a).tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert M.ssim(a, 5 * a + 2).tolist() == pytest.approx([1.0, 1.0, 1.0])   # both normalised to [0, 1]
    assert (M.ssim(a, torch.rand(3, 16, 16)) < 0.5).all()
    mask = torch.zeros(3, 16, 16, dtype=torch.bool)
    mask[:, 2:14, 2:14] = True
    b = a.clone()
    b[:, 0, :] = 9.0                                                         # differs only outside the mask
    assert M.ssim(a, b).max() < 1.0
    assert M.ssim(a, b, mask=mask).tolist() == pytest.approx([1.0, 1.0, 1.0])   # outside pixels ignored
    nb = M.normalise01(b, mask)
    assert nb[~mask].abs().sum() == 0 and nb[mask].max() == 1.0


# ---------------------------------------------------------------------------------------------------
# sanity checks
# ---------------------------------------------------------------------------------------------------

def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def test_model_randomization_leaves_the_model_untouched():
    import xai_ref as xr

    model = small_cnn().train()
    model[2].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, 8, 8)
    state = torch.random.get_rng_state()
    for mode in ("cascading", "independent"):
        r = M.model_randomization(model, x, xr.grad_cam, mode=mode)
        assert r.layers == ["6", "2", "0"]
        assert r.spearman.shape == r.spearman_abs.shape == r.ssim.shape == (3, 2)
        assert len(r.table()) == 3 and set(r.table()[0]) == {"layer", "spearman", "spearman_abs", "ssim"}
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)             # bit-identical
    assert model.training and not model[2].weight.requires_grad and model[0].weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.random.get_rng_state(), state)                  # global RNG untouched


def test_model_randomization_modes_and_model_independent_method():
    import xai_ref as xr

    model = small_cnn()
    x = torch.rand(3, 3, 8, 8)
    edge = lambda m, x, t: x.mean(1)          # noqa: E731  -- ignores the model: survives every randomization
    r = M.model_randomization(model, x, edge, mode="cascading")
    assert torch.allclose(r.spearman, torch.ones(3, 3, dtype=torch.float64))
    assert torch.allclose(r.ssim, torch.ones(3, 3, dtype=torch.float64))
    # the first step randomizes the same (top) layer with the same seed in both modes
    c = M.model_randomization(model, x, xr.saliency, mode="cascading", keep_maps=True)
    i = M.model_randomization(model, x, xr.saliency, mode="independent", keep_maps=True)
    assert torch.allclose(c.maps[0], i.maps[0]) and not torch.allclose(c.maps[-1], i.maps[-1])
    assert torch.allclose(c.original, xr.saliency(model, x, model(x).argmax(1)).map)


def test_randomize_layer_is_seeded_and_takes_an_init():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    M.randomize_layer(a, 7)
    M.randomize_layer(b, 7)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    M.randomize_layer(a, 7, init=lambda m: (m.weight.fill_(2.0), m.bias.zero_()))
    assert (a.weight == 2).all() and (a.bias == 0).all()


def test_model_randomization_bad_input():
    model = small_cnn()
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="mode"):
        M.model_randomization(model, x, lambda m, x, t: x.mean(1), mode="sideways")
    with pytest.raises(ValueError, match="valid"):
        M.model_randomization(model, x, lambda m, x, t: x.mean(1), layers=["1"])      # a ReLU: no parameters
    with pytest.raises(TypeError, match="callable"):
        M.model_randomization(model, x, "grad_cam")


# ---------------------------------------------------------------------------------------------------
# robustness
# ---------------------------------------------------------------------------------------------------

def test_robustness_identity_and_zero_noise_give_similarity_one():
    import xai_ref as xr

    model = small_cnn()
    x = torch.rand(2, 3, 16, 16)
    for T in (M.identity(), M.gaussian_noise(0.0)):
        r = M.robustness(model, x, xr.grad_cam, T)
        assert r.spearman.tolist() == pytest.approx([1.0, 1.0]) and r.ssim.tolist() == pytest.approx([1.0, 1.0])
        assert not r.flipped.any() and r.valid.all()


def test_equivariant_map_is_robust_to_translation_and_rotation():
    model = small_cnn()
    x = torch.rand(2, 3, 16, 16)
    brightness = lambda m, x, t: x.mean(1)    # noqa: E731  -- moves exactly with the image
    r = M.robustness(model, x, brightness, M.translation(3, -2))
    assert r.valid.sum().item() == 2 * (16 - 2) * (16 - 3)
    assert r.spearman.tolist() == pytest.approx([1.0, 1.0]) and r.ssim.tolist() == pytest.approx([1.0, 1.0])
    r = M.robustness(model, x, brightness, M.rotation(10))
    assert r.spearman.tolist() == pytest.approx([1.0, 1.0]) and r.ssim.tolist() == pytest.approx([1.0, 1.0])
    assert 0 < r.valid.sum() < 2 * 16 * 16


def test_transforms_by_hand():
    t = torch.arange(9.0).view(1, 3, 3)
    assert M.translation(1, 0).map(t).tolist() == [[[0, 0, 1], [0, 3, 4], [0, 6, 7]]]
    assert M.translation(0, -1).map(t).tolist() == [[[3, 4, 5], [6, 7, 8], [0, 0, 0]]]
    img = torch.rand(2, 3, 6, 6)
    assert torch.allclose(M.rotation(0).image(img), img)
    assert torch.allclose(M.rotation(90).image(img), torch.rot90(img, 1, (-2, -1)), atol=1e-6)
    noisy = M.gaussian_noise(0.1, seed=5).image(img)
    assert torch.equal(noisy, M.gaussian_noise(0.1, seed=5).image(img)) and noisy.min() >= 0 and noisy.max() <= 1
    with pytest.raises(TypeError):
        M.translation(1.5, 0)
    with pytest.raises(TypeError, match="Transform"):
        M.robustness(small_cnn(), img, lambda m, x, t: x.mean(1), "rotation")


def test_fgsm_stays_within_epsilon_and_lowers_the_score():
    model = LinearTwoClass(torch.linspace(-1, 1, 16))
    x = torch.full((1, 1, 4, 4), 0.5, dtype=torch.float64)
    before = model.w.detach().clone()
    adv = M.fgsm(model, x, target=1, epsilon=0.1, steps=4)
    assert (adv - x).abs().max().item() == pytest.approx(0.1)
    # the gradient of CE(class 1) w.r.t. x is -(1 - p) w: every pixel moves by -eps sign(w)
    assert torch.allclose(adv - x, -0.1 * torch.sign(model.w.detach()).view(1, 1, 4, 4))
    assert torch.equal(model.w, before) and model.w.grad is None


# ---------------------------------------------------------------------------------------------------
# structured outputs: logits= says where the class scores are
# ---------------------------------------------------------------------------------------------------

class TupleOutput(nn.Module):
    """Inception-style ``(logits, aux_logits)`` around a single-output model."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net(x)
        return out, 2 * out[:, :2]


class DictOutput(TupleOutput):
    """``{"aux": ..., "out": logits}`` around a single-output model."""

    def forward(self, x):
        out = self.net(x)
        return {"aux": out.flip(1), "out": out}


def test_metrics_on_structured_outputs_equal_the_single_output_model():
    import functools

    import xai_ref as xr

    net = small_cnn()
    x, maps = torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8)
    metrics = {
        "deletion": lambda m, **kw: M.deletion(m, x, maps, step=16, **kw).scores,
        "insertion": lambda m, **kw: M.insertion(m, x, maps, step=16, blur_sigma=1.0, **kw).scores,
        "average_drop": lambda m, **kw: torch.stack([M.average_drop(m, x, maps, **kw).Y,
                                                     M.average_drop(m, x, maps, **kw).O]),
        "region_perturbation": lambda m, **kw: M.region_perturbation(m, x, maps, region=2, steps=5, **kw).scores,
        "occlusion_faithfulness": lambda m, **kw: M.occlusion_faithfulness(m, x, maps, window=4, stride=2, **kw),
        "fgsm": lambda m, **kw: M.fgsm(m, x, epsilon=0.05, steps=2, **kw),
        "adversarial": lambda m, **kw: M.adversarial(m, epsilon=0.05, steps=2, **kw).image(x),
        "robustness": lambda m, **kw: M.robustness(m, x, functools.partial(xr.saliency, **kw), M.rotation(30),
                                                   **kw).spearman,
        "model_randomization": lambda m, **kw: M.model_randomization(m, x, functools.partial(xr.saliency, **kw),
                                                                     **kw).spearman,
    }
    for wrapped, key in ((TupleOutput(net), 0), (DictOutput(net), "out")):
        for name, metric in metrics.items():
            expected = metric(net)
            assert torch.equal(metric(wrapped, logits=key), expected), (name, key)
            with pytest.raises(ValueError, match="logits="):
                metric(wrapped)
