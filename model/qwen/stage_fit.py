"""`aidetect qwen fit-thresholds`: fit the Qwen stage's thresholds behind a given fast model, and keep them
with the Qwen model version so `aidetect qwen serve` decides with them.

    aidetect qwen fit-thresholds --fast-model models:/aidetect@production --qwen-model models:/aidetect-qwen/3
    fit = fit_and_store(fast_uri, qwen_uri, samples)      # model.qwen.thresholds result + where it went

Both stages score the validation split through the serving decode path; the fit itself is
model.qwen.thresholds. Where the result is kept:
  - a registry version: one model-version tag per fast model it was fitted behind,
    `stage_thresholds/<fast name>/<fast version>`, plus `stage_thresholds`, the latest fit; and the full
    report as stage_thresholds.json in the version's run;
  - a bundle folder: stage_thresholds.json inside it (read when the folder is served or registered).
The band the Qwen stage sees depends on the fast model in front of it, so a new fast model means
refitting (seconds on the GPU, no retraining). The retrain workflow fits behind its challenger while the
GPU is leased, so production's own fit stays in place until the challenger is promoted; serving picks
the fit made behind the fast model in front (`staleness` says when there is none), and the promotion
to production refuses a fast model with none (ci/qwen_stage.py).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

from model.manifest import Sample

from .thresholds import MIN_PER_LABEL, fit_stage_thresholds

log = logging.getLogger(__name__)

TAG = "stage_thresholds"  # model-version tag holding the latest stored_fit() as JSON
_VERSIONED = re.compile(r"^models:/(?P<name>[\w.-]+)/(?P<version>\d+)$")
FILE = "stage_thresholds.json"  # in a bundle folder, and the full report in the version's run


def load_fast(uri: str):
    """(DetectorBundle, its URI) from a registry URI or a saved bundle folder."""
    from model.bundle import DetectorBundle

    if Path(uri).is_dir():
        return DetectorBundle.load(uri), str(Path(uri).resolve())
    from model.registry import load_detector

    bundle, ref = load_detector(uri)
    return bundle, ref.uri


def score_both(fast, qwen, samples: list[Sample], batch_size: int = 16):
    """(fast probabilities, Qwen margins, fast-size uint8 arrays) of the samples, in batches so only the
    small arrays stay in memory; images decoded as the services decode uploads."""
    from model.preprocess import decode_image, fit_to_size

    probs, margins, arrays = [], [], []
    for start in range(0, len(samples), batch_size):
        imgs = [decode_image(s.path.read_bytes(), fast.pre) for s in samples[start : start + batch_size]]
        probs.append(fast.score_images(imgs))
        margins.append(qwen.margins(imgs))
        arrays.extend(np.asarray(fit_to_size(im, fast.pre)) for im in imgs)
    if not probs:
        raise ValueError("no validation images to fit on")
    return np.concatenate(probs), np.concatenate(margins), np.stack(arrays)


def fit_on_samples(fast, qwen, samples: list[Sample], min_per_label: int = MIN_PER_LABEL, n_boot: int = 1000) -> dict:
    """Score, split val into its fixed calibration and evaluation halves (model.splits), fit."""
    from model.splits import calibration_parts

    probs, margins, arrays = score_both(fast, qwen, samples)
    targets = np.array([s.target for s in samples])
    uncertain = np.array(fast.verdicts(probs)) == "uncertain"
    fit_mask, report_mask, how = calibration_parts([s.path.name for s in samples], arrays, targets)
    th = fast.thresholds
    result = fit_stage_thresholds(
        margins,
        targets,
        uncertain,
        fit_mask,
        report_mask,
        fpr=th.get("fpr", 0.01),  # the fast stage's own targets, so both stages promise the same rates
        fnr=th.get("fnr", 0.01),
        min_per_label=min_per_label,
        n_boot=n_boot,
    )
    result["calibration_split"] = how
    return result


def stored_fit(result: dict, fast_uri: str) -> dict:
    """What serving needs (and what a reader of the tag wants to know), small enough for a tag."""
    f = result["fit"]
    return {
        "calibrator": result["calibrator"],
        "thresholds": result["thresholds"],
        "fitted_on": result["fitted_on"],
        "fallback": result["fallback"],
        "fast_model": fast_uri,
        "n": f["n"],
        "fpr_ci": f["fpr"],
        "tpr_ci": f["tpr"],
    }


def fit_tag(fast_uri: str) -> str | None:
    """The tag that holds the fit made behind `fast_uri` (models:/<name>/<version>); None for a folder."""
    m = _VERSIONED.match(fast_uri)
    return f"{TAG}/{m['name']}/{m['version']}" if m else None


def store(qwen_uri: str, result: dict, fast_uri: str) -> str:
    """Keep the fit with the Qwen model version; returns where it went."""
    stored = stored_fit(result, fast_uri)
    if Path(qwen_uri).is_dir():
        path = Path(qwen_uri) / FILE
        path.write_text(json.dumps({**stored, "report": result}, indent=1))
        return str(path)
    from mlflow.tracking import MlflowClient

    from model import registry

    ref = registry.resolve(qwen_uri)
    tags = {TAG: json.dumps(stored)}
    if keyed := fit_tag(fast_uri):
        tags[keyed] = tags[TAG]
    registry.set_version_tags(ref, tags)
    if ref.run_id:
        MlflowClient().log_dict(ref.run_id, {**stored, "report": result}, FILE)
    return f"{ref.uri} (tag {TAG})"


def read_stored(bundle_dir: str | Path | None = None, ref=None, fast_model: str | None = None) -> dict | None:
    """The fit kept with a version: the one made behind `fast_model` (models:/<name>/<version>) when
    there is one, else the latest; a registry tag wins over a file in the bundle; None when unfitted."""
    if ref is not None:
        from mlflow.tracking import MlflowClient

        tags = MlflowClient().get_model_version(ref.name, ref.version).tags
        keyed = fit_tag(fast_model) if fast_model else None
        for key in (keyed, TAG):
            if key in tags:
                return json.loads(tags[key])
    if bundle_dir is not None and (Path(bundle_dir) / FILE).is_file():
        return json.loads((Path(bundle_dir) / FILE).read_text())
    return None


def staleness(fit: dict | None, fast_model: str | None, qwen_uri: str) -> str | None:
    """None when `fit` was made behind `fast_model`; otherwise one line saying so and what to run.
    Thresholds fitted behind another fast model decide on an uncertain band they never saw: the Qwen
    stage's error rates are then unknown, not the 1% it promises."""
    if fast_model is None:
        return None
    refit = f"aidetect qwen fit-thresholds --fast-model {fast_model} --qwen-model {qwen_uri}"
    if fit is None:
        return f"{qwen_uri} has no thresholds fitted behind {fast_model}: run `{refit}` (on a GPU)"
    if fit.get("fast_model") != fast_model:
        return (
            f"{qwen_uri}'s thresholds were fitted behind {fit.get('fast_model')}, but the fast model in front "
            f"is {fast_model}: run `{refit}` (on a GPU)"
        )
    return None


def fit_and_store(
    fast_uri: str,
    qwen_uri: str,
    samples: list[Sample],
    min_per_label: int = MIN_PER_LABEL,
    n_boot: int = 1000,
) -> dict:
    """The job: both models loaded as the services load them, fitted, stored. Returns the result with
    `fast_model`, `qwen_model` and `stored_in` added."""
    from .detector import QwenDetector

    fast, fast_ref = load_fast(fast_uri)
    if Path(qwen_uri).is_dir():
        qwen = QwenDetector.from_bundle(qwen_uri)
    else:
        qwen = QwenDetector.from_uri(qwen_uri)
    result = fit_on_samples(fast, qwen, samples, min_per_label, n_boot)
    if result["fallback"]:
        log.warning("Qwen stage thresholds: %s", result["fallback"])
    result["stored_in"] = store(qwen_uri, result, fast_ref)
    result["fast_model"], result["qwen_model"] = fast_ref, qwen_uri
    return result
