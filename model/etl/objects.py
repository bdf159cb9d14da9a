"""Content-addressed image bytes: the key of an object is the sha256 of its bytes.

    objects = open_objects("/srv/aidetect/objects")        # or "s3://bucket/prefix"
    key = objects.put(sha256_hex, data)                   # idempotent: same bytes, same key
    objects.local_path(key)                               # a file path, where the store has one
    objects.delete(key)                                   # erasure (the service's retention); ingest never deletes
    objects.put_at("outbox-spill/pod-1.jsonl", data)      # a named object, beside the content-addressed ones
    objects.keys("outbox-spill/")                         # the keys under a prefix, sorted

Writes are atomic (temporary file + rename locally; a single PUT on S3), so a process killed
mid-write leaves either nothing or the whole object, never a torn one under the real key. For
S3-compatible stores (MinIO, Ceph), boto3 reads the endpoint from AWS_ENDPOINT_URL[_S3].
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol


class ObjectStoreError(RuntimeError):
    """The object store cannot be reached or refused an operation; the message says which."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def object_key(sha: str) -> str:
    # Two-level fan-out keeps directories small on local disks and prefixes spread on S3.
    return f"{sha[:2]}/{sha}"


class Objects(Protocol):
    url: str

    def put(self, sha: str, data: bytes) -> str: ...
    def put_at(self, key: str, data: bytes) -> str: ...
    def keys(self, prefix: str) -> list[str]: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def local_path(self, key: str) -> Path | None: ...
    def delete(self, key: str) -> bool: ...


class LocalObjects:
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def put(self, sha: str, data: bytes) -> str:
        key = object_key(sha)
        return key if self._path(key).exists() else self.put_at(key, data)

    def put_at(self, key: str, data: bytes) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def keys(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/"))
        if not base.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")
        )

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def delete(self, key: str) -> bool:
        """Remove an object (erasure requests); False when it was not there."""
        try:
            self._path(key).unlink()
            return True
        except FileNotFoundError:
            return False


class S3Objects:
    def __init__(self, url: str, client=None):
        rest = url.removeprefix("s3://")
        self.bucket, _, prefix = rest.partition("/")
        if not self.bucket:
            raise ObjectStoreError(f"object store {url!r}: expected s3://bucket[/prefix]")
        self.prefix = prefix.strip("/")
        self.url = url
        if client is None:
            import boto3

            client = boto3.client("s3")
        self.client = client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, sha: str, data: bytes) -> str:
        key = object_key(sha)
        return key if self.exists(key) else self.put_at(key, data)

    def put_at(self, key: str, data: bytes) -> str:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as e:
            raise ObjectStoreError(f"cannot write {key} to {self.url}: {e}") from None
        return key

    def keys(self, prefix: str) -> list[str]:
        strip = len(self._key(""))
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix))
            return sorted(o["Key"][strip:] for page in pages for o in page.get("Contents", ()))
        except Exception as e:
            raise ObjectStoreError(f"cannot list {prefix} in {self.url}: {e}") from None

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except Exception as e:
            raise ObjectStoreError(f"cannot read {key} from {self.url}: {e}") from None

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise ObjectStoreError(f"cannot reach {self.url}: {e}") from None
        except Exception as e:
            raise ObjectStoreError(f"cannot reach {self.url}: {e}") from None

    def local_path(self, key: str) -> Path | None:
        return None

    def delete(self, key: str) -> bool:
        """Remove an object (erasure requests); S3 does not say whether it existed, so True."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as e:
            raise ObjectStoreError(f"cannot delete {key} from {self.url}: {e}") from None
        return True


def open_objects(spec: str | Path, client=None) -> Objects:
    """A directory path or an s3://bucket[/prefix] URL."""
    spec = str(spec)
    if spec.startswith("s3://"):
        return S3Objects(spec, client=client)
    return LocalObjects(spec)
