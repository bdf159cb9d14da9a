"""`aidetect ci promote`, `rollback` and `status`: move a stage's alias (the decision) and its pin in gitops/
(what serves), and show the two side by side.

    promote(settings, cfg, "staging")      # challenger -> staging, then canary, then production
    rollback(settings, cfg, "production")  # back to what the pinned version replaced there

Both are idempotent: a matching alias and pin are left alone.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from aidetect.settings import Settings
from ci import gitops_pin, gitrepo
from ci.config import STAGES, CIConfig, previous_stage
from ci.errors import StepError
from ci.report import commit_message
from model import registry
from model.registry import TAG_EVAL_METRICS, TAG_REPLACED, TAG_RESTORED, TAG_ROLLED_BACK, stage_tag


@dataclass
class MoveResult:
    stage: str
    version: str
    previous: str | None  # the version the overlay pinned before
    changed: bool
    commit: str | None
    message: str

    def outputs(self) -> dict:
        return {"stage": self.stage, "version": self.version, "previous": self.previous or "",
                "changed": self.changed, "commit": self.commit or "", "message": self.message}


def _read_pin(overlay: Path) -> str | None:
    try:
        return str(gitops_pin.read_pin(overlay))
    except gitops_pin.PinError as e:
        raise StepError(str(e)) from None


def _current(settings: Settings, cfg: CIConfig, stage: str) -> str | None:
    """What a stage runs: the overlay's pin, or the alias where this step does not touch gitops/."""
    if cfg.pin:
        return _read_pin(cfg.overlay(stage))
    return registry.alias_version(settings.model_name, registry.stage_alias(settings, stage))


def _move(settings: Settings, cfg: CIConfig, stage: str, version: str, action: str, metrics: dict,
          record_previous: bool) -> MoveResult:
    """Alias first (the decision), then the pin and its commit (what serves); both skip when already there."""
    name = settings.model_name
    alias = registry.stage_alias(settings, stage)
    current = _current(settings, cfg, stage)
    held = registry.alias_version(name, alias)
    ref = registry.version_ref(name, version)
    if record_previous and current and current != version:
        registry.set_version_tags(ref, {stage_tag(TAG_REPLACED, stage): current})
        if stage_tag(TAG_RESTORED, stage) in registry.version_tags(name, version):  # promoted anew, not restored
            registry.delete_version_tag(ref, stage_tag(TAG_RESTORED, stage))
    if held != version:
        registry.set_alias(name, alias, version)
    previous = current if current != version else None
    if not cfg.pin and not previous and held == version:
        # A re-run after the alias moved: report what the move replaced, for the job that pins next.
        previous = registry.version_tags(name, version).get(stage_tag(TAG_REPLACED, stage)) if record_previous else None
    message = commit_message(action, name, version, stage, metrics, previous)
    wrote, sha = False, None
    if cfg.pin:
        overlay = cfg.overlay(stage)
        wrote = gitops_pin.write_pin(overlay, int(version))
        if cfg.commit and gitrepo.is_repo(cfg.gitops_repo):
            sha = gitrepo.commit_paths(cfg.gitops_repo, [overlay / gitops_pin.MODEL_FILE], message)
    changed = wrote or held != version or sha is not None
    return MoveResult(stage, version, previous, changed, sha, message)


def promote(settings: Settings, cfg: CIConfig, stage: str, version: str | None = None) -> MoveResult:
    """Give `stage` to the version holding the stage before it (or `version`), if it passed the gate."""
    registry.configure(settings)
    name = settings.model_name
    source = previous_stage(stage)
    source_alias = registry.stage_alias(settings, source)
    holder = registry.alias_version(name, source_alias)
    version = version or holder
    if version is None:
        raise StepError(f"no version of {name} holds @{source_alias}; promote to {source} first")
    if version != holder:
        raise StepError(f"v{version} does not hold @{source_alias} (v{holder} does); a model reaches {stage} "
                        f"only through {source}")
    tags = registry.version_tags(name, version)
    if tags.get(registry.TAG_GATE) != "passed":
        raise StepError(f"v{version} has not passed the gate "
                        f"({tags.get(registry.TAG_GATE_REASON) or 'never evaluated'}); run `aidetect ci evaluate`")
    metrics = json.loads(tags.get(TAG_EVAL_METRICS) or "{}")
    metrics.update({"data_digest": registry.data_digest(tags), "git_sha": tags.get(registry.TAG_GIT_SHA),
                    "gate": tags.get(registry.TAG_GATE_REASON)})
    return _move(settings, cfg, stage, version, "Promote", metrics, record_previous=True)


def rollback(settings: Settings, cfg: CIConfig, stage: str, version: str | None = None,
             to_version: str | None = None) -> MoveResult:
    """Put `stage` back on what `version` (default: the pinned one) replaced there; re-running is a no-op."""
    if stage not in STAGES:
        raise StepError(f"unknown stage {stage!r}; use one of {', '.join(STAGES)}")
    registry.configure(settings)
    name = settings.model_name
    pinned = _current(settings, cfg, stage)
    if pinned is None:
        raise StepError(f"no version holds {stage}; nothing to roll back")
    alias = registry.stage_alias(settings, stage)
    restored_from = registry.version_tags(name, pinned).get(stage_tag(TAG_RESTORED, stage))
    if version is None and restored_from:
        # Without --version a re-run must not walk back one more version; going further is explicit.
        if registry.alias_version(name, alias) != pinned:
            registry.set_alias(name, alias, pinned)
        return MoveResult(stage, pinned, None, False, None,
                          f"{stage} was rolled back to v{pinned} (from v{restored_from}) already; "
                          f"pass --version {pinned} to roll back further")
    bad = version or pinned
    target = to_version or registry.version_tags(name, bad).get(stage_tag(TAG_REPLACED, stage))
    if not target:
        raise StepError(f"no record of what v{bad} replaced in {stage}; pass --to-version")
    if bad != pinned and pinned == target:
        if registry.alias_version(name, alias) != target:
            registry.set_alias(name, alias, target)
        return MoveResult(stage, target, None, False, None, f"{stage} already rolled back from v{bad} to v{target}")
    if bad != pinned:
        raise StepError(f"{stage} pins v{pinned}, not v{bad}; nothing of v{bad} to roll back")
    metrics = json.loads(registry.version_tags(name, target).get(TAG_EVAL_METRICS) or "{}")
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    registry.set_version_tags(registry.version_ref(name, bad), {stage_tag(TAG_ROLLED_BACK, stage): now})
    result = _move(settings, cfg, stage, target, "Roll back", metrics, record_previous=False)
    registry.set_version_tags(registry.version_ref(name, target), {stage_tag(TAG_RESTORED, stage): bad})
    return result


def status(settings: Settings, cfg: CIConfig) -> dict:
    """Who holds each alias and what each overlay pins: the two should agree after a completed run."""
    registry.configure(settings)
    name = settings.model_name
    out = {"challenger": {"alias": registry.alias_version(name, registry.CHALLENGER)}}
    for stage in STAGES:
        out[stage] = {"alias": registry.alias_version(name, registry.stage_alias(settings, stage)),
                      "pin": _read_pin(cfg.overlay(stage))}
    return out
