"""Kept images survive a flaky object store: S3 (moto's server) behind a loopback front that fails the first
puts, as a restarting or throttling store does; the retry is seen from the store's side, the bytes are there."""

from __future__ import annotations

import http.client
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aidetect.testing.pictures import noise
from model.etl.objects import object_key
from service import review_store
from service.metrics import metrics
from service.review_store import ReviewStore, open_review_objects

BUCKET = "kept"


class FlakyFront:
    """Forwards S3 requests to `upstream`; the first `fail` object PUTs get `how`: "503" (SlowDown, as a
    throttling store answers) or "drop" (the connection closed unanswered, as a store going down does)."""

    def __init__(self, upstream: str, fail: int, how: str = "503"):
        self.fail, self.how, self.puts, self.heads = fail, how, 0, 0
        host, port = upstream.removeprefix("http://").split(":")
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                front.heads += self.command == "HEAD"
                if self.command == "PUT" and self.path.count("/") > 1:  # an object, not the bucket
                    front.puts += 1
                    if front.puts <= front.fail:
                        return self._refuse()
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
                conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                res = conn.getresponse()
                data = res.read()
                self.send_response(res.status)
                for k, v in res.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            def _refuse(self):
                if front.how == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                err = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                self.send_response(503)
                self.send_header("content-type", "application/xml")
                self.send_header("content-length", str(len(err)))
                self.end_headers()
                self.wfile.write(err)

            do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def front(s3_endpoint, s3_credentials, monkeypatch):
    import boto3

    direct = boto3.client("s3", endpoint_url=s3_endpoint)
    if BUCKET not in {b["Name"] for b in direct.list_buckets().get("Buckets", [])}:
        direct.create_bucket(Bucket=BUCKET)
    made = []

    def make(fail: int, how: str = "503"):
        f = FlakyFront(s3_endpoint, fail, how)
        made.append(f)
        monkeypatch.setenv("AWS_ENDPOINT_URL", f.url)  # the worker's client reads its endpoint from here
        return f, direct

    yield make
    for f in made:
        f.close()


def counter(name: str) -> float:
    from prometheus_client import REGISTRY

    metrics()
    return REGISTRY.get_sample_value(f"{name}_total") or 0.0


def kept_detection(make_detection, seed: int):
    data = noise(seed=seed, size=(40, 30), block=8)
    return make_detection(data), data


@pytest.mark.slow
@pytest.mark.parametrize("how", ["503", "drop"])
def test_a_put_that_fails_twice_is_retried_and_the_bytes_are_stored(front, make_detection, how, monkeypatch):
    # The retries are under test here, not the time budget (the store-stays-down test has that): on a loaded
    # machine the first try alone (boto3's first request, through the front to moto) can outlast 1 s.
    monkeypatch.setattr(review_store, "BUDGET_S", 30.0)
    flaky, direct = front(fail=2, how=how)
    d, data = kept_detection(make_detection, seed=11 if how == "503" else 12)
    keeper = ReviewStore(open_review_objects(f"s3://{BUCKET}/review"), metrics())
    retries = counter("aidetect_review_keep_retries")
    assert keeper.keep(d, data) is True
    assert flaky.puts == 3  # two refused, the third stored: the retry happened at the store
    assert d.kept_for_review and d.phash is not None
    assert direct.get_object(Bucket=BUCKET, Key=f"review/{object_key(d.sha256)}")["Body"].read() == data
    assert counter("aidetect_review_keep_retries") - retries == 2


@pytest.mark.slow
def test_a_store_that_stays_down_is_given_up_on_and_the_detection_says_not_kept(
    front, make_detection, caplog, monkeypatch
):
    monkeypatch.setattr(review_store, "BUDGET_S", 30.0)  # the attempt bound under test; the budget's is below
    flaky, direct = front(fail=10**6)
    d, data = kept_detection(make_detection, seed=13)
    keeper = ReviewStore(open_review_objects(f"s3://{BUCKET}"), metrics())
    failures = counter("aidetect_review_keep_failures")
    with caplog.at_level(logging.WARNING, logger="service.review_store"):
        assert keeper.keep(d, data) is False
    assert flaky.puts == review_store.ATTEMPTS  # retried, and bounded
    assert not d.kept_for_review and d.phash is None  # the record never points at a missing object
    assert counter("aidetect_review_keep_failures") - failures == 1
    assert any("could not keep the review image" in r.message and d.id in r.message for r in caplog.records)
    with pytest.raises(direct.exceptions.ClientError):
        direct.head_object(Bucket=BUCKET, Key=object_key(d.sha256))
    # known down: the next kept image gets one try, not the whole budget again
    before = flaky.puts
    other, other_data = kept_detection(make_detection, seed=17)
    assert keeper.keep(other, other_data) is False and flaky.puts == before + 1
    # and once the store answers again, images are kept
    flaky.fail = 0
    assert keeper.keep(other, other_data) is True


@pytest.mark.slow
def test_a_refusal_that_will_not_heal_is_not_retried(front, make_detection):
    flaky, _ = front(fail=0)
    d, data = kept_detection(make_detection, seed=14)
    keeper = ReviewStore(open_review_objects("s3://no-such-bucket"), metrics())
    assert keeper.keep(d, data) is False
    assert flaky.puts == 1 and not d.kept_for_review


@pytest.mark.slow
def test_warming_asks_the_store_once_and_a_store_that_is_down_only_says_so(front, make_detection, caplog, monkeypatch):
    flaky, _ = front(fail=0)
    keeper = ReviewStore(open_review_objects(f"s3://{BUCKET}"), metrics())
    assert keeper.warm() is True and flaky.heads == 1 and flaky.puts == 0  # looked up, nothing written
    d, data = kept_detection(make_detection, seed=19)
    assert keeper.keep(d, data) is True

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    down = ReviewStore(open_review_objects(f"s3://{BUCKET}"), metrics())
    with caplog.at_level(logging.WARNING, logger="service.review_store"):
        assert down.warm() is False
    assert any("did not answer at start" in r.message for r in caplog.records)
    assert time.monotonic() >= down._down_until  # not marked down: the first kept image gets every try


def test_a_local_store_keeps_the_bytes(tmp_path, make_detection):
    d, data = kept_detection(make_detection, seed=15)
    keeper = ReviewStore(open_review_objects(str(tmp_path / "objects")))
    assert keeper.keep(d, data) and (tmp_path / "objects" / object_key(d.sha256)).read_bytes() == data


def test_a_local_store_that_cannot_write_retries_then_says_not_kept(tmp_path, make_detection, monkeypatch):
    monkeypatch.setattr(review_store, "BUDGET_S", 30.0)  # every attempt, however loaded the machine
    blocked = tmp_path / "objects"
    blocked.write_bytes(b"")  # a file where the store's directory should be: every put fails
    d, data = kept_detection(make_detection, seed=16)
    keeper = ReviewStore(open_review_objects(str(blocked)), metrics())
    retries, failures = counter("aidetect_review_keep_retries"), counter("aidetect_review_keep_failures")
    assert keeper.keep(d, data) is False and not d.kept_for_review and d.phash is None
    assert counter("aidetect_review_keep_retries") - retries == review_store.ATTEMPTS - 1
    assert counter("aidetect_review_keep_failures") - failures == 1


class SlowFailingObjects:
    """A store whose every put fails after `delay` seconds, as one that times out does."""

    url = "slow://"

    def __init__(self, delay: float):
        self.delay, self.puts = delay, 0

    def put(self, sha256: str, data: bytes) -> None:
        self.puts += 1
        time.sleep(self.delay)
        raise OSError("timed out")


def test_no_try_starts_after_the_time_budget(make_detection):
    # Tries of 0.6 s: the second starts inside the 1 s budget, a third would start after it. A slower
    # machine can only make that fewer tries, never more.
    slow = SlowFailingObjects(0.6)
    d, data = kept_detection(make_detection, seed=18)
    assert review_store.BUDGET_S == 1.0 and review_store.ATTEMPTS > 2
    assert ReviewStore(slow).keep(d, data) is False
    assert 1 <= slow.puts <= 2 and not d.kept_for_review
