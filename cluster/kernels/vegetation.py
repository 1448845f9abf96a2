"""Vegetation indices: NDVI and its soil-, atmosphere- and saturation-corrected relatives.

Formulas and default constants follow Awesome Spectral Indices (spyndex 0.12); each kernel's
``spyndex_name`` names the entry it matches.
"""

from __future__ import annotations

import numpy as np

from cluster.kernels._reference import safe_divide, safe_sqrt
from cluster.kernels._registry import Kernel

__all__ = ["NDVI", "EVI", "EVI2", "SAVI", "MSAVI", "OSAVI", "GNDVI", "KNDVI", "SR", "WDRVI", "MTVI2"]


def ndvi_reference(nir: np.ndarray, red: np.ndarray) -> np.ndarray:
    return safe_divide(nir - red, nir + red)


def evi_reference(nir: np.ndarray, red: np.ndarray, blue: np.ndarray, *,
                  G: float, C1: float, C2: float, L: float) -> np.ndarray:
    return G * safe_divide(nir - red, nir + C1 * red - C2 * blue + L)


def evi2_reference(nir: np.ndarray, red: np.ndarray, *, G: float, L: float) -> np.ndarray:
    return G * safe_divide(nir - red, nir + 2.4 * red + L)


def savi_reference(nir: np.ndarray, red: np.ndarray, *, L: float) -> np.ndarray:
    return (1.0 + L) * safe_divide(nir - red, nir + red + L)


def msavi_reference(nir: np.ndarray, red: np.ndarray) -> np.ndarray:
    msavi: np.ndarray = 0.5 * (2.0 * nir + 1.0 - safe_sqrt(np.square(2.0 * nir + 1.0) - 8.0 * (nir - red)))
    return msavi


def osavi_reference(nir: np.ndarray, red: np.ndarray) -> np.ndarray:
    return safe_divide(nir - red, nir + red + 0.16)


def gndvi_reference(nir: np.ndarray, green: np.ndarray) -> np.ndarray:
    return safe_divide(nir - green, nir + green)


def kndvi_reference(nir: np.ndarray, red: np.ndarray) -> np.ndarray:
    kndvi: np.ndarray = np.tanh(np.square(safe_divide(nir - red, nir + red)))
    return kndvi


def sr_reference(nir: np.ndarray, red: np.ndarray) -> np.ndarray:
    return safe_divide(nir, red)


def wdrvi_reference(nir: np.ndarray, red: np.ndarray, *, alpha: float) -> np.ndarray:
    return safe_divide(alpha * nir - red, alpha * nir + red)


def mtvi2_reference(nir: np.ndarray, green: np.ndarray, red: np.ndarray) -> np.ndarray:
    numerator = 1.5 * (1.2 * (nir - green) - 2.5 * (red - green))
    inner = np.square(2.0 * nir + 1.0) - (6.0 * nir - 5.0 * safe_sqrt(red)) - 0.5
    return safe_divide(numerator, safe_sqrt(inner))


NDVI = Kernel(
    name="ndvi", bands=("nir", "red"), expression="(nir - red) / (nir + red)",
    reference=ndvi_reference, long_name="Normalized Difference Vegetation Index",
    spyndex_name="NDVI", source="https://ntrs.nasa.gov/citations/19740022614",
)
EVI = Kernel(
    name="evi", bands=("nir", "red", "blue"),
    expression="G * (nir - red) / (nir + C1 * red - C2 * blue + L)",
    constants={"G": 2.5, "C1": 6.0, "C2": 7.5, "L": 1.0}, reference=evi_reference,
    long_name="Enhanced Vegetation Index", spyndex_name="EVI",
    source="https://doi.org/10.1016/S0034-4257(96)00112-5",
)
EVI2 = Kernel(
    name="evi2", bands=("nir", "red"), expression="G * (nir - red) / (nir + 2.4 * red + L)",
    constants={"G": 2.5, "L": 1.0}, reference=evi2_reference,
    long_name="Two-Band Enhanced Vegetation Index", spyndex_name="EVI2",
    source="https://doi.org/10.1016/j.rse.2008.06.006",
)
SAVI = Kernel(
    name="savi", bands=("nir", "red"), expression="(1.0 + L) * (nir - red) / (nir + red + L)",
    constants={"L": 0.5}, reference=savi_reference,
    long_name="Soil-Adjusted Vegetation Index", spyndex_name="SAVI",
    source="https://doi.org/10.1016/0034-4257(88)90106-X",
)
MSAVI = Kernel(
    name="msavi", bands=("nir", "red"),
    expression="0.5 * (2.0 * nir + 1.0 - sqrt((2.0 * nir + 1.0) ** 2 - 8.0 * (nir - red)))",
    reference=msavi_reference, long_name="Modified Soil-Adjusted Vegetation Index (MSAVI2)",
    spyndex_name="MSAVI", source="https://doi.org/10.1016/0034-4257(94)90134-1",
)
OSAVI = Kernel(
    name="osavi", bands=("nir", "red"), expression="(nir - red) / (nir + red + 0.16)",
    reference=osavi_reference, long_name="Optimized Soil-Adjusted Vegetation Index",
    spyndex_name="OSAVI", source="https://doi.org/10.1016/0034-4257(95)00186-7",
)
GNDVI = Kernel(
    name="gndvi", bands=("nir", "green"), expression="(nir - green) / (nir + green)",
    reference=gndvi_reference, long_name="Green Normalized Difference Vegetation Index",
    spyndex_name="GNDVI", source="https://doi.org/10.1016/S0034-4257(96)00072-7",
)
KNDVI = Kernel(
    # spyndex: (kNN - kNR) / (kNN + kNR) with the RBF kernel k(a, b) = exp(-(a-b)^2 / (2 sigma^2))
    # and sigma = 0.5 * (N + R); kNN = 1, so kNDVI = (1 - kNR) / (1 + kNR) = tanh(NDVI^2).
    name="kndvi", bands=("nir", "red"), expression="tanh(((nir - red) / (nir + red)) ** 2)",
    reference=kndvi_reference, long_name="Kernel NDVI (RBF kernel, sigma = (N + R) / 2)",
    spyndex_name="kNDVI", source="https://doi.org/10.1126/sciadv.abc7447",
)
SR = Kernel(
    name="sr", bands=("nir", "red"), expression="nir / red", reference=sr_reference,
    long_name="Simple Ratio", spyndex_name="SR", source="https://doi.org/10.2307/1936256",
)
WDRVI = Kernel(
    name="wdrvi", bands=("nir", "red"), expression="(alpha * nir - red) / (alpha * nir + red)",
    constants={"alpha": 0.1}, reference=wdrvi_reference,
    long_name="Wide Dynamic Range Vegetation Index", spyndex_name="WDRVI",
    source="https://doi.org/10.1078/0176-1617-01176",
)
MTVI2 = Kernel(
    name="mtvi2", bands=("nir", "green", "red"),
    expression=("1.5 * (1.2 * (nir - green) - 2.5 * (red - green)) / "
                "sqrt((2.0 * nir + 1.0) ** 2 - (6.0 * nir - 5.0 * sqrt(red)) - 0.5)"),
    reference=mtvi2_reference, long_name="Modified Triangular Vegetation Index 2",
    spyndex_name="MTVI2", source="https://doi.org/10.1016/j.rse.2003.12.013",
)
