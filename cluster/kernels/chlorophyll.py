"""Chlorophyll and red-edge indices (canopy chlorophyll / nitrogen status)."""

from __future__ import annotations

import numpy as np

from cluster.kernels._reference import safe_divide
from cluster.kernels._registry import Kernel

__all__ = ["CIGREEN", "CIRE", "NDRE"]


def cigreen_reference(nir: np.ndarray, green: np.ndarray) -> np.ndarray:
    return safe_divide(nir, green) - 1.0


def cire_reference(nir: np.ndarray, rededge1: np.ndarray) -> np.ndarray:
    return safe_divide(nir, rededge1) - 1.0


def ndre_reference(nir: np.ndarray, rededge1: np.ndarray) -> np.ndarray:
    return safe_divide(nir - rededge1, nir + rededge1)


CIGREEN = Kernel(
    name="cigreen", bands=("nir", "green"), expression="nir / green - 1.0",
    reference=cigreen_reference, long_name="Chlorophyll Index Green", spyndex_name="CIG",
    source="https://doi.org/10.1078/0176-1617-00887",
)
CIRE = Kernel(
    name="cire", bands=("nir", "rededge1"), expression="nir / rededge1 - 1.0",
    reference=cire_reference, long_name="Chlorophyll Index Red Edge", spyndex_name="CIRE",
    source="https://doi.org/10.1078/0176-1617-00887",
)
NDRE = Kernel(
    # spyndex calls it NDREI and uses RE1 (Sentinel-2 B05, 705 nm).
    name="ndre", bands=("nir", "rededge1"), expression="(nir - rededge1) / (nir + rededge1)",
    reference=ndre_reference, long_name="Normalized Difference Red Edge Index",
    spyndex_name="NDREI", source="https://doi.org/10.1016/1011-1344(93)06963-4",
)
