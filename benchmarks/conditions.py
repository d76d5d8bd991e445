"""When do the papers' claims hold? Claims 1 and 2 of claims.py measured across the condition that decides each.

    python benchmarks/conditions.py           # trains, evaluates, writes conditions.json, two PNGs and the
                                              # "conditions" section of benchmarks/RESULTS.md
    python benchmarks/conditions.py --quick   # a smoke run (tiny nets, few images): writes nothing

1. **Localization against object size.** Grad-CAM's map is 16 x 16 upsampled to 64 x 64, so its blob cannot be
   smaller than a few cells; saliency is per pixel. Which boxes are better should depend on how much of the image
   the object covers. The shipped nets only saw radii of 0.12-0.20 of the side, so nets are trained here on
   radii 0.06-0.48 (small to image-filling), several seeds each, and every method is scored on test sets binned
   by radius (claim 1's scores: box accuracy at 15 % and 20 %, mean IoU, pointing game, and the size of the box
   each method draws against the true box).
2. **Class discrimination against the training recipe.** The shipped nets were trained on one object per image,
   so their scores of a second object are not calibrated. Nets are trained here with the two-object mix of
   ``xai_ref.training.shapes_nets`` (a fraction of two-object images with targets 1/2 : 1/2), on half the shipped nets' budget;
   claim 2's table is recomputed for the shipped nets and the two-object nets.

Every net is trained deterministically (``xai_ref.training.shapes_nets.train``, one thread) and cached in
``benchmarks/_out/conditions/`` (git-ignored); results go to ``benchmarks/conditions.json`` as each run finishes,
and a rerun skips what is there (delete the file to start over; it is also restarted when the settings change).
The Markdown section, the verdicts and the plots are computed from that JSON alone (:func:`section`), so
``tests/test_conditions.py`` can check that RESULTS.md says what the JSON holds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from xai_ref.data import shapes
from xai_ref.models import shapes_nets
from xai_ref.training.shapes_nets import evaluate, evaluate_pairs, train

sys.path.insert(0, str(Path(__file__).parent))
from _results import write_section  # noqa: E402
from claims import (  # noqa: E402
    MODELS, SEEDS, discrimination_scores, either_accuracy, load_model, localization_scores, maps_of, md_table,
    method_table, pct, two_object_maps)

HERE = Path(__file__).parent
JSON = HERE / "conditions.json"
CACHE = HERE / "_out" / "conditions"
PLOTS = dict(localization="conditions_localization.png", discrimination="conditions_discrimination.png")

#: The settings of the full run; ``--quick`` shrinks them. Stored in the JSON: a change restarts the run.
FULL = dict(
    seeds=[0, 1, 2],                                   # training seeds of every recipe
    wide_scale=[0.06, 0.48],                           # radii of the wide-range nets' training images
    bins=[0.06, 0.13, 0.20, 0.27, 0.34, 0.41, 0.48],   # radius bin edges of the test sets (fractions of the side)
    n_bin=100,                                         # test images per bin (seed 201 + bin index)
    n_two=128,                                         # two-object test images (claim 2's seed, 102)
    wide_train=dict(epochs=5, images_per_epoch=4000),
    # the two-object recipe: half the shipped budget for NIN (enough: an improvement is then not from more
    # training), the shipped budget for VGG (at half of it VGG stayed at 87 % one-object accuracy)
    two_train={"nin_shapes": dict(epochs=8, images_per_epoch=4000), "vgg_shapes": dict(epochs=8, images_per_epoch=8000)},
    two_objects={"nin_shapes": 0.25, "vgg_shapes": 0.5},   # measured in xai_ref/training/shapes_nets.py's docstring
)
QUICK = dict(FULL, seeds=[0], n_bin=8, n_two=8, wide_train=dict(epochs=1, images_per_epoch=64),
             two_train={name: dict(epochs=1, images_per_epoch=64) for name in ("nin_shapes", "vgg_shapes")})
LOC_METHODS = ("CAM", "Grad-CAM", "Grad-CAM++", "saliency", "guided backprop", "Guided Grad-CAM", "random map")
LOC_SCORES = dict(box15="box accuracy @0.15 (%)", box20="box accuracy @0.20 (%)", iou15="mean IoU @0.15",
                  pointing="pointing game (%)", box_ratio15="predicted / true box area @0.15 (median)")
RECIPES = dict(shipped="one object (shipped, 8 x 8000 images)", two="two objects")
PERCENT = {"box15", "box20", "pointing", "both", "right"}


# --- the data ------------------------------------------------------------------------------------------


def bin_batches(cfg) -> list[shapes.ShapesBatch]:
    """One held-out one-object test set per radius bin [r_k, r_k+1)."""
    edges = cfg["bins"]
    return [shapes.generate(cfg["n_bin"], 201 + k, split="test", scale=(edges[k], edges[k + 1]))
            for k in range(len(edges) - 1)]


def bin_table(batches) -> list[dict]:
    """Per bin: mean object area |mask| / HW and mean box area |box| / HW (fractions of the image)."""
    hw = batches[0].images.shape[2] * batches[0].images.shape[3]
    return [dict(object_area=float(b.mask.mean()),
                 box_area=float(((b.box[:, 2] - b.box[:, 0]) * (b.box[:, 3] - b.box[:, 1])).mean() / hw))
            for b in batches]


# --- training (cached) ---------------------------------------------------------------------------------


def trained(name: str, recipe: str, seed: int, cfg, cache: bool):
    """The net ``name`` trained with ``recipe`` ("wide" or "two") and ``seed``, loaded from the cache
    when ``cache`` and it is there. Returns (model in eval mode, training seconds or None when loaded)."""
    args = dict(cfg["wide_train"], scale=tuple(cfg["wide_scale"])) if recipe == "wide" else dict(cfg["two_train"][name])
    args["two_objects"] = cfg["two_objects"][name] if recipe == "two" else 0.0
    path = CACHE / f"{name}_{recipe}_s{seed}_{args['epochs']}x{args['images_per_epoch']}.pt"
    if cache and path.exists():
        model = shapes_nets.BUILDERS[name]()
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval(), None
    t0 = time.perf_counter()
    model, _ = train(name, seed=seed, progress=cache, test_size=cfg["n_bin"], **args)   # its accuracy: not used
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    return model, time.perf_counter() - t0


# --- one evaluation per net ----------------------------------------------------------------------------


def localization_run(model, name, batches) -> dict:
    """Accuracy and claim 1's scores of every method in LOC_METHODS, per radius bin (ground-truth class)."""
    fns = {m: f for m, f in method_table(name).items() if m in LOC_METHODS}
    out = []
    for b in batches:
        x, y = b.to_torch()
        out.append(dict(accuracy=evaluate(model, b),
                        methods={m: localization_scores(maps_of(f, model, x, y), b) for m, f in fns.items()}))
    return dict(bins=out)


def discrimination_run(model, name, two, one) -> dict:
    """Claim 2's scores of every method on the two-object set, with the net's accuracies."""
    maps = two_object_maps(method_table(name), model, two)
    return dict(accuracy=evaluate(model, one), either=either_accuracy(model, two), pairs=evaluate_pairs(model, two),
                methods={m: discrimination_scores(v, two) for m, v in maps.items()})


# --- the run -------------------------------------------------------------------------------------------


def load_results(cfg) -> dict:
    """The stored results if they were made with ``cfg``, else a fresh record."""
    if JSON.exists():
        res = json.loads(JSON.read_text())
        if res["config"] == cfg:
            return res
    return dict(config=cfg, runs={})


def jobs(cfg) -> list[tuple[str, str, int | None]]:
    """(part, name, seed) in running order: the localization nets, then the two recipes (seed None: shipped)."""
    out = [("shipped_bins", n, None) for n in MODELS]
    out += [("wide", n, s) for n in MODELS for s in cfg["seeds"]]
    out += [("shipped", n, None) for n in MODELS]
    out += [("two", n, s) for n in MODELS for s in cfg["seeds"]]
    return out


def run(cfg, save: bool) -> dict:
    """Every job of :func:`jobs` not yet in the results; with ``save``, nets are cached and the JSON written
    after each job (without: nothing is read or written)."""
    res = load_results(cfg) if save else dict(config=cfg, runs={})
    batches = bin_batches(cfg)
    two = shapes.generate(cfg["n_two"], SEEDS["two"], objects=2, split="test")
    one = shapes.generate(cfg["n_bin"], SEEDS["one"], split="test")
    res["bins"] = bin_table(batches)
    res["claim1_area"] = float(one.mask.mean())   # the default scale of the shipped nets and of claim 1
    if save:
        JSON.write_text(json.dumps(res, indent=1))
    todo = [j for j in jobs(cfg) if "/".join(map(str, j)) not in res["runs"]]
    for part, name, seed in tqdm(todo, desc="conditions", unit="net", disable=not save):
        t0 = time.perf_counter()
        if part == "shipped_bins":
            record = localization_run(load_model(name), name, batches)
        else:
            model, train_s = (load_model(name), None) if part == "shipped" else trained(name, part, seed, cfg, save)
            record = (localization_run(model, name, batches) if part == "wide"
                      else discrimination_run(model, name, two, one))
            record["train_s"] = train_s
        record["eval_s"] = time.perf_counter() - t0 - (record.get("train_s") or 0.0)
        res["runs"]["/".join(map(str, (part, name, seed)))] = record
        if save:
            JSON.write_text(json.dumps(res, indent=1))
    return res


# --- summary: mean and spread over the training seeds --------------------------------------------------


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for one value) of the per-seed values."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def seed_runs(res, part, name) -> list[dict]:
    """The records of ``part`` for ``name``: one per training seed, or the shipped net's alone."""
    seeds = [None] if part.startswith("shipped") else res["config"]["seeds"]
    return [res["runs"][f"{part}/{name}/{s}"] for s in seeds]


def loc_curves(res, name, part="wide") -> dict:
    """{method: {score: [(mean, std) per bin]}} over the seeds of ``part`` ("wide" or "shipped_bins"),
    plus "accuracy": [(mean, std) per bin]."""
    runs = seed_runs(res, part, name)
    n_bins = len(res["bins"])
    curves = {"accuracy": [mean_std([r["bins"][k]["accuracy"] for r in runs]) for k in range(n_bins)]}
    for meth in runs[0]["bins"][0]["methods"]:
        curves[meth] = {s: [mean_std([r["bins"][k]["methods"][meth][s] for r in runs]) for k in range(n_bins)]
                        for s in LOC_SCORES}
    return curves


def crossings(x, diff) -> list[tuple[float, str]]:
    """Where a piecewise-linear curve diff(x) changes sign: [(x*, "up" or "down")], x* by linear interpolation
    between neighbouring points, diff(x*) = 0."""
    out = []
    for k in range(1, len(x)):
        a, b = diff[k - 1], diff[k]
        if (a < 0 <= b) or (a >= 0 > b):
            out.append((x[k - 1] + (x[k] - x[k - 1]) * a / (a - b), "up" if b >= 0 else "down"))
    return out


def overtake(res, name, score="box15", part="wide") -> dict:
    """Grad-CAM minus saliency (seed means) per bin of object area, and where the difference changes sign."""
    c = loc_curves(res, name, part)
    area = [b["object_area"] for b in res["bins"]]
    diff = [g[0] - s[0] for g, s in zip(c["Grad-CAM"][score], c["saliency"][score])]
    return dict(area=area, diff=diff, crossings=crossings(area, diff))


def disc_summary(res, name) -> dict:
    """{recipe: {"accuracy"/"either"/"pairs": (mean, std), "methods": {method: {score: (mean, std)}}}}."""
    out = {}
    for recipe in RECIPES:
        runs = seed_runs(res, recipe, name)
        out[recipe] = {k: mean_std([r[k] for r in runs]) for k in ("accuracy", "either", "pairs")}
        out[recipe]["methods"] = {meth: {s: mean_std([r["methods"][meth][s] for r in runs])
                                         for s in ("right", "both", "ratio")} for meth in runs[0]["methods"]}
    return out


# --- Markdown ------------------------------------------------------------------------------------------


def pm(ms, percent: bool, spread: bool = True) -> str:
    """'mean ± std' (or the mean alone, for a single shipped net), in percent or with three decimals."""
    m, s = (100 * v for v in ms) if percent else ms
    digits = 1 if percent else 3
    return f"{m:.{digits}f} ± {s:.{digits}f}" if spread else f"{m:.{digits}f}"


def area_labels(res) -> list[str]:
    return [f"{pct(b['object_area'])}%" for b in res["bins"]]


def bins_md(res) -> str:
    edges = res["config"]["bins"]
    rows = []
    for k, b in enumerate(res["bins"]):
        row = [f"{edges[k]:.2f}-{edges[k + 1]:.2f}", pct(b["object_area"]), pct(b["box_area"])]
        for name in MODELS:
            row += [pct(loc_curves(res, name, "shipped_bins")["accuracy"][k][0]),
                    pm(loc_curves(res, name)["accuracy"][k], True)]
        rows.append(row)
    head = ["radius / side", "object area (%)", "box area (%)"]
    for name in MODELS:
        head += [f"{name} shipped acc. (%)", f"{name} wide acc. (%)"]
    return md_table(head, rows)


def loc_md(res, name) -> str:
    """Every score of the wide-range nets per bin (mean ± std), then the shipped net's box accuracy."""
    out = []
    for part, scores in (("wide", LOC_SCORES), ("shipped_bins", ("box15",))):
        c = loc_curves(res, name, part)
        for score in scores:
            rows = [[meth] + [pm(v, score in PERCENT) if part == "wide" else pct(v[0]) for v in c[meth][score]]
                    for meth in c if meth != "accuracy"]
            title = f"{name}{' (shipped, one seed)' if part != 'wide' else ''}: {LOC_SCORES[score]}"
            out += [f"*{title}*", "", md_table(["method / object area"] + area_labels(res), rows), ""]
    return "\n".join(out)


def sign_text(res, name, score="box15", part="wide") -> str:
    """Grad-CAM against saliency bin by bin, in words: 'behind at 1.7% to 5.4%, ahead at 11.6% to 40.0%'."""
    runs = []                                    # [word, first bin, last bin]
    for label, d in zip(area_labels(res), overtake(res, name, score, part)["diff"]):
        word = "ahead" if d > 0 else "behind" if d < 0 else "level"
        if runs and runs[-1][0] == word:
            runs[-1][2] = label
        else:
            runs.append([word, label, label])
    return ", ".join(f"{w} at {a}" if a == b else f"{w} at {a} to {b}" for w, a, b in runs)


def ratio_notes(res) -> list[str]:
    """Where Grad-CAM's or saliency's median box is more than twice, or less than half, the true box."""
    notes = []
    for meth in ("Grad-CAM", "saliency"):
        for k, end in ((0, "smallest"), (-1, "largest")):
            r = {n: loc_curves(res, n)[meth]["box_ratio15"][k][0] for n in MODELS}
            for test, what in ((lambda v: v > 2, "more than twice"), (lambda v: v < 0.5, "less than half")):
                hit = [f"{n} {v:.2f}x" for n, v in r.items() if test(v)]
                if hit:
                    notes.append(f"{meth}'s box is {what} the true box on the {end} objects ({', '.join(hit)})")
    return notes


def loc_verdict(res) -> str:
    """The one-paragraph verdict of part 1, from the numbers."""
    diffs = {n: overtake(res, n)["diff"] for n in MODELS}
    ahead = [d > 0 for v in diffs.values() for d in v]
    head = ("**Holds at every size**" if all(ahead) else "**Fails at every size**" if not any(ahead)
            else "**Holds only for some object sizes**")
    both = [lab for k, lab in enumerate(area_labels(res)) if all(diffs[n][k] > 0 for n in MODELS)]
    out = [head + " (Grad-CAM paper, Table 1: Grad-CAM's boxes beat backprop's; here box accuracy at 15 % on the "
           "wide-range nets)."]
    out += [f"{n}, Grad-CAM's boxes against saliency's by object area: {sign_text(res, n)}"
            + (f" (sign changes at {', '.join(pct(a) + '%' for a, _ in overtake(res, n)['crossings'])})"
               if overtake(res, n)["crossings"] else "") + f"; at 20 %: {sign_text(res, n, 'box20')}." for n in MODELS]
    out.append(f"Grad-CAM is ahead on both nets at {', '.join(both)}." if both
               else "No size has Grad-CAM ahead on both nets.")
    area = [b["object_area"] for b in res["bins"]]
    at1 = ", ".join(f"{n} {100 * np.interp(res['claim1_area'], area, diffs[n]):+.1f}" for n in MODELS)
    out.append(f"At claim 1's object size ({pct(res['claim1_area'])}% of the image) Grad-CAM minus saliency is "
               f"{at1} percentage points for the wide-range nets (interpolated). The shipped nets (trained at that "
               "size only), Grad-CAM against saliency: "
               + "; ".join(f"{n} {sign_text(res, n, part='shipped_bins')}" for n in MODELS) + ".")
    out.append("Why: IoU >= 0.5 needs the predicted box's area within a factor of 2 of the true box's, and "
               + "; ".join(ratio_notes(res)) + ".")
    gc_small = [loc_curves(res, n)["Grad-CAM"]["box_ratio15"][0][0] for n in MODELS]
    if min(gc_small) > 2:
        out.append("On small objects the upsampled 16 x 16 Grad-CAM map is a blob that does not shrink with the "
                   "object (one cell is 4 x 4 pixels and its receptive field is larger), so its box overshoots.")
    acc = {n: loc_curves(res, n)["accuracy"][0][0] for n in MODELS}
    if min(acc.values()) < 0.8:
        out.append("Caveat: the wide-range nets classify the smallest objects poorly ("
                   + ", ".join(f"{n} {pct(a)}%" for n, a in acc.items()) + " accuracy), so the small-object end of "
                   "the curves explains weak classifiers (the maps are for the true class).")
    if all(loc_curves(res, n)["random map"]["box15"][-1][0] >= 0.25 for n in MODELS):
        out.append("On the largest objects the random map's boxes hit too (the object fills the image and a box "
                   "around most of the image covers it): box accuracy there no longer measures the explanation.")
    return " ".join(out)


def disc_md(res, name) -> str:
    s = disc_summary(res, name)
    sp = {r: r != "shipped" for r in RECIPES}
    rows = [[meth] + [pm(s[r]["methods"][meth]["both"], True, sp[r]) for r in RECIPES]
            + [pm(s[r]["methods"][meth]["ratio"], False, sp[r]) for r in RECIPES] for meth in s["shipped"]["methods"]]
    acc = "; ".join(f"{RECIPES[r]}: one-object accuracy {pm(s[r]['accuracy'], True, sp[r])}%, prediction one of "
                    f"the two classes {pm(s[r]['either'], True, sp[r])}%, top-2 = both objects "
                    f"{pm(s[r]['pairs'], True, sp[r])}%" for r in RECIPES)
    head = (["method"] + [f"both right (%), {r}" for r in RECIPES] + [f"energy ratio, {r}" for r in RECIPES])
    return "\n".join([f"*{name}* ({acc})", "", md_table(head, rows), ""])


def disc_verdict(res) -> str:
    """The verdict of part 2: Grad-CAM's lead over guided backprop on 'both right', per recipe."""
    leads, parts = {}, []
    for name in MODELS:
        s = disc_summary(res, name)
        for r in RECIPES:
            m = s[r]["methods"]
            leads[name, r] = m["Grad-CAM"]["both"][0] - m["guided backprop"]["both"][0]
        parts.append(f"{name}: Grad-CAM minus guided backprop, both maps right, "
                     + ", ".join(f"{pct(leads[name, r])} points ({r})" for r in RECIPES)
                     + f"; Grad-CAM itself {pm(s['shipped']['methods']['Grad-CAM']['both'], True, False)}% (shipped) "
                       f"→ {pm(s['two']['methods']['Grad-CAM']['both'], True)}% (two objects); top-2 classes = both "
                       f"objects on {pm(s['shipped']['pairs'], True, False)}% → {pm(s['two']['pairs'], True)}% of "
                       "the images")
    two_ok = all(leads[n, "two"] >= 0.10 for n in MODELS)
    head = ("**Holds with two-object training**" if two_ok else "**Partly holds with two-object training**"
            if any(leads[n, "two"] >= 0.10 for n in MODELS) else "**Does not hold, whichever the recipe**")
    why = [recipe_effect(res, n, leads[n, "two"] - leads[n, "shipped"]) for n in MODELS]
    return (head + " (Grad-CAM paper, Fig. 1: Grad-CAM is class-discriminative, guided backprop is not; a lead of "
            "at least 10 points counts). " + "; ".join(parts) + ". " + " ".join(why))


def recipe_effect(res, name, gain) -> str:
    """One sentence: did two-object training widen Grad-CAM's lead on ``name``, and can the test tell?"""
    s = disc_summary(res, name)
    acc_two, acc_shipped = s["two"]["accuracy"][0], s["shipped"]["accuracy"][0]
    if gain > 0:
        return (f"On {name} two-object training widens the lead by {pct(gain)} points: Grad-CAM's weights come "
                "from the class score's gradient, and two-object training teaches each class's score to respond "
                "to its own object.")
    if acc_two < acc_shipped - 0.05:
        t = res["config"]["two_train"][name]
        budget = t["epochs"] * t["images_per_epoch"] / 64000
        return (f"On {name} the lead does not grow ({pct(gain)} points), but these two-object nets are "
                f"undertrained at {budget:.2g} of the shipped budget (one-object accuracy {pct(acc_two)}% against "
                f"{pct(acc_shipped)}%, "
                f"both objects in the top 2 on {pct(s['two']['pairs'][0])}%): inconclusive there.")
    return f"On {name} the lead does not grow ({pct(gain)} points): the recipe does not decide it on this net."


def section(res) -> str:
    """The Markdown of the whole section, a function of the JSON alone."""
    cfg = res["config"]
    train_s = sum(r.get("train_s") or 0.0 for r in res["runs"].values())
    eval_s = sum(r["eval_s"] for r in res["runs"].values())
    wt, tt = cfg["wide_train"], cfg["two_train"]
    return "\n".join([
        f"Claims 1 and 2 of the claims section, each measured across the condition that decides it; mean ± "
        f"standard deviation (n - 1) over {len(cfg['seeds'])} training seeds ({', '.join(map(str, cfg['seeds']))}). "
        f"Nets trained here, one thread, deterministic, cached in `benchmarks/_out/conditions/`; every number below "
        f"is computed from `benchmarks/conditions.json` by `conditions.section`.", "",
        "### 7. Localization against object size", "",
        f"Wide-range nets: `train(name, seed, scale=({cfg['wide_scale'][0]}, {cfg['wide_scale'][1]}), "
        f"epochs={wt['epochs']}, images_per_epoch={wt['images_per_epoch']})` (radii from small to image-filling; the "
        f"shipped nets saw 0.12-0.20 only, 8 x 8000 images). Test sets: {cfg['n_bin']} one-object images per radius "
        "bin (held-out split, seed 201 + bin), maps for the ground-truth class, claim 1's protocol. *object area*: "
        "mean share of the image covered by the object's pixels (the x axis below); *box area*: by its box.", "",
        bins_md(res), "",
        f"![localization against object area]({PLOTS['localization']})", "",
        *[loc_md(res, n) for n in MODELS],
        loc_verdict(res), "",
        "### 8. Class discrimination: one-object against two-object training", "",
        f"Claim 2's table on {cfg['n_two']} two-object test images (seed {SEEDS['two']}), for the shipped nets and "
        "for nets trained with `train(name, seed, two_objects=F, epochs=E, images_per_epoch=N)`: "
        + "; ".join(f"{n}: F = {cfg['two_objects'][n]}, {t['epochs']} x {t['images_per_epoch']} images "
                    f"({t['epochs'] * t['images_per_epoch'] / 64000:.2g} of the shipped nets' budget)"
                    for n, t in tt.items())
        + " (no more training than the shipped nets got, so an improvement does not come from more training). "
        "*both right*: both classes' maps point at their own object and not at "
        "the other; *energy ratio*: mass on the own object / mass on both. Accuracies on "
        f"{cfg['n_bin']} one-object test images (seed {SEEDS['one']}).", "",
        f"![class discrimination by training recipe]({PLOTS['discrimination']})", "",
        *[disc_md(res, n) for n in MODELS],
        disc_verdict(res), "",
        f"Run time: {train_s / 60:.1f} min of training and {eval_s / 60:.1f} min of evaluation (wall clock, one "
        "thread, on a machine shared with other jobs).",
    ])


# --- plots ---------------------------------------------------------------------------------------------


def plot(res, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    area = 100 * np.array([b["object_area"] for b in res["bins"]])
    scores = ("box15", "box20", "pointing", "box_ratio15")
    fig, axes = plt.subplots(len(scores), len(MODELS), figsize=(11, 12), sharex=True)
    for j, name in enumerate(MODELS):
        c = loc_curves(res, name)
        for i, score in enumerate(scores):
            ax = axes[i, j]
            for meth in c:
                if meth == "accuracy":
                    continue
                m, s = np.array(c[meth][score]).T
                colour = f"C{LOC_METHODS.index(meth)}"     # the same colour for a method in every panel
                ax.plot(area, m, marker="o", ms=3, label=meth, color=colour, ls="--" if meth == "random map" else "-")
                ax.fill_between(area, m - s, m + s, color=colour, alpha=0.15)
            ax.set_title(f"{name}: {LOC_SCORES[score]}", fontsize=9)
            ax.set_xscale("log")
            ax.set_xticks(area, [f"{a:.1f}" for a in area])
            ax.set_xticks([], minor=True)
            if score == "box_ratio15":
                ax.set_yscale("log")
                ax.axhline(1, color="k", lw=0.8)
        axes[-1, j].set_xlabel("object area (% of the image)")
    axes[0, 0].legend(fontsize=7)
    axes[0, 1].legend(fontsize=7)
    fig.suptitle("localization against object size (mean ± std over training seeds)")
    fig.tight_layout()
    fig.savefig(folder / PLOTS["localization"], dpi=80)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(MODELS), figsize=(12, 3.8), sharey=True)
    for ax, name in zip(axes, MODELS):
        s = disc_summary(res, name)
        meths = list(s["shipped"]["methods"])
        for k, r in enumerate(RECIPES):
            m, e = np.array([s[r]["methods"][meth]["both"] for meth in meths]).T
            ax.bar(np.arange(len(meths)) + (k - 0.5) * 0.4, 100 * m, 0.4, yerr=100 * e, label=RECIPES[r])
        ax.set_xticks(np.arange(len(meths)), meths, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{name}: both classes' maps right (%)", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / PLOTS["discrimination"], dpi=80)
    plt.close(fig)


# --- main ----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny nets, few images; writes nothing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = QUICK if args.quick else FULL
    res = run(cfg, save=not args.quick)
    body = section(res)
    print(body)
    if not args.quick:
        plot(res, HERE)
        write_section("conditions", "python benchmarks/conditions.py", body)


if __name__ == "__main__":
    main()
