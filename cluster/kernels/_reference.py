"""Plain NumPy helpers for the reference (oracle) implementations of the formulas.

The references are deliberately written apart from the kernel expressions (float64, NumPy
ufuncs), so that a bug in the code generator cannot hide in both.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from cluster.kernels._registry import check_bands, norm_kernels
from cluster.kernels._spec import BandInfo, norm_output

__all__ = ["compute_reference", "pack", "safe_divide", "safe_sqrt"]


def safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` in float64 with NaN where the denominator is 0.

    >>> safe_divide(np.array([1.0, 1.0]), np.array([2.0, 0.0]))
    array([0.5, nan])
    """
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    num, den = np.broadcast_arrays(num, den)
    result = np.full(num.shape, np.nan)
    np.divide(num, den, out=result, where=den != 0)
    return result


def safe_sqrt(value: np.ndarray) -> np.ndarray:
    """Square root in float64 with NaN (no warning) for negative values.

    >>> safe_sqrt(np.array([4.0, -1.0]))
    array([ 2., nan])
    """
    value = np.asarray(value, dtype=np.float64)
    result = np.full(value.shape, np.nan)
    np.sqrt(value, out=result, where=value >= 0)
    return result


def compute_reference(
    names: Any,
    bands: Mapping[str, Any],
    band_info: Mapping[str, Any] | None = None,
    *,
    output: Any = "float32",
    as_float64: bool = False,
) -> dict[str, np.ndarray]:
    """The plain-NumPy oracle for :func:`cluster.kernels.compute` (slow, many temporaries).

    Same contract as ``compute`` on the CPU: DN -> reflectance (``DN * scale + offset``, float64),
    missing where any needed band equals nodata or is NaN, each kernel's ``reference`` formula,
    then the output conversion. With ``as_float64=True`` the float64 values are returned before
    packing (for tolerance checks).

    Example:
        >>> dn = {"nir": np.array([4000, 0], np.uint16), "red": np.array([1000, 0], np.uint16)}
        >>> from cluster.kernels import BandInfo
        >>> info = {b: BandInfo(scale=1e-4, nodata=0) for b in dn}
        >>> compute_reference("ndvi", dn, info, as_float64=True)["ndvi"]
        array([0.6, nan])
    """
    kernels = norm_kernels(names)
    spec = norm_output(output)
    check_bands(kernels, bands)
    infos = band_info or {}
    refl: dict[str, np.ndarray] = {}
    missing: dict[str, np.ndarray] = {}
    for band in {b for k in kernels for b in k.bands}:
        dn = np.asarray(bands[band])
        info = infos.get(band, BandInfo())
        values = dn.astype(np.float64)
        miss = np.isnan(values)
        if info.nodata is not None and not np.isnan(info.nodata):
            miss |= dn == info.nodata
        with np.errstate(over="ignore", invalid="ignore"):
            refl[band] = values * info.scale + info.offset
        missing[band] = miss
    results: dict[str, np.ndarray] = {}
    for k in kernels:
        with np.errstate(over="ignore", invalid="ignore"):
            value = np.asarray(k.reference(**{b: refl[b] for b in k.bands}, **k.constants),
                               dtype=np.float64)
        miss = np.zeros(value.shape, dtype=bool)
        for b in k.bands:
            miss |= missing[b]
        value = np.where(miss, np.nan, value)
        results[k.name] = value if as_float64 else pack(value, spec)
    return results


def pack(value: np.ndarray, spec: Any) -> np.ndarray:
    """Convert float64 index values to ``spec``'s dtype the way the fused kernels do.

    Values beyond float32's range (and inf) become missing, as in the kernels.

    >>> from cluster.kernels import OutputSpec
    >>> pack(np.array([0.61237, -2.0, 9.0, np.nan, 1e45]), OutputSpec.int16())
    array([  6124, -20000,  32767, -32768, -32768], dtype=int16)
    """
    with np.errstate(over="ignore", invalid="ignore"):
        value = np.where(np.abs(value) <= np.finfo(np.float32).max, value, np.nan)  # inf -> NaN
    if spec.dtype == "float32":
        return value.astype(np.float32)
    lo, hi = spec.valid_range
    with np.errstate(over="ignore", invalid="ignore"):
        q = np.clip((value - spec.add_offset) / spec.scale_factor, lo, hi)
        q = np.where(q >= 0, np.floor(q + 0.5), np.ceil(q - 0.5))  # half away from zero
    stored = np.where(np.isnan(q), spec.fill_value, q)
    packed: np.ndarray = stored.astype(np.int16)
    return packed
