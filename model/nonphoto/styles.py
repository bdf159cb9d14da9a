"""What the two settings of the rendered non-photos share and what sets them apart: fonts, chart kinds,
colour maps and templates (model.nonphoto), and the small text and colour helpers the renderers use."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from PIL import ImageDraw, ImageFont

KINDS = ("chart", "screenshot", "quote", "meme", "document")
VERSION = 1  # bump when a renderer changes, so cached sets are rebuilt

_MPL_FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"

WORDS = (
    "the a of and to in is for on with that this from by at we our your new today how why what team update report "
    "data results growth market city people school health music game photo video week month year price sales users "
    "project plan meeting notes summary share follow like comment post story news weather sport travel food recipe "
    "open close settings profile search home message friends events calendar budget review launch design help"
).split()


@dataclass(frozen=True)
class Setting:
    name: str
    fonts: tuple[str, ...]  # TTF file names under matplotlib's bundled fonts
    bold_fonts: tuple[str, ...]
    mono_fonts: tuple[str, ...]
    mpl_styles: tuple[str, ...]  # matplotlib style sheets
    mpl_family: tuple[str, ...]  # matplotlib font families
    chart_kinds: tuple[str, ...]
    cmaps: tuple[str, ...]
    screen_templates: tuple[str, ...]
    quote_templates: tuple[str, ...]
    meme_templates: tuple[str, ...]
    document_templates: tuple[str, ...]

    def templates(self) -> set[str]:
        return {
            *self.chart_kinds,
            *self.screen_templates,
            *self.quote_templates,
            *self.meme_templates,
            *self.document_templates,
        }


SETTINGS = {
    "train": Setting(
        name="train",
        fonts=("DejaVuSans.ttf", "DejaVuSans-Oblique.ttf"),
        bold_fonts=("DejaVuSans-Bold.ttf",),
        mono_fonts=("DejaVuSansMono.ttf",),
        mpl_styles=("default",),
        mpl_family=("DejaVu Sans",),
        chart_kinds=("line", "bar", "pie", "scatter"),
        cmaps=("tab10", "viridis", "Blues"),
        screen_templates=("light-feed", "settings-list", "web-article"),
        quote_templates=("flat-centred", "gradient-left"),
        meme_templates=("outline-top-bottom",),
        document_templates=("mono-letter",),
    ),
    "eval": Setting(
        name="eval",
        fonts=("DejaVuSerif.ttf", "DejaVuSerif-Italic.ttf", "STIXGeneral.ttf", "cmr10.ttf"),
        bold_fonts=("DejaVuSerif-Bold.ttf", "STIXGeneralBol.ttf"),
        mono_fonts=("cmtt10.ttf", "DejaVuSansMono-Bold.ttf"),
        mpl_styles=("ggplot", "seaborn-v0_8-darkgrid", "fivethirtyeight", "dark_background", "bmh"),
        mpl_family=("DejaVu Serif", "STIXGeneral"),
        chart_kinds=("mpl-area", "mpl-hist", "mpl-barh", "pillow-bars", "pillow-donut"),
        cmaps=("plasma", "cividis", "Set2", "magma"),
        screen_templates=("dark-chat", "sidebar-dashboard"),
        quote_templates=("framed-serif", "striped-caption"),
        meme_templates=("caption-band",),
        document_templates=("two-column-serif",),
    ),
}


# ---------------------------------------------------------------- helpers


def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(_MPL_FONTS / name), size)


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _sentence(rng: random.Random, lo: int = 4, hi: int = 12) -> str:
    s = _words(rng, rng.randint(lo, hi))
    return s[:1].upper() + s[1:]


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    lines, cur = [], ""
    for w in text.split():
        cand = f"{cur} {w}".strip()
        if draw.textlength(cand, font=font) <= width or not cur:
            cur = cand
        else:
            lines.append(cur)
            cur = w
    return [*lines, cur] if cur else lines


def _colour(rng: random.Random, lo: int = 0, hi: int = 255) -> tuple[int, int, int]:
    return tuple(rng.randint(lo, hi) for _ in range(3))


def _screen_size(rng: random.Random) -> tuple[int, int]:
    return rng.choice([(1080, 2340), (1170, 2532), (828, 1792), (1280, 800), (1440, 900), (1920, 1080)])
