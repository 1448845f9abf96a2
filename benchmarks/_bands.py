"""The synthetic Sentinel-2-like bands and the index cases shared by the CPU and GPU kernel benchmarks."""

from __future__ import annotations

import numpy as np

from cluster.kernels import BandInfo

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
BANDS_OF = {"ndvi": ("nir", "red"), "evi": ("nir", "red", "blue"), "savi": ("nir", "red"),
            "ndmi": ("nir", "swir16"), "nbr": ("nir", "swir22")}


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
