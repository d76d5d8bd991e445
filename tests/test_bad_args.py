"""Every public function, driven with random bad arguments (hypothesis).

For each function below: a good call on a tiny model (input 2 x 3x8x8, 3 classes) that succeeds, and for
each of its arguments a strategy of bad values (wrong type, negative, zero, huge, NaN, inf, NumPy ints out
of range, wrong-shaped tensors, strings, None where not allowed, floats where ints are needed). The
property: replacing one argument of the good call with a bad value raises a ValueError or TypeError whose
message names that argument -- never another exception type, never silent success.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import xai_ref as xr
from xai_ref import metrics as M

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def tiny_net() -> nn.Sequential:
    """3 -> conv1 (4) -> relu1 -> pool -> conv2 (5) -> relu2 -> GAP -> fc (3 classes)."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 4, 3, padding=1), relu1=nn.ReLU(), pool=nn.MaxPool2d(2),
        conv2=nn.Conv2d(4, 5, 3, padding=1), relu2=nn.ReLU(),
        gap=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(5, 3))).eval()


MODEL = tiny_net()
X = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
MAPS = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(2))
BOXES = torch.tensor([[1, 1, 5, 6], [0, 2, 8, 8]])
MASKS = torch.zeros(2, 8, 8, dtype=torch.bool)
MASKS[0, 1:6, 1:5] = MASKS[1, 2:, :] = True
ACTS = torch.rand(2, 4, 4, 4, generator=torch.Generator().manual_seed(3))


# --- bad values --------------------------------------------------------------------------------------

HUGE = st.sampled_from([10**30, -10**30, 2**63, np.uint64(2**64 - 1)])
NOT_A_NUMBER = st.sampled_from([None, "0.5", [0.5], (1.0,), complex(1, 1), True, torch.tensor([1.0, 2.0]),
                                np.array([1.0, 2.0]), object()])
NON_FINITE = st.sampled_from([float("nan"), float("inf"), -float("inf"), np.float32("nan"), np.float64("inf")])
NOT_AN_INT = NOT_A_NUMBER | NON_FINITE | st.sampled_from([1.5, np.float64(2.0), 2.0, "3", torch.tensor(2)])
NOT_A_TENSOR = st.sampled_from([None, "x", 3, 1.5, [[0.0]], object()])
NOT_A_FLAG = st.sampled_from([None, "yes", 1, 0, 2.5, [True], np.array([True, False])])
NOT_A_STRING = st.sampled_from([None, 3, 1.5, ["sum"], "", "SUM", "nope", object()])


def ints(low=None, high=None, numpy=False):
    """Integers in [low, high] as Python ints (or NumPy int64 with ``numpy``)."""
    s = st.integers(low, high)
    return s.map(np.int64) if numpy else s


def count(low: int = 1, high: int | None = None):
    """Bad values for an int argument that must be in [low, high]."""
    below = ints(-2**63, low - 1, numpy=True) | ints(None, low - 1)
    above = st.nothing() if high is None else ints(high + 1, None)
    if high is not None and high < 2**63 - 1:
        above |= ints(high + 1, 2**63 - 1, numpy=True)
    return below | above | NOT_AN_INT


def number(low: float = -np.inf, high: float = np.inf, low_open: bool = False):
    """Bad values for a finite real argument that must be in [low, high] ((low, high] with ``low_open``)."""
    below = st.floats(max_value=low, exclude_max=not low_open, allow_nan=False) if low > -np.inf else st.nothing()
    above = st.floats(min_value=high, exclude_min=True, allow_nan=False) if high < np.inf else st.nothing()
    return below | above | NON_FINITE | NOT_A_NUMBER


def pair_of_numbers(bounded: bool = True):
    """Bad values for a (low, high) range (an infinite side is bad only for a ``bounded`` one)."""
    infinite = [(float("-inf"), 1.0)] if bounded else [(float("inf"), float("inf"))]
    return st.sampled_from([(1.0, 0.0), (0.5, 0.5), (0.0,), (0.0, 1.0, 2.0), (0.0, float("nan")), ("0", "1"),
                            *infinite, 0.5, None, "01"])


def optional(strategy):
    """The bad values of ``strategy`` other than None (for an argument where None means a default)."""
    return strategy.filter(lambda v: v is not None)


def tensors(*bad):
    """Bad values for a tensor argument: the given wrong tensors, and things that are not tensors."""
    return st.sampled_from(bad) | NOT_A_TENSOR


def with_nan(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[1] = float("nan")
    return t


BAD_X = tensors(X[0], X[:, 0], X[:0], X.numpy(), X.double(), X[:, :1], (X * 255).to(torch.uint8), with_nan(X),
                X.to(torch.complex64))
BAD_MODEL = st.sampled_from([None, "model", MODEL.state_dict(), lambda x: x, 3])
BAD_TARGET = (ints(3, None) | ints(3, 2**63 - 1, numpy=True) | ints(None, -1) | HUGE
              | st.sampled_from([1.5, "cat", [0], [0, 1, 2], [0, 1.5], torch.tensor([[0, 1]]), torch.tensor([0.5, 1.0]),
                                 np.array([0, 7]), torch.tensor([0, 1, 2]), object()]))
BAD_LAYER = st.sampled_from(["conv3", "", 3, 1.5, nn.Conv2d(3, 4, 3), "fc", object()])
BAD_LOGITS = st.sampled_from([0, 1, -1, "out", 1.5, [0], object(), np.int64(2)])
BAD_MAPS = tensors(MAPS[0], MAPS[None], MAPS[:, None], with_nan(MAPS), MAPS.numpy().astype(str),
                   MAPS.to(torch.complex64), MAPS[:, :0])
BAD_MASKS = tensors(MASKS[0], MASKS[:, :4], MASKS.float() * 0.5, MASKS.numpy().astype(str), MASKS[:1],
                    torch.full((2, 8, 8), 2))
BAD_BOXES = tensors(BOXES[0], BOXES[:, :3], BOXES[:1], BOXES + 100, -BOXES, BOXES.double() + 0.5,
                    BOXES.flip(1), torch.full((2, 4), 10**12), BOXES.numpy().astype(str), BOXES.bool())
BAD_FILL = number() | st.sampled_from([torch.zeros(5, 1, 1), torch.full((3, 1, 1), float("nan")),
                                       torch.zeros(2, 3, 8, 7), np.array(["a", "b", "c"]),
                                       torch.zeros(3, 1, 1, dtype=torch.bool)])
BAD_ACTS = tensors(ACTS[0], ACTS[:, :, :, :0], ACTS.int(), ACTS.numpy())
BAD_METHOD = st.sampled_from([None, "grad_cam", 3, xr])


# --- the functions and their good calls ------------------------------------------------------------------
# (function, good keyword arguments, {argument: strategy of bad values})

METHOD_ARGS = dict(model=BAD_MODEL, x=BAD_X, target=BAD_TARGET, layer=BAD_LAYER, logits=BAD_LOGITS)
GRAD_CAM_ARGS = dict(METHOD_ARGS, counterfactual=NOT_A_FLAG, reshape=st.sampled_from([3, "grid", [1]]))
METRIC_ARGS = dict(model=BAD_MODEL, x=BAD_X, maps=BAD_MAPS | st.just(MAPS[:1]), target=BAD_TARGET, logits=BAD_LOGITS)
CURVE_ARGS = dict(METRIC_ARGS, step=optional(count()), output=NOT_A_STRING,
                  batch_size=count(), progress=NOT_A_FLAG)
TRANSFORMS = dict(sigma=number(0), seed=count(0, 2**63 - 1), clamp=optional(pair_of_numbers(bounded=False)))

SPECS = [
    (xr.gap, dict(model=MODEL, x=X), dict(model=BAD_MODEL, x=BAD_X, layer=BAD_LAYER, logits=BAD_LOGITS,
                                          fc=st.sampled_from(["conv2", "relu2", 3, "nope", nn.Linear(5, 3)]))),
    (xr.cam, dict(model=MODEL, x=X), dict(METHOD_ARGS, fc=st.sampled_from(["conv2", 3, "nope", nn.Linear(5, 3)]))),
    (xr.grad_cam, dict(model=MODEL, x=X), GRAD_CAM_ARGS),
    (xr.grad_cam_pp, dict(model=MODEL, x=X), GRAD_CAM_ARGS),
    (xr.xgrad_cam, dict(model=MODEL, x=X), GRAD_CAM_ARGS),
    (xr.guided_grad_cam, dict(model=MODEL, x=X), {k: v for k, v in GRAD_CAM_ARGS.items() if k != "counterfactual"}),
    (xr.saliency, dict(model=MODEL, x=X), {k: v for k, v in METHOD_ARGS.items() if k != "layer"}),
    (xr.forward_backward, dict(model=MODEL, x=X, wrt=("input", "layer")),
     dict(METHOD_ARGS, layer=BAD_LAYER.filter(lambda v: v not in ("", "fc")),  # any layer's output works here
          wrt=st.sampled_from([(), "input", ("input", "input", "weights"), ["layer"], None]),
          rule=st.sampled_from(["lrp", None, 3, "Guided"]), layer_rule=st.sampled_from(["lrp", 3]))),
    (xr.deconvnet, dict(model=MODEL, x=X), {k: v for k, v in METHOD_ARGS.items() if k != "layer"}),
    (xr.guided_backprop, dict(model=MODEL, x=X), {k: v for k, v in METHOD_ARGS.items() if k != "layer"}),
    (xr.occlusion, dict(model=MODEL, x=X, window=4, stride=4),
     dict(model=BAD_MODEL, x=BAD_X, target=BAD_TARGET, logits=BAD_LOGITS, window=count() | st.just((9, 2)),
          stride=count() | st.sampled_from([(1, 2, 3), (0, 1)]), baseline=BAD_FILL, batch_size=count(),
          progress=NOT_A_FLAG)),
    (xr.class_model, dict(model=MODEL, target=1, shape=(3, 8, 8), steps=2, jitter=1, blur_every=1),
     dict(model=BAD_MODEL,  # one class per image: [0] and [0, 1, 2] ask for 1 and 3 images
          target=BAD_TARGET.filter(lambda t: str(t) not in ("[0]", "[0, 1, 2]", "tensor([0, 1, 2])")),
          shape=st.sampled_from([(8, 8), (3, 8, 8, 1), (3, 0, 8), (3, -8, 8), (3, 8.0, 8), (3, 10**30, 8), "3x8x8",
                                 None]),
          steps=count(), lr=number(0, low_open=True), l2=number(0), jitter=count(0, 8), blur_every=count(0),
          blur_sigma=number(0, low_open=True), init=st.sampled_from(["ones", None, 3, torch.zeros(8, 8),
                                                                     torch.full((3, 8, 8), float("nan")),
                                                                     torch.zeros(3, 8, 8, dtype=torch.long),
                                                                     np.zeros((3, 8, 8))]),
          seed=count(0, 2**63 - 1), pixel_range=pair_of_numbers(bounded=False), snapshot_every=count(), progress=NOT_A_FLAG,
          logits=BAD_LOGITS)),
    (xr.fooling_image, dict(model=MODEL, x=X, target=[0, 1], max_steps=2, pixel_range=(0.0, 1.0)),
     dict(model=BAD_MODEL, x=BAD_X, target=BAD_TARGET, lr=number(0, low_open=True), max_steps=count(),
          pixel_range=optional(pair_of_numbers(bounded=False)), progress=NOT_A_FLAG, logits=BAD_LOGITS)),
    (xr.Neuron, dict(layer="conv2", channel=1, position=(0, 1)),
     dict(layer=st.sampled_from([3, None, 1.5, ["conv2"]]), channel=count(0),
          position=st.sampled_from(["mean", None, (1,), (1, 2, 3), (-1, 0), (0, 1.5), 3, (np.int64(-2), 0)]))),
    (xr.token_grid, dict(tokens=torch.rand(2, 17, 4), prefix=1),
     dict(tokens=tensors(torch.rand(2, 17), torch.rand(2, 18, 4), torch.rand(17, 4, 1, 1)),
          prefix=count(0) | st.sampled_from([2, 17, 10**30]))),
    (xr.attention_map, dict(A=ACTS), dict(A=BAD_ACTS, p=number(0, 64, low_open=True), kind=NOT_A_STRING)),
    (xr.normalised_attention, dict(A=ACTS), dict(A=BAD_ACTS, p=number(0, 64, low_open=True), kind=NOT_A_STRING)),
    (xr.at_loss, dict(student=[ACTS], teacher=[ACTS[:, :2]]),
     dict(student=BAD_ACTS | st.sampled_from([[], [ACTS, ACTS], [None], [ACTS[:, :, :2]]]),
          teacher=BAD_ACTS | st.sampled_from([[], [ACTS, ACTS], ["t"], [ACTS[:1]]]), p=number(0, 64, low_open=True))),
    (xr.attention_transfer, dict(student=ACTS, teacher=ACTS[:, :2]),
     dict(student=BAD_ACTS | st.sampled_from([[ACTS, ACTS], [ACTS[:, :, :2]]]),
          teacher=BAD_ACTS | st.sampled_from([[ACTS, ACTS], ["t"]]), p=number(0, 64, low_open=True),
          kind=NOT_A_STRING)),
    # localization
    (M.threshold_boxes, dict(maps=MAPS), dict(maps=BAD_MAPS, fraction=number(0, 1))),
    (M.box_iou, dict(a=BOXES, b=BOXES.flip(0)),
     dict(a=tensors(BOXES[0], BOXES[:, :3], BOXES[:1], BOXES.double(), BOXES.numpy().astype(str), [[1, 2], [3]]),
          b=tensors(BOXES[0], BOXES[:, :3], BOXES[:1], BOXES.double() + 0.5, [["a", "b", "c", "d"]] * 2))),
    (M.localization, dict(maps=MAPS, boxes=BOXES),
     dict(maps=BAD_MAPS, boxes=BAD_BOXES, fraction=number(0, 1), iou_threshold=number(0, 1))),
    (M.energy_pointing, dict(maps=MAPS, region=MASKS), dict(maps=BAD_MAPS, region=BAD_MASKS | BAD_BOXES)),
    (M.pointing_game, dict(maps=MAPS, masks=MASKS, labels=[0, 1], tolerance=2.0),
     dict(maps=BAD_MAPS, masks=BAD_MASKS | st.just(torch.zeros(2, 8, 8, dtype=torch.bool)),
          labels=optional(tensors([0], [0, 1, 2], [0.5, 1.0], ["a", "b"], torch.tensor([0.0, 1.0]),
                                  torch.tensor([[0, 1]]))),
          tolerance=optional(number(0, float(np.hypot(8, 8)))))),
    (M.largest_component, dict(region=MASKS[0].numpy()),
     dict(region=tensors(MASKS[0], MASKS.numpy(), MASKS[0].numpy().astype(int), MASKS[0].numpy()[0]))),
    (M.default_tolerance, dict(size=224), dict(size=count())),
    # faithfulness
    (M.auc, dict(scores=[1.0, 0.5, 0.0], fraction=[0.0, 0.5, 1.0]),
     dict(scores=tensors([1.0], [[[1.0, 0.5]]], [1.0, float("nan")], ["a", "b"], [[1.0, 2.0], [3.0]],
                         torch.ones(2, 3, 4), [1.0, None]),
          fraction=optional(tensors([0.0, 1.0], [1.0, 0.5, 0.0], [0.0, float("nan"), 1.0], ["0", "1", "2"],
                                    [0.0, None, 1.0])))),
    (M.deletion, dict(model=MODEL, x=X, maps=MAPS), dict(CURVE_ARGS, baseline=BAD_FILL)),
    (M.insertion, dict(model=MODEL, x=X, maps=MAPS),
     dict(CURVE_ARGS, start=BAD_FILL.filter(lambda v: v is not None), blur_sigma=number(0, 1e4))),
    (M.average_drop, dict(model=MODEL, x=X, maps=MAPS), dict(METRIC_ARGS, batch_size=count())),
    (M.explanation_images, dict(x=X, maps=MAPS), dict(maps=BAD_MAPS | st.just(MAPS[:1]))),
    (M.gaussian_blur, dict(x=X, sigma=1.0), dict(x=BAD_X.filter(lambda v: not isinstance(v, torch.Tensor)
                                                                or v.dim() != 4 or not v.is_floating_point()),
                                                 sigma=number(0, 1e4),
                                                 padding=st.sampled_from(["zeros", "edge", None, 3]))),
    (M.region_perturbation, dict(model=MODEL, x=X, maps=MAPS, region=4, steps=3),
     dict(METRIC_ARGS, region=count(1, 8), steps=optional(count()), value_range=pair_of_numbers(),
          seed=count(0, 2**63 - 1),
          output=NOT_A_STRING, batch_size=count(), progress=NOT_A_FLAG)),
    (M.occlusion_faithfulness, dict(model=MODEL, x=X, maps=MAPS, window=4, stride=4),
     dict(METRIC_ARGS, window=count(1, 8), stride=count(), baseline=BAD_FILL, batch_size=count(),
          progress=NOT_A_FLAG)),
    # sanity checks
    (M.model_randomization, dict(model=MODEL, x=X, method=xr.saliency),
     dict(model=BAD_MODEL, x=BAD_X, method=BAD_METHOD, target=BAD_TARGET, mode=NOT_A_STRING,
          layers=st.sampled_from([[], ["relu1"], ["nope"], "conv1", 3, [3], [["fc"]]]), seed=count(0, 2**63 - 4),
          init=st.sampled_from([3, "kaiming"]), keep_maps=NOT_A_FLAG, progress=NOT_A_FLAG)),
    (M.randomizable_layers, dict(model=MODEL), dict(model=BAD_MODEL)),
    (M.randomize_layer, dict(module=nn.Linear(3, 2), seed=0),
     dict(module=BAD_MODEL, seed=count(0, 2**63 - 1), init=st.sampled_from([3, "kaiming"]))),
    # robustness
    (M.robustness, dict(model=MODEL, x=X, method=xr.saliency, transform=M.rotation(10)),
     dict(model=BAD_MODEL, x=BAD_X, method=BAD_METHOD, transform=st.sampled_from(["rotation", None, M.rotation]),
          target=BAD_TARGET, logits=BAD_LOGITS)),
    (M.gaussian_noise, dict(sigma=0.1), TRANSFORMS),
    (M.rotation, dict(degrees=10), dict(degrees=number())),
    (M.translation, dict(dx=1, dy=-2), dict(dx=NOT_AN_INT, dy=NOT_AN_INT)),
    (M.fgsm, dict(model=MODEL, x=X, steps=2),
     dict(model=BAD_MODEL, x=BAD_X, target=BAD_TARGET, epsilon=number(0), steps=count(),
          clamp=optional(pair_of_numbers(bounded=False)),
          logits=BAD_LOGITS)),
    (M.adversarial, dict(model=MODEL, steps=2),
     dict(model=BAD_MODEL, epsilon=number(0), steps=count(), clamp=optional(pair_of_numbers(bounded=False)),
          logits=st.sampled_from([1.5, [0], object()]))),
    # similarity of maps
    (M.spearman, dict(a=MAPS, b=MAPS.flip(1)),
     dict(a=BAD_MAPS, b=BAD_MAPS | st.just(MAPS[:1]), mask=optional(BAD_MASKS), absolute=NOT_A_FLAG)),
    (M.ssim, dict(a=MAPS, b=MAPS.flip(1)),
     dict(a=BAD_MAPS, b=BAD_MAPS | st.just(MAPS[:1]), mask=optional(BAD_MASKS),
          win_size=count(3, 8) | st.sampled_from([4, 6]))),
    (M.normalise01, dict(maps=MAPS), dict(maps=BAD_MAPS, mask=optional(BAD_MASKS))),
]

IDS = [f"{f.__module__.split('.')[-1]}.{f.__name__}" for f, _, _ in SPECS]

@pytest.mark.parametrize("function, good", [s[:2] for s in SPECS], ids=IDS)
def test_the_good_call_succeeds(function, good):
    """Each good call works: the errors below come from the one bad argument."""
    function(**good)


@pytest.mark.parametrize("function, good, bad", SPECS, ids=IDS)
def test_a_bad_argument_raises_an_error_that_names_it(function, good, bad):
    @SETTINGS
    @given(data=st.data())
    def check(data):
        name = data.draw(st.sampled_from(sorted(bad)), label="argument")
        value = data.draw(bad[name], label="value")
        with pytest.raises((ValueError, TypeError)) as info:
            function(**{**good, name: value})
        message = str(info.value)
        assert re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", message), (
            f"{function.__name__}({name}={value!r}) raised {type(info.value).__name__} without naming {name!r}: "
            f"{message}")

    check()


def test_every_public_function_is_covered():
    public = {f"xr.{n}": getattr(xr, n) for n in xr.__all__
              if callable(getattr(xr, n)) and not isinstance(getattr(xr, n), type)}
    public |= {f"M.{n}": getattr(M, n) for n in M.__all__ if not isinstance(getattr(M, n), type)}
    public["xr.Neuron"] = xr.Neuron
    covered = {f for f, _, _ in SPECS}
    untested = {name for name, f in public.items() if f not in covered} - {"M.identity"}  # identity() takes no argument
    assert not untested, untested
    assert len(SPECS) >= 45


def numpy_ints(value):
    """``value`` with every int (also inside tuples and lists) turned into a NumPy int64."""
    if isinstance(value, int) and not isinstance(value, bool):
        return np.int64(value)
    if isinstance(value, (tuple, list)):
        new = [numpy_ints(v) for v in value]
        return value if all(n is v for n, v in zip(new, value)) else type(value)(new)
    return value


WITH_INTS = [(f, good, {n: numpy_ints(v) for n, v in good.items() if numpy_ints(v) is not v})
             for f, good, _ in SPECS if any(numpy_ints(v) is not v for v in good.values())]


@pytest.mark.parametrize("function, good, as_numpy", WITH_INTS, ids=[f.__name__ for f, _, _ in WITH_INTS])
def test_numpy_integers_are_accepted_wherever_ints_are(function, good, as_numpy):
    """Every int argument (a class, a channel, a window, a count, a seed, a shape...) may be a NumPy integer,
    as indexing an array gives, with the same result."""
    a, b = function(**good), function(**{**good, **as_numpy})
    if isinstance(a, xr.Trace):
        a, b = a.steps[-1].value, b.steps[-1].value
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, (float, xr.Neuron)):
        assert a == b
