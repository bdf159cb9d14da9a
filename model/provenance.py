"""Provenance hints carried inside image files: C2PA, IPTC DigitalSourceType, generator chunks, EXIF.

    from model.provenance import extract_provenance, weak_label
    prov = extract_provenance(raw_bytes)   # never raises; JSON-serialisable
    # {"c2pa": {...} | None, "iptc_digital_source_type": "trainedAlgorithmicMedia" | None,
    #  "generator": "AUTOMATIC1111" | None, "software": "GIMP 2.10" | None, "ai_hint": bool,
    #  "evidence": ["png:parameters", ...]}
    weak_label(prov)                       # "ai" where the metadata is unambiguous, else None

Shared by ingest (stored as fields, weak labels) and the service (runs on every request), so it
only walks container headers (PNG chunks, JPEG segments, RIFF chunks, TIFF IFDs): no pixel is
decoded, every read is bounded, and C2PA's reader is loaded only when a C2PA box is present.
Metadata is trivially stripped or forged: absence proves nothing and presence is a hint, never
a verdict, which is why the only weak label ever derived from it is "ai", and only when no other
field contradicts it.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zlib

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

MAX_TEXT = 1 << 20  # bytes: cap on any decompressed text chunk (zlib bombs in zTXt/iTXt)
MAX_SCAN = 8 << 20  # bytes: how far the XMP fallback scan looks into unknown containers
_DST_RE = re.compile(rb"digitalsourcetype/([A-Za-z]+)")
_XMP_START = b"<x:xmpmeta"


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
        meta = _Meta()
        # Magic bytes, not Pillow's format: provenance is read from truncated or hand-built containers too,
        # which Image.open refuses.
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            _walk_png(data, meta)
        elif data.startswith(b"\xff\xd8"):
            _walk_jpeg(data, meta)
        elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            _walk_webp(data, meta)
        elif data[:4] in (b"II*\x00", b"MM\x00*"):
            _read_tiff(data, meta)
        if not meta.xmp:
            # GIF, HEIF/AVIF and other containers: an XMP packet is plain text somewhere in the file.
            start = data.find(_XMP_START, 0, MAX_SCAN)
            if start >= 0:
                meta.xmp.append(data[start : start + MAX_TEXT])
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


# --- container walkers: each fills _Meta and never reads past the buffer ---


class _Meta:
    def __init__(self) -> None:
        self.mime = "application/octet-stream"
        self.texts: dict[str, str] = {}  # PNG text chunks by keyword
        self.xmp: list[bytes] = []
        self.exif_software: str | None = None
        self.exif_comment: str | None = None
        self.c2pa_box = False


def _walk_png(data: bytes, meta: _Meta) -> None:
    meta.mime = "image/png"
    pos = 8
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if ctype == b"IEND":
            break
        if ctype == b"tEXt":
            key, _, value = body.partition(b"\x00")
            _add_text(meta, key, value.decode("latin-1", "replace"))
        elif ctype == b"zTXt":
            key, _, rest = body.partition(b"\x00")
            _add_text(meta, key, _inflate(rest[1:]).decode("latin-1", "replace"))
        elif ctype == b"iTXt":
            key, _, rest = body.partition(b"\x00")
            if len(rest) < 2:
                continue
            compressed = rest[0] == 1
            _lang, _, rest = rest[2:].partition(b"\x00")
            _translated, _, text = rest.partition(b"\x00")
            raw = _inflate(text) if compressed else text[:MAX_TEXT]
            if key == b"XML:com.adobe.xmp":
                meta.xmp.append(raw)
            else:
                _add_text(meta, key, raw.decode("utf-8", "replace"))
        elif ctype == b"eXIf":
            _read_tiff(body, meta)
        elif ctype == b"caBX":  # C2PA manifest store in PNG
            meta.c2pa_box = True


def _walk_jpeg(data: bytes, meta: _Meta) -> None:
    meta.mime = "image/jpeg"
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end: metadata segments come before
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        body = data[pos + 4 : pos + 2 + length]
        pos += 2 + length
        if marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
            _read_tiff(body[6:], meta)
        elif marker == 0xE1 and body.startswith(b"http://ns.adobe.com/xap/1.0/\x00"):
            meta.xmp.append(body[29:])
        elif marker == 0xEB and body[:2] == b"JP" and b"c2pa" in body[:64]:  # JUMBF in APP11
            meta.c2pa_box = True


def _walk_webp(data: bytes, meta: _Meta) -> None:
    meta.mime = "image/webp"
    pos = 12
    while pos + 8 <= len(data):
        ctype = data[pos : pos + 4]
        (length,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 8 + length + (length & 1)
        if ctype == b"EXIF":
            _read_tiff(body[6:] if body.startswith(b"Exif\x00\x00") else body, meta)
        elif ctype == b"XMP ":
            meta.xmp.append(body[:MAX_TEXT])
        elif ctype == b"C2PA":
            meta.c2pa_box = True


_TIFF_SOFTWARE, _TIFF_EXIF_IFD, _EXIF_USER_COMMENT, _TIFF_XMP = 0x0131, 0x8769, 0x9286, 0x02BC


def _read_tiff(tiff: bytes, meta: _Meta) -> None:
    """EXIF Software (IFD0), UserComment (Exif IFD, where A1111 puts JPEG parameters) and XMP (tag 700)."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return
    end = "<" if tiff[:2] == b"II" else ">"
    (ifd0,) = struct.unpack(end + "I", tiff[4:8])
    entries = _ifd_entries(tiff, ifd0, end)
    if _TIFF_SOFTWARE in entries:
        meta.exif_software = _ascii(entries[_TIFF_SOFTWARE]) or None
    if _TIFF_XMP in entries:
        meta.xmp.append(entries[_TIFF_XMP][:MAX_TEXT])
    if _TIFF_EXIF_IFD in entries and len(entries[_TIFF_EXIF_IFD]) >= 4:
        (sub,) = struct.unpack(end + "I", entries[_TIFF_EXIF_IFD][:4])
        comment = _ifd_entries(tiff, sub, end).get(_EXIF_USER_COMMENT)
        if comment:
            meta.exif_comment = _user_comment(comment) or None


_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 9: 4, 10: 8}


def _ifd_entries(tiff: bytes, offset: int, end: str) -> dict[int, bytes]:
    """Raw value bytes of each tag in the IFD at `offset` (at most 512 entries read)."""
    out: dict[int, bytes] = {}
    if offset <= 0 or offset + 2 > len(tiff):
        return out
    (count,) = struct.unpack(end + "H", tiff[offset : offset + 2])
    for i in range(min(count, 512)):
        e = offset + 2 + 12 * i
        if e + 12 > len(tiff):
            break
        tag, typ, n = struct.unpack(end + "HHI", tiff[e : e + 8])
        size = _TYPE_SIZES.get(typ, 1) * n
        if size <= 4:
            out[tag] = tiff[e + 8 : e + 8 + size]
        else:
            (ptr,) = struct.unpack(end + "I", tiff[e + 8 : e + 12])
            out[tag] = tiff[ptr : ptr + min(size, MAX_TEXT)]
    return out


def _ascii(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", "replace").strip()


def _user_comment(raw: bytes) -> str:
    prefix, body = raw[:8], raw[8:]
    if prefix.startswith(b"UNICODE"):
        # The EXIF spec leaves the byte order open; writers (piexif, A1111) use big-endian.
        enc = "utf-16-le" if body[:2] != b"\x00" * 2 and body[1:2] == b"\x00" else "utf-16-be"
        return body.decode(enc, "replace").strip("\x00 ")
    if prefix.startswith(b"ASCII"):
        return body.decode("latin-1", "replace").strip("\x00 ")
    return raw.decode("utf-8", "replace").strip("\x00 ")


def _add_text(meta: _Meta, key: bytes, value: str) -> None:
    meta.texts[key.decode("latin-1", "replace")[:80]] = value[:MAX_TEXT]


def _inflate(blob: bytes) -> bytes:
    d = zlib.decompressobj()
    try:
        return d.decompress(blob, MAX_TEXT)
    except zlib.error:
        return b""


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


def _interpret(meta: _Meta, out: dict) -> None:
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
