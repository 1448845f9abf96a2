"""``harvest demo`` end to end on the small demo season, in the shared Ray session."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from cluster import store as cstore
from jobs import demo

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


def test_demo__runs_end_to_end_and_recovers_the_season(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert demo.run(tmp_path, demo.SIZES["small"]) == 0
    out = capsys.readouterr().out
    assert "harvest demo: done" in out and "self-check against the demo's true yields" in out
    # what the crop map adds: its accuracy on fields never trained on, the areas against the
    # truth, and each crop's forecast error with and without the map, side by side
    assert re.search(r"crop map \d{4} on the \d+ fields the survey left out .* overall accuracy 0\.\d{3}", out)
    assert re.search(r"F1: .*wheat \d\.\d\d.*maize \d\.\d\d", out)
    assert "crop area per region, last season: mapped and error-adjusted (95 % CI) against the true area" in out
    check_cols = pd.read_csv(tmp_path / "forecast" / "truth_check.csv").columns
    assert {"nrmse_pct", "nrmse_pct_all_cropland", "production_nrmse_pct_all_cropland"} <= set(check_cols)
    # one pass delivered in two UTM zones overlaps by design: a mosaic, not a duplicate to warn of
    assert "share the date" not in out
    for name in ("ingest", "indices", "aggregate"):
        assert (tmp_path / "configs" / f"{name}.yaml").exists()
    cube = cstore.open_cube(str(tmp_path / "cube.zarr"), chunks=None)
    assert cube.rio.crs.to_epsg() == 6933
    assert set(demo.INDICES) <= set(cube.data_vars)

    # the pipeline recovers the crops' phenology: on true rye pixels NDVI peaks weeks before
    # it does on true maize pixels, every season
    with rasterio.open(tmp_path / "season" / "truth" / "crop_type.tif") as ds:
        truth = ds.read(1)
        t = ds.transform
    x0 = int(round((t.c - float(cube.x[0]) + 10) / 20))
    y0 = int(round((float(cube.y[0]) + 10 - t.f) / 20))
    crop = np.full(cube.ndvi.shape[1:], 0, np.uint8)
    crop[y0:y0 + truth.shape[0], x0:x0 + truth.shape[1]] = truth
    codes = {v: int(k) for k, v in
             __import__("json").loads((tmp_path / "season" / "truth" / "crop_classes.json").read_text()).items()}
    ndvi = cube.ndvi.values
    years = pd.DatetimeIndex(cube.time.values).year
    for year in sorted(set(years)):
        sel = np.flatnonzero(years == year)
        peaks = {}
        for name in ("rye", "maize"):
            curve = np.nanmean(ndvi[sel][:, crop == codes[name]], axis=1)
            peaks[name] = pd.DatetimeIndex(cube.time.values[sel])[int(np.nanargmax(curve))].day_of_year
        assert peaks["rye"] + 20 < peaks["maize"], (year, peaks)

    stats = pd.read_parquet(tmp_path / "statistics.parquet")
    assert set(stats.region_id) == {"KZ-01", "KZ-02", "QZ-01", "QZ-02"} or stats.region_id.nunique() == 4
    check = pd.read_csv(tmp_path / "forecast" / "truth_check.csv")
    assert set(check.crop) == {"wheat", "oats", "rye", "maize"}
    # honest bound, not a tuned one: a forecast that ignored the data (or mixed up regions)
    # would miss the truth by far more than 35 %
    assert (check.nrmse_pct < 35).all(), check
    forecast = pd.read_parquet(tmp_path / "forecast" / "wheat" / "forecast.parquet")
    assert {"region", "country", "global"} <= set(forecast.level)
    glob = forecast[forecast.level == "global"].iloc[0]
    regions = forecast[forecast.level == "region"]
    assert glob.production_t == pytest.approx(regions.production_t.sum(), rel=1e-9)
    assert (tmp_path / "forecast" / "wheat" / "plots" / "forecast_rollup.png").exists()
    page = (tmp_path / "bulletin.html").read_text(encoding="utf-8")
    for crop in ("Wheat", "Oats", "Rye", "Maize"):
        assert f"<h2>{crop}</h2>" in page
    assert "wheat: regions" in page and "No region map" not in page  # the demo's outlines, coloured
