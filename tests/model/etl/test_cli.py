"""aidetect/cli_data.py: `aidetect data import|snapshot|stats` and `aidetect ingest`, end to end on a temp home."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from aidetect.cli import app
from model.manifest import read_manifest


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("AIDETECT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AIDETECT_STORE_URL", raising=False)
    monkeypatch.delenv("AIDETECT_OBJECT_STORE", raising=False)
    return tmp_path / "home"


def _json(result) -> dict:
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_ingest_snapshot_stats(home, tmp_path, sample_paths, fake, monkeypatch):
    import csv

    manifest = tmp_path / "m.csv"
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "source", "split", "origin"])
        for i, p in enumerate(sample_paths[30:36]):  # not among the fake's media
            w.writerow([str(p), "ai" if i % 2 else "real", "shared", "train", ""])
    runner = CliRunner()
    out = _json(runner.invoke(app, ["data", "import", "--format", "manifest", str(manifest)]))
    assert out["stored"] == 6 and out["error"] is None
    for k, v in fake.env().items():
        monkeypatch.setenv(k, v)
    out = _json(runner.invoke(app, ["ingest", "--source", "mastodon", "--tag", "aiart", "--limit", "5"]))
    assert out["pages"] == 1 and out["source"] == "mastodon"
    snap = _json(runner.invoke(app, ["data", "snapshot"]))
    assert snap["version"] == 1 and snap["created"] and snap["manifest"].startswith(str(home / "snapshots"))
    assert len(read_manifest(snap["manifest"])) == 6  # social images are unlabelled until reviewed
    stats = _json(runner.invoke(app, ["data", "stats"]))
    assert stats["images"] >= 11 and stats["by_label_origin"]["dataset"] == 6
    assert stats["database"].endswith("etl.db") and stats["by_source"]["mastodon"] >= 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "--format", "imagenet", "x"], "unknown format 'imagenet'"),
        (["import", "--format", "manifest", "/nonexistent/m.csv"], "manifest not found"),
        (["import", "--format", "cifake", "/nonexistent"], "not a CIFAKE folder"),
        (["snapshot"], "nothing to snapshot"),
        (["stats", "--store-url", "postgresql://u:pw@127.0.0.1:9/x"], "database postgresql://u:***@127.0.0.1:9/x"),
    ],
)
def test_user_errors_are_one_line(home, args, message):
    result = CliRunner().invoke(app, ["data", *args])
    assert result.exit_code == 2
    assert result.stderr.startswith("aidetect: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_ingest_rejects_a_bad_interval(home, fake, monkeypatch):
    for k, v in fake.env().items():
        monkeypatch.setenv(k, v)
    result = CliRunner().invoke(app, ["ingest", "--source", "mastodon", "--tag", "aiart", "--every", "soon"])
    assert result.exit_code == 2 and "cannot read duration 'soon'" in result.stderr
