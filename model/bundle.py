"""A trained detector with everything serving needs to rebuild it: weights, their ONNX export,
network spec, preprocessing, label map, calibration and thresholds.

    bundle.export()                       # the ONNX graph of the weights (model.runtime)
    bundle.save(dir)                      # weights.pt + detector.onnx + detector.json
    bundle = DetectorBundle.load(dir)
    bundle.use_runtime("auto", threads=1) # ONNX Runtime when exported, eager torch otherwise
    probs = bundle.score_images([pil, ...])

The same object is what training calibrates and evaluates, what MLflow stores (see model.packaging),
what the CI gate scores and what the service runs: every forward pass goes through bundle.logits and
its scorer, so there is one scoring path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model.calibration import apply_calibrator, verdicts
from model.detectors import DetectorSpec, build_network
from model.manifest import LABELS
from model.preprocess import PreprocessConfig, fit_to_size

FORMAT_VERSION = 1  # the ONNX export is an optional addition: versions without one still load (on torch)
log = logging.getLogger(__name__)


@dataclass
class DetectorBundle:
    net: torch.nn.Module
    spec: DetectorSpec = field(default_factory=DetectorSpec)
    pre: PreprocessConfig = field(default_factory=PreprocessConfig)
    calibration: dict | None = None  # see model.calibration; None = plain sigmoid
    thresholds: dict = field(default_factory=lambda: {"high": 0.5, "low": 0.5})
    labels: dict = field(default_factory=lambda: dict(LABELS))
    info: dict = field(default_factory=dict)  # training facts worth showing (run id, metrics)
    onnx: bytes | None = field(default=None, repr=False)  # the exported graph (model.runtime), None = not exported
    export_info: dict | None = None  # runtime, opset, precision of `onnx`; stored in detector.json as "export"
    runtime: str = "auto"  # which scorer runs: "auto" (the export if any), "onnx" or "torch"
    threads: int = 0  # intra-op threads of the scorer; 0 = the runtime's default (all cores)

    def __post_init__(self) -> None:
        self.net.eval()
        self._scorer = None

    # --- the runtime ---
    def export(self) -> None:
        """Export the weights to ONNX (fp32); from now on `auto` scores with ONNX Runtime."""
        from model.runtime import export_onnx

        self.onnx, self.export_info = export_onnx(self.net, self.pre.size)
        self._scorer = None

    def use_runtime(self, runtime: str = "auto", threads: int = 0) -> None:
        from model.runtime import RUNTIMES

        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
        if runtime == "onnx" and self.onnx is None:
            raise ValueError("this model version has no ONNX export; run `aidetect models export VERSION`")
        self.runtime, self.threads, self._scorer = runtime, threads, None

    @property
    def scorer(self):
        """The runtime that scores, built on first use (an ONNX session costs a few hundred ms)."""
        if self._scorer is None:
            from model.runtime import OnnxScorer, TorchScorer

            if self.onnx is not None and self.runtime != "torch":
                precision = (self.export_info or {}).get("precision", "fp32")
                self._scorer = OnnxScorer(self.onnx, self.threads, precision)
            else:
                if self.runtime == "auto":
                    log.info("no ONNX export in this model version: scoring with eager torch")
                self._scorer = TorchScorer(self.net, self.threads)
        return self._scorer

    # --- scoring ---
    def logits(self, x: torch.Tensor | np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Raw logits for a normalised (N, 3, H, W) batch, through the scorer."""
        x = x.numpy() if isinstance(x, torch.Tensor) else x
        outs = [self.scorer.logits(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return np.concatenate(outs).astype(np.float32) if outs else np.empty(0, dtype=np.float32)

    def calibrate(self, logits: np.ndarray) -> np.ndarray:
        return apply_calibrator(self.calibration, logits)

    def score_tensor(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Calibrated probabilities of a normalised batch: what the service answers."""
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
            "export": self.export_info,
        }

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        torch.save(self.net.state_dict(), d / "weights.pt")
        if self.onnx is not None:
            (d / self.export_info["file"]).write_bytes(self.onnx)
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
        export = meta.get("export")
        return cls(
            net=net,
            spec=DetectorSpec(**meta["spec"]),
            pre=PreprocessConfig.from_dict(meta["preprocess"]),
            calibration=meta["calibration"],
            thresholds=meta["thresholds"],
            labels=meta["labels"],
            info=meta.get("info", {}),
            onnx=(d / export["file"]).read_bytes() if export else None,
            export_info=export,
        )


def score_arrays(bundle: DetectorBundle, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Raw logits of full-size (N, H, W, 3) uint8 images through the bundle's scorer: how training
    calibrates, `aidetect evaluate` and the CI gate measure, on the scorer the service runs."""
    from model.dataset import normalise_batch

    outs = [
        bundle.logits(normalise_batch(images[i : i + batch_size], bundle.pre), batch_size)
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(outs) if outs else np.empty(0, dtype=np.float32)
