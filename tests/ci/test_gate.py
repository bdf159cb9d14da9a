"""ci/gate.py: each rule can reject on its own, the margins are configurable, and the first model only
has to clear the floor."""

from __future__ import annotations

import pytest

from ci.gate import GateRules, decide

PROD = {"auroc": 0.90, "auroc_q60": 0.85, "fpr": 0.02}
RULES = GateRules(min_auroc_gain=0.01, max_fpr_increase=0.0, max_q60_auroc_drop=0.0, min_auroc=0.5)


def test_a_challenger_better_on_every_count_is_promoted():
    d = decide({"auroc": 0.92, "auroc_q60": 0.86, "fpr": 0.02}, PROD, RULES)
    assert d.promote and d.reasons == [] and [c.name for c in d.checks] == [
        "auroc_floor", "auroc_gain", "fpr", "robustness_q60"]


@pytest.mark.parametrize(
    ("challenger", "failed", "words"),
    [
        ({"auroc": 0.905, "auroc_q60": 0.90, "fpr": 0.0}, "auroc_gain", "below the required +0.0100"),
        ({"auroc": 0.95, "auroc_q60": 0.90, "fpr": 0.03}, "fpr", "raised above the allowed 0.0200"),
        ({"auroc": 0.95, "auroc_q60": 0.84, "fpr": 0.0}, "robustness_q60", "loses robustness"),
    ],
)
def test_each_rule_rejects_on_its_own(challenger, failed, words):
    d = decide(challenger, PROD, RULES)
    assert not d.promote
    assert [c.name for c in d.checks if not c.passed] == [failed]
    assert len(d.reasons) == 1 and words in d.reasons[0] and d.summary.startswith("reject: ")


def test_margins_come_from_the_rules():
    c = {"auroc": 0.905, "auroc_q60": 0.84, "fpr": 0.025}
    assert not decide(c, PROD, RULES).promote
    lenient = GateRules(min_auroc_gain=0.0, max_fpr_increase=0.01, max_q60_auroc_drop=0.02, min_auroc=0.5)
    assert decide(c, PROD, lenient).promote


def test_an_equal_model_is_not_an_improvement():
    d = decide(dict(PROD), PROD, RULES)
    assert not d.promote and [c.name for c in d.checks if not c.passed] == ["auroc_gain"]


def test_first_model_needs_only_the_floor():
    assert decide({"auroc": 0.7, "auroc_q60": 0.1, "fpr": 0.9}, None, RULES).promote
    d = decide({"auroc": 0.45, "auroc_q60": 0.4, "fpr": 0.0}, None, RULES)
    assert not d.promote and "floor 0.5000" in d.reasons[0]


def test_missing_or_nan_metrics_are_an_error_not_a_decision():
    with pytest.raises(ValueError, match="challenger metrics lack fpr"):
        decide({"auroc": 0.9, "auroc_q60": 0.9}, PROD, RULES)
    with pytest.raises(ValueError, match="production metrics lack auroc"):
        decide(PROD, {**PROD, "auroc": float("nan")}, RULES)


def test_rules_read_from_the_environment(monkeypatch):
    from ci.config import get_ci_config

    monkeypatch.setenv("AIDETECT_CI_MIN_AUROC_GAIN", "0.05")
    monkeypatch.setenv("AIDETECT_CI_MAX_FPR_INCREASE", "0.01")
    rules = GateRules.from_config(get_ci_config())
    assert rules.min_auroc_gain == 0.05 and rules.max_fpr_increase == 0.01 and rules.max_q60_auroc_drop == 0.0


def test_groups_are_compared_and_a_nan_group_is_skipped_not_an_error():
    nan = float("nan")
    prod = {**PROD, "groups": {"faces": {"auroc": 0.95}, "single-label pooled": {"auroc": 0.80},
                               "tiny": {"auroc": nan}}}
    chal = {"auroc": 0.92, "auroc_q60": 0.86, "fpr": 0.02,
            "groups": {"faces": {"auroc": 0.96}, "single-label pooled": {"auroc": 0.70}, "tiny": {"auroc": 0.5}}}
    d = decide(chal, prod, RULES)
    assert not d.promote  # overall improved, but the pooled single-label group lost 0.10
    failed = [c.name for c in d.checks if not c.passed]
    assert failed == ["group:single-label pooled"] and "drops below the floor 0.7800" in d.reasons[0]
    tiny = next(c for c in d.checks if c.name == "group:tiny")
    assert tiny.passed and "skipped" in tiny.detail
    chal["groups"]["single-label pooled"]["auroc"] = 0.79
    assert decide(chal, prod, RULES).promote  # within the allowed 0.02


def test_gate_metrics_hold_groups_never_a_single_label_source():
    from ci.measure import gate_metrics

    nan = float("nan")
    m = {"n": 10.0, "auroc": 0.9, "auroc_ci": [0.8, 0.95]}
    result = {
        "metrics": {"overall": {"auroc": 0.9, "ap": 0.9}, "faces": {"n": 300, "auroc": 0.95},
                    "camvid": {"n": 14, "auroc": nan}},
        "metrics_q60": {"overall": {"auroc": 0.88}, "faces": {"auroc": 0.9}, "camvid": {"auroc": nan}},
        "groups": {"overall": m, "faces": m, "single-label pooled": m},
        "groups_q60": {"overall": {"auroc": 0.88}, "faces": {"auroc": 0.9}, "single-label pooled": {"auroc": 0.8}},
        "fp_rate_at_high": 0.01, "thresholds": {"high": 0.9}, "n": 400,
    }
    g = gate_metrics(result)
    assert set(g["groups"]) == {"faces", "single-label pooled"} and "per_source" not in g
