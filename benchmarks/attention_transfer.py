"""Attention transfer end to end: a teacher, a student, and a measured improvement; and when it holds.

    python benchmarks/attention_transfer.py            # 5 settings x 3 seeds, ~10 minutes on an idle 2-core CPU
    python benchmarks/attention_transfer.py --seeds 5
    python benchmarks/attention_transfer.py --sweep    # when does AT help? ~25-60 minutes on ONE CPU core
    python benchmarks/attention_transfer.py --long     # the convergence check: n = 15,000 with 4x the steps, ~20 min
    python benchmarks/attention_transfer.py --report   # rewrite the RESULTS.md section and the plot from the JSONs

The small setting uses the shipped teacher (``xai_ref.models.load("at_teacher")``, reproduced by
``python -m xai_ref.training.attention_transfer teacher``) and trains the student from scratch in every setting of
:mod:`xai_ref.training.attention_transfer` for each seed (the seed fixes the initial weights and the batch order; the small
training set is the same for all). Reports the held-out error (mean +- sample std over seeds), the
attention distance to the teacher (``sum_j at_loss`` over the three groups, held-out images) at
initialisation and after training, and the wall time. Writes ``benchmarks/attention_transfer.json``.

``--sweep`` asks when the paper's claim (AT lowers the student's error) holds. It sweeps the size n of the
training set (:data:`SWEEP`); for each n a teacher is trained on that same set (as in the paper, where
teacher and student see the same data), then the student alone, with AT (beta = 1000, p = 2), KD and
AT + KD, 3 seeds each. Every network gets the same number of optimisation steps (batches of 50) with the
AT paper's schedule shape (SGD, momentum 0.9, lr 0.1 times 0.2 at 30 %, 60 %, 80 % of the steps): the
small sets are seen for many epochs, the largest about once, so n is the only thing that changes. It writes
``benchmarks/attention_transfer_sweep.json`` after every run (a rerun skips the runs already there, and
refuses a JSON made with another configuration) and ``benchmarks/attention_transfer_sweep.png``. ``--long``
repeats one size (:data:`LONG`) for alone and AT with four times the steps, teacher included, into
``benchmarks/attention_transfer_sweep_long.json``: does training closer to convergence change the answer?

Both modes then write the ``attention_transfer`` section of ``benchmarks/RESULTS.md`` from both JSONs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from benchmarks._results import write_section  # noqa: E402
from xai_ref.training import attention_transfer as transfer  # noqa: E402
from xai_ref.models import at_nets, load  # noqa: E402

OUT = Path(__file__).with_name("attention_transfer.json")
SWEEP_OUT = Path(__file__).with_name("attention_transfer_sweep.json")
SWEEP_PNG = Path(__file__).with_name("attention_transfer_sweep.png")
LONG_OUT = Path(__file__).with_name("attention_transfer_sweep_long.json")
#: the convergence check: one size, alone and AT only, four times the steps (``--long``)
LONG = dict(sizes=(15000,), steps=2400, settings=("alone", "at"))
SWEEP_SETTINGS = ("alone", "at", "kd", "at+kd")
#: the sweep: training-set sizes (the extremes first, so that a cut-off run still spans the range), seeds per
#: setting, steps per network (600 batches of 50: 30,000 images, so the largest set is seen once; about an hour
#: on one CPU core of a shared, loaded machine), schedule
SWEEP = dict(sizes=(1500, 30000, 5000, 15000), seeds=3, steps=600, schedule="step")
#: differences compared: (setting, baseline)
COMPARISONS = (("at", "alone"), ("kd", "alone"), ("at+kd", "alone"), ("at+kd", "kd"))
N_FIT = 1000  # training images on which the final training CE, error and AT term are measured
COMMAND = "python benchmarks/attention_transfer.py; ... --sweep; ... --long"


def mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


# --- the small setting (the shipped teacher, 1 500 training images) ----------------------------------------


def small(args) -> dict:
    """Train the student in each setting for each seed on the small task; write attention_transfer.json."""
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    data = transfer.task()
    teacher = load("at_teacher")
    x, y = transfer._tensors(data[0])
    targets = transfer.teacher_targets(teacher, x, y)
    teacher_error = transfer.error(teacher, data[1])
    runs = []
    for setting in args.settings:
        for seed in range(args.seeds):
            name, _, beta = setting.partition(":")
            model, info = transfer.train_student(name, teacher, seed, progress=args.progress, data=data,
                                                 targets=targets, beta=float(beta or transfer.BETA))
            info["setting"] = setting
            if args.ship and seed == 0 and setting in ("alone", "at"):
                transfer._save(model, transfer.WEIGHTS_DIR / ("at_student.pt" if setting == "alone" else "at_student_at.pt"))
            info.pop("history")
            runs.append(info)
            print(f"{setting:6s} seed {seed}: error {info['error']:.2f}%  AT distance {info['at_before']:.4f} -> "
                  f"{info['at_after']:.4f}  ({info['seconds']:.0f} s)", flush=True)
    total = time.perf_counter() - t_start
    summary = {}
    if args.append:
        old = json.loads(OUT.read_text())
        runs = old["runs"] + runs
        args.settings = list(old["summary"]) + [s for s in args.settings if s not in old["summary"]]
        total += old["seconds_total"]
        load_before = old["loadavg_before"]
    for setting in args.settings:
        rs = [r for r in runs if r["setting"] == setting]
        e, es = mean_std([r["error"] for r in rs])
        b, bs = mean_std([r["at_before"] for r in rs])
        a, as_ = mean_std([r["at_after"] for r in rs])
        summary[setting] = dict(error_mean=e, error_std=es, at_before_mean=b, at_before_std=bs, at_after_mean=a,
                                at_after_std=as_, seconds_mean=statistics.mean(r["seconds"] for r in rs),
                                errors=[r["error"] for r in rs])
    result = dict(
        task=dict(n_train=transfer.N_TRAIN, train_seed=transfer.TRAIN_SEED, n_test=transfer.N_TEST,
                  test_seed=transfer.TEST_SEED, n_classes=transfer.N_CLASSES, size=transfer.SIZE, clutter=True),
        hyper=dict(beta=transfer.BETA, p=transfer.P, kd_T=transfer.KD_T, kd_alpha=transfer.KD_ALPHA,
                   cam_lambda=transfer.CAM_LAMBDA, batch_size=transfer.BATCH_SIZE, **transfer.DEFAULTS["student"]),
        models={name: sum(p.numel() for p in at_nets.BUILDERS[name]().parameters()) for name in ("at_teacher", "at_student")},
        teacher_error=teacher_error, seeds=args.seeds, summary=summary, runs=runs,
        seconds_total=total, loadavg_before=load_before, loadavg_after=os.getloadavg(), cpu_count=os.cpu_count(),
    )
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    return result


def small_body(result: dict) -> str:
    """The small setting's table (Markdown) from attention_transfer.json."""
    lines = [f"Task: shapes {transfer.SIZE}x{transfer.SIZE}, {transfer.N_CLASSES} classes, clutter, "
             f"{result['task']['n_train']} training images, {result['task']['n_test']} held-out. Teacher "
             f"({result['models']['at_teacher']:,} parameters): held-out error **{result['teacher_error']:.2f}%**. "
             f"Student: {result['models']['at_student']:,} parameters, {result['seeds']} seeds per setting "
             f"(mean ± std).", "",
             "| setting | held-out error (%) | AT distance at init | AT distance after | s / run |",
             "|---|---|---|---|---|"]
    for s, v in result["summary"].items():
        lines.append(f"| {s} | {v['error_mean']:.2f} ± {v['error_std']:.2f} | {v['at_before_mean']:.4f} | "
                     f"{v['at_after_mean']:.4f} ± {v['at_after_std']:.4f} | {v['seconds_mean']:.0f} |")
    lines += ["", f"AT distance: Σ over the 3 groups of at_loss (p = 2) between student and teacher on the held-out "
              f"images. Wall time {result['seconds_total']:.0f} s in all; load average "
              f"{result['loadavg_before'][0]:.1f} before, {result['loadavg_after'][0]:.1f} after "
              f"({result['cpu_count']} cores, shared machine)."]
    return "\n".join(lines)


# --- the sweep over the training-set size -----------------------------------------------------------------


def sweep_config(steps: int, schedule: str, n_test: int = transfer.N_TEST) -> dict:
    """Everything a sweep run depends on besides (n_train, setting, seed): a JSON made with another
    configuration is not resumed."""
    lr = transfer.STEP_LR if schedule == "step" else transfer.DEFAULTS["student"]["lr"]
    return dict(steps=steps, schedule=schedule, lr=lr, teacher_lr=transfer.STEP_LR if schedule == "step" else
                transfer.DEFAULTS["teacher"]["lr"], milestones=list(transfer.STEP_MILESTONES),
                gamma=transfer.STEP_GAMMA, batch_size=transfer.BATCH_SIZE, beta=transfer.BETA, p=transfer.P,
                kd_T=transfer.KD_T, kd_alpha=transfer.KD_ALPHA, train_seed=transfer.TRAIN_SEED,
                n_test=n_test, test_seed=transfer.TEST_SEED, teacher_seed=0, n_fit=N_FIT)


def _load_sweep(out: Path, config: dict) -> dict:
    if not out.exists():
        return dict(config=config, teachers={}, runs=[], seconds_total=0.0)
    result = json.loads(out.read_text())
    if result["config"] != config:
        raise SystemExit(f"{out} was made with another configuration:\n  {result['config']}\nnot\n  {config}\n"
                         f"pass --sweep-out elsewhere, or delete it to start again")
    return result


def _save_sweep(out: Path, result: dict) -> None:
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)  # never a half-written JSON


@torch.no_grad()
def fit_terms(model, x, y, targets: dict) -> dict:
    """How well the trained student (eval mode) fits the first :data:`N_FIT` training images: its training
    error (%), cross-entropy, and AT term ``beta/2 * sum_j mean((q_S^j - q_T^j)^2)``."""
    x, y = x[:N_FIT], y[:N_FIT]
    feats, logits = model.groups(x)
    at = sum(((transfer.normalised_attention(A, transfer.P) - q[:N_FIT]) ** 2).mean()
             for A, q in zip(feats, targets["q"]))
    return dict(train_error=100 * float((logits.argmax(1) != y).float().mean()),
                train_ce=float(F.cross_entropy(logits, y)), train_at_term=transfer.BETA / 2 * float(at))


def _teacher(n: int, data, config: dict, result: dict, cache: Path, progress: bool):
    """The teacher of size n: from the cache, else trained (and checked against the JSON's record)."""
    path = cache / f"teacher_{n}_{config['schedule']}_{config['steps']}.pt"
    record = result["teachers"].get(str(n))
    if path.exists() and record is not None:
        teacher = at_nets.at_teacher(transfer.N_CLASSES)
        teacher.load_state_dict(torch.load(path, weights_only=True))
        return teacher.eval()
    t0 = time.perf_counter()
    teacher, acc = transfer.train_teacher(seed=config["teacher_seed"], lr=config["teacher_lr"], data=data,
                                          schedule=config["schedule"], steps=config["steps"], progress=progress)
    if record is not None and abs(record["error"] - 100 * (1 - acc)) > 1e-9:
        raise RuntimeError(f"retrained teacher (n={n}) differs from the JSON's: {100 * (1 - acc)} vs {record['error']}")
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(teacher.state_dict(), path)
    x, y = transfer._tensors(data[0])
    result["teachers"][str(n)] = dict(error=100 * (1 - acc), seconds=time.perf_counter() - t0,
                                      epochs=config["steps"] * transfer.BATCH_SIZE / n,
                                      train_error=100 * (1 - transfer.evaluate(teacher, data[0][:N_FIT])),
                                      data_checksum=float(x.double().sum()), labels_checksum=int(y.sum()))
    return teacher


def sweep(sizes=SWEEP["sizes"], seeds=SWEEP["seeds"], steps=SWEEP["steps"], schedule=SWEEP["schedule"],
          out: Path = SWEEP_OUT, cache: Path = Path("/tmp/xai_ref_at_sweep"), progress: bool = True,
          n_test: int = transfer.N_TEST, settings=SWEEP_SETTINGS) -> dict:
    """Run (or resume) the sweep; the JSON at ``out`` is rewritten after every teacher and every student.
    ``cache``: where the teachers' weights are kept for a resumed run (a missing one is retrained, and checked)."""
    config = sweep_config(steps, schedule, n_test)
    result = _load_sweep(out, config)
    done = {(r["n_train"], r["setting"], r["seed"]) for r in result["runs"]}
    todo = [(n, seed, s) for n in sizes for seed in range(seeds) for s in settings if (n, s, seed) not in done]
    with transfer._Deterministic(), tqdm(total=len(todo), desc="sweep runs", unit="run", disable=not progress) as bar:
        for n in sizes:
            mine = [(seed, s) for m, seed, s in todo if m == n]
            if not mine:
                continue
            t0 = time.perf_counter()
            data = transfer.task(n_train=n, n_test=n_test)
            teacher = _teacher(n, data, config, result, cache, progress)
            x, y = transfer._tensors(data[0])
            targets = transfer.teacher_targets(teacher, x, y)
            result["seconds_total"] += time.perf_counter() - t0
            _save_sweep(out, result)
            for seed, setting in mine:
                model, info = transfer.train_student(setting, teacher, seed, data=data, targets=targets,
                                                     schedule=schedule, steps=steps, progress=progress)
                info.update(n_train=n, final_loss=info.pop("history")[-1], **fit_terms(model, x, y, targets))
                result["runs"].append(info)
                result["seconds_total"] += info["seconds"]
                result["loadavg"] = os.getloadavg()
                _save_sweep(out, result)
                bar.update()
                tqdm.write(f"n={n:6d} {setting:6s} seed {seed}: error {info['error']:.2f}%  train error "
                           f"{info['train_error']:.1f}%  AT term {info['train_at_term']:.3f}  "
                           f"({info['seconds']:.0f} s)")
    return result


def welch(a: list[float], b: list[float]) -> dict:
    """mean(a) - mean(b), in points and in units of spread: ``d = diff / s_pooled`` with
    ``s_pooled = sqrt(((n_a-1) s_a^2 + (n_b-1) s_b^2) / (n_a + n_b - 2))`` (how many seed standard deviations),
    and ``t = diff / se`` with the Welch standard error of the difference ``se = sqrt(s_a^2/n_a + s_b^2/n_b)``."""
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    pooled = math.sqrt(((len(a) - 1) * sa ** 2 + (len(b) - 1) * sb ** 2) / max(1, len(a) + len(b) - 2))
    se = math.sqrt(sa ** 2 / len(a) + sb ** 2 / len(b))
    diff = ma - mb
    return dict(diff=diff, pooled_std=pooled, d=diff / pooled if pooled else math.nan, se=se,
                t=diff / se if se else math.nan)


def summarise(result: dict) -> dict:
    """Per training-set size: the teacher's error, each setting's errors (mean, std, seeds, training error,
    AT term), and the :func:`welch` differences of :data:`COMPARISONS`."""
    summary = {}
    for n in sorted({r["n_train"] for r in result["runs"]}):
        rows = {s: [r for r in result["runs"] if r["n_train"] == n and r["setting"] == s] for s in SWEEP_SETTINGS}
        rows = {s: rs for s, rs in rows.items() if rs}
        entry = dict(teacher_error=result["teachers"][str(n)]["error"], steps=result["config"]["steps"],
                     epochs=result["config"]["steps"] * result["config"]["batch_size"] / n, settings={}, diffs={})
        for s, rs in rows.items():
            e, es = mean_std([r["error"] for r in rs])
            entry["settings"][s] = dict(error_mean=e, error_std=es, seeds=len(rs), errors=[r["error"] for r in rs],
                                        train_error_mean=statistics.mean(r["train_error"] for r in rs),
                                        train_at_term_mean=statistics.mean(r["train_at_term"] for r in rs),
                                        train_ce_mean=statistics.mean(r["train_ce"] for r in rs))
        for a, b in COMPARISONS:
            if a in rows and b in rows and min(len(rows[a]), len(rows[b])) > 1:
                entry["diffs"][f"{a} - {b}"] = welch([r["error"] for r in rows[a]], [r["error"] for r in rows[b]])
        summary[str(n)] = entry
    return summary


def _effects(summary: dict, key: str, threshold: float) -> tuple[list, list, list]:
    """The sizes where ``key`` (e.g. "at - alone") lowers / raises the error by >= threshold Welch standard
    errors, or neither: three lists of (n, diff dict)."""
    helps, hurts, neutral = [], [], []
    for n, e in summary.items():
        if key in e["diffs"]:
            d = e["diffs"][key]
            (helps if d["t"] <= -threshold else hurts if d["t"] >= threshold else neutral).append((int(n), d))
    return helps, hurts, neutral


def _at(items) -> str:
    """'n = 1,500 (+15.8 points, d = +7.5, t = +9.2), ...' or 'no size'."""
    return ", ".join(f"n = {n:,} ({d['diff']:+.1f} points, d = {d['d']:+.1f}, t = {d['t']:+.1f})"
                     for n, d in items) or "no size"


def verdict(summary: dict, long: dict | None = None, threshold: float = 2.0) -> str:
    """One paragraph generated from the numbers: where AT (alone, and on top of KD) lowers or raises the
    held-out error by at least ``threshold`` Welch standard errors (holds / fails / unresolved), and why, from
    the students' fit to their own training sets; ``long``: the summary of the longer-training check."""
    helps, hurts, neutral = _effects(summary, "at - alone", threshold)
    kd_helps, kd_hurts, _ = _effects(summary, "at+kd - kd", threshold)
    steps = next(iter(summary.values()))["steps"]
    text = (f"In the {steps}-step sweep, **holds** (AT, β = 1000, lowers the student's held-out error by "
            f"≥ {threshold:g} standard errors) at "
            f"{_at(helps)}. **Fails** (raises it) at {_at(hurts)}. Unresolved (|t| < {threshold:g}) at {_at(neutral)}. "
            f"On top of KD, AT helps at {_at(kd_helps)} and hurts at {_at(kd_hurts)}. ")
    rows = [(int(n), e["settings"]) for n, e in summary.items() if {"alone", "at"} <= set(e["settings"])]
    alone_fit = [s["alone"]["train_error_mean"] for _, s in rows]
    at_fit = [s["at"]["train_error_mean"] for _, s in rows]
    gaps = [s["alone"]["error_mean"] - s["alone"]["train_error_mean"] for _, s in rows]
    worse = [n for n, s in rows if s["at"]["train_error_mean"] > s["alone"]["train_error_mean"] + 1.0]
    ns = [n for n, _ in rows]
    size_decides = bool(helps) and bool(hurts)  # the sign of the effect changes with n
    overfit = [n for n, g in zip(ns, gaps) if g > 2.0]
    text += ("**Because**: " + ("the training-set size decides the sign of the effect. " if size_decides else
                                "the training-set size does not decide it here (the sign never flips). ")
             + f"The student alone over-fits (held-out minus training error > 2 points) at "
             f"{', '.join(f'n = {n:,}' for n in overfit) or 'no size'} (gaps {', '.join(f'{g:+.1f}' for g in gaps)} "
             f"points at n = {', '.join(f'{n:,}' for n in ns)}), so more data removes the over-fitting; "
             + (f"but none of these students is trained to convergence (the student alone still gets "
                f"{min(alone_fit):.1f}–{max(alone_fit):.1f}% of its own training images wrong) and "
                if min(alone_fit) > 5.0 else "the students fit their training sets, and ")
             )
    if worse:
        text += (f"the AT student fits its training set worse still ({min(at_fit):.1f}–{max(at_fit):.1f}% wrong; "
                 f"worse than alone at n = {', '.join(f'{n:,}' for n in worse)}): with β = 1000 the map-matching "
                 f"term is a constraint the small student satisfies at the expense of the labels, an under-fitting "
                 f"that more data does not cure. ")
    else:
        text += "the AT student fits its training set as well as the student alone. "
    checks = []  # (n, long diff, short diff) of the convergence check
    for n, e in (long or {}).items():
        d, short = e["diffs"].get("at - alone"), summary.get(n, {}).get("diffs", {}).get("at - alone")
        if d is None or short is None:
            continue
        checks.append((int(n), d, short))
        change = ("narrows" if abs(d["diff"]) < abs(short["diff"]) - 1 else
                  "widens" if abs(d["diff"]) > abs(short["diff"]) + 1 else "leaves")
        text += (f"Training {e['steps'] / summary[n]['steps']:.0f} times longer at n = {int(n):,} ({e['steps']} "
                 f"steps; teacher {e['teacher_error']:.1f}% held-out error against {summary[n]['teacher_error']:.1f}%; "
                 f"student training error {e['settings']['alone']['train_error_mean']:.1f}% alone, "
                 f"{e['settings']['at']['train_error_mean']:.1f}% with AT) {change} the difference: "
                 f"AT − alone = {d['diff']:+.1f} points (t = {d['t']:+.1f}) against {short['diff']:+.1f} "
                 f"(t = {short['t']:+.1f}) at {summary[n]['steps']} steps. ")
    if any(d["t"] <= -threshold for _, d, _ in checks):
        text += ("So the claim holds when teacher and student are trained (close) to convergence, as in the paper, "
                 "and fails when they are not, whatever the training-set size.")
    elif any(abs(d["diff"]) < abs(short["diff"]) - 1 for _, d, short in checks):
        n, d, short = next(c for c in checks if abs(c[1]["diff"]) < abs(c[2]["diff"]) - 1)
        still = f"is still a cost (t = {d['t']:+.1f})" if d["t"] >= threshold else "is within the seed noise"
        text += (f"So what moves the claim is convergence, not data: trained longer, AT's cost at n = {n:,} shrinks "
                 f"from {short['diff']:+.1f} to {d['diff']:+.1f} points but {still}; within our budget it never "
                 f"turns into the paper's gain.")
    elif not helps and min(alone_fit) > 5.0:
        text += ("So the claim needs what the paper's CIFAR runs had and ours lack, students trained to "
                 "convergence; a larger training set alone does not turn AT's cost into a gain.")
    return text


def sweep_body(result: dict, long: dict | None = None) -> str:
    """The sweep's tables and verdict (Markdown) from attention_transfer_sweep.json (and the longer-training
    check ``long``, from attention_transfer_sweep_long.json)."""
    summary, cfg = summarise(result), result["config"]
    long_summary = summarise(long) if long else None
    lines = ["### When does the claim hold? Training-set size sweep (`--sweep`)", "",
             f"For each training-set size n (shapes, same task and held-out set as above; sets of different n are "
             f"separate draws) a teacher is trained on that set, then the student in each setting, "
             f"{max(e['settings']['alone']['seeds'] for e in summary.values())} seeds. Every network: "
             f"{cfg['steps']} steps of {cfg['batch_size']} images (the same compute at every n, so the small sets "
             f"are seen for many epochs and the largest about once), the AT paper's schedule shape: SGD, momentum "
             f"0.9, weight decay 5e-4, lr {cfg['lr']} times {cfg['gamma']} at "
             f"{', '.join(f'{m:.0%}' for m in cfg['milestones'])} of the steps; β = {cfg['beta']:g}, "
             f"p = {cfg['p']}, KD T = {cfg['kd_T']:g}, α = {cfg['kd_alpha']}. Held-out error (%), mean ± std over "
             f"seeds:", "",
             "| n train | epochs | teacher | " + " | ".join(SWEEP_SETTINGS) + " |",
             "|---|---|---|" + "---|" * len(SWEEP_SETTINGS)]
    for n, e in summary.items():
        cells = [f"{e['settings'][s]['error_mean']:.2f} ± {e['settings'][s]['error_std']:.2f} "
                 f"({e['settings'][s]['seeds']})" if s in e["settings"] else "–" for s in SWEEP_SETTINGS]
        lines.append(f"| {int(n):,} | {e['epochs']:.1f} | {e['teacher_error']:.2f} | " + " | ".join(cells) + " |")
    lines += ["", "(n) = seeds. Differences (points of held-out error; negative = the first is better), in units of "
              "the pooled seed std (d) and of the Welch standard error of the difference (t):", "",
              "| n train | " + " | ".join(f"{k}: points, d, t" for k in (f'{a} - {b}' for a, b in COMPARISONS)) + " |",
              "|---|" + "---|" * len(COMPARISONS)]
    for n, e in summary.items():
        cells = [(lambda d: f"{d['diff']:+.2f}, {d['d']:+.1f}, {d['t']:+.1f}")(e["diffs"][k]) if k in e["diffs"]
                 else "–" for k in (f"{a} - {b}" for a, b in COMPARISONS)]
        lines.append(f"| {int(n):,} | " + " | ".join(cells) + " |")
    lines += ["", "Training fit (first 1,000 training images, after training): error % and, for AT, "
              "β/2 Σ_j at_loss against the cross-entropy:", "",
              "| n train | alone train error | at train error | at: AT term | at: CE |", "|---|---|---|---|---|"]
    for n, e in summary.items():
        s = e["settings"]
        if {"alone", "at"} <= set(s):
            lines.append(f"| {int(n):,} | {s['alone']['train_error_mean']:.1f} | {s['at']['train_error_mean']:.1f} | "
                         f"{s['at']['train_at_term_mean']:.3f} | {s['at']['train_ce_mean']:.3f} |")
    if long_summary:
        lines += ["", f"Convergence check (`--long`): the same, alone and AT only, with "
                  f"{long['config']['steps']} steps per network (teacher retrained with as many):", "",
                  "| n train | steps | epochs | teacher | alone | at | alone train error | at train error | "
                  "at - alone: points, d, t |", "|---|---|---|---|---|---|---|---|---|"]
        for n, e in long_summary.items():
            s, d = e["settings"], e["diffs"].get("at - alone")
            lines.append(f"| {int(n):,} | {e['steps']} | {e['epochs']:.1f} | {e['teacher_error']:.2f} | " + " | ".join(
                f"{s[k]['error_mean']:.2f} ± {s[k]['error_std']:.2f} ({s[k]['seeds']})" for k in ("alone", "at"))
                + f" | {s['alone']['train_error_mean']:.1f} | {s['at']['train_error_mean']:.1f} | "
                + (f"{d['diff']:+.2f}, {d['d']:+.1f}, {d['t']:+.1f} |" if d else "– |"))
    lines += ["", f"![error vs training-set size]({SWEEP_PNG.name})", "",
              f"**Verdict** (generated from the numbers above, |t| ≥ 2 counts): {verdict(summary, long_summary)}", "",
              f"Sweep wall time {result['seconds_total']:.0f} s of training on one thread "
              f"({len(result['runs'])} student runs, {len(result['teachers'])} teachers)"
              + (f"; convergence check {long['seconds_total']:.0f} s ({len(long['runs'])} runs)." if long else ".")]
    return "\n".join(lines)


def plot_sweep(result: dict, path: Path = SWEEP_PNG) -> None:
    """Held-out error vs training-set size, one line per setting (error bars: std over seeds), and the teacher."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarise(result)
    ns = [int(n) for n in summary]
    fig, ax = plt.subplots(figsize=(8.5, 4.2), layout="constrained")
    for k, s in enumerate(SWEEP_SETTINGS):
        pts = [(int(n), e["settings"][s]) for n, e in summary.items() if s in e["settings"]]
        ax.errorbar([n * (1 + 0.03 * (k - 1.5)) for n, _ in pts], [v["error_mean"] for _, v in pts],
                    yerr=[v["error_std"] for _, v in pts], marker="o", capsize=4, label=f"student: {s}")
    ax.plot(ns, [summary[str(n)]["teacher_error"] for n in ns], "k--", marker="s", label="teacher (1 seed)")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(ns, [f"{n:,}" for n in ns])
    ax.set_xlabel(f"training-set size n (each network: {result['config']['steps']} steps of "
                  f"{result['config']['batch_size']})")
    ax.set_ylabel("held-out error (%)")
    ax.set_title("Attention transfer vs training-set size (mean ± std over seeds)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_sweeps(sweep_out: Path = SWEEP_OUT) -> tuple[dict | None, dict | None]:
    """The stored sweep and convergence check (None where missing or empty)."""
    def read(path):
        result = json.loads(path.read_text()) if path.exists() else None
        return result if result and result["runs"] else None
    return read(sweep_out), read(LONG_OUT)


def report(sweep_out: Path = SWEEP_OUT) -> str:
    """Write the RESULTS.md section (the small table, then the sweep) and the plot from the JSONs."""
    body = small_body(json.loads(OUT.read_text()))
    result, long = load_sweeps(sweep_out)
    if result:
        body += "\n\n" + sweep_body(result, long)
        plot_sweep(result)
    write_section("attention_transfer", COMMAND, body)
    return body


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=None, help="seeds per setting (default 3)")
    parser.add_argument("--settings", nargs="+", default=list(transfer.SETTINGS),
                        help=f"of {transfer.SETTINGS}; 'at:BETA' or 'at+kd:BETA' sets the AT weight (default 1000)")
    parser.add_argument("--append", action="store_true", help="add these settings to the existing JSON and table")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--ship", action="store_true", help="also save the seed-0 'alone' and 'at' students as the "
                        "shipped at_student.pt / at_student_at.pt (the same bits as python -m xai_ref.training.attention_transfer ship)")
    parser.add_argument("--sweep", action="store_true", help="run (or resume) the training-set size sweep")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SWEEP["sizes"]))
    parser.add_argument("--steps", type=int, default=SWEEP["steps"])
    parser.add_argument("--sweep-out", type=Path, default=SWEEP_OUT)
    parser.add_argument("--long", action="store_true", help=f"run (or resume) the convergence check {LONG}, "
                        f"written to {LONG_OUT.name}")
    parser.add_argument("--report", action="store_true", help="only rewrite RESULTS.md and the plot")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.long:
        result = sweep(LONG["sizes"], args.seeds or SWEEP["seeds"], LONG["steps"], out=LONG_OUT,
                       settings=LONG["settings"])
    elif args.sweep:
        result = sweep(args.sizes, args.seeds or SWEEP["seeds"], args.steps, out=args.sweep_out)
    elif not args.report:
        args.seeds = args.seeds or 3
        result = small(args)
    print(report(args.sweep_out))
    return result if not args.report else {}


if __name__ == "__main__":
    main()
