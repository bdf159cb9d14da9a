"""Settings of the retrain -> evaluate -> promote loop, from AIDETECT_CI_* variables (as GitHub Actions passes them).

    AIDETECT_CI_MIN_AUROC_GAIN=0.01 AIDETECT_CI_EVAL_SPLIT=test aidetect ci evaluate

Shared settings (tracking URI, model name, manifest, home) stay in aidetect.settings; only what the loop
alone needs lives here. Nothing is read from disk or network when this is built.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.registry import CHALLENGER

_REPO_ROOT = Path(__file__).resolve().parent.parent

# The path a model takes, in order; each stage is promoted from the one before it.
STAGES = ("staging", "canary", "production")


class CIConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIDETECT_CI_", extra="ignore")

    # --- the gate (ci/gate.py) ---
    min_auroc_gain: float = Field(0.01, description="AUROC the challenger must add over production")
    max_fpr_increase: float = Field(0.0, description="false-positive rate at the operating threshold it may add")
    max_q60_auroc_drop: float = Field(
        0.0, description="AUROC on recompressed inputs (JPEG q60, <=768 px) it may lose against production"
    )
    min_auroc: float = Field(0.5, description="AUROC floor every challenger must clear, first one included")

    # --- the frozen evaluation set ---
    eval_manifest: Path | None = Field(
        None, description="manifest to gate on; default: latest snapshot (test split), else AIDETECT_MANIFEST (val)"
    )
    eval_split: str | None = Field(None, description="split of eval_manifest; default test where present, else val")
    eval_per_group: int | None = Field(None, description="at most N images per source/label (quick runs)")

    # --- training ---
    recipe: Path | None = Field(
        None, description="training recipe YAML; default the one `aidetect train` uses (model.train.RECIPE)"
    )
    epochs: int | None = Field(None, description="override the recipe's epochs")
    batch_size: int | None = Field(None, description="override the recipe's batch size")
    lr: float | None = Field(None, description="override the recipe's learning rate")
    per_group: int | None = Field(None, description="train on at most N images per source/label/split")
    seed: int | None = Field(None, description="override the recipe's seed")
    snapshot: str = Field(
        "auto", description="take a data snapshot before training: auto (when AIDETECT_STORE_URL is set), always, never"
    )
    snapshots_dir: Path | None = Field(None, description="where snapshots live; default AIDETECT_HOME/snapshots")

    # --- the pin in Git ---
    gitops_repo: Path = Field(_REPO_ROOT, description="git checkout holding gitops/; pins are committed there")
    overlays: str = Field("gitops/apps/detector/overlays", description="overlay folders, relative to gitops_repo")
    pin: bool = Field(True, description="write the pin in gitops/ (false: move the alias only; a later job pins)")
    commit: bool = Field(True, description="commit the pin change (false: only write the file)")

    # --- triggers (ci/triggers.py) ---
    feedback_threshold: int = Field(200, description="moderator labels since the last snapshot that warrant a retrain")
    drift_threshold: float = Field(0.2, description="drift score (PSI of the served scores) that warrants a retrain")
    max_model_age_days: float = Field(7.0, description="scheduled runs retrain a production model older than this")

    def overlay(self, stage: str) -> Path:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; use one of {', '.join(STAGES)}")
        return self.gitops_repo / self.overlays / stage


def previous_stage(stage: str) -> str:
    """The alias a stage is promoted from: challenger -> staging -> canary -> production."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; use one of {', '.join(STAGES)}")
    i = STAGES.index(stage)
    return CHALLENGER if i == 0 else STAGES[i - 1]


def get_ci_config(**overrides) -> CIConfig:
    return CIConfig(**{k: v for k, v in overrides.items() if v is not None})
