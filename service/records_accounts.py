"""API keys, moderator accounts and drift reports in the records database.

    db.add_key(key_id, "platform", hash_key(secret)); db.keys(); db.revoke_key(key_id)
    db.set_moderator("alice", hash_password(pw)); db.moderator_hash("alice")
    db.add_drift_report(report); db.latest_drift_report()
"""

from __future__ import annotations

from sqlalchemy import delete, select

from model.etl.db import utcnow
from service.tables import ApiKey, DriftReport, KeyRow, Moderator, NotFound, aware


class AccountRecords:
    """The accounts half of service.records.Records (which gives it `session`)."""

    # --- drift reports ---

    def add_drift_report(self, report: dict) -> None:
        with self.session("recording a drift report") as s:
            s.add(DriftReport(model=str(report.get("model", ""))[:300], report=report))

    def latest_drift_report(self) -> dict | None:
        with self.session("reading the latest drift report") as s:
            row = s.scalar(select(DriftReport).order_by(DriftReport.id.desc()).limit(1))
            return None if row is None else {**row.report, "measured_at": aware(row.created_at).isoformat()}

    # --- API keys ---

    def add_key(self, key_id: str, name: str, key_hash: str, rate_per_minute: int | None = None) -> None:
        with self.session("creating an API key") as s:
            s.add(ApiKey(id=key_id, name=name, key_hash=key_hash, rate_per_minute=rate_per_minute))

    def revoke_key(self, key_id: str) -> None:
        with self.session("revoking an API key") as s:
            k = s.get(ApiKey, key_id)
            if k is None:
                raise NotFound(f"no API key with id {key_id}; `aidetect keys list` shows them")
            if k.revoked_at is None:
                k.revoked_at = utcnow()

    def keys(self) -> list[KeyRow]:
        with self.session("reading API keys") as s:
            return [
                KeyRow(k.id, k.name, k.key_hash, k.rate_per_minute, k.revoked_at is not None)
                for k in s.scalars(select(ApiKey).order_by(ApiKey.created_at))
            ]

    # --- moderators ---

    def set_moderator(self, name: str, password_hash: str) -> None:
        with self.session("saving a moderator") as s:
            m = s.get(Moderator, name)
            if m is None:
                s.add(Moderator(name=name, password_hash=password_hash))
            else:
                m.password_hash = password_hash

    def moderator_hash(self, name: str) -> str | None:
        with self.session("reading a moderator") as s:
            m = s.get(Moderator, name)
            return m.password_hash if m else None

    def moderators(self) -> list[str]:
        with self.session("listing moderators") as s:
            return list(s.scalars(select(Moderator.name).order_by(Moderator.name)))

    def remove_moderator(self, name: str) -> None:
        with self.session("removing a moderator") as s:
            if s.get(Moderator, name) is None:
                raise NotFound(f"no moderator named {name!r}")
            s.execute(delete(Moderator).where(Moderator.name == name))
