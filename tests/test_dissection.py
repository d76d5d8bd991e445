"""Network Dissection (`xai_ref.dissection`, its NumPy twin), textual explanations (`xai_ref.textual`) and
the DissectionExplorer: a hand-made layer whose answer is known, the two implementations against each
other and against np.quantile, batching that changes nothing, sentences that follow the trace's terms,
bad input, and the explorer's worked numbers."""
import dataclasses
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from conftest import hook_count
from xai_ref import dissection, models, scratch, textual
from xai_ref.data import concepts as concepts_module
from xai_ref.data import shapes
from xai_ref.dissection import UNNAMED, dissect
from xai_ref.hooks import Hooks
from xai_ref.scratch import dissection as scratch_dissection
from xai_ref.trace import Term

pytestmark = pytest.mark.usefixtures("one_thread")


# --- a hand-made layer: unit 0 is exactly concept "a", unit 1 is constant ---------------------------


def _blobs(n: int, size: int, rng) -> np.ndarray:
    """n random rectangles (one per image), each covering 4 % to 25 % of the image."""
    masks = np.zeros((n, size, size), dtype=bool)
    for m in masks:
        y, x = rng.integers(0, size // 2, 2)
        h, w = rng.integers(size // 5, size // 2, 2)
        m[y:y + h, x:x + w] = True
    return masks


@pytest.fixture(scope="module")
def handmade():
    rng = np.random.default_rng(0)
    a, b = _blobs(12, 16, rng), _blobs(12, 16, rng)
    x = rng.random((12, 3, 16, 16))
    x[:, 0] = a                                            # channel 0 is concept a's mask
    conv = nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = 1.0                            # unit 0 = channel 0
        conv.bias.copy_(torch.tensor([0.0, 0.5]))          # unit 1 = 0.5 everywhere
    model = nn.Sequential(OrderedDict(conv=conv)).double()
    c = concepts_module.Concepts(("a", "b"), np.stack([a, b], 1))
    return model, torch.from_numpy(x), c


def test_unit_equal_to_a_concept_gets_iou_one_and_its_name(handmade):
    model, x, c = handmade
    t = dissect(model, "conv", x, c, progress=False)
    assert t.symbols == ["A", "T", "M", "I", "U", "IoU", "name"]
    assert t.IoU[0, 0].item() == 1.0 and t.name[0].name == "a" and t.name[0].iou == 1.0
    assert t.I[0, 0].item() == t.U[0, 0].item() == c.masks[:, 0].sum()
    assert t.name[0].T == 1.0                              # more than 0.5 % of the positions are 1


def test_constant_unit_is_unnamed(handmade):
    model, x, c = handmade
    t = dissect(model, "conv", x, c, progress=False)
    assert t.name[1].name == UNNAMED and not t.name[1].named
    assert t.meta["M_size"][1].item() == 0 and (t.IoU[1] == 0).all()


# --- the two implementations -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def probe():
    return shapes.generate(16, seed=3, split="test", objects=2)


@pytest.mark.parametrize("name, layer", [("nin_shapes", "mlpconv4_relu2"), ("vgg_shapes", "block2_relu2")])
def test_numpy_and_pytorch_agree(name, layer, probe):
    model = models.load(name).double()
    x = probe.images.astype(np.float64)
    t = dissect(model, layer, torch.from_numpy(x), concepts_module.concepts(probe), batch_size=5, progress=False)
    s = scratch_dissection.dissect(scratch.from_torch(model), layer, x, concepts_module.concepts(probe))
    assert t.symbols == s.symbols and [a.latex for a in t.steps] == [b.latex for b in s.steps]
    np.testing.assert_allclose(t.T.numpy(), s.T, rtol=1e-10)
    np.testing.assert_allclose(t.IoU.numpy(), s.IoU, atol=1e-6)
    assert [u.name for u in t.name] == [u.name for u in s.name]
    assert (np.asarray(t.meta["top"]) == s.meta["top"]).all()
    # and the streamed threshold is the exact quantile of every activation of the layer
    with torch.no_grad(), Hooks(model, [layer]) as h:
        model(torch.from_numpy(x))
        A = h.A
    every = A.transpose(0, 1).reshape(A.shape[1], -1).numpy()
    np.testing.assert_allclose(t.T.numpy(), np.quantile(every, 1 - 0.005, axis=1), rtol=1e-12)
    assert hook_count(model) == 0


def test_batch_size_changes_nothing(probe):
    model, x = models.load("nin_shapes").double(), torch.from_numpy(probe.images).double()
    c = concepts_module.concepts(probe)
    one = dissect(model, "mlpconv3_relu2", x, c, batch_size=16, progress=False)
    many = dissect(model, "mlpconv3_relu2", x, c, batch_size=3, progress=False)
    assert torch.equal(one.T, many.T) and torch.equal(one.I, many.I) and torch.equal(one.U, many.U)


# --- textual explanations ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nin_dissected():
    model = models.load("nin_shapes")
    probe = shapes.generate(60, seed=0, split="test")
    return model, probe, dissect(model, "mlpconv4_relu2", probe, progress=False)


def test_sentence_is_built_from_the_trace_terms(nin_dissected):
    model, _, d = nin_dissected
    test = shapes.generate(4, seed=9, split="test")
    t = textual.explain(model, torch.from_numpy(test.images), d, n=2, class_names=shapes.CLASSES, model_name="nin")
    assert t.symbols == ["alpha", "top", "bottom", "units", "sentence"]
    assert t.sentence == textual.sentences(t)
    k = t.top[0, 0].item()
    assert t.sentence[0].startswith(f"nin says {shapes.CLASSES[t.meta['target'][0]]}")
    assert f" {k} (" in t.sentence[0]
    # rename unit k in the units term: the sentence follows
    renamed = [dissection.Unit(u.k, "zebra", "zebra", 0.5, u.T) if u.k == k else u for u in t.units]
    i = t.symbols.index("units")
    t.steps[i] = dataclasses.replace(t.steps[i], value=renamed)
    assert f"{k} (zebra, IoU 0.50)" in textual.sentences(t)[0]
    # another top unit: the sentence names it instead
    other = t.bottom[0, 0].item()
    j = t.symbols.index("top")
    t.steps[j] = Term("top", "", "", torch.tensor([[other]] * 4))
    t.steps[0] = Term("alpha", "", "", torch.ones_like(t.alpha))
    u = t.units[other]
    named = f"({u.name}, IoU {u.iou:.2f})" if u.named else "(unnamed)"
    label = shapes.CLASSES[t.meta["target"][0]]
    assert textual.sentences(t)[0] == f"nin says {label} mostly because of unit {other} {named}."


def test_cam_weights_rank_the_units_like_grad_cam_on_a_gap_net(nin_dissected):
    model, _, d = nin_dissected
    x = torch.from_numpy(shapes.generate(3, seed=4, split="test").images)
    g = textual.explain(model, x, d, n=5)
    c = textual.explain(model, x, d, by="cam", n=5)
    W = model.fc.weight.detach()[g.meta["target"]]
    assert torch.allclose(c.w, W) and torch.allclose(g.alpha, W / 256, atol=1e-6)   # alpha = w / Z
    assert torch.equal(g.top, c.top)


def test_presence_reads_the_concept_masks(nin_dissected):
    model, probe, d = nin_dissected
    t = textual.explain(model, torch.from_numpy(probe.images[:5]), d, n=3)
    p = textual.presence(t, concepts_module.concepts(probe[:5]))
    present = concepts_module.concepts(probe[:5]).present
    names = concepts_module.concepts(probe).names
    for b in range(5):
        for j, k in enumerate(t.top[b].tolist()):
            u = t.units[k]
            assert np.isnan(p[b, j]) if not u.named else p[b, j] == present[b, names.index(u.name)]


# --- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, error, words", [
    (dict(layer="mlpconv4_relu"), ValueError, "nearest valid names"),
    (dict(layer="fc"), ValueError, "spatial output"),
    (dict(images=None), ValueError, "images is None"),
    (dict(images=[1, 2]), TypeError, "images must be"),
    (dict(concepts=np.zeros((4, 17, 64, 64), bool)), TypeError, "concepts must be"),
    (dict(quantile=0), ValueError, "quantile"),
    (dict(quantile=1.0), ValueError, "quantile"),
    (dict(iou_floor=1.5), ValueError, "iou_floor"),
    (dict(batch_size=0), ValueError, "batch_size"),
])
def test_bad_input_says_what_to_fix(change, error, words, nin_dissected):
    model, probe, _ = nin_dissected
    args = dict(layer="mlpconv4_relu2", images=probe[:4], concepts=None, quantile=0.005, iou_floor=0.04,
                batch_size=2)
    args.update(change)
    with pytest.raises(error, match=words):
        dissect(model, args.pop("layer"), args.pop("images"), args.pop("concepts"), progress=False, **args)
    assert hook_count(model) == 0


def test_mismatched_masks_and_explanations_are_refused(nin_dissected):
    model, probe, d = nin_dissected
    with pytest.raises(ValueError, match="do not match the images"):
        dissect(model, None, probe[:4].images, concepts_module.concepts(probe[:5]), progress=False)
    with pytest.raises(TypeError, match="dissection must be the Trace"):
        textual.explain(model, torch.from_numpy(probe.images[:2]), "mlpconv4_relu2")
    with pytest.raises(ValueError, match="by must be one of"):
        textual.explain(model, torch.from_numpy(probe.images[:2]), d, by="gradcam")


# --- the explorer, without a browser ----------------------------------------------------------------


def test_explorer_worked_numbers_add_up(nin_dissected):
    from widgets.dissection import DissectionExplorer
    model, probe, d = nin_dissected
    e = DissectionExplorer(model, probe=probe, trace=d)
    assert e.status.value == "" and set(e.controls) >= {"unit", "concept", "step"}
    for k in (e.controls["unit"].value, 5):
        e.controls["unit"].value = k
        for c in (-1, 0):
            e.controls["concept"].value = c
            v = e.worked(k)
            assert v["I"] / v["U"] == pytest.approx(v["IoU"]) and v["IoU"] == d.IoU[k, v["c"]].item()
            assert v["U"] == v["M_size"] + v["L_size"] - v["I"]
            for step, text in ((6, rf"\frac{{{v['I']}}}{{{v['U']}}} = {v['IoU']:.4f}"),
                               (5, f"{v['M_size']} + {v['L_size']} - {v['I']} = {v['U']}"),
                               (2, f"T<sub>{k}</sub> = {v['T']:.4g}")):
                e.controls["step"].value = step
                assert text in e.stepper.numbers.value
                assert e.stepper.picture.value[:4] == b"\x89PNG"
        assert f"unit <b>{k}</b>: <b>{d.name[k].name}</b>" in e.name_line.value
    e.controls["step"].value = 7
    assert f"unit {k} is <b>{d.name[k].name}</b>" in e.stepper.numbers.value
    assert hook_count(model) == 0


def test_explorer_floor_units_and_dead_units():
    """A unit tied at its floor shows the floor rule and P(a > T) < q; a unit never above its floor 'never
    fires' and has no best concept; the chosen concept is the red bar; the title has no raw LaTeX."""
    from widgets.dissection import DissectionExplorer
    model, x, c = _dead_and_sparse()
    t = dissect(model, "conv", x, c, progress=False)
    e = DissectionExplorer(model, probe=x, concepts=c, trace=t, unit=0)
    assert "_" not in e.children[0].value and "{" not in e.children[0].value
    e.controls["step"].value = 2
    assert "P(a &gt; T) &lt; q" in e.stepper.numbers.value and "floor" in e.stepper.numbers.value
    e.controls["step"].value = 3
    assert "and up(a<sub>0</sub>) &gt; floor" in e.stepper.numbers.value
    assert r"\mathrm{floor}_k" in e.stepper.equations.value and "k = 0, \\dots, K-1" in e.stepper.equations.value
    e.controls["step"].value = 1
    assert "top 6 probe images" in e.stepper.header.value and "× 4×4 positions" in e.stepper.numbers.value
    e.controls["unit"].value = 1
    assert "never fires above its floor" in e.name_line.value and "(best concept" not in e.name_line.value
    e.controls["step"].value = 7
    assert "never fires above its floor" in e.stepper.numbers.value and "c* =" not in e.stepper.numbers.value
    e.controls["unit"].value = 0
    e.controls["concept"].value = 1
    assert "chosen above" in e.bars_caption.children[0].value
    assert "this step shows c*" in e.stepper.numbers.value or t.IoU[0].argmax().item() == 1


def _dead_and_sparse():
    """Unit 0 is above 0 at 1 of 16·4·4 = 256 positions (0.39 % < q: T_0 ties with the floor 0); unit 1 is 0."""
    x = torch.zeros(16, 1, 4, 4, dtype=torch.float64)
    x[0, 0, 1, 1] = 1.0
    conv = nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = 1.0
        conv.bias.zero_()
    model = nn.Sequential(OrderedDict(conv=conv)).double()
    masks = np.zeros((16, 2, 4, 4), dtype=bool)
    masks[:, 0, 1:3, 1:3] = True
    masks[:, 1, 0, 0] = True
    return model, x, concepts_module.Concepts(("a", "b"), masks)
