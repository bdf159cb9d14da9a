"""The service tables under Alembic: the revisions build what the models say, adopt tables that an older
create_all made, and a server database that is behind refuses to serve instead of migrating itself."""

from __future__ import annotations

import json
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from model.etl.db import connect
from model.etl.store import StoreError
from service.records import VERSION_TABLE, Base, Records, pending_migrations


def _table(diff) -> str:
    if isinstance(diff, list):  # column modifications come as a list of tuples
        return diff[0][2]
    obj = diff[1]
    if hasattr(obj, "table"):  # an index or a constraint
        return obj.table.name
    return getattr(obj, "name", None) or diff[2]


def schema_diff(url: str) -> list:
    """What the database lacks or has differently from the service's models (the ETL's tables ignored)."""
    engine = connect(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return [d for d in compare_metadata(ctx, Base.metadata) if _table(d) in Base.metadata.tables]
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_service_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'etl.db'}"
    behind = Records.migrate_store(url=url)
    assert behind == ["data pipeline: at nothing, head 0001", "service: at nothing, head s0003"]
    assert schema_diff(url) == []
    assert Records.migrate_store(url=url) == []  # a second run has nothing to do


def test_tables_made_by_create_all_are_adopted(tmp_path):
    url = f"sqlite:///{tmp_path / 'etl.db'}"
    Records.open(url=url, objects=str(tmp_path / "o")).close()  # the embedded mode: create_all, no history
    assert Records.migrate_store(url=url) == ["service: at nothing, head s0003"]
    db = Records.open(url=url, objects=str(tmp_path / "o"))
    try:
        assert pending_migrations(db.store.engine) == []
    finally:
        db.close()


def test_a_server_database_behind_refuses_to_serve_until_migrated(postgres, tmp_path):
    url = postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")
    with pytest.raises(StoreError, match="run `aidetect records migrate`"):
        Records.open(url=url, objects=str(tmp_path / "o"))
    assert schema_diff(url)  # opening created nothing: no replica migrates a shared database
    assert len(Records.migrate_store(url=url)) == 2
    assert schema_diff(url) == []
    db = Records.open(url=url, objects=str(tmp_path / "o"))
    try:
        db.add_key("k1", "platform", "h" * 64)
        assert [k.id for k in db.keys()] == ["k1"]
    finally:
        db.close()


def test_migrate_command_prints_what_was_behind(tmp_path):
    from typer.testing import CliRunner

    from aidetect.cli import app

    url = f"sqlite:///{tmp_path / 'etl.db'}"
    first = CliRunner().invoke(app, ["records", "migrate", "--store-url", url, "--home", str(tmp_path)])
    assert first.exit_code == 0, first.output
    assert len(json.loads(first.stdout)["migrated"]) == 2
    again = CliRunner().invoke(app, ["records", "migrate", "--store-url", url, "--home", str(tmp_path)])
    assert json.loads(again.stdout) == {"migrated": []}
    bad = CliRunner().invoke(app, ["records", "migrate", "--store-url", "postgresql://nobody@127.0.0.1:1/none"])
    assert bad.exit_code == 2 and "aidetect: error:" in bad.output
