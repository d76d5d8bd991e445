"""The measured results the lessons quote, found through the package: the files that the scripts in the
repository's ``benchmarks/`` folder write (JSON tables, plots, ``RESULTS.md``).

>>> from xai_ref import results
>>> sorted(results.load("conditions.json"))[:2]          # doctest: +SKIP
['config', 'runs']

A lesson reads them with `load` or `path` instead of a relative path like ``../benchmarks/...``, so it works
from any folder. They ship with the repository (the README installs it editable, ``pip install -e .``), not
inside the package.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["FOLDER", "load", "path"]

#: Where the results are: the repository's benchmarks folder, next to the package.
FOLDER = Path(__file__).resolve().parents[1] / "benchmarks"


def path(name: str) -> Path:
    """The results file ``name`` (e.g. ``"conditions.json"``, ``"RESULTS.md"``): FileNotFoundError, saying
    why and how to fix it, when it is not there.

    Lesson: ``lessons/07_evaluating_explanations.ipynb``.
    """
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise ValueError(f"name must be a file name in the benchmarks folder, e.g. 'conditions.json', got {name!r}")
    file = FOLDER / name
    if not file.is_file():
        raise FileNotFoundError(f"no results file {name!r} in {FOLDER}: the results ship with the repository; "
                                "install it editable (pip install -e . in the checkout), or run the benchmark "
                                "script that writes it (benchmarks/*.py)")
    return file


def load(name: str):
    """The JSON results file ``name``, parsed.

    Lesson: ``lessons/06_attention_transfer.ipynb``.
    """
    return json.loads(path(name).read_text())
