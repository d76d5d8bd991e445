"""The compatibility table: every public method on small replicas of the common model families.

For each method x family (`tests/replicas.py`), `tests/test_compat.py`'s ``measure`` runs the method as a
user would (float64) and compares it with every independent reference that applies: Captum, torch-cam,
Grad-CAM by hand, the deconvnet / guided rules swapped in as modules, the ``nn.ReLU`` twin of a model
whose ReLUs are function calls, the single-output twin of a model with a structured output. A cell is
one of "= <references> (max relative error)", "refused: <reason>" or "warns: <activations>" plus its
agreement. The tests assert exactly these cells; this script writes them as a table.

    python benchmarks/compat.py      # writes the "compat" section of benchmarks/RESULTS.md and the README's table
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks._results import write_section  # noqa: E402
from replicas import FAMILIES  # noqa: E402
from test_compat import METHODS, TOL, Cell, measure  # noqa: E402

README = ROOT / "README.md"
SHORT = {"Captum": "Captum", "torch-cam": "torch-cam", "nn.ReLU twin": "nn.ReLU twin",
         "Captum on the twin": "Captum on twin", "ReLU rules swapped in": "swapped-in rules",
         "by hand": "by hand", "by hand on the token grid": "by hand (token grid)",
         "paper on torch-cam's A, dy/dA": "torch-cam's A, dy/dA", "single-output twin": "single-output twin",
         "callable target": "callable target", "softmax of the model at step 0": "softmax at step 0"}


def short(cell: Cell) -> str:
    """A table cell: the references it equals and the largest relative error, or the refusal."""
    if cell.outcome == "refused":
        return "refused: " + cell.notes[0]
    error = max(err for _, err, _ in cell.checks)
    agrees = "= " + ", ".join(SHORT[label] for label, _, _ in cell.checks) + f" ({error:.0e})".replace("0e+00", "0")
    return agrees if cell.outcome == "agrees" else f"warns ({cell.notes[0].split(' at ')[1]}); {agrees}"


def table(cells: dict[tuple[str, str], Cell]) -> str:
    """Families as rows, methods as columns, then the notes on peers that disagree."""
    lines = ["| family | pattern | " + " | ".join(f"`{m}`" for m in METHODS) + " |",
             "|---|---|" + "---|" * len(METHODS)]
    for name, fam in FAMILIES.items():
        lines.append(f"| `{name}` | {fam.pattern} | " + " | ".join(short(cells[m, name]) for m in METHODS) + " |")
    notes = [f"- `{m}` on `{n}`: {note}" for (m, n), cell in cells.items()
             for note in (cell.notes if cell.outcome == "agrees" else cell.notes[1:])]
    return "\n".join(lines + ["", "Where a peer library gives something else:", ""] + notes)


LEGEND = f"""Every public method on small randomly initialised replicas of the common families
(`tests/replicas.py`, input 3x32x32, 5 classes), float64. `= A, B (e)`: equal to each reference A, B...,
`e` the largest `max |ours - ref| / max |ref|`; tolerance {TOL:g}, except occlusion vs Captum and
XGrad-CAM vs torch-cam, 1e-6 (Captum's float64 occlusion is about 3e-8 off the drops computed by hand,
which ours equal to 1e-14; torch-cam adds 1e-8 to XGrad-CAM's denominator). References: Captum 0.9.0,
torch-cam 0.5.0, Grad-CAM and occlusion by hand,
`swapped-in rules` (the deconvnet / guided rules written again as an autograd Function swapped in for
every `nn.ReLU` / `nn.ReLU6`), the `nn.ReLU twin` of a model whose ReLUs are function calls, the
`single-output twin` of a model with a structured output (class target with `logits=`, and a callable
target on the raw output), and Captum / torch-cam on the out-of-place twin of the model that normalises
its input in place. Grad-CAM on the ViT runs at a block's tokens with `reshape=xr.token_grid`. In every
cell (tests/test_compat.py) the result is the same inside `torch.no_grad()` and `torch.inference_mode()`,
and the model (hooks, modes, ReLU flags, `requires_grad`, `.grad`) and the input are left as they were.
`deletion` is `xai_ref.metrics.deletion` on the saliency map."""


def write_readme(body: str) -> None:
    """Replace what is between the README's compat markers (and nothing else)."""
    text = README.read_text()
    pattern = re.compile(r"(<!-- compat:start[^>]*-->\n).*?(<!-- compat:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit("README.md has no <!-- compat:start ... --> / <!-- compat:end --> markers")
    README.write_text(pattern.sub(lambda m: m.group(1) + body.strip() + "\n" + m.group(2), text))


def main() -> None:
    torch.set_num_threads(1)
    cells = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # peers' warnings; ours are recorded by measure()
        for method, name in tqdm([(m, n) for m in METHODS for n in FAMILIES], desc="method x family"):
            cells[method, name] = measure(method, name)
    body = LEGEND + "\n\n" + table(cells)
    print(body)
    write_section("compat", "python benchmarks/compat.py", body)
    write_readme(body)


if __name__ == "__main__":
    main()
