"""bench/crop_pooling.py at a smoke scale: a registered model and a fold trained here, each scored whole and
by crop grids."""

from __future__ import annotations

import json

import pytest

from model.crop_pooling import POOLINGS

pytestmark = pytest.mark.slow


def test_the_production_model_is_scored_by_every_pooling(scored_on_tiny_model):
    from bench.crop_pooling import main

    rep = scored_on_tiny_model(main)
    assert rep["left_out_family"] is None
    assert set(rep["poolings"]) == set(POOLINGS) and rep["crop"] == 160
    assert rep["poolings"]["whole"]["cost"] == 1.0 and rep["poolings"]["3x3"]["cost"] > 3
    for row in rep["poolings"].values():
        assert "overall" in row["auroc"] and all(0 <= a <= 1 for a in row["auroc"].values())


def test_a_fold_trained_without_face_swaps_scores_them_too(tmp_path, manifest):
    from bench.crop_pooling import FOLD, main

    out = tmp_path / "c.json"
    args = ["--home", str(tmp_path / "home"), "--manifest", str(manifest), "--threads", "1"]
    args += ["--without", "face-swap", "--epochs", "1", "--per-group", "2"]
    assert main([*args, "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["left_out_family"] == "face-swap" and rep["model"].startswith("(a) trained here without face-swap")
    n_swaps, n_real = rep["n_fold"]
    assert n_swaps >= 1 and n_real >= 1
    assert all(0 <= row["auroc"][FOLD] <= 1 for row in rep["poolings"].values())


def test_an_unknown_family_is_refused_before_anything_trains(tmp_path, manifest, capsys):
    from bench.crop_pooling import main

    with pytest.raises(SystemExit) as exit_:
        main(["--manifest", str(manifest), "--home", str(tmp_path / "home"), "--without", "face-swaps"])
    assert exit_.value.code == 2 and "--without face-swaps: not a family" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()  # nothing was trained or cached
