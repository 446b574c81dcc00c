"""Synthetic occlusions of aligned 112x112 faces (paper section III-A), deterministic.

    from occbench.occlusion import occlude, EVAL_SIZES
    occ = occlude(face, "lfw/AJ_Cook/AJ_Cook_0001.jpg", "text", 0.3, "eyes", seed=0)
    occ.image, occ.mask, occ.params      # uint8 (112,112,3), uint8 {0,1} (112,112), dict

Forms are plug-ins: a :class:`Form` registered in ``occbench.registry.forms`` (its name,
aliases, size range, evaluation sizes, positions or none, and ``draw``, which may use the
face's 68 landmarks). The paper's two, :data:`FORMS` (``rectangle`` and ``square`` are
aliases of ``rect``):

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
:class:`~occbench.condition.Condition` is one evaluated (form, position, size, seed).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from occbench.condition import Condition
from occbench.errors import ConfigError
from occbench.occlusion_text import text_mask, wordlist
from occbench.template import FACE_CENTRE, FACE_HALF_AXES, LEFT_EYE, MOUTH, NOSE, RIGHT_EYE, SIZE

POSITIONS = ("eyes", "nose", "mouth", "outside")
NO_POSITION = "none"  # the position of a form without a position axis (and of the clean condition)
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


# ----------------------------------------------------------------------------- forms


class Form:
    """An occlusion form: a plug-in of ``registry.forms`` (see :mod:`occbench.registry`).

    Attributes: ``name``, ``aliases``; ``size_range`` (low, high] of valid sizes and
    ``size_label`` (what a size measures, for messages); ``eval_sizes`` (the sizes a run
    evaluates by default) and ``train_range`` (uniform range of the training sampler);
    ``positions`` (empty: no position axis; the condition's position is ``"none"``);
    ``train`` (drawn by the training sampler by default); ``needs_landmarks`` (``draw`` gets
    the face's 68 landmarks in the 112 frame); ``export_name`` (its folder in the occluded
    gallery) and ``title`` (figures).

    :meth:`draw` returns the binary mask and the parameters of one occlusion from ``rng``
    (a Generator seeded by :func:`occlusion_rng`, read through :func:`_random`).
    """

    name = ""
    aliases: tuple[str, ...] = ()
    size_range = (0.0, 1.0)
    size_label = "size"
    eval_sizes: tuple[float, ...] = ()
    train_range: tuple[float, float] = (0.0, 0.0)
    positions: tuple[str, ...] = POSITIONS
    train = False
    needs_landmarks = False

    @property
    def export_name(self) -> str:
        return self.name

    @property
    def title(self) -> str:
        return f"{self.name} ({self.size_label})"

    def draw(self, size: float, position: str, rng: np.random.Generator,
             landmarks: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
        raise NotImplementedError


class StampForm(Form):
    """A shape stamped at one of :data:`POSITIONS` (the paper's forms). Subclasses give
    :meth:`shape`; ``keep_inside`` shifts a shape that would cross the border inwards."""

    keep_inside = False

    def shape(self, size: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """The bool (h, w) shape and its parameters, drawn after the colour."""
        raise NotImplementedError

    def draw(self, size, position, rng, landmarks=None):
        """Order of draws (part of the determinism contract): colour r, g, b; the shape's
        own (aspect, word); then eye side and x, y jitter, or the `outside` placement."""
        colour = tuple(_index(rng, 256) for _ in range(3))
        params: dict = {"form": self.name, "size": float(size), "position": position,
                        "colour": colour}
        shape, extra = self.shape(size, rng)
        params.update(extra)
        h, w = shape.shape
        if position == "outside":
            choices = _outside_choices(h, w, shape.tobytes())
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
            if self.keep_inside:
                x0 = min(max(x0, 0), SIZE - w)
                y0 = min(max(y0, 0), SIZE - h)
        params["centre"] = (x0 + (w - 1) / 2, y0 + (h - 1) / 2)
        params["box"] = (int(x0), int(y0), int(x0 + w), int(y0 + h))
        mask = np.zeros((SIZE, SIZE), dtype=bool)
        _paste(mask, shape, int(x0), int(y0))
        return mask, params


class RectForm(StampForm):
    """``rect``: a filled rectangle of area ratio a, aspect ratio in [0.5, 2], kept inside
    the image (the area stays exact)."""

    name = "rect"
    aliases = ("rectangle", "square")
    size_range = (0.0, 0.5)
    size_label = "area ratio a"
    eval_sizes = (0.05, 0.10, 0.15)
    train_range = (0.01, 0.15)
    train = True
    keep_inside = True
    export_name = "square"  # the paper's released gallery names the folder so
    title = "rectangle (a = area ratio)"

    def shape(self, size, rng):
        aspect = _uniform(rng, *ASPECT_RANGE)
        h, w = rect_shape(size, aspect)
        return np.ones((h, w), dtype=bool), {"aspect": aspect}


class TextForm(StampForm):
    """``text``: one BIP-39 word whose ink is exactly round(h * 112) rows high."""

    name = "text"
    size_range = (0.0, 1.0)
    size_label = "height ratio h"
    eval_sizes = (0.1, 0.3, 0.5)
    train_range = (0.05, 0.5)
    train = True
    title = "text (h = height ratio)"

    def shape(self, size, rng):
        word = wordlist()[_index(rng, 2048)]
        return text_mask(word, max(1, round(size * SIZE))), {"word": word}


RECT, TEXT = RectForm(), TextForm()
# The paper's two forms (its evaluation sizes and training ranges, section IV).
FORMS = (RECT.name, TEXT.name)
EVAL_SIZES = {f.name: f.eval_sizes for f in (RECT, TEXT)}
TRAIN_SIZES = {f.name: f.train_range for f in (RECT, TEXT)}
SIZE_RANGES = {f.name: f.size_range for f in (RECT, TEXT)}


def get_form(form: str) -> Form:
    """The registered :class:`Form` of a name or alias; ConfigError listing the known."""
    from occbench import registry

    return registry.forms.load(form)


def conditions(forms, positions, sizes, seed: int = 0) -> list[Condition]:
    """The conditions of every form x position x size (``sizes`` None: each form's
    ``eval_sizes``); a form without positions gets one condition per size."""
    out = []
    for name in forms:
        form = get_form(name)
        for position in (positions if form.positions else (NO_POSITION,)):
            for size in sizes or form.eval_sizes:
                name_, value = check_spec(form.name, size, position)
                out.append(Condition(name_, position, float(value), seed))
    return out


# ----------------------------------------------------------------------------- validation


def canonical_form(form: str) -> str:
    """The registered name of a form or alias; :class:`ConfigError` otherwise."""
    return get_form(form).name


def check_spec(form: str, size: float, position: str) -> tuple[str, float]:
    """Validate an occlusion setting; returns (canonical form, size as float).

    :class:`ConfigError` names the bad value and lists the valid ones. A form without a
    position axis takes the position ``"none"``.
    """
    f = get_form(form)
    valid = f.positions or (NO_POSITION,)
    if position not in valid:
        raise ConfigError(f"unknown occlusion position {position!r} for {f.name}; valid: "
                          f"{', '.join(valid)}")
    low, high = f.size_range
    try:
        value = float(size)
    except (TypeError, ValueError):
        value = math.nan
    if not (low < value <= high):
        paper = ", ".join(f"{s:g}" for s in f.eval_sizes)
        raise ConfigError(
            f"invalid {f.name} size {size if not isinstance(size, str) else repr(size)}: the "
            f"{f.size_label} must be in ({low:g}, {high:g}] (evaluated sizes: {paper})"
        )
    return f.name, value


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
def _outside_choices(h: int, w: int, shape_bytes: bytes) -> tuple:
    """The allowed `outside` placements of one occluder shape (cached by shape)."""
    shape = np.frombuffer(shape_bytes, dtype=bool).reshape(h, w)
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


def compose(image: np.ndarray, mask: np.ndarray, colour: Sequence[int]) -> np.ndarray:
    """I = (1 - M) * I_gt + M * c for a binary mask: a copy with the masked pixels set to c."""
    out = np.array(image, dtype=np.uint8, copy=True)
    out[np.asarray(mask, dtype=bool)] = np.asarray(colour, dtype=np.uint8)
    return out


def _landmarks_for(form: Form, landmarks, n: int | None = None):
    if not form.needs_landmarks:
        return None
    if landmarks is None:
        raise ConfigError(f"occlusion form {form.name!r} is drawn from the face's 68 landmarks; "
                          "pass landmarks= (AlignedFaces.landmarks68)")
    pts = np.asarray(landmarks, dtype=np.float64)
    want = (68, 2) if n is None else (n, 68, 2)
    if pts.shape != want:
        raise ValueError(f"expected landmarks of shape {want}, got {pts.shape}")
    return pts


def occlude(image: np.ndarray, key: str, form: str, size: float, position: str,
            seed: int = 0, landmarks: np.ndarray | None = None) -> Occlusion:
    """Occlude one aligned face, deterministically from (key, form, size, position, seed).

    ``image``: (112, 112, 3) uint8, unchanged. ``key``: the image's stable key (e.g.
    ``lfw/AJ_Cook/AJ_Cook_0001.jpg``). ``form``: a registered form or alias (rect, text,
    ...). ``size``: in the form's ``size_range`` (the paper's sizes are :data:`EVAL_SIZES`).
    ``position``: eyes, nose, mouth or outside (``none`` for a form without positions).
    ``seed``: default 0. ``landmarks``: (68, 2) points in the 112 frame, for a form that
    needs them. :class:`ConfigError` for a bad setting.
    """
    image = _check_image(image)
    name, size = check_spec(form, size, position)
    f = get_form(name)
    mask, params = f.draw(size, position, occlusion_rng(key, name, size, position, seed),
                          _landmarks_for(f, landmarks))
    return Occlusion(compose(image, mask, params["colour"]), mask.astype(np.uint8), params)


def occlude_batch(images: np.ndarray, keys: Sequence[str], form: str, size: float,
                  position: str, seed: int = 0, landmarks: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """:func:`occlude` over (N, 112, 112, 3) uint8 faces and their N keys (and (N, 68, 2)
    ``landmarks`` for a form that needs them).

    Returns (occluded (N,112,112,3) uint8, masks (N,112,112) uint8, params list); each
    face's occlusion depends only on its own key, never on its place in the batch.
    """
    images = np.asarray(images)
    if len(images) != len(keys):
        raise ValueError(f"{len(images)} images but {len(keys)} keys")
    name, size = check_spec(form, size, position)
    points = _landmarks_for(get_form(name), landmarks, len(images))
    out = np.empty_like(images, dtype=np.uint8)
    masks = np.zeros((len(images), SIZE, SIZE), dtype=np.uint8)
    params = []
    for i, (image, key) in enumerate(zip(images, keys, strict=True)):
        occ = occlude(image, key, name, size, position, seed,
                      None if points is None else points[i])
        out[i], masks[i] = occ.image, occ.mask
        params.append(occ.params)
    return out, masks, params


def training_forms() -> tuple[str, ...]:
    """The forms the training sampler draws by default (those with ``train = True``; a
    new form opts in), by name."""
    from occbench import registry

    return tuple(e.name for e in registry.forms.entries() if e.load().train)


def sample_training_occlusion(image: np.ndarray, rng: np.random.Generator,
                              forms: Sequence[str] | None = None,
                              landmarks: np.ndarray | None = None):
    """A random training occlusion (paper III-A / IV-A) of one aligned face.

    Form uniform over ``forms`` (default :func:`training_forms`: rect and text, so
    probability 1/2 each); size uniform over the form's ``train_range`` (a ~ U[0.01, 0.15],
    h ~ U[0.05, 0.5]); position uniform over the form's positions; random word, aspect,
    colour as in :func:`occlude`. Returns (occluded uint8, mask uint8 {0,1}, params).
    """
    image = _check_image(image)
    names = tuple(forms) if forms is not None else training_forms()
    form = get_form(names[_index(rng, len(names))])
    size = _uniform(rng, *form.train_range)
    position = (form.positions[_index(rng, len(form.positions))] if form.positions
                else NO_POSITION)
    mask, params = form.draw(size, position, rng, _landmarks_for(form, landmarks))
    return compose(image, mask, params["colour"]), mask.astype(np.uint8), params
