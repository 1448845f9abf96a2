"""Exact, associative regional statistics: per tile partials that merge in any order.

Per (region, crop class, date, index) a tile yields: pixel count, area, valid-pixel count and
area, sum, sum of squares, min, max and optionally a fixed histogram (for quantiles). A worker
sends this :class:`TilePartial` (a few KiB, never pixels) to the driver; the driver adds them
with :func:`merge_partials` and turns the total into a tidy table with :func:`finalize`.

**Exactness.** Every additive quantity is an exact integer (see
:mod:`cluster._zonal_kernels`): sums of float32 values in units of 2**-149, sums of squares
in units of 2**-298, areas in units of 2**-16 m². Merging is integer addition, so the result is
bit-identical whatever the tile order, the tile size, the number of workers or nodes, and
``sum``/``mean``/``std`` are the correctly rounded float64 of the exact values (``std`` is
computed from exact integers, so it has no cancellation). ``min``/``max`` merge exactly too.
Quantiles come from a fixed histogram (exact counts; the value is interpolated inside a bin, so
it is off by at most one bin width).

**Rules.** Pixels belong to a region by the pixel-centre rule (see
:func:`cluster.regions.rasterize_regions`). NaN and ±inf are missing: they count in
``count_px``/``area_ha`` but not in ``valid_px``. Crop classes are integer codes; negative codes
are excluded; without a crop array every pixel is class :data:`ALL_CROPLAND` (0). ``mean`` and
``std`` are per pixel; on an equal-area grid (the default) that is also per area.

Example:
    >>> import numpy as np
    >>> labels = np.array([[0, 0], [1, -1]], np.int32)
    >>> ndvi = np.array([[[0.5, np.nan], [0.25, 0.9]]], np.float32)
    >>> p = accumulate_tile(labels, {"ndvi": ndvi}, region_ids=["a", "b"],
    ...                     row_area_m2=np.array([100.0, 100.0]), tile_id="r0_c0")
    >>> finalize(p)[["region_id", "count_px", "valid_px", "area_ha", "mean"]]
      region_id  count_px  valid_px  area_ha  mean
    0         a         2         1     0.02  0.50
    1         b         1         1     0.01  0.25

Nothing here imports Ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from cluster import _zonal_kernels as _k
from cluster.errors import DataError
from cluster.location import StoreLike, norm_store

__all__ = [
    "ALL_CROPLAND",
    "HistogramSpec",
    "TilePartial",
    "accumulate_tile",
    "merge_partials",
    "PartialMerger",
    "finalize",
    "write_statistics",
    "STAT_COLUMNS",
]

ALL_CROPLAND = 0
"""The crop class of every pixel when no crop array is given, and of ``True`` in a crop mask."""

STAT_COLUMNS = (
    "region_id", "name", "parent", "crop", "date", "index", "count_px", "valid_px",
    "valid_fraction", "area_ha", "valid_area_ha", "sum", "sum_sq", "mean", "std", "min", "max",
)
"""Columns of :func:`finalize`'s table, in order (quantile columns ``q<percent>`` follow)."""

_HA_PER_AREA_UNIT_DEN = 10_000 * 2 ** (-_k.AREA_UNIT_EXP)  # area unit -> hectares


@dataclass(frozen=True)
class HistogramSpec:
    """Fixed, mergeable histogram bins for approximate quantiles.

    Values below ``lo`` fall into the first bin and values at or above ``hi`` into the last,
    so a quantile is never outside ``[min, max]`` but is only resolved inside ``[lo, hi)``.
    """

    lo: float = -1.0
    """Lower edge of the first bin, in index units (NDVI: -1)."""
    hi: float = 1.0
    """Upper edge of the last bin."""
    n_bins: int = 200
    """Number of equal bins; a quantile is off by at most ``(hi - lo) / n_bins``
    (NDVI default: 0.01). Memory: 8 bytes per bin per (region, crop, date, index)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lo) and math.isfinite(self.hi) and self.lo < self.hi):
            raise DataError(f"histogram range ({self.lo!r}, {self.hi!r}) must be finite with lo < hi")
        if int(self.n_bins) != self.n_bins or not 1 <= self.n_bins <= 100_000:
            raise DataError(f"histogram n_bins must be an integer in [1, 100000], got {self.n_bins!r}")

    @property
    def bin_width(self) -> float:
        return (self.hi - self.lo) / self.n_bins


@dataclass(frozen=True, eq=False)
class TilePartial:
    """Exact partial statistics of some tiles, dense over the keys they contain.

    Array axes are ``(region, crop, date, index, ...)`` following :attr:`region_ids`,
    :attr:`crops`, :attr:`dates` and :attr:`indices` (each sorted, so equal statistics have
    equal arrays). Build with :func:`accumulate_tile`, add with :func:`merge_partials`, read
    with :func:`finalize`. It pickles small: no pixels, integer arrays only.
    """

    region_ids: np.ndarray
    """(R,) region ids (str), sorted."""
    crops: np.ndarray
    """(C,) crop class codes (int64), sorted."""
    dates: np.ndarray
    """(T,) the time coordinate (datetime64 or int), sorted."""
    indices: tuple[str, ...]
    """(I,) index names (``ndvi``, ...), sorted."""
    count_px: np.ndarray
    """(R, C, T) int64 pixels of the region and crop class (valid or not)."""
    area_q: np.ndarray
    """(R, C, T, 2) normalised limbs of the area in units of 2**-16 m²."""
    valid_px: np.ndarray
    """(R, C, T, I) int64 pixels with a finite value."""
    valid_area_q: np.ndarray
    """(R, C, T, I, 2) limbs of the valid pixels' area."""
    sum_limbs: np.ndarray
    """(R, C, T, I, L1) normalised limbs of the exact sum, limb j weighing
    2**(32*(j + sum_limb0) - 149)."""
    sum_limb0: int
    sq_limbs: np.ndarray
    """(R, C, T, I, L2) limbs of the exact sum of squares, limb j weighing
    2**(32*(j + sq_limb0) - 298)."""
    sq_limb0: int
    min: np.ndarray
    """(R, C, T, I) float32, +inf where no valid pixel."""
    max: np.ndarray
    """(R, C, T, I) float32, -inf where no valid pixel."""
    histogram: HistogramSpec | None = None
    hist: np.ndarray | None = None
    """(R, C, T, I, n_bins) int64 counts when :attr:`histogram` is set."""
    tiles: frozenset[str] = field(default_factory=frozenset)
    """Ids of the tiles added into this partial; merging a tile twice is refused."""

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.valid_px.shape

    @property
    def nbytes(self) -> int:
        """Bytes of array data (what travels to the driver, roughly)."""
        arrays = [self.count_px, self.area_q, self.valid_px, self.valid_area_q, self.sum_limbs,
                  self.sq_limbs, self.min, self.max] + ([self.hist] if self.hist is not None else [])
        return int(sum(a.nbytes for a in arrays))

    def equals(self, other: TilePartial) -> bool:
        """True when both hold the same keys and bit-identical statistics."""
        a, b = merge_partials([self]), merge_partials([other])  # canonical limb ranges
        if a.indices != b.indices or a.histogram != b.histogram:
            return False
        pairs = [(a.region_ids, b.region_ids), (a.crops, b.crops), (a.dates, b.dates)]
        pairs += [(getattr(a, n), getattr(b, n)) for n in
                  ("count_px", "area_q", "valid_px", "valid_area_q", "sum_limbs", "sq_limbs",
                   "min", "max", "hist")]
        if (a.sum_limb0, a.sq_limb0) != (b.sum_limb0, b.sq_limb0):
            return False
        return all((x is None and y is None) or (x is not None and y is not None
                   and x.shape == y.shape and np.array_equal(x, y)) for x, y in pairs)


# --------------------------------------------------------------------------------------------
# accumulate


def _norm_values(values: Mapping[str, Any] | np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    if isinstance(values, np.ndarray):
        values = {"value": values}
    if not values:
        raise DataError("values is empty; pass a mapping of index name -> (time, y, x) array")
    out: dict[str, np.ndarray] = {}
    nt = None
    for name, arr in values.items():
        a = np.asarray(arr)
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3 or a.shape[1:] != shape:
            raise DataError(
                f"values[{name!r}] has shape {np.shape(arr)!r}; expected (time, y, x) with "
                f"(y, x) = {shape!r} like the labels"
            )
        if not np.issubdtype(a.dtype, np.floating):
            raise DataError(
                f"values[{name!r}] has dtype {a.dtype}; expected float32 with NaN for missing. "
                "Scale integer bands to physical values first (CF scale_factor/add_offset)"
            )
        if nt is not None and a.shape[0] != nt:
            raise DataError(f"values[{name!r}] has {a.shape[0]} dates but other indices have {nt}")
        nt = a.shape[0]
        out[str(name)] = np.ascontiguousarray(a, dtype=np.float32)
    return out


def _norm_crop(crop: np.ndarray | None, shape: tuple[int, int], nt: int) -> np.ndarray:
    if crop is None:
        return np.zeros((1, 1, 1), np.int8)  # placeholder: the kernels use class 0
    c = np.asarray(crop)
    if c.ndim == 2:
        c = c[None]
    if c.ndim != 3 or c.shape[1:] != shape or c.shape[0] not in (1, nt):
        raise DataError(
            f"crop has shape {np.shape(crop)!r}; expected (y, x) = {shape!r} or (time, y, x) with "
            f"{nt} dates"
        )
    if c.dtype == bool:
        return np.ascontiguousarray(c).view(np.int8) - np.int8(1)  # True -> 0, False -> -1
    if not np.issubdtype(c.dtype, np.integer):
        raise DataError(f"crop has dtype {c.dtype}; expected integer class codes (negative = excluded) or bool")
    return np.ascontiguousarray(c)


def _row_quanta(row_area_m2: np.ndarray | float, ny: int) -> np.ndarray:
    a = np.asarray(row_area_m2, dtype=np.float64)
    if a.shape == ():
        a = np.full(ny, float(a))
    if a.shape != (ny,) or not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a >= 2.0**46):
        raise DataError(
            f"row_area_m2 must be {ny} finite non-negative pixel areas in m² (one per row, e.g. "
            f"GridSpec.pixel_area_m2(tile)), got shape {a.shape!r}"
        )
    return np.rint(np.ldexp(a, -_k.AREA_UNIT_EXP)).astype(np.int64)


def accumulate_tile(
    labels: np.ndarray,
    values: Mapping[str, Any] | np.ndarray,
    *,
    region_ids: Sequence[str] | Mapping[int, str],
    row_area_m2: np.ndarray | float,
    dates: Sequence[Any] | np.ndarray | None = None,
    crop: np.ndarray | None = None,
    histogram: HistogramSpec | None = None,
    tile_id: str | None = None,
) -> TilePartial:
    """Exact statistics of one tile per (region, crop class, date, index).

    One compiled pass over the pixels per index (no per-region Python loop); the label
    array is shared by all indices.

    Args:
        labels: ``(y, x)`` integer region codes, as :func:`cluster.regions.rasterize_regions`
            returns; negative = no region.
        values: index name -> ``(time, y, x)`` (or ``(y, x)``) float array, NaN = missing. Values
            are accumulated as float32 (the cube's dtype). A bare array is named ``"value"``.
        region_ids: code -> region id (a sequence indexed by code, or a mapping).
        row_area_m2: area of one pixel of each row in m², shape ``(y,)``
            (``GridSpec.pixel_area_m2(tile)``), or one number for the whole tile.
        dates: the time coordinate, one per time step; default ``0 .. time-1``.
        crop: ``(y, x)`` or ``(time, y, x)`` integer crop codes (negative = not counted), a bool
            crop mask (True = :data:`ALL_CROPLAND`), or None (every pixel is
            :data:`ALL_CROPLAND`).
        histogram: fixed bins for quantiles, or None to skip them.
        tile_id: the tile's id; recorded so that a tile merged twice is refused.

    Returns:
        The tile's :class:`TilePartial` (keys: only regions and crops present in the tile).

    Raises:
        DataError: shapes, dtypes or codes that do not fit (the message says which).
    """
    lab = np.asarray(labels)
    if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.integer):
        raise DataError(f"labels must be a 2-D integer array, got shape {lab.shape!r} dtype {lab.dtype}")
    shape = (int(lab.shape[0]), int(lab.shape[1]))
    if shape[0] * shape[1] > _k.MAX_TILE_PX:
        raise DataError(
            f"tile of {shape!r} pixels is above the {_k.MAX_TILE_PX} pixels one call may add "
            "exactly; split it into smaller tiles and merge the partials"
        )
    lab = np.ascontiguousarray(lab, dtype=np.int32)
    vals = _norm_values(values, shape)
    nt = next(iter(vals.values())).shape[0]
    crop_a = _norm_crop(crop, shape, nt)

    if isinstance(region_ids, Mapping):
        n_codes = (max(region_ids) + 1) if region_ids else 0
        code_ids = np.array([str(region_ids.get(i, "")) for i in range(n_codes)], dtype=object)
        known = np.zeros(n_codes, bool)
        known[list(region_ids)] = True
    else:
        code_ids = np.array([str(r) for r in region_ids], dtype=object)
        known = np.ones(len(code_ids), bool)
    n_codes = len(code_ids)

    if dates is None:
        dates_a = np.arange(nt)
    else:
        dates_a = np.asarray(dates)
        if dates_a.shape != (nt,):
            raise DataError(f"dates has {dates_a.size} entries; the values have {nt} time steps")
    if len(np.unique(dates_a)) != nt:
        raise DataError(f"dates must be distinct, got {list(dates_a)!r}")

    has_crop = crop is not None
    n_crop_codes = int(crop_a.max(initial=-1)) + 1 if has_crop else 1
    seen, bad = _k.presence(lab, crop_a, has_crop, n_codes, n_crop_codes)
    if bad >= 0 or (n_codes and not known[seen[:n_codes].any(axis=1)].all()):
        raise DataError(
            f"labels hold region code {int(bad) if bad >= 0 else 'unknown'!r} but region_ids maps "
            f"only {n_codes} codes; pass the code -> id mapping that made the labels"
        )
    seen = seen[:n_codes, :n_crop_codes] if n_codes else np.zeros((0, n_crop_codes), bool)
    reg_codes = np.flatnonzero(seen.any(axis=1))
    crop_codes = np.flatnonzero(seen.any(axis=0)).astype(np.int64)

    # order regions by id (canonical), crops by code
    reg_ids = code_ids[reg_codes]
    order = np.argsort(reg_ids.astype(str), kind="stable")
    reg_codes, reg_ids = reg_codes[order], reg_ids[order]
    rlut = np.full(max(n_codes, 1), -1, np.int32)
    rlut[reg_codes] = np.arange(len(reg_codes), dtype=np.int32)
    clut = np.full(max(n_crop_codes, 1), -1, np.int32)
    clut[crop_codes] = np.arange(len(crop_codes), dtype=np.int32)
    if not has_crop:
        crop_codes = np.array([ALL_CROPLAND] if len(reg_codes) else [], np.int64)
    n_r, n_c = len(reg_codes), len(crop_codes)

    row_q = _row_quanta(row_area_m2, shape[0])
    n_cell = n_r * n_c

    def cells(a: np.ndarray, lead: int) -> np.ndarray:
        """(lead, cells, ...) kernel output -> (R, C, lead, ...)."""
        a = a[:, :n_cell].reshape(lead, n_r, n_c, *a.shape[2:])
        return np.moveaxis(a, 0, 2)

    cnt_f, a_lo, a_hi = _k.count_area(lab, rlut, crop_a, clut, has_crop, row_q, n_r, n_c)
    tc_n = crop_a.shape[0]
    cnt = cells(cnt_f.reshape(tc_n, n_cell), tc_n)
    area = cells(np.stack([a_lo, a_hi], -1).reshape(tc_n, n_cell, 2), tc_n)
    if tc_n == 1 and nt > 1:
        cnt = np.repeat(cnt, nt, axis=2)
        area = np.repeat(area, nt, axis=2)

    names = sorted(vals)
    n_bins = histogram.n_bins if histogram is not None else 0
    lo = histogram.lo if histogram is not None else 0.0
    scale = 1.0 / histogram.bin_width if histogram is not None else 0.0
    per_index = []
    for name in names:
        v = vals[name]
        valid_f, va_lo, va_hi, s1_f, s2_f, h_f, mn_f, mx_f = _k.accumulate_values(
            lab, rlut, crop_a, clut, has_crop, v.view(np.int32), v, row_q, n_r, n_c, lo, scale, n_bins)
        nc1 = valid_f.shape[1]
        per_index.append((
            cells(valid_f, nt),
            cells(np.stack([va_lo, va_hi], -1).reshape(nt, nc1, 2), nt),
            cells(s1_f, nt), cells(s2_f, nt), cells(h_f, nt), cells(mn_f, nt), cells(mx_f, nt),
        ))
    valid, varea, s1, s2, hist_all, vmin, vmax = (np.stack(parts, axis=3) for parts in zip(*per_index, strict=True))
    hist = hist_all if histogram is not None else None

    # sort dates (canonical); the arrays follow
    t_order = np.argsort(dates_a, kind="stable")
    take = (slice(None), slice(None), t_order)
    s1n, off1 = _compact(_k.normalize_limbs(s1[take]), 0)
    s2n, off2 = _compact(_k.normalize_limbs(s2[take]), 0)
    return TilePartial(
        region_ids=reg_ids.astype(str).astype(object),
        crops=crop_codes,
        dates=dates_a[t_order],
        indices=tuple(names),
        count_px=cnt[take],
        area_q=_k.normalize_limbs(area[take]),
        valid_px=valid[take],
        valid_area_q=_k.normalize_limbs(varea[take]),
        sum_limbs=s1n,
        sum_limb0=off1,
        sq_limbs=s2n,
        sq_limb0=off2,
        min=vmin[take],
        max=vmax[take],
        histogram=histogram,
        hist=hist[take] if hist is not None else None,
        tiles=frozenset([tile_id]) if tile_id is not None else frozenset(),
    )


def _compact(limbs: np.ndarray, offset: int) -> tuple[np.ndarray, int]:
    """Drop limb columns that are zero in every cell (low end) or pure sign extension (high end)."""
    flat = limbs.reshape(-1, limbs.shape[-1])
    if flat.shape[0] == 0:
        return limbs[..., :1] * 0, 0
    flat = flat.copy()
    # high end: fold a top column of 0/-1 into the digit below (value unchanged)
    while flat.shape[1] > 1 and np.isin(flat[:, -1], (0, -1)).all():
        flat[:, -2] = flat[:, -2] + (flat[:, -1] << 32)
        flat = flat[:, :-1]
    lo = 0
    while lo < flat.shape[1] - 1 and not flat[:, lo].any():
        lo += 1
    flat = flat[:, lo:]
    return flat.reshape(*limbs.shape[:-1], flat.shape[1]), offset + lo


# --------------------------------------------------------------------------------------------
# merge


def _union(arrays: Iterable[np.ndarray]) -> np.ndarray:
    arrays = list(arrays)
    out = arrays[0]
    for a in arrays[1:]:
        out = np.union1d(out, a)
    return np.unique(out)


def _add_tiles(seen: set[str], tiles: frozenset[str]) -> None:
    """Add ``tiles`` to ``seen``, refusing any already there (a tile counted twice)."""
    dup = seen & tiles
    if dup:
        raise DataError(f"tile(s) {sorted(dup)!r} are in two partials; each tile must be added once "
                        "(drop the duplicate result of a retried task)")
    seen |= tiles


def merge_partials(partials: Iterable[TilePartial]) -> TilePartial:
    """Add partials: exact integer addition, so any order and grouping gives the same result.

    Merge many at once (one list) rather than one by one into a growing total: each call
    allocates the union of the keys.

    Raises:
        DataError: no partials, different histogram bins, or a tile present in two partials
            (it would be counted twice, e.g. after a retried task).
    """
    parts = list(partials)
    if not parts:
        raise DataError("merge_partials got no partials; pass at least one TilePartial")
    hs = {p.histogram for p in parts}
    if len(hs) > 1:
        raise DataError(f"partials use different histogram bins {sorted(map(repr, hs))}; use one HistogramSpec")
    seen: set[str] = set()
    for p in parts:
        _add_tiles(seen, p.tiles)
    regions = _union(p.region_ids.astype(str) for p in parts).astype(object)
    crops = _union(p.crops for p in parts).astype(np.int64)
    dates = _union(p.dates for p in parts)
    indices = tuple(sorted(set().union(*(p.indices for p in parts))))
    R, C, T, I = len(regions), len(crops), len(dates), len(indices)  # noqa: E741 (region, crop, time, index) axes
    lo1 = min(p.sum_limb0 for p in parts)
    hi1 = max(p.sum_limb0 + p.sum_limbs.shape[-1] for p in parts) + 1  # +1: room for carries
    lo2 = min(p.sq_limb0 for p in parts)
    hi2 = max(p.sq_limb0 + p.sq_limbs.shape[-1] for p in parts) + 1
    histogram = parts[0].histogram
    nb = histogram.n_bins if histogram is not None else 0

    count = np.zeros((R, C, T), np.int64)
    area = np.zeros((R, C, T, 2), np.int64)
    valid = np.zeros((R, C, T, I), np.int64)
    varea = np.zeros((R, C, T, I, 2), np.int64)
    s1 = np.zeros((R, C, T, I, hi1 - lo1), np.int64)
    s2 = np.zeros((R, C, T, I, hi2 - lo2), np.int64)
    vmin = np.full((R, C, T, I), np.inf, np.float32)
    vmax = np.full((R, C, T, I), -np.inf, np.float32)
    hist = np.zeros((R, C, T, I, nb), np.int64) if histogram is not None else None
    for p in parts:
        ri = np.searchsorted(regions.astype(str), p.region_ids.astype(str))
        ci = np.searchsorted(crops, p.crops)
        ti = np.searchsorted(dates, p.dates)
        ii = np.array([indices.index(n) for n in p.indices], dtype=np.intp)
        rct = np.ix_(ri, ci, ti)
        count[rct] += p.count_px
        area[rct] += p.area_q
        cell = np.ix_(ri, ci, ti, ii)
        valid[cell] += p.valid_px
        # identical (region, crop, date, index) keys never repeat inside one partial, so
        # fancy-index += adds each cell once
        varea[np.ix_(ri, ci, ti, ii, np.arange(2))] += p.valid_area_q
        l1 = np.arange(p.sum_limb0 - lo1, p.sum_limb0 - lo1 + p.sum_limbs.shape[-1])
        s1[np.ix_(ri, ci, ti, ii, l1)] += p.sum_limbs
        l2 = np.arange(p.sq_limb0 - lo2, p.sq_limb0 - lo2 + p.sq_limbs.shape[-1])
        s2[np.ix_(ri, ci, ti, ii, l2)] += p.sq_limbs
        vmin[cell] = np.minimum(vmin[cell], p.min)
        vmax[cell] = np.maximum(vmax[cell], p.max)
        if hist is not None and p.hist is not None:
            hist[np.ix_(ri, ci, ti, ii, np.arange(nb))] += p.hist
    s1n, off1 = _compact(_k.normalize_limbs(s1), lo1)
    s2n, off2 = _compact(_k.normalize_limbs(s2), lo2)
    return TilePartial(
        region_ids=regions, crops=crops, dates=dates, indices=indices, count_px=count,
        area_q=_k.normalize_limbs(area), valid_px=valid, valid_area_q=_k.normalize_limbs(varea),
        sum_limbs=s1n, sum_limb0=off1, sq_limbs=s2n, sq_limb0=off2, min=vmin, max=vmax,
        histogram=histogram, hist=hist, tiles=frozenset(seen),
    )


class PartialMerger:
    """Merge partials as they arrive, in batches: the driver holds one running total and at
    most ``batch`` partials, whatever the number of tiles (each merge allocates the union
    of the keys, so merging one by one into a growing total would cost quadratic time).

    >>> m = PartialMerger(batch=2)
    >>> m.result() is None
    True
    """

    def __init__(self, batch: int = 64) -> None:
        self.batch = batch
        self._total: TilePartial | None = None
        self._pending: list[TilePartial] = []
        self._tiles: set[str] = set()
        """Every tile added, checked here as each arrives: the batches merge without their
        tile sets, as copying the running total's set at every merge grew quadratically."""

    def add(self, partial: TilePartial) -> None:
        """Take one more partial; a tile already added raises :class:`DataError`."""
        _add_tiles(self._tiles, partial.tiles)
        self._pending.append(replace(partial, tiles=frozenset()) if partial.tiles else partial)
        if len(self._pending) >= self.batch:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            parts = ([self._total] if self._total is not None else []) + self._pending
            self._total = merge_partials(parts)
            self._pending = []

    def result(self) -> TilePartial | None:
        """The merge of everything added so far (its tiles included); None when nothing was."""
        self._flush()
        return None if self._total is None else replace(self._total, tiles=frozenset(self._tiles))


# --------------------------------------------------------------------------------------------
# finalize


def _exact_ratio(num: int, num_exp: int, den: int) -> float:
    """Correctly rounded ``num * 2**num_exp / den`` (Python int division rounds correctly)."""
    if num_exp >= 0:
        return (num << num_exp) / den
    return num / (den << -num_exp)


def _quantiles(hist: np.ndarray, valid: np.ndarray, vmin: np.ndarray, vmax: np.ndarray,
               spec: HistogramSpec, qs: Sequence[float]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    cum = np.cumsum(hist, axis=-1)
    n = valid.astype(np.float64)
    for q in qs:
        target = q * n
        j = np.minimum((cum < target[:, None]).sum(axis=-1), spec.n_bins - 1)
        below = np.where(j > 0, np.take_along_axis(cum, np.maximum(j - 1, 0)[:, None], -1)[:, 0], 0)
        inbin = np.take_along_axis(hist, j[:, None], -1)[:, 0]
        frac = np.where(inbin > 0, (target - below) / np.maximum(inbin, 1), 0.0)
        est = spec.lo + (j + frac) * spec.bin_width
        est = np.clip(est, vmin.astype(np.float64), vmax.astype(np.float64))
        est[valid == 0] = np.nan
        label = f"q{round(100 * q, 6):g}".replace(".", "_")
        out[label] = est
    return out


def finalize(
    partial: TilePartial,
    regions: pd.DataFrame | None = None,
    *,
    quantiles: Sequence[float] = (),
    crop_names: Mapping[int, str] | None = None,
) -> pd.DataFrame:
    """The tidy statistics table: one row per (region, crop, date, index) with pixels.

    Args:
        partial: a merged partial (or a single tile's).
        regions: the regions frame of :func:`cluster.regions.load_regions` (columns
            ``region_id``, ``name``, ``parent``) to add names and parents; None leaves them empty.
        quantiles: probabilities in [0, 1] to estimate from the histogram (needs
            ``histogram=`` at accumulation), as columns ``q50``, ``q2_5``, ...
        crop_names: crop code -> name, added as column ``crop_name``.

    Returns:
        A DataFrame with :data:`STAT_COLUMNS` (units in the names: ``_px`` pixels, ``_ha``
        hectares; ``sum``/``mean``/``std``/``min``/``max`` in the index's own units; ``std`` is
        the population standard deviation; ``valid_fraction = valid_px / count_px``), sorted by
        region, crop, date, index.
    """
    p = partial
    R, C, T, I = p.valid_px.shape  # noqa: E741 (region, crop, time, index) axes
    count = np.broadcast_to(p.count_px[..., None], (R, C, T, I))
    keep = count > 0
    r_i, c_i, t_i, i_i = np.nonzero(keep)
    n_rows = len(r_i)
    valid = p.valid_px[keep]
    s1 = _k.limbs_to_ints(p.sum_limbs[keep])
    s2 = _k.limbs_to_ints(p.sq_limbs[keep])
    e1 = 32 * p.sum_limb0 + _k.SUM_UNIT_EXP
    e2 = 32 * p.sq_limb0 + _k.SQ_UNIT_EXP
    g = min(e2, 2 * e1)
    sums = np.empty(n_rows)
    sqs = np.empty(n_rows)
    mean = np.full(n_rows, np.nan)
    std = np.full(n_rows, np.nan)
    for k in range(n_rows):
        a, b, n = s1[k], s2[k], int(valid[k])
        sums[k] = math.ldexp(float(a), e1) if a else 0.0
        sqs[k] = math.ldexp(float(b), e2) if b else 0.0
        if n:
            mean[k] = _exact_ratio(a, e1, n)
            # n*S2 - S1**2 with S1 = a*2**e1, S2 = b*2**e2, exactly, at exponent g
            num = n * (b << (e2 - g)) - ((a * a) << (2 * e1 - g))
            std[k] = math.sqrt(_exact_ratio(num, g, n * n))
    area_q = np.broadcast_to(p.area_q[..., None, :], (R, C, T, I, 2))[keep]
    area_ha = np.array([q / _HA_PER_AREA_UNIT_DEN for q in _k.limbs_to_ints(area_q)])
    varea_ha = np.array([q / _HA_PER_AREA_UNIT_DEN for q in _k.limbs_to_ints(p.valid_area_q[keep])])
    cnt = count[keep]
    table = pd.DataFrame({
        "region_id": pd.array(p.region_ids[r_i].astype(str), dtype="str") if n_rows else pd.array([], dtype="str"),
        "name": pd.array([None] * n_rows, dtype="str"),
        "parent": pd.array([None] * n_rows, dtype="str"),
        "crop": p.crops[c_i].astype(np.int64),
        "date": p.dates[t_i],
        "index": pd.array(np.array(p.indices, dtype=object)[i_i].astype(str) if n_rows else [], dtype="str"),
        "count_px": cnt.astype(np.int64),
        "valid_px": valid.astype(np.int64),
        "valid_fraction": valid / np.maximum(cnt, 1),
        "area_ha": area_ha.reshape(n_rows),
        "valid_area_ha": varea_ha.reshape(n_rows),
        "sum": sums,
        "sum_sq": sqs,
        "mean": mean,
        "std": std,
        "min": np.where(valid > 0, p.min[keep].astype(np.float64), np.nan),
        "max": np.where(valid > 0, p.max[keep].astype(np.float64), np.nan),
    })
    if quantiles:
        if p.hist is None or p.histogram is None:
            raise DataError("quantiles were asked for but the partials have no histogram; "
                            "pass histogram=HistogramSpec(...) to accumulate_tile")
        bad = [q for q in quantiles if not 0.0 <= q <= 1.0]
        if bad:
            raise DataError(f"quantiles {bad!r} are outside [0, 1]")
        for name, col in _quantiles(p.hist[keep], valid, p.min[keep], p.max[keep],
                                    p.histogram, quantiles).items():
            table[name] = col
    if regions is not None and n_rows:
        meta = pd.DataFrame(regions)[["region_id", "name", "parent"]].astype(
            {"region_id": "str"}).drop_duplicates("region_id").set_index("region_id")
        table["name"] = table["region_id"].map(meta["name"]).astype("str")
        table["parent"] = table["region_id"].map(meta["parent"]).astype("str")
    if crop_names is not None:
        table.insert(4, "crop_name", table["crop"].map(dict(crop_names)).astype("str"))
    return table


def write_statistics(table: pd.DataFrame, path: StoreLike, *,
                     storage_options: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """Write the table as ``<path>.parquet`` and ``<path>.csv`` (local path, fsspec URL, or a
    :class:`~cluster.location.StoreLocation` that carries its storage options).

    Returns:
        The two paths written.
    """
    where = norm_store(path, storage_options)
    base = where.url
    for suffix in (".parquet", ".csv"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    pq, csv = base + ".parquet", base + ".csv"
    if where.is_local:
        Path(base).parent.mkdir(parents=True, exist_ok=True)
    opts = None if where.is_local else (dict(where.storage_options) or None)
    table.to_parquet(pq, index=False, storage_options=opts)
    table.to_csv(csv, index=False, storage_options=opts, float_format="%.17g")
    return pq, csv
