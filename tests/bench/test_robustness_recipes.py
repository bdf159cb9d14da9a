"""bench/robustness_recipes.py at a smoke scale: real training of two recipes, every tier scored through the
serving resize, each run adding its entry to one results file."""

from __future__ import annotations

import json

import pytest

from model.robustness import TIER_NAMES

pytestmark = pytest.mark.slow


def test_two_recipes_add_their_tier_tables_to_one_file(tmp_path, manifest):
    from bench.robustness_recipes import MAX_DROP, main

    out = tmp_path / "rob.json"
    common = ["--schedule", "p1", "--val-cap", "2", "--threads", "1", "--out", str(out)]
    assert main(["--recipe", "e", *common]) == 0
    assert main(["--recipe", "a", *common]) == 0
    doc = json.loads(out.read_text())
    assert set(doc["recipes"]) == {"e-s0-p1", "a-s0-p1"} and doc["goal_max_drop"] == MAX_DROP
    for entry in doc["recipes"].values():
        assert list(entry["auroc"]) == ["stored", *TIER_NAMES]
        assert entry["n"]["overall"] == entry["val_images"] > 0
        for tier in TIER_NAMES:
            for group, drop in entry["drop"][tier].items():
                assert drop == pytest.approx(entry["auroc"]["stored"][group] - entry["auroc"][tier][group])
            assert entry["worst_drop_per_tier"][tier] == max(entry["drop"][tier].values())
        assert entry["tiers_over_goal"] == sorted(t for t, w in entry["worst_drop_per_tier"].items() if w > MAX_DROP)
    assert doc["recipes"]["e-s0-p1"]["config"] == "configs/cnn_enlarge.yaml"
