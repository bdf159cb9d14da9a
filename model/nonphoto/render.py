"""The five renderers of real non-photos (charts, screenshots, quote cards, memes, documents), one image at
its platform size, seeded by (setting, kind, seed, index). What sets the settings apart: model.nonphoto.styles."""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.style
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from model.nonphoto.styles import SETTINGS, VERSION, Setting, _colour, _font, _screen_size, _sentence, _words, _wrap
from model.preprocess import encode_jpeg

# ---------------------------------------------------------------- charts


def _mpl_chart(kind: str, st: Setting, rng: random.Random) -> Image.Image:
    g = np.random.default_rng(rng.getrandbits(32))
    style = rng.choice(st.mpl_styles)
    dpi = rng.choice([100, 120, 150])
    size = rng.choice([(6.4, 4.8), (8, 4.5), (5, 5), (7, 5)])
    cmap = matplotlib.colormaps[rng.choice(st.cmaps)]
    with matplotlib.style.context(style), matplotlib.rc_context({"font.family": rng.choice(st.mpl_family)}):
        fig = Figure(figsize=size, dpi=dpi)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        k = int(g.integers(2, 6))
        colours = [cmap(i / max(1, k - 1)) for i in range(k)]
        if kind == "line":
            x = np.arange(int(g.integers(10, 60)))
            for i in range(k):
                ax.plot(x, np.cumsum(g.normal(0, 1, len(x))), color=colours[i], label=_words(rng, 1))
            ax.legend()
        elif kind == "bar":
            ax.bar([_words(rng, 1) for _ in range(k + 2)], g.integers(5, 100, k + 2), color=colours[0])
        elif kind == "pie":
            ax.pie(g.integers(5, 50, k), labels=[_words(rng, 1) for _ in range(k)], colors=colours, autopct="%1.0f%%")
        elif kind == "scatter":
            ax.scatter(g.normal(0, 1, 200), g.normal(0, 1, 200), c=g.random(200), cmap=cmap, s=12)
        elif kind == "mpl-area":
            x = np.arange(30)
            ax.stackplot(x, np.abs(g.normal(3, 1, (k, 30))).cumsum(axis=1), colors=colours)
        elif kind == "mpl-hist":
            ax.hist(g.gamma(2.0, 2.0, 500), bins=int(g.integers(10, 40)), color=colours[-1])
        elif kind == "mpl-barh":
            ax.barh([_words(rng, 1) for _ in range(k + 3)], g.integers(1, 60, k + 3), color=colours)
        ax.set_title(_sentence(rng, 2, 6))
        ax.set_xlabel(_words(rng, 1))
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _pillow_chart(kind: str, st: Setting, rng: random.Random) -> Image.Image:
    w, h = rng.choice([(900, 600), (1200, 675), (800, 800)])
    bg = rng.choice([(255, 255, 255), (250, 247, 240), (24, 26, 32)])
    fg = (20, 20, 20) if sum(bg) > 380 else (230, 230, 230)
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    cmap = matplotlib.colormaps[rng.choice(st.cmaps)]
    title = _font(rng.choice(st.bold_fonts), h // 18)
    small = _font(rng.choice(st.fonts), h // 32)
    d.text((w // 20, h // 30), _sentence(rng, 2, 5), font=title, fill=fg)
    k = rng.randint(3, 8)
    vals = [rng.uniform(0.1, 1.0) for _ in range(k)]
    cols = [tuple(int(255 * c) for c in cmap(i / max(1, k - 1))[:3]) for i in range(k)]
    if kind == "pillow-bars":
        x0, y0, x1, y1 = w // 10, h // 5, w - w // 20, h - h // 8
        d.line([(x0, y1), (x1, y1)], fill=fg, width=2)
        bw = (x1 - x0) // k
        for i, v in enumerate(vals):
            top = y1 - int(v * (y1 - y0))
            d.rectangle([x0 + i * bw + bw // 6, top, x0 + (i + 1) * bw - bw // 6, y1], fill=cols[i])
            d.text((x0 + i * bw + bw // 6, y1 + 6), _words(rng, 1), font=small, fill=fg)
    else:  # pillow-donut
        cx, cy, r = w // 2, h // 2 + h // 20, min(w, h) // 3
        start = 0.0
        for i, v in enumerate(vals):
            ext = 360 * v / sum(vals)
            d.pieslice([cx - r, cy - r, cx + r, cy + r], start, start + ext, fill=cols[i])
            start += ext
        d.ellipse([cx - r // 2, cy - r // 2, cx + r // 2, cy + r // 2], fill=bg)
    return img


def render_chart(st: Setting, rng: random.Random) -> Image.Image:
    kind = rng.choice(st.chart_kinds)
    return _pillow_chart(kind, st, rng) if kind.startswith("pillow") else _mpl_chart(kind, st, rng)


# ---------------------------------------------------------------- screenshots


def render_screenshot(st: Setting, rng: random.Random) -> Image.Image:
    template = rng.choice(st.screen_templates)
    w, h = _screen_size(rng)
    u = max(w, h) // 60  # layout unit
    dark = template == "dark-chat"
    bg = (18, 18, 22) if dark else rng.choice([(255, 255, 255), (246, 247, 249)])
    fg = (235, 235, 240) if dark else (28, 30, 34)
    accent = _colour(rng, 30, 220)
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    font = _font(rng.choice(st.fonts), int(u * 0.9))
    bold = _font(rng.choice(st.bold_fonts), int(u * 1.1))
    # status/nav bar, as every app and browser screenshot has
    d.rectangle([0, 0, w, int(u * 3.2)], fill=accent if not dark else (35, 35, 42))
    d.text((u, int(u * 0.9)), _sentence(rng, 1, 3), font=bold, fill=(255, 255, 255))
    left = u
    if template == "sidebar-dashboard":
        side = w // 5
        d.rectangle([0, int(u * 3.2), side, h], fill=(236, 238, 242))
        for i in range(10):
            d.text((u, int(u * (5 + 2.4 * i))), _words(rng, 1).title(), font=font, fill=(60, 60, 70))
        left = side + u
    y = int(u * 4.5)
    while y < h - 4 * u:
        if template == "dark-chat":
            mine = rng.random() < 0.5
            lines = _wrap(d, _sentence(rng, 3, 18), font, int(w * 0.6))
            bh = int(len(lines) * u * 1.3 + u)
            bw = int(max(d.textlength(ln, font=font) for ln in lines) + 2 * u)
            x0 = w - bw - u if mine else u
            d.rounded_rectangle([x0, y, x0 + bw, y + bh], radius=u, fill=accent if mine else (52, 52, 60))
            for i, ln in enumerate(lines):
                d.text((x0 + u, y + u // 2 + int(i * u * 1.3)), ln, font=font, fill=(250, 250, 250))
            y += bh + u
        elif template == "settings-list":
            d.text((left, y), _sentence(rng, 1, 3), font=font, fill=fg)
            on = rng.random() < 0.5
            tx = w - 5 * u
            d.rounded_rectangle([tx, y, tx + 3 * u, y + int(1.5 * u)], radius=u, fill=accent if on else (200, 200, 200))
            d.line([(left, y + 2 * u), (w - u, y + 2 * u)], fill=(220, 220, 225), width=max(1, u // 10))
            y += 3 * u
        else:  # light-feed, web-article, sidebar-dashboard: cards with a heading, text and a button
            card_w = w - left - u
            lines = _wrap(d, _sentence(rng, 10, 40), font, card_w - 2 * u)[:5]
            ch = int((len(lines) + 3.5) * u * 1.3)
            d.rounded_rectangle(
                [left, y, left + card_w, y + ch],
                radius=u // 2,
                outline=(215, 215, 222),
                fill=(255, 255, 255),
                width=max(1, u // 12),
            )
            d.text((left + u, y + u // 2), _sentence(rng, 2, 6), font=bold, fill=fg)
            for i, ln in enumerate(lines):
                d.text((left + u, y + int((i + 2) * u * 1.3)), ln, font=font, fill=(70, 70, 78))
            by = y + ch - int(1.8 * u)
            d.rounded_rectangle([left + u, by, left + 7 * u, by + int(1.4 * u)], radius=u // 2, fill=accent)
            d.text((left + int(1.6 * u), by + u // 6), _words(rng, 1).title(), font=font, fill=(255, 255, 255))
            y += ch + u
    return img


# ---------------------------------------------------------------- quote cards


def render_quote(st: Setting, rng: random.Random) -> Image.Image:
    template = rng.choice(st.quote_templates)
    side = rng.choice([1080, 1200, 800])
    w, h = side, rng.choice([side, int(side * 1.25)])
    a, b = _colour(rng), _colour(rng)
    if template == "gradient-left":
        t = np.linspace(0, 1, h)[:, None, None]
        arr = (np.array(a)[None, None] * (1 - t) + np.array(b)[None, None] * t) * np.ones((1, w, 1))
        img = Image.fromarray(arr.astype(np.uint8))
    elif template == "striped-caption":
        img = Image.new("RGB", (w, h), a)
        d0 = ImageDraw.Draw(img)
        for x in range(-h, w, w // 12):
            d0.line([(x, 0), (x + h, h)], fill=b, width=w // 40)
    else:
        img = Image.new("RGB", (w, h), a)
    d = ImageDraw.Draw(img)
    ink = (255, 255, 255) if sum(a) < 380 else (15, 15, 15)
    if template == "framed-serif":
        m = w // 14
        d.rectangle([m, m, w - m, h - m], outline=ink, width=max(2, w // 200))
    if template == "striped-caption":
        d.rectangle([w // 12, h // 3, w - w // 12, 2 * h // 3], fill=(250, 250, 250))
        ink = (15, 15, 15)
    font = _font(rng.choice(st.fonts), w // rng.randint(14, 20))
    # ASCII quotes: Computer Modern has no curly ones
    lines = _wrap(d, f'"{_sentence(rng, 6, 18)}."', font, int(w * 0.72))
    lh = int(font.size * 1.25)
    y = (h - lh * len(lines)) // 2
    for ln in lines:
        x = (w - d.textlength(ln, font=font)) // 2 if template != "gradient-left" else w // 10
        d.text((x, y), ln, font=font, fill=ink)
        y += lh
    d.text(
        (w // 2 if template != "gradient-left" else w // 10, y + lh // 2),
        "- " + _words(rng, 2).title(),
        font=_font(rng.choice(st.bold_fonts), w // 30),
        fill=ink,
    )
    return img


# ---------------------------------------------------------------- memes


def _caption(d: ImageDraw.ImageDraw, text: str, font, w: int, y: int, fill, stroke: int, stroke_fill) -> int:
    lines = _wrap(d, text, font, int(w * 0.92))
    for ln in lines:
        d.text(
            ((w - d.textlength(ln, font=font)) // 2, y),
            ln,
            font=font,
            fill=fill,
            stroke_width=stroke,
            stroke_fill=stroke_fill,
        )
        y += int(font.size * 1.1)
    return y


def render_meme(st: Setting, rng: random.Random, photo: Image.Image) -> Image.Image:
    """Caption text over a real photo, at a size a meme app exports (500-1080 px wide)."""
    template = rng.choice(st.meme_templates)
    w = rng.choice([500, 720, 1080])
    photo = photo.convert("RGB")
    img = photo.resize((w, max(1, round(photo.height * w / photo.width))), Image.Resampling.BICUBIC)
    font = _font(rng.choice(st.bold_fonts), w // rng.randint(10, 14))
    if template == "caption-band":  # the newer format: black text on a white band above the picture
        lines = _wrap(ImageDraw.Draw(img), _sentence(rng, 5, 14), font, int(w * 0.92))
        band = int(len(lines) * font.size * 1.1 + font.size)
        out = Image.new("RGB", (w, img.height + band), (255, 255, 255))
        out.paste(img, (0, band))
        _caption(ImageDraw.Draw(out), " ".join(lines), font, w, font.size // 2, (0, 0, 0), 0, None)
        img = out
    else:  # classic top/bottom white capitals with a black outline
        d = ImageDraw.Draw(img)
        stroke = max(2, font.size // 12)
        _caption(d, _words(rng, rng.randint(2, 6)).upper(), font, w, font.size // 4, (255, 255, 255), stroke, 0)
        bottom = _words(rng, rng.randint(2, 6)).upper()
        _caption(d, bottom, font, w, img.height - int(2.4 * font.size), (255, 255, 255), stroke, 0)
    if rng.random() < 0.5:  # memes are usually re-shared: one more lossy pass before ours
        img = Image.open(io.BytesIO(encode_jpeg(img, rng.randint(60, 85)))).convert("RGB")
    return img


# ---------------------------------------------------------------- documents


def render_document(st: Setting, rng: random.Random) -> Image.Image:
    template = rng.choice(st.document_templates)
    w, h = rng.choice([(1240, 1754), (850, 1100), (1275, 1650)])  # A4 at 150 dpi, letter at 100 and 150 dpi
    paper = rng.choice([(255, 255, 255), (250, 248, 242)])
    img = Image.new("RGB", (w, h), paper)
    d = ImageDraw.Draw(img)
    m = w // 10
    if template == "two-column-serif":
        head = _font(rng.choice(st.bold_fonts), w // 28)
        body = _font(rng.choice(st.fonts), w // 55)
        d.text((m, m), _sentence(rng, 3, 7), font=head, fill=(10, 10, 10))
        col_w = (w - 2 * m - m // 2) // 2
        for c in range(2):
            x, y = m + c * (col_w + m // 2), m + 3 * head.size
            while y < h - m:
                for ln in _wrap(d, _sentence(rng, 20, 50) + ".", body, col_w):
                    d.text((x, y), ln, font=body, fill=(25, 25, 25))
                    y += int(body.size * 1.35)
                y += body.size
    else:  # mono-letter: a typed page, left-aligned, with a date and a signature line
        body = _font(rng.choice(st.mono_fonts), w // 60)
        y = m
        date = f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/20{rng.randint(10, 26)}"
        d.text((w - m - 12 * body.size, y), date, font=body, fill=(20, 20, 20))
        y += 3 * body.size
        while y < h - 3 * m:
            for ln in _wrap(d, _sentence(rng, 15, 45) + ".", body, w - 2 * m):
                d.text((m, y), ln, font=body, fill=(20, 20, 20))
                y += int(body.size * 1.5)
            y += body.size
        d.line([(m, h - 2 * m), (m + w // 3, h - 2 * m)], fill=(20, 20, 20), width=2)
    return img


def image_rng(setting: str, kind: str, seed: int, index: int) -> random.Random:
    # A string seed is hashed with SHA-512 by `random`: stable across runs and machines.
    return random.Random(f"nonphoto-v{VERSION}/{setting}/{kind}/{seed}/{index}")


def render_one(setting: str, kind: str, seed: int, index: int, photos: Sequence[Path] = ()) -> Image.Image:
    """One rendered image at its platform size, before the data set's preprocessing."""
    st, rng = SETTINGS[setting], image_rng(setting, kind, seed, index)
    if kind == "meme":
        if not photos:
            raise ValueError("memes need real photos to caption: pass photos (paths of real camera photos)")
        with Image.open(rng.choice(list(photos))) as p:
            return render_meme(st, rng, p)
    return {"chart": render_chart, "screenshot": render_screenshot, "quote": render_quote, "document": render_document}[
        kind
    ](st, rng)
