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


def test_shared_manifest_two_label_sources_have_both_labels_in_each_split(manifest):
    # Since December most sources hold one label only (scored pooled); the two-label ones are
    # scored per source, so each needs both labels in train and in val.
    counts = summary(read_manifest(manifest))
    labels_of: dict[str, set[str]] = {}
    for s, label, _ in counts:
        labels_of.setdefault(s, set()).add(label)
    two_label = {s for s, labels in labels_of.items() if labels == {"real", "ai"}}
    assert {"coco-imagenet-sd", "faces"} <= two_label
    for s in two_label:
        for split in ("train", "val"):
            assert counts.get((s, "real", split), 0) > 0 and counts.get((s, "ai", split), 0) > 0, (s, split)
    assert {label for s in labels_of for label in labels_of[s]} == {"real", "ai"}


def test_shared_manifest_single_label_rows_name_their_origin(manifest):
    # Leave-one-family-out groups single-label AI images by generator, which `origin` names.
    rows = read_manifest(manifest, check_files=False)
    labels_of: dict[str, set[str]] = {}
    for r in rows:
        labels_of.setdefault(r.source, set()).add(r.label)
    single = [r for r in rows if len(labels_of[r.source]) == 1]
    assert single, "the shared data has single-label sources since December"
    assert all(r.origin for r in single)


def test_subsample_is_balanced_and_reproducible(manifest):
    rows = read_manifest(manifest, split="train")
    a, b = subsample(rows, 5, seed=1), subsample(rows, 5, seed=1)
    assert a == b
    assert all(v == 5 for v in summary(a).values())
