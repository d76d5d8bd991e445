"""EfficientNet-Lite0: our definition loads the shipped weights strictly and classifies real photos."""

import pytest
import torch
from torch import nn

from xai_ref.data import photos
from xai_ref.models import efficientnet as E

CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
ESPRESSO = 967


@pytest.fixture(scope="module")
def model():
    return E.efficientnet_lite0()


@pytest.fixture(scope="module")
def logits(model):
    """Logits for every photo in photos.NAMES, one batch."""
    x = photos.preprocess([photos.load(name) for name in photos.NAMES])
    with torch.no_grad():
        out = model(x)
    for name, preds in zip(photos.NAMES, E.decode(out, k=5)):
        print(name, ", ".join(f"{i} {n} {p:.4f}" for i, n, p in preds))
    return dict(zip(photos.NAMES, out))


def _file_state_dict():
    with E.resources.as_file(E.weights_path()) as path:
        return torch.load(path, map_location="cpu", weights_only=True)


def test_strict_load_of_the_shipped_weights():
    file_sd = _file_state_dict()
    ours = E.rename_state_dict(file_sd)
    model = E.EfficientNetLite0()
    result = model.load_state_dict(ours, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert len(ours) == len(file_sd) == len(model.state_dict())
    assert ours["blocks.3.depthwise.conv.weight"].shape == (144, 1, 5, 5)
    assert torch.equal(ours["classifier.weight"], file_sd["_fc.weight"])


def test_rename_rejects_unknown_keys():
    with pytest.raises(KeyError, match="unexpected key"):
        E.rename_state_dict({"_blocks.0._se_reduce.weight": torch.zeros(1)})


def test_eval_mode_and_output_shape(model):
    assert not model.training
    assert all(not m.training for m in model.modules())
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 1000)
        assert model.features(torch.zeros(1, 3, 224, 224)).shape == (1, 1280, 7, 7)
        # "same" padding: any size works, spatial size ceil(H/32)
        assert model.features(torch.zeros(1, 3, 225, 200)).shape == (1, 1280, 8, 7)


def test_every_module_is_a_distinct_instance(model):
    mods = [m for _, m in model.named_modules(remove_duplicate=False)]
    assert len({id(m) for m in mods}) == len(mods)
    relus = [m for m in mods if isinstance(m, nn.ReLU6)]
    assert len(relus) == 33  # stem, 1 in block 0, 2 in each of blocks 1-15, head
    assert not any(m.inplace for m in relus)
    names = dict(model.named_modules())
    for name in ("stem", "stem.act", "blocks.3.depthwise", "blocks.3.depthwise.pad",
                 "blocks.3.depthwise.conv", "blocks.2.project.bn", "head", "head.act", "pool",
                 "classifier"):
        assert name in names, name
    assert all(m.eps == 1e-3 for m in mods if isinstance(m, nn.BatchNorm2d))


def test_residual_add_is_out_of_place(model):
    """A hook on the last layer of a residual block sees its output unchanged after the add."""
    seen = {}

    def keep(module, inputs, output):
        seen["ref"], seen["copy"] = output, output.clone()

    block = model.blocks[2]
    assert block.has_residual
    handle = block.project.register_forward_hook(keep)
    try:
        with torch.no_grad():
            model(torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)))
    finally:
        handle.remove()
    assert torch.equal(seen["ref"], seen["copy"])


def test_same_padding_is_asymmetric_for_stride_two():
    assert E.SamePad2d(3, 2).amounts(224, 224) == (0, 1, 0, 1)  # (left, right, top, bottom)
    assert E.SamePad2d(5, 2).amounts(56, 56) == (1, 2, 1, 2)
    assert E.SamePad2d(3, 2).amounts(225, 225) == (1, 1, 1, 1)
    assert E.SamePad2d(3, 1).amounts(10, 10) == (1, 1, 1, 1)


def test_top1_on_photos(logits):
    assert int(logits["chelsea"].argmax()) in CATS
    assert int(logits["coffee"].argmax()) == ESPRESSO
    assert int(logits["cat_coffee"].argmax()) in CATS
    top5 = {i for i, _, _ in E.decode(logits["cat_coffee"], k=5)[0]}
    assert ESPRESSO in top5  # the composite shows both classes


def test_tf_same_padding_beats_symmetric_padding(model, logits):
    """The weights come from TensorFlow ("same" padding); PyTorch-style symmetric padding
    (equivalently, moving the extra row/column to the top/left) makes the predictions worse."""
    x = photos.preprocess([photos.load("chelsea"), photos.load("coffee")])
    symmetric = E.efficientnet_lite0()
    for m in symmetric.modules():
        if isinstance(m, E.ConvBNReLU6) and m.pad is not None:
            m.pad = None
            m.conv.padding = (m.conv.kernel_size[0] // 2,) * 2
    with torch.no_grad():
        p_sym = torch.softmax(symmetric(x), 1)
    p_same = torch.softmax(torch.stack([logits["chelsea"], logits["coffee"]]), 1)

    def nll(p):
        return -(p[0, sorted(CATS)].sum().log() + p[1, ESPRESSO].log())

    assert nll(p_same) < nll(p_sym)


def test_batch_equals_single_forwards(model, logits):
    x = photos.preprocess([photos.load("chelsea"), photos.load("rocket")])
    with torch.no_grad():
        both = model(x)
        one, two = model(x[:1]), model(x[1:])
    assert torch.allclose(both, torch.cat([one, two]), atol=1e-4, rtol=1e-4)
    assert torch.allclose(both, torch.stack([logits["chelsea"], logits["rocket"]]), atol=1e-4, rtol=1e-4)


def test_class_names():
    names = E.IMAGENET_CLASSES
    assert isinstance(names, tuple) and len(names) == 1000 and len(set(names)) == 1000
    assert names[281] == "tabby" and names[282] == "tiger cat"
    assert names[285] == "Egyptian cat" and names[967] == "espresso"
    assert names[134] == "crane" and names[517] == "construction crane"


def test_decode(logits):
    (preds,) = E.decode(logits["coffee"], k=3)
    assert [i for i, _, _ in preds][0] == ESPRESSO
    assert preds[0][1] == "espresso"
    probs = [p for _, _, p in preds]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert len(E.decode(torch.zeros(4, 1000), k=2)) == 4
    with pytest.raises(ValueError, match=r"\(B, 1000\)"):
        E.decode(torch.zeros(2, 10))
    with pytest.raises(ValueError, match="k must be"):
        E.decode(torch.zeros(1, 1000), k=0)
    with pytest.raises(TypeError):
        E.decode([0.0] * 1000)
