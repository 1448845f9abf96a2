"""Burn and disturbance indices."""

from __future__ import annotations

import numpy as np

from cluster.kernels._reference import safe_divide
from cluster.kernels._registry import Kernel

__all__ = ["NBR"]


def nbr_reference(nir: np.ndarray, swir22: np.ndarray) -> np.ndarray:
    return safe_divide(nir - swir22, nir + swir22)


NBR = Kernel(
    name="nbr", bands=("nir", "swir22"), expression="(nir - swir22) / (nir + swir22)",
    reference=nbr_reference, long_name="Normalized Burn Ratio", spyndex_name="NBR",
    source="https://doi.org/10.3133/ofr0211",
)
