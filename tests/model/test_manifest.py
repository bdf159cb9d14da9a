import pytest

from model.manifest import ManifestError, read_manifest, subsample, summary

HEADER = "path,label,source,split,origin\n"


def write(tmp_path, text, files=("a.jpg", "b.jpg")):
    for f in files:
        (tmp_path / f).write_bytes(b"x")
    p = tmp_path / "m.csv"
    p.write_text(text)
    return p


def test_reads_rows_relative_to_manifest(tmp_path):
    p = write(tmp_path, HEADER + "a.jpg,real,s1,train,o\nb.jpg,fake,s2,val,\n")
    rows = read_manifest(p)
    assert [r.label for r in rows] == ["real", "ai"]  # "fake" is read as ai
    assert rows[0].path == tmp_path / "a.jpg" and rows[1].target == 1
    assert [r.path.name for r in read_manifest(p, split="val")] == ["b.jpg"]
    assert read_manifest(p, sources=["s1"])[0].source == "s1"


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found: .*nope.csv"):
        read_manifest(tmp_path / "nope.csv")


def test_bad_label_names_file_and_line(tmp_path):
    p = write(tmp_path, HEADER + "a.jpg,real,s,train,\nb.jpg,maybe,s,train,\n")
    with pytest.raises(ManifestError, match=r"m.csv:3: label 'maybe'"):
        read_manifest(p)


def test_missing_columns(tmp_path):
    p = write(tmp_path, "path,source\na.jpg,s\n")
    with pytest.raises(ManifestError, match="missing column.*label"):
        read_manifest(p)


def test_missing_image_is_reported(tmp_path):
    p = write(tmp_path, HEADER + "a.jpg,real,s,train,\nzzz.jpg,ai,s,train,\n")
    with pytest.raises(ManifestError, match="1 image.*zzz.jpg"):
        read_manifest(p)
    assert len(read_manifest(p, check_files=False)) == 2


def test_shared_manifest_has_both_labels_per_source(manifest):
    rows = read_manifest(manifest)
    counts = summary(rows)
    sources = {s for s, _, _ in counts}
    assert {"coco-imagenet-sd", "faces"} <= sources
    for s in sources:
        assert counts[(s, "real", "train")] > 0 and counts[(s, "ai", "train")] > 0


def test_subsample_is_balanced_and_reproducible(manifest):
    rows = read_manifest(manifest, split="train")
    a, b = subsample(rows, 5, seed=1), subsample(rows, 5, seed=1)
    assert a == b
    assert all(v == 5 for v in summary(a).values())
