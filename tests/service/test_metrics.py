"""What GET /metrics renders: the metric families, and gauges read at scrape time."""

from __future__ import annotations

import json

from service.metrics import StateCollector, metrics, render


def test_render_has_every_family_and_scrape_time_gauges(tmp_path):
    drift = tmp_path / "drift.json"
    drift.write_text(json.dumps({"features": {"score": {"psi": 0.31}, "aspect": {"psi": None}}}))
    metrics().batch.observe(8)
    body, ctype = render(StateCollector(queue_size=lambda: 7, drift_file=drift, outbox_size=lambda: 2))
    text = body.decode()
    assert ctype.startswith("text/plain")
    for name in ("aidetect_requests_total", "aidetect_request_latency_seconds", "aidetect_verdicts_total",
                 "aidetect_score", "aidetect_batch_size_bucket", "aidetect_model_info"):
        assert f"# TYPE {name.removesuffix('_bucket')}" in text or name in text, name
    assert "aidetect_review_queue_size 7.0" in text and "aidetect_outbox_pending 2.0" in text
    assert 'aidetect_drift_psi{feature="score"} 0.31' in text and 'feature="aspect"' not in text


def test_a_database_outage_hides_the_queue_gauge_instead_of_failing_the_scrape(tmp_path):
    def down():
        raise ConnectionError("database down")

    text = render(StateCollector(queue_size=down, drift_file=tmp_path / "missing.json"))[0].decode()
    assert "aidetect_review_queue_size" not in text and "aidetect_score" in text


def test_parked_outboxes_are_counted_at_most_once_a_minute_and_hidden_when_the_store_is_away(tmp_path):
    listings = []

    def parked():
        listings.append(1)
        return 3

    collector = StateCollector(drift_file=tmp_path / "missing.json", parked=parked)
    for _ in range(3):
        assert "aidetect_outbox_parked_objects 3.0" in render(collector)[0].decode()
    assert len(listings) == 1  # one object-store listing, not one per scrape

    def away():
        raise ConnectionError("object store down")

    text = render(StateCollector(drift_file=tmp_path / "missing.json", parked=away))[0].decode()
    assert "aidetect_outbox_parked_objects" not in text and "aidetect_outbox_adopted_records_total" in text
