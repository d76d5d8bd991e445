"""Human studies of explanations (Selvaraju et al., Grad-CAM, ICCV 2017, section 5), on the shapes data.

The paper asks people two questions about a visualization:

* **Class discrimination.** An image holds two objects of different classes; a visualization is made for
  one of them. "Which of the two classes is it showing?" (Guided Backprop: 44.44 % right, Guided
  Grad-CAM: 61.23 %.)
* **Trust.** Two models make the same (right) prediction; each one's visualization is shown, labelled
  "model A" / "model B" in random order. "Which model would you trust more?" The paper asked this of
  AlexNet vs VGG-16 on a 5-point scale; here the answer is right or wrong, because on the shapes data we
  know which model is stronger: ``nin_shapes`` looks at the object, ``nin_shapes_biased`` was trained on
  images whose corner cue gives the class away.

This module has three parts:

1. **Trials** (`trials`): a quiz is a pure function of ``(seed, n)``; every trial records how to rebuild
   its image (``shapes.generate(1, seed=image_seed, **IMAGE_ARGS[study])``), the method and the order of
   the models. `maps` computes a trial's visualizations with the library's own methods.
2. **A simulated observer** (`observe`): answers from the exact masks, a baseline for what a map shows.
3. **Pooling** (`save`, `load`, `load_all`, `accuracy`, `wilson`, `plot`): one JSON file per student,
   validated, pooled into accuracy per method and study with a Wilson 95 % interval. NumPy alone (the
   plot uses matplotlib).

>>> from xai_ref import study
>>> quiz = study.trials(10, seed=0)                       # 10 class-discrimination + 10 trust trials
>>> records = [study.record(t, study.observe(t)) for t in quiz]
>>> scores = study.accuracy(records)                      # {(study, method): Score(n, correct, ...)}
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from . import models
from .backprop import deconvnet, guided_backprop, saliency
from .cam import grad_cam, guided_grad_cam
from .checks import as_count, as_number, as_seed
from .data import shapes

#: The two studies, in the order a quiz runs them.
STUDIES = ("class_discrimination", "trust")

#: The methods a trial may show (name -> the library's function), and how a report names them.
METHODS = {"guided_backprop": guided_backprop, "guided_grad_cam": guided_grad_cam, "grad_cam": grad_cam,
           "saliency": saliency, "deconvnet": deconvnet}
METHOD_NAMES = {"guided_backprop": "Guided Backprop", "guided_grad_cam": "Guided Grad-CAM",
                "grad_cam": "Grad-CAM", "saliency": "saliency", "deconvnet": "deconvnet"}

#: The paper's class-discrimination accuracies (Selvaraju et al. 2017, section 5.1), as fractions.
PAPER = {("class_discrimination", "guided_backprop"): 0.4444,
         ("class_discrimination", "guided_grad_cam"): 0.6123}

#: The paper's trust study (section 5.2) is not an accuracy: people rated VGG-16 against AlexNet on a scale
#: from -2 (AlexNet clearly more reliable) to +2 (VGG-16 clearly more reliable); the mean ratings.
PAPER_TRUST_RATING = {"guided_backprop": 1.00, "guided_grad_cam": 1.27}

#: Chance: each question has two answers.
CHANCE = 0.5

#: How a study's images are made: ``shapes.generate(1, seed=trial.image_seed, **IMAGE_ARGS[study])``.
IMAGE_ARGS = {"class_discrimination": {"objects": 2}, "trust": {"biased": True, "split": "train"}}

#: The answer buttons of the trust study.
MODEL_CHOICES = ("model A", "model B")

#: z for a two-sided 95 % interval: the 0.975 quantile of the standard normal distribution.
Z95 = 1.959963984540054

#: What a saved file says it is, and its layout's version.
FORMAT, VERSION = "xai-ref human study", 1


# --- 1. trials ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    """One question of a quiz.

    ``study``: one of `STUDIES`. ``index``: its place in the quiz (0-based). ``image_seed``: the image is
    ``shapes.generate(1, seed=image_seed, **IMAGE_ARGS[study])``. ``method``: a key of `METHODS` (hidden
    from the student). ``choices``: the two answers offered (two class names in alphabetical order, or
    `MODEL_CHOICES`). ``answer``: the right one. ``target``: the class explained. ``models``: the model
    explained (class discrimination), or the models shown as A and as B (trust).

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """

    study: str
    index: int
    image_seed: int
    method: str
    choices: tuple[str, str]
    answer: str
    target: int
    models: tuple[str, ...]


def trials(n: int, seed: int = 0, studies=STUDIES, methods=tuple(METHODS), model: str = "vgg_shapes",
           strong: str = "nin_shapes", weak: str = "nin_shapes_biased") -> list[Trial]:
    """The quiz: ``n`` trials of each study in ``studies``, in that order; a pure function of the arguments.

    Each study draws from its own random stream ``default_rng([seed, study number])``, one candidate at a
    time: an image seed and a coin (which object is explained, or whether the stronger model is shown as
    A). The methods are **balanced**: every block of ``len(methods)`` consecutive trials of a study shows
    each method once, in a random order (its own stream, ``default_rng([seed, study number, 1])``), so
    ``n`` trials give each method ``n // len(methods)`` or one more. The images depend on the seed and the
    number of methods, not on which methods. The first trials of a longer quiz are the same as a shorter
    quiz's. Class discrimination explains ``model``'s score for the chosen object's class. Trust
    keeps only the images on which ``strong`` and ``weak`` both predict the object's class.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    n, seed = as_count(n, "n"), as_seed(seed)
    studies, methods = _names(studies, "studies", STUDIES), _names(methods, "methods", tuple(METHODS))
    out: list[Trial] = []
    for s in studies:
        rng = np.random.default_rng([seed, STUDIES.index(s)])
        balanced = _Balanced(seed, STUDIES.index(s), methods)
        if s == "class_discrimination":
            out += _discrimination_trials(n, rng, methods, model, len(out), balanced)
        else:
            out += _trust_trials(n, rng, methods, strong, weak, len(out), balanced)
    return out


def _names(values, name: str, valid: tuple) -> tuple[str, ...]:
    """A non-empty tuple of distinct names from ``valid`` (a single name is accepted as a tuple of one)."""
    values = (values,) if isinstance(values, str) else tuple(values)
    bad = [v for v in values if v not in valid]
    if not values or bad or len(set(values)) != len(values):
        raise ValueError(f"{name} must be distinct names from {valid}, got {values!r}")
    return values


def _candidate(rng: np.random.Generator, methods: tuple[str, ...]) -> tuple[int, str, int]:
    """One draw: (image seed, method, coin in {0, 1})."""
    return int(rng.integers(2**31)), methods[int(rng.integers(len(methods)))], int(rng.integers(2))


class _Balanced:
    """The methods of a study's trials, balanced: every block of ``len(methods)`` consecutive trials shows
    each method once, in a random order from its own stream (so the images do not depend on that order)."""

    def __init__(self, seed: int, study_number: int, methods: tuple[str, ...]):
        self.rng, self.methods, self.block = np.random.default_rng([seed, study_number, 1]), methods, []

    def method(self, i: int) -> str:
        if i % len(self.methods) == 0:
            self.block = [self.methods[j] for j in self.rng.permutation(len(self.methods))]
        return self.block[i % len(self.methods)]


def _discrimination_trials(n, rng, methods, model, start, balanced) -> list[Trial]:
    load_model(model)                                     # an unknown name fails here, not in the middle of a quiz
    out = []
    for i in range(n):
        image_seed, _, k = _candidate(rng, methods)
        method = balanced.method(i)
        b = shapes.generate(1, seed=image_seed, **IMAGE_ARGS["class_discrimination"])
        names = [b.classes[c] for c in b.labels[0]]
        out.append(Trial("class_discrimination", start + i, image_seed, method, tuple(sorted(names)), names[k],
                         int(b.labels[0, k]), (model,)))
    return out


def _trust_trials(n, rng, methods, strong, weak, start, balanced) -> list[Trial]:
    if strong == weak:
        raise ValueError(f"strong and weak must be two different models, got {strong!r} twice")
    out, tries = [], 0
    while len(out) < n:
        tries += 1
        if tries > 20 * n + 100:
            raise ValueError(f"the models strong={strong!r} and weak={weak!r} agree with the label on too few "
                             "images; pass two models that both classify the biased shapes well")
        image_seed, _, a_is_weak = _candidate(rng, methods)
        b = shapes.generate(1, seed=image_seed, **IMAGE_ARGS["trust"])
        label = int(b.label[0])
        with torch.no_grad():
            preds = [int(load_model(m)(torch.from_numpy(b.images)).argmax(1)[0]) for m in (strong, weak)]
        if preds != [label, label]:
            continue
        method = balanced.method(len(out))
        shown = (weak, strong) if a_is_weak else (strong, weak)
        out.append(Trial("trust", start + len(out), image_seed, method, MODEL_CHOICES,
                         MODEL_CHOICES[shown.index(strong)], label, shown))
    return out


@lru_cache(maxsize=None)
def load_model(name: str) -> torch.nn.Module:
    """``models.load(name)``, loaded once per process (every trial of a quiz shares it)."""
    return models.load(name)


def image(trial: Trial) -> shapes.ShapesBatch:
    """The trial's image with its exact masks: a batch of one.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    return shapes.generate(1, seed=trial.image_seed, **IMAGE_ARGS[trial.study])


def maps(trial: Trial) -> list[np.ndarray]:
    """The visualizations the trial shows: ``(H, W)`` float arrays, raw (``trace.map``), one per model in
    ``trial.models`` (one for class discrimination; A then B for trust), all for class ``trial.target``.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    x = torch.from_numpy(image(trial).images)
    explain = METHODS[trial.method]
    return [explain(load_model(m), x, trial.target).map[0].detach().numpy() for m in trial.models]


# --- 2. the simulated observer --------------------------------------------------------------------------


def observe(trial: Trial, shown: list[np.ndarray] | None = None) -> str:
    """The simulated observer's answer to ``trial`` (``shown``: its maps, computed when not given).

    With ``M⁺ = max(M, 0)`` the positive part of a map and ``m_k`` an object's exact mask:

    * class discrimination: pick the class whose object holds more positive mass,
      ``argmax_k Σ_xy M⁺(x, y) m_k(x, y)``;
    * trust: trust the model whose map puts the larger share of its positive mass on the object,
      ``share = Σ_xy M⁺ m / Σ_xy M⁺`` (the rest lies on the cue or the background).

    A tie (e.g. two all-zero maps) gives the first choice.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    shown = maps(trial) if shown is None else shown
    b = image(trial)
    positive = [np.maximum(m, 0) for m in shown]
    if trial.study == "class_discrimination":
        mass = [float((positive[0] * mask).sum()) for mask in b.masks[0]]
        names = [b.classes[c] for c in b.labels[0]]
        return trial.choices[0] if mass[0] == mass[1] else names[int(np.argmax(mass))]
    share = [float((p * b.mask[0]).sum()) / max(float(p.sum()), 1e-30) for p in positive]
    return MODEL_CHOICES[1] if share[1] > share[0] else MODEL_CHOICES[0]


# --- 3. records, files and pooling (NumPy only) ---------------------------------------------------------


def record(trial: Trial, answer: str, seconds: float | None = None) -> dict:
    """The record of one answer: what a saved file holds for each trial (``seconds``: time taken, optional).

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    if answer not in trial.choices:
        raise ValueError(f"answer must be one of the trial's choices {trial.choices}, got {answer!r}")
    r = {"study": trial.study, "trial": trial.index, "image_seed": trial.image_seed, "method": trial.method,
         "choices": list(trial.choices), "models": list(trial.models), "true_answer": trial.answer,
         "answer": answer, "correct": answer == trial.answer}
    if seconds is not None:
        r["seconds"] = round(as_number(seconds, "seconds", 0.0), 2)
    return r


def save(path, student: str, records: list[dict], seed: int, n_trials: int) -> None:
    """Write one student's answers as JSON: ``{"format", "version", "student", "seed", "n_trials",
    "records": [...]}`` (``n_trials``: the trials per study of the quiz they took). Checked as `load` checks.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    data = {"format": FORMAT, "version": VERSION, "student": student, "seed": seed, "n_trials": n_trials,
            "records": list(records)}
    _check_file(data, str(path))
    Path(path).write_text(json.dumps(data, indent=1) + "\n")


def load(path) -> dict:
    """One student's file, checked: a ValueError names the file and the field when anything is wrong.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a JSON file ({e})") from None
    _check_file(data, str(path))
    return data


def load_all(paths) -> list[dict]:
    """Every record of the files ``paths`` (a path or a list of paths), each with its ``"student"`` added.
    Two files of the same student are refused: pooling would count that student twice.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise ValueError("paths is empty: pass the students' JSON files, e.g. sorted(Path('answers').glob('*.json'))")
    seen: dict[str, str] = {}
    out = []
    for p in paths:
        data = load(p)
        if data["student"] in seen:
            raise ValueError(f"{p}: student {data['student']!r} also answered in {seen[data['student']]}; "
                             "keep one file per student")
        seen[data["student"]] = str(p)
        out += [{**r, "student": data["student"]} for r in data["records"]]
    return out


_TOP = {"format": str, "version": int, "student": str, "seed": int, "n_trials": int, "records": list}
_RECORD = {"study": str, "trial": int, "image_seed": int, "method": str, "choices": list, "models": list,
           "true_answer": str, "answer": str, "correct": bool}


def _check_file(data, where: str) -> None:
    """Raise a ValueError naming ``where`` and the field unless ``data`` is a valid study file."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object with fields {list(_TOP)}, got {type(data).__name__}")
    _check_fields(data, _TOP, where)
    if data["format"] != FORMAT or data["version"] != VERSION:
        raise ValueError(f"{where}: format/version must be {FORMAT!r}/{VERSION}, got "
                         f"{data['format']!r}/{data['version']!r}: not a quiz file of this version")
    if not data["student"].strip():
        raise ValueError(f"{where}: field 'student' is empty; every file needs the student's name or id")
    for name, low in (("seed", 0), ("n_trials", 1)):
        if data[name] < low:
            raise ValueError(f"{where}: field {name!r} must be >= {low}, got {data[name]}")
    seen = set()
    for i, r in enumerate(data["records"]):
        _check_record(r, f"{where}: records[{i}]")
        if r["trial"] in seen:
            raise ValueError(f"{where}: records[{i}].trial = {r['trial']} appears twice; one answer per trial")
        seen.add(r["trial"])


def _check_fields(data: dict, fields: dict, where: str) -> None:
    for name, kind in fields.items():
        if name not in data:
            raise ValueError(f"{where}: missing field {name!r}")
        v = data[name]
        if not (isinstance(v, numbers.Integral) and not isinstance(v, bool) if kind is int else isinstance(v, kind)):
            raise ValueError(f"{where}: field {name!r} must be {kind.__name__}, got {v!r}")


def _check_record(r, where: str) -> None:
    if not isinstance(r, dict):
        raise ValueError(f"{where}: expected an object with fields {list(_RECORD)}, got {type(r).__name__}")
    _check_fields(r, _RECORD, where)
    if r["study"] not in STUDIES:
        raise ValueError(f"{where}: field 'study' must be one of {STUDIES}, got {r['study']!r}")
    if r["method"] not in METHODS:
        raise ValueError(f"{where}: field 'method' must be one of {tuple(METHODS)}, got {r['method']!r}")
    if r["trial"] < 0 or r["image_seed"] < 0:
        raise ValueError(f"{where}: fields 'trial' and 'image_seed' must be >= 0")
    if len(r["choices"]) != 2 or not all(isinstance(c, str) for c in r["choices"]):
        raise ValueError(f"{where}: field 'choices' must be two strings, got {r['choices']!r}")
    for name in ("true_answer", "answer"):
        if r[name] not in r["choices"]:
            raise ValueError(f"{where}: field {name!r} must be one of the choices {r['choices']}, got {r[name]!r}")
    if r["correct"] != (r["answer"] == r["true_answer"]):
        raise ValueError(f"{where}: field 'correct' is {r['correct']} but answer {r['answer']!r} "
                         f"{'=' if r['answer'] == r['true_answer'] else '!'}= true_answer {r['true_answer']!r}")
    s = r.get("seconds")
    if s is not None and (isinstance(s, bool) or not isinstance(s, numbers.Real) or not 0 <= s < math.inf):
        raise ValueError(f"{where}: field 'seconds' must be a number >= 0 (time taken), got {s!r}")


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a proportion: ``correct`` right answers out of ``n``.

    With ``p = correct / n``::

        centre    = (p + z² / 2n) / (1 + z² / n)
        half      = z / (1 + z² / n) · sqrt(p (1 − p) / n + z² / 4n²)
        interval  = (centre − half, centre + half)

    It is the set of true accuracies ``π`` for which ``|p − π| <= z sqrt(π (1 − π) / n)``, so it stays in
    ``[0, 1]`` and is sensible for small ``n`` and for ``p`` = 0 or 1, where the textbook ``p ± z sqrt(p (1 − p) / n)``
    collapses to a point. ``z = 1.96`` gives 95 %.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    n = as_count(n, "n", 1)
    correct = as_count(correct, "correct", 0, n)
    z = as_number(z, "z", 0.0, low_open=True)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if correct == 0 else centre - half      # exactly 0 and 1 at the ends, not 1e-17 off by rounding
    high = 1.0 if correct == n else centre + half
    return low, high


@dataclass(frozen=True)
class Score:
    """Accuracy of one group of answers: ``correct`` of ``n``, and its Wilson interval ``(low, high)``.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """

    n: int
    correct: int
    accuracy: float
    low: float
    high: float


_GROUPS = ("study", "method", "student")


def accuracy(records: list[dict], by=("study", "method"), z: float = Z95) -> dict[tuple, Score]:
    """Accuracy per group: ``{key: Score}``, ``key`` the records' values of the fields ``by`` (a tuple of
    "study", "method", "student"), ordered as `STUDIES` and `METHODS`, students alphabetically.
    ``records``: from `load_all`, or `record` dicts.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    by = (by,) if isinstance(by, str) else tuple(by)
    if not by or any(f not in _GROUPS for f in by):
        raise ValueError(f"by must be field names from {_GROUPS}, got {by!r}")
    groups: dict[tuple, list[bool]] = {}
    for i, r in enumerate(records):
        if not isinstance(r, dict) or "correct" not in r or any(f not in r for f in by):
            raise ValueError(f"records[{i}] must be a record with fields {('correct', *by)}, got {r!r}")
        groups.setdefault(tuple(r[f] for f in by), []).append(bool(r["correct"]))
    out = {}
    for key in sorted(groups, key=_order):
        k, n = int(np.sum(groups[key])), len(groups[key])
        out[key] = Score(n, k, k / n, *wilson(k, n, z))
    return out


def _order(key: tuple) -> tuple:
    """Sort key: studies and methods in their module order, anything else by name."""
    order = {**{s: i for i, s in enumerate(STUDIES)}, **{m: i for i, m in enumerate(METHODS)}}
    return tuple((order.get(v, len(order)), str(v)) for v in key)


def plot(scores: dict[tuple, Score], title: str = "Which class is it showing? Which model to trust?"):
    """A matplotlib figure: one panel per study, accuracy per method with its 95 % interval (bars), the
    paper's numbers where it has them (black diamonds), and chance (dashed). ``scores``: `accuracy` of
    the records grouped by ``("study", "method")``.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """
    import matplotlib.pyplot as plt

    if not scores or any(len(k) != 2 or k[0] not in STUDIES or k[1] not in METHODS for k in scores):
        raise ValueError("scores must be accuracy(records, by=('study', 'method')): keys (study, method)")
    studies = [s for s in STUDIES if any(k[0] == s for k in scores)]
    fig, axes = plt.subplots(1, len(studies), figsize=(5 * len(studies), 3.8), squeeze=False)
    for ax, s in zip(axes[0], studies):
        keys = [k for k in scores if k[0] == s]
        x = np.arange(len(keys))
        acc = np.array([scores[k].accuracy for k in keys])
        err = np.array([[scores[k].accuracy - scores[k].low, scores[k].high - scores[k].accuracy] for k in keys]).T
        ax.bar(x, acc, yerr=err, capsize=4, color="#7aa6d6", label="accuracy, 95 % interval")
        paper = [(i, PAPER[k]) for i, k in enumerate(keys) if k in PAPER]
        if paper:
            ax.scatter(*zip(*paper), marker="D", color="black", zorder=3, label="Selvaraju et al. 2017")
        ax.axhline(CHANCE, color="grey", linestyle="--", linewidth=1, label="chance")
        ax.set_xticks(x, [_tick(METHOD_NAMES[k[1]], scores[k].n) for k in keys], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("fraction correct")
        ax.set_title(s.replace("_", " "), fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def _tick(name: str, n: int) -> str:
    """A method's name on two lines ("Guided" / "Grad-CAM") above its number of answers."""
    first, _, rest = name.partition(" ")
    return f"{first}\n{rest}\nn = {n}"
