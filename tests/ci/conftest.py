"""Fixtures for the retrain loop: a real MLflow server (PostgreSQL backend, S3 artifacts on moto), a small
synthetic data set, and a scratch git repository holding a copy of the gitops overlays.

Everything binds 127.0.0.1 and lives in temporary folders; nothing is committed to the project's checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Helpers beside this file import by plain name (pytest runs in importlib mode).
sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = "gitops/apps/detector/overlays"
BUCKET = "mlflow"


@pytest.fixture(scope="session")
def registry_server(tmp_path_factory, postgres):
    """(MLflow URL, S3Server): `mlflow server` on PostgreSQL with artifacts proxied to s3://mlflow/artifacts."""
    from aidetect.testing.mlflow_server import start_mlflow, start_moto

    pg = postgres
    logs = tmp_path_factory.mktemp("registry-logs")
    s3 = mlflow = None
    try:
        s3 = start_moto(logs / "moto.log")
        s3.create_bucket(BUCKET)
        mlflow = start_mlflow(pg.create_database("mlflow"), f"s3://{BUCKET}/artifacts", s3, logs / "mlflow.log")
        yield mlflow.url, s3
    finally:
        for server in (mlflow, s3):
            if server is not None:
                server.stop()


@pytest.fixture(scope="session")
def synthetic_manifest(tmp_path_factory) -> Path:
    from synthetic import make_dataset

    return make_dataset(tmp_path_factory.mktemp("synthetic-data"))


@pytest.fixture()
def gitops_repo(tmp_path) -> Path:
    """A fresh git repository with a copy of the detector overlays, committed once."""
    repo = tmp_path / "gitops-repo"
    shutil.copytree(REPO / OVERLAYS, repo / OVERLAYS)
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "overlays"]):
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
                       check=True, capture_output=True)
    return repo

