"""`aidetect keys`, `moderators` and `records` against an embedded store, through the real command tree."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from aidetect.cli import app
from service.auth import hash_key, verify_password
from service.records import Records


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("AIDETECT_HOME", str(tmp_path))
    monkeypatch.delenv("AIDETECT_STORE_URL", raising=False)
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(app, list(args), input=input)

    return invoke


def records(tmp_path) -> Records:
    return Records.open(url=f"sqlite:///{tmp_path / 'etl.db'}", objects=str(tmp_path / "objects"))


def test_keys_create_list_revoke(run, tmp_path):
    r = run("keys", "create", "ci-bot", "--rate-limit", "30")
    assert r.exit_code == 0, r.output
    made = json.loads(r.stdout.splitlines()[0])
    assert made["key"].startswith(f"aid_{made['id']}_") and made["rate_per_minute"] == 30
    db = records(tmp_path)
    (row,) = db.keys()
    assert row.key_hash == hash_key(made["key"]) and made["key"] not in row.key_hash
    listed = json.loads(run("keys", "list").stdout.splitlines()[0])
    assert listed == {"id": made["id"], "name": "ci-bot", "rate_per_minute": 30, "revoked": False}
    assert run("keys", "revoke", made["id"]).exit_code == 0
    assert db.keys()[0].revoked
    bad = run("keys", "revoke", "nope")
    assert bad.exit_code == 2 and "aidetect: error: no API key with id nope" in bad.output


def test_moderators_add_with_generated_or_given_password(run, tmp_path):
    out = json.loads(run("moderators", "add", "alice").stdout)
    assert verify_password(out["password"], records(tmp_path).moderator_hash("alice"))
    r = run("moderators", "add", "bob", "--password-stdin", input="long enough secret\n")
    assert r.exit_code == 0 and "password" not in json.loads(r.stdout)
    assert verify_password("long enough secret", records(tmp_path).moderator_hash("bob"))
    assert run("moderators", "add", "eve", "--password-stdin", input="short\n").exit_code == 2
    assert run("moderators", "list").stdout.split() == ["alice", "bob"]


def test_records_prune_runs_on_an_empty_store(run):
    r = run("records", "prune", "--days", "1")
    assert r.exit_code == 0 and json.loads(r.stdout) == {
        "detections_expired": 0, "images_deleted": 0, "objects_deleted": 0,
    }  # fmt: skip


def test_predict_without_a_server_is_one_line(run, tmp_path):
    img = tmp_path / "x.jpg"
    img.write_bytes(b"x")
    r = run("predict", str(img), "--url", "http://127.0.0.1:9")
    assert r.exit_code == 2 and "cannot reach the detector" in r.output and "Traceback" not in r.output
