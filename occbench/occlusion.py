"""Synthetic occlusions of aligned 112x112 faces (paper section III-A), deterministic.

    from occbench.occlusion import occlude, EVAL_SIZES
    occ = occlude(face, "lfw/AJ_Cook/AJ_Cook_0001.jpg", "text", 0.3, "eyes", seed=0)
    occ.image, occ.mask, occ.params      # uint8 (112,112,3), uint8 {0,1} (112,112), dict

Forms (:data:`FORMS`; ``rectangle`` and ``square`` are aliases of ``rect``):

* ``rect`` -- a filled axis-aligned rectangle. Size = area ratio a = occluded area / image
  area, valid in (0, 0.5]; aspect ratio width/height uniform in [0.5, 2]. The height is
  ``round(sqrt(a * 112**2 / aspect))`` and the width ``round(a * 112**2 / height)``, so the
  area is exact up to rounding: off by at most height/2 px, below 0.0025 of the image for
  a <= 0.15 and 0.0045 for any valid a. Rectangles always lie
  fully inside the image: one that would cross a border is shifted inwards.
* ``text`` -- one word drawn uniformly from the 2048-word BIP-39 English list
  (:func:`occbench.occlusion_text.wordlist`). Size = height ratio h = text height / image
  height, valid in (0, 1], independent of the word's length: the word's *ink* bounding box is
  exactly ``round(h * 112)`` rows high (see :mod:`occbench.occlusion_text`). Text may spill
  outside the image (it is clipped) and over other face regions.

Positions (:data:`POSITIONS`), on the 112x112 template of :mod:`occbench.template`:

* ``eyes``, ``nose``, ``mouth`` -- the occluder's centre (rectangle centre, or the centre of
  the text's ink box) is the region's centre plus a uniform jitter of up to
  :data:`JITTER_PX` = 3 px in x and y. For ``eyes`` the left or the right eye centre is
  chosen at random (paper IV-B: both LFW faces of a pair have one eye occluded, not
  necessarily the same one).
* ``outside`` -- off the face: the occluder is placed flush against the left, right or top
  image border; among all such placements, one is drawn uniformly from those that cover at
  most :data:`OUTSIDE_SLACK` (5 %) of the occluder's pixels more of the face ellipse
  (``FACE_CENTRE``, ``FACE_HALF_AXES``) than the least-covering one. Big occluders
  (text of h = 0.5, whose word is wider than the image) cannot avoid the face entirely.

Colour: uniform random RGB, one colour per occlusion. Composition: I = (1 - M) I_gt + M c.

Determinism: an occlusion is a pure function of (image key, form, size, position, seed).
A numpy ``Generator(PCG64)`` is seeded from the SHA-256 of those values (never Python's
``hash()``) and only the raw 64-bit outputs of its bit generator are used (as 53-bit
doubles; numpy guarantees that stream across versions), so the bytes are the same in every
process, order and machine (text masks also assume the same Pillow/FreeType and font).

Sizes: any valid size may be evaluated; the paper's evaluation sizes are
:data:`EVAL_SIZES`, its training distribution :func:`sample_training_occlusion`.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from occbench.errors import ConfigError
from occbench.occlusion_text import text_mask, wordlist
from occbench.template import FACE_CENTRE, FACE_HALF_AXES, LEFT_EYE, MOUTH, NOSE, RIGHT_EYE, SIZE

FORMS = ("rect", "text")
FORM_ALIASES = {"rect": "rect", "rectangle": "rect", "square": "rect", "text": "text"}
# Folder name of each form in the paper's released occluded gallery.
EXPORT_FORM_NAMES = {"rect": "square", "text": "text"}
POSITIONS = ("eyes", "nose", "mouth", "outside")

# Valid sizes: (low, high], a for rect, h for text.
SIZE_RANGES = {"rect": (0.0, 0.5), "text": (0.0, 1.0)}
# The paper's evaluation sizes (section IV) and training distributions (uniform [low, high]).
EVAL_SIZES = {"rect": (0.05, 0.10, 0.15), "text": (0.1, 0.3, 0.5)}
TRAIN_SIZES = {"rect": (0.01, 0.15), "text": (0.05, 0.5)}

ASPECT_RANGE = (0.5, 2.0)  # rectangle width / height, uniform
JITTER_PX = 3.0  # uniform jitter of the centre, each axis, for eyes / nose / mouth
OUTSIDE_SLACK = 0.05  # see the module docstring, `outside`
HASH_VERSION = "occbench-occlusion-v1"  # bump when the occlusion of a key changes

_CENTRES = {"nose": NOSE, "mouth": MOUTH, "left eye": LEFT_EYE, "right eye": RIGHT_EYE}


@dataclass(frozen=True)
class Occlusion:
    """An occluded face: ``image`` (112,112,3) uint8, ``mask`` (112,112) uint8 in {0, 1}
    (1 = occluded), ``params`` a dict: form, size, position, colour (r, g, b), centre (x, y)
    of the occluder, box (x0, y0, x1, y1) of its extent (text may reach beyond the image),
    side (eyes: "left"/"right"), border (outside), and aspect (rect) or word (text)."""

    image: np.ndarray
    mask: np.ndarray
    params: dict


# ----------------------------------------------------------------------------- validation


def canonical_form(form: str) -> str:
    """``rect`` or ``text`` for a form name or alias; :class:`ConfigError` otherwise."""
    name = FORM_ALIASES.get(str(form).strip().lower())
    if name is None:
        raise ConfigError(
            f"unknown occlusion form {form!r}; valid: rect (aliases rectangle, square), text"
        )
    return name


def check_spec(form: str, size: float, position: str) -> tuple[str, float]:
    """Validate an occlusion setting; returns (canonical form, size as float).

    :class:`ConfigError` names the bad value and lists the valid ones.
    """
    name = canonical_form(form)
    if position not in POSITIONS:
        raise ConfigError(f"unknown occlusion position {position!r}; valid: {', '.join(POSITIONS)}")
    low, high = SIZE_RANGES[name]
    what = "area ratio a" if name == "rect" else "height ratio h"
    try:
        value = float(size)
    except (TypeError, ValueError):
        value = math.nan
    if not (low < value <= high):
        paper = ", ".join(f"{s:g}" for s in EVAL_SIZES[name])
        raise ConfigError(
            f"invalid {name} size {size if not isinstance(size, str) else repr(size)}: the {what} must be in ({low:g}, {high:g}] "
            f"(the paper evaluates {paper})"
        )
    return name, value


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.shape != (SIZE, SIZE, 3) or image.dtype != np.uint8:
        raise ValueError(
            f"expected an aligned face of shape ({SIZE}, {SIZE}, 3) uint8, "
            f"got {image.shape} {image.dtype}"
        )
    return image


def occlusion_rng(key: str, form: str, size: float, position: str, seed: int = 0):
    """The Generator of one occlusion, seeded by SHA-256 of (key, form, size, position, seed).

    ``form`` is canonicalised and ``size`` written with 6 significant digits, so aliases
    and ``0.1`` / ``0.10`` give the same occlusion.
    """
    form = canonical_form(form)
    text = "\x1f".join(
        (HASH_VERSION, str(key), form, f"{float(size):.6g}", str(position), str(int(seed)))
    )
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest, "little")))


# ----------------------------------------------------------------------------- geometry


@functools.cache
def face_ellipse() -> np.ndarray:
    """Bool (112, 112): pixel centres inside the template's face ellipse."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    (cx, cy), (ax, ay) = FACE_CENTRE, FACE_HALF_AXES
    inside = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1.0
    inside.setflags(write=False)
    return inside


def rect_shape(area_ratio: float, aspect: float) -> tuple[int, int]:
    """(height, width) in px of a rectangle of ``area_ratio`` of the image and ``aspect`` w/h."""
    area = area_ratio * SIZE * SIZE
    height = min(SIZE, max(1, round(math.sqrt(area / aspect))))
    width = min(SIZE, max(1, round(area / height)))
    return height, width


def _random(rng: np.random.Generator) -> float:
    """A uniform double in [0, 1) from the top 53 bits of the bit generator's next raw
    64-bit output (numpy keeps PCG64's raw stream, unlike Generator methods, stable)."""
    return (int(rng.bit_generator.random_raw()) >> 11) * 2.0**-53


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return low + (high - low) * _random(rng)


def _index(rng: np.random.Generator, n: int) -> int:
    return min(int(_random(rng) * n), n - 1)


@functools.cache
def _face_rows() -> tuple[np.ndarray, np.ndarray]:
    """(first, last) x of the face ellipse in each image row (first > last where empty)."""
    face = face_ellipse()
    any_ = face.any(axis=1)
    first = np.where(any_, face.argmax(axis=1), SIZE)
    last = np.where(any_, SIZE - 1 - face[:, ::-1].argmax(axis=1), -1)
    return first, last


def face_overlap(shape: np.ndarray, x0: np.ndarray, y0: np.ndarray) -> np.ndarray:
    """Face-ellipse pixels covered by ``shape`` (bool, h x w) pasted at each (x0, y0).

    Exact integer counts, vectorised over the placements: the ellipse is convex, so each row
    covers an interval of the shape's row, counted from the row's cumulative sums.
    """
    h, w = shape.shape
    cum = np.zeros((h, w + 1), dtype=np.int64)
    np.cumsum(shape, axis=1, out=cum[:, 1:])
    first, last = _face_rows()
    x0 = np.asarray(x0, dtype=np.int64)[:, None]
    y = np.asarray(y0, dtype=np.int64)[:, None] + np.arange(h)[None, :]  # (P, h)
    inside = (y >= 0) & (y < SIZE)
    yc = np.clip(y, 0, SIZE - 1)
    lo = np.clip(first[yc] - x0, 0, w)
    hi = np.clip(last[yc] - x0 + 1, 0, w)
    r = np.broadcast_to(np.arange(h)[None, :], y.shape)
    count = np.maximum(cum[r, hi] - cum[r, lo], 0)
    return np.where(inside, count, 0).sum(axis=1)


def _outside_placements(shape: np.ndarray) -> list[tuple[str, int, int, int]]:
    """Every flush placement (border, x0, y0, face-ellipse pixels covered) of ``shape``.

    Left / right: the shape's left / right edge on the image border, any vertical offset
    that keeps it inside (or, if taller than the image, covering it). Top: its top edge on
    the top border, any horizontal offset likewise.
    """
    h, w = shape.shape

    def offsets(extent: int) -> np.ndarray:
        return np.arange(min(0, SIZE - extent), max(0, SIZE - extent) + 1)

    ys, xs = offsets(h), offsets(w)
    borders = ["left"] * len(ys) + ["right"] * len(ys) + ["top"] * len(xs)
    x0 = np.concatenate([np.zeros_like(ys), np.full_like(ys, SIZE - w), xs])
    y0 = np.concatenate([ys, ys, np.zeros_like(xs)])
    covered = face_overlap(shape, x0, y0)
    return [
        (b, int(x), int(y), int(c)) for b, x, y, c in zip(borders, x0, y0, covered, strict=True)
    ]


@functools.lru_cache(maxsize=4096)
def _outside_choices(kind: str, h: int, w: int, word: str | None) -> tuple:
    """The allowed `outside` placements of one occluder shape (cached by shape)."""
    shape = np.ones((h, w), dtype=bool) if kind == "rect" else text_mask(word, h)
    placements = _outside_placements(shape)
    least = min(p[3] for p in placements)
    limit = least + OUTSIDE_SLACK * int(shape.sum())
    return tuple(p for p in placements if p[3] <= limit)


def _paste(mask: np.ndarray, shape: np.ndarray, x0: int, y0: int) -> None:
    """OR ``shape`` into ``mask`` at (x0, y0), clipped to the image."""
    h, w = shape.shape
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = min(y0 + h, SIZE), min(x0 + w, SIZE)
    if ye > ys and xe > xs:
        mask[ys:ye, xs:xe] |= shape[ys - y0 : ye - y0, xs - x0 : xe - x0]


# ----------------------------------------------------------------------------- drawing


def _draw(form: str, size: float, position: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Draw one occlusion's mask and parameters from ``rng`` (validated arguments).

    Order of draws (part of the determinism contract): colour r, g, b; aspect (rect) or
    word (text); then eye side and x, y jitter, or the `outside` placement.
    """
    colour = tuple(_index(rng, 256) for _ in range(3))
    params: dict = {"form": form, "size": float(size), "position": position, "colour": colour}
    if form == "rect":
        aspect = _uniform(rng, *ASPECT_RANGE)
        h, w = rect_shape(size, aspect)
        shape = np.ones((h, w), dtype=bool)
        params["aspect"] = aspect
        word = None
    else:
        word = wordlist()[_index(rng, 2048)]
        shape = text_mask(word, max(1, round(size * SIZE)))
        h, w = shape.shape
        params["word"] = word

    if position == "outside":
        choices = _outside_choices(form, h, w, word)
        border, x0, y0, _ = choices[_index(rng, len(choices))]
        params["border"] = border
    else:
        region = position
        if position == "eyes":
            side = "left" if _random(rng) < 0.5 else "right"
            params["side"] = side
            region = f"{side} eye"
        cx, cy = (float(v) for v in _CENTRES[region])
        cx += _uniform(rng, -JITTER_PX, JITTER_PX)
        cy += _uniform(rng, -JITTER_PX, JITTER_PX)
        x0 = round(cx - (w - 1) / 2)
        y0 = round(cy - (h - 1) / 2)
        if form == "rect":  # keep rectangles inside the image: the area stays exact
            x0 = min(max(x0, 0), SIZE - w)
            y0 = min(max(y0, 0), SIZE - h)
    params["centre"] = (x0 + (w - 1) / 2, y0 + (h - 1) / 2)
    params["box"] = (int(x0), int(y0), int(x0 + w), int(y0 + h))
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    _paste(mask, shape, int(x0), int(y0))
    return mask, params


def compose(image: np.ndarray, mask: np.ndarray, colour: Sequence[int]) -> np.ndarray:
    """I = (1 - M) * I_gt + M * c for a binary mask: a copy with the masked pixels set to c."""
    out = np.array(image, dtype=np.uint8, copy=True)
    out[np.asarray(mask, dtype=bool)] = np.asarray(colour, dtype=np.uint8)
    return out


def occlude(image: np.ndarray, key: str, form: str, size: float, position: str,
            seed: int = 0) -> Occlusion:
    """Occlude one aligned face, deterministically from (key, form, size, position, seed).

    ``image``: (112, 112, 3) uint8, unchanged. ``key``: the image's stable key (e.g.
    ``lfw/AJ_Cook/AJ_Cook_0001.jpg``). ``form``: rect (rectangle, square) or text. ``size``:
    a in (0, 0.5] or h in (0, 1] (the paper's sizes are :data:`EVAL_SIZES`). ``position``:
    eyes, nose, mouth or outside. ``seed``: default 0. :class:`ConfigError` for a bad setting.
    """
    image = _check_image(image)
    form, size = check_spec(form, size, position)
    mask, params = _draw(form, size, position, occlusion_rng(key, form, size, position, seed))
    return Occlusion(compose(image, mask, params["colour"]), mask.astype(np.uint8), params)


def occlude_batch(images: np.ndarray, keys: Sequence[str], form: str, size: float,
                  position: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """:func:`occlude` over (N, 112, 112, 3) uint8 faces and their N keys.

    Returns (occluded (N,112,112,3) uint8, masks (N,112,112) uint8, params list); each
    face's occlusion depends only on its own key, never on its place in the batch.
    """
    images = np.asarray(images)
    if len(images) != len(keys):
        raise ValueError(f"{len(images)} images but {len(keys)} keys")
    form, size = check_spec(form, size, position)
    out = np.empty_like(images, dtype=np.uint8)
    masks = np.zeros((len(images), SIZE, SIZE), dtype=np.uint8)
    params = []
    for i, (image, key) in enumerate(zip(images, keys, strict=True)):
        occ = occlude(image, key, form, size, position, seed)
        out[i], masks[i] = occ.image, occ.mask
        params.append(occ.params)
    return out, masks, params


def sample_training_occlusion(image: np.ndarray, rng: np.random.Generator):
    """A random training occlusion (paper III-A / IV-A) of one aligned face.

    Form rect or text with probability 1/2 each; a ~ U[0.01, 0.15] or h ~ U[0.05, 0.5]
    (:data:`TRAIN_SIZES`); position uniform over :data:`POSITIONS`; random word, aspect,
    colour as in :func:`occlude`. Returns (occluded uint8, mask uint8 {0,1}, params).
    """
    image = _check_image(image)
    form = FORMS[_index(rng, len(FORMS))]
    size = _uniform(rng, *TRAIN_SIZES[form])
    position = POSITIONS[_index(rng, len(POSITIONS))]
    mask, params = _draw(form, size, position, rng)
    return compose(image, mask, params["colour"]), mask.astype(np.uint8), params
