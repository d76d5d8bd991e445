"""HumanStudy: the Grad-CAM paper's two human studies (Selvaraju et al. 2017, section 5) as a quiz a class
can take, on the shapes data.

The trials, the records and the scoring come from `xai_ref.study`; this module only shows them and
collects the answers.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import ipywidgets as W

from xai_ref import study

from . import render
from .explorer import captioned, picture, row

#: The fields of a record that say which trial it answers (the rest is the answer).
TRIAL_FIELDS = ("study", "trial", "image_seed", "method", "choices", "models", "true_answer")

QUESTIONS = {
    "class_discrimination": ("Which class is it showing?",
                             "The picture on the right shows what the network looked at when it was asked about "
                             "<b>one</b> of the two objects' classes."),
    "trust": ("Which model would you trust more?",
              "Both models predict <b>{name}</b> for this image. The pictures show what each one looked at."),
}


class HumanStudy(W.VBox):
    """A quiz: the class-discrimination and trust studies of the Grad-CAM paper, one trial at a time.

    ``HumanStudy(path, student="", seed=0, n_trials=10)`` runs ``n_trials`` trials of each study (so
    "trial 3 of 20") built by `xai_ref.study.trials` from ``seed`` (the methods balanced: each block of
    ``len(methods)`` trials of a study shows each method once): give the whole class the same seed and
    everyone gets the same quiz. Each answer is saved at once to the JSON file ``path`` (one file per
    student; pool them with `xai_ref.study.load_all`); re-running the cell with the same ``path`` and
    arguments resumes where the student stopped. ``studies``, ``methods``, ``model`` (explained in the
    class-discrimination study), ``strong`` and ``weak`` (the two models of the trust study) are passed
    to `xai_ref.study.trials`; ``clock`` gives the seconds (time taken per answer is recorded).

    Controls: ``student`` (a Text: name or id, locked after the first answer), ``answer_0`` and
    ``answer_1`` (the two answer Buttons; their labels are the trial's two choices, and clicking one
    records it and moves on).

    Panels: the progress line ("trial 3 of 20 · class discrimination"), the question, the pictures (the
    64×64 image enlarged, then the visualization for one class, or model A's and model B's side by side;
    the method is not shown), a status line (from the start: type a name first; then where answers go), and
    after the last
    trial the student's own score per method and study.

    Lesson: ``lessons/10_neurons_and_people.ipynb``.
    """

    scale = 4   # 64 x 64 images are shown at 256 x 256

    def __init__(self, path, student: str = "", seed: int = 0, n_trials: int = 10, studies=study.STUDIES,
                 methods=tuple(study.METHODS), model: str = "vgg_shapes", strong: str = "nin_shapes",
                 weak: str = "nin_shapes_biased", clock=time.monotonic):
        if not isinstance(path, (str, Path)):
            raise TypeError(f"path must be the JSON file for this student's answers (str or Path), got {path!r}")
        if not isinstance(student, str):
            raise TypeError(f"student must be a name or id (str), got {student!r}")
        self.path, self.seed, self.n_trials, self.clock = Path(path), seed, n_trials, clock
        self.trials = study.trials(n_trials, seed, studies, methods, model, strong, weak)
        self.records, saved_student = self.resume(student)
        self.controls = {
            "student": W.Text(value=student or saved_student, description="name / id",
                              placeholder="your name or student id"),
            "answer_0": W.Button(layout=W.Layout(width="160px")),
            "answer_1": W.Button(layout=W.Layout(width="160px")),
        }
        for name in ("answer_0", "answer_1"):
            self.controls[name].on_click(lambda b: self.answer(b.description))
        self.progress, self.question, self.status, self.score = W.HTML(), W.HTML(), W.HTML(), W.HTML()
        self.pictures = [picture() for _ in range(3)]
        self.panels = [captioned(c, p) for c, p in zip(("the image", "", ""), self.pictures)]
        self.buttons = row(self.controls["answer_0"], self.controls["answer_1"])
        super().__init__([
            W.HTML("<h3>Human study: is an explanation class-discriminative? does it earn trust?</h3>"),
            self.controls["student"], self.progress, self.question, row(*self.panels),
            self.buttons, self.status, self.score,
        ])
        self.add_class("xr-quiz")
        self.controls["student"].observe(lambda _: self.hint(), "value")
        self.show()
        self.hint()

    def hint(self) -> None:
        """Before the first answer: say to type a name first (or, with a name, where the answers go)."""
        if self.records or self.done:
            return
        if self.controls["student"].value.strip():
            self.status.value = (f"<span style='color:#555'>answers will be saved to "
                                 f"{html.escape(str(self.path))}</span>")
        else:
            self.status.value = ("<span style='color:#555'>Type your name or student id in the box above first, "
                                 "then click an answer.</span>")

    def resume(self, student: str) -> tuple[list[dict], str]:
        """The answers already in ``path`` and the student who gave them (none and "" if there is no file),
        checked against this quiz."""
        if not self.path.exists():
            return [], ""
        data = study.load(self.path)
        if (data["seed"], data["n_trials"]) != (self.seed, self.n_trials):
            raise ValueError(f"path {self.path} holds a quiz with seed={data['seed']}, n_trials={data['n_trials']}; "
                             "pass those to resume it, or another path for a new quiz")
        if student and student != data["student"]:
            raise ValueError(f"path {self.path} holds the answers of {data['student']!r}, not {student!r}; "
                             "pass another path")
        records = sorted(data["records"], key=lambda r: r["trial"])
        for i, r in enumerate(records):
            expected = study.record(self.trials[i], self.trials[i].answer) if i < len(self.trials) else {}
            same = bool(expected) and all(r[f] == expected[f] for f in TRIAL_FIELDS)
            if not same:
                raise ValueError(f"path {self.path} holds answers to other trials (trial {r['trial']}); pass the "
                                 "studies, methods and models of that quiz, or another path")
        return records, data["student"]

    @property
    def done(self) -> bool:
        return len(self.records) == len(self.trials)

    def show(self) -> None:
        """Show the next unanswered trial, or the score when every trial is answered."""
        self.controls["student"].disabled = bool(self.records)
        if self.done:
            self.finish()
            return
        t = self.trials[len(self.records)]
        self.progress.value = (f"<b>trial {t.index + 1} of {len(self.trials)}</b> &middot; "
                               f"{t.study.replace('_', ' ')}")
        title, text = QUESTIONS[t.study]
        name = html.escape(study.image(t).classes[t.target])
        self.question.value = f"<div>{text.format(name=name)}</div><h4 style='margin:4px 0'>{title}</h4>"
        self.draw(t)
        for name, choice in zip(("answer_0", "answer_1"), t.choices):
            self.controls[name].description = choice
        self.shown_at = self.clock()

    def draw(self, t: study.Trial) -> None:
        """The enlarged image, then the trial's visualizations, drawn the same way whatever the method:
        black at 0 to bright at the map's 99.5th percentile (`render.magnitude`), pixels as squares."""
        b = study.image(t)
        self.pictures[0].value = render.png(render.upscale(render.image_rgb(b.images[0]), self.scale))
        maps = study.maps(t)
        captions = ["the visualization"] if len(maps) == 1 else list(study.MODEL_CHOICES)
        for panel, pic, m, caption in zip(self.panels[1:], self.pictures[1:], maps, captions):
            pic.value = render.png(render.upscale(render.magnitude(m, "inferno"), self.scale))
            panel.children[0].value = f"<div style='font-size:12px;font-weight:bold'>{caption}</div>"
        self.panels[2].layout.display = None if len(maps) == 2 else "none"

    def answer(self, choice: str) -> None:
        """Record ``choice`` for the current trial, save the file, show the next trial."""
        if self.done:
            return
        student = self.controls["student"].value.strip()
        if not student:
            self.status.value = "<span style='color:#b00'>Type your name or student id above first.</span>"
            return
        seconds = max(0.0, self.clock() - self.shown_at)
        self.records.append(study.record(self.trials[len(self.records)], choice, seconds))
        study.save(self.path, student, self.records, self.seed, self.n_trials)
        self.status.value = f"<span style='color:#555'>answers saved to {html.escape(str(self.path))}</span>"
        self.show()

    def finish(self) -> None:
        """Hide the question, show the score per study and method (the methods are revealed now)."""
        for name in ("answer_0", "answer_1"):
            self.controls[name].disabled = True
        self.buttons.layout.display = "none"
        self.progress.value = f"<b>done: {len(self.trials)} of {len(self.trials)} trials answered</b>"
        self.question.value = ""
        for panel in self.panels:
            panel.layout.display = "none"
        rows = [[s.replace("_", " "), study.METHOD_NAMES[m], f"{sc.correct} of {sc.n}", f"{sc.accuracy:.0%}"]
                for (s, m), sc in study.accuracy(self.records).items()]
        total = sum(r["correct"] for r in self.records)
        self.score.value = render.table_html(rows, header=["study", "method", "right", "accuracy"],
                                             title=f"Your score: {total} of {len(self.records)} "
                                                   f"({total / len(self.records):.0%})")
