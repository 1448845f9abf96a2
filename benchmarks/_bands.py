"""The synthetic Sentinel-2-like bands and the index cases shared by the CPU and GPU kernel benchmarks."""

from __future__ import annotations

from typing import Any

import numpy as np

from cluster.kernels import BandInfo, get_kernel

SCALE = np.float32(1e-4)
OFFSET = np.float32(-0.1)
NODATA = 0
INFO = {b: BandInfo(scale=1e-4, offset=-0.1, nodata=NODATA)
        for b in ("blue", "red", "nir", "swir16", "swir22")}
CASES: dict[str, tuple[str, ...]] = {
    "ndvi": ("ndvi",),
    "evi": ("evi",),
    "five (ndvi evi savi ndmi nbr)": ("ndvi", "evi", "savi", "ndmi", "nbr"),
}


def bands_for(names: tuple[str, ...]) -> tuple[str, ...]:
    """The bands the indices ``names`` read, from the kernel registry, sorted.

    >>> bands_for(("ndvi", "ndmi"))
    ('nir', 'red', 'swir16')
    """
    return tuple(sorted({b for n in names for b in get_kernel(n).bands}))


def make_bands(size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """uint16 DN like Sentinel-2 L2A over farmland, ~0.5% nodata pixels in each band.

    Bands follow a per-pixel vegetation fraction (bare soil to dense crop) plus noise, so every
    index stays in its usual range and no denominator is near zero.
    """
    rng = np.random.default_rng(seed)
    veg = rng.random((size, size), dtype=np.float32)
    base = {  # (DN at bare soil, DN change towards dense vegetation)
        "blue": (1700, -500), "red": (2300, -1100), "nir": (3300, 2500),
        "swir16": (3200, -1200), "swir22": (2700, -1400),
    }
    bands = {}
    for band, (soil, slope) in base.items():
        dn = veg * np.float32(slope)
        dn += np.float32(soil)
        dn += rng.normal(0, 60, (size, size)).astype(np.float32)
        dn = dn.astype(np.uint16)
        holes = rng.integers(0, dn.size, dn.size // 200)
        dn.reshape(-1)[holes] = NODATA
        bands[band] = dn
    return bands


def expression_indices(bands: dict[str, Any], names: tuple[str, ...], xp: Any = np) -> dict[str, Any]:
    """Plain array expressions, as a NumPy (or, with ``xp=cupy``, CuPy) user writes them:
    reflectance arrays, NaN where a band is nodata, then each formula (x/0 as the library does it)."""
    r = {}
    for b in bands_for(names):
        refl = bands[b].astype(xp.float32) * SCALE + OFFSET
        refl[bands[b] == NODATA] = xp.nan
        r[b] = refl
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name in names:
            if name == "ndvi":
                out[name] = (r["nir"] - r["red"]) / (r["nir"] + r["red"])
            elif name == "evi":
                out[name] = np.float32(2.5) * (r["nir"] - r["red"]) / (
                    r["nir"] + np.float32(6) * r["red"] - np.float32(7.5) * r["blue"] + np.float32(1))
            elif name == "savi":
                out[name] = np.float32(1.5) * (r["nir"] - r["red"]) / (
                    r["nir"] + r["red"] + np.float32(0.5))
            elif name == "ndmi":
                out[name] = (r["nir"] - r["swir16"]) / (r["nir"] + r["swir16"])
            elif name == "nbr":
                out[name] = (r["nir"] - r["swir22"]) / (r["nir"] + r["swir22"])
    return out
