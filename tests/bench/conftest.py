"""Fixtures for the benchmark smoke tests."""

from __future__ import annotations

import json

import pytest

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def scored_on_tiny_model(tiny_model, tmp_path):
    """Run a benchmark's main() that scores a registered model on the session's tiny one, at smoke scale (3
    images per group, one thread), and return its report, once it has named that model and drawn its plot."""
    settings, ref, _ = tiny_model

    def run(main, *extra: str) -> dict:
        out = tmp_path / "result.json"
        args = ["--home", str(settings.home), "--manifest", str(settings.manifest), "--per-group", "3"]
        assert main([*args, "--threads", "1", *extra, "--out", str(out)]) == 0
        rep = json.loads(out.read_text())
        assert rep["model"] == ref.uri
        assert out.with_suffix(".png").read_bytes()[:8] == PNG
        return rep

    return run
