import numpy as np
import pytest

from model.calibration import (
    apply_calibrator,
    fit_calibrator,
    operating_points,
    thresholds_at,
    verdict,
    verdict_hits,
    verdicts,
)
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


def _scored(n, seed):
    rng = np.random.default_rng(seed)
    t = np.r_[np.zeros(n, int), np.ones(n, int)]
    return np.clip(np.r_[rng.beta(2, 4, n), rng.beta(4, 2, n)], 0, 1), t


def test_verdict_hits_agree_with_verdict():
    s, _ = _scored(200, 3)
    for th in ({"low": 0.3, "high": 0.7}, {"low": 0.7, "high": 0.4}):
        ai, real = verdict_hits(s, th)
        expected = verdicts(s, th)
        got = ["ai_generated" if a else "real" if r else "uncertain" for a, r in zip(ai, real, strict=True)]
        assert got == expected


def test_operating_points_trade_the_queue_for_errors_on_the_held_out_half():
    p_cal, y_cal = _scored(1000, 1)
    p_ev, y_ev = _scored(1000, 2)  # another draw: rates are measured where the band was not fitted
    nonphoto = (y_ev == 0) & (np.arange(len(y_ev)) % 4 == 0)
    grid = ((0.01, 0.01), (0.01, 0.05), (0.01, 0.10), (0.05, 0.10))
    rows = operating_points(p_cal, y_cal, p_ev, y_ev, nonphoto, grid)
    assert [(r["fpr"], r["fnr"]) for r in rows] == list(grid)
    first = rows[0]
    th = thresholds_at(p_cal, y_cal, 0.01, 0.01)
    assert (first["low"], first["high"]) == (th["low"], th["high"])
    v = np.array(verdicts(p_ev, th))
    assert first["uncertain"] == pytest.approx((v == "uncertain").mean())
    assert first["ai_called_real"] == pytest.approx((v[y_ev == 1] == "real").mean())
    assert first["real_called_ai"] == pytest.approx((v[y_ev == 0] == "ai_generated").mean())
    assert first["nonphoto_n"] == nonphoto.sum()
    assert first["nonphoto_real"] == pytest.approx((v[nonphoto] == "real").mean())
    # A looser fnr target calls more images real: a shorter queue, more AI images let through.
    queue = [r["uncertain"] for r in rows]
    assert queue == sorted(queue, reverse=True) and queue[0] > queue[-1]
    assert rows[0]["ai_called_real"] < rows[2]["ai_called_real"]
    assert rows[2]["real_called_ai"] < rows[3]["real_called_ai"]  # and a looser fpr, more real called AI
    for r in rows:
        assert r["nonphoto_real"] + r["nonphoto_uncertain"] + r["nonphoto_ai_generated"] == pytest.approx(1)
    # Without non-photos in the scored half their shares are undefined, not zero.
    assert np.isnan(operating_points(p_cal, y_cal, p_ev, y_ev, None, grid[:1])[0]["nonphoto_real"])
