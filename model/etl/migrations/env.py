"""Alembic environment of the data pipeline's tables: the URL comes from the caller's engine,
`-x url=...` or AIDETECT_STORE_URL (model/etl/alembic_env.py)."""

from model.etl.alembic_env import run_migrations
from model.etl.db import Base

run_migrations(Base.metadata)
