"""PSI and KS drift of traffic against the reference."""

from __future__ import annotations

import numpy as np

from service.drift import FEATURES, compare, features_of, prometheus_text, psi


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.beta(2, 5, 5000)
    assert psi(ref, rng.beta(2, 5, 5000)) < 0.02
    assert psi(ref, rng.beta(5, 2, 5000)) > 1.0
    assert psi(np.ones(100), np.ones(50)) < 1e-6  # a constant reference does not divide by zero


def test_compare_reports_every_feature_and_skips_thin_samples():
    rng = np.random.default_rng(1)

    def cols(n, shift=0.0):
        scores = np.clip(rng.normal(0.3 + shift, 0.1, n), 0, 1)
        rows = [features_of(s, 256, 256 + int(shift * 100), 40_000) for s in scores]
        return {f: np.array([r[f] for r in rows]) for f in FEATURES}

    same = compare(cols(500), cols(500))
    assert set(same["features"]) == set(FEATURES) and same["max_psi"] < 0.1
    shifted = compare(cols(500), cols(500, shift=0.4))
    assert shifted["features"]["score"]["psi"] > 0.2 and shifted["features"]["score"]["p_value"] < 1e-6
    thin = compare(cols(500), cols(5))
    assert thin["features"]["score"]["psi"] is None and thin["max_psi"] is None
    assert 'aidetect_drift_psi{feature="score"}' in prometheus_text(shifted)
