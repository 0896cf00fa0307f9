"""Figures at the sizes report.html embeds them: a review copy and a thumbnail, re-encoded as
palette PNGs, so that a report of every claim stays a single file of a few MB (the full-size
PNG is copied to figures/ beside it).

Why these sizes: a 67-claim page must stay under 6 MB with its text. At 800 px wide and 256
colours (no dithering: plots are flat colours and anti-aliased lines) the 55 full-profile v1
figures (1320 x 495) average 27 KB (max 52 KB), 36 KB as base64, against 86 KB as drawn; the
pilot claims' schema-2 figures (700 x 450) take 9-13 KB. A review copy is at most REVIEW_BYTES:
a busier figure steps down in colours, then in width, until it fits, so 67 figures with their
thumbnails (160 px, 64 colours, about 4 KB) take at most 67 x 54 KB x 4/3 (base64) = 4.8 MB.
Pillow comes with matplotlib, which draws the figures; its output depends on the input bytes
and these settings only.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

# (width, height, colours) tried in turn until the copy is at most REVIEW_BYTES
REVIEW_STEPS = ((800, 700, 256), (800, 700, 128), (640, 560, 128), (640, 560, 64),
                (480, 420, 64))
REVIEW_BYTES = 48_000
THUMB_SIZE = (160, 100)
THUMB_COLOURS = 64


class FigureError(ValueError):
    """A figure file that is not a readable image."""


@dataclass(frozen=True)
class Embedded:
    review: bytes
    thumbnail: bytes


def _encode(image: Image.Image, box: tuple[int, int], colours: int) -> bytes:
    copy = image.copy()
    copy.thumbnail(box, Image.Resampling.LANCZOS)  # keeps the aspect ratio, never enlarges
    palette = copy.quantize(colors=colours, method=Image.Quantize.MEDIANCUT,
                            dither=Image.Dither.NONE)
    out = io.BytesIO()
    palette.save(out, "PNG", optimize=True)
    return out.getvalue()


def embedded(data: bytes) -> Embedded:
    """The review copy and the thumbnail of a PNG (or any image Pillow reads)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            flat = Image.new("RGB", image.size, "white")
            rgba = image.convert("RGBA")
            flat.paste(rgba, mask=rgba.getchannel("A"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise FigureError(f"not a readable image ({err})") from None
    for width, height, colours in REVIEW_STEPS:
        review = _encode(flat, (width, height), colours)
        if len(review) <= REVIEW_BYTES:
            break
    return Embedded(review, _encode(flat, THUMB_SIZE, THUMB_COLOURS))
