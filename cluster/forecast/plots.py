"""PNG plots of a forecast run (matplotlib figures outside pyplot: no display needed; drawn by
:mod:`cluster.plots`).

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
from cluster.plots import draw_season_band, figure_ax, forecast_bars, save

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from cluster.forecast.result import ForecastResult
    from cluster.forecast.tables import ForecastInputs

__all__ = ["plot_all", "plot_index_curves"]


def plot_index_curves(series: pd.DataFrame, calendar: pd.DataFrame, regions: list[str], index: str,
                      season_year: int, as_of: pd.Timestamp, path: Path, spinup_days: int = 90) -> Path:
    """One panel per region: this season against the 5 previous (mean, min-max band), on
    days before each season's end (seasons that straddle the new year line up)."""
    from matplotlib.figure import Figure

    n = len(regions)
    ncol = min(6, n)
    nrow = math.ceil(n / ncol)
    fig = Figure(figsize=(2.6 * ncol, 2.0 * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False, sharey=True)
    w = season_windows(calendar[calendar["region_id"].isin(regions)], range(season_year - 5, season_year + 1))
    s = series[series["index"] == index]
    cut = np.datetime64(as_of.date(), "D").astype(np.int64)
    for k, rid in enumerate(regions):
        ax = axes[k // ncol][k % ncol]
        rs = s[s["region_id"] == rid].sort_values("date")
        rw = w[w["region_id"] == rid]
        ax.set_title(rid if not (rs.empty or rw.empty) else f"{rid} (no data)", fontsize=7)
        if rs.empty or rw.empty:
            continue
        length = int(rw["season_length_d"].iloc[0]) + spinup_days
        grid = np.arange(-length, 1, 4)
        d = rs["date"].to_numpy("datetime64[D]").astype(np.int64)
        v = rs["mean"].to_numpy(float)
        past, cur = [], (np.array([]), np.array([]))
        for row in rw.itertuples():
            eos = np.datetime64(row.eos_date.date(), "D").astype(np.int64)
            m = (d >= eos - length - 8) & (d <= eos + 8)
            if row.year == season_year:
                m &= d <= cut
                cur = (d[m] - eos, v[m])
            elif m.sum() > 1:
                past.append(np.interp(grid, d[m] - eos, v[m], left=np.nan, right=np.nan))
        draw_season_band(ax, grid, past, cur, str(season_year))
        ax.axvline(0, color="k", lw=0.5, ls=":")
        ax.tick_params(labelsize=6)
    for k in range(n, nrow * ncol):
        axes[k // ncol][k % ncol].axis("off")
    axes[0][0].legend(fontsize=5, loc="lower left")
    fig.suptitle(f"{index.upper()} {season_year} up to {as_of.date()} vs previous 5 seasons "
                 "(days before end of season)", fontsize=9)
    return save(axes[0][0], path)


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
        p = save(forecast_bars(grp.sort_values("region_id"), ax=_bars_ax(len(grp)),
                               title=f"{cfg.crop} {season} forecast as of {as_of.date()}: {country}"),
                 out / f"forecast_{country}.png")
        paths[f"plot_forecast_{country}"] = str(p)
    top = fc["level"].isin(["country", "global"])
    p = save(forecast_bars(fc, level=["country", "global"], ax=_bars_ax(int(top.sum())),
                           title=f"{cfg.crop} {season}: countries and global"),
             out / "forecast_rollup.png")
    paths["plot_rollup"] = str(p)
    return paths


def _bars_ax(n: int) -> "Axes":
    return figure_ax((max(4.0, 0.3 * n + 2), 3.2))
