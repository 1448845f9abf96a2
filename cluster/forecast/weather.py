"""Season features from a per-region weather table, with the same no-look-ahead rule as the
index features.

Table (after column mapping): ``region_id, date, variable, value``, daily or dekadal (each row
covers the days until the region's next date: its median spacing). Variables used by name:

* ``tmin``, ``tmax``, ``tmean`` (deg C; ``tmean`` defaults to ``(tmin + tmax) / 2``);
* ``prec`` (mm per row's period);
* any other variable (radiation, a water balance, a drought index) gives its mean.

Per (region, season) and phase -- phase 1 is the first half of the season (sos to mid-season),
phase 2 the second (mid-season to eos) -- only rows dated in ``[sos, cutoff]`` count:

* ``w_gdd``: growing degree days, sum of ``max(tmean - base, 0)`` (base by crop, :data:`GDD_BASE_C`);
* ``w_heat_days``: days with ``tmax`` above the crop's heat threshold (:data:`HEAT_C`);
* ``w_prec_p1``, ``w_prec_p2``: precipitation per phase. The learners see every feature as a
  departure from the region's mean over the training years, so a low value is the deficit;
* ``w_<variable>_mean``: other variables' means over the window.

A phase that the cut-off has not reached counts what was observed so far (as the training
seasons are cut at the same lead), so nothing later can leak in.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = ["GDD_BASE_C", "HEAT_C", "weather_columns", "weather_features"]

GDD_BASE_C = {"maize": 10.0, "corn": 10.0, "sorghum": 10.0, "soybean": 10.0, "rice": 10.0, "sunflower": 6.0}
"""Base temperature of growing degree days by crop; small grains (wheat, barley, oats, rye) 0 deg C."""
HEAT_C = {"maize": 35.0, "corn": 35.0, "sorghum": 38.0, "soybean": 35.0, "rice": 35.0}
"""Daily maximum above which a day counts as heat stress, by crop; small grains 30 deg C
(heat around anthesis cuts grain number)."""
_KNOWN = ("tmin", "tmax", "tmean", "prec")


def weather_columns(variables: Iterable[str]) -> list[str]:
    """Names of the weather features a table with ``variables`` gives, in a fixed order.

    >>> weather_columns(["tmax", "tmin", "prec", "spi"])
    ['w_gdd', 'w_heat_days', 'w_prec_p1', 'w_prec_p2', 'w_spi_mean']
    """
    v = set(variables)
    cols = []
    if v & {"tmean", "tmin", "tmax"} and ("tmean" in v or {"tmin", "tmax"} <= v):
        cols.append("w_gdd")
    if "tmax" in v:
        cols.append("w_heat_days")
    if "prec" in v:
        cols += ["w_prec_p1", "w_prec_p2"]
    return cols + [f"w_{x}_mean" for x in sorted(v - set(_KNOWN))]


def weather_features(weather: pd.DataFrame, windows: pd.DataFrame, crop: str, *,
                     gdd_base_c: float | None = None, heat_c: float | None = None) -> pd.DataFrame:
    """Per (region, year) of ``windows`` (``region_id, year, sos_date, eos_date, cutoff_date``):
    the features of :func:`weather_columns` from ``weather``, already cut at the as-of date.
    A window without any row gets NaN (a learner reads it as the region's normal)."""
    base = GDD_BASE_C.get(crop, 0.0) if gdd_base_c is None else gdd_base_c
    heat = HEAT_C.get(crop, 30.0) if heat_c is None else heat_c
    wide = weather.pivot_table(index=["region_id", "date"], columns="variable", values="value", aggfunc="mean")
    if "tmean" not in wide and {"tmin", "tmax"} <= set(wide.columns):
        wide["tmean"] = (wide["tmin"] + wide["tmax"]) / 2
    cols = weather_columns(wide.columns)
    out = {c: np.full(len(windows), np.nan) for c in cols}
    sos = windows["sos_date"].to_numpy("datetime64[D]").astype(np.int64)
    eos = windows["eos_date"].to_numpy("datetime64[D]").astype(np.int64)
    cut = windows["cutoff_date"].to_numpy("datetime64[D]").astype(np.int64)
    mid = sos + (eos - sos) // 2
    rows_of = pd.Series(np.arange(len(windows))).groupby(windows["region_id"].to_numpy()).apply(list)
    for rid, table in wide.groupby(level="region_id", sort=False):
        if rid not in rows_of.index:
            continue
        days = table.index.get_level_values("date").to_numpy("datetime64[D]").astype(np.int64)
        step = float(np.median(np.diff(days))) if len(days) > 1 else 1.0
        per_row = {
            "w_gdd": np.maximum(table["tmean"].to_numpy(float) - base, 0.0) * step if "w_gdd" in out else None,
            "w_heat_days": (table["tmax"].to_numpy(float) > heat) * step if "w_heat_days" in out else None,
        }
        sums = {k: np.concatenate([[0.0], np.cumsum(np.nan_to_num(v))]) for k, v in per_row.items() if v is not None}
        prec = (np.concatenate([[0.0], np.cumsum(np.nan_to_num(table["prec"].to_numpy(float)))])
                if "prec" in table else None)
        others = {c: table[c[2:-5]].to_numpy(float) for c in cols if c.endswith("_mean")}
        for i in rows_of[rid]:
            a, b = np.searchsorted(days, sos[i], "left"), np.searchsorted(days, cut[i], "right")
            if b <= a:
                continue
            for k, c in sums.items():
                out[k][i] = c[b] - c[a]
            if prec is not None:
                m = min(np.searchsorted(days, mid[i], "left"), b)
                out["w_prec_p1"][i] = prec[m] - prec[a]
                out["w_prec_p2"][i] = prec[b] - prec[m]
            for col, v in others.items():
                out[col][i] = np.nanmean(v[a:b]) if np.isfinite(v[a:b]).any() else np.nan
    return windows[["region_id", "year"]].reset_index(drop=True).assign(**out)
