"""The image hashes the store keys and deduplicates on: public, so the service files images the way ingest does.

sha256_hex(data)   # content address of the bytes (the object key)
phash_hex(img)     # 64-bit perceptual hash of a PIL image, as 16 hex digits (near-duplicate search)
"""

from __future__ import annotations

from model.etl.objects import sha256_hex

__all__ = ["phash_hex", "sha256_hex"]


def phash_hex(img) -> str:
    import imagehash

    return str(imagehash.phash(img))
