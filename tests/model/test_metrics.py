import numpy as np
import pytest

from model.metrics import binary_metrics, expected_calibration_error, per_source_metrics, tpr_at_fpr


def test_perfect_and_random_scores():
    t = np.r_[np.zeros(50, int), np.ones(50, int)]
    perfect = binary_metrics(t.astype(float), t)
    assert perfect["auroc"] == 1 and perfect["ap"] == 1 and perfect["accuracy"] == 1 and perfect["tpr_at_1fpr"] == 1
    inverted = binary_metrics(1 - t.astype(float), t)
    assert inverted["auroc"] == 0


def test_ece_of_calibrated_and_overconfident():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 20000)
    t = (rng.uniform(0, 1, 20000) < p).astype(int)
    assert expected_calibration_error(p, t) < 0.02
    assert expected_calibration_error(np.where(p > 0.5, 1.0, 0.0), t) > 0.2


def test_tpr_at_fpr_matches_hand_count():
    s = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.5, 0.95, 0.99])
    t = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # With no real image flagged, the cut sits above 0.9: 0.95 and 0.99 are caught.
    assert tpr_at_fpr(s, t, 0.0) == pytest.approx(0.5)


def test_per_source_keys_and_nan_for_single_label():
    s = np.array([0.1, 0.9, 0.2, 0.8, 0.7])
    t = np.array([0, 1, 0, 1, 1])
    rep = per_source_metrics(s, t, ["a", "a", "b", "b", "c"], raw_probs=s)
    assert set(rep) == {"overall", "a", "b", "c"}
    assert rep["a"]["auroc"] == 1 and np.isnan(rep["c"]["auroc"])
    assert "ece_before" in rep["overall"]
