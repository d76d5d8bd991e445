"""Course assignments (lessons/assignments): student versions, the checks, and their references.

- make-student removes every solution and hidden test, keeps signatures and docstrings, clears outputs;
  with nbgrader's preprocessors (when installed) and with the built-in fallback, giving the same result;
- each student notebook runs with every check failing "not implemented yet", and passes once the
  reference solutions are pasted back (one kernel per notebook for both runs);
- each check names typical mistakes, fed to it as wrong implementations;
- the checks' NumPy references agree with the PyTorch methods of xai_ref and with torch itself.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import xai_ref as xr
from xai_ref.course import a5_evaluation, check, runner
from xai_ref.course import student as tool
from xai_ref.scratch import Conv2d, Flatten, GlobalAvgPool, MaxPool2d, ReLU

SRC = Path(__file__).resolve().parents[1] / "lessons" / "assignments"
BOOKS = sorted(SRC.glob("*.ipynb"))
STUB = "raise NotImplementedError()"


def _read(path):
    return nbformat.read(path, as_version=4)


def _solution_lines(nb):
    """The lines strictly inside each solution region of an instructor notebook."""
    lines = []
    for c in nb.cells:
        inside = False
        for line in c.source.split("\n"):
            if "BEGIN SOLUTION" in line:
                inside = True
            elif "END SOLUTION" in line:
                inside = False
            elif inside and line.strip():
                lines.append(line)
    return lines


# --- the notebooks and make-student --------------------------------------------------------------


def test_at_least_five_assignments_with_nbgrader_metadata():
    assert len(BOOKS) >= 5
    for path in BOOKS:
        nb = _read(path)
        ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate grade_id"
        solutions = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
        grades = tool.grade_cells(nb)
        assert solutions and len(grades) == len(solutions), path.name
        for c in nb.cells:
            meta = c.metadata.get("nbgrader")
            if meta:
                assert meta["schema_version"] == 3 and {"grade", "grade_id", "locked", "solution"} <= set(meta)
        for c in solutions:
            assert "### BEGIN SOLUTION" in c.source and "### END SOLUTION" in c.source
            assert '"""' in c.source.split("### BEGIN SOLUTION")[0], "docstring outside the solution region"
        for c in grades:
            assert c.metadata["nbgrader"]["points"] > 0 and c.metadata["nbgrader"]["locked"]
            assert "check." in c.source and "### BEGIN HIDDEN TESTS" in c.source
        # stored executed, every check passing (nbval compares these outputs)
        for c in grades:
            text = "".join(o.get("text", "") for o in c.outputs)
            assert text.startswith("PASSED"), (path.name, c.metadata["nbgrader"]["grade_id"])


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    written = tool.make_student_dir(SRC, out, use_nbgrader=False)
    return {p.name: _read(p) for p in written}


@pytest.mark.parametrize("path", BOOKS, ids=lambda p: p.stem)
def test_student_version_has_no_solution_and_no_hidden_test(path, students):
    instructor, student = _read(path), students[path.name]
    text = "\n".join(c.source for c in student.cells)
    assert "SOLUTION" not in text and "HIDDEN TESTS" not in text
    for line in _solution_lines(instructor):
        assert line not in text.split("\n"), f"solution line left in the student version: {line!r}"
    hidden = [c.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
              for c in tool.grade_cells(instructor)]
    for block in hidden:
        assert block.strip() not in text
    for c in student.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None
    for c_in, c_out in zip(instructor.cells, student.cells):
        if c_in.metadata.get("nbgrader", {}).get("solution"):
            head = c_in.source.split("### BEGIN SOLUTION")[0]
            assert c_out.source.startswith(head), "signature and docstring must stay"
            assert c_out.source.endswith("    # YOUR CODE HERE\n    " + STUB)
    # the student version imports no reference implementation: only numpy, matplotlib and the checks
    imports = {line.strip() for c in student.cells for line in c.source.split("\n")
               if re.match(r"\s*(import|from)\s", line)}
    assert imports <= {"import numpy as np", "import matplotlib.pyplot as plt", "from xai_ref.course import check",
                       "from xai_ref.scratch import numerical_gradient, rel_error"}, imports
    assert "xr." not in text and "check._" not in text


@pytest.mark.skipif(not tool.has_nbgrader(), reason="nbgrader is not installed")
def test_nbgrader_preprocessors_and_fallback_agree():
    for path in BOOKS:
        nb = _read(path)
        a, b = tool.make_student(nb, use_nbgrader=True), tool.make_student(nb, use_nbgrader=False)
        assert [c.source for c in a.cells] == [c.source for c in b.cells]
        assert [c.metadata for c in a.cells] == [c.metadata for c in b.cells]
        assert nb == _read(path), "make_student must not change its argument"


def test_command_line(tmp_path, capsys):
    """python -m xai_ref.course runs the student-version tool."""
    help_text = subprocess.run([sys.executable, "-m", "xai_ref.course", "--help"], capture_output=True, text=True,
                               check=True).stdout
    assert help_text.startswith("usage: python -m xai_ref.course") and "make-student" in help_text
    assert tool.main(["make-student", str(SRC), str(tmp_path / "out"), "--no-nbgrader"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").glob("*.ipynb")) == [p.name for p in BOOKS]
    with pytest.raises(ValueError, match="must differ"):
        tool.make_student_dir(SRC, SRC)


def test_fallback_refuses_solution_outside_a_solution_cell():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")])
    with pytest.raises(RuntimeError, match="not a solution cell"):
        tool.make_student(nb, use_nbgrader=False)


@pytest.fixture(scope="module")
def executed():
    """Every notebook's student version run, then its solutions (one kernel each, a few at a time)."""
    results = tool.run_many(BOOKS, use_nbgrader=False, only_graded=True)
    return dict(zip([p.name for p in BOOKS], results))


@pytest.mark.parametrize("path", BOOKS, ids=lambda p: p.stem)
def test_stubs_fail_with_a_clear_message_and_solutions_pass(path, executed):
    result = executed[path.name]
    if isinstance(result, BaseException):
        raise result
    student, solved = result
    for c in tool.grade_cells(student):
        errors = [o for o in c.outputs if o.output_type == "error"]
        assert errors and errors[0].ename == "AssertionError", c.source
        assert "not implemented yet" in errors[0].evalue and "NotImplementedError" in errors[0].evalue
    for c in tool.grade_cells(solved):
        assert not [o for o in c.outputs if o.output_type == "error"]
        assert "".join(o.get("text", "") for o in c.outputs).startswith("PASSED")


# --- the checks name typical mistakes ------------------------------------------------------------


def _relu(mask_rule):
    def f(dout, x, rule):
        return mask_rule(dout, x, rule)
    return f


def _pool_fwd(switch):
    def f(x, k):
        N, C, H, W = x.shape
        w = x.reshape(N, C, H // k, k, W // k, k).transpose(0, 1, 2, 4, 3, 5).reshape(N, C, H // k, W // k, k * k)
        a = w.argmax(-1)
        r, c = np.arange(H // k)[:, None] * k + a // k, np.arange(W // k)[None, :] * k + a % k
        return w.max(-1), switch(r, c, a, H, W)
    return f


def _pool_mean(x, k):
    out, sw = _pool_fwd(lambda r, c, a, H, W: r * W + c)(x, k)
    N, C, H, W = x.shape
    return x.reshape(N, C, H // k, k, W // k, k).mean(axis=(3, 5)), sw


def _pool_bwd_assign(dout, switches, x_shape):
    dx = np.zeros(x_shape).reshape(x_shape[0], x_shape[1], -1)
    for n in range(x_shape[0]):
        for c in range(x_shape[1]):
            dx[n, c][switches[n, c].ravel()] = dout[n, c].ravel()
    return dx.reshape(x_shape)


def _one_hot_grad(net, x, c, top="score"):
    s = net.forward(x)
    d = np.zeros_like(s)
    d[np.arange(len(x)), c] = 1.0
    if top == "prob":
        p = np.exp(s - s.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        d = p[np.arange(len(x)), c][:, None] * (d - p)
    return net.backward(d)


def _grad_cam(net, x, c, layer, top="score"):
    s = net.forward(x)
    d = np.zeros_like(s)
    d[np.arange(len(x)), c] = 1.0
    if top == "prob":
        p = np.exp(s - s.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        d = p[np.arange(len(x)), c][:, None] * (d - p)
    alpha = net.backward(d, stop=layer).mean(axis=(2, 3))
    L = np.maximum(np.einsum("nk,nkhw->nhw", alpha, net.activations[layer]), 0)
    return alpha, L, _bilinear_torch(L, x.shape[2:], False)


def _nearest_up(M, size):
    return M.repeat(size[0] // M.shape[1], 1).repeat(size[1] // M.shape[2], 2) if size[0] % M.shape[1] == 0 \
        else M[:, (np.arange(size[0]) * M.shape[1]) // size[0]][:, :, (np.arange(size[1]) * M.shape[2]) // size[1]]


def _bilinear_torch(M, size, align_corners):
    return F.interpolate(torch.as_tensor(M)[:, None], size=tuple(size), mode="bilinear",
                         align_corners=align_corners)[:, 0].numpy()


def _att(A, p):
    return (np.abs(A) ** p).sum(1).reshape(len(A), -1)


WRONG = [
    # A1
    ("relu_backward", _relu(lambda d, x, r: np.maximum(d, 0) if r != "backprop" else d * (x > 0)),
     "guided rule missing the forward mask"),
    ("relu_backward", _relu(lambda d, x, r: d * (x > 0) if r != "guided" else np.maximum(d, 0) * (x > 0)),
     "deconvnet rule gave the gradient"),
    ("relu_backward", _relu(lambda d, x, r: np.maximum(d, 0) * (x > 0) if r != "backprop" else d * (x > 0)),
     "deconvnet using the forward mask"),
    ("relu_backward", _relu(lambda d, x, r: d * (x > 0) if r != "deconvnet" else np.maximum(d, 0)),
     "guided rule missing the positive top signal"),
    ("relu_backward", _relu(lambda d, x, r: {"backprop": d * (x >= 0), "deconvnet": np.maximum(d, 0),
                                             "guided": np.maximum(d, 0) * (x >= 0)}[r]), "mask x >= 0"),
    ("relu_backward", lambda d, x, r: (d.__setitem__(x <= 0, 0), d)[1], "changed its input `dout` in place"),
    ("maxpool_forward", _pool_mean, "mean instead of max"),
    ("maxpool_forward", _pool_fwd(lambda r, c, a, H, W: a), "switch inside the window"),
    ("maxpool_forward", _pool_fwd(lambda r, c, a, H, W: r * H + c), "row * H + col"),
    ("maxpool_forward", _pool_fwd(lambda r, c, a, H, W: (r * W + c).astype(float)), "should hold integers"),
    ("maxpool_backward", lambda d, s, shape: d.repeat(shape[2] // d.shape[2], 2).repeat(shape[3] // d.shape[3], 3),
     "pool gradient to every position"),
    ("maxpool_backward", lambda d, s, shape: d.repeat(shape[2] // d.shape[2], 2).repeat(shape[3] // d.shape[3], 3)
     / (shape[2] // d.shape[2]) ** 2, "average-pool gradient"),
    ("maxpool_backward", _pool_bwd_assign, "assignment drops repeated switches"),
    # A2
    ("saliency", lambda net, x, c: (lambda g: (g, np.abs(g).max(1)))(_one_hot_grad(net, x, c, "prob")),
     "softmax probability instead of score"),
    ("saliency", lambda net, x, c: (lambda g: (g, np.abs(g).sum(1)))(_one_hot_grad(net, x, c)),
     "sum over channels instead of max"),
    ("saliency", lambda net, x, c: (lambda g: (g, g.max(1)))(_one_hot_grad(net, x, c)), "forgot the absolute value"),
    ("class_model_step", lambda net, I, c, lr, l2: I - lr * (lambda g: g / np.linalg.norm(g.reshape(len(g), -1), axis=1)
     [:, None, None, None])(_one_hot_grad(net, I, c) - 2 * l2 * I), "descent instead of ascent"),
    ("class_model_step", lambda net, I, c, lr, l2: I + lr * (_one_hot_grad(net, I, c) - 2 * l2 * I),
     "step not normalised"),
    ("class_model_step", lambda net, I, c, lr, l2: I + lr * (lambda g: g / np.linalg.norm(g.reshape(len(g), -1), axis=1)
     [:, None, None, None])(_one_hot_grad(net, I, c) + 2 * l2 * I), "penalty sign"),
    # A3
    ("cam", lambda f, W, c: np.einsum("nk,nkhw->nhw", W[c], f) / f.shape[1], "mean instead of sum"),
    ("cam", lambda f, W, c: np.maximum(np.einsum("nk,nkhw->nhw", W[c], f), 0), "ReLU added"),
    ("cam", lambda f, W, c: np.einsum("kn,nkhw->nhw", W[:, c], f), "transposed weights"),
    ("grad_cam_alpha", lambda g: g.sum(axis=(2, 3)), "sum instead of mean"),
    ("grad_cam_alpha", lambda g: np.abs(g).mean(axis=(2, 3)), "abs of the gradient"),
    ("grad_cam_map", lambda A, a: (a[:, :, None, None] * A).sum(1), "forgot the ReLU"),
    ("grad_cam_map", lambda A, a: np.maximum((a[:, :, None, None] * A).mean(1), 0), "mean instead of sum"),
    ("upsample_bilinear", lambda M, size: _bilinear_torch(M, size, True), "align_corners=True"),
    ("upsample_bilinear", _nearest_up, "nearest neighbour"),
    ("grad_cam", lambda net, x, c, layer: _grad_cam(net, x, c, layer, top="prob"),
     "softmax probability instead of score"),
    ("grad_cam", lambda net, x, c, layer: _grad_cam(net, x, c, net.names[net.names.index(layer) - 1]),
     "the layer below"),
    # A4
    ("attention_map", lambda A, p: np.abs(A).sum(1), "|A| instead of |A|^p"),
    ("attention_map", lambda A, p: (A ** p).sum(1), "A^p without the absolute value"),
    ("attention_map", lambda A, p: (np.abs(A) ** p).mean(1), "mean over channels instead of sum"),
    ("normalise_attention", lambda Q: Q.reshape(len(Q), -1), "not normalising the attention map"),
    ("normalise_attention", lambda Q: Q.reshape(len(Q), -1) / Q.sum((1, 2))[:, None], "L1 instead of L2 norm"),
    ("normalise_attention", lambda Q: Q / np.maximum(np.sqrt((Q ** 2).sum((1, 2), keepdims=True)), 1e-12),
     "not flattened"),
    ("at_loss", lambda S, T, p: float(((_att(S, p) - _att(T, p)) ** 2).mean()), "not normalising the attention map"),
    ("at_loss", lambda S, T, p: float(((_att(S, p) / np.linalg.norm(_att(S, p), axis=1, keepdims=True)
                                        - _att(T, p) / np.linalg.norm(_att(T, p), axis=1, keepdims=True)) ** 2).sum()),
     "sum instead of mean"),
    ("at_loss", lambda S, T, p: float(((_att(S, 1) / np.linalg.norm(_att(S, 1), axis=1, keepdims=True)
                                        - _att(T, 1) / np.linalg.norm(_att(T, 1), axis=1, keepdims=True)) ** 2).mean()),
     "|A| instead of |A|^p"),
    # A5
    ("pointing_game", lambda m, k, t: a5_evaluation._point(m, k, t, locate="argmin"), "argmin instead of argmax"),
    ("pointing_game", lambda m, k, t: a5_evaluation._point(m, k, 0), "tolerance ignored"),
    ("deletion_curve", lambda f, x, M, n: a5_evaluation._deletion_ref(f, x, -M, n), "least salient first"),
    ("deletion_curve", lambda f, x, M, n: (lambda c, a: (c, c.mean(1)))(*a5_evaluation._deletion_ref(f, x, M, n)),
     "mean instead of trapezoid"),
]


@pytest.mark.parametrize("name, wrong, hint", WRONG, ids=[f"{n}: {h}" for n, _, h in WRONG])
def test_check_names_the_mistake(name, wrong, hint):
    with pytest.raises(AssertionError) as e:
        getattr(check, name)(wrong, verbose=False)
    assert hint in str(e.value), str(e.value)


def test_every_check_catches_at_least_two_mistakes_by_name():
    named = {}
    for name, _, hint in WRONG:
        if name in check.MISTAKES and any(hint == m for m in check.MISTAKES[name]):
            named.setdefault(name, set()).add(hint)
    assert set(named) == set(check.MISTAKES), set(check.MISTAKES) - set(named)
    assert all(len(v) >= 2 for v in named.values()), named


def test_every_catalogued_mistake_is_recognised():
    """Each mistake model, run as if it were a student's function, gets its own hint."""
    for name, (reference, mistakes) in runner.CATALOGUE.items():
        for m in mistakes:
            def wrong(*args, m=m, reference=reference):
                w, r = m.fn(*args), reference(*args)
                if w is None:
                    return r
                return tuple(ri if wi is None else wi for ri, wi in zip(r, w)) if isinstance(r, tuple) else w
            with pytest.raises(AssertionError) as e:
                getattr(check, name)(wrong, verbose=False)
            assert f"({m.name})" in str(e.value), (name, m.name, str(e.value))


def test_messages_locate_the_difference_and_the_stub():
    with pytest.raises(AssertionError) as e:
        check.grad_cam_alpha(lambda g: g.sum(axis=(2, 3)), verbose=False)
    msg = str(e.value)
    assert "relative error" in msg and re.search(r"at image \d+, channel \d+: expected", msg)
    assert "did you average over i and j?" in msg and "16 times the expected value" in msg

    def grad_cam_alpha(dY_dA):
        raise NotImplementedError()

    def grad_cam(net, x, c, layer):
        return grad_cam_alpha(x)
    with pytest.raises(AssertionError, match=r"`grad_cam_alpha` \(called from `grad_cam`\)"):
        check.grad_cam(grad_cam)
    with pytest.raises(AssertionError, match="raised ZeroDivisionError"):
        check.cam(lambda f, W, c: 1 / 0)
    with pytest.raises(AssertionError, match="returned None"):
        check.cam(lambda f, W, c: None)


def test_mistakes_are_listed_by_check():
    """85 named mistakes, listed under the check that recognises them; every check is in check.__all__."""
    counts = {name: len(mistakes) for name, mistakes in check.MISTAKES.items()}
    assert counts == {"relu_backward": 11, "maxpool_forward": 9, "maxpool_backward": 4, "saliency": 7,
                      "class_model_step": 7, "cam": 5, "grad_cam_alpha": 5, "grad_cam_map": 5,
                      "upsample_bilinear": 5, "grad_cam": 3, "attention_map": 6, "normalise_attention": 6,
                      "at_loss": 5, "pointing_game": 4, "deletion_curve": 3}
    assert sum(counts.values()) == 85
    assert list(runner.CATALOGUE) == list(check.MISTAKES) and set(check.MISTAKES) <= set(check.__all__)


def test_passed_line(capsys):
    check.grad_cam_alpha(lambda g: g.mean(axis=(2, 3)))
    out = capsys.readouterr().out
    assert out == "PASSED grad_cam_alpha: 3 cases agree with the reference (relative error < 1e-09)\n"


# --- the references agree with PyTorch ------------------------------------------------------------


def _torch_colour_net():
    net = check.colour_net()
    layers = OrderedDict()
    for name, layer in zip(net.names, net.layers):
        if isinstance(layer, Conv2d):
            m = nn.Conv2d(layer.W.shape[1], layer.W.shape[0], layer.W.shape[2], padding=1).double()
            m.weight.data, m.bias.data = torch.tensor(layer.W), torch.tensor(layer.b)
        elif isinstance(layer, ReLU):
            m = nn.ReLU()
        elif isinstance(layer, MaxPool2d):
            m = nn.MaxPool2d(2)
        elif isinstance(layer, GlobalAvgPool):
            m = nn.AdaptiveAvgPool2d(1)
        elif isinstance(layer, Flatten):
            m = nn.Flatten()
        else:
            m = nn.Linear(6, 3).double()
            m.weight.data, m.bias.data = torch.tensor(layer.W), torch.tensor(layer.b)
        layers[name] = m
    return net, nn.Sequential(layers).eval()


def _reference(name):
    """The reference a check compares the student's function with."""
    return runner.CATALOGUE[name][0]


def test_references_agree_with_xai_ref_torch_methods():
    net, model = _torch_colour_net()
    x, labels, _ = check.colour_scenes(3, seed=2)
    xt, c = torch.tensor(x), labels[:, 0]
    assert check.rel_error(net.forward(x), model(xt).detach().numpy()) < 1e-12

    t = xr.cam(model, xt, target=c.tolist(), layer="relu2")
    net.forward(x)
    M = _reference("cam")(net.activations["relu2"], net["fc"].W, c)
    assert check.rel_error(M, t.M.numpy()) < 1e-10
    assert check.rel_error(_reference("upsample_bilinear")(M, (32, 32)), t.map.numpy()) < 1e-10

    t = xr.grad_cam(model, xt, target=c.tolist(), layer="relu2")
    alpha, L, up = _reference("grad_cam")(net, x, c, "relu2")
    for mine, theirs in ((alpha, t.alpha), (L, t.L), (up, t.map)):
        assert check.rel_error(mine, theirs.numpy()) < 1e-10

    t = xr.saliency(model, xt, target=c.tolist())
    grad, M = _reference("saliency")(net, x, c)
    assert check.rel_error(grad, t.grad.numpy()) < 1e-10 and check.rel_error(M, t.map.numpy()) < 1e-10

    rng = np.random.default_rng(0)
    A_S, A_T = rng.standard_normal((2, 4, 5, 5)), rng.standard_normal((2, 7, 5, 5))
    for p in (1, 2, 3):
        Q = _reference("attention_map")(A_S, p)
        assert check.rel_error(Q, xr.attention_map(torch.tensor(A_S), p).numpy()) < 1e-12
        q = _reference("normalise_attention")(Q)
        assert check.rel_error(q, xr.normalised_attention(torch.tensor(A_S), p).numpy()) < 1e-12
        loss = _reference("at_loss")(A_S, A_T, p)
        assert abs(loss - float(xr.at_loss(torch.tensor(A_S), torch.tensor(A_T), p))) < 1e-12


def test_bilinear_and_switches_agree_with_torch():
    rng = np.random.default_rng(0)
    for shape, size in [((2, 3, 5), (12, 20)), ((1, 2, 2), (4, 4)), ((1, 7, 7), (32, 32)), ((1, 4, 6), (4, 6)),
                        ((1, 1, 1), (3, 5)), ((1, 9, 9), (4, 5))]:
        M = rng.standard_normal(shape)
        assert check.rel_error(_reference("upsample_bilinear")(M, size), _bilinear_torch(M, size, False)) < 1e-12
    x = rng.standard_normal((2, 3, 6, 8))
    out, switches = _reference("maxpool_forward")(x, 2)
    t_out, t_idx = F.max_pool2d(torch.tensor(x), 2, return_indices=True)
    assert np.array_equal(out, t_out.numpy()) and np.array_equal(switches, t_idx.numpy())
