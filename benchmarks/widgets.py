"""Latency of the explorers: from setting a control's ``.value`` to the display updated.

Setting ``.value`` from Python runs the same observers a browser event runs, synchronously; when the
assignment returns, every picture (PNG bytes) and text of the explorer is up to date. Each control is
set to a sequence of values it has not visited since the explorer's caches were emptied, and timed:
the cost of a first visit (what the control invalidates is recomputed, the rest is reused, every
picture is drawn), not of a revisit (which only reads caches).

Goals: a step or threshold change <= 50 ms median (shapes nets and EfficientNet-Lite0); a class or
layer change on EfficientNet-Lite0 <= 250 ms median. And, as a ratio to one plain forward + backward pass
of the same model and image timed in the same run (interleaved), a class change on EfficientNet-Lite0:
BackpropExplorer <= 2.3x (its three maps come from one forward pass), GradCAMExplorer <= 1.3x.

    python benchmarks/widgets.py            # writes the "widgets" section of benchmarks/RESULTS.md
    python benchmarks/widgets.py --quick    # fewer repetitions, prints only
    python benchmarks/widgets.py --threads 1
    python benchmarks/widgets.py --threads 1 --only BackpropExplorer   # re-measure one explorer's rows
                                            # (and the ratios); the other rows of the section are kept

On a 2-core machine shared with other busy processes use ``--threads 1``: two torch threads that wait
on each other make every convolution of these small nets 10-20x slower (measured here).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
import warnings
from pathlib import Path

import ipywidgets as W
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._results import RESULTS, write_section  # noqa: E402
from widgets import (AscentExplorer, AttentionExplorer, BackpropExplorer, CAMExplorer, GAPExplorer,  # noqa: E402
                     GradCAMExplorer, MetricsExplorer)
from widgets.cache import Memo  # noqa: E402

GOALS = {"step": 50, "threshold": 50}           # ms, median, any model
EFFICIENTNET_GOALS = {"target": 250, "layer": 250}
RATIO_GOALS = {"BackpropExplorer": 2.3, "GradCAMExplorer": 1.3}   # class change / plain pass, EfficientNet


def pool(w: W.ValueWidget) -> list:
    """The values a control can take (at most 60 of a long list)."""
    if isinstance(w, (W.Dropdown, W.ToggleButtons)):
        return [o[1] if isinstance(o, tuple) else o for o in w.options][:60]
    if isinstance(w, W.IntSlider):
        return list(range(w.min, w.max + 1, w.step))
    if isinstance(w, W.FloatLogSlider):
        return [float(w.base ** e) for e in np.linspace(w.min, w.max, 9)]
    if isinstance(w, W.FloatSlider):
        return [round(v, 10) for v in np.arange(w.min, w.max + w.step / 2, w.step)]
    if isinstance(w, (W.Checkbox, W.ToggleButton)):
        return [True, False]
    raise TypeError(type(w).__name__)


def empty_caches(explorer) -> None:
    """Forget every computed trace."""
    for m in vars(explorer).values():
        if isinstance(m, Memo):
            m.clear()


def time_control(explorer, name: str, n: int, rng: random.Random) -> list[float]:
    """Set control ``name`` ``n`` times, each time to a value not visited since the caches were last
    emptied (a first visit: what it invalidates is recomputed, what it does not is reused, as in use),
    with the stepper's drawn views forgotten (every picture is drawn)."""
    w = explorer.controls[name]
    times, todo = [], []
    for _ in range(n):
        if not todo:
            empty_caches(explorer)
            todo = [v for v in pool(w) if v != w.value]
            if not todo:                  # a control with one value (a hidden channel slider)
                return times
            rng.shuffle(todo)
        times.append(timed_change(explorer, name, todo.pop()))
    return times


def timed_change(explorer, name: str, value) -> float:
    """Milliseconds from ``controls[name].value = value`` to the explorer redrawn (every picture drawn)."""
    explorer.stepper.forget_drawn()
    t0 = time.perf_counter()
    explorer.controls[name].value = value
    ms = (time.perf_counter() - t0) * 1000
    if explorer.status.value:
        raise RuntimeError(f"{type(explorer).__name__}.{name} = {value!r}: {explorer.status.value}")
    return ms


def plain_pass(model, x: torch.Tensor, c: int, weights: bool = True) -> None:
    """One plain forward + backward pass of the target score: ``model(x)[0, c].backward()`` with the model
    as it is loaded (``weights=True``: parameters require grad, so the backward pass also computes the
    weights' gradients, as a training step does), or only down to the input (``weights=False``:
    parameters frozen, what one explanation needs at the least)."""
    saved = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    try:
        if not weights:
            for p in model.parameters():
                p.requires_grad_(False)
        x_ = x.detach().clone().requires_grad_(True)
        model(x_)[0, c].backward()
    finally:
        for p, requires_grad, grad in saved:
            p.requires_grad_(requires_grad)
            p.grad = grad


def ratios(n: int, rng: random.Random) -> tuple[str, list[str]]:
    """A class change on EfficientNet-Lite0 against a plain forward + backward pass of the same model and
    image, interleaved in one run (each change to a class not visited, caches emptied): the median of
    each and their ratio. Returns (a Markdown table, the goals missed)."""
    rows, failures = [], []
    for cls, make in (("BackpropExplorer", lambda: BackpropExplorer("efficientnet_lite0", "cat_coffee")),
                      ("GradCAMExplorer", lambda: GradCAMExplorer("efficientnet_lite0", "cat_coffee"))):
        explorer = make()
        model, x = explorer.model, explorer.x
        w = explorer.controls["target"]
        classes = [v for v in pool(w) if v != w.value]
        rng.shuffle(classes)
        change, full, light = [], [], []
        for c in classes[:n]:
            for times, f in ((full, lambda: plain_pass(model, x, c)),
                             (light, lambda: plain_pass(model, x, c, weights=False))):
                t0 = time.perf_counter()
                f()
                times.append((time.perf_counter() - t0) * 1000)
            empty_caches(explorer)
            change.append(timed_change(explorer, "target", c))
        med, f, l = (float(np.median(t)) for t in (change, full, light))
        goal = RATIO_GOALS[cls]
        verdict = "ok" if med / f <= goal else "**over**"
        if verdict != "ok":
            failures.append(f"{cls}/efficientnet_lite0/target: {med / f:.2f}x > {goal}x")
        rows.append(f"| {cls} | efficientnet_lite0 | `target` | {len(change)} | {med:.1f} | {f:.1f} | "
                    f"**{med / f:.2f}x** | {l:.1f} | {med / l:.2f}x | ≤ {goal}x {verdict} |")
        print(rows[-1], flush=True)
    table = ("| explorer | model | control | changes | median ms | plain pass ms | ratio | input-only pass ms "
             "| ratio | goal (ratio to the plain pass) |\n|---|---|---|---:|---:|---:|---:|---:|---:|---|\n"
             + "\n".join(rows))
    note = ("Class change against one forward + backward pass of the same model and image, interleaved in this "
            "run (medians). Plain pass: `model(x)[0, c].backward()` with the model as loaded (its parameters "
            "require grad, so the weights' gradients are computed too); input-only pass: the same with the "
            "parameters frozen, the least any gradient explanation costs. BackpropExplorer computes its three "
            "maps (and the magnifier's signal under each rule) from one forward and three backward passes.")
    return f"{note}\n\n{table}\n", failures


def run(quick: bool, only: set[str] | None = None) -> tuple[list[str], list[str], str]:
    """Time every control of each explorer case (``only``: the cases of these explorers). Returns the
    table rows, the goals missed, and the ratio table."""
    rng = random.Random(0)
    n_small, n_big = (8, 4) if quick else (30, 12)
    cases = [
        ("GAPExplorer", "nin_shapes", lambda: GAPExplorer("nin_shapes"), None),
        ("CAMExplorer", "nin_shapes", lambda: CAMExplorer("nin_shapes"), None),
        ("GradCAMExplorer", "vgg_shapes", lambda: GradCAMExplorer("vgg_shapes"), None),
        ("BackpropExplorer", "vgg_shapes", lambda: BackpropExplorer("vgg_shapes"), None),
        ("AscentExplorer", "nin_shapes", lambda: AscentExplorer("nin_shapes", steps=10, chunk=10), None),
        ("AttentionExplorer", "nin ↔ vgg", lambda: AttentionExplorer("nin_shapes", "vgg_shapes"), None),
        ("MetricsExplorer", "nin_shapes", lambda: MetricsExplorer("nin_shapes"), None),
        ("CAMExplorer", "efficientnet_lite0", lambda: CAMExplorer("efficientnet_lite0", "cat_coffee"),
         ["target", "step", "channel", "threshold", "row"]),
        ("GradCAMExplorer", "efficientnet_lite0", lambda: GradCAMExplorer("efficientnet_lite0", "cat_coffee"),
         ["target", "layer", "method", "step", "channel", "row"]),
        ("BackpropExplorer", "efficientnet_lite0", lambda: BackpropExplorer("efficientnet_lite0", "cat_coffee"),
         ["target", "step", "patch_row"]),
    ]
    rows, failures = [], []
    for cls, model, make, controls in cases:
        if only is not None and cls not in only:
            continue
        explorer = make()
        big = model == "efficientnet_lite0"
        for name in controls or list(explorer.controls):
            if cls == "AscentExplorer" and name == "steps":
                continue
            n = n_big if big and name in ("target", "layer", "method", "mode", "unit") else n_small
            if cls == "AscentExplorer" and name == "run":
                n = max(3, n // 4)           # a run of one chunk (10 gradient steps), start to finish
            if name == "channel":
                explorer.controls["step"].value = 1     # the first term: feature maps, the channel shows
            t = time_control(explorer, name, n, rng)
            if not t:
                continue
            med, p95 = float(np.median(t)), float(np.percentile(t, 95))
            goal = (EFFICIENTNET_GOALS.get(name) if big else None) or GOALS.get(name)
            verdict = "" if goal is None else ("ok" if med <= goal else "**over**")
            if verdict == "**over**":
                failures.append(f"{cls}/{model}/{name}: {med:.0f} ms > {goal} ms")
            rows.append(f"| {cls} | {model} | `{name}` | {len(t)} | {med:.1f} | {p95:.1f} | "
                        f"{'' if goal is None else f'≤ {goal} {verdict}'} |")
            print(rows[-1], flush=True)
    ratio_table, ratio_failures = ratios(4 if quick else 12, rng)
    return rows, failures + ratio_failures, ratio_table


HEADING = ("| explorer | model | control | changes | median ms | p95 ms | goal (median) |\n"
           "|---|---|---|---:|---:|---:|---|\n")
NOTE = ("Latency from `control.value = v` to the explorer's pictures and text updated, each change to a "
        "value not visited before (first-visit cost; every picture redrawn). `channel` is timed on the "
        "first term (feature maps). `run` on AscentExplorer is one run of 10 gradient steps.")


def case_of(row: str) -> tuple[str, str]:
    """(explorer, model) of a table row."""
    cells = [c.strip() for c in row.strip().strip("|").split("|")]
    return cells[0], cells[1]


def merged(rows: list[str], only: set[str]) -> tuple[list[str], str]:
    """The rows of the section now in RESULTS.md, those of the explorers in ``only`` replaced by ``rows``
    (at the place of their old rows), and the old section's machine line."""
    old = RESULTS.read_text() if RESULTS.exists() else ""
    found = re.search(r"<!-- widgets:start -->(.*?)<!-- widgets:end -->", old, re.S)
    section = found.group(1) if found else ""
    machine_line = re.search(r"^Machine: (.*?)\s*$", section, re.M)
    table = section.split("| explorer | model | control | changes | median ms | p95 ms |")[1:2]
    old_rows = [r for r in (table[0].splitlines()[2:] if table else []) if r.startswith("| ")]
    out, placed = [], set()
    for r in old_rows:
        key = case_of(r)
        if key[0] not in only:
            out.append(r)
        elif key not in placed:
            out += [n for n in rows if case_of(n) == key]
            placed.add(key)
    out += [n for n in rows if case_of(n) not in placed]
    return out, machine_line.group(1) if machine_line else "unknown"


def body(rows: list[str], failures: list[str], ratio_table: str, partial: str = "") -> str:
    summary = "All goals met." if not failures else "Over the goal: " + "; ".join(failures)
    return f"{NOTE}{partial}\n\n{HEADING}" + "\n".join(rows) + f"\n\n{ratio_table}\n{summary}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions; print, do not write RESULTS.md")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--only", default=None, help="comma-separated explorer class names: time only their "
                        "controls (and the ratios); the other rows of the RESULTS.md section are kept")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", RuntimeWarning)   # "no trained weights yet" for the shapes nets
    only = None if args.only is None else {o.strip() for o in args.only.split(",") if o.strip()}
    rows, failures, ratio_table = run(args.quick, only)
    partial = ""
    if only is not None and not args.quick:
        rows, machine_then = merged(rows, only)
        failures = [f for f in failures if "x >" in f] + [
            f"{case_of(r)[0]}/{case_of(r)[1]}/{r.split('`')[1]}: over" for r in rows if "**over**" in r]
        partial = (f" Rows of {', '.join(sorted(only))} and the ratio table are from this run; the other rows "
                   f"are from the last full run ({machine_then}).")
    text = body(rows, failures, ratio_table, partial)
    print(text)
    if not args.quick:
        command = "python benchmarks/widgets.py" + (f" --threads {args.threads}" if args.threads else "") + \
            (f" --only {args.only}" if args.only else "")
        write_section("widgets", command, text)


if __name__ == "__main__":
    main()
