"""`aidetect ci evaluate`: measure the challenger and production on the frozen set, gate, record the verdict.

    result = evaluate(settings, cfg)     # -> EvaluateResult(decision, challenger, production, eval_set, report)

Measuring goes through model.jobs.evaluate_and_log, the path `aidetect evaluate` uses; a version measured on
the same evaluation set before is read back from its tags. The same version, set, incumbent and rules decide
the same way, so a re-run records nothing new.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from aidetect.settings import Settings
from ci import actions
from ci.config import CIConfig
from ci.errors import StepError
from ci.gate import Decision, GateRules, decide
from ci.report import gate_report
from ci.snapshot import EvalSet, fetch_snapshot, resolve_eval_set
from model import registry

log = logging.getLogger(__name__)


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
    from model.jobs import evaluate_and_log

    mv = registry.get_version(name, version)
    tags = dict(mv.tags or {})
    info = {"name": name, "version": version, "uri": registry.model_uri(name, version),
            "git_sha": tags.get(registry.TAG_GIT_SHA), "data_digest": registry.data_digest(tags),
            "train_run_id": mv.run_id}
    if tags.get(registry.TAG_EVAL_DIGEST) == eval_set.digest and tags.get(registry.TAG_EVAL_METRICS):
        log.info("v%s was measured on this evaluation set already", version)
        return {**json.loads(tags[registry.TAG_EVAL_METRICS]), **info}
    bundle, ref = registry.load_detector(info["uri"])
    result, run_id = evaluate_and_log(settings, bundle, ref, eval_set.manifest, eval_set.samples, eval_set.split,
                                      progress=progress, run_name=f"ci-evaluate-v{version}",
                                      tags={"eval_digest": eval_set.digest})
    metrics = _clean(gate_metrics(result))
    metrics["eval_run_id"] = run_id
    registry.set_version_tags(ref, {
        registry.TAG_EVAL_DIGEST: eval_set.digest,
        registry.TAG_EVAL_METRICS: json.dumps(metrics, sort_keys=True),
        registry.TAG_EVAL_AUROC: f"{metrics['auroc']:.4f}",
        registry.TAG_EVAL_AUROC_Q60: f"{metrics['auroc_q60']:.4f}",
        registry.TAG_EVAL_FPR: f"{metrics['fpr']:.4f}",
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
    registry.configure(settings)
    name = settings.model_name
    version = version or registry.alias_version(name, registry.CHALLENGER)
    if version is None:
        raise StepError(f"no version of {name} holds @{registry.CHALLENGER}; run `aidetect ci retrain` first")
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
    tags = registry.version_tags(name, version)
    run_id = tags.get(registry.TAG_GATE_RUN_ID)
    # A version already in production keeps the verdict that put it there.
    if prod_version != version and (tags.get(registry.TAG_GATE_KEY) != gate_key.hexdigest() or not run_id):
        run_id = _record_gate(settings, name, version, prod_version, decision, report, eval_set, challenger,
                              production, rules, gate_key.hexdigest())
    actions.append_summary(report)
    return EvaluateResult(decision, challenger, production, eval_set.describe(), report, run_id)


def _record_gate(settings, name, version, prod_version, decision, report, eval_set, challenger, production, rules,
                 gate_key) -> str:
    """The report and decision as an MLflow run (gate/report.md, gate/decision.json), the verdict as tags."""
    import mlflow

    verdict = "passed" if decision.promote else "rejected"
    with mlflow.start_run(experiment_id=registry.ensure_experiment(settings), run_name=f"ci-gate-v{version}") as run:
        mlflow.set_tags({"model_name": name, "model_version": version, "gate": verdict,
                         "against_version": prod_version or ""})
        mlflow.log_text(report, "gate/report.md")
        mlflow.log_dict({"decision": decision.as_dict(), "eval_set": eval_set.describe(), "challenger": challenger,
                         "production": production, "rules": rules.__dict__}, "gate/decision.json")
    registry.set_version_tags(registry.version_ref(name, version), {
        registry.TAG_GATE: verdict,
        registry.TAG_GATE_REASON: decision.summary[:4000],
        registry.TAG_GATE_AGAINST: prod_version or "",
        registry.TAG_GATE_EVAL: eval_set.digest,
        registry.TAG_GATE_KEY: gate_key,
        registry.TAG_GATE_RUN_ID: run.info.run_id,
    })
    return run.info.run_id
