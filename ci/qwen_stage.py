"""The Qwen stage's thresholds in the retrain loop: fitted behind each new fast model while the GPU is
leased, and required before that fast model reaches production.

    python -m ci.qwen_stage pinned                                   # the Qwen version gitops/ deploys
    python -m ci.qwen_stage fit --fast-model 7 --qwen-model models:/aidetect-qwen/1     # GPU: fit, store
    python -m ci.qwen_stage check --fast-model 7 --qwen-model models:/aidetect-qwen/1   # exit 2 when stale

The thresholds the Qwen stage decides with are fitted on the validation images its fast model calls
uncertain (model/qwen/stage_fit.py), so they belong to one fast model. `fit` runs in retrain.yml's GPU
branch right after the challenger is registered, on the challenger's own data snapshot, and keeps the fit
under the challenger's tag, so production's fit stays as it is. `check` runs before @production moves:
a fast model with no fit of its own would put the Qwen stage on thresholds made for another band.

`--fast-model` is a models:/ URI or a version number of the configured model name. Exit 0: done; 2: an
error or a stale fit, one line on stderr. `pinned` needs only the standard library (it runs on a bare
runner to tell the in-cluster jobs which Qwen version production serves).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Where the deployed Qwen version is pinned (one line, `QWEN_MODEL_URI=models:/<name>/<version>`).
PIN = REPO / "gitops" / "apps" / "detector" / "components" / "gpu-tier" / "kustomization.yaml"
_PIN_LINE = re.compile(r"^\s*-\s*QWEN_MODEL_URI=(?P<uri>models:/[\w.-]+/\d+)\s*$", re.M)


class QwenStageError(RuntimeError):
    """The step cannot go on; the message says why and what to do."""


def pinned(path: Path = PIN) -> str:
    """The Qwen version gitops/ deploys."""
    found = _PIN_LINE.findall(path.read_text())
    if len(found) != 1:
        raise QwenStageError(f"{path}: expected one `QWEN_MODEL_URI=models:/<name>/<version>` line, found {found}")
    return found[0]


def _exact(fast_model: str, settings):
    """The fast model's registry reference: a version number of the configured model, or any models:/ URI."""
    from model import registry

    uri = registry.model_uri(settings.model_name, fast_model) if fast_model.isdigit() else fast_model
    return registry.resolve(uri)


def _val_samples(settings, fast, max_samples: int | None = None) -> tuple[list, str]:
    """The validation split of the data `fast` (a registry reference) was trained on: its snapshot, fetched as
    the evaluate step fetches it (no shared volume), else the configured manifest; a balanced subset when asked."""
    from ci.config import CIConfig
    from ci.snapshot import fetch_snapshot
    from model.manifest import read_manifest, subsample

    folder = fetch_snapshot(settings, CIConfig(), fast.name, fast.version)
    manifest = folder / "manifest.csv" if folder is not None else settings.manifest
    samples = read_manifest(manifest, split="val")
    if not samples:
        raise QwenStageError(f"{manifest}: no 'val' images to fit the Qwen stage's thresholds on")
    if max_samples is not None and max_samples < len(samples):
        groups = max(1, len({(s.source, s.label) for s in samples}))
        samples = subsample(samples, max(1, max_samples // groups))
    return samples, str(manifest)


def fit(fast_model: str, qwen_model: str, min_per_label: int | None = None, max_samples: int | None = None) -> dict:
    """Fit and store the Qwen stage's thresholds behind `fast_model`; the result of stage_fit.fit_and_store."""
    from aidetect.settings import get_settings
    from ci.actions import append_summary, write_outputs
    from model import registry
    from model.qwen.stage_fit import fit_and_store
    from model.qwen.thresholds import MIN_PER_LABEL, summary

    settings = get_settings()
    registry.configure(settings)
    fast = _exact(fast_model, settings)
    fast_uri = fast.uri
    samples, manifest = _val_samples(settings, fast, max_samples)
    result = fit_and_store(fast_uri, qwen_model, samples, min_per_label=min_per_label or MIN_PER_LABEL)
    text = summary(result)
    print(text)
    print(f"stored in {result['stored_in']}")
    if result["fallback"]:
        print(f"warning: {result['fallback']}", file=sys.stderr)
    write_outputs({"qwen_thresholds": result["stored_in"], "fast_model": fast_uri})
    append_summary(f"Qwen stage thresholds behind {fast_uri} ({qwen_model}, val of {manifest}):\n\n{text}")
    return result


def check(fast_model: str, qwen_model: str) -> str:
    """One line when `qwen_model` has thresholds fitted behind `fast_model`; QwenStageError otherwise."""
    from aidetect.settings import get_settings
    from model import registry
    from model.qwen.stage_fit import read_stored, staleness

    settings = get_settings()
    registry.configure(settings)
    fast_uri = _exact(fast_model, settings).uri
    ref = registry.resolve(qwen_model)
    why = staleness(read_stored(ref=ref, fast_model=fast_uri), fast_uri, ref.uri)
    if why:
        raise QwenStageError(why)
    return f"{ref.uri} has thresholds fitted behind {fast_uri}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ci.qwen_stage", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("pinned", help="print the Qwen version gitops/ deploys")
    for name, what in (("fit", "fit and store the thresholds (GPU)"), ("check", "exit 2 unless a fit exists")):
        s = sub.add_parser(name, help=what)
        s.add_argument("--fast-model", required=True, help="models:/ URI or version number of the fast model")
        s.add_argument("--qwen-model", required=True, help="models:/<name>/<version> of the Qwen stage")
        if name == "fit":
            s.add_argument("--min-per-label", type=int, default=None, help="uncertain images per label needed")
            s.add_argument("--max-samples", type=int, default=None, help="balanced subset of val (quick runs)")
    args = p.parse_args(argv)
    try:
        if args.command == "pinned":
            print(pinned())
        elif args.command == "fit":
            fit(args.fast_model, args.qwen_model, args.min_per_label, args.max_samples)
        else:
            print(check(args.fast_model, args.qwen_model))
    except Exception as e:
        if not isinstance(e, _expected_errors()):
            raise
        print(f"qwen_stage: error: {e}", file=sys.stderr)
        return 2
    return 0


def _expected_errors() -> tuple[type[Exception], ...]:
    """The errors that mean "cannot go on, and here is why", from the modules the command got to import
    (`pinned` imports none of them: it runs on a bare runner)."""
    errors: list[type[Exception]] = [QwenStageError, ValueError]
    for module, name in (("model.registry", "RegistryError"), ("ci.errors", "StepError")):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


if __name__ == "__main__":
    sys.exit(main())
