"""ci/actions.py: outputs and summaries in the files Actions names, nothing outside Actions."""

from __future__ import annotations

from ci.actions import append_summary, format_outputs, write_outputs


def test_outputs_are_key_value_lines_and_multiline_values_use_a_delimiter(tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    write_outputs({"version": 3, "promote": True, "reason": "a\nb"})
    write_outputs({"stage": "canary"})
    lines = out.read_text().splitlines()
    assert lines[:2] == ["version=3", "promote=true"]
    start, delim = lines[2].split("<<")
    assert start == "reason" and lines[3:6] == ["a", "b", delim] and lines[6] == "stage=canary"


def test_outside_actions_nothing_is_written(monkeypatch):
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert write_outputs({"a": 1}) is None and append_summary("# x") is None
    assert format_outputs({"a": None}) == "a=\n"


def test_summary_appends(tmp_path, monkeypatch):
    s = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(s))
    append_summary("## one")
    append_summary("## two\n")
    assert s.read_text() == "## one\n\n## two\n\n"

