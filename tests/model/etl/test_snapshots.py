"""model/etl/snapshots.py: versioned manifests with sticky, leak-free splits, read by the trainer, logged to MLflow."""

from __future__ import annotations

import csv
import io
import json
from itertools import combinations

import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from model.etl.db import Image
from model.etl.ingest import Ingestor
from model.etl.items import Item
from model.etl.loaders import DATASET_POLICY, import_items, manifest_items
from model.etl.snapshots import assign_splits, hash_split, log_snapshot_input, materialize, write_snapshot
from model.etl.store import Store, StoreError
from model.manifest import read_manifest


@pytest.fixture
def shared_manifest(tmp_path, sample_paths):
    """A small manifest in the shared data set's own format (paths relative to it)."""
    root = sample_paths[0].parents[3]
    path = root / "manifest.csv"
    rows = [r for r in csv.DictReader(path.open()) if (root / r["path"]) in set(sample_paths)]
    out = tmp_path / "subset.csv"
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "source", "split", "origin"])
        w.writeheader()
        for r in rows:
            w.writerow({**r, "path": str(root / r["path"])})
    return out


def _rows(csv_path) -> list[dict]:
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


def test_snapshot_is_a_manifest_the_trainer_reads(store, shared_manifest, tmp_path):
    import_items(store, manifest_items(shared_manifest))
    info = write_snapshot(store, tmp_path / "snaps")
    assert info.created and info.version == 1 and info.csv == tmp_path / "snaps" / "v0001" / "manifest.csv"
    samples = read_manifest(info.csv)  # unchanged trainer code path; checks every file exists
    source_rows = _rows(shared_manifest)
    assert len(samples) == len(source_rows)
    assert {s.split for s in samples} <= {"train", "val", "test"}
    # the shared set's own splits are kept
    by_sha = {r["sha256"]: r for r in _rows(info.csv)}
    assert {r["label_origin"] for r in by_sha.values()} == {"dataset"}
    sidecar = json.loads(info.sidecar.read_text())
    assert sidecar["version"] == 1 and sidecar["digest"] == info.digest and len(info.digest) == 64
    assert sidecar["counts"]["total"] == len(samples)
    assert sum(sum(v.values()) for v in sidecar["counts"]["by_split"].values()) == len(samples)
    assert list(_rows(info.csv)[0])[:5] == ["path", "label", "source", "split", "origin"]


def test_unchanged_content_gives_the_same_snapshot(store, shared_manifest, tmp_path):
    import_items(store, manifest_items(shared_manifest))
    first = write_snapshot(store, tmp_path / "snaps")
    again = write_snapshot(store, tmp_path / "snaps")
    assert not again.created and (again.version, again.digest) == (first.version, first.digest)


def test_splits_are_sticky_and_moderator_labels_enter_the_next_snapshot(store, shared_manifest, tmp_path, make_jpeg):
    import_items(store, manifest_items(shared_manifest))
    v1 = write_snapshot(store, tmp_path / "snaps")
    splits_v1 = {r["sha256"]: r["split"] for r in _rows(v1.csv)}
    # data grows: social media images (unlabelled until reviewed) and a data set import
    ing = Ingestor(store)
    new = [make_jpeg((i, 7, 9), size=(80, 80)) for i in range(40)]
    with store.session() as s:
        for i, data in enumerate(new):
            assert ing.process(s, Item(source="mastodon", post_id=str(i)), data) == "stored"
    from model.etl.objects import sha256_hex

    reviewed = sha256_hex(new[0])
    store.record_label(reviewed, "ai", moderator="alice")
    flipped = next(iter(splits_v1))
    store.record_label(flipped, "real" if _rows(v1.csv)[0]["label"] == "ai" else "ai", moderator="bob")
    v2 = write_snapshot(store, tmp_path / "snaps")
    assert v2.created and v2.version == 2 and v2.digest != v1.digest
    rows_v2 = {r["sha256"]: r for r in _rows(v2.csv)}
    assert all(rows_v2[sha]["split"] == split for sha, split in splits_v1.items())  # sticky
    assert rows_v2[reviewed]["label"] == "ai" and rows_v2[reviewed]["label_origin"] == "moderator"
    assert rows_v2[flipped]["label_origin"] == "moderator"
    assert json.loads(v2.sidecar.read_text())["counts"]["unlabelled"] == 39
    with store.session() as s:  # unlabelled images got their split too, so it holds once they are labelled
        assert all(i.split for i in s.scalars(select(Image)))
    # the v1 files were not touched
    assert {r["sha256"]: r["split"] for r in _rows(v1.csv)} == splits_v1


def _row(sha: str, phash: str, split=None, source_split=None) -> Image:
    return Image(
        sha256=sha,
        object_key=f"{sha[:2]}/{sha}",
        size_bytes=1,
        width=1,
        height=1,
        phash=phash,
        source="t",
        label="real",
        label_origin="dataset",
        split=split,
        source_split=source_split,
    )


def test_near_duplicates_never_cross_splits(store):
    with store.session() as s:
        s.add_all(
            [
                _row("a" * 64, "0000000000000000", split="train"),
                _row("b" * 64, "000000000000ffff", split="test"),  # 16 bits from a
                _row("c" * 64, "00000000000000ff"),  # 8 bits from both: cannot join either without a leak
                _row("d" * 64, "0000000000000003", source_split="test"),  # 2 bits from a: follows a, not its data set
                _row("e" * 64, "ffffffff00000000", source_split="val"),  # no neighbour: its data set's split
            ]
        )
    counts = assign_splits(store, near_distance=8)
    assert counts == {"assigned": 2, "excluded_conflicts": 1}
    with store.session() as s:
        got = {i.sha256[0]: i.split for i in s.scalars(select(Image))}
    assert got == {"a": "train", "b": "test", "c": None, "d": "train", "e": "val"}


def test_no_near_duplicate_pair_crosses_splits_on_real_data(store, shared_manifest, tmp_path):
    import_items(store, manifest_items(shared_manifest))
    ing = Ingestor(store, DATASET_POLICY)  # data sets keep near duplicates; snapshots must group them
    with store.session() as s:  # re-encoded and resized copies of some images, labelled by a second "data set"
        for i, r in enumerate(_rows(shared_manifest)[:8]):
            img = PILImage.open(r["path"]).convert("RGB").resize((224, 224))
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=60)
            split = "test" if r["split"] != "test" else "train"  # the copy's data set disagrees on purpose
            ing.process(s, Item(source="copies", post_id=str(i), label=r["label"], source_split=split), buf.getvalue())
    info = write_snapshot(store, tmp_path / "snaps", near_distance=8)
    with store.session() as s:
        phash = {i.sha256: int(i.phash, 16) for i in s.scalars(select(Image))}
    rows = _rows(info.csv)
    copies = [r for r in rows if r["source"] == "copies"]
    assert len(copies) == 8
    for a, b in combinations(rows, 2):
        if (phash[a["sha256"]] ^ phash[b["sha256"]]).bit_count() <= 8:
            assert a["split"] == b["split"], (a, b)


def test_hash_split_shares():
    import hashlib

    splits = [hash_split(hashlib.sha256(str(i).encode()).hexdigest()) for i in range(5000)]
    assert 0.77 < splits.count("train") / 5000 < 0.83 and 0.08 < splits.count("test") / 5000 < 0.12


def test_empty_store_cannot_be_snapshotted(store, tmp_path):
    with pytest.raises(StoreError, match="nothing to snapshot"):
        write_snapshot(store, tmp_path / "snaps")


@pytest.mark.slow
def test_s3_store_snapshot_materializes_relative_paths(s3_client, tmp_path, shared_manifest):
    s3_client.create_bucket(Bucket="snap")
    store = Store.open(f"sqlite:///{tmp_path / 's3.db'}", "s3://snap/img")
    import_items(store, manifest_items(shared_manifest))
    info = write_snapshot(store, tmp_path / "snaps")
    assert all(r["path"].startswith("objects/") for r in _rows(info.csv))
    assert materialize(info.csv, store) == len(_rows(info.csv))
    assert len(read_manifest(info.csv)) == len(_rows(info.csv))
    assert materialize(info.csv, store) == 0
    store.close()


@pytest.mark.slow
def test_log_snapshot_input_to_mlflow(store, shared_manifest, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    import_items(store, manifest_items(shared_manifest))
    info = write_snapshot(store, tmp_path / "snaps")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        with mlflow.start_run() as run:
            log_snapshot_input(info.csv)
        got = mlflow.get_run(run.info.run_id)
    finally:
        mlflow.set_tracking_uri(None)
    (inp,) = got.inputs.dataset_inputs
    assert inp.dataset.name == "aidetect-snapshot-v0001" and inp.dataset.digest == info.digest[:32]
    assert inp.dataset.source_type == "local" or str(info.csv) in inp.dataset.source
    assert {t.key: t.value for t in inp.tags}["mlflow.data.context"] == "training"
    assert got.data.tags["aidetect.snapshot.digest"] == info.digest
    schema = json.loads(inp.dataset.schema)["mlflow_colspec"]
    assert [c["name"] for c in schema][:5] == ["path", "label", "source", "split", "origin"]
