"""Attention transfer end to end: a teacher, a student, and a measured improvement.

    python benchmarks/attention_transfer.py            # 5 settings x 3 seeds, ~10 minutes on an idle 2-core CPU
    python benchmarks/attention_transfer.py --seeds 5

Uses the shipped teacher (``xai_ref.models.load("at_teacher")``, reproduced by
``python -m xai_ref.transfer teacher``) and trains the student from scratch in every setting of
:mod:`xai_ref.transfer` for each seed (the seed fixes the initial weights and the batch order; the small
training set is the same for all). Reports the held-out error (mean +- sample std over seeds), the
attention distance to the teacher (``sum_j at_loss`` over the three groups, held-out images) at
initialisation and after training, and the wall time. Writes ``benchmarks/attention_transfer.json`` and
the ``attention_transfer`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks._results import write_section  # noqa: E402
from xai_ref import transfer  # noqa: E402
from xai_ref.models import at_nets, load  # noqa: E402

OUT = Path(__file__).with_name("attention_transfer.json")


def mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--settings", nargs="+", default=list(transfer.SETTINGS),
                        help=f"of {transfer.SETTINGS}; 'at:BETA' or 'at+kd:BETA' sets the AT weight (default 1000)")
    parser.add_argument("--append", action="store_true", help="add these settings to the existing JSON and table")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--ship", action="store_true", help="also save the seed-0 'alone' and 'at' students as the "
                        "shipped at_student.pt / at_student_at.pt (the same bits as python -m xai_ref.transfer ship)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
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

    lines = [f"Task: shapes {transfer.SIZE}x{transfer.SIZE}, {transfer.N_CLASSES} classes, clutter, "
             f"{transfer.N_TRAIN} training images, {transfer.N_TEST} held-out. Teacher "
             f"({result['models']['at_teacher']:,} parameters): held-out error **{teacher_error:.2f}%**. Student: "
             f"{result['models']['at_student']:,} parameters, {args.seeds} seeds per setting (mean ± std).", "",
             "| setting | held-out error (%) | AT distance at init | AT distance after | s / run |",
             "|---|---|---|---|---|"]
    for s, v in summary.items():
        lines.append(f"| {s} | {v['error_mean']:.2f} ± {v['error_std']:.2f} | {v['at_before_mean']:.4f} | "
                     f"{v['at_after_mean']:.4f} ± {v['at_after_std']:.4f} | {v['seconds_mean']:.0f} |")
    lines += ["", f"AT distance: Σ over the 3 groups of at_loss (p = 2) between student and teacher on the held-out "
              f"images. Wall time {total:.0f} s in all; load average {load_before[0]:.1f} before, "
              f"{result['loadavg_after'][0]:.1f} after ({os.cpu_count()} cores, shared machine)."]
    write_section("attention_transfer", "python benchmarks/attention_transfer.py", "\n".join(lines))
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
