"""The moderator page, served by the detector at /moderate, and the JSON API it uses.

Moderators sign in with an account (`aidetect moderators add NAME`; scrypt-hashed password) and get
a signed, HttpOnly, SameSite=Strict session cookie. Behind an OIDC proxy, set
AIDETECT_MODERATOR_HEADER (e.g. X-Forwarded-User) and the proxy's header names the moderator
instead; only do that where nothing but the proxy can reach the service. Every label records who
gave it ("moderator:NAME").

Sign-in is throttled per account and per client address (429 with Retry-After): each attempt costs
an scrypt hash, so an unthrottled form is both a password oracle and a CPU sink. The cookie is
Secure when the request came over https (uvicorn reads X-Forwarded-Proto from the proxies that
FORWARDED_ALLOW_IPS trusts) or when AIDETECT_SECURE_COOKIES says TLS ends in front of us.
"""

from __future__ import annotations

import asyncio
import io
import math

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from model.etl.store import StoreError
from service.auth import read_session, sign_session, verify_password
from service.idempotency import HEADER, REPLAYED, KeyReused, check_key
from service.ratelimit import take_async
from service.records import NotFound

COOKIE = "aidetect_session"
SESSION_TTL = 12 * 3600


class LabelIn(BaseModel):
    detection_id: str = Field(min_length=1, max_length=36)
    label: str


# What browsers show as they are; a kept TIFF or HEIC reaches the page as PNG (Chromium shows neither).
BROWSER_FORMATS = ("JPEG", "PNG", "WEBP", "AVIF", "GIF", "BMP")
DISPLAY_SIDE = 4096  # px: a converted image larger than this is shown reduced; the stored bytes stay whole


def displayable(data: bytes, max_pixels: int) -> tuple[bytes, str]:
    """The bytes a browser can show for a kept upload, and their MIME type: the upload itself when browsers
    read its format, else a PNG of it; a download for anything Pillow does not recognise as an image."""
    from PIL import Image

    from model.preprocess import ImageError, PreprocessConfig, decode_image, image_format

    fmt = image_format(data)
    if fmt in BROWSER_FORMATS:
        return data, Image.MIME[fmt]
    try:
        img = decode_image(data, PreprocessConfig(max_bytes=len(data), max_pixels=max_pixels))
    except ImageError:
        return data, "application/octet-stream"
    img.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)  # lossless, so the moderator sees the upload's own pixels
    return buf.getvalue(), "image/png"


def _page(name: str) -> str:
    from service.pages import LOGIN_HTML, MODERATE_HTML

    return {"login.html": LOGIN_HTML, "moderate.html": MODERATE_HTML}[name]


def build_moderator_router(state) -> APIRouter:
    settings = state.settings
    router = APIRouter(prefix="/moderate", include_in_schema=False)

    def moderator(request: Request) -> str | None:
        if settings.moderator_header:
            return request.headers.get(settings.moderator_header) or None
        return read_session(request.cookies.get(COOKIE), state.secret)

    def unavailable() -> JSONResponse:
        return JSONResponse({"detail": "the records database is unavailable; retry later"}, 503, {"Retry-After": "5"})

    @router.get("", response_class=HTMLResponse)
    async def page(request: Request):
        if moderator(request) is None:
            return RedirectResponse("/moderate/login", status_code=303)
        return HTMLResponse(_page("moderate.html"), headers={"Cache-Control": "no-store"})

    def login_html(error: str) -> str:
        return _page("login.html").replace("{{error}}", error)

    @router.get("/login", response_class=HTMLResponse)
    async def login_page(error: str | None = None):
        return HTMLResponse(login_html("Wrong name or password." if error else ""))

    async def throttled(request: Request, name: str) -> HTMLResponse | None:
        """429 when this client address, or anyone trying this account, has used its attempts (on every
        replica together where the limiter is the shared one, which asks the database: off the event loop)."""
        client = request.client.host if request.client else "?"
        for who, rate, what in (
            (f"login-client:{client}", settings.login_attempts_per_client, "from your address"),
            (f"login-account:{name}", settings.login_attempts_per_account, "for this account"),
        ):
            wait = await take_async(state.limiter, who, rate)
            if wait > 0:
                retry = max(1, math.ceil(wait))
                message = f"Too many sign-in attempts {what}; retry in {retry} s."
                return HTMLResponse(login_html(message), status_code=429, headers={"Retry-After": str(retry)})
        return None

    def secure(request: Request) -> bool:
        return settings.secure_cookies or request.url.scheme == "https"

    @router.post("/login")
    async def login(request: Request, name: str = Form(max_length=200), password: str = Form(max_length=1000)):
        refused = await throttled(request, name)
        if refused is not None:
            return refused
        try:
            db = await asyncio.to_thread(state.records.get)
            stored = await asyncio.to_thread(db.moderator_hash, name)
        except Exception:
            return unavailable()
        if not await asyncio.to_thread(verify_password, password, stored):
            return RedirectResponse("/moderate/login?error=1", status_code=303)
        resp = RedirectResponse("/moderate", status_code=303)
        resp.set_cookie(
            COOKIE,
            sign_session(name, state.secret, SESSION_TTL),
            max_age=SESSION_TTL,
            httponly=True,
            samesite="strict",
            secure=secure(request),
            path="/moderate",
        )
        return resp

    @router.post("/logout")
    async def logout(request: Request):
        resp = RedirectResponse("/moderate/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/moderate", secure=secure(request), httponly=True, samesite="strict")
        return resp

    def need(request: Request) -> str | JSONResponse:
        who = moderator(request)
        return who if who else JSONResponse({"detail": "sign in at /moderate/login"}, status_code=401)

    @router.get("/api/queue")
    async def queue(
        request: Request,
        verdict: str | None = "uncertain",
        model_version: str | None = None,
        min_score: float | None = None,
        max_score: float | None = None,
        ai_hint: bool | None = None,
        limit: int = 50,
    ):
        who = need(request)
        if isinstance(who, JSONResponse):
            return who
        try:
            db = await asyncio.to_thread(state.db)
            items = await asyncio.to_thread(
                db.queue, verdict or None, model_version or None, min_score, max_score, ai_hint, min(limit, 200)
            )
            size = await asyncio.to_thread(db.queue_size)
        except Exception:
            return unavailable()
        return {"moderator": who, "items": [d.for_moderators() for d in items], "queue_size": size}

    @router.get("/api/stats")
    async def stats(request: Request):
        who = need(request)
        if isinstance(who, JSONResponse):
            return who
        try:
            db = await asyncio.to_thread(state.db)
            acc = await asyncio.to_thread(db.accuracy)
            mine = await asyncio.to_thread(db.agreement_of, f"moderator:{who}")
        except Exception:
            return unavailable()
        return {"moderator": who, "accuracy": acc, "agreement": mine}

    @router.get("/api/image/{sha256}")
    async def image(sha256: str, request: Request):
        who = need(request)
        if isinstance(who, JSONResponse):
            return who
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            return JSONResponse({"detail": "not a sha256"}, status_code=400)
        try:
            data = await asyncio.to_thread(lambda: state.records.get().image_bytes(sha256))
        except Exception:
            return unavailable()
        if data is None:
            return JSONResponse({"detail": "image not kept (expired or never uncertain)"}, status_code=404)
        # The bytes are a stranger's upload: name only a known image type, and never let a browser sniff.
        shown, media_type = await asyncio.to_thread(displayable, data, settings.max_pixels)
        return Response(
            shown,
            media_type=media_type,
            headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'"},
        )

    @router.post("/api/label")
    async def label(body: LabelIn, request: Request):
        who = need(request)
        if isinstance(who, JSONResponse):
            return who
        try:
            # The page sends a key per label it saves: the Ingress may replay this POST on another replica.
            key = check_key(request.headers.get(HEADER))
            db = await asyncio.to_thread(state.db)
            out = await asyncio.to_thread(db.add_feedback, body.detection_id, body.label, f"moderator:{who}", None, key)
        except KeyReused as e:
            return JSONResponse({"detail": str(e)}, status_code=409)
        except NotFound as e:
            return JSONResponse({"detail": str(e)}, status_code=404)
        except ValueError as e:
            return JSONResponse({"detail": str(e)}, status_code=422)
        except (StoreError, Exception):
            return unavailable()
        replayed = out.pop("replayed")
        return JSONResponse(out, status_code=201, headers={REPLAYED: "true"} if replayed else None)

    return router
