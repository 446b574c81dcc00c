"""Binary masks of words for text occlusions.

    from occbench.occlusion_text import WORDS, text_mask
    m = text_mask("abandon", 34)        # bool array, exactly 34 rows, every row span inked

Text height is the height of the rendered word's *ink* bounding box (the rows from the
topmost to the bottommost inked pixel), so a text occlusion of height ratio h on a
112x112 face has ``text_mask(word, round(h * 112)).shape[0] == round(h * 112)`` rows,
first and last row inked, whatever the word's letters or length; the width follows from
the word's own aspect ratio.

Rendering: the word is drawn once with matplotlib's DejaVuSans.ttf through Pillow's
FreeType binding (basic layout, no shaping library) at :data:`RENDER_PX` pixels per em,
cropped to its ink, area-averaged (``Image.BOX``) down to the target height keeping the
aspect ratio, and thresholded at half coverage. Where the thresholding empties the first or
last row (a round letter's overshoot covers less than half a pixel), that row keeps its
most-covered pixels, so the ink height is exact. The same Pillow/FreeType and font versions
give the same masks; a different FreeType may flip a few edge pixels.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Pixels per em of the master rendering; ink heights are ~150-200 px, so every target height
# up to the image's 112 px is a downscale.
RENDER_PX = 200


@functools.cache
def wordlist() -> tuple[str, ...]:
    """The 2048-word BIP-39 English list shipped by the ``mnemonic`` package."""
    from mnemonic import Mnemonic

    words = tuple(Mnemonic("english").wordlist)
    if len(words) != 2048:  # pragma: no cover - a broken mnemonic install
        raise RuntimeError(f"mnemonic's English list has {len(words)} words, expected 2048")
    return words


def font_path() -> Path:
    """matplotlib's bundled DejaVuSans.ttf (the same file on every install of a version)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


@functools.cache
def _font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(
        str(font_path()), RENDER_PX, layout_engine=ImageFont.Layout.BASIC
    )


@functools.lru_cache(maxsize=256)
def word_ink(word: str) -> np.ndarray:
    """The master rendering of ``word``: uint8 coverage (0..255) cropped to its ink."""
    font = _font()
    left, top, right, bottom = font.getbbox(word)
    pad = 8
    canvas = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(canvas).text((pad - left, pad - top), word, fill=255, font=font)
    ink = np.asarray(canvas)
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        raise ValueError(f"word {word!r} renders no ink")
    out = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy()
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=8192)
def text_mask(word: str, height: int) -> np.ndarray:
    """Bool mask of ``word`` whose ink bounding box is exactly ``height`` rows (>= 1).

    Width: the master rendering's aspect ratio, ``round(ink_width * height / ink_height)``,
    less any edge column left empty by the thresholding (the mask is cropped to its ink).
    The returned array is read-only (it is cached); copy it to modify.
    """
    height = int(height)
    if height < 1:
        raise ValueError(f"text height must be >= 1 px, got {height}")
    ink = word_ink(word)
    ih, iw = ink.shape
    width = max(1, int(round(iw * height / ih)))
    coverage = Image.fromarray(ink.astype(np.float32) / 255.0, mode="F")
    small = np.asarray(coverage.resize((width, height), resample=Image.BOX))
    mask = small >= 0.5
    for r in (0, height - 1):  # keep the ink box exact: first and last row always inked
        if not mask[r].any():  # (float coverage: the row's maximum is > 0)
            mask[r] = small[r] == small[r].max()
    cols = np.flatnonzero(mask.any(axis=0))  # and cropped to its ink horizontally
    mask = np.ascontiguousarray(mask[:, cols[0] : cols[-1] + 1])
    mask.setflags(write=False)
    return mask
