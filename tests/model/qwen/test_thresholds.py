"""The Qwen stage's thresholds: fitted on the fast stage's uncertain band (pure function, synthetic scores)."""

from __future__ import annotations

import numpy as np
import pytest

from model.calibration import apply_calibrator
from model.qwen.thresholds import ALL_VAL, FAST_UNCERTAIN, fit_stage_thresholds, summary


def band_data(n: int = 2000, seed: int = 0):
    """Margins where the fast-uncertain images are harder (closer classes) than the confident ones."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 2, n)
    uncertain = rng.random(n) < 0.4
    sep = np.where(uncertain, 1.5, 6.0)  # the band is where the classes overlap
    margins = rng.normal(0, 1, n) + np.where(targets == 1, sep / 2, -sep / 2)
    return margins, targets, uncertain


def test_thresholds_hold_the_target_rates_on_the_uncertain_images_they_were_fitted_on():
    margins, targets, uncertain = band_data()
    fit = fit_stage_thresholds(margins, targets, uncertain, n_boot=300)
    assert fit["fitted_on"] == FAST_UNCERTAIN and fit["fallback"] is None
    th = fit["thresholds"]
    assert th["fpr"] == 0.01 and th["fnr"] == 0.01
    probs = apply_calibrator(fit["calibrator"], margins)
    real_band, ai_band = uncertain & (targets == 0), uncertain & (targets == 1)
    assert (probs[real_band] >= th["high"]).mean() <= 0.01  # FPR at high, on the fitting set
    assert (probs[ai_band] < th["low"]).mean() <= 0.01  # FNR at low
    # n is the band's, and the reported point FPR is the one just measured
    assert fit["fit"]["n"] == int(uncertain.sum()) and fit["n_val"] == len(targets)
    assert fit["fit"]["fpr"][0] == pytest.approx((probs[real_band] >= th["high"]).mean())


def test_the_band_is_ordered_and_a_fit_on_all_val_would_flag_too_many_hard_real_images():
    margins, targets, uncertain = band_data()
    band = fit_stage_thresholds(margins, targets, uncertain, n_boot=100)
    th = band["thresholds"]
    assert 0.0 <= th["low"] <= th["high"] <= 1.0
    # fitted on everything, the easy images hide how often the hard real ones are flagged
    every = fit_stage_thresholds(margins, targets, np.ones_like(uncertain), n_boot=100)
    flagged_every = apply_calibrator(every["calibrator"], margins) >= every["thresholds"]["high"]
    assert flagged_every[uncertain & (targets == 0)].mean() > 0.015  # about 2%: twice the promise


def test_intervals_contain_their_point_estimates_and_a_held_out_half_is_reported():
    margins, targets, uncertain = band_data(seed=1)
    half = np.arange(len(targets)) % 2 == 0
    fit = fit_stage_thresholds(margins, targets, uncertain, fit=half, report=~half, n_boot=500)
    for part in ("fit", "held_out"):
        for rate in ("fpr", "tpr", "uncertain_share"):
            point, lo, hi = fit[part][rate]
            assert lo <= point <= hi, (part, rate, fit[part][rate])
    assert fit["fit"]["n"] == int((half & uncertain).sum())
    assert fit["held_out"]["n"] == int((~half & uncertain).sum())
    assert fit["held_out"]["tpr"][0] > 0.05  # the band still catches AI images out of sample
    text = summary(fit)
    assert "fast-uncertain" in text and "held out" in text and "FALLBACK" not in text


def test_too_few_uncertain_images_fall_back_to_all_val_and_say_so():
    margins, targets, _ = band_data()
    uncertain = np.zeros(len(targets), bool)
    uncertain[np.flatnonzero(targets == 0)[:30]] = True  # 30 real, no AI image in the band
    uncertain[np.flatnonzero(targets == 1)[:80]] = True
    fit = fit_stage_thresholds(margins, targets, uncertain, min_per_label=50, n_boot=100)
    assert fit["fitted_on"] == ALL_VAL
    assert "30 real and 80 AI" in fit["fallback"] and "all" in fit["fallback"]
    assert fit["fit"]["n"] == len(targets) and fit["band_counts"] == {"real": 30, "ai": 80}
    assert "FALLBACK" in summary(fit)
    # with a lower bar the same band is enough
    assert fit_stage_thresholds(margins, targets, uncertain, min_per_label=30, n_boot=50)["fitted_on"] == FAST_UNCERTAIN


def test_clear_errors_for_unusable_inputs():
    with pytest.raises(ValueError, match="differ in length"):
        fit_stage_thresholds(np.zeros(3), np.array([0, 1]), np.ones(3, bool))
    with pytest.raises(ValueError, match="only one label"):
        fit_stage_thresholds(np.zeros(4), np.zeros(4, int), np.ones(4, bool), min_per_label=1)
