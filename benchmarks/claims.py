"""Reproduce the evaluation claims of the explanation papers on the shapes models, one table per claim.

    python benchmarks/claims.py            # writes the "claims" section of benchmarks/RESULTS.md
    python benchmarks/claims.py --quick    # a smoke run on a few images; writes nothing

Models: the shipped ``nin_shapes`` and ``vgg_shapes``; for claim 5 a model trained on the biased shapes
variant (the shipped one if there is one, else trained here, seeded, in a few epochs). Data: held-out
``split="test"`` shapes images with fixed seeds. Methods: CAM (nin only), Grad-CAM, Grad-CAM++,
XGrad-CAM, saliency, deconvnet, guided backprop, Guided Grad-CAM, occlusion, and two baselines: a random
map (fixed per image) and a centred Gaussian. Every class explained is the ground-truth class unless a
table says otherwise. The numbers are reported whichever way they come out; each table's sentence says
where we agree with the paper and where we do not.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

import xai_ref as xr
from xai_ref import metrics
from xai_ref.data import shapes
from xai_ref.models import shapes_nets, weights_path

sys.path.insert(0, str(Path(__file__).parent))
from _results import write_section  # noqa: E402

T0 = time.perf_counter()
MODELS = ("nin_shapes", "vgg_shapes")
SEEDS = dict(one=101, two=102, biased=103, unbiased=104)   # test-split seeds of the held-out batches
OCCLUSION = dict(window=16, stride=8)   # 7 x 7 = 49 positions; 16 px at 64 ~ Zeiler & Fergus's 50 px at 224
CHUNK = 100                                               # images per explanation call (memory)


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f} s] {msg}", flush=True)


# --- methods: fn(model, x, target) -> (B,H,W) maps ------------------------------------------------


def random_map(model, x, target):
    """A fixed random map per image: uniform noise seeded by the image's content (so it does not depend
    on the model, but changes when the image changes)."""
    out = torch.empty(x.shape[0], *x.shape[2:])
    for b in range(x.shape[0]):
        seed = int(x[b].double().sum().item() * 1e4) % (2**31)
        out[b] = torch.rand(x.shape[2:], generator=torch.Generator().manual_seed(seed))
    return out


def centre_gaussian(model, x, target):
    """exp(-r^2 / 2 sigma^2) around the image centre, sigma = a quarter of the image size."""
    H, W = x.shape[2:]
    y = torch.arange(H) + 0.5 - H / 2
    xx = torch.arange(W) + 0.5 - W / 2
    r2 = y[:, None] ** 2 + xx[None, :] ** 2
    return torch.exp(-r2 / (2 * (H / 4) ** 2)).expand(x.shape[0], H, W).clone()


def occlusion_map(model, x, target):
    return xr.occlusion(model, x, target, batch_size=256, **OCCLUSION).map


#: The Grad-CAM layer: the last convolutional layer's rectified maps, as the paper (relu5_3 of VGG-16,
#: before the last max-pool): 16x16 for both nets.
CAM_LAYER = {"nin_shapes": "mlpconv4_relu2", "vgg_shapes": "block3_relu2"}


def method_table(name: str) -> dict:
    fns = {}
    L = CAM_LAYER[name]
    if name.startswith("nin"):
        fns["CAM"] = lambda m, x, t: xr.cam(m, x, t, layer=L).map
    fns.update({
        "Grad-CAM": lambda m, x, t: xr.grad_cam(m, x, t, layer=L).map,
        "Grad-CAM++": lambda m, x, t: xr.grad_cam_pp(m, x, t, layer=L).map,
        "XGrad-CAM": lambda m, x, t: xr.xgrad_cam(m, x, t, layer=L).map,
        "saliency": lambda m, x, t: xr.saliency(m, x, t).map,
        "deconvnet": lambda m, x, t: xr.deconvnet(m, x, t).map,
        "guided backprop": lambda m, x, t: xr.guided_backprop(m, x, t).map,
        "Guided Grad-CAM": lambda m, x, t: xr.guided_grad_cam(m, x, t, layer=L).map,
        "occlusion": occlusion_map,
        "random map": random_map,
        "centre Gaussian": centre_gaussian,
    })
    return fns


def maps_of(fn, model, x, target) -> torch.Tensor:
    """fn on the batch, CHUNK images at a time, as float32 on the CPU."""
    target = torch.as_tensor(target)
    return torch.cat([fn(model, x[i:i + CHUNK], target[i:i + CHUNK]).detach().float().cpu()
                      for i in range(0, len(x), CHUNK)])


def cached(fn, x_ref: torch.Tensor, maps_ref: torch.Tensor):
    """fn, except that the batch x_ref (the very tensor) returns its precomputed maps."""
    return lambda m, x, t: maps_ref if x is x_ref else fn(m, x, t)


def accuracy(model, x) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i:i + 500]).argmax(1) for i in range(0, len(x), 500)])


def weights_file(name: str, weights_dir: Path | None) -> Path:
    return weights_dir / f"{name}.pt" if weights_dir else Path(str(weights_path(name)))


def load_model(name: str, weights_dir: Path | None = None):
    """A shapes net with the shipped weights (or those in ``weights_dir``), in eval mode."""
    path = weights_file(name, weights_dir)
    if not path.exists():
        sys.exit(f"no trained weights at {path}: train them first with `python -m xai_ref.training.shapes_nets {name}`")
    model = shapes_nets.BUILDERS[name.removesuffix("_biased")]()
    model.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
    return model.eval()


# --- Markdown helpers --------------------------------------------------------------------------------


def fmt(v, digits=3) -> str:
    if isinstance(v, str):
        return v.replace("|", "\\|")    # a pipe inside a cell would end it
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}"


def md_table(headers, rows) -> str:
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"
    lines = ["| " + " | ".join(fmt(h) for h in headers) + " |", rule]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(v) -> str:
    return f"{100 * v:.1f}"


# --- scores shared by claims 1 and 2 and by benchmarks/conditions.py ---------------------------------


def box_area(boxes) -> torch.Tensor:
    """Pixel area (x1 - x0)(y1 - y0) of (B,4) boxes with exclusive ends, float64."""
    boxes = torch.as_tensor(boxes)
    return ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).double()


def localization_scores(maps, data) -> dict:
    """Claim 1's numbers for one method's maps (B,H,W) of a one-object batch ``data`` (fractions in [0, 1]).

    box15 / box20: box accuracy (IoU >= 0.5) with the map thresholded at 15 % / 20 % of its range;
    iou15: mean IoU at 15 %; pointing: pointing-game accuracy (mean over classes); energy: share of the
    positive mass inside the true box; box_ratio15: the median over images of |predicted box| / |true box|
    at 15 % (> 1: the method draws boxes larger than the object).
    """
    l15 = metrics.localization(maps, data.box, fraction=0.15)
    l20 = metrics.localization(maps, data.box, fraction=0.20)
    return dict(box15=l15.accuracy, box20=l20.accuracy, iou15=l15.iou.mean().item(),
                pointing=metrics.pointing_game(maps, data.mask, data.label).accuracy,
                energy=metrics.energy_pointing(maps, data.box).mean().item(),
                box_ratio15=(box_area(l15.boxes) / box_area(data.box)).median().item())


def discrimination_scores(maps, two) -> dict:
    """Claim 2's numbers for one method on a two-object batch ``two``: ``maps`` = [maps of the first
    objects' classes, maps of the second objects' classes], each (B,H,W).

    right: share of maps whose maximum is a pointing hit on their own class's object and not on the other;
    both: share of images whose two maps are both right; ratio: mean over maps of
    E(own mask) / (E(own mask) + E(other mask)) with E the energy share (0.5 for a map with no mass on either).
    """
    right_only, ratio = [], []
    for k in (0, 1):
        hit = metrics.pointing_game(maps[k], two.masks[:, k]).hits
        other = metrics.pointing_game(maps[k], two.masks[:, 1 - k]).hits
        right_only.append(hit & ~other)
        e_right = metrics.energy_pointing(maps[k], two.masks[:, k])
        e_other = metrics.energy_pointing(maps[k], two.masks[:, 1 - k])
        ratio.append(torch.where(e_right + e_other > 0, e_right / (e_right + e_other).clamp(min=1e-12),
                                 torch.full_like(e_right, 0.5)))
    return dict(right=torch.cat(right_only).double().mean().item(),
                both=(right_only[0] & right_only[1]).double().mean().item(),
                ratio=torch.cat(ratio).mean().item())


def two_object_maps(fns, model, two) -> dict:
    """{method: [maps for the first objects' classes, maps for the second's]} on a two-object batch."""
    x = torch.from_numpy(two.images)
    return {meth: [maps_of(fn, model, x, torch.from_numpy(two.labels[:, k])) for k in (0, 1)]
            for meth, fn in fns.items()}


def either_accuracy(model, two) -> float:
    """Share of two-object images whose predicted class is one of the two objects'."""
    pred = accuracy(model, torch.from_numpy(two.images)).numpy()
    return float(((pred == two.labels[:, 0]) | (pred == two.labels[:, 1])).mean())


# --- the claims ------------------------------------------------------------------------------------


def claim1(ctx) -> str:
    out = ["### 1. Localization: weakly-supervised boxes and the pointing game",
           "",
           f"{ctx['n1']} one-object test images (seed {SEEDS['one']}), maps for the ground-truth class. "
           "Box accuracy: IoU >= 0.5 between the ground-truth box and the box around the largest connected "
           "component above 15% (Grad-CAM) or 20% (CAM) of the min-max normalised map. Pointing game: "
           "the map's maximum within 15 px at 224 (4.3 px at 64) of the object's mask, accuracy averaged "
           "over classes. Energy: share of the positive mass inside the box.", ""]
    verdicts = []
    for name in MODELS:
        d = ctx[name]
        rows = []
        for meth, maps in d["maps1"].items():
            s = localization_scores(maps, ctx["one"])
            d.setdefault("loc", {})[meth] = (s["box15"], s["pointing"])
            rows.append([meth, pct(s["box15"]), pct(s["box20"]), s["iou15"], pct(s["pointing"]), s["energy"]])
        out += [f"**{name}** (classification accuracy on these images: {pct(d['acc1'])}%)", "",
                md_table(["method", "box acc. @0.15 (%)", "box acc. @0.20 (%)", "mean IoU @0.15",
                          "pointing (%)", "energy in box"], rows), ""]
        gc, sal = d["loc"]["Grad-CAM"], d["loc"]["saliency"]
        verdicts.append(f"{name}: Grad-CAM {pct(gc[0])}% boxes / {pct(gc[1])}% pointing vs saliency (backprop) "
                        f"{pct(sal[0])}% / {pct(sal[1])}%")
    agree = all(ctx[n]["loc"]["Grad-CAM"][0] > ctx[n]["loc"]["saliency"][0] for n in MODELS)
    out.append(("**Agrees** with" if agree else "**Disagrees** with")
               + " the Grad-CAM paper (Grad-CAM localizes better than backprop, Table 1) on box accuracy: "
               + "; ".join(verdicts) + ".")
    return "\n".join(out)


def claim2(ctx) -> str:
    out = ["### 2. Class discrimination on two-object images", "",
           f"{ctx['n2']} two-object test images (seed {SEEDS['two']}; the models were trained on one object). "
           "For each image, one map per class present. *right*: the map's maximum is a pointing hit on that "
           "class's object and not within the tolerance of the other object; *both*: the maps of both classes "
           "of an image are right (the map moves with the class; a class-blind map can be right for at most "
           "one of the two); *energy ratio*: positive mass on the right mask / mass on both masks.", ""]
    summary = {}
    for name in MODELS:
        d = ctx[name]
        two = ctx["two"]
        rows = []
        for meth, maps in d["maps2"].items():
            s = discrimination_scores(maps, two)
            summary.setdefault(name, {})[meth] = s["both"]
            rows.append([meth, pct(s["right"]), pct(s["both"]), s["ratio"]])
        out += [f"**{name}** (prediction is one of the two classes on {pct(d['acc2'])}% of the images)", "",
                md_table(["method", "right (%)", "both classes (%)", "energy ratio"], rows), ""]
    gc = [summary[n]["Grad-CAM"] for n in MODELS]
    gb = [summary[n]["guided backprop"] for n in MODELS]
    margin = min(a - b for a, b in zip(gc, gb))
    verdict = ("**Agrees** with" if margin >= 0.10 else "**Partly agrees** with" if margin > 0
               else "**Disagrees** with")
    out.append(verdict + " the Grad-CAM paper (Grad-CAM is class-discriminative, guided backprop is not, Fig. 1): "
               + "maps of both classes right for " + ", ".join(
                   f"{n}: Grad-CAM {pct(a)}% vs guided backprop {pct(b)}%" for n, a, b in zip(MODELS, gc, gb))
               + ". Guided backprop is not class-blind on these small nets (its maps do move with the class), "
               "and its fine maps point well; Grad-CAM's advantage is the size of that gap, and the energy ratio.")
    return "\n".join(out)


COLUMNS3 = ("deletion", "insertion", "average drop", "increase in confidence", "AOPC", "ρ with occlusion")


def claim3(ctx) -> str:
    n = ctx["n3"]
    step = ctx["step"]
    out = ["### 3. Faithfulness: deletion / insertion, Average Drop / Increase, MoRF, occlusion", "",
           f"The first {n} images of claim 1, ground-truth class, softmax probabilities. Deletion (↓) and "
           f"insertion (↑) AUC (RISE): {step} pixels per step, deletion to black, insertion from a blur "
           "(sigma 5 px). Average Drop % (↓) and Increase in Confidence % (↑) (Grad-CAM++) on "
           f"E = image x normalised map. AOPC (↑) (Samek et al.): the {ctx['morf_steps']} most relevant 4x4 "
           "regions replaced one by one with uniform noise (seed 0). ρ occl. (↑): Spearman correlation with the "
           "occlusion map (Grad-CAM's faithfulness; 1 for occlusion itself by construction).", ""]
    beats = {}
    for name in MODELS:
        d = ctx[name]
        x, y = ctx["x3"], ctx["y3"]
        occ = d["maps1"]["occlusion"][:n]
        rows, res = [], {}
        for meth, maps in d["maps1"].items():
            maps = maps[:n]
            de = metrics.deletion(d["model"], x, maps, y, step=step).mean_auc
            ins = metrics.insertion(d["model"], x, maps, y, step=step).mean_auc
            ad = metrics.average_drop(d["model"], x, maps, y)
            morf = metrics.region_perturbation(d["model"], x, maps, y, region=4, steps=ctx["morf_steps"]).mean_aopc
            rho = metrics.occlusion_faithfulness(d["model"], x, maps, y, occlusion_maps=occ).mean().item()
            res[meth] = (de, ins, ad.average_drop, ad.increase_in_confidence, morf, rho)
            rows.append([meth, de, ins, f"{ad.average_drop:.1f}", f"{ad.increase_in_confidence:.1f}", morf, rho])
        log(f"claim 3: {name} done")
        rnd = res["random map"]
        lows = (True, False, True, False, False, False)
        for j, col in enumerate(COLUMNS3):
            worse = [m for m, v in res.items() if m != "random map"
                     and (v[j] > rnd[j] if lows[j] else v[j] < rnd[j])]
            beats.setdefault(col, []).extend(f"{m} ({name.split('_')[0]})" for m in worse)
        out += [f"**{name}**", "", md_table(["method", "deletion AUC ↓", "insertion AUC ↑", "avg drop % ↓",
                                             "increase % ↑", "AOPC ↑", "ρ occl. ↑"], rows), ""]
    clean = [c for c in COLUMNS3 if not beats[c]]
    failing = {c: b for c, b in beats.items() if b}
    if not failing:
        out.append("**Agrees** with RISE, Grad-CAM++ and Samek et al.: every method beats the random map on every "
                   "column, for both models.")
    else:
        out.append("Every method beats the random map on " + (", ".join(clean) if clean else "no column")
                   + " (**agrees** with RISE / Grad-CAM++ / Samek et al. there); it does **not** on "
                   + "; ".join(f"{c}: {', '.join(b)} do worse than random" for c, b in failing.items())
                   + ". Average Drop rewards smooth, spread-out maps: a sparse gradient map blacks out most of the "
                   "image in E = x ⊙ map, so the drop is large even when the pixels it keeps are the right ones.")
    return "\n".join(out)


def he_init(module) -> None:
    """The shapes nets' own initialisation (He et al. 2015, zero biases): "random" = as before training."""
    torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.nn.init.zeros_(module.bias)


def short(layer: str) -> str:
    return layer.replace("mlpconv", "m").replace("_conv", ".").replace("block", "b")


def claim4(ctx) -> str:
    n = ctx["n4"]
    out = ["### 4. Sanity checks: cascading model parameter randomization", "",
           f"The first {n} images of claim 1, ground-truth class. Layers re-initialised from the top down, "
           "cumulatively (re-drawn from the nets' own He initialisation, seeded), on a copy of the model. "
           "Entries: mean Spearman rank "
           "correlation of |map| with the trained model's |map| after randomizing down to that layer; then its "
           "mean over the cascade, Spearman without abs and SSIM when all layers are random, and the mean |ρ| "
           "over the independent (one layer at a time) randomizations. Near 1 = the map barely depends on the weights "
           "(fails the check). Occlusion on the first 4 images only (it costs 49 forward passes per image).", ""]
    survive = {}
    for name in MODELS:
        d = ctx[name]
        rows = []
        header = None
        for meth, fn in d["fns"].items():
            k = min(4, n) if meth == "occlusion" else n
            x, y = ctx["x4"][:k], ctx["y4"][:k]
            cas = metrics.model_randomization(d["model"], x, fn, y, mode="cascading", init=he_init)
            ind = metrics.model_randomization(d["model"], x, fn, y, mode="independent", init=he_init)
            header = header or (["method"] + [short(l) for l in cas.layers]
                                + ["mean |ρ|", "ρ all", "SSIM all", "indep. |ρ|"])
            absr = cas.spearman_abs.mean(1)
            rows.append([meth, *absr.tolist(), absr.mean().item(), cas.spearman[-1].mean().item(),
                         cas.ssim[-1].mean().item(), ind.spearman_abs.mean().item()])
            survive.setdefault(name, {})[meth] = absr.mean().item()
        log(f"claim 4: {name} done")
        out += [f"**{name}** (|ρ| after randomizing down to each layer, top first)", "", md_table(header, rows), ""]
    gb = [survive[n]["guided backprop"] for n in MODELS]
    ggc = [survive[n]["Guided Grad-CAM"] for n in MODELS]
    gc = [survive[n]["Grad-CAM"] for n in MODELS]
    sal = [survive[n]["saliency"] for n in MODELS]
    gb_ok = all(a > max(c, s) for a, c, s in zip(gb, gc, sal))
    ggc_ok = all(b > max(c, s) for b, c, s in zip(ggc, gc, sal))
    verdict = ("**Agrees** with" if gb_ok and ggc_ok else "**Partly agrees** with" if gb_ok or ggc_ok
               else "**Disagrees** with")
    out.append(verdict
               + " Adebayo et al. (guided backprop and Guided Grad-CAM are insensitive to the weights; gradients and "
               + "Grad-CAM are not): mean |ρ| over the cascade, " + "; ".join(
                   f"{n}: guided backprop {a:.2f}, Guided Grad-CAM {b:.2f}, Grad-CAM {c:.2f}, saliency {s:.2f}"
                   for n, a, b, c, s in zip(MODELS, gb, ggc, gc, sal))
               + f". Guided backprop {'survives' if gb_ok else 'does not survive'} the randomization of the top "
               "layers better than saliency and Grad-CAM; Guided Grad-CAM "
               + ("does too." if ggc_ok else "does not: its Grad-CAM factor changes with the weights, and takes it "
                  "along.")
               + " The random map and the centred Gaussian ignore the model, so they score 1: the check catches "
               "model-independent maps.")
    return "\n".join(out)


def biased_model(ctx):
    """The shipped biased model if there is one, else a nin_shapes trained here on the biased variant."""
    for name in ("nin_shapes", "vgg_shapes"):
        path = weights_file(f"{name}_biased", ctx["weights_dir"])
        if path.exists():
            return name, load_model(f"{name}_biased", ctx["weights_dir"]), f"shipped weights `{path.name}`"
    from xai_ref.training.shapes_nets import train

    name = "nin_shapes"
    cfg = ctx["biased_train"]
    log(f"claim 5: training {name} on the biased variant ({cfg})")
    model, _ = train(name, seed=0, biased=True, progress=False, test_size=500, **cfg)
    return name, model.eval(), (f"trained here: `train('{name}', seed=0, biased=True, epochs={cfg['epochs']}, "
                                f"images_per_epoch={cfg['images_per_epoch']})`")


def claim5(ctx) -> str:
    name, biased, how = biased_model(ctx)
    plain = ctx[name]["model"]
    test_b = ctx["biased"]                       # cue present, colour random
    xb = torch.from_numpy(test_b.images)
    xu = torch.from_numpy(ctx["unbiased"].images)
    agree = test_b.cue_labels == test_b.label
    rows = []
    res = {}
    for label, model in ((f"{name} (unbiased training)", plain), (f"{name} trained on the biased variant", biased)):
        acc_u = (accuracy(model, xu).numpy() == ctx["unbiased"].label).mean()
        pred = accuracy(model, xb).numpy()
        acc_b = (pred == test_b.label).mean()
        follows_cue = (pred == test_b.cue_labels)[~agree].mean()
        for meth in ("Grad-CAM", "CAM") if name.startswith("nin") else ("Grad-CAM",):
            fn = ctx[name]["fns"][meth]
            maps = maps_of(fn, model, xb, torch.from_numpy(pred))
            cue = metrics.energy_pointing(maps, test_b.cue_masks).mean().item()
            obj = metrics.energy_pointing(maps, test_b.mask).mean().item()
            pt = metrics.pointing_game(maps, test_b.cue_masks).overall
            res[(label, meth)] = cue
            rows.append([label, meth, pct(acc_u), pct(acc_b), pct(follows_cue), cue, obj, pct(pt)])
    out = ["### 5. Dataset bias: a model trained with a give-away cue", "",
           f"Biased model: {how}. In its training images a corner square's colour gives the class away. "
           f"Accuracy on {len(xu)} unbiased test images (seed {SEEDS['unbiased']}, no cue) and on "
           f"{len(xb)} biased test images (seed {SEEDS['biased']}: the cue is present but its colour is random); "
           "*follows cue*: share of the cue-label-disagreeing images predicted as the cue's colour. Maps for the "
           "predicted class on the biased test images: share of the positive mass on the cue (36 px, 0.9% of "
           "the image) and on the object, and how often the map's maximum points at the cue.", "",
           md_table(["model", "map", "acc. unbiased (%)", "acc. cue random (%)", "follows cue (%)",
                     "mass on cue", "mass on object", "max on cue (%)"], rows), ""]
    on_cue_biased = res[(f"{name} trained on the biased variant", "Grad-CAM")]
    on_cue_plain = res[(f"{name} (unbiased training)", "Grad-CAM")]
    ratio_ok = on_cue_biased > 2 * on_cue_plain
    out.append(("**Agrees** with" if ratio_ok else "**Disagrees** with")
               + " the Grad-CAM paper's bias experiment (sec. 6.3: Grad-CAM exposes that the biased model looks "
               "at the spurious cue): Grad-CAM's mass on the cue is "
               + f"{on_cue_biased:.3f} for the biased model vs {on_cue_plain:.3f} for the unbiased one.")
    return "\n".join(out)


def claim6(ctx) -> str:
    n = ctx["n6"]
    eps = ctx["eps"]
    transforms = [metrics.gaussian_noise(0.05, seed=0), metrics.rotation(10), metrics.translation(5, 3)]
    out = ["### 6. Robustness of the maps: noise, rotation, translation, adversarial images", "",
           f"The first {n} images of claim 1, ground-truth class. Similarity (Spearman ρ, SSIM) of the map of "
           "the transformed image to the transformed map, on the pixels valid in both: Gaussian noise sigma 0.05, "
           "rotation by 10°, translation by (5, 3) px, and an adversarial image (iterative FGSM, "
           f"L∞ eps = {eps * 255:.0f}/255, 10 steps, against the true class; the map is still asked for the true "
           "class, as in the Grad-CAM paper's sec. 6.2). *adv. pointing*: pointing-game accuracy of the map on "
           "the adversarial image (vs *clean pointing* on the original). Occlusion on the first 12 images only.", ""]
    adv_sim, adv_pt = {}, {}
    for name in MODELS:
        d = ctx[name]
        x, y = ctx["x6"], ctx["y6"]
        adv = metrics.fgsm(d["model"], x, y, epsilon=eps, steps=10)
        fooled = (accuracy(d["model"], adv) != y).double().mean().item()
        rows = []
        for meth, fn in d["fns"].items():
            k = min(12, n) if meth == "occlusion" else n
            xs, ys = x[:k], y[:k]
            f = cached(fn, xs, d["maps1"][meth][:k])
            row = [meth]
            for T in transforms:
                r = metrics.robustness(d["model"], xs, f, T, ys)
                row += [r.spearman.mean().item(), r.ssim.mean().item()]
            T_k = metrics.Transform("adversarial", lambda _x, a=adv[:k]: a, lambda m: m.clone())
            r = metrics.robustness(d["model"], xs, f, T_k, ys)
            adv_maps = maps_of(fn, d["model"], adv[:k], ys)
            pg_adv = metrics.pointing_game(adv_maps, ctx["one"].mask[:k], ys).overall
            pg = metrics.pointing_game(d["maps1"][meth][:k], ctx["one"].mask[:k], ys).overall
            row += [r.spearman.mean().item(), r.ssim.mean().item(), pct(pg), pct(pg_adv)]
            adv_sim.setdefault(name, {})[meth] = r.spearman.mean().item()
            if meth == "Grad-CAM":
                adv_pt[name] = pg_adv
            rows.append(row)
        log(f"claim 6: {name} done")
        out += [f"**{name}** (the adversarial images fool the model on {pct(fooled)}% of the images)", "",
                md_table(["method", "noise ρ", "noise SSIM", "rot. ρ", "rot. SSIM", "shift ρ", "shift SSIM",
                          "adv. ρ", "adv. SSIM", "clean pointing (%)", "adv. pointing (%)"], rows),
                ""]
    gc = [adv_sim[n]["Grad-CAM"] for n in MODELS]
    sal = [adv_sim[n]["saliency"] for n in MODELS]
    pts = [adv_pt[n] for n in MODELS]
    agree = all(g >= 0.5 and p >= 0.7 for g, p in zip(gc, pts))
    out.append(("**Agrees** with" if agree else "**Disagrees** with")
               + " the Grad-CAM paper (on an adversarial image the Grad-CAM map of the original class still "
               "localizes the object, sec. 6.2): Spearman ρ of the Grad-CAM map on the adversarial vs the clean "
               "image, and its adversarial pointing accuracy: "
               + ", ".join(f"{n} ρ {g:.2f} (saliency {s:.2f}), pointing {pct(p)}%"
                           for n, g, s, p in zip(MODELS, gc, sal, pts))
               + ", although the model is fooled on most images.")
    return "\n".join(out)


# --- main --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run on a few images; writes nothing")
    parser.add_argument("--weights", type=Path, default=None,
                        help="load NAME.pt (and NAME_biased.pt) from this folder instead of the shipped weights; "
                             "writes nothing")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    quick = args.quick
    ctx = dict(n1=24 if quick else 160, n2=16 if quick else 64, n3=8 if quick else 48, n4=4 if quick else 12,
               n6=8 if quick else 24, step=512, morf_steps=8 if quick else 24, eps=8 / 255,
               biased_train=dict(epochs=1, images_per_epoch=500) if quick else dict(epochs=3, images_per_epoch=4000))

    ctx["weights_dir"] = args.weights
    ctx["one"] = shapes.generate(ctx["n1"], SEEDS["one"], split="test")
    ctx["two"] = shapes.generate(ctx["n2"], SEEDS["two"], objects=2, split="test")
    ctx["biased"] = shapes.generate(ctx["n1"], SEEDS["biased"], biased=True, split="test")
    ctx["unbiased"] = shapes.generate(1000 if not quick else 100, SEEDS["unbiased"], split="test")
    x1, y1 = ctx["one"].to_torch()
    ctx["x3"], ctx["y3"] = x1[:ctx["n3"]], y1[:ctx["n3"]]
    ctx["x4"], ctx["y4"] = x1[:ctx["n4"]], y1[:ctx["n4"]]
    ctx["x6"], ctx["y6"] = x1[:ctx["n6"]], y1[:ctx["n6"]]

    for name in MODELS:
        model = load_model(name, args.weights)
        fns = method_table(name)
        d = ctx[name] = dict(model=model, fns=fns)
        d["acc1"] = (accuracy(model, x1) == y1).double().mean().item()
        d["acc2"] = either_accuracy(model, ctx["two"])
        d["maps1"] = {meth: maps_of(fn, model, x1, y1) for meth, fn in fns.items()}
        d["maps2"] = two_object_maps(fns, model, ctx["two"])
        log(f"maps of {name}: {len(fns)} methods on {len(x1)} + 2 x {len(ctx['two'])} images")

    sections = []
    for k, claim in enumerate((claim1, claim2, claim3, claim4, claim5, claim6), start=1):
        sections.append(claim(ctx))
        log(f"claim {k} done")
    total, cpu = time.perf_counter() - T0, time.process_time()
    body = "\n\n".join(sections) + (f"\n\nTotal runtime: {total:.0f} s wall clock, {cpu:.0f} s of CPU time "
                                     "(both threads; on a shared machine the wall clock is longer).")
    print(body)
    print(f"\ntotal runtime: {total:.1f} s wall clock, {cpu:.1f} s CPU")
    if not quick and args.weights is None:
        write_section("claims", "python benchmarks/claims.py", body)


if __name__ == "__main__":
    main()
