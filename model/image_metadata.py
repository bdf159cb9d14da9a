"""The metadata blocks of an encoded image, read from its container without decoding a pixel.

    meta = read_metadata(raw_bytes)   # .mime, .texts (PNG text chunks), .xmp (packets), .exif_software,
                                      # .exif_comment (EXIF UserComment), .c2pa_box (a C2PA store is present)

Walks PNG chunks, JPEG APP segments, RIFF (WebP) chunks, TIFF IFDs and the top-level boxes of ISO BMFF (HEIC,
HEIF, AVIF); any other container is scanned for an XMP packet. Every read is bounded (MAX_TEXT, MAX_SCAN) and
never goes past the buffer, so hostile files cost little; what the fields mean is model/provenance.py's job.
"""

from __future__ import annotations

import struct
import zlib

MAX_TEXT = 1 << 20  # bytes: cap on any decompressed text chunk (zlib bombs in zTXt/iTXt)
MAX_SCAN = 8 << 20  # bytes: how far the XMP fallback scan looks into unknown containers
_XMP_START = b"<x:xmpmeta"


def container(data: bytes) -> str | None:
    """The container the first bytes announce (JPEG, PNG, WEBP, TIFF, GIF, AVIF or HEIF), readable or not.
    Magic bytes, not Pillow's format: provenance is read from truncated or hand-built files too, which
    Image.open refuses, and the decoder names a broken file by them. (BMP's "BM" is too short to be more
    than chance, and BMP carries no metadata.)"""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[4:8] == b"ftyp":
        return "AVIF" if _bmff_mime(data) == "image/avif" else "HEIF"
    return None


def read_metadata(data: bytes) -> Metadata:
    """The metadata blocks of `data`; a malformed container may raise (struct.error, ...)."""
    meta = Metadata()
    walk = {"PNG": _walk_png, "JPEG": _walk_jpeg, "WEBP": _walk_webp, "TIFF": _read_tiff,
            "AVIF": _walk_bmff, "HEIF": _walk_bmff}.get(container(data))  # fmt: skip
    if walk:
        walk(data, meta)
    if not meta.xmp:
        # GIF and other containers: an XMP packet is plain text somewhere in the file.
        start = data.find(_XMP_START, 0, MAX_SCAN)
        if start >= 0:
            meta.xmp.append(data[start : start + MAX_TEXT])
    return meta


class Metadata:
    """What the walkers found; provenance.py interprets it."""

    def __init__(self) -> None:
        self.mime = "application/octet-stream"
        self.texts: dict[str, str] = {}  # PNG text chunks by keyword
        self.xmp: list[bytes] = []
        self.exif_software: str | None = None
        self.exif_comment: str | None = None
        self.c2pa_box = False


def _walk_png(data: bytes, meta: Metadata) -> None:
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


def _walk_jpeg(data: bytes, meta: Metadata) -> None:
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


def _walk_webp(data: bytes, meta: Metadata) -> None:
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


# The box type C2PA gives its manifest store in ISO BMFF files (C2PA 2.1, section A.5).
_C2PA_BMFF_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
_HEIC_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx")
# HEIF's Exif item is a 4-byte offset to the TIFF header, which writers (iPhones, libheif) put after this.
_BMFF_EXIF = (b"Exif\x00\x00II*\x00", b"Exif\x00\x00MM\x00*")


def _walk_bmff(data: bytes, meta: Metadata) -> None:
    """HEIC, HEIF and AVIF: the brand names the type, a top-level uuid box holds a C2PA store, and the Exif
    item is found by its header (its place is in the meta box's item locations, which is a lot of parsing
    for one bounded scan's worth)."""
    meta.mime = _bmff_mime(data)
    pos = 0
    for _ in range(1024):  # a hostile file may hold a great many empty boxes
        size = _box_size(data, pos)
        if size < 8:
            break
        header = 16 if struct.unpack(">I", data[pos : pos + 4])[0] == 1 else 8
        if data[pos + 4 : pos + 8] == b"uuid" and data[pos + header : pos + header + 16] == _C2PA_BMFF_UUID:
            meta.c2pa_box = True
        pos += size
    for marker in _BMFF_EXIF:
        start = data.find(marker, 0, MAX_SCAN)
        if start >= 0:
            _read_tiff(data[start + 6 :], meta)
            break


def _bmff_mime(data: bytes) -> str:
    """image/avif, image/heic or image/heif, by the ftyp box's major and compatible brands."""
    major = data[8:12]
    brands = {major} | {data[i : i + 4] for i in range(16, min(_box_size(data, 0), 256) - 3, 4)}
    if major == b"avif" or (b"avif" in brands and not brands & set(_HEIC_BRANDS)):
        return "image/avif"
    return "image/heic" if brands & set(_HEIC_BRANDS) else "image/heif"


def _box_size(data: bytes, pos: int) -> int:
    """Bytes in the box at `pos`, header included; 0 when no whole header is there."""
    if pos + 8 > len(data):
        return 0
    (size,) = struct.unpack(">I", data[pos : pos + 4])
    if size == 1:  # a 64-bit size follows the type
        size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0] if pos + 16 <= len(data) else 0
    elif size == 0:  # the box runs to the end of the file
        size = len(data) - pos
    return size


_TIFF_SOFTWARE, _TIFF_EXIF_IFD, _EXIF_USER_COMMENT, _TIFF_XMP = 0x0131, 0x8769, 0x9286, 0x02BC


def _read_tiff(tiff: bytes, meta: Metadata) -> None:
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


def _add_text(meta: Metadata, key: bytes, value: str) -> None:
    meta.texts[key.decode("latin-1", "replace")[:80]] = value[:MAX_TEXT]


def _inflate(blob: bytes) -> bytes:
    d = zlib.decompressobj()
    try:
        return d.decompress(blob, MAX_TEXT)
    except zlib.error:
        return b""
