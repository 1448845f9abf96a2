"""The numerics behind :mod:`cluster.demo`: hashing, the field lattice, crop curves, clouds.

Everything here is a pure, vectorised function of absolute coordinates and a seed, so any
window of any scene can be computed on its own and gives the same numbers as the whole
scene computed at once. Nothing here does I/O or imports Ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np

__all__ = [
    "CROPS",
    "CropModel",
    "BAND_NAMES",
    "SOIL",
    "VEGETATION",
    "CLOUD",
    "hash_u64",
    "uniform",
    "normal",
    "FieldLattice",
    "crop_of_fields",
    "ndvi_curve",
    "fc_from_ndvi",
    "NoiseStencil",
    "cloud_stencils",
    "cloud_density",
    "cloud_threshold",
    "noise_table",
    "noise_table_wrapped",
]

# Tags keep the hash streams of different purposes independent of each other.
TAG_COL, TAG_ROW, TAG_CROP, TAG_FIELD, TAG_SURVEY = 11, 12, 13, 14, 15
TAG_YEAR, TAG_REGION_YEAR, TAG_REGION, TAG_YIELD, TAG_WEATHER = 21, 22, 23, 24, 25
TAG_CLOUD1, TAG_CLOUD2, TAG_COVER, TAG_STRIP, TAG_NOISE = 31, 32, 33, 35, 36

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_MASK64 = (1 << 64) - 1


def _u64(value: object) -> np.ndarray:
    """Any int or int array as a >= 1-d uint64 array (two's complement for negatives).

    Always arrays, never NumPy scalars: scalar integer maths warns on wrap-around and the
    test suite turns warnings into errors, whereas array maths wraps silently, as wanted.
    """
    a = np.atleast_1d(np.asarray(value))
    if a.dtype == np.uint64:
        return a
    if a.dtype.kind == "O":  # Python ints beyond int64
        return np.array([int(v) & _MASK64 for v in a.ravel()], dtype=np.uint64).reshape(a.shape)
    return a.astype(np.int64).view(np.uint64)


def _mix(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (a bijection on 64-bit words with full avalanche)."""
    z = z + _GOLDEN
    z ^= z >> _S30
    z *= _M1
    z ^= z >> _S27
    z *= _M2
    z ^= z >> _S31
    return z


def hash_u64(seed: int, tag: int, *keys: object) -> np.ndarray:
    """A 64-bit hash of ``(seed, tag, *keys)``; array keys broadcast against each other.

    >>> int(hash_u64(7, 1, 3)[0]) == int(hash_u64(7, 1, np.array([3]))[0])
    True
    >>> bool(hash_u64(7, 1, 3)[0] != hash_u64(8, 1, 3)[0])
    True
    """
    h = _mix(_u64(seed) ^ _u64(tag * 0x632BE59BD9B4E019 & _MASK64))
    for k in keys:
        h = _mix(h ^ _u64(k))
    return h


def uniform(seed: int, tag: int, *keys: object) -> np.ndarray:
    """Uniform floats in ``[0, 1)`` from :func:`hash_u64` (53 random bits each).

    >>> u = uniform(1, 2, np.arange(10_000))
    >>> bool(0.0 <= u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.02)
    True
    """
    return (hash_u64(seed, tag, *keys) >> _S11).astype(np.float64) * (1.0 / (1 << 53))


def normal(seed: int, tag: int, *keys: object) -> np.ndarray:
    """Standard normal floats (Box-Muller on two independent hash streams)."""
    u1 = uniform(seed, tag, *keys, 1)
    u2 = uniform(seed, tag, *keys, 2)
    z: np.ndarray = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * math.pi * u2)
    return z


# --------------------------------------------------------------------------------------
# Crops
# --------------------------------------------------------------------------------------


class CropModel(NamedTuple):
    """One crop's class code, sown-area share, NDVI curve and yield level.

    The curve is a double logistic ``g(t) = 1/(1+exp(-r1 (t-t1))) + 1/(1+exp(r2 (t-t2))) - 1``
    rescaled so that NDVI is ``ndvi_min`` off-season and ``ndvi_peak`` at the midpoint
    ``(t1 + t2) / 2``, the peak day of year.
    """

    code: int
    name: str
    share: float
    t1_doy: float
    t2_doy: float
    r1: float
    r2: float
    ndvi_min: float
    ndvi_peak: float
    base_yield_t_ha: float | None

    @property
    def peak_doy(self) -> float:
        return 0.5 * (self.t1_doy + self.t2_doy)

    @property
    def sos_doy(self) -> float:
        """Start of season: ~12 % of the green-up done (two e-folding times before t1)."""
        return self.t1_doy - 2.0 / self.r1

    @property
    def eos_doy(self) -> float:
        """End of season: ~88 % of the senescence done (harvest in grain crops)."""
        return self.t2_doy + 2.0 / self.r2


# Northern Kazakhstan (Kostanay / Akmola). Spring wheat is sown mid-May and peaks in mid
# July; winter rye greens up in April and peaks in early June; maize (silage) is sown late
# and peaks in August. Shares are demo-friendly (real northern Kazakhstan is ~70 % wheat
# and almost no maize), so every class has enough pixels in a small demo.
CROPS: tuple[CropModel, ...] = (
    CropModel(1, "wheat", 0.50, 172.0, 224.0, 0.10, 0.09, 0.16, 0.80, 1.8),
    CropModel(2, "oats", 0.10, 160.0, 212.0, 0.10, 0.09, 0.16, 0.74, 1.7),
    CropModel(3, "rye", 0.07, 128.0, 184.0, 0.09, 0.10, 0.18, 0.76, 1.9),
    CropModel(4, "maize", 0.07, 190.0, 246.0, 0.09, 0.08, 0.15, 0.82, 5.0),
    CropModel(5, "fallow", 0.12, 150.0, 230.0, 0.05, 0.05, 0.15, 0.19, None),
    CropModel(6, "grassland", 0.14, 132.0, 198.0, 0.06, 0.05, 0.22, 0.47, None),
)

_N = len(CROPS) + 1  # arrays indexed by crop code; code 0 (no data) is a dummy row
_T1 = np.array([0.0] + [c.t1_doy for c in CROPS])
_T2 = np.array([1.0] + [c.t2_doy for c in CROPS])
_R1 = np.array([0.1] + [c.r1 for c in CROPS])
_R2 = np.array([0.1] + [c.r2 for c in CROPS])
_VMIN = np.array([0.0] + [c.ndvi_min for c in CROPS])
_VPEAK = np.array([0.0] + [c.ndvi_peak for c in CROPS])
_CUM_SHARE = np.cumsum([c.share for c in CROPS]) / sum(c.share for c in CROPS)


def _g(t: np.ndarray, code: np.ndarray) -> np.ndarray:
    s1 = 1.0 / (1.0 + np.exp(-_R1[code] * (t - _T1[code])))
    s2 = 1.0 / (1.0 + np.exp(_R2[code] * (t - _T2[code])))
    g: np.ndarray = np.maximum(s1 + s2 - 1.0, 0.0)
    return g


_G_PEAK = _g(0.5 * (_T1 + _T2), np.arange(_N))
_G_PEAK[0] = 1.0


def ndvi_curve(code: np.ndarray, doy: np.ndarray, amplitude: np.ndarray | float = 1.0) -> np.ndarray:
    """NDVI of crop ``code`` on day of year ``doy`` (float arrays broadcast).

    ``amplitude`` scales the seasonal rise above ``ndvi_min`` (weather, field fertility).

    >>> wheat = np.array([1])
    >>> round(float(ndvi_curve(wheat, np.array([198.0]))[0]), 3)
    0.8
    >>> bool(ndvi_curve(wheat, np.array([120.0]))[0] < 0.25)
    True
    """
    code = np.asarray(code)
    g = _g(np.asarray(doy, dtype=np.float64), code) / _G_PEAK[code]
    value: np.ndarray = _VMIN[code] + (_VPEAK[code] - _VMIN[code]) * np.asarray(amplitude) * g
    return value


def crop_of_fields(seed: int, field_id: np.ndarray) -> np.ndarray:
    """The crop code (1..6) of each field: a seeded hash of the field id, fixed over years.

    >>> codes = crop_of_fields(7, np.arange(20_000))
    >>> bool(np.bincount(codes).argmax() == 1)  # wheat dominant
    True
    """
    u = uniform(seed, TAG_CROP, field_id)
    return (np.searchsorted(_CUM_SHARE, u, side="right") + 1).clip(1, len(CROPS)).astype(np.uint8)


# --------------------------------------------------------------------------------------
# Spectra: blue, green, red, nir, swir16 surface reflectance
# --------------------------------------------------------------------------------------

BAND_NAMES = ("blue", "green", "red", "nir", "swir16")
SOIL = np.array([0.065, 0.095, 0.135, 0.185, 0.290])
"""Dry chestnut soil / stubble: NDVI ~0.16."""
VEGETATION = np.array([0.025, 0.075, 0.030, 0.460, 0.190])
"""Full green canopy: NDVI ~0.88."""
CLOUD = np.array([0.62, 0.60, 0.58, 0.56, 0.38])
"""Optically thick cloud: bright and flat in the visible and NIR, darker in the SWIR."""


def fc_from_ndvi(ndvi: np.ndarray) -> np.ndarray:
    """Vegetation cover fraction whose soil/vegetation mix has the given NDVI, in [0, 1].

    Linear mixing ``rho = fc * VEGETATION + (1 - fc) * SOIL`` makes NDVI, EVI, NDWI, ...
    mutually consistent; this inverts NDVI(fc) exactly.

    >>> fc = fc_from_ndvi(np.array([0.5]))
    >>> rho = fc * VEGETATION[:, None] + (1 - fc) * SOIL[:, None]
    >>> round(float(((rho[3] - rho[2]) / (rho[3] + rho[2]))[0]), 6)
    0.5
    """
    sn, sr = SOIL[3], SOIL[2]
    dn, dr = VEGETATION[3] - sn, VEGETATION[2] - sr
    v = np.asarray(ndvi, dtype=np.float64)
    fc = (v * (sn + sr) - (sn - sr)) / ((dn - dr) - v * (dn + dr))
    cover: np.ndarray = np.clip(fc, 0.0, 1.0)
    return cover


# --------------------------------------------------------------------------------------
# Fields: a jittered lattice in EPSG:6933 coordinates
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldLattice:
    """Fields as a jittered lattice: columns of jittered width, each cut into rows of
    jittered height (cut lines differ between columns), so fields differ in size and shape.

    Column ``i`` spans ``x in [col_edge(i), col_edge(i+1))``; field ``(i, j)`` spans
    ``y in [row_edge(i, j), row_edge(i, j+1))``. Edges move by at most ``jitter`` of a cell,
    under half a cell, so a point's field is one of three candidates per axis.
    """

    seed: int
    cell_x: float
    """Nominal column width in EPSG:6933 x units."""
    cell_y: float
    """Nominal row height in EPSG:6933 y units."""
    jitter: float = 0.3

    def col_edge(self, i: np.ndarray) -> np.ndarray:
        u = uniform(self.seed, TAG_COL, i)
        return (np.asarray(i, dtype=np.float64) + self.jitter * (2.0 * u - 1.0)) * self.cell_x

    def row_edge(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        u = uniform(self.seed, TAG_ROW, i, j)
        return (np.asarray(j, dtype=np.float64) + self.jitter * (2.0 * u - 1.0)) * self.cell_y

    def locate(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Column and row index (int64 arrays) of the field containing each point."""
        i = np.floor(x / self.cell_x).astype(np.int64)
        i = i - (x < self.col_edge(i)) + (x >= self.col_edge(i + 1))
        j = np.floor(y / self.cell_y).astype(np.int64)
        j = j - (y < self.row_edge(i, j)) + (y >= self.row_edge(i, j + 1))
        return i, j

    @staticmethod
    def field_id(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """A unique int64 id per field: ``i * 2**32 + j``.

        >>> int(FieldLattice.field_id(np.array([3]), np.array([-2]))[0])
        12884901886
        """
        return np.asarray(i, dtype=np.int64) * (1 << 32) + np.asarray(j, dtype=np.int64)


# --------------------------------------------------------------------------------------
# Clouds: two octaves of value noise in EPSG:6933 coordinates, per acquisition
# --------------------------------------------------------------------------------------

CLOUD_OCTAVES = ((2600.0, 0.65, TAG_CLOUD1), (900.0, 0.35, TAG_CLOUD2))
"""(lattice spacing in EPSG:6933 units, weight, hash tag): km-scale blobs with ragged edges."""


class NoiseStencil(NamedTuple):
    """Where points fall on one value-noise lattice: computed once per window, reused for
    every date (only the lattice values change with the date)."""

    ix0: int
    iy0: int
    nx: int
    ny: int
    k: np.ndarray
    """Flat index of each point's south-west lattice node in the window's lattice."""
    sx: np.ndarray
    sy: np.ndarray
    """Smoothstep weights (float32)."""

    @classmethod
    def build(cls, x: np.ndarray, y: np.ndarray, spacing: float) -> "NoiseStencil":
        gx = np.asarray(x, dtype=np.float64) / spacing
        gy = np.asarray(y, dtype=np.float64) / spacing
        fx, fy = np.floor(gx), np.floor(gy)
        ix, iy = fx.astype(np.int64), fy.astype(np.int64)
        fx = (gx - fx).astype(np.float32)
        fy = (gy - fy).astype(np.float32)
        ix0, iy0 = int(ix.min()), int(iy.min())
        nx, ny = int(ix.max()) - ix0 + 2, int(iy.max()) - iy0 + 2
        k = ((iy - iy0) * nx + (ix - ix0)).astype(np.int32 if nx * ny < 2**31 else np.int64)
        sx = fx * fx * (np.float32(3.0) - np.float32(2.0) * fx)
        sy = fy * fy * (np.float32(3.0) - np.float32(2.0) * fy)
        return cls(ix0, iy0, nx, ny, k, sx, sy)

    def evaluate(self, seed: int, tag: int, key: int) -> np.ndarray:
        """Value noise in [0, 1] (float32) at the stencil's points."""
        # Each node's value is a hash of its absolute index, so windows agree where they meet.
        lat = uniform(seed, tag, key, np.arange(self.ix0, self.ix0 + self.nx)[None, :],
                      np.arange(self.iy0, self.iy0 + self.ny)[:, None]).astype(np.float32).ravel()
        k = self.k
        a, b = lat[k], lat[k + 1]
        c, d = lat[k + self.nx], lat[k + self.nx + 1]
        bot = a + self.sx * (b - a)
        top = c + self.sx * (d - c)
        value: np.ndarray = bot + self.sy * (top - bot)
        return value


def cloud_stencils(x: np.ndarray, y: np.ndarray) -> list[NoiseStencil]:
    """One stencil per cloud octave for the given EPSG:6933 points."""
    return [NoiseStencil.build(x, y, spacing) for spacing, _, _ in CLOUD_OCTAVES]


def cloud_density(seed: int, key: int, x: np.ndarray | None = None, y: np.ndarray | None = None,
                  stencils: list[NoiseStencil] | None = None) -> np.ndarray:
    """Smooth cloud density in [0, 1] (float32) at EPSG:6933 points for acquisition ``key``.

    Pass ``stencils`` (from :func:`cloud_stencils`) to reuse the point geometry across dates.
    """
    st = stencils if stencils is not None else cloud_stencils(x, y)  # type: ignore[arg-type]
    out = np.zeros(st[0].k.shape, dtype=np.float32)
    for s, (_, weight, tag) in zip(st, CLOUD_OCTAVES, strict=True):
        out += np.float32(weight) * s.evaluate(seed, tag, key)
    return out


@lru_cache(maxsize=1)
def _density_sample() -> np.ndarray:
    # The distribution of cloud_density over space does not depend on the seed or the
    # date; a fixed sample of it turns a wanted cloud cover into a density threshold.
    # Hash-based rather than numpy.random so the thresholds never change with NumPy.
    n = np.arange(200_000)
    x = uniform(20240501, 1, n) * 2.0e5
    y = uniform(20240501, 2, n) * 2.0e5
    return np.sort(cloud_density(12345, 0, x, y))


@lru_cache(maxsize=8)
def noise_table(seed: int, size: int = 512) -> np.ndarray:
    """A ``(size, size)`` float32 table of standard normals: pixel noise is read from it at
    (row, col) offsets hashed per scene, date and band (periodic every ``size`` pixels)."""
    return normal(seed, TAG_NOISE, np.arange(size * size)).astype(np.float32).reshape(size, size)


@lru_cache(maxsize=8)
def noise_table_wrapped(seed: int, size: int = 512) -> np.ndarray:
    """:func:`noise_table` tiled 2 x 2, so any window up to ``size`` pixels is a slice."""
    return np.tile(noise_table(seed, size), (2, 2))


def cloud_threshold(cover: float) -> float:
    """The density above which a fraction ``cover`` of the area is cloud (inf for none).

    >>> s = _density_sample()
    >>> round(float(np.mean(s > cloud_threshold(0.2))), 2)
    0.2
    """
    if cover <= 0.0:
        return math.inf
    return float(np.quantile(_density_sample(), 1.0 - min(cover, 0.99)))
