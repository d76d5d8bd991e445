"""Network Dissection of the shapes nets and textual explanations: writes the ``dissection`` section of
benchmarks/RESULTS.md.

* Which units get a concept, and which concepts, at 2-3 layers of ``nin_shapes`` and ``vgg_shapes`` and at
  the last layer of ``nin_shapes_biased`` (trained on images whose corner cue gives the class away: do its
  units name the cue?). Probe set: 500 test images, 64x64, q = 0.005, IoU floor 0.04.
* Textual explanations (Grad-CAM's alpha, top-3 units, their dissection names; CAM's w for the GAP nets):
  how often a named concept is present in the image (exact masks), for right and wrong predictions, on
  1000 other test images (biased ones for the biased net).

    python benchmarks/dissection.py
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._results import write_section  # noqa: E402
from xai_ref import models, textual  # noqa: E402
from xai_ref.data import concepts, shapes  # noqa: E402
from xai_ref.dissection import dissect  # noqa: E402

PROBE, TEST, TOP = 500, 1000, 3
LAYERS = {"nin_shapes": ["mlpconv2_relu2", "mlpconv3_relu2", "mlpconv4_relu2"],
          "vgg_shapes": ["block1_relu2", "block2_relu2", "block3_relu2"],
          "nin_shapes_biased": ["mlpconv4_relu2"]}


def biased(name: str) -> bool:
    return name.endswith("_biased")


def dissection_row(name: str, layer: str, t) -> str:
    named = [u for u in t.name if u.named]
    counts = Counter(u.name for u in named)
    listing = ", ".join(f"{c} {n}" for c, n in counts.most_common())
    mean_iou = np.mean([u.iou for u in named]) if named else float("nan")
    shape = "×".join(str(s) for s in t.A.shape[1:])
    return (f"| {name} | {layer} ({shape}) | {len(named)}/{len(t.name)} | {len(counts)} | {listing or '-'} "
            f"| {mean_iou:.3f} | {max(u.iou for u in t.name):.3f} |")


def textual_rows(name: str, model, t_dissect, by: str) -> list[str]:
    test = shapes.generate(TEST, seed=1, split="test", biased=biased(name))
    t = textual.explain(model, torch.from_numpy(test.images), t_dissect, n=TOP, by=by,
                        class_names=shapes.CLASSES, model_name=name)
    present = textual.presence(t, concepts.concepts(test))             # (TEST, TOP): 1, 0 or NaN (unnamed)
    right = t.meta["target"].numpy() == test.label
    cue = np.array([[t.units[k].name == "cue" for k in row] for row in t.top.tolist()])
    c = concepts.concepts(test)
    every_named = [c.names.index(u.name) for u in t.units if u.named]          # baseline: any named unit
    baseline = c.present[:, every_named].mean(1)
    rows = []
    for label, pick in (("right", right), ("wrong", ~right)):
        if not pick.any():
            rows.append(f"| {name} | {by} | {label} | 0 | - | - | - | - |")
            continue
        p = present[pick]
        rows.append(f"| {name} | {by} | {label} | {int(pick.sum())} | {100 * np.mean(~np.isnan(p)):.1f} % "
                    f"| {100 * np.nanmean(p):.1f} % | {100 * baseline[pick].mean():.1f} % "
                    f"| {100 * cue[pick].mean():.1f} % |")
    return rows


def main() -> None:
    torch.set_num_threads(1)
    start = time.perf_counter()
    table = ["| model | layer (K×h×w) | named units | concepts | named as (units) | mean IoU of named | best IoU |",
             "|---|---|---|---|---|---|---|"]
    text = ["| model | importance | prediction | images | top-3 units named | named concept present "
            "| any named unit's concept present | top units named 'cue' |", "|---|---|---|---|---|---|---|---|"]
    for name, layers in LAYERS.items():
        model = models.load(name)
        probe = shapes.generate(PROBE, seed=0, split="test", biased=biased(name))
        for layer in layers:
            t = dissect(model, layer, probe, progress=False)
            table.append(dissection_row(name, layer, t))
            print(table[-1], flush=True)
        for by in ("grad_cam", "cam") if name.startswith("nin") else ("grad_cam",):
            text += textual_rows(name, model, t, by)                # t: the last (deepest) layer dissected
            print("\n".join(text[-2:]), flush=True)
    body = f"""Network Dissection (Bau et al. 2017) of the shapes nets: every unit of a layer gets the concept whose
exact masks its top-quantile mask overlaps best (IoU over the probe set), if that IoU is above 0.04. Probe
set: {PROBE} test images, 64x64, one object each (`shapes.generate({PROBE}, seed=0, split="test")`, biased for
`nin_shapes_biased`); 17 concepts (6 shapes, 7 colours, edge, clutter, cue, background); q = 0.005.

{chr(10).join(table)}

Textual explanations (Selvaraju et al. 2017): the top-{TOP} units of the deepest dissected layer by Grad-CAM's
alpha (or CAM's w), named by the dissection above, for the predicted class of {TEST} other test images
(`seed=1`; biased images for the biased net). "Named concept present": of the named top units, the share
whose concept has at least one pixel in the image (exact masks); the baseline beside it: the same share
over all named units of the layer, important or not. "Named 'cue'": share of all top units named *cue*.

{chr(10).join(text)}

Total time {time.perf_counter() - start:.0f} s."""
    write_section("dissection", "python benchmarks/dissection.py", body)


if __name__ == "__main__":
    main()
