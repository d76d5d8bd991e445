"""The simulated observer of the human study (`xai_ref.study.observe`) over many seeded trials.

For each study and each method: ``--n`` trials (default 200) built by ``study.trials(n, seed, studies=s,
methods=(m,))``, so every method is asked about the same images; the observer answers from the exact
masks; the table gives its accuracy with the Wilson 95 % interval beside the paper's numbers (people looking
at the paper's own images, not an observer on shapes). Writes the ``human_study`` section of benchmarks/RESULTS.md and the
plot to benchmarks/_out/human_study.png.

Run: ``python benchmarks/human_study.py [--n N] [--seed S] [--no-write]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._results import write_section  # noqa: E402
from xai_ref import study  # noqa: E402

OUT = Path(__file__).with_name("_out")


def observe_all(n: int, seed: int) -> list[dict]:
    """The observer's records: ``n`` trials per (study, method)."""
    records = []
    for s in study.STUDIES:
        for m in study.METHODS:
            records += [study.record(t, study.observe(t)) for t in study.trials(n, seed, studies=s, methods=m)]
    return records


def paper_cell(s: str, m: str) -> str:
    """What the paper reports for this study and method, in words."""
    if (s, m) in study.PAPER:
        return f"{study.PAPER[s, m]:.2%} of people right"
    if s == "trust" and m in study.PAPER_TRUST_RATING:
        return f"mean rating {study.PAPER_TRUST_RATING[m]:+.2f} on −2…+2 (VGG-16 over AlexNet; not an accuracy)"
    return "—"


def table(scores: dict) -> str:
    lines = ["| study | method | observer accuracy | 95 % interval (Wilson) | n | paper (people) |",
             "|---|---|---:|---|---:|---|"]
    for (s, m), sc in scores.items():
        lines.append(f"| {s.replace('_', ' ')} | {study.METHOD_NAMES[m]} | {sc.accuracy:.1%} | "
                     f"{sc.low:.1%} – {sc.high:.1%} | {sc.n} | {paper_cell(s, m)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="trials per study and method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md as it is")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    scores = study.accuracy(observe_all(args.n, args.seed))
    seconds = time.perf_counter() - t0
    text = table(scores)
    print(text)
    OUT.mkdir(exist_ok=True)
    fig = study.plot(scores, title="Simulated observer on shapes")
    fig.savefig(OUT / "human_study.png", dpi=100)
    body = (
        "The simulated observer answers from the exact masks (`xai_ref.study.observe`). Class discrimination "
        "(two-object images, `vgg_shapes` explained for one object's class): it picks the class whose object "
        "holds more of the map's positive mass. Trust (biased train-split images on which `nin_shapes` and "
        "`nin_shapes_biased` both predict the label; right answer: `nin_shapes`): it trusts the model whose map "
        "puts the larger share of its positive mass on the object rather than on the cue or the background. "
        f"{args.n} trials per study and method (`study.trials(n={args.n}, seed={args.seed}, studies=s, "
        f"methods=m)`: the same images for every method); chance is 50 %. Total {seconds:.0f} s.\n\n"
        + text
        + "\n\nThe paper's numbers are people's answers about visualizations of AlexNet / VGG-16 on the "
          "paper's own images (the summaries of the paper this project holds do not name that image set), so "
          "they are a reference point, not a target: the observer reads the exact masks that a person has to "
          "guess."
    )
    if not args.no_write:
        write_section("human_study", f"python benchmarks/human_study.py --n {args.n} --seed {args.seed}", body)


if __name__ == "__main__":
    main()
