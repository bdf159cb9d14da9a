"""The OpenAPI document says what the detector accepts: schemathesis (every check) against a live server.

A request the schema allows may be refused only for what a schema cannot see: bytes that are not an image
(415) or whose header is corrupt (422). Every other check of `schemathesis run --checks all` must pass,
with one reading of our own: a request over a declared limit (maxItems of a batch) is a 413, which the
API promises, among the refusals schemathesis expects of schema-violating data.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CONFIG = """
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]

# Bytes that are not an image are schema-valid (format: binary / base64) and rightly refused.
[[operations]]
include-path-regex = "^/v1/detect"
checks.positive_data_acceptance.expected-statuses = ["2xx", 401, 403, 404, 409, 429, 415, 422]
"""


def test_schemathesis_finds_no_schema_valid_request_rejected(detector_with, tmp_path):
    # Its own server: schemathesis sends hundreds of requests a minute, past the default per-client limit.
    url = detector_with(AIDETECT_RATE_LIMIT_PER_MINUTE="1000000")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    report = tmp_path / "report.json"
    cli = Path(sys.executable).parent / "schemathesis"
    cmd = [str(cli), "--config-file", str(config), "run", f"{url}/openapi.json", "--checks", "all",
           "--max-examples", "25", "--workers", "1", "--generation-deterministic",
           "--report-json-path", str(report)]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert report.exists(), run.stdout[-3000:] + run.stderr[-2000:]
    out = json.loads(report.read_text())
    assert out["operations"]["tested"] >= 4 and out["test_cases"]["generated"] > 50  # it really ran
    assert out["failures"] == [] and out["errors"] == [], run.stdout[-6000:]
    assert run.returncode == 0, run.stdout[-6000:]
