"""Figures at the sizes report.html embeds them: a review copy and a thumbnail, re-encoded as
palette PNGs, so that a report of every claim stays a single file of a few MB (the full-size
PNG is copied to figures/ beside it).

Why these sizes: a 67-claim page must stay under 6 MB with its text. At 800 px wide and 256
colours (no dithering: plots are flat colours and anti-aliased lines) the 55 full-profile v1
figures (1320 x 495) average 27 KB (max 52 KB), 36 KB as base64, against 86 KB as drawn; a
160 px, 64-colour thumbnail averages 4 KB. Pillow comes with matplotlib, which draws the
figures; its output depends on the input bytes and these settings only.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

REVIEW_SIZE = (800, 700)  # at most this wide and high; smaller figures keep their size
REVIEW_COLOURS = 256
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
    return Embedded(_encode(flat, REVIEW_SIZE, REVIEW_COLOURS),
                    _encode(flat, THUMB_SIZE, THUMB_COLOURS))
