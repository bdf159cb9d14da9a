import numpy as np
import pytest

from model.calibration import apply_calibrator, fit_calibrator, thresholds_at, verdict, verdicts
from model.metrics import expected_calibration_error


def overconfident(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 2, n)
    true_logit = rng.normal(np.where(t == 1, 1.0, -1.0), 1.0)
    return true_logit * 4.0, t  # a model 4x too confident


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_reduces_ece(method):
    logits, t = overconfident()
    before = expected_calibration_error(apply_calibrator(None, logits), t)
    cal = fit_calibrator(logits, t, method)
    after = expected_calibration_error(apply_calibrator(cal, logits), t)
    assert after < before / 3
    # Monotone: calibration must never reorder images.
    order = np.argsort(logits)
    assert np.all(np.diff(apply_calibrator(cal, logits[order])) >= -1e-12)


def test_platt_recovers_temperature():
    logits, t = overconfident(20000)
    cal = fit_calibrator(logits, t, "platt")
    assert cal["a"] == pytest.approx(0.25 * 2, rel=0.15)  # 2 = separation of the true logits


def test_calibrator_is_json_and_needs_both_labels():
    import json

    cal = fit_calibrator(*overconfident(200), "isotonic")
    assert json.loads(json.dumps(cal)) == cal
    with pytest.raises(ValueError, match="both"):
        fit_calibrator(np.zeros(5), np.ones(5))


def test_thresholds_hold_their_error_rates():
    rng = np.random.default_rng(1)
    t = np.r_[np.zeros(1000, int), np.ones(1000, int)]
    s = np.clip(np.r_[rng.beta(2, 5, 1000), rng.beta(5, 2, 1000)], 0, 1)
    th = thresholds_at(s, t, fpr=0.01, fnr=0.01)
    assert (s[t == 0] >= th["high"]).mean() <= 0.01
    assert (s[t == 1] < th["low"]).mean() <= 0.01
    assert th["low"] < th["high"]
    v = verdicts(s, th)
    assert set(v) == {"real", "uncertain", "ai_generated"}


def test_verdict_bands():
    th = {"low": 0.2, "high": 0.8}
    assert verdict(0.8, th) == "ai_generated"
    assert verdict(0.79, th) == "uncertain"
    assert verdict(0.2, th) == "uncertain"
    assert verdict(0.19, th) == "real"


def test_no_uncertain_band_when_low_above_high():
    th = {"low": 0.7, "high": 0.4}
    assert [verdict(s, th) for s in (0.3, 0.5, 0.69, 0.9)] == ["real", "ai_generated", "ai_generated", "ai_generated"]


def test_perfect_separation_gives_no_uncertain_band():
    s = np.r_[np.linspace(0, 0.3, 100), np.linspace(0.7, 1, 100)]
    t = np.r_[np.zeros(100, int), np.ones(100, int)]
    th = thresholds_at(s, t)
    assert "uncertain" not in verdicts(s, th)
