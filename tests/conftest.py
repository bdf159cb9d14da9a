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


# --- PostgreSQL: one throwaway cluster per session; tests make their own databases in it ---


@pytest.fixture(scope="session")
def postgres():
    from aidetect.testing.postgres import PostgresUnavailable, start_postgres

    try:
        pg = start_postgres()
    except PostgresUnavailable as e:
        if os.environ.get("CI"):
            raise  # CI installs postgresql (scripts/setup-system.sh): a missing server is a failure there
        pytest.skip(str(e))
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 API (moto's server) on 127.0.0.1, one per session."""
    pytest.importorskip("moto")
    from moto.server import ThreadedMotoServer

    port = servers.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_credentials(monkeypatch):
    """boto3 refuses to sign without credentials; moto accepts any."""
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)


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


def start_detector(settings, log_dir, **extra_env):
    """`aidetect serve` as a real subprocess on a free loopback port: (base URL, process)."""
    port = servers.free_port()
    log = log_dir / f"serve-{port}.log"
    env = {
        "AIDETECT_HOME": str(settings.home),
        "AIDETECT_MANIFEST": str(settings.manifest),
        "AIDETECT_PORT": str(port),
        "AIDETECT_MAX_BYTES": str(2 * 2**20),
        "AIDETECT_MAX_PIXELS": str(4_000_000),
        **extra_env,
    }
    url = f"http://127.0.0.1:{port}"
    proc = servers.start_ready(servers.aidetect_cmd("serve"), f"{url}/health", env=env, log=log, timeout=180)
    return url, proc


@pytest.fixture(scope="session")
def detector_server(tiny_model, tmp_path_factory):
    """The detector for the tiny model, shared by the session. Yields the base URL."""
    settings, _, _ = tiny_model
    url, proc = start_detector(settings, tmp_path_factory.mktemp("serve-log"))
    yield url
    servers.stop(proc)


@pytest.fixture
def detector_with(tiny_model, tmp_path):
    """Start extra detector servers for the tiny model with other settings: detector_with(AIDETECT_X="..")."""
    procs = []

    def start(**extra_env):
        # One inference worker unless a test asks: these servers test settings, and the shared
        # detector_server already runs the default layout (a worker per core).
        extra_env.setdefault("AIDETECT_WORKERS_PER_DEVICE", "1")
        url, proc = start_detector(tiny_model[0], tmp_path, **extra_env)
        procs.append(proc)
        return url

    start.procs = procs  # for tests that signal the process themselves
    yield start
    for proc in procs:
        servers.stop(proc)


@pytest.fixture(autouse=True, scope="session")
def _quiet_env():
    # Tests never reach for a user's real store.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    yield


# Fixtures that train a model or start servers, clusters or test hosts. A test that uses one is slow
# whether or not it says so, so `pytest -m "not slow"` (the inner loop) leaves it out by itself.
HEAVY_FIXTURES = frozenset(
    {
        "tiny_model",
        "detector_server",
        "detector_with",
        "postgres",
        "pg_url",
        "registry_server",
        "secure_server",
        "test_hosts",
        "tiny_result",  # tests/bench/test_qwen_gpu.py: the GPU benchmark run at tiny scale
        "old_store",  # tests/model/test_export.py: trains a model registered without an export
        "trained",  # tests/model/qwen/test_model.py: a tiny Qwen2-VL trained a few steps
    }
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HEAVY_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
