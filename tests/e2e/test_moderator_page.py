"""The moderator page in headless Debian Chromium (selenium + /usr/bin/chromedriver, no downloads):
sign in, label an item with a keyboard shortcut, see it leave the queue and land in the store.

AIDETECT_SCREENSHOT=docs/moderator-page.png keeps a screenshot of the page with an item under review.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import time

import httpx
import pytest
from PIL import Image, ImageFilter
from sqlalchemy import select

from model.etl.db import Image as StoredImage
from model.etl.db import LabelEvent
from model.manifest import read_manifest, subsample
from service.records import Feedback

pytestmark = pytest.mark.slow

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def variants(data: bytes):
    """Blurred, shrunk and recompressed versions: some land between the thresholds of any model."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    for radius in (0, 1, 2, 4, 8):
        for size in (256, 128, 64):
            for q in (95, 60, 30):
                buf = io.BytesIO()
                img.filter(ImageFilter.GaussianBlur(radius)).resize((size, size)).save(buf, "JPEG", quality=q)
                yield buf.getvalue()


def queue_item(svc, manifest, fmt: str = "JPEG") -> tuple[str, bytes]:
    """The id and bytes of an upload in `fmt` that the service kept for review."""
    headers = {"Authorization": f"Bearer {svc.keys['main']['key']}"}
    with httpx.Client(base_url=svc.url, headers=headers, timeout=60) as c:
        for sample in subsample(read_manifest(manifest, split="val"), 1):
            for data in variants(sample.path.read_bytes()):
                if fmt != "JPEG":
                    buf = io.BytesIO()
                    Image.open(io.BytesIO(data)).save(buf, fmt)
                    data = buf.getvalue()
                r = c.post("/v1/detect", content=data).json()
                if r["kept_for_review"]:
                    return r["id"], data
    pytest.fail("no upload landed between the model's thresholds; nothing to review")


@pytest.fixture
def browser(tmp_path):
    if not (shutil.which(CHROMIUM) and shutil.which(DRIVER)):
        pytest.fail("Debian chromium and chromium-driver are missing: run scripts/setup-system.sh")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):  # fmt: skip
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_for(predicate, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception:  # the element is not there yet
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_label_an_item_in_headless_chromium(secure_server, manifest, browser):
    from selenium.webdriver.common.by import By

    res = secure_server.cli("moderators", "add", "alice", "--password-stdin", stdin="correct horse battery\n")
    assert res.returncode == 0, res.stderr
    queue_item(secure_server, manifest)
    url = secure_server.url

    browser.get(f"{url}/moderate")
    assert browser.current_url.endswith("/moderate/login")  # not signed in: sent to the sign-in form
    browser.find_element(By.ID, "name").send_keys("alice")
    browser.find_element(By.ID, "password").send_keys("wrong password")
    browser.find_element(By.ID, "signin").click()
    wait_for(lambda: "Wrong name or password" in browser.find_element(By.ID, "error").text, what="refusal")
    browser.find_element(By.ID, "name").send_keys("alice")
    browser.find_element(By.ID, "password").send_keys("correct horse battery")
    browser.find_element(By.ID, "signin").click()

    item_id = wait_for(
        lambda: browser.find_element(By.ID, "item").is_displayed() and browser.find_element(By.ID, "item-id").text,
        what="an item under review",
    )
    assert browser.find_element(By.ID, "moderator").text == "alice"
    assert float(browser.find_element(By.ID, "item-score").text) >= 0
    assert "aidetect v" in browser.find_element(By.ID, "item-model").text
    assert browser.find_element(By.ID, "item-provenance").text  # "none found" or the hints
    wait_for(lambda: browser.execute_script("return document.getElementById('item-image').naturalWidth > 0"),
             what="the kept image to load")
    if shot := os.environ.get("AIDETECT_SCREENSHOT"):
        browser.save_screenshot(shot)

    browser.find_element(By.TAG_NAME, "body").send_keys("a")  # keyboard shortcut: AI
    wait_for(lambda: f"Labelled {item_id[:8]} as ai" in browser.find_element(By.ID, "status").text, what="the save")
    wait_for(lambda: browser.find_element(By.ID, "item-id").text != item_id or not browser.find_element(
        By.ID, "item").is_displayed(), what="the item to leave the page")
    listed = [li.get_attribute("data-id") for li in browser.find_elements(By.CSS_SELECTOR, "#queue-list li")]
    assert item_id not in listed

    db = secure_server.records()
    try:
        with db.session("check") as s:
            fb = s.scalars(select(Feedback).where(Feedback.detection_id == item_id)).one()
            assert (fb.label, fb.given_by) == ("ai", "moderator:alice")
            assert fb.idempotency_key, "the page sent no Idempotency-Key: a replayed click would label twice"
            event = s.scalars(
                select(LabelEvent).where(LabelEvent.sha256 == fb.sha256, LabelEvent.moderator == "moderator:alice")
            ).one()
            assert (event.label, event.origin, event.moderator) == ("ai", "moderator", "moderator:alice")
            assert s.get(StoredImage, fb.sha256).label == "ai"  # the next snapshot trains on it
        assert item_id not in [q["id"] for q in db.queue(verdict=None, limit=1000)]
    finally:
        db.close()

    # Skip leaves the item for someone else: nothing is stored.
    if browser.find_element(By.ID, "item").is_displayed():
        skipped = browser.find_element(By.ID, "item-id").text
        browser.find_element(By.ID, "btn-skip").click()
        wait_for(lambda: f"Skipped {skipped[:8]}" in browser.find_element(By.ID, "status").text, what="skip")
        db = secure_server.records()
        try:
            assert skipped in [q["id"] for q in db.queue(verdict=None, limit=1000)]
        finally:
            db.close()

    # Phones upload HEIC, which Chromium cannot show: the page gets a PNG of the kept picture.
    import model.preprocess  # noqa: F401  (registers the HEIF saver with Pillow)

    _, heic = queue_item(secure_server, manifest, "HEIF")
    image_url = f"{url}/moderate/api/image/{hashlib.sha256(heic).hexdigest()}"
    width = Image.open(io.BytesIO(heic)).width

    def shown_width():
        browser.get(image_url)  # the kept bytes reach the store through the outbox: ask again until there
        return browser.execute_script("return document.images.length ? document.images[0].naturalWidth : 0")

    assert wait_for(shown_width, what="the kept HEIC to show") == width
