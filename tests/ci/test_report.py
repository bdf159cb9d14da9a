"""ci/report.py: the decision first, every number behind it, and commit messages that name the version."""

from __future__ import annotations

from ci.gate import GateRules, decide
from ci.report import commit_message, gate_report

EVAL = {"manifest": "/snap/v0004/manifest.csv", "split": "test", "n": 412, "digest": "ab" * 32,
        "why": "it is the latest data snapshot (v0004)"}


def model(version, auroc, q60, fpr, **extra):
    return {"name": "aidetect", "version": version, "uri": f"models:/aidetect/{version}", "auroc": auroc,
            "auroc_q60": q60, "fpr": fpr, "threshold": 0.81, "per_source": {"faces": {"n": 200, "auroc": auroc,
                                                                                       "auroc_q60": q60}}, **extra}


def test_rejection_report_gives_reasons_numbers_and_the_evaluation_set():
    c = model("5", 0.9012, 0.70, 0.05, git_sha="f00dcafe" * 5, data_digest="d1" * 32)
    p = model("4", 0.9000, 0.80, 0.01)
    rules = GateRules()
    md = gate_report(decide(c, p, rules), c, p, EVAL, rules)
    assert md.startswith("## Model gate: aidetect v5 vs production v4: **REJECT**")
    assert "Reasons:" in md and md.count("**fail**") == 3
    for number in ("0.9012", "0.9000", "0.7000", "0.8000", "0.0500", "0.0100", "0.8100"):
        assert number in md
    assert "split **test**, 412 images" in md and "latest data snapshot (v0004)" in md
    assert "| faces | 200 |" in md and "git `f00dcafef00d`" in md
    assert "AIDETECT_CI_MIN_AUROC_GAIN" in md


def test_first_model_report_says_there_was_nothing_to_beat():
    c = model("1", 0.8, 0.75, 0.02)
    md = gate_report(decide(c, None, GateRules()), c, None, EVAL, GateRules())
    assert "vs no production model: **PROMOTE**" in md and "n/a" in md and "Reasons:" not in md


def test_commit_message_names_version_stage_and_metrics():
    msg = commit_message("Promote", "aidetect", "7", "canary", {"auroc": 0.93, "auroc_q60": 0.9, "fpr": 0.01,
                                                                  "git_sha": "abc"}, "6")
    subject, _, body = msg.partition("\n\n")
    assert subject == "Promote aidetect v7 to canary: AUROC 0.9300, q60 0.9000, FPR 0.0100"
    assert "models:/aidetect/7 replaces v6 in canary." in body and "git_sha: abc" in body


def test_report_lists_groups_and_writes_nan_as_n_a():
    nan = float("nan")
    groups = {"faces": {"n": 180, "auroc": 0.97, "auroc_q60": 0.96},
              "single-label pooled": {"n": 200, "auroc": nan, "auroc_q60": None}}
    c = {**model("3", 0.93, 0.9, 0.01), "groups": groups}
    p = {**model("2", 0.92, 0.9, 0.01), "groups": {"faces": {"n": 180, "auroc": 0.96, "auroc_q60": 0.95}}}
    md = gate_report(decide(c, p, GateRules()), c, p, EVAL, GateRules())
    assert "| single-label pooled | 200 | n/a | n/a | n/a | n/a |" in md
    assert "| faces | 180 | 0.9700 | 0.9600 |" in md and "AUROC of group faces" in md
