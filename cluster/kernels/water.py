"""Water and moisture indices."""

from __future__ import annotations

import numpy as np

from cluster.kernels._reference import safe_divide
from cluster.kernels._registry import Kernel

__all__ = ["NDWI", "NDMI"]


def ndwi_reference(green: np.ndarray, nir: np.ndarray) -> np.ndarray:
    return safe_divide(green - nir, green + nir)


def ndmi_reference(nir: np.ndarray, swir16: np.ndarray) -> np.ndarray:
    return safe_divide(nir - swir16, nir + swir16)


NDWI = Kernel(
    # McFeeters (1996): open water from green and NIR (not Gao's NIR/SWIR "NDWI", that is NDMI).
    name="ndwi", bands=("green", "nir"), expression="(green - nir) / (green + nir)",
    reference=ndwi_reference, long_name="Normalized Difference Water Index (McFeeters)",
    spyndex_name="NDWI", source="https://doi.org/10.1080/01431169608948714",
)
NDMI = Kernel(
    name="ndmi", bands=("nir", "swir16"), expression="(nir - swir16) / (nir + swir16)",
    reference=ndmi_reference, long_name="Normalized Difference Moisture Index",
    spyndex_name="NDMI", source="https://doi.org/10.1016/S0034-4257(01)00318-2",
)
