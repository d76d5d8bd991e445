"""Attention transfer: the attention maps and AT loss against hand-computed values and the authors' reference
formula, one AT step moving a student towards its teacher, the training losses, and the shipped weights."""

import importlib.util
import json
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import xai_ref as xr
from xai_ref.training import attention_transfer as transfer
from xai_ref.models import at_nets, load


def reference_at(x):
    """The authors' code (szagoruyko/attention-transfer, utils.py)."""
    return F.normalize(x.pow(2).mean(1).view(x.size(0), -1))


def reference_at_loss(x, y):
    return (reference_at(x) - reference_at(y)).pow(2).mean()


def test_attention_map_by_hand():
    A = torch.tensor([[[[1.0, -2.0]], [[3.0, 0.0]]]])  # (1, 2 channels, 1, 2)
    assert torch.equal(xr.attention_map(A, 2), torch.tensor([[[10.0, 4.0]]]))
    assert torch.equal(xr.attention_map(A, 1), torch.tensor([[[4.0, 2.0]]]))
    assert torch.equal(xr.attention_map(A, 4), torch.tensor([[[82.0, 16.0]]]))
    assert torch.equal(xr.attention_map(A, 2, "max"), torch.tensor([[[9.0, 4.0]]]))
    q = xr.normalised_attention(A, 2)
    assert torch.allclose(q, torch.tensor([[10.0, 4.0]]) / 116 ** 0.5)


def test_at_loss_by_hand():
    S = torch.tensor([[[[1.0, 0.0]]]])        # Q_S = (1, 0): q_S = (1, 0)
    T = torch.tensor([[[[0.0, 2.0]], [[0.0, 0.0]]]])  # Q_T = (0, 4): q_T = (0, 1)
    assert xr.at_loss(S, T).item() == pytest.approx(1.0)  # mean((1, -1)^2)
    assert xr.at_loss([S, S], [T, S]).item() == pytest.approx(1.0)  # summed over pairs, the 2nd is 0


def test_at_loss_matches_reference_code():
    g = torch.Generator().manual_seed(0)
    pairs = [(torch.randn(4, c_s, h, h, generator=g, dtype=torch.float64),
              torch.randn(4, c_t, h, h, generator=g, dtype=torch.float64))
             for c_s, c_t, h in ((3, 7, 8), (5, 2, 4))]
    for S, T in pairs:
        assert torch.allclose(xr.normalised_attention(S, 2), reference_at(S), rtol=1e-12, atol=0)
        assert torch.allclose(xr.at_loss(S, T), reference_at_loss(S, T), rtol=1e-12, atol=0)
    total = sum(reference_at_loss(S, T) for S, T in pairs)
    assert torch.allclose(xr.at_loss(*zip(*pairs)), total, rtol=1e-12, atol=0)


def _nets():
    torch.manual_seed(0)
    return at_nets.at_student(), at_nets.at_teacher().eval()


def test_transfer_loss_terms():
    student, teacher = _nets()
    x, y = torch.rand(6, 3, 32, 32), torch.arange(6)
    targets = transfer.teacher_targets(teacher, x, y)
    feats, logits = student.groups(x)
    with torch.no_grad():
        t_feats, t_logits = teacher.groups(x)
    ce = F.cross_entropy(logits, y)
    at = xr.at_loss(feats, t_feats, 2)
    assert torch.allclose(transfer.transfer_loss("alone", feats, logits, y, student.fc), ce)
    assert torch.allclose(transfer.transfer_loss("at", feats, logits, y, student.fc, targets), ce + 500 * at, rtol=1e-5)
    T, a = 4.0, 0.9
    kl = (F.softmax(t_logits / T, 1) * (F.log_softmax(t_logits / T, 1) - F.log_softmax(logits / T, 1))).sum(1).mean()
    kd = a * T * T * kl + (1 - a) * ce
    assert torch.allclose(transfer.transfer_loss("kd", feats, logits, y, student.fc, targets), kd, rtol=1e-5)
    assert torch.allclose(transfer.transfer_loss("at+kd", feats, logits, y, student.fc, targets), kd + 500 * at,
                          rtol=1e-5)
    student.eval()  # (a train-mode pass would update BN statistics between the two computations)
    cam_s = xr.cam(student, x, target=y, layer="group3").M.flatten(1)  # the library's CAM of the true class
    cam_t = xr.cam(teacher, x, target=y, layer="group3").M.flatten(1)
    dist = ((F.normalize(cam_s) - F.normalize(cam_t)) ** 2).sum(1).mean()
    feats_e, logits_e = student.groups(x)
    got = transfer.transfer_loss("cam", feats_e, logits_e, y, student.fc, targets)
    assert torch.allclose(got, F.cross_entropy(logits_e, y) + 10 * dist, rtol=1e-5)
    with pytest.raises(ValueError, match="setting"):
        transfer.transfer_loss("hint", feats, logits, y, student.fc, targets)


def test_one_at_step_moves_attention_towards_teacher():
    student, teacher = _nets()
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        t_feats = teacher.groups(x)[0]
    opt = torch.optim.SGD(student.parameters(), lr=0.01)
    student.eval()  # fixed BN statistics: the same function before and after the step
    before = xr.at_loss(student.groups(x)[0], t_feats)
    opt.zero_grad()
    (transfer.BETA / 2 * before).backward()
    opt.step()
    with torch.no_grad():
        after = xr.at_loss(student.groups(x)[0], t_feats)
    assert after < before * 0.99, (before.item(), after.item())


def test_gradients_do_not_reach_the_teacher():
    student, teacher = _nets()
    x = torch.rand(2, 3, 32, 32)
    xr.at_loss(student.groups(x)[0], teacher.groups(x)[0]).backward()
    assert all(p.grad is None for p in teacher.parameters())
    convs = [m for m in student.modules() if isinstance(m, torch.nn.Conv2d)]  # (the fc is not on the AT path)
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in convs)


@pytest.mark.parametrize("name", ["at_teacher", "at_student", "at_student_at"])
def test_shipped_weights_reach_recorded_accuracy(name):
    model = load(name)  # strict load
    assert not model.training
    _, test = transfer.task(n_train=0, n_test=400)
    accuracy = transfer.evaluate(model, test)
    assert accuracy == pytest.approx(at_nets.SHIPPED_ACCURACY_400[name], abs=1e-9)
    assert abs(accuracy - at_nets.SHIPPED_ACCURACY[name]) < 0.08


def test_teacher_beats_student_alone():
    assert at_nets.SHIPPED_ACCURACY["at_teacher"] > at_nets.SHIPPED_ACCURACY["at_student"] + 0.03


def test_architecture():
    student, teacher = _nets()
    x = torch.rand(1, 3, 32, 32)
    for net in (student, teacher):
        feats, logits = net.groups(x)
        assert [tuple(A.shape[2:]) for A in feats] == [(32, 32), (16, 16), (8, 8)]
        assert logits.shape == (1, 10)
        relus = [m for m in net.modules() if isinstance(m, torch.nn.ReLU)]
        assert len({id(m) for m in relus}) == len(relus)
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.parameters()) / 5


# --- the step schedule, the step budget, and the training-set size sweep (benchmarks/attention_transfer.py) ---

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    path = ROOT / "benchmarks" / "attention_transfer.py"
    spec = importlib.util.spec_from_file_location("attention_transfer_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_step_schedule_is_the_papers_shape():
    model = torch.nn.Linear(2, 2)
    opt, sched = transfer._schedule(model, "step", 0.1, total=10)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.1] * 3 + [0.02] * 3 + [0.004] * 2 + [0.0008] * 2)  # x0.2 at 30%, 60%, 80%
    with pytest.raises(ValueError, match="schedule"):
        transfer._schedule(model, "cosine", 0.1, total=10)


def test_batches_run_a_fixed_number_of_steps_over_whole_passes():
    batches = list(transfer._batches(120, 5, torch.Generator().manual_seed(0)))
    assert [len(b) for b in batches] == [50, 50, 20, 50, 50]
    assert sorted(torch.cat(batches[:3]).tolist()) == list(range(120))  # the first pass is a permutation


def test_welch_by_hand():
    d = _bench().welch([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert d["diff"] == pytest.approx(-3.0) and d["pooled_std"] == pytest.approx(1.0) and d["d"] == pytest.approx(-3.0)
    assert d["se"] == pytest.approx((2 / 3) ** 0.5) and d["t"] == pytest.approx(-3.0 / (2 / 3) ** 0.5)


def test_sweep_smoke_resumes_and_reports(tmp_path):
    bench = _bench()
    torch.use_deterministic_algorithms(torch.are_deterministic_algorithms_enabled())  # torch's one-time imports
    t0 = time.perf_counter()
    kw = dict(sizes=(60,), seeds=2, steps=2, out=tmp_path / "sweep.json", cache=tmp_path / "cache", progress=False,
              n_test=40)
    result = bench.sweep(**kw)
    assert len(result["runs"]) == 2 * len(bench.SWEEP_SETTINGS)
    assert json.loads((tmp_path / "sweep.json").read_text())["runs"] == result["runs"]  # written as it goes
    again = bench.sweep(**kw)  # everything is there: nothing is trained again
    assert again["runs"] == result["runs"]
    summary = bench.summarise(result)
    assert summary["60"]["settings"]["at"]["seeds"] == 2 and "at - alone" in summary["60"]["diffs"]
    assert "Verdict" in bench.sweep_body(result)
    assert "Convergence check" in bench.sweep_body(result, long=result)  # (the code path of --long's table)
    bench.plot_sweep(result, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 0
    with pytest.raises(SystemExit, match="another configuration"):
        bench.sweep(**{**kw, "steps": 3})
    assert time.perf_counter() - t0 < 20


def test_shipped_sweep_has_three_seeds_everywhere_and_matches_results_md():
    bench = _bench()
    result, long = bench.load_sweeps()
    summary = bench.summarise(result)
    assert len(summary) >= 3, "at least three training-set sizes"
    for n, entry in summary.items():
        for setting in bench.SWEEP_SETTINGS:
            assert entry["settings"][setting]["seeds"] >= 3, (n, setting)
        assert set(entry["diffs"]) == {f"{a} - {b}" for a, b in bench.COMPARISONS}
    text = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    section = text.split("<!-- attention_transfer:start -->")[1].split("<!-- attention_transfer:end -->")[0]
    if long:  # the convergence check: alone and AT, >= 3 seeds each
        for n, entry in bench.summarise(long).items():
            assert min(entry["settings"][s]["seeds"] for s in ("alone", "at")) >= 3, n
    for line in bench.sweep_body(result, long).splitlines():  # the tables and the verdict, recomputed from the JSONs
        assert line in section, line
