"""The service's records: detections, feedback, API keys and moderator accounts, in the data store.

    db = Records.open(settings)              # same database and object store as model/etl
    db.apply_outbox([detection, ...])        # what the outbox flusher calls, once per batch
    db.add_feedback(detection_id, "ai", given_by="moderator:alice")   # committed before it returns
    db.queue(verdict="uncertain")            # the review queue, oldest first

Records is one object with a module per job: detections and the review queue (service/records_detections.py),
feedback and the agreement rule (service/records_feedback.py), keys, moderators and drift reports
(service/records_accounts.py); the tables and who migrates them are in service/tables.py. This module
opens the database and keeps its schema at head.
"""

from __future__ import annotations

import logging

from model.etl.store import Store, StoreError, default_urls, masked
from service.records_accounts import AccountRecords
from service.records_detections import DetectionRecords
from service.records_feedback import FeedbackRecords, agreement, held_back_by_rule
from service.tables import (
    VERSION_TABLE,
    Base,
    DetectionRow,
    Feedback,
    KeyRow,
    NotFound,
    embedded,
    migrate,
    pending_migrations,
)

__all__ = [
    "VERSION_TABLE",
    "Base",
    "DetectionRow",
    "Feedback",
    "KeyRow",
    "NotFound",
    "Records",
    "agreement",
    "embedded",
    "held_back_by_rule",
    "migrate",
    "pending_migrations",
]

log = logging.getLogger(__name__)


class Records(DetectionRecords, FeedbackRecords, AccountRecords):
    """The records database: the data store (model/etl) plus the service's tables, one job per base class."""

    def __init__(self, store: Store, create: bool = True):
        self.store = store
        if create:  # embedded mode only (see open): its own migrations, as the data store's run on open
            # Not create_all: that makes missing tables but never adds a column to one a release made earlier
            # (feedback.idempotency_key, s0004). The revisions adopt what an older create_all made.
            with store.guard("migrating the service tables"):
                migrate(store.engine)

    @classmethod
    def open(cls, settings=None, url: str | None = None, objects: str | None = None) -> Records:
        if url is None:
            url = default_urls(settings)[0]
        local = embedded(url)
        store = Store.open(url=url, objects=objects, settings=settings, upgrade=local)
        if not local:
            with store.guard("checking the schema"):
                behind = pending_migrations(store.engine)
            if behind:
                store.close()
                raise StoreError(
                    f"database {masked(url)} is not migrated ({'; '.join(behind)}): run `aidetect records migrate` "
                    "(the deployment's PreSync job does) before serving"
                )
        return cls(store, create=local)

    @classmethod
    def migrate_store(cls, settings=None, url: str | None = None) -> list[str]:
        """Bring a database to head, data pipeline then service tables; returns what was behind."""
        if url is None:
            url = default_urls(settings)[0]
        store = Store.open(url=url, settings=settings, upgrade=False)
        try:
            with store.guard("reading the schema version"):
                before = pending_migrations(store.engine)
            from model.etl.db import migrate as migrate_etl

            with store.guard("migrating the data pipeline tables"):
                migrate_etl(store.engine)
            with store.guard("migrating the service tables"):
                migrate(store.engine)
            return before
        finally:
            store.close()

    def close(self) -> None:
        self.store.close()

    def session(self, doing: str):
        return self.store.session(doing)
