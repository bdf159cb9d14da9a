"""model/etl/store.py: labels by origin precedence, record_label for the service, cursors, errors."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from model.etl.db import Image, LabelEvent
from model.etl.ingest import Ingestor
from model.etl.items import Item
from model.etl.store import PhashIndex, Store, StoreError, hash_author


def _add(store: Store, data: bytes, label: str | None = None, source="cifake", post_id="a.jpg") -> str:
    ing = Ingestor(store)
    with store.session() as s:
        status = ing.process(s, Item(source=source, post_id=post_id, label=label), data)
    assert status == "stored"
    from model.etl.objects import sha256_hex

    return sha256_hex(data)


def _image(store, sha) -> Image:
    with store.session() as s:
        return s.get(Image, sha)


def test_moderator_label_wins_and_is_recorded(any_store, make_jpeg):
    sha = _add(any_store, make_jpeg((1, 1, 1)), label="real")
    img = _image(any_store, sha)
    assert (img.label, img.label_origin) == ("real", "dataset")
    out = any_store.record_label(sha, "ai", moderator="alice", note="visible artefacts")
    assert out == {"sha256": sha, "label": "ai", "label_origin": "moderator"}
    any_store.record_label(sha, "fake", moderator="bob")  # upstream alias, normalised
    img = _image(any_store, sha)
    assert (img.label, img.label_origin) == ("ai", "moderator")
    with any_store.session() as s:
        events = s.scalars(select(LabelEvent).where(LabelEvent.sha256 == sha).order_by(LabelEvent.id)).all()
        assert [(e.label, e.origin, e.moderator) for e in events] == [
            ("real", "dataset", None),
            ("ai", "moderator", "alice"),
            ("ai", "moderator", "bob"),
        ]
        assert events[1].note == "visible artefacts"


def test_record_label_refuses_bad_input(store, make_jpeg):
    sha = _add(store, make_jpeg((2, 2, 2)))
    with pytest.raises(StoreError, match="not one of"):
        store.record_label(sha, "maybe", moderator="alice")
    with pytest.raises(StoreError, match="no stored image"):
        store.record_label("0" * 64, "ai", moderator="alice")
    with pytest.raises(StoreError, match="label origin"):
        store.record_label(sha, "ai", origin="rumour")


def test_conflicting_dataset_labels_wait_for_a_moderator(store, make_jpeg):
    data = make_jpeg((3, 3, 3))
    sha = _add(store, data, label="real", post_id="one.jpg")
    ing = Ingestor(store)
    with store.session() as s:
        assert ing.process(s, Item(source="other", post_id="two.jpg", label="ai"), data) == "duplicate"
    img = _image(store, sha)
    assert img.label is None and img.label_origin == "conflict"
    store.record_label(sha, "ai", moderator="carol")
    assert _image(store, sha).label == "ai"


def test_weak_label_never_overrides_a_dataset_label(store, make_jpeg):
    sha = _add(store, make_jpeg((4, 4, 4)), label="real")
    with store.session() as s:
        img = s.get(Image, sha)
        store.set_label(s, img, "ai", "weak")
    assert (_image(store, sha).label, _image(store, sha).label_origin) == ("real", "dataset")


def test_cursor_round_trip(store):
    assert store.get_cursor("x", "aiart") == {}
    with store.session() as s:
        store.set_cursor(s, "x", "aiart", {"cursor": "tok5", "since": None})
    with store.session() as s:
        store.set_cursor(s, "x", "aiart", {"cursor": None, "since": "99"})
    assert store.get_cursor("x", "aiart") == {"cursor": None, "since": "99"}


def test_author_hash_is_keyed_and_stable(monkeypatch):
    assert hash_author("x", None) is None
    a = hash_author("x", "alice")
    assert a == hash_author("x", "alice") and a != hash_author("mastodon", "alice") and "alice" not in a
    monkeypatch.setenv("AIDETECT_AUTHOR_SALT", "other")
    assert hash_author("x", "alice") != a


def test_phash_index():
    idx = PhashIndex(["a", "b"], ["0000000000000000", "ffffffffffffffff"])
    assert idx.nearest("0000000000000003", 4) == ("a", 2)
    assert idx.nearest("00000000ffff0000", 4) is None
    for i in range(3000):  # grows past its initial buffer
        idx.add(f"s{i}", f"{i:016x}")
    assert len(idx) == 3002 and idx.nearest(f"{2999:016x}", 0) == ("s2999", 0)
    assert sorted(idx.within("0000000000000000", 1)) == [0, 2, 3, 4, 6, 10, 18, 34, 66, 130, 258, 514, 1026, 2050]


def test_defaults_live_under_home(tmp_path, monkeypatch):
    monkeypatch.setenv("AIDETECT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AIDETECT_STORE_URL", raising=False)
    monkeypatch.delenv("AIDETECT_OBJECT_STORE", raising=False)
    store = Store.open()
    stats = store.stats()
    assert stats["database"] == f"sqlite:///{tmp_path / 'home' / 'etl.db'}"
    assert stats["objects"] == str(tmp_path / "home" / "objects")
    store.close()


def test_module_level_record_label_uses_the_default_store(tmp_path, monkeypatch, make_jpeg):
    import model.etl.store as store_mod

    monkeypatch.setenv("AIDETECT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AIDETECT_STORE_URL", raising=False)
    monkeypatch.delenv("AIDETECT_OBJECT_STORE", raising=False)
    monkeypatch.setattr(store_mod, "_DEFAULT_STORE", None)
    sha = _add(store_mod.default_store(), make_jpeg((9, 9, 9)))
    assert store_mod.record_label(sha, "ai", moderator="dana") == {
        "sha256": sha,
        "label": "ai",
        "label_origin": "moderator",
    }
    store_mod.default_store().close()
