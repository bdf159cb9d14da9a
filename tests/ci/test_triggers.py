"""ci/triggers.py: which signals start a retrain, and that the reasons say so either way."""

from __future__ import annotations

import json

import pytest

from ci.triggers import Signals, Thresholds, read_signals_json, should_retrain

T = Thresholds(feedback=100, drift=0.2, max_age_days=7)


@pytest.mark.parametrize("event", ["push", "workflow_dispatch"])
def test_merges_and_manual_runs_always_retrain(event):
    go, reasons = should_retrain(Signals(event=event, moderator_labels=0, drift=0.0, model_age_days=1), T)
    assert go and event in reasons[0]


def test_a_quiet_schedule_does_not_retrain_and_says_why():
    go, reasons = should_retrain(Signals(moderator_labels=99, drift=0.19, model_age_days=6.9), T)
    assert not go
    assert reasons == ["99 moderator label(s) since the last snapshot (threshold 100)",
                       "drift 0.1900 (threshold 0.2000)",
                       "production model is 6.9 day(s) old (retrain after 7)"]


@pytest.mark.parametrize(
    ("signals", "words"),
    [
        (Signals(moderator_labels=100, drift=0.0, model_age_days=1), "100 moderator label(s)"),
        (Signals(moderator_labels=0, drift=0.35, model_age_days=1), "drift 0.3500"),
        (Signals(moderator_labels=0, drift=0.0, model_age_days=8), "8.0 day(s) old"),
        (Signals(has_production=False), "no model holds production"),
    ],
)
def test_each_threshold_triggers_on_its_own(signals, words):
    go, reasons = should_retrain(signals, T)
    assert go and reasons == [r for r in reasons if words in r]


def test_an_old_model_waits_for_the_schedule():
    # A repository_dispatch from monitoring only acts on feedback and drift.
    go, _ = should_retrain(Signals(event="repository_dispatch", moderator_labels=0, drift=0.0, model_age_days=30), T)
    assert not go


def test_unmeasured_signals_are_named(tmp_path):
    go, reasons = should_retrain(Signals(), T)
    assert not go and "moderator feedback: not measured" in reasons and "drift: not measured" in reasons


def test_signals_file(tmp_path):
    f = tmp_path / "signals.json"
    f.write_text(json.dumps({"moderator_labels": 12, "drift": 0.3, "other": 1}))
    assert read_signals_json(f) == {"moderator_labels": 12, "drift": 0.3}
    f.write_text("[1]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        read_signals_json(f)
    with pytest.raises(ValueError, match="signals file"):
        read_signals_json(tmp_path / "missing.json")


def test_drift_json_of_the_monitor_command_is_a_signals_file(tmp_path):
    f = tmp_path / "drift.json"
    f.write_text(json.dumps({"features": {"score": {"psi": 0.31}}, "max_psi": 0.31, "model": "models:/aidetect/2"}))
    assert read_signals_json(f) == {"drift": 0.31}
