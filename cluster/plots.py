"""Plot helpers for notebooks and reports (matplotlib).

Each function draws on the ``ax`` it is given (a new figure when none) and returns it, so
plots compose into a user's own figures::

    import cluster
    ds = cluster.open_cube("harvest-demo/cube.zarr")
    cluster.plots.index_map(ds, "ndvi", "2025-07-01", regions="regions.gpkg")
    cluster.plots.crop_map(ds, 2025)
    stats = cluster.run_aggregate("aggregate.yaml").table
    cluster.plots.index_curve(stats, "R1", crop="wheat")
    cluster.plots.forecast_bars(result.forecast)          # result = cluster.run_forecast(...)
    cluster.plots.rollup(result.forecast)

:mod:`cluster.forecast.plots` writes a forecast run's PNGs with the same drawing functions.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes

__all__ = ["index_map", "crop_map", "index_curve", "forecast_bars", "rollup", "draw_season_band", "figure_ax", "save"]

CROP_COLOURS = {
    "wheat": "#e6b422", "barley": "#f0d878", "oats": "#c9c06b", "rye": "#9c6b30", "maize": "#f07c1a",
    "sunflower": "#ffd500", "rapeseed": "#e6e600", "soy": "#8fbc5a", "fallow": "#d9cbb0",
    "grassland": "#5aa05a", "other_crop": "#b07cc6", "non-crop": "#9e9e9e", "non_crop": "#9e9e9e",
}
"""Colours a crop map reader recognises (cereals yellow-brown, maize orange, grass green)."""

CONDITION_COLOURS = {"exceptional": "#2e7d32", "favourable": "#7cb342", "watch": "#ef8f00", "poor": "#c62828"}
"""GEOGLAM Crop Monitor's reading of the condition classes."""


def _ax(ax: "Axes | None", size: tuple[float, float] = (6.0, 4.0)) -> "Axes":
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)[1]


def figure_ax(size: tuple[float, float], dpi: int = 100) -> "Axes":
    """Axes on a figure outside pyplot, for files written in batch: no GUI backend is
    touched and a notebook's own backend stays as it is (``matplotlib.use`` would switch it)."""
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=dpi).subplots()


def _cube(cube: "xr.Dataset | str") -> "xr.Dataset":
    if isinstance(cube, str):
        from cluster.store import open_cube

        return open_cube(cube)
    return cube


def _regions(regions: Any, crs: Any) -> Any:
    if regions is None:
        return None
    import geopandas as gpd

    from cluster.vector import read_vector

    frame = regions if isinstance(regions, gpd.GeoDataFrame) else read_vector(str(regions))
    return frame.to_crs(crs)


def _outline(ax: "Axes", frame: Any) -> None:
    if frame is not None:
        frame.boundary.plot(ax=ax, color="k", linewidth=0.6)


def _one_region(layer: "xr.DataArray", frame: Any, region: str | None, id_column: str) -> "xr.DataArray":
    """The layer cut to one region's bounding box (its outline still drawn by the caller)."""
    if region is None:
        return _clip(layer)
    if frame is None:
        raise ValueError("region= needs regions= (the outlines to find it in)")
    hit = frame[frame[id_column].astype(str) == str(region)]
    if hit.empty:
        raise KeyError(f"no region {region!r} in column {id_column!r} of the regions")
    x0, y0, x1, y1 = hit.total_bounds
    ys = slice(y1, y0) if layer.y.values[0] > layer.y.values[-1] else slice(y0, y1)
    return layer.sel(x=slice(x0, x1), y=ys)


def _clip(layer: "xr.DataArray", margin: int = 8) -> "xr.DataArray":
    """The layer cut to its valid pixels' bounding box (plus a margin): a cube's tiles are
    usually larger than the ground its scenes cover."""
    valid = np.isfinite(np.asarray(layer.values, dtype=float))
    if not valid.any():
        return layer
    rows, cols = np.flatnonzero(valid.any(1)), np.flatnonzero(valid.any(0))
    return layer.isel(y=slice(max(rows[0] - margin, 0), rows[-1] + margin + 1),
                      x=slice(max(cols[0] - margin, 0), cols[-1] + margin + 1))


def index_map(cube: "xr.Dataset | str", index: str = "ndvi", date: Any = None, regions: Any = None,
              region: str | None = None, id_column: str = "region_id", ax: "Axes | None" = None,
              cmap: str = "RdYlGn", vmin: float = -0.2, vmax: float = 1.0) -> "Axes":
    """An index on one date (the nearest stored; default the last with any valid pixel), with
    region outlines (a GeoDataFrame or a vector file) when given; ``region`` zooms to one of
    them (its id in ``id_column``)."""
    ds = _cube(cube)
    if index not in ds:
        raise KeyError(f"the cube has no {index!r} array; it has {sorted(map(str, ds.data_vars))} "
                       "(run 'harvest indices')")
    arr = ds[index]
    if date is None:
        valid = arr.notnull().any(("y", "x")).values
        if not valid.any():
            raise ValueError(f"{index!r} has no valid pixel on any date")
        layer = arr.isel(time=int(np.flatnonzero(valid)[-1]))
    else:
        layer = arr.sel(time=np.datetime64(pd.Timestamp(date)), method="nearest")
    frame = _regions(regions, ds.rio.crs)
    layer = _one_region(layer, frame, region, id_column)
    ax = _ax(ax)
    layer.plot.imshow(ax=ax, cmap=cmap, vmin=vmin, vmax=vmax, cbar_kwargs={"label": index.upper()})
    _outline(ax, frame)
    if region is not None:
        ax.set_xlim(float(layer.x.min()), float(layer.x.max()))
        ax.set_ylim(float(layer.y.min()), float(layer.y.max()))
    ax.set_title(f"{index.upper()} {pd.Timestamp(layer.time.values).date()}" + (f": {region}" if region else ""))
    ax.set_aspect("equal")
    return ax


def crop_map(cube: "xr.Dataset | str", year: int | None = None, regions: Any = None,
             ax: "Axes | None" = None) -> "Axes":
    """The crop map of a season (default the last mapped), a colour and a legend entry per class."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    ds = _cube(cube)
    if "crop_type" not in ds:
        raise KeyError("the cube has no 'crop_type' array; run 'harvest classify predict' first")
    arr = ds["crop_type"]
    names = str(arr.attrs.get("flag_meanings", "")).split()
    codes = list(arr.attrs.get("flag_values", range(len(names))))
    years = pd.DatetimeIndex(arr.time.values).year
    mapped = arr.notnull().any(("y", "x")).values
    pick = np.flatnonzero(mapped & ((years == year) if year is not None else True))
    if not len(pick):
        raise ValueError(f"no crop map for {year if year is not None else 'any season'} in the cube "
                         f"(mapped years: {sorted(set(years[mapped]))})")
    clipped = _clip(arr.isel(time=int(pick[-1])))
    x, y = clipped.x.values, clipped.y.values
    layer = clipped.values
    palette = [CROP_COLOURS.get(n.lower(), f"C{k % 10}") for k, n in enumerate(names)]
    ax = _ax(ax, (6.0, 5.0))
    half = abs(float(x[1] - x[0])) / 2 if len(x) > 1 else 0.5
    ax.imshow(np.ma.masked_invalid(layer.astype(float)), cmap=ListedColormap(palette), vmin=-0.5,
              vmax=len(names) - 0.5, interpolation="nearest",
              extent=(x[0] - half, x[-1] + half, y[-1] - half, y[0] + half))
    _outline(ax, _regions(regions, ds.rio.crs))
    ax.legend(handles=[Patch(color=c, label=n.replace("_", " "))
                       for c, n, _ in zip(palette, names, codes, strict=False)],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title(f"crop map {years[pick[-1]]}")
    ax.set_aspect("equal")
    return ax


def draw_season_band(ax: "Axes", grid: np.ndarray, past: Sequence[np.ndarray], current: tuple[np.ndarray, np.ndarray],
                     label: str) -> "Axes":
    """This season's curve over the previous seasons' mean and min/max band (on ``grid``)."""
    if len(past):
        arr = np.vstack(past)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a grid point no past season reaches
            ax.fill_between(grid, np.nanmin(arr, 0), np.nanmax(arr, 0), color="0.85",
                            label=f"{len(past)}-y min-max")
            ax.plot(grid, np.nanmean(arr, 0), color="0.4", lw=1, label=f"{len(past)}-y mean")
    ax.plot(current[0], current[1], color="tab:green", lw=1.5, label=label)
    return ax


def index_curve(statistics: pd.DataFrame, region_id: str, index: str = "ndvi", crop: str | None = None,
                season_year: int | None = None, years_back: int = 5, ax: "Axes | None" = None) -> "Axes":
    """A region's index curve this season against the mean and min/max band of the previous
    ``years_back`` seasons, by day of year (an aggregate table: region_id, [crop,] date, index,
    mean)."""
    s = statistics[(statistics["region_id"].astype(str) == str(region_id)) & (statistics["index"] == index)]
    if crop is not None and "crop" in s:
        s = s[s["crop"] == crop]
    s = s.dropna(subset=["mean"])
    if s.empty:
        raise ValueError(f"no {index!r} rows for region {region_id!r}" + (f" and crop {crop!r}" if crop else ""))
    dates = pd.to_datetime(s["date"])
    year = int(season_year if season_year is not None else dates.dt.year.max())
    grid = np.arange(1, 367, 4)
    past, current = [], (np.array([]), np.array([]))
    for y, part in s.assign(_d=dates).groupby(dates.dt.year):
        part = part.sort_values("_d")
        doy, v = part["_d"].dt.dayofyear.to_numpy(float), part["mean"].to_numpy(float)
        if y == year:
            current = (doy, v)
        elif year - years_back <= y < year and len(doy) > 1:
            past.append(np.interp(grid, doy, v, left=np.nan, right=np.nan))
    ax = _ax(ax)
    draw_season_band(ax, grid, past, current, str(year))
    ax.set_xlim(max(1, np.nanmin(current[0]) - 20) if len(current[0]) else 1, 366)
    ax.set_xlabel("day of year")
    ax.set_ylabel(index.upper())
    ax.set_title(f"{region_id}{f' {crop}' if crop else ''}: {index.upper()} {year} vs previous seasons")
    ax.legend(fontsize=7, loc="lower left")
    return ax


def forecast_bars(forecast: pd.DataFrame, level: str | Sequence[str] = "region", ax: "Axes | None" = None,
                  title: str | None = None) -> "Axes":
    """Forecast yield per region (or country/global rows) with its interval as error bars,
    coloured by condition; the 5-year mean as a tick and the observed yield as a dot when known."""
    levels = [level] if isinstance(level, str) else list(level)
    rows = forecast[forecast["level"].isin(levels)].reset_index(drop=True)
    ax = _ax(ax, (max(4.0, 0.3 * len(rows) + 2), 3.2))
    x = np.arange(len(rows))
    y = rows["yield_t_ha"].to_numpy(float)
    err = np.vstack([y - rows["yield_lo_t_ha"].to_numpy(float), rows["yield_hi_t_ha"].to_numpy(float) - y])
    conditions = list(rows["condition"]) if "condition" in rows else [None] * len(rows)
    colours = [CONDITION_COLOURS.get(c, "0.6") if isinstance(c, str) else "0.6" for c in conditions]
    ax.bar(x, y, yerr=np.nan_to_num(err), capsize=2, color=colours)
    for name, colour in CONDITION_COLOURS.items():  # a legend entry per condition shown
        if name in conditions:
            ax.bar([0], [0], color=colour, label=name)
    if "yield_5yr_mean_t_ha" in rows:
        ax.plot(x, rows["yield_5yr_mean_t_ha"], "_", color="k", ms=10, label="5-y mean")
    if "observed_yield_t_ha" in rows and rows["observed_yield_t_ha"].notna().any():
        ax.plot(x, rows["observed_yield_t_ha"], "o", color="tab:blue", ms=3, label="observed")
    ax.set_xticks(x, rows["region_id"].astype(str), rotation=90, fontsize=6)
    ax.set_ylabel("yield (t/ha)")
    if title is None and len(rows) and "crop" in rows:
        title = f"{rows['crop'].iloc[0]} {int(rows['season_year'].iloc[0])} forecast"
    ax.set_title(title or "", fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)
    return ax


def rollup(forecast: pd.DataFrame | Sequence[pd.DataFrame], ax: "Axes | None" = None) -> "Axes":
    """Production of every country and the globe with its interval, a bar per crop (one
    forecast table, or several crops' tables)."""
    frames = [forecast] if isinstance(forecast, pd.DataFrame) else list(forecast)
    rows = pd.concat([f[f["level"].isin(["country", "global"])] for f in frames], ignore_index=True)
    crops = list(dict.fromkeys(rows["crop"]))
    places = list(dict.fromkeys(rows["region_id"].astype(str)))
    ax = _ax(ax, (max(4.0, 0.9 * len(places) * len(crops) + 2), 3.4))
    width = 0.8 / max(1, len(crops))
    for k, crop in enumerate(crops):
        part = rows[rows["crop"] == crop]
        part = part.set_index(part["region_id"].astype(str)).reindex(places)
        x = np.arange(len(places)) + (k - (len(crops) - 1) / 2) * width
        p = part["production_t"].to_numpy(float) / 1e3
        err = np.vstack([p - part["production_lo_t"].to_numpy(float) / 1e3,
                         part["production_hi_t"].to_numpy(float) / 1e3 - p])
        ax.bar(x, p, width, yerr=np.nan_to_num(err), capsize=2, label=crop,
               color=CROP_COLOURS.get(str(crop).lower(), f"C{k}"))
    ax.set_xticks(np.arange(len(places)), places)
    ax.set_ylabel("production (kt)")
    ax.set_title("production forecast with its interval", fontsize=9)
    ax.legend(fontsize=7)
    return ax


def save(ax: "Axes", path: Path, dpi: int = 90) -> Path:
    """Write the axes' figure as a PNG (for batch reports; use :func:`figure_ax`)."""
    from matplotlib.figure import Figure

    fig = ax.figure
    assert isinstance(fig, Figure), "a SubFigure cannot be saved on its own"
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
