"""Rendered real non-photos: charts, app/web screenshots, quote cards, memes and typed documents.

    imgs = render_set("train", n_per_kind=20, seed=0, photos=[...])   # [(kind, PIL image), ...]
    aidetect data nonphoto --out DIR --split eval --n 30                # images + manifest.csv

Most real images on a feed are not camera photos. The shared data has no charts and few screenshots,
so a detector learns "graphics = AI". These renderers make real-label graphics as a platform sees them:
drawn at platform sizes (phone and desktop screenshots, 100-150 dpi charts), then stored through the data
set's own preprocessing (shorter side 256 LANCZOS, centre crop, JPEG q90 4:2:0), so file format and size
cannot separate them from the other real or AI images.

Two settings that share no font, template, chart kind, colour map or style:
- `train`: matplotlib's default style, sans fonts, light app screens, classic top/bottom meme captions.
- `eval`: other matplotlib styles and Pillow-drawn charts, serif/STIX/Computer Modern fonts, dark and
  chat-style screens, caption-band memes, two-column documents.
The false-positive rate on `eval` is thus measured on content made with other tools than what training saw.
Everything is seeded: the same (setting, kind, seed, index) gives the same pixels.
"""

from model.nonphoto.render import image_rng, render_one
from model.nonphoto.sets import (
    MANIFEST_SPLIT,
    SOURCE,
    STORE_QUALITY,
    cached_set,
    meme_photos,
    set_folder,
    store_as_dataset,
    write_set,
)
from model.nonphoto.styles import KINDS, SETTINGS, VERSION, Setting

__all__ = [
    "KINDS",
    "MANIFEST_SPLIT",
    "SETTINGS",
    "SOURCE",
    "STORE_QUALITY",
    "VERSION",
    "Setting",
    "cached_set",
    "image_rng",
    "meme_photos",
    "render_one",
    "set_folder",
    "store_as_dataset",
    "write_set",
]
