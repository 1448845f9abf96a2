"""Season features: one definition for a cube's pixels and for a table's samples.

A crop is told apart by the *shape* of its season: when it greens up, how high it peaks,
how fast it senesces, and what its bands look like at each stage. :func:`season_features`
turns time series into a fixed-length feature vector per pixel or sample, the same way
whatever the input: a cube tile flattened to ``(time, pixels)`` or a sample table pivoted
to ``(time, samples)`` (:func:`cluster.classify.samples.to_arrays`). A test checks that
one pixel of a cube and the same pixel written as table rows give identical features.

The rule, step by step (all vectorised over pixels):

1. **Periods.** The season ``[start, end]`` of a harvest year is cut into fixed periods:
   dekads (days 1-10, 11-20 and 21-end of each month, the agro-meteorological standard of
   FAO and JRC MARS), calendar months, or N-day steps from the season's start. A season
   whose end comes before its start in the calendar crosses the new year (winter crops:
   September to August); its harvest year is the year it ends.
2. **Composites.** Per band and period, the median of the valid observations (NaN =
   missing: nodata, cloud or shadow already masked). A median ignores a single missed
   cloud; bands listed in ``sum_bands`` (precipitation) are summed instead.
3. **Gaps.** A period with no valid observation is interpolated linearly in time between
   its nearest valid neighbours (held constant before the first and after the last one);
   the share of filled periods is itself a feature (``gap_fraction``), so the model knows
   which samples it sees through clouds.
4. **Indices per period.** Spectral indices (NDVI, ...) from the composited bands, with the
   project's kernels (:mod:`cluster.kernels`), so their formulas are the cube's.
5. **Phenology** from the index curve (NDVI by default): peak value and day, base and
   amplitude, season integral, green-up and senescence days (where the curve crosses
   half its amplitude, interpolated between periods) and the steepest rise and fall.

Extra inputs (radar backscatter, temperature, precipitation) are bands like any other:
when present they enter the vector as per-period composites.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np
from pydantic import Field, field_validator, model_validator

from cluster.config import StrictModel
from cluster.errors import ConfigError, DataError

__all__ = ["SeasonConfig", "FeatureConfig", "FeatureMatrix", "season_periods", "season_features",
           "PHENOLOGY"]

PHENOLOGY = ("peak_value", "peak_day", "base_value", "amplitude", "integral", "greenup_day",
             "senescence_day", "greenup_slope", "senescence_slope")
"""Phenology metrics of the index curve; days count from the season's start."""


class SeasonConfig(StrictModel):
    """The growing season, as month-day bounds repeated every year."""

    start: str = "03-01"
    """First day of the season, ``MM-DD``."""
    end: str = "10-31"
    """Last day, ``MM-DD``; before ``start`` in the calendar: the season crosses the new
    year and belongs to the year it ends in (winter wheat: ``09-01`` to ``08-31``)."""
    period: Literal["dekad", "month"] | int = "dekad"
    """Composite periods: ``dekad`` (three per month), ``month``, or N days from ``start``."""

    @field_validator("start", "end")
    @classmethod
    def _month_day(cls, v: str) -> str:
        try:
            dt.datetime.strptime(f"2001-{v}", "%Y-%m-%d")
        except ValueError:
            raise ValueError(f"not a month-day 'MM-DD': {v!r} (e.g. '03-01'; 02-29 is not allowed)") from None
        return v

    @field_validator("period")
    @classmethod
    def _positive(cls, v: Any) -> Any:
        if isinstance(v, int) and v < 1:
            raise ValueError(f"period of {v!r} days: give a positive number of days, 'dekad' or 'month'")
        return v

    def bounds(self, year: int) -> tuple[dt.date, dt.date]:
        """First and last day of the season that ends in ``year``.

        >>> SeasonConfig(start="09-01", end="08-31").bounds(2023)
        (datetime.date(2022, 9, 1), datetime.date(2023, 8, 31))
        """
        sm, sd = (int(p) for p in self.start.split("-"))
        em, ed = (int(p) for p in self.end.split("-"))
        end = dt.date(year, em, ed)
        start = dt.date(year if (sm, sd) <= (em, ed) else year - 1, sm, sd)
        return start, end


class FeatureConfig(StrictModel):
    """What goes into the feature vector."""

    season: SeasonConfig = Field(default_factory=SeasonConfig)
    bands: list[str] = Field(default_factory=lambda: ["blue", "green", "red", "nir", "swir16"])
    """Bands composited per period (physical values: reflectance, dB, degrees, mm). Bands
    listed here but absent from an input are an error; extra input bands are ignored."""
    indices: list[str] = Field(default_factory=lambda: ["ndvi", "ndwi", "ndmi"])
    """Indices computed per period from the composited bands (kernel names)."""
    phenology_index: str | None = "ndvi"
    """The index (or band: a product that ships NDVI) whose curve gives the phenology
    metrics; None: no phenology."""
    sum_bands: list[str] = Field(default_factory=list)
    """Bands summed per period instead of taking the median (precipitation)."""

    @model_validator(mode="after")
    def _consistent(self) -> "FeatureConfig":
        if not self.bands:
            raise ValueError("features.bands is empty: name at least one band")
        if self.phenology_index is not None and self.phenology_index not in (*self.indices, *self.bands):
            raise ValueError(f"phenology_index {self.phenology_index!r} must be one of indices {self.indices!r} "
                             f"or bands {self.bands!r}")
        extra = sorted(set(self.sum_bands) - set(self.bands))
        if extra:
            raise ValueError(f"sum_bands {extra!r} are not in bands {self.bands!r}")
        from cluster.kernels import get_kernel

        for name in self.indices:
            missing = sorted(set(get_kernel(name).bands) - set(self.bands))
            if missing:
                raise ValueError(f"index {name!r} needs band(s) {missing!r}; add them to features.bands "
                                 "or drop the index")
        return self


@dataclass(frozen=True)
class FeatureMatrix:
    """Features of N pixels or samples: ``values[n, f]`` is feature ``names[f]`` of item n."""

    values: np.ndarray
    """(N, F) float32; NaN where an input had no valid observation in the whole season."""
    names: tuple[str, ...]
    periods: tuple[tuple[dt.date, dt.date], ...]
    gap_filled: np.ndarray
    """(P, N) bool: some band's value of the period was interpolated (no valid observation
    of it in the period); ``gap_fraction`` is its mean over periods."""


def season_periods(season: SeasonConfig, year: int) -> list[tuple[dt.date, dt.date]]:
    """The composite periods of the season ending in ``year``: ``(first day, last day)``.

    >>> periods = season_periods(SeasonConfig(start="05-05", end="06-12"), 2025)
    >>> [(str(a), str(b)) for a, b in periods]  # doctest: +NORMALIZE_WHITESPACE
    [('2025-05-05', '2025-05-10'), ('2025-05-11', '2025-05-20'), ('2025-05-21', '2025-05-31'),
     ('2025-06-01', '2025-06-10'), ('2025-06-11', '2025-06-12')]
    """
    start, end = season.bounds(year)
    out: list[tuple[dt.date, dt.date]] = []
    day = start
    while day <= end:
        if isinstance(season.period, int):
            last = day + dt.timedelta(days=season.period - 1)
        else:
            month_end = (dt.date(day.year + day.month // 12, day.month % 12 + 1, 1) - dt.timedelta(days=1))
            if season.period == "month":
                last = month_end
            else:  # dekad
                last = dt.date(day.year, day.month, 10) if day.day <= 10 else (
                    dt.date(day.year, day.month, 20) if day.day <= 20 else month_end)
        last = min(last, end)
        out.append((day, last))
        day = last + dt.timedelta(days=1)
    return out


def _masked_median(stack: np.ndarray) -> np.ndarray:
    """Median over axis 0 ignoring NaN, NaN where all are NaN; no warnings (k, N) -> (N,)."""
    if stack.shape[0] == 1:
        only: np.ndarray = stack[0].copy()
        return only
    s = np.sort(stack, axis=0)  # NaN sort last
    k = np.sum(~np.isnan(stack), axis=0)
    lo = np.clip((k - 1) // 2, 0, None)
    hi = np.clip(k // 2, 0, stack.shape[0] - 1)
    a = np.take_along_axis(s, lo[None], axis=0)[0]
    b = np.take_along_axis(s, hi[None], axis=0)[0]
    out = (a + b) / np.float32(2)
    out[k == 0] = np.nan
    result: np.ndarray = out.astype(np.float32)
    return result


def _ordered_sum(stack: np.ndarray) -> np.ndarray:
    """NaN-skipping sum over axis 0, row after row: the same rounding for a pixel whatever
    else is in the batch (NumPy's pairwise sums depend on the array's layout)."""
    acc = np.zeros(stack.shape[1:], dtype=np.float32)
    for row in stack:
        acc += np.where(np.isnan(row), np.float32(0), row)
    return acc


def _fill_gaps(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Linear interpolation along axis 0 of (P, N) between valid entries (by period centre
    day), constant beyond the first and last valid one; all-NaN columns stay NaN."""
    P, N = x.shape
    valid = ~np.isnan(x)
    if valid.all() or P == 0:
        return x
    idx = np.arange(P)[:, None].repeat(N, axis=1)
    prev = np.where(valid, idx, -1)
    np.maximum.accumulate(prev, axis=0, out=prev)
    nxt = np.where(valid, idx, P)
    nxt = np.minimum.accumulate(nxt[::-1], axis=0)[::-1]
    cols = np.arange(N)[None, :].repeat(P, axis=0)
    pv = np.where(prev >= 0, x[np.clip(prev, 0, P - 1), cols], np.nan)
    nv = np.where(nxt < P, x[np.clip(nxt, 0, P - 1), cols], np.nan)
    tp = centres[np.clip(prev, 0, P - 1)]
    tn = centres[np.clip(nxt, 0, P - 1)]
    t = centres[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where((prev >= 0) & (nxt < P), (t - tp) / (tn - tp), 0.0)
    out = np.where(prev < 0, nv, np.where(nxt >= P, pv, pv + w * (nv - pv)))
    return np.where(valid, x, out).astype(np.float32)


def _crossing(curve: np.ndarray, level: np.ndarray, centres: np.ndarray, peak: np.ndarray,
              rising: bool) -> np.ndarray:
    """Day at which each column's curve crosses ``level`` before (rising) or after its
    peak, interpolated linearly between period centres; NaN when it never does."""
    P, N = curve.shape
    above = curve >= level[None]
    idx = np.arange(P)[:, None]
    if rising:
        # first period at or before the peak that is above the level, with the one before it below
        cand = above & (idx <= peak[None])
        first = np.where(cand.any(axis=0), np.argmax(cand, axis=0), -1)
        j1 = first
        j0 = first - 1
    else:
        cand = above & (idx >= peak[None])
        last = np.where(cand.any(axis=0), P - 1 - np.argmax(cand[::-1], axis=0), -1)
        j0 = last
        j1 = last + 1
    cols = np.arange(N)
    ok = (j0 >= 0) & (j1 < P) & (j1 >= 0)
    j0c, j1c = np.clip(j0, 0, P - 1), np.clip(j1, 0, P - 1)
    v0, v1 = curve[j0c, cols], curve[j1c, cols]
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(v1 != v0, (level - v0) / (v1 - v0), 0.0)
    day = centres[j0c] + np.clip(f, 0, 1) * (centres[j1c] - centres[j0c])
    # a curve already above the level at the season's start (or still above at its end)
    # crosses outside the season: report the season's edge
    edge = centres[0] if rising else centres[-1]
    return np.where(ok, day, np.where(cand.any(axis=0), edge, np.nan)).astype(np.float32)


def _phenology(curve: np.ndarray, centres: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
    P, N = curve.shape
    allnan = np.isnan(curve).all(axis=0)
    filled = np.where(np.isnan(curve), -np.inf, curve)
    peak = np.argmax(filled, axis=0)
    peak_value = np.where(allnan, np.nan, filled[peak, np.arange(N)])
    base = np.where(allnan, np.nan, np.nanmin(np.where(np.isnan(curve), np.inf, curve), axis=0))
    amplitude = peak_value - base
    level = base + amplitude / 2
    integral = _ordered_sum(curve * lengths[:, None])
    diff = np.diff(curve, axis=0) / np.diff(centres)[:, None] if P > 1 else np.zeros((0, N), np.float32)
    idx = np.arange(max(P - 1, 0))[:, None]
    rise = np.where(idx < peak[None], diff, -np.inf) if P > 1 else diff
    fall = np.where(idx >= peak[None], diff, np.inf) if P > 1 else diff
    greenup_slope = np.max(rise, axis=0) if P > 1 else np.full(N, np.nan)
    senescence_slope = np.min(fall, axis=0) if P > 1 else np.full(N, np.nan)
    out = {
        "peak_value": peak_value,
        "peak_day": np.where(allnan, np.nan, centres[peak]),
        "base_value": base,
        "amplitude": amplitude,
        "integral": np.where(allnan, np.nan, integral),
        "greenup_day": _crossing(curve, level, centres, peak, rising=True),
        "senescence_day": _crossing(curve, level, centres, peak, rising=False),
        "greenup_slope": np.where(np.isfinite(greenup_slope), greenup_slope, np.nan),
        "senescence_slope": np.where(np.isfinite(senescence_slope), senescence_slope, np.nan),
    }
    return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}


def feature_names(config: FeatureConfig, n_periods: int) -> tuple[str, ...]:
    """The names of the features, in the order :func:`season_features` returns them.

    >>> feature_names(FeatureConfig(bands=["red", "nir"], indices=["ndvi"]), 2)[:6]
    ('red_p00', 'red_p01', 'nir_p00', 'nir_p01', 'ndvi_p00', 'ndvi_p01')
    """
    names = [f"{b}_p{p:02d}" for b in config.bands for p in range(n_periods)]
    names += [f"{i}_p{p:02d}" for i in config.indices for p in range(n_periods)]
    if config.phenology_index is not None:
        names += [f"{config.phenology_index}_{m}" for m in PHENOLOGY]
    names.append("gap_fraction")
    return tuple(names)


def season_features(values: Mapping[str, np.ndarray], dates: Sequence[Any] | np.ndarray,
                    config: FeatureConfig, year: int) -> FeatureMatrix:
    """Features of the season ending in ``year`` for N pixels or samples.

    Args:
        values: band name -> ``(T, N)`` float array of physical values, NaN = missing
            (nodata, cloud). Extra bands are ignored.
        dates: the ``T`` observation dates (datetime64, date or ISO text), any order.
        config: the feature definition.
        year: the harvest year of the season.

    Returns:
        The (N, F) feature matrix; observations outside the season are not used.

    Raises:
        DataError: a configured band is missing, shapes disagree, or the season has no
            observation date at all (the cube or table does not cover it).
    """
    missing = [b for b in config.bands if b not in values]
    if missing:
        raise DataError(f"the input lacks band(s) {missing!r} that the features need (it has "
                        f"{sorted(values)!r}); ingest them, or drop them from features.bands")
    d = np.asarray(dates, dtype="datetime64[D]")
    shapes = {values[b].shape for b in config.bands}
    if len(shapes) != 1 or next(iter(shapes))[0] != d.shape[0]:
        raise DataError(f"band arrays must all be (T, N) with T = {d.shape[0]} dates; got shapes {sorted(shapes)!r}")
    n = next(iter(shapes))[1]
    periods = season_periods(config.season, year)
    p_start = np.array([a for a, _ in periods], dtype="datetime64[D]")
    p_end = np.array([b for _, b in periods], dtype="datetime64[D]")
    which = np.searchsorted(p_start, d, side="right") - 1
    inside = (which >= 0) & (d <= p_end[np.clip(which, 0, len(periods) - 1)])
    if not inside.any():
        s, e = config.season.bounds(year)
        raise DataError(f"no observation falls in the {year} season ({s} to {e}); the input covers "
                        f"{d.min() if d.size else 'no dates'} to {d.max() if d.size else ''}: pick a covered year, "
                        "or set season.start/end")
    origin = np.datetime64(periods[0][0], "D")
    centres = np.array([((np.datetime64(a, "D") - origin).astype(int)
                         + (np.datetime64(b, "D") - origin).astype(int)) / 2
                        for a, b in periods], dtype=np.float32)
    lengths = np.array([(b - a).days + 1 for a, b in periods], dtype=np.float32)
    P = len(periods)

    comp: dict[str, np.ndarray] = {}
    for band in config.bands:
        arr = np.asarray(values[band], dtype=np.float32)
        out = np.full((P, n), np.nan, dtype=np.float32)
        for p in range(P):
            rows = np.flatnonzero(inside & (which == p))
            if rows.size == 0:
                continue
            if band in config.sum_bands:
                stack = arr[rows]
                out[p] = np.where(np.isnan(stack).all(axis=0), np.nan, _ordered_sum(stack))
            else:
                out[p] = _masked_median(arr[rows])
        comp[band] = out
    raw_valid = {b: ~np.isnan(v) for b, v in comp.items()}
    filled = {b: _fill_gaps(v, centres) for b, v in comp.items()}

    blocks = [filled[b] for b in config.bands]
    idx_values: dict[str, np.ndarray] = {}
    if config.indices:
        from cluster.kernels import compute

        idx_values = {k: np.asarray(v, dtype=np.float32)
                      for k, v in compute(config.indices, {b: filled[b] for b in config.bands}).items()}
        blocks += [idx_values[k] for k in config.indices]
    cols = [blk.T for blk in blocks]
    gap = np.zeros((P, n), dtype=bool)  # a period some band had no valid observation in
    for b in config.bands:
        gap |= ~raw_valid[b]
    if config.phenology_index is not None:
        curve = idx_values.get(config.phenology_index)
        pheno = _phenology(curve if curve is not None else filled[config.phenology_index], centres, lengths)
        cols += [pheno[m][:, None] for m in PHENOLOGY]
    cols.append((gap.sum(axis=0) / max(P, 1)).astype(np.float32)[:, None])
    matrix = np.ascontiguousarray(np.concatenate(cols, axis=1), dtype=np.float32)
    return FeatureMatrix(matrix, feature_names(config, P), tuple(periods), gap)


def feature_definitions(config: FeatureConfig, year: int) -> dict[str, Any]:
    """A JSON description of the features (written next to feature arrays and into models)."""
    periods = season_periods(config.season, year)
    return {
        "rule": "per-period median of valid observations (sum for sum_bands); gaps interpolated "
                "linearly between period centres; indices from composited bands; phenology from "
                f"the {config.phenology_index} curve (half-amplitude crossings)",
        "config": config.model_dump(mode="json"),
        "year": year,
        "periods": [[str(a), str(b)] for a, b in periods],
        "names": list(feature_names(config, len(periods))),
    }


def check_bands(config: FeatureConfig, available: Sequence[str], where: str) -> None:
    """Raise ConfigError naming the bands the features need that ``where`` lacks."""
    missing = sorted(set(config.bands) - set(available))
    if missing:
        raise ConfigError(f"{where} lacks band(s) {missing!r} the model's features need (it has "
                          f"{sorted(available)!r}); ingest them, or train a model without them")
