"""Latency of the explorers: from setting a control's ``.value`` to the display updated.

Setting ``.value`` from Python runs the same observers a browser event runs, synchronously; when the
assignment returns, every picture (PNG bytes) and text of the explorer is up to date. Each control is
set to a sequence of values it has not visited since the explorer's caches were emptied, and timed:
the cost of a first visit (what the control invalidates is recomputed, the rest is reused, every
picture is drawn), not of a revisit (which only reads caches).

Goals: a step or threshold change <= 50 ms median (shapes nets and EfficientNet-Lite0); a class or
layer change on EfficientNet-Lite0 <= 250 ms median.

    python benchmarks/widgets.py            # writes the "widgets" section of benchmarks/RESULTS.md
    python benchmarks/widgets.py --quick    # fewer repetitions, prints only
    python benchmarks/widgets.py --threads 1

On a 2-core machine shared with other busy processes use ``--threads 1``: two torch threads that wait
on each other make every convolution of these small nets 10-20x slower (measured here).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import warnings
from pathlib import Path

import ipywidgets as W
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._results import write_section  # noqa: E402
from widgets import (AscentExplorer, AttentionExplorer, BackpropExplorer, CAMExplorer, GAPExplorer,  # noqa: E402
                     GradCAMExplorer, MetricsExplorer)
from widgets.cache import Memo  # noqa: E402

GOALS = {"step": 50, "threshold": 50}           # ms, median, any model
EFFICIENTNET_GOALS = {"target": 250, "layer": 250}


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
        v = todo.pop()
        explorer.stepper.forget_drawn()
        t0 = time.perf_counter()
        w.value = v
        times.append((time.perf_counter() - t0) * 1000)
        if explorer.status.value:
            raise RuntimeError(f"{type(explorer).__name__}.{name} = {v!r}: {explorer.status.value}")
    return times


def run(quick: bool) -> str:
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
    for cls, model, make, only in cases:
        explorer = make()
        big = model == "efficientnet_lite0"
        for name in only or list(explorer.controls):
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
    table = ("| explorer | model | control | changes | median ms | p95 ms | goal (median) |\n"
             "|---|---|---|---:|---:|---:|---|\n" + "\n".join(rows))
    note = ("Latency from `control.value = v` to the explorer's pictures and text updated, each change to a "
            "value not visited before (first-visit cost; every picture redrawn). `channel` is timed on the "
            "first term (feature maps). `run` on AscentExplorer is one run of 10 gradient steps.")
    summary = "All goals met." if not failures else "Over the goal: " + "; ".join(failures)
    return f"{note}\n\n{table}\n\n{summary}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions; print, do not write RESULTS.md")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", RuntimeWarning)   # "no trained weights yet" for the shapes nets
    body = run(args.quick)
    print(body)
    if not args.quick:
        command = "python benchmarks/widgets.py" + (f" --threads {args.threads}" if args.threads else "")
        write_section("widgets", command, body)


if __name__ == "__main__":
    main()
