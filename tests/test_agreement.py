"""The two implementations agree: every method from scratch in NumPy (`xai_ref.scratch`) against its PyTorch
twin (`xai_ref`), term by term, in float64 (relative error <= 1e-10), on a NIN-style GAP net and a
VGG-style net with a fully-connected head (the shipped trained models when their weights exist, else the
same architectures with seeded random weights). Also: the traces have the same method names, symbols,
order and LaTeX; a batch gives what its images give one by one; Grad-CAM's alpha is CAM's w / Z on a GAP
net; CAM's S check is the model's score."""
import ast
import importlib
import inspect
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import xai_ref as xr
import xai_ref.scratch as xs
from xai_ref.inputs import gaussian_blur as torch_blur
from xai_ref.scratch import rel_error

TOL = 1e-10
B, SIZE = 3, 64
# (import_module: the package's names cam and occlusion are the functions, not the modules)
SCRATCH_MODULES = [importlib.import_module(f"xai_ref.scratch.{m}")
                   for m in ("gradients", "cam", "backprop", "occlusion", "ascent", "attention", "methods")]


# ---------------------------------------------------------------- the two networks, in both forms


def _fallback(name):
    """Architectures like xai_ref.models' shapes nets, for when that package is not importable."""
    def block(prefix, c_in, c_out, k2):
        return [(f"{prefix}_conv1", nn.Conv2d(c_in, c_out, 3, padding=1)), (f"{prefix}_relu1", nn.ReLU()),
                (f"{prefix}_conv2", nn.Conv2d(c_out, c_out, k2, padding=k2 // 2)), (f"{prefix}_relu2", nn.ReLU())]
    if name == "nin_shapes":
        layers = (block("mlpconv1", 3, 16, 1) + [("mlpconv1_pool", nn.MaxPool2d(2))] + block("mlpconv2", 16, 32, 1)
                  + [("mlpconv2_pool", nn.MaxPool2d(2))] + block("mlpconv3", 32, 64, 1) + block("mlpconv4", 64, 64, 1)
                  + [("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(64, 6))])
    else:
        layers = []
        for b, (c_in, c_out) in enumerate([(3, 16), (16, 32), (32, 32)], start=1):
            layers += block(f"block{b}", c_in, c_out, 3) + [(f"block{b}_pool", nn.MaxPool2d(2))]
        layers += [("flatten", nn.Flatten()), ("fc1", nn.Linear(32 * 8 * 8, 64)), ("fc1_relu", nn.ReLU()),
                   ("dropout", nn.Dropout(0.3)), ("fc2", nn.Linear(64, 6))]
    return nn.Sequential(OrderedDict(layers))


def _torch_model(name):
    """The shipped trained model if its weights exist, else the same architecture, seeded random weights."""
    torch.manual_seed(0)
    try:
        from xai_ref import models
    except ImportError:
        return _fallback(name).double().eval()
    if models.weights_path(name).is_file():
        return models.load(name).double().eval()
    return models.shapes_nets.BUILDERS[name]().double().eval()


NETS = {"nin": "nin_shapes", "vgg": "vgg_shapes"}


@pytest.fixture(scope="module")
def nets():
    out = {}
    for key, name in NETS.items():
        model = _torch_model(name)
        out[key] = (model, xs.from_torch(model))
    return out


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).random((B, 3, SIZE, SIZE))


def _neuron(spec, side):
    """("neuron", layer, channel, position) -> xai_ref.Neuron (torch) or xai_ref.scratch.Neuron."""
    return (xr.Neuron if side == "torch" else xs.Neuron)(*spec[1:])


def _side(kw, side):
    """kwargs for one side: a neuron spec becomes that side's Neuron, arrays become tensors for torch."""
    out = {}
    for k, v in kw.items():
        if isinstance(v, tuple) and v and v[0] == "neuron":
            v = _neuron(v, side)
        elif isinstance(v, np.ndarray) and side == "torch":
            v = torch.from_numpy(v)
        out[k] = v
    return out


@pytest.fixture(scope="module")
def run(nets, x):
    """run(net, method, **kw) -> (torch trace, scratch trace), each computed once per module."""
    cache = {}

    def run(net, method, **kw):
        key = (net, method, repr(sorted(kw.items())))
        if key not in cache:
            model, scratch = nets[net]
            cache[key] = (getattr(xr, method)(model, torch.from_numpy(x), **_side(kw, "torch")),
                          getattr(xs, method)(scratch, x, **_side(kw, "scratch")))
        return cache[key]
    return run


# ---------------------------------------------------------------- comparing two traces


def _np(v):
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    if isinstance(v, (list, tuple)) and v and isinstance(v[0], torch.Tensor):
        return np.stack([_np(a) for a in v])
    return np.asarray(v)


def _close(a, b, tol=TOL):
    a, b = _np(a), _np(b)
    if a.shape != b.shape:
        return False
    if a.dtype == bool or b.dtype == bool or np.issubdtype(a.dtype, np.integer):
        return np.array_equal(a, b)
    return rel_error(a, b) <= tol


def assert_same_trace(tt, st, tol=TOL):
    """Same method, symbols, order, LaTeX and descriptions; every value agrees; scratch values are NumPy."""
    assert st.method == tt.method
    assert st.symbols == tt.symbols
    errors = {}
    for a, b in zip(tt.steps, st.steps):
        assert (b.latex, b.description, b.axes) == (a.latex, a.description, a.axes), a.symbol
        assert not isinstance(b.value, torch.Tensor), f"scratch term {b.symbol} is a torch tensor"
        va, vb = _np(a.value), _np(b.value)
        assert vb.shape == va.shape, (a.symbol, va.shape, vb.shape)
        if va.dtype == bool or np.issubdtype(va.dtype, np.integer):
            assert np.array_equal(va, vb), a.symbol
            errors[a.symbol] = 0.0
        else:
            errors[a.symbol] = rel_error(va, vb)
    assert max(errors.values()) <= tol, errors
    assert set(st.meta) == set(tt.meta)
    for k, v in tt.meta.items():
        if isinstance(v, (xr.Neuron, xs.Neuron)) or k == "baseline":
            continue
        if isinstance(v, (torch.Tensor, np.ndarray)) or (isinstance(v, list) and v and not isinstance(v[0], str)):
            assert _close(v, st.meta[k], tol), k
        else:
            assert st.meta[k] == v, k
    return errors


# ---------------------------------------------------------------- every method, term by term

CASES = [
    ("nin", "gap", {}),
    ("nin", "cam", {}),
    ("nin", "cam", {"target": [5, 0, 3]}),
    ("nin", "grad_cam", {}),
    ("nin", "grad_cam", {"target": 1, "counterfactual": True}),
    ("nin", "grad_cam", {"layer": "mlpconv2_pool"}),
    ("nin", "grad_cam_pp", {}),
    ("nin", "xgrad_cam", {"counterfactual": True}),
    ("nin", "guided_grad_cam", {}),
    ("nin", "saliency", {"target": ("neuron", "mlpconv3_relu2", 5, "max")}),
    ("nin", "deconvnet", {"target": 4}),
    ("nin", "guided_backprop", {"target": [0, 1, 2]}),
    ("nin", "occlusion", {"window": 32, "stride": 32}),
    ("nin", "occlusion", {"target": ("neuron", "mlpconv2_relu2", 2, "sum"), "window": (24, 16),
                          "stride": (40, 24), "baseline": 0.5}),
    ("vgg", "grad_cam", {}),
    ("vgg", "grad_cam", {"layer": "block2_conv2", "target": [2, 2, 4]}),
    ("vgg", "grad_cam_pp", {}),
    ("vgg", "grad_cam_pp", {"counterfactual": True}),
    ("vgg", "xgrad_cam", {}),
    ("vgg", "guided_grad_cam", {"target": 3}),
    ("vgg", "saliency", {"target": [5, 4, 3]}),
    ("vgg", "deconvnet", {}),
    ("vgg", "deconvnet", {"target": ("neuron", "block2_relu2", 7, (5, 9))}),
    ("vgg", "guided_backprop", {"target": ("neuron", "block3_conv1", 1, "sum")}),
    ("vgg", "occlusion", {"target": lambda out: out[:, 3] - out[:, 1], "window": 48, "stride": 16}),
    ("vgg", "occlusion", {"window": (64, 40), "stride": 24, "baseline": np.array([0.5, 0.2, 0.8])[:, None, None]}),
]


@pytest.mark.parametrize("net, method, kw", CASES, ids=[f"{n}-{m}-{i}" for i, (n, m, _) in enumerate(CASES)])
def test_method_agrees_with_torch(run, net, method, kw):
    assert_same_trace(*run(net, method, **kw))


def test_scratch_accepts_a_torch_neuron_by_duck_typing(nets, x, run):
    _, net = nets["vgg"]
    tt, _ = run("vgg", "deconvnet", target=("neuron", "block2_relu2", 7, (5, 9)))
    assert_same_trace(tt, xs.deconvnet(net, x, target=xr.Neuron("block2_relu2", 7, (5, 9))))


def test_batched_equals_per_sample(nets, x, run):
    """Images do not interact: explaining the batch gives each image's explanation."""
    for net, method, kw in [("nin", "cam", {}), ("nin", "grad_cam_pp", {}), ("vgg", "grad_cam", {}),
                            ("vgg", "saliency", {"target": [5, 4, 3]}), ("nin", "occlusion", {"window": 32, "stride": 32})]:
        _, st = run(net, method, **kw)
        per_class = st.meta["target"] is not None
        for b in range(B):
            kw_b = dict(kw, target=[int(st.meta["target"][b])]) if per_class else kw
            one = getattr(xs, method)(nets[net][1], x[b:b + 1], **kw_b)
            for term in st.steps:
                if term.symbol == "corners":
                    assert np.array_equal(one[term.symbol], term.value)
                else:
                    assert rel_error(one[term.symbol], term.value[b:b + 1]) <= TOL, (method, term.symbol)


def test_grad_cam_alpha_is_cam_weight_over_Z(run):
    """On a GAP -> linear head, dS_c/dA^k_ij = W_ck / Z at every position, so Grad-CAM's alpha = CAM's w / Z
    and (without the ReLU) the maps are proportional."""
    _, c = run("nin", "cam")
    _, g = run("nin", "grad_cam")
    Z = c.f.shape[2] * c.f.shape[3]
    assert np.array_equal(g.meta["target"], c.meta["target"])
    assert rel_error(g.alpha, c.w / Z) <= TOL
    assert rel_error(g.weighted, c.M / Z) <= TOL
    tg, tc = run("nin", "grad_cam")[0], run("nin", "cam")[0]
    assert rel_error(tg.alpha.numpy(), tc.w.numpy() / Z) <= TOL


def test_cam_S_check_is_the_models_score(nets, x, run):
    model, net = nets["nin"]
    for kw in ({}, {"target": [5, 0, 3]}):
        _, st = run("nin", "cam", **kw)
        c = st.meta["target"]
        with torch.no_grad():
            scores = model(torch.from_numpy(x)).numpy()
        assert rel_error(st.S, scores[np.arange(B), c]) <= TOL
        assert rel_error(st.S, net.forward(x)[np.arange(B), c]) <= TOL
        assert rel_error(st.S, st.meta["y"]) <= TOL


# ---------------------------------------------------------------- gradient ascent


def test_class_model_agrees_with_torch(nets):
    model, net = nets["nin"]          # size-agnostic (GAP): a 32x32 class model keeps the test fast
    kw = dict(shape=(3, 32, 32), steps=4, lr=0.5, l2=1e-2, blur_every=3, blur_sigma=0.7, snapshot_every=2)
    tt, st = xr.class_model(model, [1, 4], **kw), xs.class_model(net, [1, 4], **kw)
    assert_same_trace(tt, st)
    assert st.meta["snapshot_steps"] == [2, 4]


def test_class_model_of_a_neuron_agrees_with_torch(nets):
    model, net = nets["nin"]
    kw = dict(shape=(3, 32, 32), steps=3, lr=2.0, snapshot_every=5)
    tt = xr.class_model(model, xr.Neuron("mlpconv3_relu2", 3, "sum"), **kw)
    st = xs.class_model(net, xs.Neuron("mlpconv3_relu2", 3, "sum"), **kw)
    assert_same_trace(tt, st)


def test_class_model_jitter_is_seeded(nets):
    """With jitter the two implementations draw different offsets (NumPy vs torch generators), so only
    reproducibility is checked: the same seed gives the same image, another seed another one."""
    _, net = nets["nin"]
    kw = dict(shape=(3, 16, 16), steps=3, jitter=2, snapshot_every=5)
    a, b, c = (xs.class_model(net, 2, seed=s, **kw).image for s in (0, 0, 1))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_fooling_image_agrees_with_torch(nets):
    model, net = nets["nin"]
    x32 = np.random.default_rng(1).random((B, 3, 32, 32))
    predicted = net.forward(x32).argmax(1)
    target = [int(predicted[0])] + [int(c) for c in (predicted[1:] + 1) % 6]   # image 0 is "fooled" already
    tt = xr.fooling_image(model, torch.from_numpy(x32), target, lr=2.0, max_steps=3, pixel_range=(0.0, 1.0))
    st = xs.fooling_image(net, x32, target, lr=2.0, max_steps=3, pixel_range=(0.0, 1.0))
    assert_same_trace(tt, st)
    assert len(st.S) >= 2 and st.fooled[0] and not st.delta[0].any()   # steps taken, image 0 left alone


def test_gaussian_blur_matches_torch():
    img = np.random.default_rng(2).random((2, 3, 11, 9))
    for sigma in (0.5, 1.3):
        for padding in ("reflect", "replicate"):
            ours = torch_blur(torch.from_numpy(img), sigma, padding).numpy()
            assert rel_error(xs.gaussian_blur(img, sigma, padding), ours) <= TOL


# ---------------------------------------------------------------- attention


def test_attention_agrees_with_torch(nets, x):
    (_, nin), (_, vgg) = nets["nin"], nets["vgg"]
    nin.forward(x)
    vgg.forward(x)
    student = [nin.activations["mlpconv3_relu2"], nin.activations["mlpconv1_relu2"]]   # 16x16, 64x64
    teacher = [vgg.activations["block3_relu2"], vgg.activations["block1_conv2"]]
    T = [torch.from_numpy(a) for a in student], [torch.from_numpy(a) for a in teacher]
    for p in (1, 2, 4):
        for kind in ("sum", "max"):
            assert rel_error(xs.attention_map(student[0], p, kind), xr.attention_map(T[0][0], p, kind).numpy()) <= TOL
            assert rel_error(xs.normalised_attention(teacher[1], p, kind),
                             xr.normalised_attention(T[1][1], p, kind).numpy()) <= TOL
        assert rel_error(xs.at_loss(student, teacher, p), xr.at_loss(*T, p).item()) <= TOL
        assert rel_error(xs.at_loss(student[0], teacher[0], p), xr.at_loss(T[0][0], T[1][0], p).item()) <= TOL
    assert_same_trace(xr.attention_transfer(T[0][0], T[1][0], p=2, kind="max"),
                      xs.attention_transfer(student[0], teacher[0], p=2, kind="max"))


# ---------------------------------------------------------------- building blocks and errors


@pytest.mark.parametrize("h, w, H, W", [(4, 4, 64, 64), (5, 7, 17, 9), (8, 8, 3, 5), (1, 3, 4, 4)])
def test_resize_is_torch_bilinear(h, w, H, W):
    m = np.random.default_rng(3).standard_normal((2, h, w))
    assert rel_error(xs.resize(m, (H, W)), xr.inputs.resize(torch.from_numpy(m), (H, W)).numpy()) <= TOL


@pytest.mark.parametrize("net, method, kw, error", [
    ("vgg", "cam", {}, ValueError),                                    # no GAP -> linear head
    ("nin", "grad_cam", {"target": 6}, ValueError),                    # class out of range
    ("nin", "saliency", {"target": [1, 2]}, ValueError),               # one class per image
    ("nin", "saliency", {"target": 1.0}, TypeError),
    ("vgg", "saliency", {"target": ("neuron", "block1_relu1", 16, "max")}, ValueError),   # no channel 16
    ("vgg", "saliency", {"target": ("neuron", "block1_relu1", 0, (64, 0))}, ValueError),  # outside the map
    ("vgg", "grad_cam", {"layer": "fc1"}, ValueError),                 # not spatial
    ("vgg", "grad_cam", {"layer": "no_such_layer"}, ValueError),
    ("nin", "occlusion", {"window": 65}, ValueError),
])
def test_both_refuse_the_same_bad_input(nets, x, net, method, kw, error):
    model, scratch = nets[net]
    with pytest.raises(error):
        getattr(xr, method)(model, torch.from_numpy(x), **_side(kw, "torch"))
    with pytest.raises(error):
        getattr(xs, method)(scratch, x, **_side(kw, "scratch"))


@pytest.mark.parametrize("kw, error", [
    ({"target": 1, "blur_every": 2, "blur_sigma": 0.0}, ValueError),
    ({"target": 1, "shape": (64, 64)}, ValueError),
    ({"target": "cat"}, TypeError),
])
def test_class_model_refuses_the_same_bad_arguments(nets, kw, error):
    model, net = nets["nin"]
    with pytest.raises(error):
        xr.class_model(model, steps=1, **kw)
    with pytest.raises(error):
        xs.class_model(net, steps=1, **kw)


def test_scratch_methods_do_not_import_torch():
    for module in SCRATCH_MODULES:
        tree = ast.parse(inspect.getsource(module))
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "torch" not in imported, module.__name__


def test_class_model_continues_from_an_image():
    """Two runs of 3 steps, the second starting where the first ended, equal one run of 6 (no jitter)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 2)).double().eval()
    kw = dict(shape=(3, 8, 8), lr=0.1, l2=1e-2, init="random")
    whole = xr.class_model(model, 1, steps=6, **kw)
    first = xr.class_model(model, 1, steps=3, **kw)
    second = xr.class_model(model, 1, steps=3, **{**kw, "init": first.image})
    assert torch.allclose(second.image, whole.image, rtol=0, atol=1e-12)
    net = xs.from_torch(model)
    again = xs.class_model(net, 1, steps=3, **{**kw, "init": first.image.numpy()})
    assert rel_error(again.image, second.image.numpy()) < 1e-10
