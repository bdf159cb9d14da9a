"""Provenance hints carried inside image files: C2PA, IPTC DigitalSourceType, generator chunks, EXIF.

    from model.provenance import extract_provenance, weak_label
    prov = extract_provenance(raw_bytes)   # never raises; JSON-serialisable
    # {"c2pa": {...} | None, "iptc_digital_source_type": "trainedAlgorithmicMedia" | None,
    #  "generator": "AUTOMATIC1111" | None, "software": "GIMP 2.10" | None, "ai_hint": bool,
    #  "evidence": ["png:parameters", ...]}
    weak_label(prov)                       # "ai" where the metadata is unambiguous, else None

Shared by ingest (stored as fields, weak labels) and the service (runs on every request), so it
only walks container headers (model/image_metadata.py: PNG chunks, JPEG segments, RIFF chunks, TIFF IFDs):
no pixel is decoded, every read is bounded, and C2PA's reader is loaded only when a C2PA box is present.
Metadata is trivially stripped or forged: absence proves nothing and presence is a hint, never
a verdict, which is why the only weak label ever derived from it is "ai", and only when no other
field contradicts it.
"""

from __future__ import annotations

import io
import json
import re

from model.image_metadata import Metadata, read_metadata

# IPTC NewsCodes digital source types (cv.iptc.org/newscodes/digitalsourcetype/).
AI_SOURCE_TYPES = {"trainedAlgorithmicMedia", "algorithmicMedia"}
# Partly generated (AI edits of a capture, composites): AI is involved but the image is not simply "ai".
PARTLY_AI_SOURCE_TYPES = {"compositeWithTrainedAlgorithmicMedia", "compositeSynthetic"}
CAPTURE_SOURCE_TYPES = {
    "digitalCapture",
    "computationalCapture",
    "negativeFilm",
    "positiveFilm",
    "print",
    "minorHumanEdits",
    "humanEdits",
    "digitalArt",
}
# Lower-case substrings of EXIF Software / PNG Software values written by image generators.
GENERATOR_SOFTWARE = (
    "stable diffusion",
    "midjourney",
    "dall-e",
    "dall·e",
    "dalle",
    "firefly",
    "novelai",
    "imagen",
    "comfyui",
    "invokeai",
    "automatic1111",
    "fooocus",
    "leonardo.ai",
    "ideogram",
    "flux",
    "bing image creator",
    "dreamstudio",
    "nightcafe",
)

_DST_RE = re.compile(rb"digitalsourcetype/([A-Za-z]+)")


def empty_provenance() -> dict:
    return {
        "c2pa": None,
        "iptc_digital_source_type": None,
        "generator": None,
        "software": None,
        "ai_hint": False,
        "evidence": [],
    }


def extract_provenance(data: bytes) -> dict:
    """Provenance fields of an encoded image; malformed input gives the empty result plus an error note."""
    out = empty_provenance()
    try:
        data = bytes(data or b"")
        meta = read_metadata(data)
        if meta.c2pa_box:
            out["c2pa"] = _read_c2pa(data, meta.mime)
        _interpret(meta, out)
    except Exception as e:  # hostile input must never take the caller down
        out["evidence"].append(f"error:{type(e).__name__}")
    return out


def weak_label(prov: dict) -> str | None:
    """'ai' only when metadata names a generator or a fully generated source and nothing contradicts it."""
    if not prov or not prov.get("ai_hint"):
        return None
    types = {prov.get("iptc_digital_source_type")}
    c2pa = prov.get("c2pa") or {}
    types.add(c2pa.get("digital_source_type"))
    types.discard(None)
    if types & (CAPTURE_SOURCE_TYPES | PARTLY_AI_SOURCE_TYPES):
        return None  # a camera claim or a composite beside a generator claim: ambiguous
    if c2pa.get("present") and c2pa.get("validation") == "invalid":
        return None  # a tampered manifest tells us nothing reliable
    return "ai"


# --- C2PA ---

_C2PA_CONTEXT = None


def _c2pa_context():
    """A reader context that never goes to the network (no remote manifests, no OCSP)."""
    global _C2PA_CONTEXT
    if _C2PA_CONTEXT is None:
        import c2pa

        settings = c2pa.Settings()
        settings.set("verify.remote_manifest_fetch", "false")
        settings.set("verify.ocsp_fetch", "false")
        _C2PA_CONTEXT = c2pa.Context(settings=settings)
    return _C2PA_CONTEXT


def _read_c2pa(data: bytes, mime: str) -> dict:
    """Summary of the active C2PA manifest; `error` says why it could not be read."""
    out: dict = {"present": True}
    try:
        import c2pa

        with c2pa.Reader(mime, io.BytesIO(data), context=_c2pa_context()) as reader:
            store = json.loads(reader.json())
    except ImportError:
        out["error"] = "c2pa-python is not installed; only the manifest's presence was detected"
        return out
    except Exception as e:
        out["error"] = f"unreadable C2PA manifest ({str(e)[:200]})"
        return out
    return {**out, **summarise_c2pa(store)}


def summarise_c2pa(store: dict) -> dict:
    """The few fields of a C2PA manifest store (Reader.json()) that matter for provenance."""
    manifest = (store.get("manifests") or {}).get(store.get("active_manifest") or "", {})
    generators = [g.get("name") for g in manifest.get("claim_generator_info") or [] if isinstance(g, dict)]
    claim_generator = manifest.get("claim_generator") or ", ".join(g for g in generators if g) or None
    actions, source_types, agents = [], [], []
    for assertion in manifest.get("assertions") or []:
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for act in (assertion.get("data") or {}).get("actions") or []:
            actions.append(act.get("action"))
            if act.get("digitalSourceType"):
                source_types.append(str(act["digitalSourceType"]).rstrip("/").rsplit("/", 1)[-1])
            agent = act.get("softwareAgent")
            agents.append(agent.get("name") if isinstance(agent, dict) else agent)
    codes = [s.get("code", "") for s in store.get("validation_status") or []]
    if any(c.endswith((".mismatch", ".invalid", ".missing")) or "tamper" in c for c in codes):
        validation = "invalid"
    elif codes:
        validation = "untrusted" if all(c.startswith("signingCredential") for c in codes) else "warnings"
    else:
        validation = "valid"
    sig = manifest.get("signature_info") or {}
    return {
        "claim_generator": claim_generator,
        "actions": [a for a in actions if a][:20],
        "digital_source_type": _strongest(source_types),
        "software_agents": [a for a in agents if a][:20],
        "signature_issuer": sig.get("issuer"),
        "validation": validation,
        "validation_codes": codes[:20],
    }


def _strongest(types: list[str]) -> str | None:
    for group in (AI_SOURCE_TYPES, PARTLY_AI_SOURCE_TYPES):
        for t in types:
            if t in group:
                return t
    return types[0] if types else None


# --- interpretation ---


def _interpret(meta: Metadata, out: dict) -> None:
    ev = out["evidence"]
    for packet in meta.xmp:
        m = _DST_RE.search(packet)
        if m:
            out["iptc_digital_source_type"] = m.group(1).decode("ascii")
            ev.append("xmp:DigitalSourceType")
            break
    texts = meta.texts
    software = meta.exif_software or texts.get("Software") or None
    out["software"] = software[:200] if software else None
    generator = None
    if "parameters" in texts and "Steps:" in texts["parameters"]:
        generator = "AUTOMATIC1111"
        ev.append("png:parameters")
    elif meta.exif_comment and "Steps:" in meta.exif_comment and "Sampler:" in meta.exif_comment:
        generator = "AUTOMATIC1111"
        ev.append("exif:UserComment")
    elif _is_comfy(texts):
        generator = "ComfyUI"
        ev.append("png:prompt/workflow")
    elif "invokeai_metadata" in texts or "sd-metadata" in texts:
        generator = "InvokeAI"
        ev.append("png:invokeai_metadata")
    elif software and any(s in software.lower() for s in GENERATOR_SOFTWARE):
        generator = software[:200]
        ev.append("exif:Software" if meta.exif_software else "png:Software")
    out["generator"] = generator
    c2pa = out["c2pa"] or {}
    if c2pa.get("digital_source_type"):
        ev.append("c2pa:digitalSourceType")
    ai_types = AI_SOURCE_TYPES | PARTLY_AI_SOURCE_TYPES
    out["ai_hint"] = bool(
        generator
        or out["iptc_digital_source_type"] in ai_types
        or c2pa.get("digital_source_type") in ai_types
    )


def _is_comfy(texts: dict[str, str]) -> bool:
    for key, marker in (("prompt", "class_type"), ("workflow", "nodes")):
        value = texts.get(key, "")
        if value.lstrip().startswith("{") and marker in value:
            try:
                json.loads(value)
                return True
            except ValueError:
                continue
    return False
