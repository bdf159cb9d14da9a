"""Alembic environment of the service tables (service/records.py): detections, feedback, API keys,
moderator accounts. Their history is kept apart from the data pipeline's (model/etl/migrations) in
its own version table, so each side can add revisions without touching the other's.

    aidetect records migrate            # the ETL's migrations, then these: what the PreSync job runs
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from service.records import VERSION_TABLE, Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    url = url or os.environ.get("AIDETECT_STORE_URL")
    if not url:
        raise SystemExit("no database URL: pass -x url=... or set AIDETECT_STORE_URL")
    return url


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = config.attributes.get("engine") or create_engine(_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True, version_table=VERSION_TABLE
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
