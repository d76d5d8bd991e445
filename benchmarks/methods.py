"""Speed of the methods: ours against Captum / torch-cam, and against the floor (the passes themselves).

For every model and method, the contenders compute the same output (checked equal before any timing:
``max |ours - theirs| <= 1e-5 max |theirs|``, as in tests/test_against_libraries.py). They then run
interleaved, A B C A B C ..., the order rotated every round, so that a slow moment of a shared machine
hits them all. Reported per contender: the median time and its spread (min-max over the rounds); per
comparison: the median over rounds of the ratio ours / other, measured in the same round.

The floor of each method is what it cannot avoid:

* CAM: the bare forward pass (no gradients);
* Grad-CAM: forward + backward from the class scores to the layer;
* saliency, deconvnet, guided backprop: forward + backward to the input (a ReLU rule changes what is
  passed down, not how much work it is);
* Guided Grad-CAM: forward + backward to the layer + backward to the input (above the layer the two
  backward passes follow different ReLU rules, so one cannot serve both);
* occlusion, deletion, insertion: the forward passes of the perturbed images alone, prebuilt, in the
  same batches.

The floors run on a copy of the model whose parameters do not require gradients, in the memory layout
ours uses: forward passes without gradients (CAM, the perturbation methods) in channels-last layout,
the fastest on a CPU; gradient passes in the layout the images come in, which keeps the gradients equal
to Captum's to the last bits (see `xai_ref.hooks.Hooks.watch`). The libraries get the model and the
images as a user has them.

Goals: ours <= 1.0x the faster of Captum and torch-cam; <= 1.10x the floor (CAM <= 1.05x). The NumPy
network of ``xai_ref.scratch`` (``vgg_shapes`` converted, batch 32, float64, forward + backward to the
input) within 3x of torch on the same float64 network. Memory: Grad-CAM on EfficientNet-Lite0 at batch 16
adds no more than the activations and gradients of its layer to a plain forward + backward (peak RSS,
each measured in a fresh process).

    python benchmarks/methods.py                # everything; writes the "methods" section of RESULTS.md
    python benchmarks/methods.py --quick        # 3 rounds, smaller perturbation runs; prints only
    python benchmarks/methods.py --only vgg_shapes
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from captum.attr import Deconvolution, GuidedBackprop, GuidedGradCam, LayerGradCam, Occlusion, Saliency
from torchcam.methods import CAM, GradCAM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import xai_ref as xr  # noqa: E402
from benchmarks._results import write_section  # noqa: E402
from xai_ref import metrics, models, scratch  # noqa: E402
from xai_ref.data import photos, shapes  # noqa: E402
from xai_ref.inputs import fast_layout  # noqa: E402

RTOL = 1e-5
GOAL_LIBRARY = 1.0
GOAL_FLOOR = {"CAM": 1.05}
GOAL_FLOOR_DEFAULT = 1.10
GOAL_NUMPY = 3.0


# --- the two settings -------------------------------------------------------------------------------


@dataclass
class Setting:
    name: str
    model: torch.nn.Module
    x: torch.Tensor
    layer: str                 # the CAM / Grad-CAM layer
    fc: str | None             # the linear layer after GAP (None: CAM does not apply)
    relu_only: bool            # Captum's guided / deconvnet rules hook nn.ReLU only
    window: int                # occlusion window and stride ((H - window) divisible by stride)
    stride: int
    step: int                  # deletion / insertion: pixels per step
    targets: list[int] = field(default_factory=list)
    bare: torch.nn.Module | None = None  # the floors' copy: no parameter requires a gradient

    def __post_init__(self):
        with torch.no_grad():
            self.targets = self.model(self.x).argmax(1).tolist()
        self.bare = copy.deepcopy(self.model).requires_grad_(False)


def lite0_setting(quick: bool) -> Setting:
    """16 photographs at 224 x 224: the five shipped photos, cycled, each with its own seeded noise."""
    names = ["chelsea", "coffee", "rocket", "astronaut", "cat_coffee"]
    base = torch.cat([photos.preprocess(photos.load(n)) for n in names])
    gen = torch.Generator().manual_seed(0)
    x = base[torch.arange(16) % len(names)] + 0.05 * torch.randn(16, 3, 224, 224, generator=gen)
    return Setting("efficientnet_lite0", models.load("efficientnet_lite0"), x, "head", "classifier", False,
                   window=112 if quick else 64, stride=56 if quick else 32, step=224 * 224 // (8 if quick else 16))


def vgg_setting(quick: bool) -> Setting:
    x = torch.from_numpy(shapes.generate(64, seed=11, split="test").images)
    return Setting("vgg_shapes", models.load("vgg_shapes"), x, "block3_relu2", None, True, window=16, stride=8,
                   step=512 if quick else 256)


# --- contenders ---------------------------------------------------------------------------------------


def leaf(x: torch.Tensor) -> torch.Tensor:
    return x.detach().clone().requires_grad_(True)


def layer_of(s: Setting) -> torch.nn.Module:
    return dict(s.model.named_modules())[s.layer]


def forward_to_layer(s: Setting, x: torch.Tensor):
    """The floors' forward pass with the layer's output kept by a forward hook; returns (y^c, A)."""
    kept = {}
    handle = dict(s.bare.named_modules())[s.layer].register_forward_hook(lambda m, a, out: kept.setdefault("A", out))
    try:
        out = s.bare(x)
    finally:
        handle.remove()
    return out.gather(1, torch.tensor(s.targets)[:, None])[:, 0], kept["A"]


def floor_forward(s: Setting):
    with torch.no_grad():
        return s.bare(fast_layout(s.x))


def floor_to_layer(s: Setting):
    y, A = forward_to_layer(s, leaf(s.x))
    return torch.autograd.grad(y.sum(), [A])[0]


def floor_to_input(s: Setting):
    x = leaf(s.x)
    out = s.bare(x)
    return torch.autograd.grad(out.gather(1, torch.tensor(s.targets)[:, None]).sum(), [x])[0]


def floor_to_layer_and_input(s: Setting):
    x = leaf(s.x)
    y, A = forward_to_layer(s, x)
    dA = torch.autograd.grad(y.sum(), [A], retain_graph=True)[0]
    return dA, torch.autograd.grad(y.sum(), [x])[0]


def occluded_batches(s: Setting) -> list[torch.Tensor]:
    """Every occluded copy of every image, in the batches both implementations use (one image's positions)."""
    B, C, H, W = s.x.shape
    corners = [(u, v) for u in range(0, H - s.window + 1, s.stride) for v in range(0, W - s.window + 1, s.stride)]
    batches = []
    for b in range(B):
        imgs = s.x[b].repeat(len(corners), 1, 1, 1)
        for p, (u, v) in enumerate(corners):
            imgs[p, :, u:u + s.window, v:v + s.window] = 0.0
        batches.append(fast_layout(imgs))
    return batches


def floor_forwards(batches: list[torch.Tensor], model: torch.nn.Module):
    with torch.no_grad():
        return [model(b) for b in batches]


def perturbation_batches(s: Setting, kind: str, maps: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """The deletion / insertion images (every step of every image), cut into batches of ``batch_size``."""
    B, C, H, W = s.x.shape
    N = H * W
    rank = torch.empty(B, N, dtype=torch.long)
    rank.scatter_(1, torch.argsort(-maps.flatten(1), dim=1, stable=True), torch.arange(N).expand(B, N))
    steps = -(-N // s.step)
    start, end = (s.x, torch.zeros_like(s.x)) if kind == "deletion" else (metrics.gaussian_blur(s.x, 5.0), s.x)
    images = [torch.where((rank[b] < min(k * s.step, N)).view(1, H, W), end[b], start[b])
              for b in range(B) for k in range(steps + 1)]
    return [fast_layout(torch.stack(images[i:i + batch_size])) for i in range(0, len(images), batch_size)]


@dataclass
class Row:
    """One method on one model: the contenders (name -> callable), which are checked equal to ours."""

    method: str
    contenders: dict[str, Callable]
    checked: dict[str, Callable] = field(default_factory=dict)   # name -> fn(output) -> tensor to compare
    note: str = ""


def rows_for(s: Setting, quick: bool) -> list[Row]:
    t, L, C = s.targets, s.layer, s.x.shape[1]
    xl = leaf(s.x)
    rows = []
    if s.fc is not None:
        def torchcam_cam():
            with CAM(s.model, L, s.fc) as extractor:
                with torch.no_grad():
                    scores = s.model(s.x)
                return extractor(t, scores, normalized=False)[0]
        rows.append(Row("CAM", {"ours": lambda: xr.cam(s.model, s.x, t, layer=L, fc=s.fc).M,
                                "torch-cam": torchcam_cam, "floor": lambda: floor_forward(s)},
                        {"torch-cam": lambda out: out}))

    def torchcam_grad_cam():
        with GradCAM(s.model, L) as extractor:
            return extractor(t, s.model(xl), normalized=False)[0]
    rows.append(Row("Grad-CAM", {
        "ours": lambda: xr.grad_cam(s.model, s.x, t, layer=L).L,
        "Captum": lambda: LayerGradCam(s.model, layer_of(s)).attribute(xl, target=t, relu_attributions=True)[:, 0],
        "torch-cam": torchcam_grad_cam,
        "floor": lambda: floor_to_layer(s)}, {"Captum": lambda o: o, "torch-cam": lambda o: o}))

    relu_note = "" if s.relu_only else "Captum's rules hook nn.ReLU only; this model uses ReLU6"
    guided_gc = {"ours": lambda: xr.guided_grad_cam(s.model, s.x, t, layer=L).guided}
    if s.relu_only:
        guided_gc["Captum"] = lambda: GuidedGradCam(s.model, layer_of(s)).attribute(xl, target=t,
                                                                                    interpolate_mode="bilinear")
    guided_gc["floor"] = lambda: floor_to_layer_and_input(s)
    rows.append(Row("Guided Grad-CAM", guided_gc, {"Captum": lambda o: o} if s.relu_only else {}, relu_note))

    rows.append(Row("saliency", {"ours": lambda: xr.saliency(s.model, s.x, t).grad,
                                 "Captum": lambda: Saliency(s.model).attribute(xl, target=t, abs=False),
                                 "floor": lambda: floor_to_input(s)}, {"Captum": lambda o: o}))
    for method, fn, captum_cls in [("deconvnet", xr.deconvnet, Deconvolution),
                                   ("guided backprop", xr.guided_backprop, GuidedBackprop)]:
        c = {"ours": (lambda fn=fn: fn(s.model, s.x, t).grad)}
        if s.relu_only:
            c["Captum"] = lambda cls=captum_cls: cls(s.model).attribute(xl, target=t)
        c["floor"] = lambda: floor_to_input(s)
        rows.append(Row(method, c, {"Captum": lambda o: o} if s.relu_only else {}, relu_note))

    batches = occluded_batches(s)
    P = batches[0].shape[0]
    rows.append(Row("occlusion", {
        "ours": lambda: xr.occlusion(s.model, s.x, t, window=s.window, stride=s.stride, batch_size=P).map,
        "Captum": lambda: Occlusion(s.model).attribute(s.x, sliding_window_shapes=(C, s.window, s.window),
                                                       strides=(C, s.stride, s.stride), target=t,
                                                       perturbations_per_eval=P)[:, 0],
        "floor": lambda: floor_forwards(batches, s.bare)}, {"Captum": lambda o: o},
        f"window {s.window}, stride {s.stride}: {P} positions per image, one forward pass per image"))

    maps = xr.grad_cam(s.model, s.x, t, layer=L).map
    batch_size = 64
    for kind, fn in [("deletion", metrics.deletion), ("insertion", metrics.insertion)]:
        pb = perturbation_batches(s, kind, maps, batch_size)
        n = sum(len(b) for b in pb)
        rows.append(Row(kind, {"ours": lambda fn=fn: fn(s.model, s.x, maps, t, step=s.step, batch_size=batch_size).scores,
                               "floor": lambda pb=pb: floor_forwards(pb, s.bare)}, {},
                        f"{s.step} pixels per step: {n} images in batches of {batch_size}; no library implements it"))
    return rows


# --- timing -------------------------------------------------------------------------------------------


def relative_difference(ours: torch.Tensor, ref: torch.Tensor) -> float:
    ours, ref = ours.detach().float(), ref.detach().float()
    if ours.shape != ref.shape:
        raise AssertionError(f"shapes differ: {tuple(ours.shape)} vs {tuple(ref.shape)}")
    return float((ours - ref).abs().max() / ref.abs().max().clamp(min=1e-30))


def run_row(row: Row, rounds: int) -> dict:
    """Check the outputs, then time the contenders interleaved; returns times (s) per contender per round."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # Captum warns about its own ReLU hooks
        ours = row.contenders["ours"]()
        diffs = {}
        for name, view in row.checked.items():
            diffs[name] = relative_difference(ours, view(row.contenders[name]()))
            if diffs[name] > RTOL:
                raise AssertionError(f"{row.method}: ours and {name} differ by {diffs[name]:.3g} (relative)")
        names = list(row.contenders)
        times = {n: [] for n in names}
        for r in range(rounds):
            for n in names[r % len(names):] + names[:r % len(names)]:
                t0 = time.perf_counter()
                row.contenders[n]()
                times[n].append(time.perf_counter() - t0)
    return {"times": times, "diffs": diffs}


def ratio(times: dict, a: str, b: str) -> tuple[float, float, float]:
    """Median, min and max over rounds of times[a] / times[b] (the same round)."""
    r = [x / y for x, y in zip(times[a], times[b])]
    return statistics.median(r), min(r), max(r)


def fmt_time(ts: list[float]) -> str:
    med = statistics.median(ts)
    unit, k = ("ms", 1e3) if med < 1 else ("s", 1)
    return f"{med * k:.{1 if unit == 's' else 0}f} {unit} ({min(ts) * k:.{1 if unit == 's' else 0}f}-{max(ts) * k:.{1 if unit == 's' else 0}f})"


def verdict(value: float, goal: float) -> str:
    return "ok" if value <= goal else "**over**"


def table_for(setting: str, results: list[tuple[Row, dict]]) -> tuple[str, list[str]]:
    lines = ["| method | ours | Captum | torch-cam | floor | ours / faster library | ours / floor | note |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    missed = []
    for row, res in results:
        t = res["times"]
        libs = [n for n in ("Captum", "torch-cam") if n in t]
        cells = [fmt_time(t[n]) if n in t else "n/a" for n in ("ours", "Captum", "torch-cam", "floor")]
        if libs:
            fastest = min(libs, key=lambda n: statistics.median(t[n]))
            m, lo, hi = ratio(t, "ours", fastest)
            lib_cell = f"{m:.2f}x ({lo:.2f}-{hi:.2f}) vs {fastest}: {verdict(m, GOAL_LIBRARY)}"
            if m > GOAL_LIBRARY:
                missed.append(f"{setting} {row.method}: {m:.2f}x {fastest} (goal {GOAL_LIBRARY:.2f}x)")
        else:
            lib_cell = "n/a"
        goal = GOAL_FLOOR.get(row.method, GOAL_FLOOR_DEFAULT)
        m, lo, hi = ratio(t, "ours", "floor")
        floor_cell = f"{m:.2f}x ({lo:.2f}-{hi:.2f}), goal {goal:.2f}: {verdict(m, goal)}"
        if m > goal:
            missed.append(f"{setting} {row.method}: {m:.2f}x its floor (goal {goal:.2f}x)")
        checked = ", ".join(f"= {n} ({d:.0e})" for n, d in res["diffs"].items())
        note = "; ".join(p for p in (checked, row.note) if p)
        lines.append(f"| {row.method} | " + " | ".join(cells) + f" | {lib_cell} | {floor_cell} | {note} |")
    return "\n".join(lines), missed


# --- NumPy against torch, float64 ----------------------------------------------------------------------


def numpy_vs_torch(rounds: int) -> tuple[str, list[str]]:
    vgg64 = copy.deepcopy(models.load("vgg_shapes")).double().eval()
    net = scratch.from_torch(vgg64)
    x = shapes.generate(32, seed=12, split="test").images.astype(np.float64)
    with torch.no_grad():
        targets = vgg64(torch.from_numpy(x)).argmax(1)
    onehot = np.eye(net.forward(x[:1]).shape[1])[targets.numpy()]

    def numpy_pass():
        net.forward(x)
        return net.backward(onehot)

    def torch_pass():
        xt = torch.from_numpy(x).requires_grad_(True)
        out = vgg64(xt)
        return torch.autograd.grad(out.gather(1, targets[:, None]).sum(), [xt])[0]

    diff = relative_difference(torch.from_numpy(numpy_pass()), torch_pass())
    assert diff < 1e-10, diff
    times = {"numpy": [], "torch": []}
    for r in range(rounds):
        for n, fn in ([("numpy", numpy_pass), ("torch", torch_pass)] if r % 2 == 0 else
                      [("torch", torch_pass), ("numpy", numpy_pass)]):
            t0 = time.perf_counter()
            fn()
            times[n].append(time.perf_counter() - t0)
    m, lo, hi = ratio(times, "numpy", "torch")
    text = ("| network | NumPy (`xai_ref.scratch`) | torch float64 | NumPy / torch | goal |\n|---|---:|---:|---:|---|\n"
            f"| vgg_shapes, batch 32, forward + backward to the input | {fmt_time(times['numpy'])} | "
            f"{fmt_time(times['torch'])} | {m:.2f}x ({lo:.2f}-{hi:.2f}) | <= {GOAL_NUMPY:.0f}x: "
            f"{'ok' if m <= GOAL_NUMPY else '**over**'} |\n\nThe two input gradients agree to {diff:.0e} (relative).")
    return text, ([] if m <= GOAL_NUMPY else [f"NumPy {m:.2f}x torch (goal {GOAL_NUMPY:.0f}x)"])


# --- memory: peak RSS in fresh processes ------------------------------------------------------------------


def status_kb(field: str) -> int:
    """A field of /proc/self/status in kB (VmRSS: resident memory now; VmHWM: its peak)."""
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field + ":"))
    return int(line.split()[1])


def memory_probe(what: str) -> dict:
    """Run in a fresh process: the peak resident memory added by one call of ``what`` on Lite0, batch 16.

    After the setup, freed memory goes back to the system (``malloc_trim``) and the peak is reset to the
    current RSS (writing 5 to /proc/self/clear_refs), so the peak after the call is the call's own."""
    import ctypes
    import gc

    torch.set_num_threads(1)
    s = lite0_setting(quick=True)
    with torch.no_grad():
        s.model(s.x)                                  # warm up: first-call allocations are not the method's
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    base = status_kb("VmRSS")
    if what == "forward+backward":
        floor_to_input(s)
    elif what == "forward+backward to the layer":
        floor_to_layer(s)
    elif what == "grad_cam":
        xr.grad_cam(s.model, s.x, s.targets, layer=s.layer)
    else:
        raise ValueError(what)
    peak = status_kb("VmHWM")
    y, A = forward_to_layer(s, s.x)
    return {"added_mb": (peak - base) / 1024, "layer_mb": 2 * A.numel() * A.element_size() / 2**20}


def memory(repeats: int) -> tuple[str, list[str]]:
    added = {}
    layer_mb = 0.0
    for what in ["forward+backward", "forward+backward to the layer", "grad_cam"]:
        runs = []
        for _ in range(repeats):
            out = subprocess.run([sys.executable, __file__, "--memory-probe", what], capture_output=True, text=True,
                                 check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            runs.append(res["added_mb"])
            layer_mb = res["layer_mb"]
        added[what] = runs
    fb = statistics.median(added["forward+backward"])
    gc = statistics.median(added["grad_cam"])
    ok = gc <= fb + layer_mb
    lines = ["| EfficientNet-Lite0, batch 16, one call | peak RSS added (MB), median (min-max) of "
             f"{repeats} fresh processes |", "|---|---:|"]
    for what, runs in added.items():
        lines.append(f"| {what} | {statistics.median(runs):.0f} ({min(runs):.0f}-{max(runs):.0f}) |")
    lines.append(f"\nActivations + gradients of the layer `head` (A and dY/dA): {layer_mb:.1f} MB. Grad-CAM adds "
                 f"{gc:.0f} MB against {fb:.0f} + {layer_mb:.1f} MB allowed: {'ok' if ok else '**over**'}.")
    return "\n".join(lines), ([] if ok else [f"Grad-CAM memory {gc:.0f} MB > {fb + layer_mb:.0f} MB"])


def rounds_for(setting: str, method: str, rounds: int) -> int:
    """More rounds where a call is short and noisy, fewer where one round takes minutes."""
    perturbation = method in ("occlusion", "deletion", "insertion")
    if setting == "vgg_shapes":
        return rounds if perturbation else 3 * rounds
    return max(3, rounds // 2) if perturbation else rounds


# --- main ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds, smaller perturbation runs; print only")
    ap.add_argument("--rounds", type=int, default=7, help="timing rounds per method (default 7)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--only", choices=["efficientnet_lite0", "vgg_shapes", "numpy", "memory"], action="append")
    ap.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe)))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = 3 if args.quick else args.rounds
    parts = ["all"] if not args.only else args.only
    t_start = time.perf_counter()
    body, missed = [], []
    for make in (vgg_setting, lite0_setting):
        s = make(args.quick)
        if "all" not in parts and s.name not in parts:
            continue
        results = []
        for row in rows_for(s, args.quick):
            n = rounds_for(s.name, row.method, rounds)
            print(f"[{time.perf_counter() - t_start:6.0f} s] {s.name} {row.method} ({n} rounds)", flush=True)
            results.append((row, run_row(row, n)))
        table, miss = table_for(s.name, results)
        body.append(f"### {s.name}, batch {s.x.shape[0]}, {s.x.shape[2]}x{s.x.shape[3]}, layer `{s.layer}`\n\n{table}")
        missed += miss
        print(body[-1], flush=True)
    if "all" in parts or "numpy" in parts:
        table, miss = numpy_vs_torch(rounds)
        body.append(f"### NumPy from scratch against torch, float64\n\n{table}")
        missed += miss
        print(body[-1], flush=True)
    if "all" in parts or "memory" in parts:
        table, miss = memory(3)
        body.append(f"### Memory: Grad-CAM against a plain forward + backward\n\n{table}")
        missed += miss
        print(body[-1], flush=True)
    intro = (f"Times: median (min-max) over interleaved rounds: {rounds} per method; {3 * rounds} for the gradient "
             f"methods on vgg_shapes (0.1-0.3 s each, and noisy); {max(3, rounds // 2)} for the perturbation methods "
             "on EfficientNet-Lite0 (up to 90 s each). Ratios: median (min-max) over rounds of ours / other in the "
             "same round. "
             "Every library output was checked equal to ours first (relative difference in the note). "
             f"Total {time.perf_counter() - t_start:.0f} s.")
    summary = "Goals missed: " + "; ".join(missed) + "." if missed else "Every goal met."
    text = intro + "\n\n" + "\n\n".join(body) + "\n\n" + summary
    if not args.quick and not args.only:
        command = "python benchmarks/methods.py" + (f" --threads {args.threads}" if args.threads else "")
        write_section("methods", command, text)
    print(summary)


if __name__ == "__main__":
    main()
