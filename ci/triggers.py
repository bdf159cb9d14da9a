"""Should we retrain now? A pure decision from explicit signals, plus the readers that gather them.

    signals = Signals(event="schedule", moderator_labels=340, drift=0.05, model_age_days=2.0)
    go, reasons = should_retrain(signals, Thresholds(feedback=200, drift=0.2, max_age_days=7))

Signals and where they come from (gather_signals reads them):
    event            GITHUB_EVENT_NAME: push (a merge to main) and workflow_dispatch always retrain
    moderator_labels moderator labels recorded since the latest data snapshot (ETL database, `labels` table),
                     or `moderator_labels` in a signals JSON
    drift            drift of the served inputs against the training snapshot: `max_psi` of the JSON that
                     `aidetect monitor drift` writes ($AIDETECT_HOME/monitoring/drift.json), or `drift` in
                     any signals JSON
    model_age_days   age of the version holding `production` (MLflow registry); None when there is none
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

ALWAYS = {"push": "a merge to main changed the code", "workflow_dispatch": "a person asked for it"}


@dataclass(frozen=True)
class Signals:
    event: str = "schedule"
    moderator_labels: int | None = None
    drift: float | None = None
    model_age_days: float | None = None
    has_production: bool = True


@dataclass(frozen=True)
class Thresholds:
    feedback: int = 200  # moderator labels since the last snapshot
    drift: float = 0.2  # drift score
    max_age_days: float = 7.0  # scheduled retrain of an older production model

    @classmethod
    def from_config(cls, cfg) -> Thresholds:
        return cls(cfg.feedback_threshold, cfg.drift_threshold, cfg.max_model_age_days)


def should_retrain(s: Signals, t: Thresholds) -> tuple[bool, list[str]]:
    """(retrain?, every reason that counted either way): yes when any trigger fires."""
    fired, quiet = [], []
    if s.event in ALWAYS:
        fired.append(f"event {s.event}: {ALWAYS[s.event]}")
    if not s.has_production:
        fired.append("no model holds production yet")
    if s.moderator_labels is not None:
        msg = f"{s.moderator_labels} moderator label(s) since the last snapshot (threshold {t.feedback})"
        (fired if s.moderator_labels >= t.feedback else quiet).append(msg)
    else:
        quiet.append("moderator feedback: not measured")
    if s.drift is not None:
        msg = f"drift {s.drift:.4f} (threshold {t.drift:.4f})"
        (fired if s.drift >= t.drift else quiet).append(msg)
    else:
        quiet.append("drift: not measured")
    if s.model_age_days is not None:
        msg = f"production model is {s.model_age_days:.1f} day(s) old (retrain after {t.max_age_days:g})"
        (fired if s.event == "schedule" and s.model_age_days >= t.max_age_days else quiet).append(msg)
    return (True, fired) if fired else (False, quiet)


# --- readers (side effects at the edge) ------------------------------------------------------------


def read_signals_json(path: str | Path) -> dict:
    """{'moderator_labels': int, 'drift': float} from a signals JSON or drift.json; absent keys stay unmeasured."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"signals file {path}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"signals file {path}: expected a JSON object")
    out = {}
    if data.get("moderator_labels") is not None:
        out["moderator_labels"] = int(data["moderator_labels"])
    # `aidetect monitor drift` writes the worst feature's PSI as max_psi (service/drift.py).
    drift = data["drift"] if data.get("drift") is not None else data.get("max_psi")
    if drift is not None:
        out["drift"] = float(drift)
    return out


def count_moderator_labels(store) -> int:
    """Moderator labels recorded after the latest snapshot (all of them when there is none)."""
    from sqlalchemy import func, select

    from model.etl.db import LabelEvent, Snapshot

    with store.session("counting moderator labels") as s:
        since = s.scalar(select(func.max(Snapshot.created_at)))
        q = select(func.count()).select_from(LabelEvent).where(LabelEvent.origin == "moderator")
        if since is not None:
            q = q.where(LabelEvent.created_at > since)
        return int(s.scalar(q) or 0)


def age_days(created_ms: int, now: dt.datetime | None = None) -> float:
    now = now or dt.datetime.now(dt.UTC)
    return (now.timestamp() * 1000 - created_ms) / 86_400_000


def gather_signals(settings, event: str, signals_file: Path | None, drift: float | None,
                   moderator_labels: int | None, use_store: bool) -> Signals:
    """Explicit inputs first (flags, then the JSON file); the ETL database and registry fill the rest."""
    from ci.errors import StepError
    from model import registry

    if signals_file is None and drift is None:
        default = Path(settings.home).expanduser() / "monitoring" / "drift.json"  # `aidetect monitor drift`
        signals_file = default if default.is_file() else None
    found = read_signals_json(signals_file) if signals_file else {}
    if drift is not None:
        found["drift"] = drift
    if moderator_labels is not None:
        found["moderator_labels"] = moderator_labels
    if "moderator_labels" not in found and use_store:
        from model.etl.store import Store, StoreError

        try:
            store = Store.open(settings.store_url, settings.object_store, settings=settings)
            try:
                found["moderator_labels"] = count_moderator_labels(store)
            finally:
                store.close()
        except StoreError as e:
            raise StepError(f"cannot count moderator labels: {e}") from None
    registry.configure(settings)
    prod = registry.alias_version(settings.model_name, settings.production_alias)
    age = age_days(registry.get_version(settings.model_name, prod).creation_timestamp) if prod else None
    return Signals(event=event, moderator_labels=found.get("moderator_labels"), drift=found.get("drift"),
                   model_age_days=age, has_production=prod is not None)
