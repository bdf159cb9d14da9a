"""model/registry.py's contract helpers: the one place model URIs, stage aliases, tag names and the SHA come from."""

from __future__ import annotations

import hashlib
import subprocess

import mlflow
import pytest

from aidetect.settings import Settings
from model import registry


def test_model_uri_and_ref_round_trip_through_the_uri_parser():
    ref = registry.version_ref("aidetect", 7, run_id="r1")
    assert ref.uri == registry.model_uri("aidetect", "7") == "models:/aidetect/7"
    assert ref.version == "7" and ref.run_id == "r1"
    assert registry._VERSION.match(ref.uri)["version"] == "7"  # what resolve() reads back


def test_stage_alias_maps_production_to_the_configured_alias(tmp_path):
    s = Settings(home=tmp_path, production_alias="live")
    assert [registry.stage_alias(s, st) for st in ("staging", "canary", "production")] == ["staging", "canary", "live"]
    assert registry.stage_tag(registry.TAG_REPLACED, "canary") == "ci.replaced.canary"


def test_data_digest_reads_the_legacy_tag_of_older_versions():
    assert registry.data_digest({registry.TAG_DATA_DIGEST: "new"}) == "new"
    assert registry.data_digest({"data_digest": "old"}) == "old"
    assert registry.data_digest({}) is None


def test_git_sha_prefers_github_sha(monkeypatch):
    monkeypatch.setenv("GITHUB_SHA", "f" * 40)
    assert registry.git_sha() == "f" * 40
    monkeypatch.delenv("GITHUB_SHA")
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or None
    assert registry.git_sha() == head


@pytest.mark.slow
def test_log_data_input_hashes_a_plain_manifest(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label,source,split\na.png,ai,x,train\n")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with mlflow.start_run() as run:
        digest = registry.log_data_input(manifest)
    assert digest == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert mlflow.get_run(run.info.run_id).data.tags["aidetect.manifest.sha256"] == digest


def test_a_server_that_answers_anything_is_reachable_and_one_that_does_not_answer_is_not(tmp_path):
    import http.server
    import threading
    import time

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # an auth proxy or an older server: still a server, for MLflow's calls to judge
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        registry.check_reachable(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
    registry.check_reachable(f"sqlite:///{tmp_path}/mlflow.db")  # nothing to reach: no probe
    t0 = time.monotonic()
    with pytest.raises(registry.RegistryError, match=r"MLflow at http://127.0.0.1:9 is unreachable \(.*refused"):
        registry.configure(Settings(home=tmp_path, tracking_uri="http://127.0.0.1:9"))
    assert time.monotonic() - t0 < registry.REACH_TIMEOUT_S
