"""Session-wide fixtures: the shared data, one tiny trained model in a real MLflow store, one real server.

Servers and models are made once per session and shared, so the suite stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aidetect.settings import Settings
from aidetect.testing import servers


@pytest.fixture(scope="session")
def manifest() -> Path:
    path = Settings().manifest
    if not path.is_file():
        pytest.fail(f"shared data not found at {path}; set AIDETECT_MANIFEST")
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, manifest):
    """A small EfficientNet trained for one epoch on a balanced subset, registered and promoted
    in an embedded MLflow store (SQLite + local artifacts). Returns (settings, ModelRef, report)."""
    from model.jobs import evaluate_and_promote, train_and_register
    from model.train import load_config

    home = tmp_path_factory.mktemp("aidetect-home")
    settings = Settings(home=home, manifest=manifest)
    cfg = load_config(per_group=12, epochs=1, batch_size=16)
    ref, report = train_and_register(settings, cfg)
    ref, result = evaluate_and_promote(settings, ref.uri, per_group=6)
    return settings, ref, {"train": report, "evaluate": result}


@pytest.fixture(scope="session")
def detector_server(tiny_model, tmp_path_factory):
    """`aidetect serve` as a real subprocess on a free loopback port. Yields the base URL."""
    settings, ref, _ = tiny_model
    port = servers.free_port()
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    env = {
        "AIDETECT_HOME": str(settings.home),
        "AIDETECT_MANIFEST": str(settings.manifest),
        "AIDETECT_PORT": str(port),
        "AIDETECT_MAX_BYTES": str(2 * 2**20),
        "AIDETECT_MAX_PIXELS": str(4_000_000),
    }
    proc = servers.start(servers.aidetect_cmd("serve"), env=env, log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        servers.wait_http(f"{url}/health", timeout=180, proc=proc)
    except Exception:
        servers.stop(proc)
        raise RuntimeError(f"server did not start:\n{log.read_text()[-3000:]}") from None
    yield url
    servers.stop(proc)


@pytest.fixture(autouse=True, scope="session")
def _quiet_env():
    # Tests never reach for a user's real store.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    yield
