"""Alembic environment: the URL comes from the caller's engine, `-x url=...` or AIDETECT_STORE_URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from model.etl.db import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    url = url or os.environ.get("AIDETECT_STORE_URL")
    if not url:
        raise SystemExit("no database URL: pass -x url=... or set AIDETECT_STORE_URL")
    return url


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = config.attributes.get("engine") or create_engine(_url())
    with engine.connect() as connection:
        # Batch mode lets later migrations alter columns on SQLite, which has no ALTER COLUMN.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
