"""Procedural synthetic leaf dataset: the built-in default data set.

The real leaf data set cannot be downloaded here, so this module draws a stand-in
with the same 14 species, the same class imbalance and the same look (one leaf on
a black background). Species differ in outline, lobes, serration, veins, colour
and typical lesions, but overlap enough, and vary enough in pose, size and tint,
that a small CNN has to learn and hyperparameters matter.

Only numpy and Pillow are used, so generating data never imports TensorFlow.
"""

from __future__ import annotations

import colorsys
import functools
import math
import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from search.execution import lifeline

REAL_COUNTS: dict[str, int] = {
    "Apple": 988,
    "Blueberry": 467,
    "Cherry": 583,
    "Corn": 1206,
    "Grape": 1458,
    "Orange": 1748,
    "Peach": 977,
    "Pepper": 765,
    "Potato": 716,
    "Raspberry": 264,
    "Soybean": 1616,
    "Squash": 574,
    "Strawberry": 673,
    "Tomato": 5693,
}
SPECIES: tuple[str, ...] = tuple(sorted(REAL_COUNTS))

_SUPERSAMPLE = 2  # draw at 2x and downscale: smooth edges without per-pixel work

# Lesion styles, shared by species. kind: dot (with optional halo/rings), blotch
# (irregular patch), streak (elongated along the leaf axis), powder (soft pale
# patches), mottle (low-frequency colour blend over the whole leaf).
# hsv is (hue degrees, saturation, value); size is a radius as a fraction of the image.
_LESIONS: dict[str, dict] = {
    "scab": dict(kind="blotch", hsv=(60, 0.45, 0.22), size=(0.03, 0.07), n=(3, 9), soft=True),
    "black_rot": dict(kind="dot", hsv=(25, 0.65, 0.28), ring=(330, 0.35, 0.15), size=(0.03, 0.06), n=(2, 6)),
    "rust": dict(kind="dot", hsv=(28, 0.9, 0.85), halo=(50, 0.75, 0.75), size=(0.012, 0.03), n=(4, 14)),
    "bacterial": dict(kind="dot", hsv=(20, 0.55, 0.18), halo=(55, 0.6, 0.6), size=(0.006, 0.014), n=(12, 45)),
    "target": dict(kind="dot", hsv=(28, 0.6, 0.38), ring=(25, 0.7, 0.15), rings=3, size=(0.03, 0.06), n=(3, 9)),
    "late_blight": dict(kind="blotch", hsv=(22, 0.5, 0.22), size=(0.08, 0.18), n=(1, 3)),
    "leaf_blight": dict(kind="streak", hsv=(38, 0.35, 0.62), ring=(25, 0.5, 0.35), size=(0.03, 0.06), n=(2, 6)),
    "corn_rust": dict(kind="dot", hsv=(22, 0.85, 0.5), size=(0.005, 0.011), n=(30, 90)),
    "gray_spot": dict(kind="streak", hsv=(40, 0.12, 0.6), size=(0.012, 0.03), n=(6, 20)),
    "scorch": dict(kind="dot", hsv=(330, 0.6, 0.3), size=(0.008, 0.022), n=(15, 50)),
    "leaf_spot": dict(kind="dot", hsv=(30, 0.4, 0.5), ring=(20, 0.6, 0.25), size=(0.008, 0.02), n=(10, 35)),
    "powdery": dict(kind="powder", hsv=(80, 0.06, 0.88), size=(0.03, 0.09), n=(5, 25)),
    "mold": dict(kind="blotch", hsv=(55, 0.35, 0.5), size=(0.04, 0.1), n=(2, 6), soft=True),
    "mosaic": dict(kind="mottle", hsv=(62, 0.65, 0.72), strength=0.7, freq=8),
    "greening": dict(kind="mottle", hsv=(55, 0.7, 0.75), strength=0.85, freq=5),
    "yellowing": dict(kind="mottle", hsv=(52, 0.7, 0.7), strength=0.6, freq=2),
    "esca": dict(kind="mottle", hsv=(30, 0.6, 0.45), strength=0.7, freq=10),
    "reddening": dict(kind="mottle", hsv=(10, 0.55, 0.45), strength=0.6, freq=3),
}

# One row per species: what makes it recognisable. (mean, sd) pairs are jittered per
# image. form: simple | blade | palmate | trifoliate | pinnate. shape = (a, b) are the
# base/tip exponents of the width profile t**a * (1-t)**b (a<b: ovate, a>b: obovate,
# b<1: blunt tip). teeth = (count per side, depth). size = leaf diameter / image side.
_TABLE: dict[str, dict] = {
    "Apple": dict(
        form="simple",
        shape=(0.8, 1.2),
        aspect=(1.7, 0.15),
        teeth=(30, 0.06),
        veins=7,
        hsv=((98, 6), (0.55, 0.08), (0.50, 0.08)),
        vein_tone=0.25,
        size=(0.7, 0.95),
        disease=(0.6, ("scab", "black_rot", "rust")),
    ),
    "Blueberry": dict(
        form="simple",
        shape=(0.9, 0.9),
        aspect=(2.0, 0.2),
        teeth=(0, 0),
        veins=6,
        hsv=((112, 8), (0.45, 0.08), (0.45, 0.08)),
        vein_tone=0.15,
        size=(0.5, 0.75),
        disease=(0.25, ("reddening",)),
    ),
    "Cherry": dict(
        form="simple",
        shape=(1.1, 0.9),
        aspect=(2.1, 0.2),
        teeth=(34, 0.05),
        veins=8,
        hsv=((105, 6), (0.62, 0.08), (0.42, 0.08)),
        vein_tone=0.3,
        size=(0.7, 0.95),
        disease=(0.5, ("powdery",)),
    ),
    "Corn": dict(
        form="blade",
        shape=(0.12, 0.35),
        aspect=(11.0, 1.5),
        teeth=(0, 0),
        veins=3,
        hsv=((85, 6), (0.50, 0.08), (0.58, 0.08)),
        vein_tone=0.3,
        size=(1.3, 1.7),
        disease=(0.75, ("leaf_blight", "corn_rust", "gray_spot")),
    ),
    "Grape": dict(
        form="palmate",
        lobes=(5, 2.3, 0.45, 0.8),
        aspect=(0.95, 0.08),
        teeth=(40, 0.08),
        veins=5,
        hsv=((95, 6), (0.60, 0.08), (0.42, 0.08)),
        vein_tone=0.25,
        size=(0.75, 0.95),
        disease=(0.8, ("black_rot", "esca", "late_blight")),
    ),
    "Orange": dict(
        form="simple",
        shape=(0.8, 0.8),
        aspect=(2.0, 0.2),
        teeth=(20, 0.02),
        veins=8,
        hsv=((80, 6), (0.65, 0.08), (0.52, 0.08)),
        vein_tone=0.3,
        size=(0.65, 0.9),
        disease=(0.95, ("greening",)),
    ),
    "Peach": dict(
        form="simple",
        shape=(0.7, 1.6),
        aspect=(3.6, 0.4),
        teeth=(40, 0.04),
        veins=10,
        hsv=((100, 6), (0.60, 0.08), (0.50, 0.08)),
        vein_tone=0.3,
        size=(0.75, 0.95),
        disease=(0.7, ("bacterial",)),
    ),
    "Pepper": dict(
        form="simple",
        shape=(0.8, 1.4),
        aspect=(2.0, 0.2),
        teeth=(0, 0),
        veins=6,
        hsv=((95, 6), (0.68, 0.08), (0.52, 0.08)),
        vein_tone=0.2,
        size=(0.65, 0.9),
        disease=(0.4, ("bacterial",)),
    ),
    "Potato": dict(
        form="simple",
        shape=(0.7, 1.1),
        aspect=(1.6, 0.15),
        teeth=(0, 0),
        veins=6,
        hsv=((100, 6), (0.55, 0.08), (0.45, 0.08)),
        vein_tone=0.15,
        size=(0.65, 0.9),
        disease=(0.9, ("target", "late_blight")),
    ),
    "Raspberry": dict(
        form="trifoliate",
        shape=(0.7, 1.5),
        aspect=(1.5, 0.15),
        teeth=(30, 0.09),
        veins=7,
        hsv=((108, 6), (0.55, 0.08), (0.45, 0.08)),
        vein_tone=0.2,
        size=(0.75, 0.95),
        double_teeth=True,
        five=0.4,
        disease=(0.0, ()),
    ),
    "Soybean": dict(
        form="simple",
        shape=(0.9, 1.0),
        aspect=(1.6, 0.15),
        teeth=(0, 0),
        veins=6,
        hsv=((95, 6), (0.60, 0.08), (0.50, 0.08)),
        vein_tone=0.2,
        size=(0.6, 0.9),
        disease=(0.0, ()),
    ),
    "Squash": dict(
        form="palmate",
        lobes=(5, 2.2, 0.25, 0.6),
        aspect=(0.9, 0.08),
        teeth=(26, 0.04),
        veins=5,
        hsv=((100, 6), (0.55, 0.08), (0.50, 0.08)),
        vein_tone=0.35,
        size=(0.75, 0.95),
        disease=(0.95, ("powdery",)),
    ),
    "Strawberry": dict(
        form="trifoliate",
        shape=(1.0, 0.7),
        aspect=(1.4, 0.12),
        teeth=(18, 0.12),
        veins=8,
        hsv=((110, 6), (0.65, 0.08), (0.38, 0.08)),
        vein_tone=-0.25,
        size=(0.75, 0.95),
        five=0.0,
        disease=(0.6, ("scorch",)),
    ),
    "Tomato": dict(
        form="pinnate",
        shape=(0.8, 1.2),
        aspect=(1.7, 0.2),
        teeth=(14, 0.06),
        veins=6,
        hsv=((95, 12), (0.60, 0.1), (0.50, 0.1)),
        vein_tone=0.25,
        size=(0.7, 0.95),
        lobing=0.15,
        single=0.35,
        disease=(0.85, ("leaf_spot", "target", "late_blight", "mosaic", "yellowing", "mold", "bacterial")),
    ),
}


@dataclass
class _Shape:
    """A leaf in some coordinate frame: blade polygons plus vein/stem polylines with widths."""

    polygons: list[np.ndarray] = field(default_factory=list)
    veins: list[tuple[np.ndarray, float]] = field(default_factory=list)
    stems: list[tuple[np.ndarray, float]] = field(default_factory=list)

    def extend(self, other: _Shape) -> None:
        self.polygons += other.polygons
        self.veins += other.veins
        self.stems += other.stems

    def affine(self, matrix: np.ndarray, shift, scale: float) -> _Shape:
        """Rotate/scale/shift everything; line widths scale too so proportions hold."""
        move = lambda p: p @ matrix.T + shift  # noqa: E731
        return _Shape(
            [move(p) for p in self.polygons],
            [(move(p), w * scale) for p, w in self.veins],
            [(move(p), w * scale) for p, w in self.stems],
        )


def _rotation(angle: float, scale: float = 1.0) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return scale * np.array([[c, -s], [s, c]])


def _jitter(rng: np.random.Generator, mean_sd, lo: float = 0.0) -> float:
    return max(lo, float(rng.normal(*mean_sd)))


def _rgb(hsv) -> np.ndarray:
    """HSV with hue in degrees -> float RGB 0..255 (saturation/value clipped to 0..1)."""
    h, s, v = hsv
    rgb = colorsys.hsv_to_rgb((h % 360) / 360, min(max(s, 0), 1), min(max(v, 0), 1))
    return np.array(rgb, np.float32) * 255


def _colour_rgb(rgb) -> tuple[int, int, int]:
    """A Pillow fill colour from float RGB."""
    return tuple(int(c) for c in np.clip(rgb, 0, 255))


def _colour(hsv) -> tuple[int, int, int]:
    return _colour_rgb(_rgb(hsv))


# ---------------------------------------------------------------- class sizes


def class_counts(total: int, min_per_class: int = 6) -> dict[str, int]:
    """Split `total` images over the species in the real data set's proportions.

    Small classes are raised to `min_per_class` (so every class can be split into
    train and validation) and the rest is shared out proportionally among the
    others, so the imbalance survives. Sums to exactly `total`.
    """
    if total < len(SPECIES) * min_per_class:
        raise ValueError(
            f"total={total} is too small: need at least {len(SPECIES) * min_per_class} images "
            f"({len(SPECIES)} classes x min_per_class={min_per_class})"
        )
    floored: set[str] = set()
    while True:  # water-filling: classes below the minimum get it, the rest share what is left
        free = [s for s in SPECIES if s not in floored]
        budget = total - min_per_class * len(floored)
        weight = sum(REAL_COUNTS[s] for s in free)
        share = {s: budget * REAL_COUNTS[s] / weight for s in free}
        low = {s for s, v in share.items() if v < min_per_class}
        if not low:
            break
        floored |= low
    counts = {s: min_per_class for s in floored}
    counts.update({s: int(v) for s, v in share.items()})
    leftover = total - sum(counts.values())
    for s in sorted(share, key=lambda s: share[s] - int(share[s]), reverse=True)[:leftover]:
        counts[s] += 1
    return {s: counts[s] for s in SPECIES}


# ---------------------------------------------------------------- leaf geometry


def _leaflet(rng, shape, aspect, teeth=(0, 0.0), n_veins=6, double=False, lobing=0.0, parallel=False) -> _Shape:
    """One blade from base (0,0) to tip (0,1): width profile, serration, midrib and veins."""
    n = 80 + 6 * int(teeth[0])
    t = np.linspace(0.0, 1.0, n)
    a, b = shape
    w = t**a * (1 - t) ** b
    w = w / w.max() * 0.5 / aspect
    smooth = w.copy()
    if teeth[0]:
        saw = 1 - (t * teeth[0]) % 1.0  # gentle slope towards the tip, steep drop: teeth point apically
        if double:
            saw = 0.6 * saw + 0.4 * (1 - (t * teeth[0] * 3) % 1.0)
        w = w * (1 - teeth[1] * saw)
    if lobing:
        k, phase = rng.uniform(2.5, 4.5), rng.uniform(0, 2 * np.pi)
        w = w * (1 - lobing * 0.5 * (1 + np.sin(2 * np.pi * k * t + phase)) * np.sin(np.pi * t))
    mid = rng.normal(0, 0.05) * t**2  # a gently curved midrib
    right, left = rng.normal(1.0, 0.05, 2)  # slight asymmetry
    outline = np.concatenate([np.stack([mid + right * w, t], 1), np.stack([mid - left * w, t], 1)[::-1]])
    out = _Shape([outline], [(np.stack([mid, t * 0.97], 1), 0.018)])
    if parallel:
        for f in (0.3, 0.55, 0.8):
            for side in (1, -1):
                out.veins.append((np.stack([mid + side * f * smooth, t], 1)[5:-5], 0.006))
        return out
    step = 0.12 + 0.3 / max(n_veins, 1)
    for t0 in np.linspace(0.08, 0.85, n_veins):
        t1 = min(t0 + step, 0.97)
        i1 = int(t1 * (n - 1))
        for side, scale in ((1, right), (-1, left)):
            end = (mid[i1] + side * 0.85 * scale * smooth[i1], t1)
            mid_pt = (mid[i1] + side * 0.45 * scale * smooth[i1], t0 + step * 0.55)
            out.veins.append((np.array([(np.interp(t0, t, mid), t0), mid_pt, end]), 0.008))
    return out


def _palmate(rng, lobes, aspect, teeth, n_veins) -> _Shape:
    """Polar outline around the petiole attachment: Gaussian lobes plus a cordate basal sinus."""
    n_lobes, spread, depth, sinus = lobes
    spread *= rng.normal(1, 0.05)
    depth = min(max(depth * rng.normal(1, 0.15), 0.05), 0.85)
    phi = np.linspace(-np.pi, np.pi, 720, endpoint=False)
    centres = np.linspace(-spread, spread, n_lobes)
    length = (1 - 0.35 * (np.abs(centres) / spread) ** 1.5) * rng.normal(1, 0.05, n_lobes)
    sigma = spread / max(n_lobes - 1, 1) * 0.5
    lobe = (length[:, None] * np.exp(-0.5 * np.abs((phi - centres[:, None]) / sigma) ** 1.6)).max(0)
    body = 1 - sinus * np.exp(-0.5 * ((np.pi - np.abs(phi)) / 0.3) ** 2)
    r = body * ((1 - depth) * 0.8 + depth * lobe / length.max())
    if teeth[0]:
        r = r * (1 - teeth[1] * ((phi / (2 * np.pi) * teeth[0] * 2) % 1.0))
    xy = np.stack([r * np.sin(phi) / aspect, r * np.cos(phi)], 1)
    out = _Shape([xy])
    for c, ln in zip(centres, length):
        tip = 0.9 * np.interp(c, phi, r) * np.array([math.sin(c) / aspect, math.cos(c)])
        out.veins.append((np.array([(0, 0), tip]), 0.016))
        for f in np.linspace(0.3, 0.75, max(n_veins - 3, 1)):
            for side in (1, -1):
                base = f * tip
                ang = c + side * 0.6
                end = base + 0.35 * ln * np.array([math.sin(ang) / aspect, math.cos(ang)])
                out.veins.append((np.array([base, end]), 0.007))
    return out


def _compound(rng, spec, pinnate: bool) -> _Shape:
    """Leaflets on a rachis: trifoliate (3, sometimes 5) or pinnate with 1-3 lateral pairs."""
    aspect = _jitter(rng, spec["aspect"], 1.0)
    teeth = spec["teeth"]
    rachis = rng.uniform(0.25, 0.45) if not pinnate else rng.uniform(0.8, 1.2)
    out = _Shape(stems=[(np.array([(0, -0.3), (0, rachis)]), 0.025)])

    def leaflet(size, angle, at):
        leaf = _leaflet(
            rng,
            spec["shape"],
            aspect * rng.normal(1, 0.05),
            teeth,
            spec["veins"],
            spec.get("double_teeth", False),
            spec.get("lobing", 0.0),
        )
        stalk = 0.12 * size * np.array([-math.sin(angle), math.cos(angle)])  # short petiolule
        out.stems.append((np.array([at, at + stalk]), 0.015))
        return leaf.affine(_rotation(angle, size), np.asarray(at) + stalk, size)

    out.extend(leaflet(1.0, 0.0, (0, rachis)))
    if pinnate:
        pairs = int(rng.integers(1, 4))
        positions = np.linspace(0.15, 0.8, pairs) * rachis
        sizes = np.linspace(0.55, 0.8, pairs)
    else:
        five = rng.random() < spec.get("five", 0.0)
        positions = [rachis, 0.0] if five else [rachis]
        sizes = [0.85, 0.6] if five else [0.85]
    for y, size in zip(positions, sizes):
        for side in (1, -1):
            angle = side * rng.uniform(0.9, 1.35)
            out.extend(leaflet(size * rng.normal(1, 0.06), angle, (0, y)))
    return out


def _leaf_shape(species: str, rng: np.random.Generator) -> _Shape:
    """Local-frame geometry of one leaf of `species`, with within-class jitter."""
    spec = _TABLE[species]
    form = spec["form"]
    if form == "pinnate" and rng.random() < spec.get("single", 0.0):
        form = "simple"  # close-ups of one tomato leaflet: overlaps with potato/pepper on purpose
    if form == "palmate":
        leaf = _palmate(rng, spec["lobes"], _jitter(rng, spec["aspect"], 0.5), spec["teeth"], spec["veins"])
    elif form in ("trifoliate", "pinnate"):
        return _compound(rng, spec, pinnate=form == "pinnate")
    else:
        teeth = (spec["teeth"][0] * rng.uniform(0.85, 1.15), spec["teeth"][1])
        shape = tuple(x * rng.normal(1, 0.08) for x in spec["shape"])
        leaf = _leaflet(
            rng,
            shape,
            _jitter(rng, spec["aspect"], 1.0),
            teeth,
            spec["veins"],
            lobing=spec.get("lobing", 0.0),
            parallel=form == "blade",
        )
        if form == "blade":
            return leaf
    leaf.stems.append((np.array([(0, -rng.uniform(0.1, 0.25)), (0, 0.02)]), 0.022))
    return leaf


def _place(shape: _Shape, rng, canvas: int, size_frac: float) -> tuple[_Shape, float]:
    """Random pose: rotate, scale the leaf's diameter to `size_frac` of the canvas, offset."""
    pts = np.concatenate(shape.polygons)
    centre = (pts.min(0) + pts.max(0)) / 2
    diameter = 2 * np.linalg.norm(pts - centre, axis=1).max()
    scale = size_frac * canvas / diameter
    angle = rng.uniform(0, 2 * np.pi)
    shift = canvas / 2 + rng.normal(0, 0.05 * canvas, 2)
    matrix = _rotation(angle, scale)
    return shape.affine(matrix, shift - centre @ matrix.T, scale), angle


# ---------------------------------------------------------------- painting


def _lowfreq(rng, cells: int, size: int) -> np.ndarray:
    """Smooth random field in [0, 1]: cheap texture/mottle without per-pixel loops."""
    small = Image.fromarray(rng.integers(0, 256, (cells + 1, cells + 1), dtype=np.uint8), mode="L")
    return np.asarray(small.resize((size, size), Image.BICUBIC), dtype=np.float32) * (1 / 255)


def _irregular(rng, centre, radius, points: int = 24) -> list[tuple[float, float]]:
    """A rounded random blob: a circle with a few random low-order harmonics."""
    ang = np.linspace(0, 2 * np.pi, points, endpoint=False)
    k = np.arange(2, 5)[:, None]
    wobble = (rng.normal(0, 0.15, (3, 1)) * np.cos(k * ang + rng.uniform(0, 2 * np.pi, (3, 1)))).sum(0)
    rad = radius * (1 + wobble)
    return list(zip(centre[0] + rad * np.cos(ang), centre[1] + rad * np.sin(ang)))


@dataclass
class _Lesions:
    """Disease marks on their own layers (made only when needed), blended onto the leaf later."""

    canvas: int
    colour: Image.Image | None = None
    alpha: Image.Image | None = None
    powder: Image.Image | None = None
    mottles: list[dict] = field(default_factory=list)

    def draw(self) -> tuple[ImageDraw.ImageDraw, ImageDraw.ImageDraw]:
        if self.colour is None:
            self.colour = Image.new("RGB", (self.canvas, self.canvas))
            self.alpha = Image.new("L", (self.canvas, self.canvas), 0)
        return ImageDraw.Draw(self.colour), ImageDraw.Draw(self.alpha)

    def powder_draw(self) -> ImageDraw.ImageDraw:
        if self.powder is None:
            self.powder = Image.new("L", (self.canvas, self.canvas), 0)
        return ImageDraw.Draw(self.powder)


def _paint_lesions(rng, name: str, marks: _Lesions, inside: np.ndarray, axis_angle: float) -> None:
    """Scatter one lesion style over points inside the leaf; mottles are kept for numpy."""
    style = _LESIONS[name]
    if style["kind"] == "mottle":
        marks.mottles.append(style)
        return
    canvas = marks.canvas
    colour = _colour(np.asarray(style["hsv"]) + rng.normal(0, [5, 0.05, 0.05]))
    ring = _colour(style.get("ring", style["hsv"]))
    opacity = 170 if style.get("soft") else 255
    for _ in range(int(rng.integers(*style["n"], endpoint=True))):
        cx, cy = inside[rng.integers(len(inside))]
        r = rng.uniform(*style["size"]) * canvas
        if style["kind"] == "powder":
            marks.powder_draw().polygon(_irregular(rng, (cx, cy), r), fill=int(rng.uniform(120, 255)))
            continue
        draw, alpha = marks.draw()
        if style["kind"] == "blotch":
            poly = _irregular(rng, (cx, cy), r)
            draw.polygon(poly, fill=colour)
            alpha.polygon(poly, fill=opacity)
        elif style["kind"] == "streak":
            t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            ell = np.stack([0.35 * r * np.cos(t), 2.5 * r * np.sin(t)], 1) @ _rotation(axis_angle).T
            outer, inner = _polyline(ell * 1.25 + (cx, cy)), _polyline(ell + (cx, cy))
            draw.polygon(outer, fill=ring)
            draw.polygon(inner, fill=colour)
            alpha.polygon(outer if "ring" in style else inner, fill=opacity)
        else:
            h = r * (1.8 if "halo" in style else 1.0)
            alpha.ellipse((cx - h, cy - h, cx + h, cy + h), fill=opacity)
            if "halo" in style:
                draw.ellipse((cx - h, cy - h, cx + h, cy + h), fill=_colour(style["halo"]))
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
            for k in range(style.get("rings", 1 if "ring" in style else 0)):
                rr = r * (1 - 0.3 * k)
                draw.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), outline=ring, width=max(1, int(r / 6)))


def _polyline(points: np.ndarray) -> list[tuple[float, float]]:
    return list(map(tuple, np.asarray(points).tolist()))


def _paint_leaf(species: str, rng, canvas: int) -> tuple[Image.Image, Image.Image, _Lesions]:
    """Leaf at `canvas` px: its mask, its colour layer (blade, stems, veins) and disease marks."""
    spec = _TABLE[species]
    shape, angle = _place(_leaf_shape(species, rng), rng, canvas, rng.uniform(*spec["size"]))
    base = _rgb([rng.normal(*hsv) for hsv in spec["hsv"]])
    tone = spec["vein_tone"] * rng.uniform(0.6, 1.4)
    vein = base + tone * ((np.array([225, 235, 170]) - base) if tone > 0 else base)

    mask = Image.new("L", (canvas, canvas), 0)
    colour = Image.new("RGB", (canvas, canvas), _colour_rgb(base))
    mdraw, cdraw = ImageDraw.Draw(mask), ImageDraw.Draw(colour)
    for poly in shape.polygons:
        mdraw.polygon(_polyline(poly), fill=255)
    stem_colour = _colour_rgb(base * 0.8 + np.array([40, 30, 10]))
    for line, width in shape.stems:
        mdraw.line(_polyline(line), fill=255, width=max(1, round(width)))
        cdraw.line(_polyline(line), fill=stem_colour, width=max(1, round(width)))
    for line, width in shape.veins:
        cdraw.line(_polyline(line), fill=_colour_rgb(vein), width=max(1, round(width)))

    marks = _Lesions(canvas)
    prob, names = spec["disease"]
    if names and rng.random() < prob:
        step = max(1, canvas // 64)
        ys, xs = np.nonzero(np.asarray(mask)[::step, ::step] > 128)
        inside = np.stack([xs, ys], 1) * step
        picked = [names[rng.integers(len(names))]]
        if rng.random() < 0.2:  # sometimes two problems at once
            picked.append(names[rng.integers(len(names))])
        for name in picked:
            if len(inside):
                _paint_lesions(rng, name, marks, inside, angle)
    return mask, colour, marks


def _wild_background(rng, size: int) -> Image.Image:
    """Cluttered natural-looking backdrop: gradient, blurred blobs and stray leaf fragments."""

    def earthy():
        return _rgb((rng.uniform(20, 150), rng.uniform(0.15, 0.7), rng.uniform(0.25, 0.85)))

    yy, xx = _grid(size)
    a = rng.uniform(0, 2 * np.pi)
    g = (xx * math.cos(a) + yy * math.sin(a) + 0.75) * (255 / 1.5)
    img = _tint(Image.new("RGB", (size, size), _colour_rgb(earthy())), _colour_rgb(earthy()), g)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(6, 18))):
        c = rng.uniform(-0.1, 1.1, 2) * size
        draw.polygon(_irregular(rng, c, rng.uniform(0.05, 0.25) * size), fill=_colour_rgb(earthy()))
    for _ in range(int(rng.integers(1, 4))):  # fragments of other leaves, out of focus
        frag = _leaflet(rng, (rng.uniform(0.6, 1.2), rng.uniform(0.6, 1.5)), rng.uniform(1.3, 3.5))
        m = _rotation(rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.2) * size)
        poly = frag.polygons[0] @ m.T + rng.uniform(-0.1, 1.1, 2) * size
        green = _rgb((rng.uniform(60, 130), rng.uniform(0.3, 0.8), rng.uniform(0.2, 0.7)))
        draw.polygon(_polyline(poly), fill=_colour_rgb(green))
    tex = _lowfreq(rng, int(rng.integers(8, 24)), size)[..., None]
    img = Image.fromarray((np.asarray(img, dtype=np.float32) * (0.8 + 0.4 * tex)).clip(0, 255).astype(np.uint8))
    img = img.filter(ImageFilter.GaussianBlur(size * rng.uniform(0.01, 0.04)))  # out of focus
    return _with_noise(rng, np.asarray(img, dtype=np.float32))


def draw_leaf(species: str, rng: np.random.Generator, image_size: int = 256, wild: bool = False) -> Image.Image:
    """One RGB image of a `species` leaf: black background, or cluttered scenery if `wild`."""
    if species not in _TABLE:
        raise ValueError(f"unknown species {species!r}; expected one of {', '.join(SPECIES)}")
    n = image_size
    bg_seed = int(rng.integers(2**32))  # drawn first, so a seed gives the same leaf with and without wild
    mask, colour, marks = _paint_leaf(species, rng, n * _SUPERSAMPLE)
    leaf = colour.reduce(_SUPERSAMPLE)
    if marks.colour is not None:
        leaf = Image.composite(marks.colour.reduce(_SUPERSAMPLE), leaf, marks.alpha.reduce(_SUPERSAMPLE))
    for m in marks.mottles:  # diffuse discolouration over the whole blade
        weight = ((_lowfreq(rng, m["freq"], n) - rng.uniform(0.3, 0.6)) * 4).clip(0, 1) * (m["strength"] * 255)
        leaf = _tint(leaf, _colour(m["hsv"]), weight)
    if marks.powder is not None:
        weight = np.asarray(marks.powder.reduce(_SUPERSAMPLE).filter(ImageFilter.GaussianBlur(n / 80))) * 0.8
        leaf = _tint(leaf, _colour(_LESIONS["powdery"]["hsv"]), weight)

    # lighting: a soft gradient across the leaf, blotchy texture, global exposure, sensor noise
    yy, xx = _grid(n)
    a = rng.uniform(0, 2 * np.pi)
    shade = 1 + rng.uniform(0, 0.35) * (xx * math.cos(a) + yy * math.sin(a))
    shade *= (0.9 + 0.2 * _lowfreq(rng, 6, n)) * rng.normal(1, 0.08)
    pixels = np.asarray(leaf, dtype=np.float32) * shade[..., None]
    leaf = _with_noise(rng, pixels)

    alpha = mask.reduce(_SUPERSAMPLE)
    if wild:
        background = _wild_background(np.random.default_rng(bg_seed), n)
    else:  # segmented like the real set: the background is exactly black
        background = Image.new("RGB", (n, n))
    return Image.composite(leaf, background, alpha)


def _tint(image: Image.Image, rgb: tuple[int, int, int], weight: np.ndarray) -> Image.Image:
    """Blend a flat colour into `image` where `weight` (0..255 per pixel) says."""
    mask = Image.fromarray(weight.clip(0, 255).astype(np.uint8), mode="L")
    return Image.composite(Image.new("RGB", image.size, rgb), image, mask)


def _with_noise(rng, pixels: np.ndarray) -> Image.Image:
    """Float RGB -> image with a little sensor noise (small integer noise is cheap to draw)."""
    amp = int(rng.integers(1, 7))
    pixels += rng.integers(-amp, amp + 1, pixels.shape, dtype=np.int8)
    return Image.fromarray(np.clip(pixels, 0, 255, out=pixels).astype(np.uint8), mode="RGB")


@functools.lru_cache(maxsize=8)
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates in [-0.5, 0.5), cached: every image of a size needs the same."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n - 0.5
    yy.setflags(write=False)  # shared between calls: nobody may change it in place
    xx.setflags(write=False)
    return yy, xx


def generate(
    out_dir, total: int = 560, image_size: int = 256, seed: int = 0, wild: bool = False, workers: int = 1
) -> dict[str, int]:
    """Write the data set as out_dir/<Species>/<species>_<index:05d>.png and return the counts.

    Every image has its own RNG seeded by (seed, class, index), so files are
    byte-identical for a seed whatever order, subset or number of `workers` draws
    them. workers > 1 draws in that many processes (about 2x faster on 2 cores;
    like any multiprocessing, call it from under `if __name__ == "__main__":`).
    Stale images of ours left by an earlier, larger run are removed so the folder
    matches the counts.
    """
    if image_size < 8:
        raise ValueError(f"image_size={image_size} is too small: use at least 8 pixels")
    counts = class_counts(total)
    root = Path(out_dir)
    jobs = []
    for class_idx, species in enumerate(SPECIES):
        folder = root / species
        folder.mkdir(parents=True, exist_ok=True)
        prefix = species.lower()
        names = [f"{prefix}_{i:05d}.png" for i in range(counts[species])]
        wanted = set(names)
        for old in folder.glob(f"{prefix}_*.png"):
            if re.fullmatch(rf"{prefix}_\d{{5}}\.png", old.name) and old.name not in wanted:
                old.unlink()
        jobs += [(species, class_idx, i, folder / name, image_size, seed, wild) for i, name in enumerate(names)]
    if workers > 1:
        # spawn, not fork: safe even when the caller already runs TensorFlow threads. Each worker
        # holds this process's lifeline, so a kill of the caller ends them too.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=lifeline.watch, initargs=(lifeline.end(),)
        ) as pool:
            list(pool.map(_write_one, jobs, chunksize=max(1, len(jobs) // (8 * workers))))
    else:
        for job in jobs:
            _write_one(job)
    return counts


def _write_one(job) -> None:
    species, class_idx, i, path, image_size, seed, wild = job
    rng = np.random.default_rng([seed, class_idx, i])
    draw_leaf(species, rng, image_size, wild).save(path, compress_level=1)
