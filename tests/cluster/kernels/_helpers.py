"""Shared test inputs and the tolerance rule for comparing float32 kernels with float64 oracles."""

from __future__ import annotations

import itertools
import os
from typing import Mapping

import numpy as np
import pytest

from cluster.kernels import BANDS, BandInfo, Kernel, OutputSpec

SCENE_SHAPE = (2, 7, 9)
"""(time, y, x): small, but every special case below lands in it."""

DN_INFO = {b: BandInfo(scale=1e-4, offset=-0.1, nodata=0) for b in BANDS}
"""Sentinel-2 L2A (processing baseline >= 04.00) style: DN 1000 is reflectance 0, DN 0 is nodata."""

FLOAT_INFO = {b: BandInfo(nodata=-9999.0) for b in BANDS}
"""Float reflectance with a -9999 nodata marker (NaN is always missing too)."""

FLOAT_TOL = (1e-6, 1e-6)
"""(atol, rtol) of float32 kernels against float64 oracles on well-conditioned pixels."""


def make_dn_scene(seed: int = 0) -> dict[str, np.ndarray]:
    """uint16 DN for every canonical band, with nodata, zero reflectance and saturated pixels.

    Each band gets its own nodata pixels (so one band's nodata must not mask indices that do not
    read it), pixel [0, 0, :3] has every band at DN 1000 (reflectance 0: zero denominators) and
    pixel [1, -1, :] is saturated (65535).
    """
    rng = np.random.default_rng(seed)
    bands = {}
    for i, band in enumerate(BANDS):
        dn = rng.integers(1001, 9000, SCENE_SHAPE, dtype=np.uint16)
        flat = dn.reshape(-1)
        flat[(np.arange(flat.size) % (7 + i)) == i] = 0  # this band's own nodata pattern
        dn[0, 0, :3] = 1000
        dn[1, -1, :] = 65535
        dn[1, 2, 4] = 1001 + 37 * i  # tiny positive reflectances
        bands[band] = dn
    return bands


def make_float_scene(seed: int = 0) -> dict[str, np.ndarray]:
    """float32 reflectance from :func:`make_dn_scene`, with NaN and -9999 sprinkled in."""
    bands = {}
    for i, (band, dn) in enumerate(make_dn_scene(seed).items()):
        refl = (dn.astype(np.float64) * 1e-4 - 0.1).astype(np.float32)
        refl[dn == 0] = np.nan
        refl[0, 3, (i % 9)] = -9999.0
        bands[band] = refl
    return bands


def own_missing(kernel: Kernel, bands: Mapping[str, np.ndarray],
                info: Mapping[str, BandInfo]) -> np.ndarray:
    """True where a band the kernel reads is nodata or NaN."""
    miss = np.zeros(np.shape(bands[kernel.bands[0]]), dtype=bool)
    for b in kernel.bands:
        arr = np.asarray(bands[b])
        nodata = info[b].nodata if b in info else None
        if arr.dtype.kind == "f":
            miss |= np.isnan(arr)
        if nodata is not None:
            miss |= arr == nodata
    return miss


def reflectance(bands: Mapping[str, np.ndarray], info: Mapping[str, BandInfo],
                names: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {b: np.asarray(bands[b], dtype=np.float64) * info[b].scale + info[b].offset
            for b in names}


def condition_spread(kernel: Kernel, refl: Mapping[str, np.ndarray]) -> np.ndarray:
    """How much the float64 oracle moves when every input moves by a few float32 roundings.

    Float32 evaluation is (backward-)stable for these formulas: its error is what the exact
    formula gives on inputs perturbed by a few units in the last place. So the honest tolerance
    is this spread; it is huge (or NaN) exactly where a denominator or a sqrt argument crosses
    zero, and those pixels cannot be compared at float32 precision at all.
    """
    base = kernel.reference(**refl, **kernel.constants)
    spread = np.zeros(np.shape(base))
    rel, absolute = 1e-6, 1e-7
    with np.errstate(all="ignore"):
        for signs in itertools.product((-1.0, 1.0), repeat=len(kernel.bands)):
            moved = {b: refl[b] * (1 + s * rel) + s * absolute
                     for b, s in zip(kernel.bands, signs, strict=True)}
            spread = np.fmax(spread, np.abs(kernel.reference(**moved, **kernel.constants) - base))
            spread[np.isnan(base) != np.isnan(kernel.reference(**moved, **kernel.constants))] = np.inf
    spread[np.isnan(base)] = np.inf
    return spread


def assert_close_to_reference(ours: np.ndarray, kernel: Kernel, bands: Mapping[str, np.ndarray],
                              info: Mapping[str, BandInfo], *, max_spread: float = 1e-3) -> int:
    """Missing pixels must be NaN exactly; well-conditioned ones within float32 tolerance.

    Returns the number of pixels compared by value (so callers can assert it is not zero).
    """
    assert ours.dtype == np.float32
    missing = own_missing(kernel, bands, info)
    assert np.isnan(ours[missing]).all(), f"{kernel.name}: a missing pixel is not NaN"
    assert not np.isinf(ours).any(), f"{kernel.name}: inf in the output (must be NaN)"
    refl = reflectance(bands, info, kernel.bands)
    with np.errstate(all="ignore"):
        ref = kernel.reference(**refl, **kernel.constants)
    spread = condition_spread(kernel, refl)
    with np.errstate(invalid="ignore"):
        overflow = np.abs(ref) > np.finfo(np.float32).max
    assert np.isnan(ours[overflow]).all(), f"{kernel.name}: a float32 overflow is not NaN"
    atol, rtol = FLOAT_TOL
    ok = ~missing & ~overflow & (spread <= max_spread)
    tol = atol + rtol * np.abs(ref) + 2 * spread
    bad = ok & ~(np.abs(ours.astype(np.float64) - ref) <= tol)
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(
            f"{kernel.name}: {int(bad.sum())} pixels differ from the reference, first at {i}: "
            f"ours={ours[i]!r} ref={ref[i]!r} tol={tol[i]!r} inputs="
            f"{ {b: float(refl[b][i]) for b in kernel.bands} }")
    return int(ok.sum())


def assert_int16_packs(stored: np.ndarray, values: np.ndarray, spec: OutputSpec) -> None:
    """int16 output = float32 output packed: fill exactly where NaN, else within one step."""
    assert stored.dtype == np.int16
    nan = np.isnan(values)
    assert (stored[nan] == spec.fill_value).all()
    assert (stored[~nan] != spec.fill_value).all()
    lo, hi = spec.valid_range
    expected = np.clip((values[~nan].astype(np.float64) - spec.add_offset) / spec.scale_factor,
                       lo, hi)
    assert np.abs(stored[~nan] - expected).max(initial=0) <= 0.5 + 1e-3


def _real_gpu() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return False
    from numba import cuda

    return bool(cuda.is_available())


requires_gpu = pytest.mark.skipif(
    not _real_gpu(), reason="needs a real CUDA GPU; numba.cuda.is_available() is False here")
"""Put next to ``@pytest.mark.gpu`` on tests that need a real device."""
