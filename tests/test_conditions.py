"""benchmarks/conditions.py (claims across the condition that decides them) and train(scale=...)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from xai_ref.data import shapes
from xai_ref.training.shapes_nets import train

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))
conditions = pytest.importorskip("conditions")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shipped():
    return json.loads((BENCH / "conditions.json").read_text())


def test_shipped_json_has_three_seeds_per_point(shipped):
    seeds = shipped["config"]["seeds"]
    assert len(seeds) >= 3
    for part, name, seed in conditions.jobs(shipped["config"]):
        assert f"{part}/{name}/{seed}" in shipped["runs"]
    for name in conditions.MODELS:
        for bin_ in conditions.loc_curves(shipped, name)["Grad-CAM"]["box15"]:
            assert len(bin_) == 2   # (mean, std) over the seeds


def test_results_md_says_what_the_json_holds(shipped):
    """The section in RESULTS.md is exactly section(json): every number and verdict comes from the JSON."""
    text = (BENCH / "RESULTS.md").read_text()
    body = text.split("<!-- conditions:start -->")[1].split("<!-- conditions:end -->")[0]
    assert conditions.section(shipped).strip() in body
    for png in conditions.PLOTS.values():
        assert (BENCH / png).exists() and f"]({png})" in body


def test_crossings_interpolate_the_sign_change():
    assert conditions.crossings([1.0, 2.0, 4.0], [-0.2, 0.2, 0.4]) == [(1.5, "up")]
    assert conditions.crossings([1.0, 2.0, 4.0], [0.1, -0.1, 0.1]) == [(1.5, "down"), (3.0, "up")]
    assert conditions.crossings([1.0, 2.0], [0.1, 0.2]) == []


def test_smoke_run_writes_nothing_and_renders(tmp_path, monkeypatch):
    """Every job on a tiny configuration (no cache, no JSON), then the section and the plots."""
    cfg = dict(conditions.QUICK, bins=[0.06, 0.2, 0.48], n_bin=3, n_two=3,
               wide_train=dict(epochs=1, images_per_epoch=16),
               two_train={name: dict(epochs=1, images_per_epoch=16) for name in ("nin_shapes", "vgg_shapes")})
    monkeypatch.setattr(conditions, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(conditions, "JSON", tmp_path / "c.json")
    res = conditions.run(cfg, save=False)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "c.json").exists()
    assert len(res["runs"]) == len(conditions.jobs(cfg))
    text = conditions.section(res)
    assert "### 7." in text and "### 8." in text and text.count("**") >= 4
    conditions.plot(res, tmp_path)
    assert all((tmp_path / png).stat().st_size > 0 for png in conditions.PLOTS.values())


def test_train_scale_draws_objects_in_range(monkeypatch):
    """train(scale=...) trains and tests on objects of that size (radius r: a box side within [1.5 r, 2 r])."""
    seen = []
    generate = shapes.generate

    def spy(n, *args, **kwargs):
        batch = generate(n, *args, **kwargs)
        seen.append((kwargs.get("split", "train"), kwargs.get("scale"), batch))
        return batch

    monkeypatch.setattr(shapes, "generate", spy)
    model, accuracy = train("nin_shapes", epochs=1, images_per_epoch=64, progress=False, test_size=32,
                            scale=(0.3, 0.4))
    assert not model.training and 0.0 <= accuracy <= 1.0
    batches = [(split, b) for split, scale, b in seen if len(b)]
    assert {split for split, _ in batches} == {"train", "test"}
    assert all(scale == (0.3, 0.4) for _, scale, _ in seen)
    for _, b in batches:
        side = np.maximum(b.box[:, 2] - b.box[:, 0], b.box[:, 3] - b.box[:, 1])
        assert side.min() >= 1.5 * 0.3 * 64 - 2 and side.max() <= 2 * 0.4 * 64 + 2


def test_train_rejects_a_scale_too_large_for_two_objects():
    with pytest.raises(ValueError, match="scale"):
        train("nin_shapes", epochs=1, images_per_epoch=8, two_objects=0.5, scale=(0.06, 0.48), progress=False)
