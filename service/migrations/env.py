"""Alembic environment of the service tables (service/records.py): detections, feedback, API keys,
moderator accounts. Their history is kept apart from the data pipeline's (model/etl/migrations) in
its own version table, so each side can add revisions without touching the other's.

    aidetect records migrate            # the ETL's migrations, then these: what the PreSync job runs
"""

from model.etl.alembic_env import run_migrations
from service.records import VERSION_TABLE, Base

run_migrations(Base.metadata, version_table=VERSION_TABLE)
