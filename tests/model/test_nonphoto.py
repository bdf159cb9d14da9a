"""model/nonphoto/: rendered real non-photos are deterministic by seed, stored exactly like the shared data
(256x256 baseline JPEG q90), the train and eval settings share no font or template, the CLI writes a
manifest that merges with the shared one, and training really learns from them."""

from __future__ import annotations

import io
import json
import subprocess

import numpy as np
import pytest
from PIL import Image

from aidetect.testing.servers import aidetect_cmd
from model.manifest import read_manifest
from model.nonphoto import KINDS, SETTINGS, SOURCE, meme_photos, render_one, store_as_dataset, write_set


@pytest.fixture(scope="module")
def photos(manifest):
    return meme_photos(manifest, "train")[:20]


@pytest.mark.parametrize("setting", ["train", "eval"])
@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_by_seed_and_stored_like_the_data_set(setting, kind, photos):
    a = store_as_dataset(render_one(setting, kind, seed=3, index=1, photos=photos))
    b = store_as_dataset(render_one(setting, kind, seed=3, index=1, photos=photos))
    c = store_as_dataset(render_one(setting, kind, seed=4, index=1, photos=photos))
    assert a == b and a != c
    img = Image.open(io.BytesIO(a))
    assert img.format == "JPEG" and img.size == (256, 256) and img.mode == "RGB"
    assert not img.info.get("progressive") and "exif" not in img.info and "icc_profile" not in img.info
    # 4:2:0 chroma subsampling, as the data README says: the chroma planes are half size
    assert img.layer[0][1:3] == (2, 2) and img.layer[1][1:3] == (1, 1)
    assert np.asarray(img).std() > 5  # something was drawn, not a blank page


def test_train_and_eval_settings_share_no_font_template_or_style():
    tr, ev = SETTINGS["train"], SETTINGS["eval"]
    fonts = lambda s: {*s.fonts, *s.bold_fonts, *s.mono_fonts}  # noqa: E731
    assert not fonts(tr) & fonts(ev)
    assert not tr.templates() & ev.templates()
    assert not set(tr.mpl_styles) & set(ev.mpl_styles) and not set(tr.cmaps) & set(ev.cmaps)
    assert not set(tr.mpl_family) & set(ev.mpl_family)


def test_eval_memes_caption_photos_training_never_saw(manifest):
    train, ev = set(meme_photos(manifest, "train")), set(meme_photos(manifest, "eval"))
    assert train and ev and not train & ev


@pytest.mark.slow
def test_cli_writes_a_manifest_in_the_shared_columns(tmp_path, manifest):
    out = tmp_path / "np"
    env_cmd = aidetect_cmd("data", "nonphoto", "--out", str(out), "--split", "eval", "--n", "2",
                           "--manifest", str(manifest))
    r = subprocess.run(env_cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    samples = read_manifest(info["manifest"])
    assert len(samples) == 2 * len(KINDS) == info["images"]
    assert {s.label for s in samples} == {"real"} and {s.source for s in samples} == {SOURCE["eval"]}
    assert {s.origin for s in samples} == set(KINDS) and {s.split for s in samples} == {"test"}
    assert (out / "manifest.csv").read_text().splitlines()[0] == "path,label,source,split,origin"
    bad = subprocess.run([*env_cmd[:8], "bogus"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("aidetect: error:") and "bogus" in bad.stderr


def test_write_set_refuses_memes_without_photos(tmp_path):
    with pytest.raises(ValueError, match="photos"):
        write_set(tmp_path, "train", 1, kinds=["meme"])


@pytest.mark.slow
def test_training_pipeline_learns_from_rendered_nonphotos(tmp_path, manifest):
    from model.dataset import load_arrays
    from model.train import load_config, training_samples

    cfg = load_config(per_group=3, epochs=1)  # the default recipe, shrunk
    assert cfg.nonphoto_per_kind > 0  # on by default
    samples = training_samples(cfg, manifest, cache=tmp_path)
    rendered = [s for s in samples if s.source == SOURCE["train"]]
    assert len(rendered) == 3 * len(KINDS) and {s.label for s in rendered} == {"real"}
    assert {s.origin for s in rendered} == set(KINDS) and all(s.target == 0 for s in rendered)
    assert load_arrays(rendered, cfg.pre).shape == (len(rendered), 256, 256, 3)
    # rendered once: a second call reads the cache and gives the same files
    before = {p: p.stat().st_mtime_ns for p in (s.path for s in rendered)}
    again = [s for s in training_samples(cfg, manifest, cache=tmp_path) if s.source == SOURCE["train"]]
    assert {s.path: s.path.stat().st_mtime_ns for s in again} == before
    assert not [s for s in training_samples(load_config(per_group=3, nonphoto_per_kind=0), manifest, tmp_path)
                if s.source == SOURCE["train"]]


def test_cached_set_is_keyed_by_the_manifest(tmp_path, manifest):
    """Memes caption the manifest's real photos, so a changed manifest must render a new set, not reuse one."""
    from model.nonphoto import cached_set, set_folder

    other = tmp_path / "manifest.csv"
    other.write_text(manifest.read_text() + "\n")  # same rows, other bytes: another digest
    a, b = set_folder(tmp_path, "eval", 1, 0, manifest), set_folder(tmp_path, "eval", 1, 0, other)
    assert a != b and a.parent == b.parent == tmp_path
    first = cached_set(tmp_path, "eval", 1, 0, manifest)
    assert (a / "manifest.csv").is_file() and not b.exists()
    assert [s.path for s in cached_set(tmp_path, "eval", 1, 0, manifest)] == [s.path for s in first]
