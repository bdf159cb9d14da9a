"""model/etl/ingest.py: idempotent, resumable collection that dedupes, quarantines and survives being killed."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from aidetect.testing.fakeapi import Fault
from model.etl.connectors import get_connector
from model.etl.connectors.base import Http
from model.etl.db import Cursor, Sighting
from model.etl.db import Image as ImageRow
from model.etl.ingest import Report, ingest_source, parse_duration, run_every
from model.etl.store import Store, StoreError

REPO = Path(__file__).resolve().parents[3]


def _conn(source, fake, **kw):
    return get_connector(source, fake.env(), http=Http(source, sleep=lambda s: None, **kw))


def _sightings(store: Store) -> list[Sighting]:
    with store.session() as s:
        return list(s.scalars(select(Sighting)).all())


def _count(store: Store, model) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def _media_items(fake) -> int:
    return sum(len(p.media) for p in fake.posts)


def test_first_run_stores_second_run_adds_nothing(fake, any_store):
    report = ingest_source(_conn("mastodon", fake), "aiart", any_store)
    assert report.error is None
    distinct = len(set(fake.media))
    assert report.counts["stored"] + report.counts["near_duplicate"] == distinct
    assert report.counts["duplicate"] == _media_items(fake) - distinct  # second images of multi-image posts
    images, sightings = _count(any_store, ImageRow), _count(any_store, Sighting)
    again = ingest_source(_conn("mastodon", fake), "aiart", any_store)
    assert again.error is None and again.counts.get("stored", 0) == 0
    assert (_count(any_store, ImageRow), _count(any_store, Sighting)) == (images, sightings)
    # every stored image's bytes are in the object store under their sha256
    with any_store.session() as s:
        for img in s.scalars(select(ImageRow)):
            assert any_store.objects.exists(img.object_key) and img.object_key.endswith(img.sha256)
            assert img.phash and img.width > 0 and img.source == "mastodon"
    rows = _sightings(any_store)
    assert all(r.author_hash and len(r.author_hash) == 64 and "user" not in r.author_hash for r in rows)
    assert all(r.post_url and r.fetched_at for r in rows)


def test_new_posts_are_collected_on_the_next_run(fake, store, make_jpeg):
    ingest_source(_conn("x", fake), "aiart", store)
    before = _count(store, ImageRow)
    fake.add_posts([make_jpeg((250, 10, 10), (80, 80)), make_jpeg((10, 10, 250), (80, 60))])
    requests_before = len(fake.requests)
    report = ingest_source(_conn("x", fake), "aiart", store)
    assert report.counts["stored"] == 2 and _count(store, ImageRow) == before + 2
    media_fetched = [r for r in fake.requests[requests_before:] if r.startswith("/media/")]
    assert len(media_fetched) == 2  # since_id: only the new posts were asked for


def test_limit_then_resume_from_the_stored_cursor(fake, store):
    first = ingest_source(_conn("bluesky", fake), "aiart", store, limit=8)
    assert first.pages == 2  # page granular: stops after the page that reached the limit
    with store.session() as s:
        cursor = s.get(Cursor, ("bluesky", "aiart"))
        assert cursor.state["cursor"]
    rest = ingest_source(_conn("bluesky", fake), "aiart", store)
    assert rest.counts.get("seen", 0) == 0  # nothing fetched twice
    assert _count(store, Sighting) == _media_items(fake)


def test_exact_and_near_duplicates_are_removed(fake, store, media_blobs):
    from model.etl.objects import sha256_hex

    img = Image.open(io.BytesIO(media_blobs[0])).convert("RGB")
    buf = io.BytesIO()
    img.resize((200, 200)).save(buf, "JPEG", quality=70)  # same picture, different bytes
    original, copy = sha256_hex(media_blobs[0]), sha256_hex(buf.getvalue())
    fake.add_posts([media_blobs[0], buf.getvalue()])  # the original is posted twice in all
    report = ingest_source(_conn("reddit", fake), "aiart", store)
    assert report.error is None
    by_content = {}
    for r in _sightings(store):
        by_content.setdefault(r.content_sha256, []).append(r)
    # The walk is newest first, so the re-encoded copy is met first and kept; the original becomes a
    # near duplicate of it, and the original's second posting an exact duplicate of that.
    kept = [r for r in by_content[original] + by_content[copy] if r.status == "stored"]
    assert len(kept) == 1
    others = sorted(r.status for r in by_content[original] + by_content[copy] if r.status != "stored")
    assert others == ["duplicate", "near_duplicate"] or others == ["near_duplicate", "near_duplicate"]
    near = next(r for r in by_content[original] + by_content[copy] if r.status == "near_duplicate")
    assert near.image_sha256 == kept[0].content_sha256 and "perceptual hash" in near.reason
    with store.session() as s:
        assert (s.get(ImageRow, original) is None) != (s.get(ImageRow, copy) is None)  # one of them stored


def test_bad_media_is_quarantined_with_a_reason(fake, store, bad_media):
    fake.add_posts(list(bad_media.values()))
    report = ingest_source(_conn("mastodon", fake), "aiart", store)
    assert report.error is None and report.counts["quarantined"] == 3
    reasons = sorted(r.reason for r in _sightings(store) if r.status == "quarantined")
    assert any("not an image" in r and "415" in r for r in reasons)
    assert any("truncated" in r and "422" in r for r in reasons)
    assert any("MP" in r and "413" in r for r in reasons)
    stats = store.stats()
    assert stats["sightings"]["quarantined"] == 3 and len(stats["top_quarantine_reasons"]) == 3
    again = ingest_source(_conn("mastodon", fake), "aiart", store)
    assert again.counts.get("quarantined", 0) == 0  # recorded once, not retried


def test_failed_downloads_are_retried_in_later_runs_then_quarantined(fake, store):
    fake.faults.append(Fault("/media/3", 404, times=100))
    fake.faults.append(Fault("/media/4", 503, times=2))  # transient: succeeds within the run's retries
    first = ingest_source(_conn("instagram", fake, max_retries=2), "aiart", store)
    assert first.counts["failed"] == 1
    row = next(r for r in _sightings(store) if r.media_url.endswith("/media/3"))
    assert row.status == "failed" and "404" in row.reason and row.attempts == 1
    ingest_source(_conn("instagram", fake, max_retries=2), "aiart", store)
    third = ingest_source(_conn("instagram", fake, max_retries=2), "aiart", store)
    assert third.counts["quarantined"] == 1
    row = next(r for r in _sightings(store) if r.media_url.endswith("/media/3"))
    assert row.status == "quarantined" and row.attempts == 3 and row.reason.startswith("fetch failed")
    fake.faults.clear()
    assert _count(store, ImageRow) == len(set(fake.media)) - 1 - sum(
        1 for r in _sightings(store) if r.status == "near_duplicate"
    )


def test_a_malformed_page_stops_the_run_but_keeps_what_was_committed(fake, store):
    fake.faults.append(Fault("next_token=tok10", 200, times=1, body=b"<html>502 Bad Gateway</html>"))
    report = ingest_source(_conn("x", fake), "aiart", store)
    assert report.error and "malformed JSON" in report.error and report.pages == 2
    first_two_pages = sum(len(p.media) for p in fake.newest_first()[:10])
    assert _count(store, Sighting) == first_two_pages
    resumed = ingest_source(_conn("x", fake), "aiart", store)
    assert resumed.error is None and resumed.counts.get("seen", 0) == 0  # resumed at page 3, nothing refetched
    assert _count(store, Sighting) == _media_items(fake)


def test_database_down_is_a_clear_error(tmp_path):
    from model.etl.store import StoreError

    with pytest.raises(StoreError, match=r"database postgresql://etl:\*\*\*@127.0.0.1:9/etl failed"):
        Store.open("postgresql://etl:secret@127.0.0.1:9/etl", str(tmp_path / "objects"))


def test_parse_duration():
    assert parse_duration("15m") == 900 and parse_duration("1h") == 3600 and parse_duration("30") == 30
    assert parse_duration("0.5s") == 0.5
    for bad in ("", "15 minutes", "-1m", "0s"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_run_every_keeps_the_cadence_and_survives_a_failed_run():
    now = [0.0]
    waits = []
    results = [Report("x", "q", error="x: 503"), Report("x", "q"), Report("x", "q")]

    def job():
        now[0] += 2.0  # each run takes 2 s
        return results[len(waits)]

    def sleep(s):
        waits.append(s)
        now[0] += s

    reports = run_every(10.0, job, runs=3, sleep=sleep, clock=lambda: now[0])
    assert len(reports) == 3 and waits == [8.0, 8.0]


def _cli_env(fake, tmp_path) -> dict:
    env = {
        **os.environ,
        **fake.env(),
        "AIDETECT_HOME": str(tmp_path / "home"),
        "AIDETECT_STORE_URL": f"sqlite:///{tmp_path / 'etl.db'}",
        "AIDETECT_OBJECT_STORE": str(tmp_path / "obj"),
    }
    env["PYTHONPATH"] = str(REPO)
    return env


# `aidetect ingest ARGS` through the root command, which turns user errors into one line.
INGEST = "import sys; from aidetect.cli import main; sys.argv[:1] = ['aidetect', 'ingest']; main()"


@pytest.mark.slow
def test_killed_mid_batch_loses_nothing(fake, tmp_path):
    """SIGKILL the ingest process while a page is half downloaded, run it again: every item exactly once."""
    fake.media_delay = 0.06  # slow media so a page takes a while
    env = _cli_env(fake, tmp_path)
    cmd = [sys.executable, "-c", INGEST, "--source", "mastodon", "--tag", "aiart", "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    store = Store.open(env["AIDETECT_STORE_URL"], env["AIDETECT_OBJECT_STORE"], upgrade=False)
    deadline = time.monotonic() + 60
    try:
        # wait for one committed page, then for the next page's downloads to be under way
        while time.monotonic() < deadline:
            try:
                committed = _count(store, Sighting)
            except Exception:
                committed = 0  # the schema may not exist yet
            if committed >= 5:
                break
            time.sleep(0.02)
        media_then = sum(r.startswith("/media/") for r in fake.requests)
        while sum(r.startswith("/media/") for r in fake.requests) < media_then + 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    at_kill = _count(store, Sighting)
    fetched = sum(r.startswith("/media/") for r in fake.requests)
    assert 0 < at_kill < fetched < _media_items(fake)  # killed mid-batch: fetched work was not committed
    with store.session() as s:
        state = s.get(Cursor, ("mastodon", "aiart")).state
    assert state["cursor"]  # the cursor points at the first uncommitted page

    fake.media_delay = 0
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = _sightings(store)
    keys = Counter((r.post_id, r.media_key) for r in rows)
    expected = {(str(113000000000000000 + p.n), str(109000000000000000 + m)) for p in fake.posts for m in p.media}
    assert set(keys) == expected and max(keys.values()) == 1
    with store.session() as s:
        images = s.scalars(select(ImageRow)).all()
    assert len(images) + sum(r.status == "near_duplicate" for r in rows) == len(set(fake.media))
    assert all(store.objects.exists(i.object_key) for i in images)
    store.close()


@pytest.mark.slow
def test_scheduled_mode_recollects(fake, tmp_path):
    env = _cli_env(fake, tmp_path)
    cmd = [sys.executable, "-c", INGEST, "--source", "reddit", "--tag", "aiArt", "--every", "0.3s", "--runs", "2"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 2
    import json

    first, second = (json.loads(ln) for ln in lines)
    assert first["stored"] > 0 and second.get("stored", 0) == 0 and second["error"] is None


@pytest.mark.slow
def test_cli_errors_are_one_line(fake, tmp_path):
    env = _cli_env(fake, tmp_path)
    env.pop("X_BEARER_TOKEN")
    done = subprocess.run(
        [sys.executable, "-c", INGEST, "--source", "x", "--tag", "aiart"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip() == "aidetect: error: X_BEARER_TOKEN is not set: it must hold an X API v2 app bearer token"
    )
    env["X_BEARER_TOKEN"] = "wrong"
    done = subprocess.run(
        [sys.executable, "-c", INGEST, "--source", "x", "--tag", "aiart"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("aidetect: error: x: access denied (401)") and "Traceback" not in done.stderr


def test_an_item_that_breaks_processing_is_quarantined_not_the_batch(fake, store, monkeypatch):
    import model.etl.ingest as ingest_mod

    real = ingest_mod.extract_provenance
    poison = fake.media[3]

    def explode_on_one(data):
        if data == poison:
            raise RuntimeError("boom")
        return real(data)

    monkeypatch.setattr(ingest_mod, "extract_provenance", explode_on_one)
    report = ingest_source(_conn("mastodon", fake), "aiart", store)
    assert report.error is None and report.counts["quarantined"] == 1
    bad = [r for r in _sightings(store) if r.status == "quarantined"]
    assert len(bad) == 1 and "internal error: RuntimeError: boom" in bad[0].reason
    assert bad[0].media_url.endswith("/media/3")
    assert report.counts["stored"] == len(set(fake.media)) - 1 - report.counts.get("near_duplicate", 0)


def test_object_store_down_aborts_the_batch_without_blaming_items(fake, tmp_path, s3_client):
    store = Store.open(f"sqlite:///{tmp_path / 's3.db'}", "s3://not-created-yet/img")
    report = ingest_source(_conn("mastodon", fake), "aiart", store)
    assert report.error and "not-created-yet" in report.error
    assert _count(store, Sighting) == 0 and store.get_cursor("mastodon", "aiart") == {}  # nothing half-done
    s3_client.create_bucket(Bucket="not-created-yet")
    again = ingest_source(_conn("mastodon", fake), "aiart", store)
    assert again.error is None and again.counts.get("quarantined", 0) == 0
    assert _count(store, ImageRow) == again.counts["stored"] > 0
    store.close()


def test_generator_metadata_becomes_a_weak_label(fake, store, make_jpeg):
    from PIL import PngImagePlugin

    from model.etl.objects import sha256_hex

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a castle\nSteps: 28, Sampler: Euler a, CFG scale: 7, Seed: 42, Model: sdxl")
    img = Image.open(io.BytesIO(make_jpeg((77, 1, 1), size=(96, 96)))).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "PNG", pnginfo=info)
    fake.add_posts([buf.getvalue()])
    ingest_source(_conn("bluesky", fake), "aiart", store)
    with store.session() as s:
        row = s.get(ImageRow, sha256_hex(buf.getvalue()))
        assert (row.label, row.label_origin, row.generator, row.ai_hint) == ("ai", "weak", "AUTOMATIC1111", True)
        assert row.format == "PNG"
        unlabelled = s.scalars(select(ImageRow).where(ImageRow.sha256 != row.sha256)).all()
        assert all(i.label is None and not i.ai_hint for i in unlabelled)  # no metadata, no label


def test_malformed_posts_are_counted_and_do_not_block_later_runs(fake, store):
    fake.broken = {2}
    first = ingest_source(_conn("instagram", fake), "aiart", store)
    assert first.error is None and first.counts["malformed_posts"] == 1
    assert _count(store, Sighting) == _media_items(fake) - 1


def test_a_concurrent_writer_is_a_clear_error_and_the_next_run_continues(fake, store):
    """Two collectors of one query (an overlapping CronJob): the loser of an insert race stops cleanly."""
    ingest_source(_conn("mastodon", fake), "aiart", store, limit=1)
    first = _sightings(store)[0]
    with pytest.raises(StoreError, match="another writer stored the same rows first"):
        with store.session("storing a batch") as s:  # what the slower writer's commit amounts to
            s.add(Sighting(source=first.source, post_id=first.post_id, media_key=first.media_key, status="stored"))
    again = ingest_source(_conn("mastodon", fake), "aiart", store)
    assert again.error is None and _count(store, Sighting) == _media_items(fake)
