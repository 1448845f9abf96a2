"""Forecasts from a cube's statistics: the step after ``aggregate`` in ``harvest run``.

With a crop map, each crop reads its own index series from the aggregate table and its area
from the crop map: the error-adjusted estimate (Olofsson et al. 2014) where the crop-area
table has one, else the mapped area. Without a crop map (``crop == "all"``), every crop reads
the all-cropland series and takes its area from the yield statistics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from cluster.errors import ConfigError
from cluster.forecast.config import ForecastConfig, TableInput
from cluster.forecast.result import ForecastResult
from cluster.forecast.run import run_forecast

__all__ = ["series_from_statistics", "run_crop_forecasts"]

ALL_CROPLAND = "all"
"""The crop of the aggregate table's rows when no crop map was given."""


def series_from_statistics(statistics: pd.DataFrame, crop: str, areas: pd.DataFrame | None = None) -> pd.DataFrame:
    """The forecast's series table for ``crop``: region_id, crop, date, index, mean (+ area_ha
    and area_source with a crop map)."""
    crops = set(statistics["crop"])
    if ALL_CROPLAND in crops:
        return statistics[["region_id", "date", "index", "mean"]].assign(crop=crop)
    if crop not in crops:
        raise ConfigError(f"forecast crop {crop!r} is not a class of the crop map (its classes: "
                          f"{', '.join(sorted(map(str, crops)))}); forecast one of those, or map them with "
                          "the classifier's label mapping")
    series = statistics[statistics["crop"] == crop][["region_id", "crop", "date", "index", "mean", "area_ha"]].copy()
    series["area_source"] = "crop map (mapped pixels)"
    if areas is not None and not areas.empty:
        est = areas[(areas["crop"] == crop) & areas["estimated_area_ha"].notna()]
        est = est.set_index(["region_id", "season_year"])["estimated_area_ha"]
        key = list(zip(series["region_id"], pd.to_datetime(series["date"]).dt.year, strict=True))
        found = [k in est.index for k in key]
        series.loc[found, "area_ha"] = [est[k] for k, f in zip(key, found, strict=True) if f]
        series.loc[found, "area_source"] = "crop map (error-adjusted, Olofsson et al. 2014)"
    return series


def run_crop_forecasts(configs: Sequence[ForecastConfig], statistics: pd.DataFrame,
                       areas: pd.DataFrame | None = None, bulletin: Path | None = None,
                       progress: Callable[[str], None] | None = None) -> list[ForecastResult]:
    """One forecast per config, each reading its crop's series from ``statistics``; with
    ``bulletin``, one page for all of them there."""
    results = []
    for cfg in configs:
        series = series_from_statistics(statistics, cfg.crop, areas)
        results.append(run_forecast(cfg.model_copy(update={"series": (TableInput(frame=series),)}), progress=progress))
    if bulletin is not None and any(not r.forecast.empty for r in results):
        from cluster.forecast.bulletin import write_bulletin

        write_bulletin(results, bulletin)
    return results
