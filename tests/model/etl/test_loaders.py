"""model/etl/loaders.py: CIFAKE, COCOFake and manifest layouts, generated here, into the same rows."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import select

from model.etl.db import Image, Sighting
from model.etl.loaders import LoaderError, cifake_items, coco_id, cocofake_items, import_items, manifest_items


@pytest.fixture
def cifake_tree(tmp_path, make_jpeg) -> Path:
    root = tmp_path / "cifake"
    n = 0
    for split in ("train", "test"):
        for cls in ("REAL", "FAKE"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(3):
                n += 1
                (folder / f"{i} ({n}).jpg").write_bytes(make_jpeg((n, 2 * n, 3 * n), size=(32, 32)))
    (root / "train" / "FAKE" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


@pytest.fixture
def cocofake_tree(tmp_path, make_jpeg) -> tuple[Path, Path]:
    coco, fake = tmp_path / "coco2014", tmp_path / "cocofake"
    reals = {"train2014": [9, 25], "val2014": [42]}
    k = 100
    for split_dir, ids in reals.items():
        (coco / split_dir).mkdir(parents=True)
        for image_id in ids:
            stem = f"COCO_{split_dir}_{image_id:012d}"
            k += 1
            (coco / split_dir / f"{stem}.jpg").write_bytes(make_jpeg((k, 0, 0), size=(96, 64)))
            for j in range(2 if image_id != 42 else 1):
                (fake / split_dir / stem).mkdir(parents=True, exist_ok=True)
                k += 1
                (fake / split_dir / stem / f"{j}.jpg").write_bytes(make_jpeg((0, k, 0), size=(64, 64)))
    orphan = fake / "train2014" / "COCO_train2014_000000000077"  # generated image whose photo is absent
    orphan.mkdir(parents=True)
    (orphan / "0.jpg").write_bytes(make_jpeg((0, 0, 77), size=(64, 64)))
    return fake, coco


def test_cifake_layout(cifake_tree):
    items = list(cifake_items(cifake_tree))
    assert len(items) == 13
    by = {(i.label, i.source_split) for i in items}
    assert by == {("real", "train"), ("ai", "train"), ("real", "test"), ("ai", "test")}
    assert all(i.source == "cifake" and i.path.is_file() and not Path(i.post_id).is_absolute() for i in items)
    with pytest.raises(LoaderError, match="not a CIFAKE folder"):
        list(cifake_items(cifake_tree / "train"))


def test_cifake_import_quarantines_the_broken_file_and_is_idempotent(store, cifake_tree):
    report = import_items(store, cifake_items(cifake_tree, license="CIFAKE licence"))
    assert report.counts["stored"] == 12 and report.counts["quarantined"] == 1
    with store.session() as s:
        bad = s.scalars(select(Sighting).where(Sighting.status == "quarantined")).one()
        assert bad.post_id == "train/FAKE/broken.jpg" and "HTTP" in bad.reason
        imgs = s.scalars(select(Image)).all()
        assert {(i.width, i.height) for i in imgs} == {(32, 32)}
        assert {(i.label, i.label_origin) for i in imgs} == {("real", "dataset"), ("ai", "dataset")}
        assert {i.source_split for i in imgs} == {"train", "test"}
        assert all(s2.license == "CIFAKE licence" for s2 in s.scalars(select(Sighting)))
    again = import_items(store, cifake_items(cifake_tree))
    assert dict(again.counts) == {"seen": 13}


def test_phone_and_cdn_formats_are_imported(store, tmp_path):
    """A folder of HEIC (phones) and AVIF (CDNs) images imports like JPEGs: named, read, stored."""
    import io

    from PIL import Image as PILImage

    import model.preprocess  # noqa: F401  (registers the HEIF saver)

    root = tmp_path / "cifake"
    for split, cls, fmt, suffix in (("train", "REAL", "HEIF", ".heic"), ("train", "FAKE", "AVIF", ".avif")):
        (root / split / cls).mkdir(parents=True)
        buf = io.BytesIO()
        PILImage.new("RGB", (40, 30), (10, 200, 30) if cls == "REAL" else (200, 10, 30)).save(buf, fmt)
        (root / split / cls / f"0{suffix}").write_bytes(buf.getvalue())
    report = import_items(store, cifake_items(root))
    assert report.counts["stored"] == 2
    with store.session() as s:
        assert {(i.label, i.width, i.height, i.format) for i in s.scalars(select(Image))} == {
            ("real", 40, 30, "HEIF"),
            ("ai", 40, 30, "AVIF"),
        }


def test_cocofake_pairs_by_coco_id(cocofake_tree):
    fake, coco = cocofake_tree
    items = list(cocofake_items(fake, coco=coco))
    reals = [i for i in items if i.label == "real"]
    fakes = [i for i in items if i.label == "ai"]
    assert sorted(i.origin for i in reals) == ["coco2014:25", "coco2014:42", "coco2014:9"]
    assert len(fakes) == 6 and {i.source for i in fakes} == {"cocofake"} and {i.source for i in reals} == {"coco2014"}
    # a photo and the images generated from its captions share an origin and a split
    for r in reals:
        mates = [f for f in fakes if f.origin == r.origin]
        assert mates and {f.source_split for f in mates} == {r.source_split}
    assert {i.source_split for i in items if i.origin == "coco2014:42"} == {"val"}
    assert any(f.origin == "coco2014:77" for f in fakes)  # kept, though its photo is missing
    # without --coco, a coco2014/ folder beside the COCOFake root is found
    assert len(list(cocofake_items(fake))) == len(items)


def test_cocofake_errors(tmp_path, cocofake_tree):
    fake, coco = cocofake_tree
    with pytest.raises(LoaderError, match="not a COCOFake folder"):
        list(cocofake_items(coco / "train2014", coco=coco))
    lonely = tmp_path / "elsewhere" / "lonely"  # no coco2014/ beside it
    (lonely / "val2014").mkdir(parents=True)
    with pytest.raises(LoaderError, match="--coco"):
        list(cocofake_items(lonely))


def test_coco_id():
    assert coco_id("COCO_train2014_000000000009") == 9 and coco_id("COCO_val2014_000000581929.jpg") == 581929
    assert coco_id("readme") is None


def test_manifest_rows(tmp_path, sample_paths):
    manifest = tmp_path / "m.csv"
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "source", "split", "origin"])
        for i, p in enumerate(sample_paths[:6]):
            w.writerow([str(p), "fake" if i % 2 else "real", "shared", "val" if i < 2 else "train", f"up{i}"])
    items = list(manifest_items(manifest))
    assert [i.label for i in items] == ["real", "ai"] * 3
    assert [i.source_split for i in items][:3] == ["val", "val", "train"]
    assert all(i.source == "shared" and i.origin.startswith("up") for i in items)


def test_every_layout_gives_the_same_manifest_rows(cifake_tree, cocofake_tree, shared_manifest_rows):
    from model.etl.loaders import manifest_rows
    from model.manifest import COLUMNS, parse_rows

    fake, coco = cocofake_tree
    for items in (cifake_items(cifake_tree), cocofake_items(fake, coco=coco), manifest_items(shared_manifest_rows)):
        rows = manifest_rows(items)
        assert rows and all(tuple(r) == COLUMNS for r in rows)
        samples = parse_rows(rows, Path("/"), "rows")  # the trainer's own validation
        assert {s.label for s in samples} == {"real", "ai"} and all(s.path.is_file() for s in samples)


@pytest.fixture
def shared_manifest_rows(tmp_path, sample_paths) -> Path:
    path = tmp_path / "shared.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "source", "split", "origin"])
        for i, p in enumerate(sample_paths[:4]):
            w.writerow([str(p), "ai" if i % 2 else "real", "shared", "train", ""])
    return path
