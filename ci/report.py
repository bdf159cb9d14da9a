"""The gate's Markdown report: decision first, then every number behind it.

    md = gate_report(decision, challenger, production, eval_set, rules)
    Path(os.environ["GITHUB_STEP_SUMMARY"]).open("a").write(md)   # ci/measure.py does this

Pure: takes plain data, returns a string. The same text is the Actions job summary and an MLflow artifact.
"""

from __future__ import annotations

from ci.gate import Check, Decision, GateRules
from model.registry import model_uri

_LABELS = {
    "auroc_floor": "AUROC floor",
    "auroc_gain": "AUROC gain over production",
    "fpr": "False-positive rate at operating threshold",
    "robustness_q60": "AUROC on recompressed inputs (JPEG q60, <=768 px)",
}


def _f(x) -> str:
    return "n/a" if x is None or x != x else f"{x:.4f}"


def _check_row(c: Check) -> str:
    name = f"AUROC of group {c.name[6:]}" if c.name.startswith("group:") else _LABELS.get(c.name, c.name)
    return f"| {name} | {_f(c.challenger)} | {_f(c.production)} | {_f(c.limit)} | " + (
        "pass" if c.passed else "**fail**"
    ) + " |"


def _model_line(who: str, m: dict) -> str:
    bits = [f"`{m.get('uri', '?')}`"]
    for key, label in (("git_sha", "git"), ("data_digest", "data"), ("train_run_id", "train run"),
                       ("eval_run_id", "evaluation run")):
        if m.get(key):
            bits.append(f"{label} `{str(m[key])[:12]}`")
    return f"- **{who}**: " + ", ".join(bits)


def _groups_of(m: dict | None) -> dict:
    """Two-label sources and the single-label pool; older tags hold `per_source` instead."""
    m = m or {}
    return m.get("groups") or m.get("per_source") or {}


def _per_source(challenger: dict, production: dict | None) -> list[str]:
    cg, pg = _groups_of(challenger), _groups_of(production)
    sources = sorted(set(cg) | set(pg))
    if not sources:
        return []
    lines = [
        "",
        "<details><summary>Per group (two-label sources; single-label sources pooled)</summary>",
        "",
        "| group | n | AUROC (challenger) | AUROC (production) | AUROC q60 (challenger) | AUROC q60 (production) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in sources:
        c = cg.get(s) or {}
        p = pg.get(s) or {}
        n = c.get("n", p.get("n"))
        lines.append(
            f"| {s} | {n if n is not None else '?'} | {_f(c.get('auroc'))} | {_f(p.get('auroc'))} | "
            f"{_f(c.get('auroc_q60'))} | {_f(p.get('auroc_q60'))} |"
        )
    return [*lines, "", "</details>"]


def gate_report(
    decision: Decision, challenger: dict, production: dict | None, eval_set: dict, rules: GateRules
) -> str:
    """Markdown for a person deciding whether to trust the decision."""
    verdict = "PROMOTE" if decision.promote else "REJECT"
    versus = f"production v{production['version']}" if production else "no production model"
    lines = [
        f"## Model gate: {challenger.get('name', 'model')} v{challenger['version']} vs {versus}: **{verdict}**",
        "",
        decision.summary,
        "",
    ]
    if decision.reasons:
        lines += ["Reasons:", *[f"- {r}" for r in decision.reasons], ""]
    lines += [
        "| check | challenger | production | limit | result |",
        "|---|---:|---:|---:|---|",
        *[_check_row(c) for c in decision.checks],
        "",
        f"Evaluation set: `{eval_set['manifest']}` split **{eval_set['split']}**, {eval_set.get('n', '?')} images "
        f"(digest `{str(eval_set.get('digest', ''))[:16]}`), chosen because {eval_set.get('why', 'configured')}.",
        "",
        "| metric | challenger | production |",
        "|---|---:|---:|",
    ]
    for key, label in (
        ("auroc", "AUROC"),
        ("auroc_q60", "AUROC, JPEG q60"),
        ("auroc_drop_q60", "AUROC lost to recompression"),
        ("fpr", "false-positive rate at threshold"),
        ("threshold", "operating threshold (calibrated score)"),
        ("ap", "average precision"),
        ("tpr_at_1fpr", "TPR at 1% FPR"),
        ("ece", "ECE (calibrated)"),
    ):
        lines.append(f"| {label} | {_f(challenger.get(key))} | {_f((production or {}).get(key))} |")
    lines += _per_source(challenger, production)
    lines += [
        "",
        "Models:",
        _model_line(f"challenger v{challenger['version']}", challenger),
    ]
    if production:
        lines.append(_model_line(f"production v{production['version']}", production))
    lines += [
        "",
        f"Rules: AUROC gain >= {rules.min_auroc_gain:+.4f}; FPR increase <= {rules.max_fpr_increase:.4f}; "
        f"q60 AUROC loss <= {rules.max_q60_auroc_drop:.4f}; AUROC floor {rules.min_auroc:.4f} "
        "(AIDETECT_CI_MIN_AUROC_GAIN, _MAX_FPR_INCREASE, _MAX_Q60_AUROC_DROP, _MIN_AUROC).",
        "",
    ]
    return "\n".join(lines)


def commit_message(action: str, name: str, version: str, stage: str, metrics: dict, previous: str | None) -> str:
    """Subject naming the version and its numbers, body with the rest; used for every pin commit."""
    subject = (
        f"{action} {name} v{version} to {stage}: AUROC {_f(metrics.get('auroc'))}, "
        f"q60 {_f(metrics.get('auroc_q60'))}, FPR {_f(metrics.get('fpr'))}"
    )
    body = [
        f"{model_uri(name, version)} replaces " + (f"v{previous}" if previous else "nothing") + f" in {stage}.",
        "",
    ]
    for key in ("eval_set", "data_digest", "git_sha", "gate"):
        if metrics.get(key):
            body.append(f"{key}: {metrics[key]}")
    return subject + "\n\n" + "\n".join(body).rstrip() + "\n"
