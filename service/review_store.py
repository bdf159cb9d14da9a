"""Kept review images into the object store, retried briefly: the detect answer waits for this.

    keeper = ReviewStore(open_review_objects(spec))   # the directory or s3:// store of the settings
    keeper.keep(detection, data)                      # True once the bytes are stored; else the detection says so

A transient failure (refused or dropped connection, timeout, S3 5xx or throttling, a disk error) is retried
with jittered exponential backoff, at most ATTEMPTS tries and no new try once BUDGET_S has passed, so a
store that is down delays an uncertain image's answer by about a second, not by the client's own patience.
A refusal that will not heal within that budget (403, no such bucket) is not retried. When the keep gives
up, the image is still answered: the detection says kept_for_review false (a record never points at an
object that is not there), aidetect_review_keep_failures counts it and one log line says why. After a
give-up the store counts as down for DOWN_S: puts get one try each, so a batch of uncertain images, or the
images behind it, does not pay the whole budget again per image while the store is away.

tenacity is the one retry layer, for both stores: boto3's own (standard mode) waits up to 1 s, then 2 s,
with no smaller base to configure, so the S3 client here has botocore's retries off and short timeouts.
"""

from __future__ import annotations

import logging
import time

import tenacity

from model.etl.objects import Objects, open_objects

log = logging.getLogger(__name__)

ATTEMPTS = 4
BUDGET_S = 1.0  # no new try starts later than this after the first
FIRST_WAIT_S, MAX_WAIT_S = 0.05, 0.4
DOWN_S = 10.0
# The worker's S3 client: a store that accepts the connection and then hangs costs one read timeout.
CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 0.5, 2.0
WARM_KEY = "warm-up"  # looked up, never written
THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed"}


def open_review_objects(spec: str):
    """The object store for kept images, its S3 client bounded as the module docstring says."""
    if not str(spec).startswith("s3://"):
        return open_objects(spec)
    import boto3
    from botocore.config import Config

    cfg = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
    )
    return open_objects(spec, client=boto3.client("s3", config=cfg))


def review_objects(settings):
    """The settings' store for kept images (AIDETECT_OBJECT_STORE, else a directory under AIDETECT_HOME), which
    also parks the records a stopping server could not flush (service/outbox_spill.py)."""
    from model.etl.store import default_urls

    return open_review_objects(default_urls(settings)[1])


def transient(e: BaseException) -> bool:
    """Whether another try may succeed. S3Objects raises its error `from None`: botocore's is the context."""
    cause = e.__cause__ or e.__context__ or e
    if type(cause).__module__.startswith("botocore"):
        from botocore.exceptions import ClientError

        if isinstance(cause, ClientError):
            status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            code = cause.response.get("Error", {}).get("Code", "")
            return status >= 500 or status in (408, 429) or code in THROTTLED
    return True  # connection errors, timeouts, OSError on a local disk


class ReviewStore:
    def __init__(self, objects: Objects, metrics=None):
        self.objects = objects
        self.metrics = metrics
        self._down_until = 0.0  # monotonic time until which a put gets a single try

    def _retrying(self, detection_id: str) -> tenacity.Retrying:
        def note(state: tenacity.RetryCallState) -> None:
            if self.metrics is not None:
                self.metrics.keep_retries.inc()
            log.warning(
                "keeping the review image of %s: try %d failed (%s); retrying in %.2f s",
                detection_id,
                state.attempt_number,
                state.outcome.exception(),
                state.upcoming_sleep,
            )

        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(1 if time.monotonic() < self._down_until else ATTEMPTS)
            | tenacity.stop_before_delay(BUDGET_S),
            wait=tenacity.wait_exponential(multiplier=FIRST_WAIT_S, max=MAX_WAIT_S)
            + tenacity.wait_random(0, FIRST_WAIT_S),
            retry=tenacity.retry_if_exception(transient),
            before_sleep=note,
            reraise=True,
        )

    def warm(self) -> bool:
        """One request before the first kept image, so that image's budget is not spent on the client's
        first-request set-up (endpoint rules, credentials, the connection: over a second on a loaded machine).
        Best effort: a store that is down now is said once, and each kept image still tries it."""
        t = time.perf_counter()
        try:
            self.objects.exists(WARM_KEY)
        except Exception as e:
            log.warning("object store %s did not answer at start: %s; each kept image will try it", self.objects.url, e)
            return False
        log.info("object store %s answered in %.0f ms", self.objects.url, 1000 * (time.perf_counter() - t))
        return True

    def keep(self, detection, data: bytes) -> bool:
        """Store a kept detection's bytes; on failure clear its kept_for_review (and phash) and say why."""
        retrying = self._retrying(detection.id)
        try:
            retrying(self.objects.put, detection.sha256, data)
            self._down_until = 0.0
            return True
        except Exception as e:
            self._down_until = time.monotonic() + DOWN_S
            tries = retrying.statistics.get("attempt_number", 1)
            if self.metrics is not None:
                self.metrics.keep_failures.inc()
            log.error(
                "could not keep the review image of %s in %s after %d tr%s: %s; answered with kept_for_review false",
                detection.id,
                self.objects.url,
                tries,
                "y" if tries == 1 else "ies",
                e,
            )
            detection.kept_for_review, detection.phash = False, None
            return False
