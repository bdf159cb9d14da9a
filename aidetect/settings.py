"""Every default aidetect uses, in one place, each overridable by an AIDETECT_* variable.

    AIDETECT_HOME=/srv/aidetect AIDETECT_MODEL_URI=models:/aidetect/7 aidetect serve

Nothing here touches disk or network: paths are computed, not created.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_home() -> Path:
    return Path.home() / ".aidetect"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIDETECT_", extra="ignore")

    # --- where things live ---
    home: Path = Field(default_factory=_default_home, description="data directory: MLflow store, artifacts")
    manifest: Path = Field(
        default=_REPO_ROOT.parent / "shared" / "data" / "manifest.csv",
        description="labelled image manifest (path,label,source,split,origin)",
    )
    recipe: Path = Field(
        default=_REPO_ROOT / "configs" / "cnn_baseline.yaml",
        description="training recipe `aidetect train` uses without --recipe (bench/recipes.py chose it)",
    )

    # --- data pipeline (model/etl) ---
    store_url: str | None = Field(default=None, description="ETL database URL; default SQLite in home")
    object_store: str | None = Field(
        default=None, description="images: a directory or s3://bucket[/prefix]; default home/objects"
    )

    # --- registry ---
    tracking_uri: str | None = Field(default=None, description="MLflow tracking URI; default SQLite under home")
    registry_uri: str | None = Field(default=None, description="MLflow registry URI; default = tracking URI")
    experiment: str = Field(default="aidetect", description="MLflow experiment for training runs")
    model_name: str = Field(default="aidetect", description="registered model name")
    production_alias: str = Field(default="production", description="alias the service follows by default")
    model_uri: str | None = Field(default=None, description="model to serve; default models:/<name>@<alias>")

    # --- input limits (shared by training-time decoding and the service) ---
    max_bytes: int = Field(default=20 * 1024 * 1024, ge=1, description="largest accepted upload, bytes")
    max_pixels: int = Field(default=40_000_000, ge=1, description="largest accepted image, width*height")

    # --- service ---
    host: str = Field(default="127.0.0.1", description="address the detector binds")
    port: int = Field(default=8000, ge=1, le=65535, description="port the detector binds")
    # On 2 CPU cores EfficientNet at 256 px is fastest per image at batch 4-8 (bench/serve_throughput.py).
    max_batch_size: int = Field(default=4, ge=1, description="dynamic batching: most images per forward pass")
    # On a CPU a single-thread worker's cost per image hardly changes with the batch, so waiting for a batch
    # to fill only adds latency; under load the queue fills batches by itself (service/litserve_compat.py).
    batch_timeout: float = Field(
        default=0.0, ge=0, description="dynamic batching: seconds to wait for a batch to fill; 0 = take what is queued"
    )
    workers_per_device: int = Field(
        default=0,
        ge=0,
        description="inference worker processes; 0 = one per available CPU core, at most 4 (most images/s); "
        "1 = lowest latency for a lone request",
    )
    torch_threads: int = Field(
        default=0,
        ge=0,
        description="threads per inference worker (ONNX Runtime intra-op, or torch); 0 = cores / workers",
    )
    runtime: Literal["auto", "onnx", "torch"] = Field(
        default="auto",
        description="fast-stage runtime: auto = the version's ONNX export (torch when it has none), onnx, torch",
    )
    qwen_url: str | None = Field(
        default=None, description="cascade: Qwen stage server for uncertain images (e.g. http://127.0.0.1:8001)"
    )
    qwen_timeout: float = Field(default=10.0, gt=0, description="cascade: seconds to wait for the Qwen stage")
    auth_required: bool = Field(
        default=False, description="detect/feedback need an API key; False = open (local embedded mode)"
    )
    rate_limit_per_minute: int = Field(default=600, ge=1, description="requests per API key (or client) per minute")
    max_images_per_request: int = Field(default=16, ge=1, description="most images one POST /v1/detect/batch takes")
    upload_idle_timeout: float = Field(
        default=30.0, ge=0, description="an upload that sends no bytes for this many seconds is answered 408; 0 = never"
    )
    upload_timeout: float = Field(
        default=120.0,
        ge=0,
        description="an upload not received whole within this many seconds is answered 408; 0 = never",
    )
    outbox_max_records: int = Field(
        default=1_000_000,
        ge=0,
        description="detect answers 503 while this many records wait in the local outbox for the database "
        "(about 1 KB each); 0 = no limit",
    )
    cors_origins: list[str] = Field(default=[], description="origins allowed by CORS; [] = same origin only")
    review_retention_days: float = Field(default=30, gt=0, description="unlabelled kept review images live this long")
    moderator_header: str | None = Field(
        default=None, description="trust this header as the moderator's name (OIDC proxy in front only)"
    )
    secure_cookies: bool = Field(
        default=False, description="session cookies marked Secure even over http (TLS ends at a proxy in front)"
    )
    login_attempts_per_account: int = Field(default=5, ge=1, description="moderator sign-ins per account per minute")
    login_attempts_per_client: int = Field(
        default=20, ge=1, description="moderator sign-ins per client address per minute"
    )

    @cached_property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @cached_property
    def artifact_root(self) -> Path:
        return self.home / "mlartifacts"

    @cached_property
    def resolved_model_uri(self) -> str:
        if self.model_uri:
            return self.model_uri
        from model.registry import alias_uri  # here, not above: model.registry imports this module (and mlflow)

        return alias_uri(self.model_name, self.production_alias)


def get_settings(**overrides) -> Settings:
    """Fresh settings from the environment; keyword overrides win (the CLI passes its flags here)."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def markdown_table() -> str:
    """The configuration table of the README, made from the fields above so the two cannot drift."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, f in Settings.model_fields.items():
        if f.default_factory is not None:
            default = "`~/.aidetect`" if name == "home" else "(computed)"
        elif f.default is None:
            default = "(derived)"
        else:
            d = f.default
            default = "`../shared/data/manifest.csv`" if name == "manifest" else f"`{d}`"
            if isinstance(d, Path) and d.is_relative_to(_REPO_ROOT):
                default = f"`{d.relative_to(_REPO_ROOT)}`"
        rows.append(f"| `AIDETECT_{name.upper()}` | {default} | {f.description or ''} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m aidetect.settings  -> the README table
    print(markdown_table())
