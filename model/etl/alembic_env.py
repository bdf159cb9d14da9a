"""What both Alembic environments (the data pipeline's and the service's tables) run: one way to
find the database URL and to run migrations, offline or online, each history in its own version table.

    from model.etl.alembic_env import run_migrations
    run_migrations(Base.metadata)                          # in a migrations/env.py
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import MetaData, create_engine


def database_url() -> str:
    """The caller's `-x url=...`, the ini's sqlalchemy.url, or AIDETECT_STORE_URL."""
    config = context.config
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    url = url or os.environ.get("AIDETECT_STORE_URL")
    if not url:
        raise SystemExit("no database URL: pass -x url=... or set AIDETECT_STORE_URL")
    return url


def run_migrations(target_metadata: MetaData, version_table: str = "alembic_version") -> None:
    # Batch mode lets later migrations alter columns on SQLite, which has no ALTER COLUMN.
    options = {"target_metadata": target_metadata, "render_as_batch": True, "version_table": version_table}
    if context.is_offline_mode():
        context.configure(url=database_url(), literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = context.config.attributes.get("engine") or create_engine(database_url())
    with engine.connect() as connection:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
