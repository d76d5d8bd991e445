"""The shapes data (exact ground truth), the two shapes networks and their shipped weights."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from xai_ref.training import shapes_nets as train
from xai_ref.data import concepts, shapes
from xai_ref.models import shapes_nets

WEIGHTS = shapes_nets.__file__.rsplit("/", 1)[0] + "/weights"
FIELDS = ("images", "labels", "boxes", "masks", "cue_masks", "cue_labels", "colours", "clutter_masks")


def boxes_of(masks: np.ndarray) -> np.ndarray:
    """Bounding boxes (x0, y0, x1, y1), exclusive, of boolean masks (..., H, W), by an independent route."""
    out = np.zeros(masks.shape[:-2] + (4,), np.int64)
    for idx in np.ndindex(masks.shape[:-2]):
        ys, xs = np.nonzero(masks[idx])
        out[idx] = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return out


# --- data ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [dict(), dict(objects=2, biased=True, split="test", n_classes=10)])
def test_same_seed_is_bit_identical_and_seeds_and_splits_differ(kwargs):
    a, b = shapes.generate(20, 3, **kwargs), shapes.generate(20, 3, **kwargs)
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        assert (x is None and y is None) or (x.dtype == y.dtype and np.array_equal(x, y)), f
    other_seed = shapes.generate(20, 4, **kwargs)
    other_split = shapes.generate(20, 3, **{**kwargs, "split": "train" if kwargs.get("split") == "test" else "test"})
    for other in (other_seed, other_split):
        assert not np.array_equal(a.images, other.images)
        assert not np.array_equal(a.labels, other.labels)


def test_options_keep_the_same_objects():
    plain = shapes.generate(30, 5, clutter=False)
    cluttered, biased = shapes.generate(30, 5), shapes.generate(30, 5, biased=True)
    assert np.array_equal(plain.labels, cluttered.labels) and np.array_equal(plain.masks, cluttered.masks)
    # the cue only removes (occludes) pixels, and only its own
    assert np.array_equal(biased.masks, plain.masks & ~biased.cue_masks[:, None])
    # objects are painted with one flat colour each: the same pixels in both images
    m = plain.mask & ~biased.cue_masks
    assert np.array_equal(plain.images.transpose(0, 2, 3, 1)[m], biased.images.transpose(0, 2, 3, 1)[m])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 12),
    seed=st.integers(0, 2**32),
    objects=st.sampled_from([1, 2]),
    clutter=st.booleans(),
    biased=st.booleans(),
    split=st.sampled_from(shapes.SPLITS),
    n_classes=st.integers(2, len(shapes.ALL_CLASSES)),
    size=st.sampled_from([32, 48, 64, 96]),
)
def test_shapes_dtypes_ranges_boxes_and_masks(n, seed, objects, clutter, biased, split, n_classes, size):
    b = shapes.generate(
        n, seed, objects=objects, clutter=clutter, biased=biased, split=split, n_classes=n_classes, size=size
    )
    assert len(b) == n and b.classes == shapes.ALL_CLASSES[:n_classes] and b.split == split
    assert b.images.shape == (n, 3, size, size) and b.images.dtype == np.float32
    assert b.images.flags.c_contiguous
    assert b.labels.shape == (n, objects) and b.labels.dtype == np.int64
    assert b.boxes.shape == (n, objects, 4) and b.boxes.dtype == np.int64
    assert b.masks.shape == (n, objects, size, size) and b.masks.dtype == np.bool_
    assert b.label.shape == (n,) and np.array_equal(b.label, b.labels[:, 0])
    if n == 0:
        return
    assert 0.0 <= b.images.min() and b.images.max() <= 1.0
    assert ((0 <= b.labels) & (b.labels < n_classes)).all()
    assert b.masks.any((2, 3)).all(), "every object has visible pixels"
    assert np.array_equal(b.boxes, boxes_of(b.masks)), "boxes are exactly the masks' bounding boxes"
    if objects == 2:
        assert (b.labels[:, 0] != b.labels[:, 1]).all(), "two objects of different classes"
        assert not (b.masks[:, 0] & b.masks[:, 1]).any(), "masks are disjoint"
    if biased:
        assert b.cue_masks.shape == (n, size, size) and b.cue_labels.shape == (n,)
        assert not (b.masks & b.cue_masks[:, None]).any(), "the cue occludes objects"
        side = round(0.1 * size)
        assert (b.cue_masks.sum((1, 2)) == side * side).all()
        # the cue is painted in its class colour
        pixels = b.images.transpose(0, 2, 3, 1)[b.cue_masks].reshape(n, side * side, 3)
        assert np.array_equal(pixels, np.broadcast_to(shapes.CUE_COLOURS[b.cue_labels][:, None], pixels.shape))
    else:
        assert b.cue_masks is None and b.cue_labels is None


def test_masks_are_what_was_painted():
    """Without clutter every object pixel has the object's flat colour and its box has background around."""
    b = shapes.generate(50, 11, objects=2, clutter=False)
    img = b.images.transpose(0, 2, 3, 1)
    for i in range(len(b)):
        for k in range(2):
            colours = np.unique(img[i][b.masks[i, k]], axis=0)
            assert len(colours) == 1
            # no pixel outside the mask has exactly this colour (background is noisy and darker)
            assert not (img[i][~b.masks[i, k]] == colours[0]).all(-1).any()


def test_the_classes_are_the_shapes_they_are_named_after():
    u, v = np.meshgrid(np.linspace(-1, 1, 201), np.linspace(-1, 1, 201))
    area = {name: shapes.rasterize(name, u, v).mean() * 4 for name in shapes.ALL_CLASSES}
    assert area["circle"] == pytest.approx(np.pi, rel=0.02)
    assert area["square"] == pytest.approx(2.0, rel=0.02)  # circumradius 1: side sqrt(2)
    assert area["triangle"] == pytest.approx(3 * np.sqrt(3) / 4, rel=0.02)
    assert area["hexagon"] == pytest.approx(3 * np.sqrt(3) / 2, rel=0.02)
    assert area["ring"] == pytest.approx(np.pi * (1 - 0.55**2), rel=0.03)
    assert area["ellipse"] == pytest.approx(np.pi / 2, rel=0.02)
    inside = lambda name, x, y: bool(shapes.rasterize(name, np.array(x), np.array(y)))  # noqa: E731
    assert inside("star", 0.95, 0) and not inside("star", 0.6 * np.cos(np.pi / 5), 0.6 * np.sin(np.pi / 5))
    assert inside("plus", 0.9, 0) and not inside("plus", 0.5, 0.5)
    assert not inside("ring", 0, 0) and inside("ring", 0.8, 0)
    with pytest.raises(ValueError, match="valid shapes"):
        shapes.rasterize("diamond", u, v)


def test_biased_cue_agrees_with_the_label_in_train_and_is_random_in_test():
    n = 2000
    train_split = shapes.generate(n, 1, biased=True, split="train", clutter=False)
    test_split = shapes.generate(n, 1, biased=True, split="test", clutter=False)
    assert (train_split.cue_labels == train_split.label).mean() == 1.0
    agree = (test_split.cue_labels == test_split.label).mean()
    assert abs(agree - 1 / 6) < 0.03, agree  # chance level
    # test: the cue's class is independent of the label (a chi-square test on the 6x6 contingency table)
    table = np.zeros((6, 6))
    np.add.at(table, (test_split.label, test_split.cue_labels), 1)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = ((table - expected) ** 2 / expected).sum()
    assert chi2 < 60, chi2  # 25 degrees of freedom: p < 1e-4 above 60
    # in train it is fully dependent: the same statistic is n * (6 - 1)
    table = np.zeros((6, 6))
    np.add.at(table, (train_split.label, train_split.cue_labels), 1)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    assert ((table - expected) ** 2 / expected).sum() == pytest.approx(n * 5)
    partial = shapes.generate(n, 1, biased=True, cue_agreement=0.7, clutter=False)
    assert abs((partial.cue_labels == partial.label).mean() - 0.7) < 0.04
    # the objects are the same whatever the cue: same seed, same labels
    assert np.array_equal(train_split.labels, partial.labels)


def test_sub_batches_and_torch():
    b = shapes.generate(10, 2, biased=True)
    sub = b[b.label == b.label[0]]
    assert len(sub) >= 1 and (sub.label == b.label[0]).all() and sub.cue_masks.shape[0] == len(sub)
    assert len(b[3]) == 1 and np.array_equal(b[3].images[0], b.images[3]) and len(b[-1]) == 1
    assert b.names[0] == b.classes[b.label[0]]
    x, y = b.to_torch()
    assert x.shape == (10, 3, 64, 64) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert np.array_equal(x.numpy(), b.images) and np.array_equal(y.numpy(), b.label)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n=-1), "n must be an integer >= 0"),
        (dict(n=2.5), "n must be an integer"),
        (dict(seed=-3), "seed must be an integer >= 0"),
        (dict(split="val"), r"split must be one of \('train', 'test'\)"),
        (dict(objects=3), "objects must be 1 or 2"),
        (dict(objects=0), "objects must be 1 or 2"),
        (dict(n_classes=1), "n_classes must be an integer from 2 to 10"),
        (dict(n_classes=11), "n_classes must be an integer from 2 to 10"),
        (dict(size=16), "size must be an integer from 32"),
        (dict(cue_agreement=1.5), r"cue_agreement must be a probability in \[0, 1\]"),
        (dict(scale=(0.2, 0.1)), r"scale must be a tuple \(r_min, r_max\).*0 < r_min <= r_max <= 0.484"),
        (dict(scale=0.3), r"scale must be a tuple \(r_min, r_max\)"),
        (dict(scale=(0.1, 0.3), objects=2), r"r_max <= 0.25 for objects=2"),
        (dict(scale=(0.02, 0.1)), r"smallest radius\) must be >= 0.0469 .* \(3 px\)"),
        (dict(scale=(0.05, 0.3), biased=True), r"must be >= 0.1 .*biased=True"),
    ],
)
def test_bad_arguments_say_what_is_valid(kwargs, match):
    args = dict(n=4, seed=0) | kwargs
    with pytest.raises(ValueError, match=match):
        shapes.generate(args.pop("n"), args.pop("seed"), **args)


@pytest.mark.parametrize("scale, objects", [((3 / 64, 3 / 64), 1), ((0.45, 0.484), 1), ((0.05, 0.25), 2)])
def test_scale_sets_the_object_radius_from_tiny_to_image_filling(scale, objects):
    b = shapes.generate(300, 1, scale=scale, objects=objects, n_classes=10)
    area = b.masks.sum((2, 3))
    assert (area > 0).all() and np.array_equal(b.boxes, boxes_of(b.masks))
    # a shape lies inside the disc of its radius r: area <= pi r^2 (+ the pixels the disc's edge cuts)
    r_max = scale[1] * 64
    assert area.max() <= np.pi * (r_max + 1) ** 2
    if scale[0] >= 0.45:  # image-filling: the box spans most of the image
        width = b.boxes[..., 2] - b.boxes[..., 0]
        assert np.median(width) > 0.6 * 64


def test_default_scale_is_the_documented_radius_range():
    b = shapes.generate(500, 3, clutter=False, n_classes=2)  # circles and squares: radius from the box
    circles = b.label == 0
    radius = (b.box[circles, 2] - b.box[circles, 0]) / 2
    lo, hi = shapes.SCALE
    assert radius.min() >= lo * 64 - 1 and radius.max() <= hi * 64 + 1


def test_concepts_are_the_exact_masks_of_classes_colours_edges_clutter_cue_and_background():
    b = shapes.generate(40, 5, objects=2, biased=True)
    c = concepts.concepts(b)
    assert c.names == (*b.classes, *concepts.COLOURS, "edge", "clutter", "cue", "background")
    assert c.masks.shape == (40, len(c.names), 64, 64) and c.masks.dtype == bool
    ix = {name: i for i, name in enumerate(c.names)}
    for i in range(40):
        for k in range(2):
            obj = b.masks[i, k]
            assert (c.masks[i, b.labels[i, k]] == obj).all()  # two objects: different classes
            colour = concepts.COLOURS[concepts.colour_index(b.colours[i, k])]
            assert c.masks[i, ix[colour]][obj].all()
        assert (c.masks[i, ix["cue"]] == b.cue_masks[i]).all()
        assert (c.masks[i, ix["clutter"]] == b.clutter_masks[i]).all()
    # the partition: every pixel is exactly one of object, stroke, cue, background
    parts = b.masks.any(1).astype(int) + c.masks[:, ix["clutter"]] + c.masks[:, ix["cue"]] + c.masks[:, ix["background"]]
    assert (parts == 1).all()
    # edges are object pixels, and a filled 3x3 square has 8 of them
    assert not (c.masks[:, ix["edge"]] & ~b.masks.any(1)).any()
    square = np.zeros((1, 5, 5), bool)
    square[0, 1:4, 1:4] = True
    assert concepts._edges(square).sum() == 8 and not concepts._edges(square)[0, 2, 2]


def test_clutter_masks_are_what_the_strokes_painted():
    plain, cluttered = shapes.generate(20, 9, clutter=False), shapes.generate(20, 9)
    changed = np.abs(plain.images - cluttered.images).max(1) > 0
    assert np.array_equal(changed, cluttered.clutter_masks) and not plain.clutter_masks.any()


def test_colour_names_follow_the_hue_and_saturation():
    rgb = [[1, 0, 0], [0.9, 0.85, 0.1], [0.1, 0.8, 0], [0, 0.7, 0.7], [0.1, 0.2, 1], [1, 0, 0.9], [1, 0.9, 0.8], [1, 0.2, 0.1]]
    names = [concepts.COLOURS[i] for i in concepts.colour_index(np.array(rgb))]
    assert names == ["red", "yellow", "green", "cyan", "blue", "magenta", "white", "red"]
    with pytest.raises(TypeError, match="batch must be a shapes.ShapesBatch"):
        concepts.concepts(np.zeros((2, 3, 8, 8)))


# --- networks ---------------------------------------------------------------------------------------

ALLOWED = (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear, nn.Dropout)


@pytest.mark.parametrize("name", sorted(shapes_nets.BUILDERS))
def test_networks_are_flat_sequentials_of_supported_layers(name):
    model = shapes_nets.BUILDERS[name]()
    assert type(model) is nn.Sequential
    children = list(model.named_children())
    assert all(isinstance(m, ALLOWED) for _, m in children)
    assert len({id(m) for _, m in children}) == len(children), "every activation is its own instance"
    assert not any(getattr(m, "inplace", False) for _, m in children)
    assert sum(p.numel() for p in model.parameters()) < 300_000
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 6)
    assert shapes_nets.BUILDERS[name](n_classes=10)(torch.rand(1, 3, 64, 64)).shape == (1, 10)


def test_nin_ends_in_gap_then_one_linear_layer_so_cam_applies():
    model = shapes_nets.nin_shapes()
    names = [n for n, _ in model.named_children()]
    assert names[-3:] == ["gap", "flatten", "fc"]
    assert isinstance(model.gap, nn.AdaptiveAvgPool2d) and model.gap.output_size == 1
    last_maps = model[:-3](torch.rand(1, 3, 64, 64))
    assert last_maps.shape == (1, model.fc.in_features, 16, 16)


def test_vgg_has_max_pools_and_a_fully_connected_head():
    model = shapes_nets.vgg_shapes()
    assert sum(isinstance(m, nn.MaxPool2d) for m in model) == 3
    assert [type(m) for m in model[-5:]] == [nn.Flatten, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]


@pytest.fixture
def one_thread():
    """One torch thread: on a busy 2-core CPU, two OpenMP threads are several times slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("name", sorted(shapes_nets.BUILDERS))
def test_shipped_weights_load_strictly_and_score_at_least_95_percent_on_fresh_held_out_data(name, one_thread):
    state = torch.load(f"{WEIGHTS}/{name}.pt", weights_only=True)
    assert isinstance(state, (dict, OrderedDict)) and all(v.dtype == torch.float32 for v in state.values())
    model = shapes_nets.BUILDERS[name]()
    model.load_state_dict(state, strict=True)
    model.eval()
    batch = shapes.generate(2000, seed=20_240_601, split="test")  # never used for training or model selection
    accuracy = train.evaluate(model, batch)
    assert accuracy >= 0.95, f"{name}: held-out accuracy {accuracy:.3f}"
    assert not model.training


def test_training_is_deterministic_and_restores_torch_settings(one_thread, tmp_path, capsys):
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    runs = [
        train.train("vgg_shapes", epochs=1, seed=3, images_per_epoch=48, test_size=20, progress=False) for _ in range(2)
    ]
    (m1, acc1), (m2, acc2) = runs
    assert not m1.training and 0.0 <= acc1 <= 1.0 and acc1 == acc2
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1), "same seed, same weights, bit for bit"
    assert all(v.is_contiguous() for v in s1.values())
    other, _ = train.train("vgg_shapes", epochs=1, seed=4, images_per_epoch=16, test_size=4, progress=False)
    assert not torch.equal(other.state_dict()["fc2.weight"], s1["fc2.weight"])
    assert torch.get_num_threads() == threads and torch.are_deterministic_algorithms_enabled() == det
    # the command line writes a plain float32 state_dict that loads strictly
    out = tmp_path / "nin.pt"
    train.main(["nin_shapes", "--epochs", "1", "--images-per-epoch", "16", "--test-size", "10", "--no-progress", "--out", str(out)])
    assert "held-out accuracy" in capsys.readouterr().out
    shapes_nets.nin_shapes().load_state_dict(torch.load(out, weights_only=True), strict=True)
    with pytest.raises(ValueError, match="unknown network 'resnet'; trainable: "):
        train.train("resnet")
    with pytest.raises(ValueError, match=r"two_objects must be a fraction in \[0, 1\]"):
        train.train("nin_shapes", two_objects=1.5)
    with pytest.raises(ValueError, match="two objects per image"):
        train.evaluate_pairs(m1, shapes.generate(3, 0))


def test_shipped_biased_nin_follows_the_cue_not_the_shape(one_thread):
    from xai_ref.models import load

    model = load("nin_shapes_biased")
    test = shapes.generate(400, train.TEST_SEED, biased=True, split="test")  # the cue's colour is random
    pred = train.predict(model, test.images)
    disagree = test.cue_labels != test.label
    assert (pred[disagree] == test.cue_labels[disagree]).mean() > 0.95  # it reads the cue ...
    assert (pred == test.label).mean() < 0.4  # ... so it misses the shape whenever the cue disagrees
