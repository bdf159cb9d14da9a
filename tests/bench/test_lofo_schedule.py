"""bench/lofo_schedule.py: a recipe's leave-out folds at its own epochs, set beside the one-epoch folds of the
recipe table."""

from __future__ import annotations

import json

import pytest

from aidetect.settings import get_settings


def test_one_epoch_folds_are_read_for_the_seed_asked_and_only_from_one_epoch_tables(tmp_path):
    from bench.lofo_schedule import one_epoch_folds, summary

    table = {
        "lofo_seeds": [0, 2],
        "lofo_schedule": {"name": "e1"},
        "recipes": {"a": {"families": {"face-swap": [0.53, 0.58], "sd1": [0.82, 0.74]}}},
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(table))
    assert one_epoch_folds(path, "a", 2) == {"face-swap": 0.58, "sd1": 0.74}
    assert one_epoch_folds(path, "a", 1) == {} and one_epoch_folds(path, "b", 0) == {}
    path.write_text(json.dumps({**table, "lofo_schedule": {"name": "p12"}}))
    assert one_epoch_folds(path, "a", 0) == {}  # a smoke table's folds are no reference
    assert one_epoch_folds(tmp_path / "missing.json", "a", 0) == {}
    assert summary({"face-swap": 0.5, "sd1": 0.9}) == {"mean": 0.7, "worst": 0.5, "worst_family": "face-swap"}
    assert summary({})["worst"] is None


def _recipe(worst: float, mean: float, n: int = 200) -> dict:
    rows = [{"family": "face-swap", "n_scored": n, "n_real": n}, {"family": "sd1", "n_scored": n, "n_real": n}]
    return {"families": rows, "full_schedule": {"worst": worst, "mean": mean, "worst_family": "face-swap"}}


def test_the_recipe_tables_rule_chooses_among_full_schedule_folds():
    from bench.lofo_schedule import chosen

    assert chosen({"a": _recipe(0.59, 0.83)}) is None  # one recipe is no choice
    # within the sampling error of 200 + 200 images the worst families tie: the better mean wins
    assert chosen({"a": _recipe(0.59, 0.83), "e": _recipe(0.61, 0.80)}) == {
        "chosen": "a",
        "tied_on_worst_family": ["a", "e"],
    }
    # far apart, the better worst family wins whatever the mean
    assert chosen({"a": _recipe(0.59, 0.83), "e": _recipe(0.75, 0.80)}) == {
        "chosen": "e",
        "tied_on_worst_family": ["e"],
    }
    # on many more images the same gap of 0.02 is no longer a tie
    assert chosen({"a": _recipe(0.59, 0.83, 20000), "e": _recipe(0.61, 0.80, 20000)})["chosen"] == "e"


@pytest.mark.slow
def test_folds_run_at_the_configs_own_epochs_smoke(tmp_path, manifest):
    from bench.lofo_schedule import main
    from model.train import load_config

    out = tmp_path / "l.json"
    args = ["--home", str(tmp_path / "home"), "--manifest", str(manifest), "--threads", "1"]
    args += ["--subset", "2", "--families", "face-swap"]
    assert main([*args, "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    epochs = load_config(get_settings().recipe).epochs
    assert list(rep["recipes"]) == ["a"] and rep["rule_at_full_schedule"] is None
    (fold,) = rep["recipes"]["a"]["families"]
    assert fold["family"] == "face-swap" and fold["schedule_text"].startswith(f"{epochs} epoch(s)")
    assert fold["auroc_one_epoch"] is None and rep["reference"] is None  # a subset is compared with nothing
    assert rep["recipes"]["a"]["full_schedule"]["worst_family"] == "face-swap"
    assert 0 <= fold["auroc_full_schedule"] <= 1
    # a second run reuses the fold it ran: the unit file is not written again
    (unit,) = (tmp_path / "home" / "cache" / "recipes").glob("*-sub2/lofo-a-face-swap-s0-full.json")
    written = unit.stat().st_mtime_ns
    assert main([*args, "--out", str(out)]) == 0
    assert unit.stat().st_mtime_ns == written and json.loads(out.read_text())["recipes"] == rep["recipes"]
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
