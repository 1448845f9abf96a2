"""Spectral-index kernels: a registry of formulas and fused CPU (numba) / GPU (numba.cuda) passes.

The whole catalogue is registered below, one line per index, so it reads in one place. Formulas
and default constants follow Awesome Spectral Indices (spyndex 0.12); each kernel records the
spyndex key it matches (``Kernel.spyndex_name``).

Typical use, per tile, with buffers reused across tiles::

    out = {name: np.empty(shape, np.float32) for name in ("ndvi", "evi")}
    compute(["ndvi", "evi"], {"nir": nir, "red": red, "blue": blue}, band_info, out=out)

Nothing here imports Ray; CuPy is imported only inside GPU functions when inputs are CuPy arrays.
"""

from __future__ import annotations

from cluster.kernels import burn, chlorophyll, vegetation, water
from cluster.kernels._compute import compute
from cluster.kernels._device import gpu_available, set_default_device
from cluster.kernels._gpu import GpuLaunch
from cluster.kernels._reference import compute_reference
from cluster.kernels._registry import BANDS, Kernel, get_kernel, list_kernels, register_kernel
from cluster.kernels._spec import BandInfo, OutputLike, OutputSpec
from cluster.kernels._staging import TileStaging

__all__ = [
    "BANDS",
    "BandInfo",
    "GpuLaunch",
    "Kernel",
    "OutputLike",
    "OutputSpec",
    "TileStaging",
    "compute",
    "compute_reference",
    "get_kernel",
    "gpu_available",
    "list_kernels",
    "register_kernel",
    "set_default_device",
]

register_kernel(vegetation.NDVI)
register_kernel(vegetation.EVI)
register_kernel(vegetation.EVI2)
register_kernel(vegetation.SAVI)
register_kernel(vegetation.MSAVI)
register_kernel(vegetation.OSAVI)
register_kernel(vegetation.GNDVI)
register_kernel(vegetation.KNDVI)
register_kernel(vegetation.SR)
register_kernel(vegetation.WDRVI)
register_kernel(vegetation.MTVI2)
register_kernel(chlorophyll.CIGREEN)
register_kernel(chlorophyll.CIRE)
register_kernel(chlorophyll.NDRE)
register_kernel(water.NDWI)
register_kernel(water.NDMI)
register_kernel(burn.NBR)
