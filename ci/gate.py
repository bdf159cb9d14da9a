"""The promotion gate: a pure decision from the challenger's and production's numbers on the same frozen set.

    decision = decide(challenger, production, GateRules(min_auroc_gain=0.01))
    decision.promote, decision.reasons

Each metrics dict holds, for one model on the evaluation set:
    auroc      AUROC of the calibrated score
    auroc_q60  AUROC on the same images re-encoded as a platform would (JPEG q60, longest side <= 768 px)
    fpr        share of real images at or above the model's own operating ("ai_generated") threshold
    groups     optional {group: {"auroc": ..}}: each two-label source and the single-label sources pooled
               (model.evaluate). A single-label source is never a group (one label has no AUROC), and a
               group whose AUROC is NaN on either side is reported as skipped, never compared.

A challenger is promoted only when every check passes. With no production model yet, only the floor
applies: the first model has nothing to beat, but must still be better than chance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

REQUIRED = ("auroc", "auroc_q60", "fpr")


@dataclass(frozen=True)
class GateRules:
    min_auroc_gain: float = 0.01  # AUROC the challenger must add over production
    max_fpr_increase: float = 0.0  # false-positive rate at the operating threshold it may add
    max_q60_auroc_drop: float = 0.0  # AUROC on recompressed inputs it may lose against production
    min_auroc: float = 0.5  # floor for every challenger
    max_group_auroc_drop: float = 0.02  # AUROC any group (two-label source, single-label pool) may lose

    @classmethod
    def from_config(cls, cfg) -> GateRules:
        drop = getattr(cfg, "max_group_auroc_drop", cls.max_group_auroc_drop)
        return cls(cfg.min_auroc_gain, cfg.max_fpr_increase, cfg.max_q60_auroc_drop, cfg.min_auroc, drop)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    challenger: float
    production: float | None
    limit: float  # the value the challenger had to reach (>=) or stay under (<=)
    detail: str


@dataclass(frozen=True)
class Decision:
    promote: bool
    checks: list[Check] = field(default_factory=list)
    note: str = ""

    @property
    def reasons(self) -> list[str]:
        """Why not, one line per failed check; empty when promoted."""
        return [c.detail for c in self.checks if not c.passed]

    @property
    def summary(self) -> str:
        if self.promote:
            return "promote: " + (self.note or "every check passed")
        return "reject: " + "; ".join(self.reasons or [self.note])

    def as_dict(self) -> dict:
        return {"promote": self.promote, "note": self.note, "summary": self.summary,
                "checks": [asdict(c) for c in self.checks]}


def _missing(name: str, m: dict) -> list[str]:
    return [k for k in REQUIRED if not isinstance(m.get(k), int | float) or m[k] != m[k]]


def decide(challenger: dict, production: dict | None, rules: GateRules) -> Decision:
    """Promote or not, with every number behind it. Raises ValueError on incomplete metrics."""
    for who, m in (("challenger", challenger), ("production", production)):
        if m is not None and (gaps := _missing(who, m)):
            raise ValueError(f"{who} metrics lack {', '.join(gaps)}; evaluate it first")
    c = challenger
    checks = [
        Check(
            "auroc_floor",
            c["auroc"] >= rules.min_auroc,
            c["auroc"],
            None,
            rules.min_auroc,
            f"AUROC {c['auroc']:.4f} {'>=' if c['auroc'] >= rules.min_auroc else '<'} floor {rules.min_auroc:.4f}",
        )
    ]
    if production is None:
        ok = all(ch.passed for ch in checks)
        return Decision(ok, checks, "no production model yet: the floor is the only bar")
    p = production
    need = p["auroc"] + rules.min_auroc_gain
    gain = c["auroc"] - p["auroc"]
    checks.append(
        Check(
            "auroc_gain",
            c["auroc"] >= need - 1e-12,
            c["auroc"],
            p["auroc"],
            need,
            f"AUROC {c['auroc']:.4f} vs production {p['auroc']:.4f}: gain {gain:+.4f}, "
            f"{'meets' if c['auroc'] >= need - 1e-12 else 'below'} the required {rules.min_auroc_gain:+.4f}",
        )
    )
    fpr_cap = p["fpr"] + rules.max_fpr_increase
    checks.append(
        Check(
            "fpr",
            c["fpr"] <= fpr_cap + 1e-12,
            c["fpr"],
            p["fpr"],
            fpr_cap,
            f"false-positive rate at the operating threshold {c['fpr']:.4f} vs production {p['fpr']:.4f}: "
            f"{'within' if c['fpr'] <= fpr_cap + 1e-12 else 'raised above'} the allowed {fpr_cap:.4f}",
        )
    )
    q_floor = p["auroc_q60"] - rules.max_q60_auroc_drop
    checks.append(
        Check(
            "robustness_q60",
            c["auroc_q60"] >= q_floor - 1e-12,
            c["auroc_q60"],
            p["auroc_q60"],
            q_floor,
            f"AUROC on recompressed inputs (JPEG q60, <=768 px) {c['auroc_q60']:.4f} vs production "
            f"{p['auroc_q60']:.4f}: {'holds' if c['auroc_q60'] >= q_floor - 1e-12 else 'loses'} robustness "
            f"(floor {q_floor:.4f})",
        )
    )
    checks += group_checks(c.get("groups") or {}, p.get("groups") or {}, rules)
    return Decision(all(ch.passed for ch in checks), checks, "better than production on every check")


def _finite(x) -> bool:
    return isinstance(x, int | float) and x == x


def group_checks(challenger: dict, production: dict, rules: GateRules) -> list[Check]:
    """No group may lose more than the allowed AUROC; `overall` is the gain check's. Groups with a NaN or
    missing AUROC on either side (one label in this evaluation set) pass as skipped, saying so."""
    checks = []
    for g in sorted((set(challenger) & set(production)) - {"overall"}):
        ca, pa = (challenger[g] or {}).get("auroc"), (production[g] or {}).get("auroc")
        if not (_finite(ca) and _finite(pa)):
            checks.append(Check(f"group:{g}", True, float("nan") if ca is None else ca, pa, float("nan"),
                                f"{g}: no AUROC on both sides (one label in the evaluation set): skipped"))
            continue
        floor = pa - rules.max_group_auroc_drop
        ok = ca >= floor - 1e-12
        checks.append(Check(f"group:{g}", ok, ca, pa, floor,
                            f"{g}: AUROC {ca:.4f} vs production {pa:.4f}: "
                            f"{'holds' if ok else 'drops below'} the floor {floor:.4f}"))
    return checks
