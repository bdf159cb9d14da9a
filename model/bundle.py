"""A trained detector with everything serving needs to rebuild it: weights, network spec,
preprocessing, label map, calibration and thresholds.

    bundle.save(dir)                      # weights.pt + detector.json
    bundle = DetectorBundle.load(dir)
    probs = bundle.score_images([pil, ...])

The same object is what training evaluates, what MLflow stores (see model.packaging) and what
the service runs, so there is one scoring path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model.calibration import apply_calibrator, verdicts
from model.detectors import DetectorSpec, build_network
from model.detectors.efficientnet import logits as net_logits
from model.manifest import LABELS
from model.preprocess import PreprocessConfig, fit_to_size

FORMAT_VERSION = 1


@dataclass
class DetectorBundle:
    net: torch.nn.Module
    spec: DetectorSpec = field(default_factory=DetectorSpec)
    pre: PreprocessConfig = field(default_factory=PreprocessConfig)
    calibration: dict | None = None  # see model.calibration; None = plain sigmoid
    thresholds: dict = field(default_factory=lambda: {"high": 0.5, "low": 0.5})
    labels: dict = field(default_factory=lambda: dict(LABELS))
    info: dict = field(default_factory=dict)  # training facts worth showing (run id, metrics)

    def __post_init__(self) -> None:
        self.net.eval()

    # --- scoring ---
    @torch.inference_mode()
    def logits(self, x: torch.Tensor, batch_size: int = 32) -> np.ndarray:
        """Raw logits for a normalised (N, 3, H, W) tensor."""
        outs = []
        for i in range(0, len(x), batch_size):
            chunk = x[i : i + batch_size].contiguous(memory_format=torch.channels_last)
            outs.append(net_logits(self.net, chunk).float().cpu().numpy())
        return np.concatenate(outs) if outs else np.empty(0, dtype=np.float32)

    def calibrate(self, logits: np.ndarray) -> np.ndarray:
        return apply_calibrator(self.calibration, logits)

    def score_tensor(self, x: torch.Tensor) -> np.ndarray:
        return self.calibrate(self.logits(x))

    def images_to_tensor(self, images: Sequence[Image.Image]) -> torch.Tensor:
        from model.preprocess import to_array

        return torch.from_numpy(np.stack([to_array(fit_to_size(im, self.pre), self.pre) for im in images]))

    def score_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.score_tensor(self.images_to_tensor(images))

    def verdicts(self, scores: np.ndarray) -> list[str]:
        return verdicts(scores, self.thresholds)

    # --- persistence ---
    def metadata(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "spec": self.spec.to_dict(),
            "preprocess": self.pre.to_dict(),
            "calibration": self.calibration,
            "thresholds": self.thresholds,
            "labels": self.labels,
            "info": self.info,
        }

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        torch.save(self.net.state_dict(), d / "weights.pt")
        (d / "detector.json").write_text(json.dumps(self.metadata(), indent=2, sort_keys=True))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> DetectorBundle:
        d = Path(directory)
        meta = json.loads((d / "detector.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{d}: detector format {meta.get('format_version')} is not {FORMAT_VERSION}")
        spec = DetectorSpec(**{**meta["spec"], "pretrained": False})  # the weights come from the file
        net = build_network(spec)
        net.load_state_dict(torch.load(d / "weights.pt", map_location="cpu", weights_only=True))
        net = net.to(memory_format=torch.channels_last)
        return cls(
            net=net,
            spec=DetectorSpec(**meta["spec"]),
            pre=PreprocessConfig.from_dict(meta["preprocess"]),
            calibration=meta["calibration"],
            thresholds=meta["thresholds"],
            labels=meta["labels"],
            info=meta.get("info", {}),
        )
