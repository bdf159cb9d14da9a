"""The side-effectful steps of the loop: retrain, evaluate (gate), promote, rollback, should-retrain.

    aidetect ci retrain                 # snapshot data, train, register, alias `challenger`
    aidetect ci evaluate                # challenger vs production on the frozen set -> decision + report
    aidetect ci promote --to staging    # challenger -> staging, then canary, then production
    aidetect ci rollback --stage production

Each step is idempotent: run twice, the second run finds its work done and changes nothing
(retrain reuses a version trained from the same commit, data and recipe; evaluate reuses metrics
measured on the same evaluation set; promote and rollback leave a matching alias and pin alone).
The registry alias records the decision; the pin in gitops/ decides what serves.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from aidetect.settings import Settings
from ci import actions, gitops_pin, gitrepo
from ci.config import CHALLENGER, STAGES, CIConfig, previous_stage
from ci.gate import Decision, GateRules, decide
from ci.report import commit_message, gate_report

log = logging.getLogger(__name__)

# Version tags the loop reads and writes.
TAG_TRAIN_KEY = "ci.train_key"
TAG_DATA_DIGEST = "data.digest"
TAG_DATA_SNAPSHOT = "data.snapshot"
SNAPSHOT_ARTIFACTS = "data-snapshot"  # artifact folder of the training run: the snapshot's manifest and sidecar
TAG_DATA_MANIFEST = "data.manifest"
TAG_GIT_SHA = "git_sha"
TAG_EVAL_DIGEST = "ci.eval.digest"
TAG_EVAL_METRICS = "ci.eval.metrics"
TAG_GATE = "ci.gate"  # passed | rejected
TAG_GATE_REASON = "ci.gate.reason"
TAG_GATE_AGAINST = "ci.gate.against"
TAG_GATE_EVAL = "ci.gate.eval_digest"
TAG_RESTORED = "ci.restored"  # .<stage> = the version a rollback took out to put this one back
TAG_GATE_KEY = "ci.gate.key"  # evaluation set + incumbent + rules the decision was made with


class StepError(RuntimeError):
    """A step cannot go on; the message says why and what to do (one line on the CLI)."""


def _client():
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def _version(name: str, version: str):
    from mlflow.exceptions import MlflowException

    try:
        return _client().get_model_version(name, version)
    except MlflowException as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StepError(f"models:/{name}/{version} cannot be read: {first[:200]}") from None


def _tags(name: str, version: str) -> dict:
    return dict(_version(name, version).tags or {})


# --- data ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataInput:
    manifest: Path
    digest: str
    snapshot: int | None  # snapshot version, None when the plain manifest was used


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def latest_snapshot(snapshots_dir: Path) -> Path | None:
    """Folder of the newest complete snapshot (vNNNN with manifest.csv and snapshot.json), or None."""
    if not snapshots_dir.is_dir():
        return None
    done = [d for d in snapshots_dir.glob("v[0-9]*")
            if (d / "manifest.csv").is_file() and (d / "snapshot.json").is_file()]
    return max(done, key=lambda d: int(d.name[1:]), default=None)


def snapshots_dir(settings: Settings, cfg: CIConfig) -> Path:
    return Path(cfg.snapshots_dir or Path(settings.home).expanduser() / "snapshots")


def take_snapshot(settings: Settings, cfg: CIConfig) -> DataInput:
    """A new data snapshot (so moderator labels reach the next model), or the plain manifest when off."""
    wanted = cfg.snapshot.lower()
    if wanted not in ("auto", "always", "never"):
        raise StepError(f"AIDETECT_CI_SNAPSHOT={cfg.snapshot!r}: use auto, always or never")
    if wanted == "never" or (wanted == "auto" and not settings.store_url):
        return DataInput(Path(settings.manifest), file_digest(settings.manifest), None)
    from model.etl.snapshots import materialize, write_snapshot
    from model.etl.store import Store, StoreError

    try:
        store = Store.open(settings.store_url, settings.object_store, settings=settings)
        try:
            info = write_snapshot(store, snapshots_dir(settings, cfg))
            materialize(info.csv, store)
        finally:
            store.close()
    except StoreError as e:
        raise StepError(f"data snapshot failed: {e}") from None
    log.info("snapshot v%04d (%s, %s)", info.version, info.digest[:12], "new" if info.created else "unchanged")
    return DataInput(info.csv, info.digest, info.version)


@dataclass(frozen=True)
class EvalSet:
    manifest: Path
    split: str
    why: str
    digest: str
    samples: list = field(repr=False, default_factory=list)

    def describe(self) -> dict:
        return {"manifest": str(self.manifest), "split": self.split, "why": self.why, "digest": self.digest,
                "n": len(self.samples)}


def _splits(manifest: Path) -> set[str]:
    with Path(manifest).open(newline="", encoding="utf-8") as f:
        return {(row.get("split") or "").strip() for row in csv.DictReader(f)}


def fetch_snapshot(settings: Settings, cfg: CIConfig, name: str, version: str) -> Path | None:
    """The data snapshot `version` was trained on, in this pod's snapshots folder: its manifest and sidecar
    from the version's MLflow run, its images from the object store. How `evaluate` reads what `retrain`
    wrote on another node without a shared volume. None when the version used no snapshot."""
    number = _tags(name, version).get(TAG_DATA_SNAPSHOT)
    if cfg.eval_manifest or not number:
        return None
    target = snapshots_dir(settings, cfg) / f"v{int(number):04d}"
    if not ((target / "manifest.csv").is_file() and (target / "snapshot.json").is_file()):
        import tempfile

        import mlflow

        run_id = _version(name, version).run_id
        try:
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=SNAPSHOT_ARTIFACTS, dst_path=tmp))
                target.mkdir(parents=True, exist_ok=True)
                for file in ("manifest.csv", "snapshot.json"):
                    shutil.copyfile(local / file, target / file)
        except Exception as e:
            raise StepError(f"models:/{name}/{version} was trained on snapshot v{int(number):04d}, but its files "
                            f"are not in run {run_id} ({str(e).splitlines()[0][:200]}); retrain it") from None
    from model.etl.snapshots import materialize
    from model.etl.store import Store, StoreError

    try:
        store = Store.open(settings.store_url, settings.object_store, settings=settings)
        try:
            materialize(target / "manifest.csv", store)
        finally:
            store.close()
    except StoreError as e:
        raise StepError(f"the images of snapshot v{int(number):04d} cannot be fetched: {e}") from None
    return target


def resolve_eval_set(settings: Settings, cfg: CIConfig) -> EvalSet:
    """The frozen set the gate compares on: configured, else the latest snapshot's test split, else val."""
    from model.manifest import read_manifest, subsample

    if cfg.eval_manifest:
        manifest, why = Path(cfg.eval_manifest), "AIDETECT_CI_EVAL_MANIFEST names it"
    elif (snap := latest_snapshot(snapshots_dir(settings, cfg))) is not None:
        manifest, why = snap / "manifest.csv", f"it is the latest data snapshot ({snap.name})"
    else:
        manifest, why = Path(settings.manifest), "no data snapshot exists, so the shared manifest is used"
    if not manifest.is_file():
        raise StepError(f"evaluation manifest not found: {manifest}")
    split = cfg.eval_split or ("test" if "test" in _splits(manifest) else "val")
    if not cfg.eval_split:
        why += "; split " + ("test: the frozen test split" if split == "test" else "val: it has no test split")
    samples = read_manifest(manifest, split=split)
    if cfg.eval_per_group:
        samples = subsample(samples, cfg.eval_per_group)
    if not samples:
        raise StepError(f"{manifest}: no images in split {split!r} to evaluate on")
    h = hashlib.sha256(f"{split}\n".encode())
    # File names, not folders: a snapshot's object keys are content hashes, so the digest follows content.
    for s in sorted(samples, key=lambda s: (s.path.name, s.source, s.label)):
        h.update(f"{s.path.name}\t{s.label}\t{s.source}\n".encode())
    return EvalSet(manifest, split, why, h.hexdigest(), samples)


# --- retrain --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrainResult:
    name: str
    version: str
    uri: str
    reused: bool
    data: DataInput
    val_auroc: float | None

    def outputs(self) -> dict:
        return {"version": self.version, "model_uri": self.uri, "reused": self.reused,
                "data_digest": self.data.digest, "snapshot": self.data.snapshot or ""}


def _train_config(cfg: CIConfig):
    from model.train import RECIPE, load_config

    return load_config(cfg.recipe or RECIPE, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                       per_group=cfg.per_group, seed=cfg.seed)


def train_key(sha: str | None, data_digest: str, params: dict) -> str:
    blob = json.dumps({"git": sha or "", "data": data_digest, "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _find_version_by_tag(name: str, key: str, value: str):
    try:
        versions = _client().search_model_versions(f"name='{name}'")
    except Exception:  # no such model yet
        return None
    hits = [v for v in versions if (v.tags or {}).get(key) == value]
    return max(hits, key=lambda v: int(v.version), default=None)


def retrain(settings: Settings, cfg: CIConfig, progress=None) -> RetrainResult:
    """Snapshot, train, register, tag (data digest, git sha, metrics) and give the version `challenger`."""
    import mlflow

    from model import registry
    from model.jobs import flat_metrics, train_and_register
    from model.train import flat_params

    registry.configure(settings)
    data = take_snapshot(settings, cfg)
    tcfg = _train_config(cfg)
    sha = actions.git_sha()
    key = train_key(sha, data.digest, flat_params(tcfg))
    existing = _find_version_by_tag(settings.model_name, TAG_TRAIN_KEY, key)
    if existing is not None:
        version, reused = str(existing.version), True
        log.info("v%s was trained from this commit, data and recipe: reusing it", version)
        val_auroc = float((existing.tags or {}).get("val_auroc", "nan"))
    else:
        trained_on = Settings(**{**settings.model_dump(), "manifest": data.manifest})
        ref, report = train_and_register(trained_on, tcfg, progress)
        version, reused = ref.version, False
        val_auroc = report["metrics"]["overall"]["auroc"]
        if data.snapshot is not None:
            from model.etl.snapshots import log_snapshot_input

            with mlflow.start_run(run_id=ref.run_id):
                log_snapshot_input(data.manifest)
                # The snapshot's files travel with the run, its images are in the object store: the
                # evaluate step, on another pod with nothing shared, fetches both (fetch_snapshot).
                for name in ("manifest.csv", "snapshot.json"):
                    mlflow.log_artifact(str(data.manifest.parent / name), SNAPSHOT_ARTIFACTS)
        tags = {TAG_TRAIN_KEY: key, TAG_DATA_DIGEST: data.digest, TAG_DATA_MANIFEST: str(data.manifest),
                TAG_DATA_SNAPSHOT: "" if data.snapshot is None else str(data.snapshot), TAG_GIT_SHA: sha or ""}
        tags.update({k: f"{v:.4f}" for k, v in flat_metrics(report["metrics"]).items() if k.endswith("auroc")})
        registry.set_version_tags(ref, tags)
    registry.set_alias(settings.model_name, CHALLENGER, version)
    name = settings.model_name
    return RetrainResult(name, version, f"models:/{name}/{version}", reused, data, val_auroc)


# --- evaluate + gate -----------------------------------------------------------------------------


def gate_metrics(result: dict) -> dict:
    """The numbers the gate and the report use, from model.evaluate.evaluate_bundle's result."""
    o, q = result["metrics"]["overall"], result["metrics_q60"]["overall"]
    # Groups, not sources: a single-label source alone has no AUROC; it counts in the pooled group.
    groups = {
        g: {"n": m.get("n"), "auroc": m.get("auroc"), "auroc_ci": m.get("auroc_ci"),
            "auroc_q60": result["groups_q60"][g].get("auroc")}
        for g, m in result.get("groups", {}).items()
        if g != "overall"
    }
    return {
        "auroc": o["auroc"],
        "auroc_q60": q["auroc"],
        "auroc_drop_q60": o["auroc"] - q["auroc"],
        "fpr": result["fp_rate_at_high"],
        "threshold": result["thresholds"]["high"],
        "ap": o.get("ap"),
        "tpr_at_1fpr": o.get("tpr_at_1fpr"),
        "ece": o.get("ece"),
        "n": result["n"],
        "groups": groups,
    }


def _clean(d):
    """NaN -> None, so the tag is valid JSON."""
    if isinstance(d, dict):
        return {k: _clean(v) for k, v in d.items()}
    return None if isinstance(d, float) and d != d else d


def measure(settings: Settings, name: str, version: str, eval_set: EvalSet, progress=None) -> dict:
    """Metrics of one version on the evaluation set: from its tags when measured on this set before,
    else evaluated now (logged as an MLflow run, cached on the version)."""
    import mlflow

    from model import registry
    from model.evaluate import evaluate_bundle, log_to_mlflow
    from model.jobs import flat_metrics

    tags = _tags(name, version)
    info = {"name": name, "version": version, "uri": f"models:/{name}/{version}", "git_sha": tags.get(TAG_GIT_SHA),
            "data_digest": tags.get(TAG_DATA_DIGEST), "train_run_id": _version(name, version).run_id}
    if tags.get(TAG_EVAL_DIGEST) == eval_set.digest and tags.get(TAG_EVAL_METRICS):
        log.info("v%s was measured on this evaluation set already", version)
        return {**json.loads(tags[TAG_EVAL_METRICS]), **info}
    import tempfile

    bundle, ref = registry.load_detector(info["uri"])
    exp_id = registry.ensure_experiment(settings)
    with tempfile.TemporaryDirectory() as tmp:
        result = evaluate_bundle(bundle, eval_set.manifest, Path(tmp), split=eval_set.split,
                                 samples=eval_set.samples, progress=progress)
        with mlflow.start_run(experiment_id=exp_id, run_name=f"ci-evaluate-v{version}") as run:
            mlflow.set_tags({"model_name": name, "model_version": version, "eval_digest": eval_set.digest})
            mlflow.log_params({"eval_manifest": str(eval_set.manifest), "eval_split": eval_set.split,
                               "eval_n": len(eval_set.samples)})
            mlflow.log_metrics(flat_metrics(result["metrics"], eval_set.split))
            mlflow.log_metrics(flat_metrics(result["metrics_q60"], f"{eval_set.split}_q60"))
            mlflow.log_metric(f"{eval_set.split}_fpr_at_threshold", result["fp_rate_at_high"])
            mlflow.log_dict(result, "evaluation.json")
            log_to_mlflow(result, Path(tmp))  # groups with intervals, tables, plots
    metrics = _clean(gate_metrics(result))
    metrics["eval_run_id"] = run.info.run_id
    registry.set_version_tags(ref, {
        TAG_EVAL_DIGEST: eval_set.digest,
        TAG_EVAL_METRICS: json.dumps(metrics, sort_keys=True),
        "ci.eval.auroc": f"{metrics['auroc']:.4f}",
        "ci.eval.auroc_q60": f"{metrics['auroc_q60']:.4f}",
        "ci.eval.fpr": f"{metrics['fpr']:.4f}",
    })
    return {**metrics, **info}


@dataclass
class EvaluateResult:
    decision: Decision
    challenger: dict
    production: dict | None
    eval_set: dict
    report: str
    gate_run_id: str | None = None

    def outputs(self) -> dict:
        return {"promote": self.decision.promote, "version": self.challenger["version"],
                "production_version": (self.production or {}).get("version", ""),
                "reason": self.decision.summary, "eval_split": self.eval_set["split"]}


def evaluate(settings: Settings, cfg: CIConfig, version: str | None = None, progress=None) -> EvaluateResult:
    """Gate the challenger against production on the frozen set; record the decision on the version,
    log the report as an MLflow artifact and append it to the Actions job summary."""
    from model import registry

    registry.configure(settings)
    name = settings.model_name
    version = version or registry.alias_version(name, CHALLENGER)
    if version is None:
        raise StepError(f"no version of {name} holds @{CHALLENGER}; run `aidetect ci retrain` first")
    fetch_snapshot(settings, cfg, name, version)
    eval_set = resolve_eval_set(settings, cfg)
    rules = GateRules.from_config(cfg)
    challenger = measure(settings, name, version, eval_set, progress)
    prod_version = registry.alias_version(name, settings.production_alias)
    if prod_version == version:
        decision = Decision(False, [], f"v{version} already holds {settings.production_alias}: nothing to promote")
        production = challenger
    else:
        production = measure(settings, name, prod_version, eval_set, progress) if prod_version else None
        decision = decide(challenger, production, rules)
    report = gate_report(decision, challenger, production if prod_version != version else None,
                         eval_set.describe(), rules)
    # The same version, set, incumbent and rules decide the same way: a re-run records nothing new.
    gate_key = hashlib.sha256(json.dumps([eval_set.digest, prod_version, rules.__dict__], sort_keys=True).encode())
    tags = _tags(name, version)
    run_id = tags.get("ci.gate.run_id")
    # A version already in production keeps the verdict that put it there.
    if prod_version != version and (tags.get(TAG_GATE_KEY) != gate_key.hexdigest() or not run_id):
        run_id = _record_gate(settings, name, version, prod_version, decision, report, eval_set, challenger,
                              production, rules, gate_key.hexdigest())
    actions.append_summary(report)
    return EvaluateResult(decision, challenger, production, eval_set.describe(), report, run_id)


def _record_gate(settings, name, version, prod_version, decision, report, eval_set, challenger, production, rules,
                 gate_key) -> str:
    """The report and decision as an MLflow run (gate/report.md, gate/decision.json), the verdict as tags."""
    import mlflow

    from model import registry
    from model.registry import ModelRef

    with mlflow.start_run(experiment_id=registry.ensure_experiment(settings), run_name=f"ci-gate-v{version}") as run:
        mlflow.set_tags({"model_name": name, "model_version": version, "gate": "passed" if decision.promote else
                         "rejected", "against_version": prod_version or ""})
        mlflow.log_text(report, "gate/report.md")
        mlflow.log_dict({"decision": decision.as_dict(), "eval_set": eval_set.describe(), "challenger": challenger,
                         "production": production, "rules": rules.__dict__}, "gate/decision.json")
    registry.set_version_tags(ModelRef(name, version, f"models:/{name}/{version}"), {
        TAG_GATE: "passed" if decision.promote else "rejected",
        TAG_GATE_REASON: decision.summary[:4000],
        TAG_GATE_AGAINST: prod_version or "",
        TAG_GATE_EVAL: eval_set.digest,
        TAG_GATE_KEY: gate_key,
        "ci.gate.run_id": run.info.run_id,
    })
    return run.info.run_id


# --- promote and rollback -----------------------------------------------------------------------


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
    from model import registry

    if cfg.pin:
        return _read_pin(cfg.overlay(stage))
    return registry.alias_version(settings.model_name, settings.production_alias if stage == "production" else stage)


def _move(settings: Settings, cfg: CIConfig, stage: str, version: str, action: str, metrics: dict,
          record_previous: bool) -> MoveResult:
    """Alias first (the decision), then the pin and its commit (what serves); both skip when already there."""
    from model import registry
    from model.registry import ModelRef

    name = settings.model_name
    alias = settings.production_alias if stage == "production" else stage
    current = _current(settings, cfg, stage)
    held = registry.alias_version(name, alias)
    ref = ModelRef(name, version, f"models:/{name}/{version}")
    if record_previous and current and current != version:
        registry.set_version_tags(ref, {f"ci.replaced.{stage}": current})
        if f"{TAG_RESTORED}.{stage}" in _tags(name, version):  # promoted anew, not restored
            _client().delete_model_version_tag(name, version, f"{TAG_RESTORED}.{stage}")
    if held != version:
        registry.set_alias(name, alias, version)
    previous = current if current != version else None
    if not cfg.pin and not previous and held == version:
        # A re-run after the alias moved: report what the move replaced, for the job that pins next.
        previous = _tags(name, version).get(f"ci.replaced.{stage}") if record_previous else None
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
    from model import registry

    registry.configure(settings)
    name = settings.model_name
    source = previous_stage(stage)
    source_alias = settings.production_alias if source == "production" else source
    holder = registry.alias_version(name, source_alias)
    version = version or holder
    if version is None:
        raise StepError(f"no version of {name} holds @{source_alias}; promote to {source} first")
    if version != holder:
        raise StepError(f"v{version} does not hold @{source_alias} (v{holder} does); a model reaches {stage} "
                        f"only through {source}")
    tags = _tags(name, version)
    if tags.get(TAG_GATE) != "passed":
        raise StepError(f"v{version} has not passed the gate ({tags.get(TAG_GATE_REASON) or 'never evaluated'}); "
                        "run `aidetect ci evaluate`")
    metrics = json.loads(tags.get(TAG_EVAL_METRICS) or "{}")
    metrics.update({"data_digest": tags.get(TAG_DATA_DIGEST), "git_sha": tags.get(TAG_GIT_SHA),
                    "gate": tags.get(TAG_GATE_REASON)})
    return _move(settings, cfg, stage, version, "Promote", metrics, record_previous=True)


def rollback(settings: Settings, cfg: CIConfig, stage: str, version: str | None = None,
             to_version: str | None = None) -> MoveResult:
    """Put `stage` back on what `version` (default: the pinned one) replaced there; re-running is a no-op."""
    from model import registry
    from model.registry import ModelRef

    if stage not in STAGES:
        raise StepError(f"unknown stage {stage!r}; use one of {', '.join(STAGES)}")
    registry.configure(settings)
    name = settings.model_name
    pinned = _current(settings, cfg, stage)
    if pinned is None:
        raise StepError(f"no version holds {stage}; nothing to roll back")
    alias = settings.production_alias if stage == "production" else stage
    restored_from = _tags(name, pinned).get(f"{TAG_RESTORED}.{stage}")
    if version is None and restored_from:
        # Without --version a re-run must not walk back one more version; going further is explicit.
        if registry.alias_version(name, alias) != pinned:
            registry.set_alias(name, alias, pinned)
        return MoveResult(stage, pinned, None, False, None,
                          f"{stage} was rolled back to v{pinned} (from v{restored_from}) already; "
                          f"pass --version {pinned} to roll back further")
    bad = version or pinned
    target = to_version or _tags(name, bad).get(f"ci.replaced.{stage}")
    if not target:
        raise StepError(f"no record of what v{bad} replaced in {stage}; pass --to-version")
    if bad != pinned and pinned == target:
        if registry.alias_version(name, alias) != target:
            registry.set_alias(name, alias, target)
        return MoveResult(stage, target, None, False, None, f"{stage} already rolled back from v{bad} to v{target}")
    if bad != pinned:
        raise StepError(f"{stage} pins v{pinned}, not v{bad}; nothing of v{bad} to roll back")
    tags = _tags(name, target)
    metrics = json.loads(tags.get(TAG_EVAL_METRICS) or "{}")
    import datetime as dt

    registry.set_version_tags(ModelRef(name, bad, f"models:/{name}/{bad}"),
                              {f"ci.rolled_back.{stage}": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    result = _move(settings, cfg, stage, target, "Roll back", metrics, record_previous=False)
    registry.set_version_tags(ModelRef(name, target, f"models:/{name}/{target}"), {f"{TAG_RESTORED}.{stage}": bad})
    return result


# --- status and triggers ---------------------------------------------------------------------------


def status(settings: Settings, cfg: CIConfig) -> dict:
    """Who holds each alias and what each overlay pins: the two should agree after a completed run."""
    from model import registry

    registry.configure(settings)
    name = settings.model_name
    out = {"challenger": {"alias": registry.alias_version(name, CHALLENGER)}}
    for stage in STAGES:
        alias = settings.production_alias if stage == "production" else stage
        out[stage] = {"alias": registry.alias_version(name, alias), "pin": _read_pin(cfg.overlay(stage))}
    return out


def gather_signals(settings: Settings, event: str, signals_file: Path | None, drift: float | None,
                   moderator_labels: int | None, use_store: bool):
    """Explicit inputs first (flags, then the JSON file); the ETL database and registry fill the rest."""
    from ci.triggers import Signals, age_days, count_moderator_labels, read_signals_json

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
    from model import registry

    registry.configure(settings)
    prod = registry.alias_version(settings.model_name, settings.production_alias)
    age = age_days(_version(settings.model_name, prod).creation_timestamp) if prod else None
    return Signals(event=event, moderator_labels=found.get("moderator_labels"), drift=found.get("drift"),
                   model_age_days=age, has_production=prod is not None)
