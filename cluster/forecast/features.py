"""Season windows and per region-season features from index time series, with no look-ahead.

A season of harvest year ``Y`` ends at ``eos_date = Y-01-01 + (eos_doy - 1)`` days and starts at
``sos_doy`` of ``Y`` (or of ``Y - 1`` when ``sos_doy > eos_doy``: winter crops), as CY-Bench does.
Features of a season use only observations dated in ``[sos_date - spinup_days, cutoff_date]``;
the caller removes everything after the as-of date before calling, so nothing later can leak in.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from cluster.forecast.config import LeadTime

__all__ = ["season_windows", "cutoff_days", "build_features", "feature_columns"]

_DAY = np.timedelta64(1, "D")


def season_windows(calendar: pd.DataFrame, years: Iterable[int]) -> pd.DataFrame:
    """One row per (region, harvest year): ``sos_date, eos_date, season_length_d``.

    >>> cal = pd.DataFrame({"region_id": ["A"], "crop": ["wheat"], "sos_doy": [305], "eos_doy": [190]})
    >>> w = season_windows(cal, [2020])
    >>> str(w.sos_date[0].date()), str(w.eos_date[0].date()), int(w.season_length_d[0])
    ('2019-11-01', '2020-07-08', 250)
    """
    years = sorted({int(y) for y in years})
    rows = calendar[["region_id", "sos_doy", "eos_doy"]]
    out = pd.concat([rows.assign(year=y) for y in years], ignore_index=True) if years else rows.assign(year=0).iloc[:0]
    jan1 = pd.to_datetime(out["year"].astype(str) + "-01-01")
    out["eos_date"] = jan1 + pd.to_timedelta(out["eos_doy"] - 1, unit="D")
    sos_year = out["year"] - (out["sos_doy"] > out["eos_doy"]).astype(int)
    sos_year_start = pd.to_datetime(sos_year.astype(str) + "-01-01")
    out["sos_date"] = sos_year_start + pd.to_timedelta(out["sos_doy"] - 1, unit="D")
    out["season_length_d"] = (out["eos_date"] - out["sos_date"]).dt.days.astype(int)
    return out[["region_id", "year", "sos_date", "eos_date", "season_length_d"]]


def cutoff_days(lead: LeadTime, season_length_d: np.ndarray | pd.Series) -> np.ndarray:
    """Days before the end of season at which data is cut for ``lead``.

    >>> from cluster.forecast.config import parse_lead_time
    >>> cutoff_days(parse_lead_time("middle-of-season"), np.array([250, 3])).tolist()
    [125, 1]
    >>> cutoff_days(parse_lead_time("2-weeks"), np.array([250])).tolist()
    [14]
    """
    length = np.asarray(season_length_d, dtype=int)
    if lead.days_before_eos is None:
        return length // 2
    return np.full(length.shape, lead.days_before_eos, dtype=int)


def feature_columns(indices: Sequence[str], fractions: Sequence[float]) -> list[str]:
    """Names of the index features, in a fixed order."""
    cols = []
    for ix in indices:
        cols += [f"{ix}_peak", f"{ix}_integral", f"{ix}_last"] + [f"{ix}_f{round(f * 100):03d}" for f in fractions]
    return cols


def build_features(
    series: pd.DataFrame,
    windows: pd.DataFrame,
    *,
    spinup_days: int,
    fractions: Sequence[float],
    indices: Sequence[str] | None = None,
    min_coverage_days: int = 32,
) -> pd.DataFrame:
    """Per (region, year) features from observations in ``[sos - spinup, cutoff]``.

    Args:
        series: tidy series (``region_id, date, index, mean``), already cut at the as-of date.
        windows: ``region_id, year, sos_date, eos_date, cutoff_date`` (from :func:`season_windows`).
        spinup_days: days before the start of season that the window also covers.
        fractions: phenological fractions of the season (0 = sos, 1 = eos) to sample the index at;
            a fraction past the cut-off takes the last value observed (carried forward).
        indices: which indices; default all in ``series``.
        min_coverage_days: a season is ``complete`` when every index has an observation within
            this many days of the window start (8-day composites with a missing date pass).

    Returns:
        ``windows`` plus, per index, ``<ix>_peak`` (max so far), ``<ix>_integral`` (trapezoid
        integral over the window, index x days), ``<ix>_last``, ``<ix>_fNNN`` (value at fraction
        NNN/100 of the season), ``n_obs`` and ``complete``.
    """
    indices = sorted(series["index"].unique()) if indices is None else list(indices)
    by_key: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for (rid, ix), grp in series.sort_values("date").groupby(["region_id", "index"], sort=False):
        by_key[(rid, ix)] = (grp["date"].to_numpy("datetime64[D]").astype(np.int64), grp["mean"].to_numpy(float))
    sos = windows["sos_date"].to_numpy("datetime64[D]").astype(np.int64)
    eos = windows["eos_date"].to_numpy("datetime64[D]").astype(np.int64)
    cut = windows["cutoff_date"].to_numpy("datetime64[D]").astype(np.int64)
    rids = windows["region_id"].to_numpy()
    n = len(windows)
    cols = feature_columns(indices, fractions)
    out = {c: np.full(n, np.nan) for c in cols}
    n_obs = np.zeros(n, dtype=int)
    complete = np.ones(n, dtype=bool) if indices else np.zeros(n, dtype=bool)
    empty = (np.empty(0, np.int64), np.empty(0, float))
    for ix in indices:
        for i in range(n):
            d, v = by_key.get((rids[i], ix), empty)
            start = sos[i] - spinup_days
            lo, hi = np.searchsorted(d, start, "left"), np.searchsorted(d, cut[i], "right")
            if hi <= lo:
                complete[i] = False
                continue
            dd, vv = d[lo:hi], v[lo:hi]
            n_obs[i] += hi - lo
            if dd[0] - start > min_coverage_days:
                complete[i] = False
            out[f"{ix}_peak"][i] = vv.max()
            out[f"{ix}_integral"][i] = np.trapezoid(vv, dd) if len(vv) > 1 else 0.0
            out[f"{ix}_last"][i] = vv[-1]
            length = eos[i] - sos[i]
            for f in fractions:
                t = sos[i] + f * length
                out[f"{ix}_f{round(f * 100):03d}"][i] = vv[-1] if t >= dd[-1] else np.interp(t, dd, vv)
    result = windows.reset_index(drop=True).copy()
    for c in cols:
        result[c] = out[c]
    result["n_obs"] = n_obs
    result["complete"] = complete
    return result
