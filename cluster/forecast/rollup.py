"""Anomalies, GEOGLAM-style condition classes, and the roll-up from regions to countries and the globe.

Roll-up rules:

* production and harvested area are summed; yield = summed production / summed area;
* interval bounds of production are summed too (``production_lo_t = sum(region lo)``). That is
  exact when regional errors are fully correlated (comonotonic: every region misses in the
  same direction, as a shared drought does) and conservative otherwise -- with independent
  errors the true interval of the sum is narrower. We prefer honest-but-wide to narrow-and-wrong,
  because regional forecast errors within a country share the weather. The yield bounds of an
  aggregate are its production bounds divided by its area.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["condition_class", "CONDITION_RULE", "HISTORY_ONLY", "rollup", "rollup_history", "national_yield"]

HISTORY_ONLY = "history only (no imagery this season yet)"
"""The condition of a forecast made before any index observation of its season."""

CONDITION_RULE = (
    "condition from the forecast yield's anomaly a against the 5-year mean: "
    "exceptional if a >= +10 %; favourable if -5 % <= a < +10 %; watch if -15 % <= a < -5 %; "
    "poor if a < -15 %; unknown without a 5-year mean"
)


def condition_class(anomaly_pct: float | None) -> str:
    """The GEOGLAM-style condition of a yield anomaly (% against the 5-year mean).

    >>> [condition_class(a) for a in (12.0, 0.0, -5.0, -10.0, -20.0, None)]
    ['exceptional', 'favourable', 'favourable', 'watch', 'poor', 'unknown']
    """
    if anomaly_pct is None or not np.isfinite(anomaly_pct):
        return "unknown"
    if anomaly_pct >= 10:
        return "exceptional"
    if anomaly_pct >= -5:
        return "favourable"
    if anomaly_pct >= -15:
        return "watch"
    return "poor"


def national_yield(df: pd.DataFrame, by: list[str], *, production: str = "production_t",
                   area: str = "harvested_area_ha") -> pd.DataFrame:
    """Aggregated yield per group: ``sum(production) / sum(area)`` over rows having both.

    >>> t = pd.DataFrame({"c": ["A", "A"], "production_t": [10.0, 30.0], "harvested_area_ha": [5.0, 5.0]})
    >>> national_yield(t, ["c"])["yield_t_ha"].tolist()
    [4.0]
    """
    ok = df[production].notna() & df[area].notna() & (df[area] > 0)
    g = df[ok].groupby(by, sort=True)[[production, area]].sum().reset_index()
    g["yield_t_ha"] = g[production] / g[area]
    return g


def rollup_history(yields: pd.DataFrame, parent: pd.Series) -> pd.DataFrame:
    """Observed totals per crop and year for each parent and the globe.

    Every row of ``yields`` (``region_id, crop, year, production_t, harvested_area_ha``) with a
    production and an area > 0 counts, unallocated lines included, whether or not its yield
    was usable for training: the totals are the table's. ``parent`` maps region id -> parent.
    Yield = summed production / summed area.
    """
    ok = yields["production_t"].notna() & yields["harvested_area_ha"].gt(0)
    rows = yields[ok].assign(parent=lambda d: d["region_id"].map(parent))
    parts = []
    for level, by in (("country", ["crop", "year", "parent"]), ("global", ["crop", "year"])):
        g = rows.groupby(by, sort=True).agg(production_t=("production_t", "sum"),
                                            harvested_area_ha=("harvested_area_ha", "sum"),
                                            n_regions=("region_id", "nunique")).reset_index()
        g["region_id"] = g["parent"] if level == "country" else "global"
        parts.append(g.assign(level=level))
    out = pd.concat(parts, ignore_index=True)
    out["yield_t_ha"] = out["production_t"] / out["harvested_area_ha"]
    return out[["level", "region_id", "crop", "year", "production_t", "harvested_area_ha", "yield_t_ha", "n_regions"]]


def _aggregate(rows: pd.DataFrame, level: str, region_id: str, parent: str | None) -> dict[str, Any]:
    area = rows["harvested_area_ha"].sum()
    prod = rows["production_t"].sum()
    lo, hi = rows["production_lo_t"].sum(), rows["production_hi_t"].sum()
    rec = {
        "level": level, "region_id": region_id, "name": region_id, "parent": parent,
        "harvested_area_ha": area, "production_t": prod, "production_lo_t": lo, "production_hi_t": hi,
        "yield_t_ha": prod / area if area > 0 else np.nan,
        "yield_lo_t_ha": lo / area if area > 0 else np.nan,
        "yield_hi_t_ha": hi / area if area > 0 else np.nan,
        "n_regions": int(len(rows)),
    }
    # Anomalies of an aggregate hold this season's areas fixed: reference yield =
    # sum(area_i * reference_yield_i) / sum(area_i) over the regions that have the reference.
    for ref_col, anom_col in (("yield_5yr_mean_t_ha", "anomaly_5yr_pct"),
                              ("yield_last_year_t_ha", "anomaly_last_year_pct")):
        if ref_col in rows:
            has = rows[ref_col].notna() & rows["harvested_area_ha"].notna()
            a = rows.loc[has, "harvested_area_ha"]
            if a.sum() > 0:
                rec[ref_col] = float((a * rows.loc[has, ref_col]).sum() / a.sum())
                rec[anom_col] = float(100 * ((a * rows.loc[has, "yield_t_ha"]).sum()
                                             / (a * rows.loc[has, ref_col]).sum() - 1))
    for col in ("observed_production_t", "observed_area_ha"):
        if col in rows:
            rec[col] = rows[col].sum(min_count=len(rows))  # NaN unless every region has it
    if "area_source" in rows:
        rec["area_source"] = ";".join(sorted(set(rows["area_source"].astype(str))))
    if "n_obs" in rows:
        rec["n_obs"] = rows["n_obs"].sum(min_count=1)
    return rec


def rollup(regional: pd.DataFrame) -> pd.DataFrame:
    """Country (``parent``) and global rows from regional forecast rows, per crop and season.

    Args:
        regional: ``level == 'region'`` rows with ``parent, crop, season_year, harvested_area_ha,
            production_t, production_lo_t, production_hi_t`` (and optionally the history columns
            ``production_5yr_mean_t``, ``area_5yr_mean_ha``, ... for anomalies).

    Returns:
        The country and global rows (same columns; anomalies and condition recomputed from sums).
    """
    out = []
    keys = ["crop", "season_year"]
    for (crop, season), grp in regional.groupby(keys, sort=True):
        for country, cg in grp.groupby("parent", sort=True):
            out.append({**_aggregate(cg, "country", str(country), "global"), "crop": crop, "season_year": season})
        out.append({**_aggregate(grp, "global", "global", None), "crop": crop, "season_year": season})
    df = pd.DataFrame(out)
    if df.empty:
        return df
    if "observed_production_t" in df and "observed_area_ha" in df:
        df["observed_yield_t_ha"] = df["observed_production_t"] / df["observed_area_ha"]
    df["condition"] = [condition_class(a) for a in df.get("anomaly_5yr_pct", pd.Series(np.nan, index=df.index))]
    if "n_obs" in df:  # no region below saw this season: the sum is history too
        df.loc[df["n_obs"] == 0, "condition"] = HISTORY_ONLY
    return df
