"""model/recipes.py, model/recipe_report.py and model/hf_features.py: how bench/recipes.py chooses the default,
and the pieces its frozen recipes are built from."""

from __future__ import annotations

import numpy as np

from model.hf_features import HF_DIMS, hf_stats
from model.recipe_report import auroc_se, build_report, markdown_notes, markdown_table
from model.recipes import FROZEN, seeded_train, verdict_shares


def _seed(worst, mean, eval_ai, val_ai, val_auroc=0.9):
    return {
        "family_auroc_worst": worst,
        "family_auroc_mean": mean,
        "nonphoto_eval_ai": eval_ai,
        "nonphoto_val_ai": val_ai,
        "auroc_val": val_auroc,
    }


def test_the_default_is_the_best_worst_family_among_recipes_meeting_the_nonphoto_goal():
    rows = {
        # best worst-family, but calls 8% of rendered non-photos AI on average: not eligible
        "x": {"title": "x", "seeds": [_seed(0.80, 0.9, 0.06, 0.0), _seed(0.82, 0.9, 0.10, 0.0)]},
        "y": {"title": "y", "seeds": [_seed(0.70, 0.8, 0.0, 0.05), _seed(0.72, 0.8, 0.0, 0.0)]},
        # the highest validation AUROC never decides
        "z": {"title": "z", "seeds": [_seed(0.60, 0.8, 0.0, 0.0, 0.99), _seed(0.62, 0.8, 0.0, 0.0, 0.99)]},
        # no leave-out figures: cannot be chosen whatever its other measures
        "w": {"title": "w", "seeds": [{"nonphoto_eval_ai": 0.0, "nonphoto_val_ai": 0.0, "auroc_val": 1.0}]},
    }
    report = build_report(rows, {"manifest_digest": "0" * 64})
    assert report["chosen"] == "y" and report["best_worst_family_any"] == "x"
    assert report["recipes"]["x"]["meets_nonphoto_goal"] is False
    stats = report["recipes"]["y"]["stats"]["family_auroc_worst"]
    assert stats["mean"] == 0.71 and stats["n"] == 2 and abs(stats["sd"] - np.std([0.70, 0.72], ddof=1)) < 1e-12
    table = markdown_table(report)
    assert "y: y **(default)**" in table and table.count("\n") == 2 + len(rows)
    # the benchmark never switches the default: a configured default the rule did not choose is marked as such
    other = markdown_table(build_report(rows, {"manifest_digest": "0" * 64, "default": "z"}))
    assert "z: z **(default)** (not the rule's choice)" in other
    assert "y: y **(the rule's choice; not the default)**" in other


def test_worst_family_figures_within_noise_tie_and_the_mean_leave_out_breaks_the_tie():
    def row(worst, mean, counts=None, seeds=1):
        r = {"title": "t", "seeds": [_seed(worst, mean, 0.0, 0.0)] * seeds, "worst_families": ["fs"] * seeds}
        return r | ({"family_counts": {"fs": counts}} if counts else {})

    # 0.573 vs 0.530 on 200 face swaps against 191 real faces each: about one standard error apart, a tie;
    # the better mean leave-out AUROC wins it
    rows = {"a": row(0.530, 0.779, (200, 191)), "b": row(0.573, 0.708, (200, 191))}
    report = build_report(rows, {"manifest_digest": "0" * 64})
    assert report["chosen"] == "a" and report["tied_on_worst_family"] == ["a", "b"]
    assert "tied on the worst family: a, b" in markdown_notes(report)
    # the same gap measured on 20 times as many images is no longer noise: the worst family decides
    rows = {"a": row(0.530, 0.779, (4000, 3820)), "b": row(0.573, 0.708, (4000, 3820))}
    report = build_report(rows, {"manifest_digest": "0" * 64})
    assert report["chosen"] == "b" and report["tied_on_worst_family"] == ["b"]


def test_auroc_standard_error_matches_hanley_mcneil():
    # at AUROC 0.5 Hanley & McNeil's Q1 = Q2 = 1/3, so SE^2 = (1/4 + (n_pos + n_neg - 2) / 12) / (n_pos n_neg)
    se_small, se_large = auroc_se(0.5, 100, 100), auroc_se(0.5, 10_000, 10_000)
    assert abs(se_small - np.sqrt((0.25 + 198 / 12) / 100**2)) < 1e-12
    assert 9 < se_small / se_large < 11
    assert auroc_se(0.99, 200, 200) < auroc_se(0.7, 200, 200)  # near-perfect separation is measured tighter


def test_a_seed_draws_the_training_set():
    train = np.ones(10_000, bool)
    a, b = seeded_train(train, 0), seeded_train(train, 1)
    assert 0.83 < a.mean() < 0.87 and (a != b).any() and (seeded_train(train, 0) == a).all()
    assert not seeded_train(~train, 0).any()  # never adds a non-training image


def test_verdict_shares_add_up():
    s = verdict_shares(np.array([0.0, 0.5, 0.95, 0.99]), {"high": 0.9, "low": 0.1})
    assert (s["ai_generated"], s["real"], s["uncertain"], s["n"]) == (0.5, 0.25, 0.25, 4)


def test_recipe_c_uses_the_three_lites_and_d_adds_the_statistics():
    assert [a for a, _ in FROZEN["c"].backbones] == ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]
    assert FROZEN["d"].backbones[:3] == FROZEN["c"].backbones and FROZEN["d"].backbones[3][0] == "hf-stats"


def test_high_frequency_statistics_see_sensor_noise():
    rng = np.random.default_rng(0)
    smooth = np.tile(np.linspace(0, 255, 64, dtype=np.float32)[None, :, None], (64, 1, 3))
    noisy = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255)
    f_s, f_n = hf_stats(smooth.astype(np.uint8)), hf_stats(noisy.astype(np.uint8))
    assert f_s.shape == f_n.shape == (HF_DIMS,) and np.isfinite(f_n).all()
    assert (f_n[:3] > 5 * f_s[:3] + 1e-3).all()  # residual spread per channel
    assert (hf_stats(noisy.astype(np.uint8)) == f_n).all()
