"""model/etl/objects.py: content-addressed bytes on a local disk and on S3 (moto's server on loopback)."""

from __future__ import annotations

import pytest

from model.etl.objects import LocalObjects, ObjectStoreError, S3Objects, object_key, open_objects, sha256_hex


def test_local_put_is_idempotent_and_atomic(tmp_path):
    objects = open_objects(tmp_path / "objects")
    assert isinstance(objects, LocalObjects)
    data = b"\xff\xd8 some jpeg bytes"
    sha = sha256_hex(data)
    key = objects.put(sha, data)
    assert key == object_key(sha) == f"{sha[:2]}/{sha}"
    assert objects.put(sha, data) == key and objects.get(key) == data and objects.exists(key)
    assert objects.local_path(key) == (tmp_path / "objects" / key).resolve()
    assert not list((tmp_path / "objects").rglob(".tmp-*"))  # no temporary file left behind
    assert not objects.exists(object_key("0" * 64))
    assert objects.delete(key) and not objects.exists(key) and not objects.delete(key)


def test_s3_round_trip(s3_client):
    s3_client.create_bucket(Bucket="aidetect-images")
    objects = open_objects("s3://aidetect-images/v1", client=s3_client)
    assert isinstance(objects, S3Objects)
    data = b"png bytes"
    sha = sha256_hex(data)
    key = objects.put(sha, data)
    assert objects.exists(key) and objects.get(key) == data and objects.local_path(key) is None
    listed = s3_client.list_objects_v2(Bucket="aidetect-images")["Contents"]
    assert [o["Key"] for o in listed] == [f"v1/{key}"]
    objects.put(sha, data)  # idempotent
    assert len(s3_client.list_objects_v2(Bucket="aidetect-images")["Contents"]) == 1
    assert not objects.exists(object_key("f" * 64))
    assert objects.delete(key) and not objects.exists(key)
    assert "Contents" not in s3_client.list_objects_v2(Bucket="aidetect-images")  # the prefixed key went


def test_s3_errors_are_clear(s3_client):
    objects = open_objects("s3://no-such-bucket", client=s3_client)
    with pytest.raises(ObjectStoreError, match="no-such-bucket"):
        objects.put("ab" * 32, b"x")
    with pytest.raises(ObjectStoreError, match="expected s3://bucket"):
        S3Objects("s3://", client=s3_client)


def _named_objects_round_trip(objects):
    assert objects.keys("outbox-spill/") == []  # nothing there yet, not an error
    objects.put(sha256_hex(b"image"), b"image")  # a content-addressed object is not under the prefix
    for name in ("pod-b.jsonl", "pod-a.jsonl"):
        assert objects.put_at(f"outbox-spill/{name}", name.encode()) == f"outbox-spill/{name}"
    assert objects.keys("outbox-spill/") == ["outbox-spill/pod-a.jsonl", "outbox-spill/pod-b.jsonl"]
    assert objects.get("outbox-spill/pod-a.jsonl") == b"pod-a.jsonl"
    assert objects.delete("outbox-spill/pod-a.jsonl") and objects.keys("outbox-spill/") == ["outbox-spill/pod-b.jsonl"]


def test_named_objects_are_listed_by_prefix_on_a_local_disk(tmp_path):
    _named_objects_round_trip(open_objects(tmp_path / "objects"))
    assert not list((tmp_path / "objects").rglob(".tmp-*"))


def test_named_objects_are_listed_by_prefix_on_s3_under_the_stores_own_prefix(s3_client):
    s3_client.create_bucket(Bucket="aidetect-review")
    s3_client.put_object(Bucket="aidetect-review", Key="other/outbox-spill/x.jsonl", Body=b"another store's")
    _named_objects_round_trip(open_objects("s3://aidetect-review/v1", client=s3_client))
    with pytest.raises(ObjectStoreError, match="cannot list outbox-spill/ in s3://no-such-bucket"):
        open_objects("s3://no-such-bucket", client=s3_client).keys("outbox-spill/")
