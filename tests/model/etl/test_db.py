"""model/etl/db.py and migrations/: the Alembic history builds exactly the tables the models describe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from model.etl.db import Base, connect, migrate

ETL = Path(__file__).resolve().parents[3] / "model" / "etl"


def _url(kind, tmp_path, request):
    return f"sqlite:///{tmp_path / 'm.db'}" if kind == "sqlite" else request.getfixturevalue("pg_url")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_migrations_match_the_models(kind, tmp_path, request):
    engine = connect(_url(kind, tmp_path, request))
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], diff
    assert set(inspect(engine).get_table_names()) >= {"images", "sightings", "labels", "cursors", "snapshots"}
    migrate(engine)  # already at head: a no-op
    engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_downgrade_and_upgrade_round_trip(kind, tmp_path, request):
    engine = connect(_url(kind, tmp_path, request))
    migrate(engine)
    from alembic import command

    from model.etl.db import alembic_config

    command.downgrade(alembic_config(engine), "base")
    assert "images" not in inspect(engine).get_table_names()
    migrate(engine)
    assert "images" in inspect(engine).get_table_names()
    engine.dispose()


def test_alembic_command_line_with_its_own_ini(tmp_path):
    db = tmp_path / "cli.db"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "alembic",
            "-c",
            str(ETL / "alembic.ini"),
            "-x",
            f"url=sqlite:///{db}",
            "upgrade",
            "head",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ETL.parents[1],
    )
    assert res.returncode == 0, res.stderr
    engine = connect(f"sqlite:///{db}")
    assert "sightings" in inspect(engine).get_table_names()
    engine.dispose()


def test_postgres_connections_carry_the_partition_bounds(pg_url):
    """What libpq was actually given: without them a vanished database holds a request for minutes."""
    from model.etl.db import PARTITION_BOUNDS

    engine = connect(pg_url)
    with engine.connect() as conn:
        dsn = conn.connection.dbapi_connection.get_dsn_parameters()
    engine.dispose()
    assert {k: dsn.get(k) for k in PARTITION_BOUNDS} == {k: str(v) for k, v in PARTITION_BOUNDS.items()}
