"""The Qwen2-VL detector at inference: images in, calibrated scores, verdicts and explanations out.

det = QwenDetector.from_bundle("runs/qwen/bundle")          # or from_uri("models:/aidetect-qwen/3")
det.score([img1, img2])                                     # np.ndarray of P(ai), shape (2,)
det.predict([img], explain=[True])                          # [{"score", "verdict", "explanation"}]
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from model.calibration import apply_calibrator, verdict

from .config import QwenConfig
from .modeling import answer_ids, answer_logits, answer_margin, encode_batch, generate_text
from .vision import fit_image

# The service's verdict words (model/calibration.py). Without fitted stage thresholds the Qwen stage
# decides at cfg.threshold and never says "uncertain"; with them (model.qwen.thresholds) it has its own band.
VERDICTS = ("real", "ai_generated")
_SPOKEN = {"real": "real", "ai_generated": "AI-generated", "uncertain": "uncertain"}


def verdict_for(score: float, cfg: QwenConfig, thresholds: dict | None = None) -> str:
    if thresholds is not None:
        return verdict(score, thresholds)
    return VERDICTS[1] if score >= cfg.threshold else VERDICTS[0]


class QwenDetector:
    def __init__(self, model, tok, cfg: QwenConfig, calibrator: dict | None, bank, device: str = "cpu"):
        self.model, self.tok, self.cfg, self.calibrator, self.bank = model, tok, cfg, calibrator, bank
        self.device = device
        self.ids = answer_ids(tok, cfg)
        self.stage_fit: dict | None = None  # model.qwen.stage_fit.stored_fit, once applied
        self.stale: str | None = None  # model.qwen.stage_fit.staleness: the fit is not for the fast model in front
        self.thresholds: dict | None = None

    def use_stage_fit(self, fit: dict | None) -> QwenDetector:
        """Decide with the calibrator and thresholds fitted on the fast stage's uncertain band."""
        if fit is not None:
            self.stage_fit, self.calibrator, self.thresholds = fit, fit["calibrator"], fit["thresholds"]
        return self

    @classmethod
    def from_bundle(cls, path, device: str | None = None) -> QwenDetector:
        from .bundle import load_bundle_model
        from .stage_fit import read_stored

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(*load_bundle_model(path, device), device=device).use_stage_fit(read_stored(path))

    @classmethod
    def from_uri(cls, uri: str, device: str | None = None) -> QwenDetector:
        """A registry URI (models:/name/version or @alias), loaded as the service loads models."""
        from .tracking import load_detector

        return load_detector(uri, device)[0]

    def _batch(self, images: list[Image.Image], questions: list[str]):
        fitted = [fit_image(img, self.cfg) for img in images]
        return encode_batch(fitted, questions, self.tok, self.cfg).to(self.device)

    @torch.no_grad()
    def margins(self, images: list[Image.Image]) -> np.ndarray:
        if not images:
            return np.empty(0)
        batch = self._batch(images, [self.cfg.question] * len(images))
        return answer_margin(answer_logits(self.model, batch, self.ids)).cpu().numpy()

    def score(self, images: list[Image.Image]) -> np.ndarray:
        """Calibrated P(ai) per image, one forward pass for the whole batch."""
        return apply_calibrator(self.calibrator, self.margins(images))

    def explain(self, images: list[Image.Image], verdicts: list[str]) -> list[str]:
        questions = [self.bank.explanation(_SPOKEN.get(v, v)) for v in verdicts]
        batch = self._batch(images, questions)
        return generate_text(self.model, batch, self.tok, self.cfg.explain_max_new_tokens)

    def predict(self, images: list[Image.Image], explain: list[bool] | None = None) -> list[dict]:
        scores = self.score(images)
        out = [{"score": float(s), "verdict": verdict_for(float(s), self.cfg, self.thresholds)} for s in scores]
        wanted = [i for i, e in enumerate(explain or []) if e]
        if wanted:
            texts = self.explain([images[i] for i in wanted], [out[i]["verdict"] for i in wanted])
            for i, text in zip(wanted, texts, strict=True):
                out[i]["explanation"] = text
        return out

    def preprocessing(self) -> dict:
        """What serving rebuilt from the model version (shown by /info and `qwen score --verbose`)."""
        c = self.cfg
        return {
            "image_size": c.image_size,
            "question": c.question,
            "answers": list(c.answers),
            "threshold": c.threshold if self.thresholds is None else None,
            "thresholds": self.thresholds,
            "thresholds_fitted_on": None if self.stage_fit is None else self.stage_fit["fitted_on"],
            "thresholds_fast_model": None if self.stage_fit is None else self.stage_fit["fast_model"],
            "thresholds_stale": self.stale,
            "prompt_bank": self.bank.version,
            "calibrator": self.calibrator,
        }
