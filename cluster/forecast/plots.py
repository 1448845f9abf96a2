"""PNG plots of a forecast run (matplotlib, Agg backend: no display needed).

* ``index_<ix>_<country>.png``: each region's index curve this season (up to the as-of date)
  against the mean and min/max band of the 5 previous seasons, on days before end of season;
* ``forecast_<country>.png``: forecast yield per region with its interval (observed yield
  marked when known);
* ``forecast_rollup.png``: country and global yields with intervals.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cluster.forecast.features import season_windows

if TYPE_CHECKING:
    from cluster.forecast.run import ForecastResult
    from cluster.forecast.tables import ForecastInputs

__all__ = ["plot_all", "plot_index_curves", "plot_forecast_bars"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curve(d: np.ndarray, v: np.ndarray, eos: np.int64, grid: np.ndarray) -> np.ndarray:
    rel = d - eos
    out = np.interp(grid, rel, v, left=np.nan, right=np.nan) if len(rel) > 1 else np.full(grid.shape, np.nan)
    return out


def plot_index_curves(series: pd.DataFrame, calendar: pd.DataFrame, regions: list[str], index: str,
                      season_year: int, as_of: pd.Timestamp, path: Path, spinup_days: int = 90) -> Path:
    """One panel per region: this season against the 5 previous (mean, min-max band)."""
    plt = _plt()
    n = len(regions)
    ncol = min(6, n)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.0 * nrow), squeeze=False, sharey=True)
    w = season_windows(calendar[calendar["region_id"].isin(regions)], range(season_year - 5, season_year + 1))
    s = series[series["index"] == index]
    for k, rid in enumerate(regions):
        ax = axes[k // ncol][k % ncol]
        rs = s[s["region_id"] == rid].sort_values("date")
        rw = w[w["region_id"] == rid]
        if rs.empty or rw.empty:
            ax.set_title(f"{rid} (no data)", fontsize=7)
            continue
        length = int(rw["season_length_d"].iloc[0]) + spinup_days
        grid = np.arange(-length, 1, 4)
        d = rs["date"].to_numpy("datetime64[D]").astype(np.int64)
        v = rs["mean"].to_numpy(float)
        past = []
        for row in rw.itertuples():
            eos = np.datetime64(row.eos_date.date(), "D").astype(np.int64)
            m = (d >= eos - length - 8) & (d <= eos + 8)
            if row.year == season_year:
                m &= d <= np.datetime64(as_of.date(), "D").astype(np.int64)
                cur = (d[m] - eos, v[m])
            else:
                past.append(_curve(d[m], v[m], eos, grid))
        if past:
            arr = np.vstack(past)
            with np.errstate(all="ignore"):
                import warnings
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    ax.fill_between(grid, np.nanmin(arr, 0), np.nanmax(arr, 0), color="0.85", label="5-y min-max")
                    ax.plot(grid, np.nanmean(arr, 0), color="0.4", lw=1, label="5-y mean")
        ax.plot(cur[0], cur[1], color="tab:green", lw=1.5, label=str(season_year))
        ax.axvline(0, color="k", lw=0.5, ls=":")
        ax.set_title(rid, fontsize=7)
        ax.tick_params(labelsize=6)
    for k in range(n, nrow * ncol):
        axes[k // ncol][k % ncol].axis("off")
    axes[0][0].legend(fontsize=5, loc="lower left")
    fig.suptitle(f"{index.upper()} {season_year} up to {as_of.date()} vs previous 5 seasons (days before end of season)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_forecast_bars(rows: pd.DataFrame, title: str, path: Path) -> Path:
    """Bars of forecast yield with the interval as error bars; observed yield as a dot if known."""
    plt = _plt()
    rows = rows.reset_index(drop=True)
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.3 * len(rows) + 2), 3.2))
    y = rows["yield_t_ha"].to_numpy(float)
    err = np.vstack([y - rows["yield_lo_t_ha"].to_numpy(float), rows["yield_hi_t_ha"].to_numpy(float) - y])
    colors = {"exceptional": "tab:green", "favourable": "yellowgreen", "watch": "orange", "poor": "tab:red"}
    ax.bar(x, y, yerr=np.nan_to_num(err), capsize=2, color=[colors.get(c, "0.6") for c in rows["condition"]])
    if "yield_5yr_mean_t_ha" in rows:
        ax.plot(x, rows["yield_5yr_mean_t_ha"], "_", color="k", ms=10, label="5-y mean")
    if rows["observed_yield_t_ha"].notna().any():
        ax.plot(x, rows["observed_yield_t_ha"], "o", color="tab:blue", ms=3, label="observed")
    ax.set_xticks(x, rows["region_id"], rotation=90, fontsize=6)
    ax.set_ylabel("yield (t/ha)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_all(result: "ForecastResult", inputs: "ForecastInputs", out: Path) -> dict[str, str]:
    """Every plot of a run; returns name -> path."""
    cfg = result.config
    fc = result.forecast
    season = int(fc["season_year"].iloc[0])
    as_of = pd.Timestamp(cfg.as_of)
    series = inputs.series[inputs.series["date"] <= as_of]
    paths: dict[str, str] = {}
    reg = fc[fc["level"] == "region"]
    for country, grp in reg.groupby("parent", sort=True):
        ids = sorted(grp["region_id"])
        for ix in sorted(series["index"].unique()):
            p = plot_index_curves(series, inputs.calendar, ids, ix, season, as_of, out / f"index_{ix}_{country}.png",
                                  cfg.spinup_days)
            paths[f"plot_index_{ix}_{country}"] = str(p)
        p = plot_forecast_bars(grp.sort_values("region_id"), f"{cfg.crop} {season} forecast as of {as_of.date()}: {country}",
                               out / f"forecast_{country}.png")
        paths[f"plot_forecast_{country}"] = str(p)
    p = plot_forecast_bars(fc[fc["level"].isin(["country", "global"])], f"{cfg.crop} {season}: countries and global", out / "forecast_rollup.png")
    paths["plot_rollup"] = str(p)
    return paths
