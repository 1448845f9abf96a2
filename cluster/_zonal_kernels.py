"""Numba kernels and exact integer arithmetic behind :mod:`cluster.zonal`.

Why integers: float addition is not associative, so a sum of floats depends on the order in
which tiles (and the pixels inside them) are added. Here every quantity is accumulated as an
exact integer, so merging partials is integer addition: the result is bit-identical whatever
the tile order, the tiling, the number of workers or threads.

* A float32 value ``v`` is exactly ``m * 2**e * 2**-149`` with integers ``|m| < 2**24`` and
  ``0 <= e <= 253``. Sums of values are kept as an integer in units of ``2**-149``; sums of
  squares (``m*m * 2**(2e) * 2**-298``, exact) as an integer in units of ``2**-298``.
* Those integers are wide (up to ~300 and ~560 bits), so they are held as little-endian
  "limbs": ``value = sum(limb[j] * 2**(32*j))``, each limb an int64. While accumulating,
  limbs hold un-normalised carries (each value adds less than ``2**34`` to a limb, so a limb
  is safe for 2**29 values); :func:`normalize_limbs` then makes every limb but the last a
  digit in ``[0, 2**32)`` and puts the sign in the last one. Normalised limbs can be added
  limb-wise ~2**30 times before renormalising.
* Pixel areas are rounded to integer units of ``2**-16`` m² (a pixel of 1 m² is off by at
  most 8e-6 of itself, a 10 m pixel by 8e-8) and summed exactly in two limbs.

NaN and ±inf (float32 exponent field 255) count as missing.
"""

from __future__ import annotations

import numpy as np
from numba import njit

N_SUM_LIMBS = 10
"""Limbs for a sum of float32 values: 288 bits cover exponents 2**-149 .. 2**128 and the
headroom of the limb layout."""
N_SQ_LIMBS = 19
"""Limbs for a sum of squares: squares span 2**-298 .. 2**256."""
N_AREA_LIMBS = 2
SUM_UNIT_EXP = -149
"""A sum's integer is in units of ``2**SUM_UNIT_EXP``."""
SQ_UNIT_EXP = -298
AREA_UNIT_EXP = -16
"""Pixel areas are integers in units of ``2**AREA_UNIT_EXP`` square metres."""
MAX_TILE_PX = 2**28
"""Most pixels one kernel call accumulates before the limbs are normalised (overflow bound)."""

_M32 = np.int64(0xFFFFFFFF)
_M24 = np.int64(0xFFFFFF)


@njit(cache=True, nogil=True)
def presence(lab: np.ndarray, crop: np.ndarray, has_crop: bool, n_codes: int,  # pragma: no cover - compiled
              n_crop_codes: int) -> tuple[np.ndarray, np.int64]:
    """Which (region code, crop code) pairs occur; -1 flags a label >= n_codes."""
    tc_n = crop.shape[0]
    ny, nx = lab.shape
    seen = np.zeros((max(n_codes, 1), max(n_crop_codes, 1)), np.bool_)
    bad = np.int64(-1)
    for tc in range(tc_n if has_crop else 1):
        for y in range(ny):
            for x in range(nx):
                r = lab[y, x]
                if r < 0:
                    continue
                if r >= n_codes:
                    bad = max(bad, np.int64(r))
                    continue
                c = crop[tc, y, x] if has_crop else 0
                if c < 0:
                    continue
                seen[r, c] = True
    return seen, bad


@njit(cache=True, nogil=True)
def _flush_rows(row_n: np.ndarray, touched: np.ndarray, n_touched: int, q: np.int64,  # pragma: no cover
                out_lo: np.ndarray, out_hi: np.ndarray, out_off: int) -> None:
    """Add ``row_n[cell] * q`` (exact, split in two limbs) for every cell touched in a row."""
    qlo = q & 0xFFFFFFFF
    qhi = q >> 32
    for j in range(n_touched):
        cell = touched[j]
        n = row_n[cell]
        out_lo[out_off + cell] += n * qlo  # n <= 2**15 pixels a row, qlo < 2**32
        out_hi[out_off + cell] += n * qhi
        row_n[cell] = 0


@njit(cache=True, nogil=True)
def count_area(lab: np.ndarray, rlut: np.ndarray, crop: np.ndarray, clut: np.ndarray,  # pragma: no cover - compiled
                has_crop: bool, row_q: np.ndarray, n_r: int, n_c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels and exact area per (region, crop, crop-time); area is added once per row."""
    tc_n = crop.shape[0]
    ny, nx = lab.shape
    n_cell = n_r * n_c
    cnt = np.zeros(tc_n * n_cell, np.int64)
    a_lo = np.zeros(tc_n * n_cell, np.int64)
    a_hi = np.zeros(tc_n * n_cell, np.int64)
    row_n = np.zeros(max(n_cell, 1), np.int64)
    touched = np.zeros(max(n_cell, 1), np.int64)
    for tc in range(tc_n):
        off = tc * n_cell
        for y in range(ny):
            nt_ = 0
            prev = -1
            run_n = 0
            for x in range(nx):
                r = lab[y, x]
                if r < 0:
                    continue
                r = rlut[r]
                c = 0
                if has_crop:
                    c = crop[tc, y, x]
                    if c < 0:
                        continue
                    c = clut[c]
                cell = r * n_c + c
                if cell != prev:
                    if prev >= 0:
                        if row_n[prev] == 0:
                            touched[nt_] = prev
                            nt_ += 1
                        row_n[prev] += run_n
                    prev = cell
                    run_n = 0
                run_n += 1
            if prev >= 0:
                if row_n[prev] == 0:
                    touched[nt_] = prev
                    nt_ += 1
                row_n[prev] += run_n
            for j in range(nt_):
                cnt[off + touched[j]] += row_n[touched[j]]
            _flush_rows(row_n, touched, nt_, row_q[y], a_lo, a_hi, off)
    return cnt, a_lo, a_hi


@njit(cache=True, nogil=True)
def _buckets_to_limbs(bucket: np.ndarray, shift: np.ndarray, out: np.ndarray,  # pragma: no cover
                      n_limbs: int) -> None:
    """Add ``bucket[cell, e] * 2**(e*scale + shift)`` into ``out[cell, :]`` limbs (exact).

    ``bucket`` values are any int64; each is split into a low 32-bit digit and a signed high
    part, and each piece shifted by < 32 bits stays below 2**63.
    """
    n_cell, n_e = bucket.shape
    for cell in range(n_cell):
        for e in range(n_e):
            s = bucket[cell, e]
            if s == 0:
                continue
            pos = e * shift[0] + shift[1]
            lo = s & 0xFFFFFFFF
            hi = s >> 32
            k = pos >> 5
            r = pos & 31
            x = lo << r
            out[cell, k] += x & 0xFFFFFFFF
            out[cell, k + 1] += x >> 32
            x = hi << r  # |hi| < 2**31
            out[cell, k + 1] += x & 0xFFFFFFFF
            out[cell, k + 2] += x >> 32
            bucket[cell, e] = 0


@njit(cache=True, nogil=True)
def accumulate_values(lab: np.ndarray, rlut: np.ndarray, crop: np.ndarray, clut: np.ndarray,  # pragma: no cover
                       has_crop: bool, bits: np.ndarray, vals: np.ndarray, row_q: np.ndarray, n_r: int, n_c: int,
                       hist_lo: float, hist_scale: float, n_bins: int) -> tuple[np.ndarray, ...]:
    """Exact valid count, valid area, sum and sum of squares per (region, crop, time).

    Per pixel the mantissa is added, unshifted, into a bucket of its binary exponent (one
    integer add; 2**39 adds fit, far above a tile); buckets become limbs once per time step.
    """
    nt, ny, nx = bits.shape
    tc_n = crop.shape[0]
    n_cell = n_r * n_c
    nc1 = max(n_cell, 1)
    valid = np.zeros((nt, nc1), np.int64)
    va_lo = np.zeros(nt * nc1, np.int64)
    va_hi = np.zeros(nt * nc1, np.int64)
    s1 = np.zeros((nt, nc1, 10), np.int64)
    s2 = np.zeros((nt, nc1, 19), np.int64)
    hist = np.zeros((nt, nc1, max(n_bins, 0)), np.int64)
    vmin = np.full((nt, nc1), np.inf, np.float32)
    vmax = np.full((nt, nc1), -np.inf, np.float32)
    b1 = np.zeros((nc1, 254), np.int64)  # sum of signed mantissas per exponent
    b2l = np.zeros((nc1, 254), np.int64)  # low 24 bits of mantissa squares per exponent
    b2h = np.zeros((nc1, 254), np.int64)  # high 24 bits
    row_n = np.zeros(nc1, np.int64)
    touched = np.zeros(nc1, np.int64)
    sh1 = np.array([1, 0], np.int64)
    sh2l = np.array([2, 0], np.int64)
    sh2h = np.array([2, 24], np.int64)
    for t in range(nt):
        tc = t if tc_n > 1 else 0
        vt = valid[t]
        mn = vmin[t]
        mx = vmax[t]
        for y in range(ny):
            n_touch = 0
            prev = -1  # the current run's cell: counts, min and max stay in registers
            run_n = 0
            run_mn = np.float32(np.inf)
            run_mx = np.float32(-np.inf)
            for x in range(nx):
                r = lab[y, x]
                if r < 0:
                    continue
                r = rlut[r]
                c = 0
                if has_crop:
                    c = crop[tc, y, x]
                    if c < 0:
                        continue
                    c = clut[c]
                b = np.int64(bits[t, y, x])
                ef = (b >> 23) & 0xFF
                if ef == 255:  # NaN or inf: missing
                    continue
                cell = r * n_c + c
                if cell != prev:
                    if prev >= 0:
                        if row_n[prev] == 0:
                            touched[n_touch] = prev
                            n_touch += 1
                        row_n[prev] += run_n
                        mn[prev] = min(mn[prev], run_mn)
                        mx[prev] = max(mx[prev], run_mx)
                    prev = cell
                    run_n = 0
                    run_mn = np.float32(np.inf)
                    run_mx = np.float32(-np.inf)
                run_n += 1
                m = b & 0x7FFFFF
                e = np.int64(0)
                if ef > 0:
                    m |= 0x800000
                    e = ef - 1
                mm = m * m
                if b < 0:
                    b1[cell, e] -= m
                else:
                    b1[cell, e] += m
                b2l[cell, e] += mm & 0xFFFFFF
                b2h[cell, e] += mm >> 24
                v = vals[t, y, x]
                run_mn = min(run_mn, v)
                run_mx = max(run_mx, v)
                if n_bins > 0:
                    f = (np.float64(v) - hist_lo) * hist_scale
                    if f < 0.0:
                        j = 0
                    elif f >= n_bins:
                        j = n_bins - 1
                    else:
                        j = int(f)
                    hist[t, cell, j] += 1
            if prev >= 0:
                if row_n[prev] == 0:
                    touched[n_touch] = prev
                    n_touch += 1
                row_n[prev] += run_n
                mn[prev] = min(mn[prev], run_mn)
                mx[prev] = max(mx[prev], run_mx)
            for j in range(n_touch):
                vt[touched[j]] += row_n[touched[j]]
            _flush_rows(row_n, touched, n_touch, row_q[y], va_lo, va_hi, t * nc1)
        _buckets_to_limbs(b1, sh1, s1[t], 10)
        _buckets_to_limbs(b2l, sh2l, s2[t], 19)
        _buckets_to_limbs(b2h, sh2h, s2[t], 19)
    return valid, va_lo, va_hi, s1, s2, hist, vmin, vmax


def normalize_limbs(limbs: np.ndarray) -> np.ndarray:
    """Propagate carries along the last axis: digits in ``[0, 2**32)``, the sign in the last limb.

    The represented integer is unchanged; the representation becomes canonical, so two equal
    integers have equal limbs.

    >>> normalize_limbs(np.array([2**32 + 5, -1, 0]))
    array([5, 0, 0])
    >>> normalize_limbs(np.array([-1, 0]))
    array([4294967295,         -1])
    """
    out = np.array(limbs, dtype=np.int64, copy=True)
    carry = np.zeros(out.shape[:-1], np.int64)
    n = out.shape[-1]
    for j in range(n):
        x = out[..., j] + carry
        if j < n - 1:
            out[..., j] = x & _M32
            carry = x >> 32
        else:
            out[..., j] = x
    return out


def limbs_to_ints(limbs: np.ndarray) -> list[int]:
    """The exact Python integers held by normalised limbs, one per row of a 2-D array.

    >>> limbs_to_ints(np.array([[5, 1], [4294967295, -1]]))
    [4294967301, -1]
    """
    limbs = np.asarray(limbs, dtype=np.int64)
    if limbs.ndim != 2:
        raise ValueError(f"limbs must be 2-D (cells, limbs), got shape {limbs.shape!r}")
    n = limbs.shape[1]
    if limbs.shape[0] == 0:
        return []
    low = np.ascontiguousarray(limbs[:, : n - 1].astype("<u4"))
    shift = 32 * (n - 1)
    return [
        int.from_bytes(low[i].tobytes(), "little") + (int(limbs[i, n - 1]) << shift)
        for i in range(limbs.shape[0])
    ]
