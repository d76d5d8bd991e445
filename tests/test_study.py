"""The human study: seeded trials, the simulated observer, the JSON records, pooling with Wilson intervals,
the plot, and the quiz widget driven without a browser (``button.click()`` runs the same handler a
browser click runs)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from widgets.quiz import HumanStudy
from xai_ref import study
from xai_ref.data import shapes

pytestmark = pytest.mark.usefixtures("one_thread")

# --- Wilson interval, worked by hand ------------------------------------------------------------------
#
# 8 right of 10, z = 1.96: p = 0.8, z²/n = 0.384146, 1 + z²/n = 1.384146
#   centre = (0.8 + 0.192073) / 1.384146 = 0.716740
#   half   = 1.959964 / 1.384146 · sqrt(0.8 · 0.2 / 10 + 3.841459 / 400) = 1.416010 · 0.160012 = 0.226578
#   interval = (0.490162, 0.943318)
# 0 right of 4: p = 0, centre = (3.841459 / 8) / (1 + 3.841459 / 4) = 0.480182 / 1.960365 = 0.244945
#   half = 1.959964 / 1.960365 · sqrt(3.841459 / 64) = 0.999795 · 0.244995 = 0.244945: interval = (0, 0.489891)


def test_wilson_by_hand():
    assert study.wilson(8, 10) == pytest.approx((0.490162, 0.943318), abs=2e-6)
    assert study.wilson(0, 4) == pytest.approx((0.0, 0.489891), abs=2e-6)
    assert study.wilson(4, 4) == pytest.approx((1 - 0.489891, 1.0), abs=2e-6)   # mirror image of 0 of 4


def test_wilson_is_symmetric_and_contains_p():
    for n in (1, 2, 7, 50):
        for k in range(n + 1):
            low, high = study.wilson(k, n)
            assert 0 <= low <= k / n <= high <= 1
            assert (1 - high, 1 - low) == pytest.approx(study.wilson(n - k, n), abs=1e-12)


@pytest.mark.parametrize("args, error, words", [
    ((1, 0), ValueError, "n must be an int >= 1"),
    ((5, 4), ValueError, "correct must be an int in [0, 4]"),
    ((1.5, 4), TypeError, "correct must be an int"),
    ((1, 4, -1.0), ValueError, "z must be a finite number"),
])
def test_wilson_bad_args(args, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
        study.wilson(*args)


# --- scripted answers -> accuracies --------------------------------------------------------------------


def fake_trial(i: int, method: str, s: str = "class_discrimination") -> study.Trial:
    """A trial that needs no model (the records only copy its fields)."""
    if s == "trust":
        return study.Trial(s, i, i, method, study.MODEL_CHOICES, "model A", 0, ("nin_shapes", "nin_shapes_biased"))
    return study.Trial(s, i, i, method, ("circle", "square"), "circle", 0, ("vgg_shapes",))


def scripted() -> list[dict]:
    """Grad-CAM 8 of 10 right, guided backprop 0 of 4, trust with saliency 4 of 4."""
    out = []
    for i in range(10):
        out.append(study.record(fake_trial(i, "grad_cam"), "circle" if i < 8 else "square", seconds=2.0))
    for i in range(10, 14):
        out.append(study.record(fake_trial(i, "guided_backprop"), "square"))
    for i in range(14, 18):
        out.append(study.record(fake_trial(i, "saliency", "trust"), "model A"))
    return out


def test_scripted_answers_give_the_expected_scores():
    scores = study.accuracy(scripted())
    assert list(scores) == [("class_discrimination", "guided_backprop"), ("class_discrimination", "grad_cam"),
                            ("trust", "saliency")]                                  # module order, not file order
    gc = scores["class_discrimination", "grad_cam"]
    assert (gc.n, gc.correct, gc.accuracy) == (10, 8, 0.8)
    assert (gc.low, gc.high) == pytest.approx((0.490162, 0.943318), abs=2e-6)
    gb = scores["class_discrimination", "guided_backprop"]
    assert (gb.n, gb.correct, gb.accuracy, gb.low) == (4, 0, 0.0, 0.0)
    assert gb.high == pytest.approx(0.489891, abs=2e-6)
    assert scores["trust", "saliency"].accuracy == 1.0


def test_accuracy_groups():
    per_study = study.accuracy(scripted(), by="study")
    assert {k: (v.correct, v.n) for k, v in per_study.items()} == {("class_discrimination",): (8, 14),
                                                                  ("trust",): (4, 4)}
    per_method = study.accuracy(scripted(), by=("method",))
    assert [k[0] for k in per_method] == ["guided_backprop", "grad_cam", "saliency"]
    with pytest.raises(ValueError, match="by must be field names"):
        study.accuracy(scripted(), by="colour")
    with pytest.raises(ValueError, match=r"records\[0\] must be a record"):
        study.accuracy([{"study": "trust"}])


def test_record_checks_the_answer():
    r = study.record(fake_trial(0, "grad_cam"), "square", seconds=1.234)
    assert (r["correct"], r["true_answer"], r["answer"], r["seconds"]) == (False, "circle", "square", 1.23)
    with pytest.raises(ValueError, match="answer must be one of the trial's choices"):
        study.record(fake_trial(0, "grad_cam"), "star")
    with pytest.raises(ValueError, match="seconds must be a finite number"):
        study.record(fake_trial(0, "grad_cam"), "circle", seconds=-1)


# --- files -----------------------------------------------------------------------------------------------


def test_json_round_trip_and_pooling(tmp_path):
    a, b = tmp_path / "ada.json", tmp_path / "bob.json"
    study.save(a, "ada", scripted(), seed=3, n_trials=9)
    study.save(b, "bob", scripted()[:10], seed=3, n_trials=9)
    data = study.load(a)
    assert data["records"] == scripted() and (data["student"], data["seed"], data["n_trials"]) == ("ada", 3, 9)
    pooled = study.load_all([a, b])
    assert len(pooled) == 28 and {r["student"] for r in pooled} == {"ada", "bob"}
    assert study.accuracy(pooled)["class_discrimination", "grad_cam"].correct == 16
    assert {k[0]: v.n for k, v in study.accuracy(pooled, by="student").items()} == {"ada": 18, "bob": 10}
    assert len(study.load_all(a)) == 18                                   # a single path is accepted


def test_pooling_refuses_a_student_twice_and_nothing(tmp_path):
    study.save(tmp_path / "1.json", "ada", scripted(), seed=0, n_trials=9)
    study.save(tmp_path / "2.json", "ada", scripted(), seed=0, n_trials=9)
    with pytest.raises(ValueError, match="2.json: student 'ada' also answered in .*1.json"):
        study.load_all([tmp_path / "1.json", tmp_path / "2.json"])
    with pytest.raises(ValueError, match="paths is empty"):
        study.load_all([])


def _file(**top):
    data = {"format": study.FORMAT, "version": 1, "student": "ada", "seed": 0, "n_trials": 9, "records": scripted()}
    data.update(top)
    return data


def _bad_record(**fields):
    records = scripted()
    records[2] = {k: v for k, v in {**records[2], **fields}.items() if v is not None}
    return _file(records=records)


@pytest.mark.parametrize("data, words", [
    ([1, 2], "expected a JSON object"),
    ({k: v for k, v in _file().items() if k != "records"}, "missing field 'records'"),
    (_file(format="something else"), "format/version must be"),
    (_file(student="  "), "field 'student' is empty"),
    (_file(seed=-1), "field 'seed' must be >= 0"),
    (_file(n_trials="9"), "field 'n_trials' must be int"),
    (_bad_record(study="colour"), r"records\[2\]: field 'study' must be one of"),
    (_bad_record(method="lime"), r"records\[2\]: field 'method' must be one of"),
    (_bad_record(answer="star"), r"records\[2\]: field 'answer' must be one of the choices"),
    (_bad_record(correct=False), r"records\[2\]: field 'correct' is False but answer 'circle' == true_answer"),
    (_bad_record(correct=1), r"records\[2\]: field 'correct' must be bool"),
    (_bad_record(trial=None), r"records\[2\]: missing field 'trial'"),
    (_bad_record(trial=3), r"records\[3\].trial = 3 appears twice"),
    (_bad_record(choices=["circle"]), r"records\[2\]: field 'choices' must be two strings"),
    (_bad_record(seconds=-2), r"records\[2\]: field 'seconds' must be a number >= 0"),
])
def test_bad_files_are_refused_naming_file_and_field(tmp_path, data, words):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"bad.json: .*{words}"):
        study.load(path)


def test_unreadable_files(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ValueError, match="x.json: not a JSON file"):
        study.load(tmp_path / "x.json")
    with pytest.raises(ValueError, match="missing.json: no such file"):
        study.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="field 'student' is empty"):
        study.save(tmp_path / "y.json", "", scripted(), seed=0, n_trials=9)   # save checks what it writes
    assert not (tmp_path / "y.json").exists()


# --- trials ------------------------------------------------------------------------------------------------


def test_trials_are_a_function_of_seed_and_n():
    a = study.trials(4, seed=5)
    assert a == study.trials(4, seed=5)
    assert a != study.trials(4, seed=6)
    assert [t.study for t in a] == ["class_discrimination"] * 4 + ["trust"] * 4
    assert [t.index for t in a] == list(range(8))
    longer = study.trials(6, seed=5, studies="class_discrimination")
    assert longer[:4] == a[:4]                            # a longer quiz starts with the shorter one
    assert {t.method for t in study.trials(5, seed=5, methods=["grad_cam"])} == {"grad_cam"}


def test_methods_are_balanced_and_images_do_not_depend_on_which():
    pair = ("guided_backprop", "guided_grad_cam")
    for t in (study.trials(10, seed=0, methods=pair), study.trials(7, seed=3, methods=study.METHODS)):
        for s in study.STUDIES:
            ms = [x.method for x in t if x.study == s]
            counts = [ms.count(m) for m in set(ms)]
            assert max(counts) - min(counts) <= 1 and len(set(ms)) == min(len(ms), len({x.method for x in t}))
    a = study.trials(4, seed=2, studies="class_discrimination", methods=pair)
    b = study.trials(4, seed=2, studies="class_discrimination", methods=("saliency", "deconvnet"))
    assert [t.image_seed for t in a] == [t.image_seed for t in b]


def test_class_discrimination_trials_match_their_images():
    for t in study.trials(6, seed=1, studies="class_discrimination"):
        b = study.image(t)
        names = {b.classes[c] for c in b.labels[0]}
        assert set(t.choices) == names and list(t.choices) == sorted(names)
        assert t.answer == b.classes[t.target] and t.models == ("vgg_shapes",)


def test_trust_trials_both_models_predict_the_label():
    ts = study.trials(8, seed=2, studies="trust")
    assert {t.models for t in ts} == {("nin_shapes", "nin_shapes_biased"), ("nin_shapes_biased", "nin_shapes")}
    for t in ts:
        b = study.image(t)
        x = torch.from_numpy(b.images)
        with torch.no_grad():
            assert [int(study.load_model(m)(x).argmax()) for m in t.models] == [t.target] * 2 == [int(b.label[0])] * 2
        assert t.answer == study.MODEL_CHOICES[t.models.index("nin_shapes")]
        assert b.cue_labels[0] == b.label[0]              # the cue agrees: the biased model can be right


@pytest.mark.parametrize("kwargs, error, words", [
    ({"n": 0}, ValueError, "n must be an int >= 1"),
    ({"n": 2.5}, TypeError, "n must be an int"),
    ({"n": 2, "seed": -1}, ValueError, "seed must be an int"),
    ({"n": 2, "methods": ("lime",)}, ValueError, "methods must be distinct names from"),
    ({"n": 2, "studies": ()}, ValueError, "studies must be distinct names from"),
    ({"n": 2, "studies": "trust", "weak": "nope"}, ValueError, "unknown model 'nope'"),
    ({"n": 2, "studies": "class_discrimination", "model": "nope"}, ValueError, "unknown model 'nope'"),
    ({"n": 2, "studies": "trust", "weak": "nin_shapes"}, ValueError, "strong and weak must be two different"),
])
def test_trials_bad_args(kwargs, error, words):
    with pytest.raises(error, match=words):
        study.trials(**kwargs)


def test_maps_are_raw_maps_at_input_resolution():
    for t in study.trials(2, seed=0, methods="guided_grad_cam"):
        ms = study.maps(t)
        assert len(ms) == len(t.models) and all(m.shape == (64, 64) and np.isfinite(m).all() for m in ms)


# --- the simulated observer --------------------------------------------------------------------------------


def test_observer_reads_the_masks():
    t = study.trials(1, seed=0, studies="class_discrimination")[0]
    b = study.image(t)
    k = [b.classes[c] for c in b.labels[0]].index(t.answer)
    assert study.observe(t, [b.masks[0, k].astype(float)]) == t.answer
    assert study.observe(t, [b.masks[0, 1 - k].astype(float)]) != t.answer
    assert study.observe(t, [np.zeros((64, 64))]) == t.choices[0]                  # a tie: the first choice

    t = study.trials(1, seed=0, studies="trust")[0]
    b = study.image(t)
    on_object, on_cue = b.mask[0].astype(float), b.cue_masks[0].astype(float)
    assert study.observe(t, [on_object, on_cue]) == "model A"
    assert study.observe(t, [on_cue, on_object + on_cue]) == "model B"


def test_observer_beats_chance_with_grad_cam_and_not_with_guided_backprop():
    """Few trials, so only the gross picture: Grad-CAM discriminates, guided backprop hardly does."""
    acc = {m: np.mean([study.observe(t) == t.answer
                       for t in study.trials(30, seed=0, studies="class_discrimination", methods=m)])
           for m in ("grad_cam", "guided_backprop")}
    assert acc["grad_cam"] >= 0.7 and acc["guided_backprop"] < acc["grad_cam"]


# --- the plot ----------------------------------------------------------------------------------------------


def test_plot_has_a_panel_per_study_with_paper_marks_and_chance():
    records = scripted() + [study.record(fake_trial(20 + i, "guided_grad_cam"), "circle") for i in range(3)]
    fig = study.plot(study.accuracy(records))
    axes = fig.axes
    assert [a.get_title() for a in axes] == ["class discrimination", "trust"]
    marks = axes[0].collections[-1].get_offsets()                         # the paper's diamonds
    assert sorted(np.asarray(marks)[:, 1].round(4).tolist()) == [0.4444, 0.6123]
    assert any(list(line.get_ydata()) == [0.5, 0.5] for line in axes[0].lines)   # chance
    with pytest.raises(ValueError, match="scores must be accuracy"):
        study.plot(study.accuracy(records, by="method"))


# --- the quiz widget, driven without a browser ---------------------------------------------------------------


class Clock:
    """A fake clock: each reading is 1.5 s after the previous one."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 1.5
        return self.t


def click(quiz: HumanStudy, choice: str) -> None:
    """Click the answer button labelled ``choice``."""
    button = next(quiz.controls[n] for n in ("answer_0", "answer_1") if quiz.controls[n].description == choice)
    button.click()


def visible_text(quiz: HumanStudy) -> str:
    return " ".join([quiz.progress.value, quiz.question.value, *(p.children[0].value for p in quiz.panels)])


def test_quiz_records_answers_and_shows_the_score(tmp_path):
    path = tmp_path / "ada.json"
    quiz = HumanStudy(path, seed=4, n_trials=2, clock=Clock())
    assert "trial 1 of 4" in quiz.progress.value
    assert "Type your name" in quiz.status.value                             # said before the first click
    click(quiz, quiz.trials[0].answer)                                       # no name yet: nothing recorded
    assert "Type your name" in quiz.status.value and not path.exists() and "trial 1 of 4" in quiz.progress.value

    quiz.controls["student"].value = "ada"
    given = []
    for i, t in enumerate(quiz.trials):
        assert f"trial {i + 1} of 4" in quiz.progress.value
        assert {quiz.controls["answer_0"].description, quiz.controls["answer_1"].description} == set(t.choices)
        assert not any(name in visible_text(quiz) for name in study.METHOD_NAMES.values())   # method hidden
        assert quiz.panels[2].layout.display == (None if t.study == "trust" else "none")
        answer = t.answer if i != 1 else next(c for c in t.choices if c != t.answer)           # one wrong
        given.append(answer)
        click(quiz, answer)
        assert quiz.controls["student"].disabled                             # locked after the first answer
        saved = study.load(path)
        assert len(saved["records"]) == i + 1 and saved["student"] == "ada"

    records = study.load(path)["records"]
    assert [r["answer"] for r in records] == given
    assert [r["correct"] for r in records] == [True, False, True, True]
    assert [r["trial"] for r in records] == [0, 1, 2, 3]
    assert [(r["image_seed"], r["method"]) for r in records] == [(t.image_seed, t.method) for t in quiz.trials]
    assert all(r["seconds"] == 1.5 for r in records)
    assert "done: 4 of 4" in quiz.progress.value and "Your score: 3 of 4 (75%)" in quiz.score.value
    assert all(quiz.controls[n].disabled for n in ("answer_0", "answer_1")) and quiz.buttons.layout.display == "none"
    quiz.controls["answer_0"].click()                                        # after the end: ignored
    assert len(study.load(path)["records"]) == 4


def test_quiz_is_the_same_for_everyone_with_a_seed(tmp_path):
    a = HumanStudy(tmp_path / "a.json", "ada", seed=7, n_trials=2)
    b = HumanStudy(tmp_path / "b.json", "bob", seed=7, n_trials=2)
    assert a.trials == b.trials == study.trials(2, seed=7)
    for _ in range(len(a.trials)):
        assert [p.value for p in a.pictures] == [p.value for p in b.pictures]
        assert a.question.value == b.question.value
        click(a, a.trials[len(a.records)].answer)
        click(b, b.trials[len(b.records)].answer)


def test_quiz_resumes_and_refuses_another_quiz_file(tmp_path):
    path = tmp_path / "ada.json"
    quiz = HumanStudy(path, "ada", seed=1, n_trials=2)
    click(quiz, quiz.trials[0].answer)
    click(quiz, quiz.trials[1].answer)
    again = HumanStudy(path, seed=1, n_trials=2)
    assert "trial 3 of 4" in again.progress.value and again.controls["student"].value == "ada"
    assert again.controls["student"].disabled
    with pytest.raises(ValueError, match="seed=1, n_trials=2; pass those to resume it"):
        HumanStudy(path, seed=2, n_trials=2)
    with pytest.raises(ValueError, match="holds the answers of 'ada', not 'bob'"):
        HumanStudy(path, "bob", seed=1, n_trials=2)
    with pytest.raises(ValueError, match="holds answers to other trials"):
        HumanStudy(path, seed=1, n_trials=2, methods=("grad_cam",))


def test_quiz_bad_args(tmp_path):
    with pytest.raises(TypeError, match="path must be the JSON file"):
        HumanStudy(3)
    with pytest.raises(TypeError, match="student must be a name or id"):
        HumanStudy(tmp_path / "a.json", student=7)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        HumanStudy(tmp_path / "a.json", n_trials=0)


def test_quiz_pictures_are_the_enlarged_image_and_maps(tmp_path):
    from PIL import Image
    import io

    quiz = HumanStudy(tmp_path / "a.json", "ada", seed=0, n_trials=1)
    sizes = [Image.open(io.BytesIO(p.value)).size for p in quiz.pictures[:2]]
    assert sizes == [(256, 256), (256, 256)]
    click(quiz, quiz.trials[0].answer)                                       # the trust trial: three pictures
    assert [Image.open(io.BytesIO(p.value)).size for p in quiz.pictures] == [(256, 256)] * 3
    assert not math.isnan(study.load(tmp_path / "a.json")["records"][0]["seconds"])
