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


# --- bootstrap intervals ---


def _rows_of(scores, targets):
    """One 'resample' that is the data itself, in the positives-first layout the row metrics expect."""
    order = np.r_[np.flatnonzero(targets == 1), np.flatnonzero(targets == 0)]
    return scores[order][None, :], targets[order], int(targets.sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_metrics_equal_scikit_learn_on_one_row(seed):
    from model.metrics import _ap_rows, _auroc_rows, _ece_rows, _tpr_rows

    rng = np.random.default_rng(seed)
    t = (rng.uniform(size=300) < 0.4).astype(int)
    s = np.round(np.clip(rng.normal(0.4 + 0.3 * t, 0.2), 0, 1), 2)  # rounding makes ties across labels
    row, y, n_pos = _rows_of(s, t)
    ref = binary_metrics(s, t)
    assert _auroc_rows(row, n_pos)[0] == pytest.approx(ref["auroc"], abs=1e-12)
    assert _ap_rows(row, y)[0] == pytest.approx(ref["ap"], abs=1e-12)
    assert _tpr_rows(row, n_pos, 0.01)[0] == pytest.approx(ref["tpr_at_1fpr"], abs=1e-12)
    assert _ece_rows(row, y)[0] == pytest.approx(ref["ece"], abs=1e-12)


def test_bootstrap_interval_covers_the_true_auroc_about_95_percent_of_the_time():
    """Synthetic scores with a known population AUROC: Phi(d / sqrt(2)) for two unit normals d apart."""
    from scipy.stats import norm

    from model.metrics import bootstrap_metrics

    d = 1.2
    true_auc = norm.cdf(d / np.sqrt(2))
    rng = np.random.default_rng(7)
    covered = 0
    trials = 60
    for i in range(trials):
        t = np.r_[np.zeros(150, int), np.ones(100, int)]
        s = rng.normal(d * t, 1.0)
        lo, hi = bootstrap_metrics(s, t, n_boot=400, seed=i)["auroc"]
        covered += lo <= true_auc <= hi
    assert covered / trials >= 0.85  # nominal 0.95; 60 trials leave room for chance, not for a broken interval


def test_bootstrap_is_seeded_stratified_and_nan_without_both_labels():
    from model.metrics import bootstrap_metrics, metrics_with_ci, stratified_resamples

    t = np.r_[np.zeros(30, int), np.ones(10, int)]
    idx, n_pos = stratified_resamples(t, 50, seed=3)
    assert n_pos == 10 and (t[idx[:, :10]] == 1).all() and (t[idx[:, 10:]] == 0).all()
    s = np.linspace(0, 1, 40)
    assert bootstrap_metrics(s, t, 200, seed=1) == bootstrap_metrics(s, t, 200, seed=1)
    m = metrics_with_ci(s, t, n_boot=200)
    assert m["auroc_ci"][0] <= m["auroc"] <= m["auroc_ci"][1]
    single = bootstrap_metrics(s[:30], t[:30], 100)
    assert np.isnan(single["auroc"][0]) and not np.isnan(single["ece"][0])
