"""Occlusion forms drawn from the aligned face's 68 landmarks: ``mask`` and ``glasses``.

The occlusions people meet most in practice are face masks and sunglasses. Both forms are
drawn from dlib's 68 landmarks of the aligned face (iBUG 300-W numbering, 0-based, in the
112 frame: :attr:`occbench.faces.AlignedFaces.landmarks68`), so they follow the face when it
is turned. Neither has a position axis (the condition's position is ``none``); both are
deterministic per (image key, form, size, seed) like the paper's forms, and neither is drawn
by the training sampler unless asked for (``train = False``).

* ``mask`` -- a surgical-style mask over the lower face: the jaw line (points 1-15) below, a
  top edge across the nose line (points 27-30, 33) whose height is the size ``s``: the top
  passes through ``p33 + s (p27 - p33)``, so s = 0.1 just covers the nostrils and lower
  nose, s = 0.4 the nose tip, s = 0.8 reaches up the bridge towards the eyes. The top edge
  rises towards the nose (a shallow peak, as a mask over the nose does) and meets the face
  contour on both sides; two straps run from the mask's upper corners towards the ears
  (points 0 and 16). Evaluation sizes 0.1, 0.4, 0.8; training range [0.05, 0.9].
* ``glasses`` -- two opaque lenses and a bridge: each lens an ellipse centred on its eye
  (points 36-41, 42-47), half-width ``s`` times half the eye's width (corner to corner) plus
  2 px and half-height 0.8 times that; the bridge a 3 px band between the inner edges at the
  lenses' height. Size = the lens scale ``s``. Evaluation sizes 1.2, 1.6, 2.0; training
  range [1.0, 2.2].

Colour: uniform random RGB, one per occlusion, drawn first (as the paper's forms). Masks are
filled polygons rasterised by Pillow at 4x resolution and thresholded at half coverage.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from occbench.occlusion import Form, _index
from occbench.template import SIZE

SUPERSAMPLE = 4


def _raster(draw_fn) -> np.ndarray:
    """A bool (112, 112) mask from ``draw_fn(ImageDraw, scale)`` drawn at 4x resolution."""
    big = Image.new("L", (SIZE * SUPERSAMPLE, SIZE * SUPERSAMPLE), 0)
    draw_fn(ImageDraw.Draw(big), SUPERSAMPLE)
    small = np.asarray(big, dtype=np.float32).reshape(SIZE, SUPERSAMPLE, SIZE, SUPERSAMPLE)
    return small.mean(axis=(1, 3)) >= 127.5


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return (0, 0, 0, 0)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _scaled(points, scale: int) -> list[tuple[float, float]]:
    # pixel centres at integers: (x + 0.5) * scale - 0.5 in the big image
    return [((x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5) for x, y in points]


def _on_contour(jaw: np.ndarray, y: float, side: int) -> np.ndarray:
    """Where the horizontal line at height ``y`` meets the jaw contour on one side (side 0:
    points 0-8, the face's image-left; side 1: points 16-8), linearly interpolated."""
    chain = jaw[:9] if side == 0 else jaw[16:7:-1]
    for a, b in zip(chain[:-1], chain[1:], strict=True):
        if (a[1] - y) * (b[1] - y) <= 0 and a[1] != b[1]:
            t = (y - a[1]) / (b[1] - a[1])
            return a + t * (b - a)
    return chain[0] if y < chain[0][1] else chain[-1]


class MaskForm(Form):
    name = "mask"
    aliases = ("face-mask",)
    size_range = (0.0, 1.0)
    size_label = "nose coverage s"
    eval_sizes = (0.1, 0.4, 0.8)
    train_range = (0.05, 0.9)
    positions = ()
    needs_landmarks = True
    title = "face mask (s = nose coverage)"
    straps = True

    def draw(self, size, position, rng, landmarks=None):
        colour = tuple(_index(rng, 256) for _ in range(3))
        pts = np.asarray(landmarks, dtype=np.float64)
        jaw = pts[:17]
        top = pts[33] + float(size) * (pts[27] - pts[33])
        left, right = _on_contour(jaw, top[1] + 2.0, 0), _on_contour(jaw, top[1] + 2.0, 1)
        below = [p for p in jaw[1:16] if p[1] > top[1] + 2.0]
        outline = [tuple(left)] + [tuple(p) for p in below] + [tuple(right), tuple(top)]
        ears = (pts[0], pts[16])

        def draw(d, scale):
            d.polygon(_scaled(outline, scale), fill=255)
            if self.straps:
                for corner, ear in ((left, ears[0]), (right, ears[1])):
                    end = ear + 0.3 * (corner - ear)  # towards the ear, not across the cheek
                    d.line(_scaled([tuple(corner), tuple(end)], scale), fill=255,
                           width=2 * scale)

        mask = _raster(draw)
        return mask, {"form": self.name, "size": float(size), "position": position,
                      "colour": colour, "top": tuple(top), "box": _box(mask)}


class GlassesForm(Form):
    name = "glasses"
    aliases = ("sunglasses",)
    size_range = (0.5, 3.0)
    size_label = "lens scale s"
    eval_sizes = (1.2, 1.6, 2.0)
    train_range = (1.0, 2.2)
    positions = ()
    needs_landmarks = True
    title = "sunglasses (s = lens scale)"

    def draw(self, size, position, rng, landmarks=None):
        colour = tuple(_index(rng, 256) for _ in range(3))
        pts = np.asarray(landmarks, dtype=np.float64)
        lenses = []
        for eye in (pts[36:42], pts[42:48]):
            centre = eye.mean(axis=0)
            half_w = float(size) * np.linalg.norm(eye[3] - eye[0]) / 2.0 + 2.0
            lenses.append((centre, half_w, 0.8 * half_w))
        (c1, w1, _), (c2, w2, _) = sorted(lenses, key=lambda lens: lens[0][0])  # image-left first
        bridge_y = (c1[1] + c2[1]) / 2.0

        def draw(d, scale):
            for centre, a, b in lenses:
                (x0, y0), (x1, y1) = _scaled([(centre[0] - a, centre[1] - b),
                                              (centre[0] + a, centre[1] + b)], scale)
                d.ellipse([x0, y0, x1, y1], fill=255)
            d.line(_scaled([(c1[0] + w1 * 0.9, bridge_y),
                            (c2[0] - w2 * 0.9, bridge_y)], scale), fill=255,
                   width=3 * scale)

        mask = _raster(draw)
        return mask, {"form": self.name, "size": float(size), "position": position,
                      "colour": colour, "box": _box(mask)}


MASK, GLASSES = MaskForm(), GlassesForm()
