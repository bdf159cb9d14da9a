"""The service tables under Alembic: the revisions build what the models say, adopt tables that an older
create_all made, and a server database that is behind refuses to serve instead of migrating itself."""

from __future__ import annotations

import json
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

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
    assert behind == ["data pipeline: at nothing, head 0001", "service: at nothing, head s0004"]
    assert schema_diff(url) == []
    assert Records.migrate_store(url=url) == []  # a second run has nothing to do


def older_store(url: str, revision: str = "s0003", history: bool = False) -> None:
    """A store as an older release left it: the service tables at `revision`; without `history`, as an
    embedded store's create_all made them (no alembic_version_service row)."""
    from alembic import command

    from model.etl.db import migrate as migrate_etl
    from service.tables import _alembic_config

    engine = connect(url)
    try:
        migrate_etl(engine)
        command.upgrade(_alembic_config(engine), revision)
        if not history:
            with engine.begin() as conn:
                conn.execute(text(f"DELETE FROM {VERSION_TABLE}"))
    finally:
        engine.dispose()


def test_tables_made_by_create_all_are_adopted(tmp_path):
    url = f"sqlite:///{tmp_path / 'etl.db'}"
    older_store(url)
    assert Records.migrate_store(url=url) == ["service: at nothing, head s0004"]
    assert schema_diff(url) == []


def test_opening_an_older_embedded_store_brings_it_to_head(tmp_path, make_detection):
    # create_all alone would leave feedback without idempotency_key and every label write failing.
    url = f"sqlite:///{tmp_path / 'etl.db'}"
    older_store(url)
    db = Records.open(url=url, objects=str(tmp_path / "o"))
    try:
        assert pending_migrations(db.store.engine) == []
        d = make_detection(keep=False)
        db.apply_outbox([d])
        first = db.add_feedback(d.id, "ai", "key:k", idempotency_key="k-1")
        assert db.add_feedback(d.id, "ai", "key:k", idempotency_key="k-1")["id"] == first["id"]
    finally:
        db.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_s0004_adds_the_key_beside_existing_labels(backend, request, tmp_path):
    """Labels stored before keys existed stay, keyless (NULLs never collide), and the index holds after."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'etl.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"t_{uuid.uuid4().hex[:12]}")
    older_store(url, history=True)
    engine = connect(url)
    row = "INSERT INTO feedback (detection_id, sha256, label, given_by, held_back, created_at{}) VALUES ({})"
    values = "'d1', 'ab', 'ai', 'key:k', false, CURRENT_TIMESTAMP"
    try:
        with engine.begin() as conn:
            conn.execute(text(row.format("", values)))
            conn.execute(text(row.format("", values)))  # the duplicate a replay used to make
        assert Records.migrate_store(url=url) == ["service: at s0003, head s0004"]
        assert schema_diff(url) == []
        with engine.begin() as conn:
            assert conn.scalar(text("SELECT count(*) FROM feedback WHERE idempotency_key IS NULL")) == 2
            conn.execute(text(row.format(", idempotency_key", values + ", 'k-1'")))
            conn.execute(text(row.format(", idempotency_key", values.replace("key:k", "key:other") + ", 'k-1'")))
        with pytest.raises(IntegrityError), engine.begin() as conn:  # same caller, same key: refused
            conn.execute(text(row.format(", idempotency_key", values + ", 'k-1'")))
    finally:
        engine.dispose()
    from alembic import command

    from service.tables import _alembic_config

    engine = connect(url)
    try:
        command.downgrade(_alembic_config(engine), "s0003")  # and back, for a rollback of the release
    finally:
        engine.dispose()
    assert Records.migrate_store(url=url) == ["service: at s0003, head s0004"]


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
