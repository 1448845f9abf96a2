"""Run the whole pipeline on a generated demo season, locally, with no download.

Makes a seeded demo season (two UTM zones, six seasons, wheat/oats/rye/maize/fallow/
grassland fields, clouds, a field survey of 40 % of the fields), then runs ingest ->
indices -> classify (train on the surveyed fields, map every season) -> aggregate per crop
-> forecast per crop on a local Ray and a local Zarr cube. It checks the crop map on the
fields the survey left out, the mapped crop areas and the forecasts against the season's
ground truth, and prints where every output is. The configs it used are written next to
the outputs, so each step can be rerun on its own with ``harvest <step> --config ...``.

Each crop's forecast reads that crop's own NDVI/EVI series and area from the crop map;
the forecast it would make from all-cropland statistics (no crop map) is printed beside it.

    harvest demo [--out harvest-demo] [--size small|default]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import yaml

import geopandas as gpd
import numpy as np
import pandas as pd

from cluster.pipeline import run_ingest, run_indices, run_aggregate
from cluster.aggregate import AggregateConfig
from cluster.classify.run import run_predict, run_train
from cluster.demo import YIELD_CROPS, DemoSeason, DemoSpec, make_demo_season
from jobs._cli import command
from cluster.indices import IndicesConfig
from cluster.ingest import IngestConfig

__all__ = ["demo_configs", "run", "main"]

SIZES: dict[str, DemoSpec] = {
    "default": DemoSpec(),
    # a few seconds end to end: what the tests run
    "small": DemoSpec(width_km=6.0, height_km=4.0, years=(2021, 2022, 2023, 2024, 2025),
                      dates_per_season=8),
}

INDICES = ["ndvi", "evi", "ndmi", "gndvi", "savi"]


CLASSES = ["wheat", "oats", "rye", "maize", "fallow", "grassland"]
"""The demo's crop classes; the survey's labels are these names."""


def demo_configs(season: DemoSeason, out: Path) -> dict[str, Any]:
    """The configs of every step for a demo season (plain data, as a user would write them)."""
    grid = season.spec.grid()
    cube = str(out / "cube.zarr")
    bands = {name: {"description": name} for name in ("blue", "green", "red", "nir", "swir16", "scl")}
    # the acquisitions' window, whatever the year (day 116 is 25 April in leap years)
    first = min(d.strftime("%m-%d") for d in season.spec.acquisition_dates())
    last = max(d.strftime("%m-%d") for d in season.spec.acquisition_dates())
    return {
        "ingest": {
            "store": cube,
            "scenes": [str(season.root / "scenes" / "DEMO_*.tif")],
            "grid": {"crs": grid.crs, "pixel_size": grid.pixel_size, "tile_size_px": grid.tile_size_px},
            "bands": bands,
            # Sentinel-2 SCL: 4 vegetation and 5 bare soil are clear; 0, 3, 8, 9 are masked
            "mask": {"band": "scl", "clear_values": [4, 5]},
        },
        "indices": {"store": cube, "kernels": INDICES},
        "classify": {
            "model": str(out / "model"),
            "store": cube,
            "train": {
                "year": season.spec.years[-1],
                "labels": {"path": str(season.field_labels), "id_column": "field_id",
                           "label_column": "crop_surveyed", "max_pixels_per_field": 25},
                "mapping": {"classes": CLASSES, "rules": [{"names": [c], "to": c} for c in CLASSES]},
                # the acquisitions' own window, in 16-day periods (the revisit of the demo's scenes)
                "features": {"season": {"start": first, "end": last, "period": 16},
                             "bands": ["blue", "green", "red", "nir", "swir16"],
                             "indices": ["ndvi", "ndwi", "ndmi"]},
                # folds by 2 km blocks: no field, and no neighbourhood, on both sides of a split
                "validation": {"folds": 5, "seeds": [0], "group": "block", "block_m": 2000},
            },
            # whole parcels from the parcel register; 3 x 3 probability smoothing elsewhere
            # (fields are ~20 pixels wide)
            "predict": {"smooth_px": 3,
                        **({"parcels": {"path": str(season.parcels)}} if season.parcels else {})},
        },
        "aggregate": {
            "store": cube,
            "regions": {"path": str(season.regions), "id_column": "region_id",
                        "name_column": "name", "parent_column": "parent"},
            "indices": ["ndvi", "evi"],
            "crop_map": "crop_type",
            "out": str(out / "statistics"),
        },
    }


def forecast_configs(season: DemoSeason, out: Path, statistics: pd.DataFrame,
                     areas: pd.DataFrame | None = None, weather: bool = True) -> dict[str, Any]:
    """One forecast config per crop: the last season, as of its last acquisition; each crop's
    series and area from the statistics (:func:`~cluster.forecast.from_cube.series_from_statistics`).
    With ``weather``, the season's daily weather (``inputs/weather.csv``) is an input too.
    """
    from cluster.forecast import ForecastConfig, TableInput
    from cluster.forecast.config import BulletinConfig
    from cluster.forecast.from_cube import series_from_statistics

    regions = pd.DataFrame(gpd.read_file(season.regions)[["region_id", "name", "parent"]])
    last_year = season.spec.years[-1]
    as_of = max(d for d in season.spec.acquisition_dates() if d.year == last_year)
    per_crop = "all" not in set(statistics["crop"])
    sub = ("forecast" if weather else "forecast-without-weather") if per_crop else "forecast-all-cropland"
    out_cfgs = {}
    for crop in YIELD_CROPS:
        series = series_from_statistics(statistics, crop, areas)
        out_cfgs[crop] = ForecastConfig(
            crop=crop,
            yields=TableInput(paths=(str(season.yield_history),)),
            calendar=TableInput(paths=(str(season.crop_calendar),)),
            series=(TableInput(frame=series),),
            regions=TableInput(frame=regions),
            weather=TableInput(paths=(str(season.weather),)) if weather and season.weather else None,
            bulletin=BulletinConfig(regions=str(season.regions)),
            as_of=as_of,
            season_year=last_year,
            min_train_years=3,
            spinup_days=0,  # the demo season starts with its first acquisition (late April)
            out_dir=str(out / sub / crop),
        )
    return out_cfgs


def check_against_truth(season: DemoSeason, forecasts: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per crop: the forecast's error against the demo's true yields of the last season."""
    truth = pd.read_csv(season.truth_yields, dtype={"region_id": str})
    year = season.spec.years[-1]
    rows = []
    for crop, fc in forecasts.items():
        reg = fc[fc["level"] == "region"][["region_id", "yield_t_ha", "yield_lo_t_ha", "yield_hi_t_ha",
                                           "production_t"]]
        t = truth[(truth.year == year) & (truth.crop == crop)][["region_id", "yield_t_ha", "production_t"]]
        m = reg.merge(t, on="region_id", suffixes=("", "_true")).dropna(subset=["yield_t_ha", "yield_t_ha_true"])
        if m.empty:
            continue
        err = m["yield_t_ha"] - m["yield_t_ha_true"]
        perr = m["production_t"] - m["production_t_true"]
        inside = (m["yield_lo_t_ha"] <= m["yield_t_ha_true"]) & (m["yield_t_ha_true"] <= m["yield_hi_t_ha"])
        rows.append({"crop": crop, "regions": len(m),
                     "nrmse_pct": 100 * float(np.sqrt((err ** 2).mean()) / m["yield_t_ha_true"].mean()),
                     "mean_error_t_ha": float(err.mean()), "inside_80pct_interval": int(inside.sum()),
                     "production_nrmse_pct": 100 * float(np.sqrt((perr ** 2).mean()) / m["production_t_true"].mean())})
    return pd.DataFrame(rows)


def check_crop_map(season: DemoSeason, cube_url: str, classes: list[str]) -> tuple[dict[str, Any], pd.DataFrame]:
    """The crop map of the last season against the truth, on the fields the survey left out;
    and per region and crop, mapped and estimated area against the true area."""
    import rasterio
    from cluster import store as cstore
    from cluster.classify.accuracy import accuracy_report
    from rasterio.features import rasterize

    cube = cstore.open_cube(cube_url, chunks=None)
    year = season.spec.years[-1]
    t_idx = int(np.flatnonzero(pd.DatetimeIndex(cube.time.values).year == year)[-1])
    mapped = cube["crop_type"].isel(time=t_idx).values  # decoded: float, NaN = not classified
    with rasterio.open(season.truth_crop_type) as ds:
        truth, t = ds.read(1), ds.transform
    px = float(cube.x[1] - cube.x[0])
    x0 = int(round((t.c - float(cube.x[0]) + px / 2) / px))
    y0 = int(round((float(cube.y[0]) + px / 2 - t.f) / px))
    m = mapped[y0:y0 + truth.shape[0], x0:x0 + truth.shape[1]]
    names = {int(k): v for k, v in season.crop_classes.items()}
    surveyed = gpd.read_file(season.field_labels)
    fields = gpd.read_file(season.truth_fields)
    held = fields[~fields.field_id.isin(surveyed.field_id)]
    held_mask = rasterize([(g, 1) for g in held.geometry], out_shape=truth.shape, transform=t, fill=0,
                          dtype="uint8").astype(bool)
    ok = held_mask & (truth > 0) & ~np.isnan(m)
    true_cls = np.array([classes.index(names[c]) for c in truth[ok]])
    report = accuracy_report(true_cls, m[ok].astype(int), list(range(len(classes))), classes)
    report["pixels"] = int(ok.sum())
    report["fields"] = int(len(held))
    return report, pd.DataFrame()


def run(out: Path, spec: DemoSpec, address: str | None = None) -> int:
    """Generate the season and run every step on it; its tile jobs share their actors."""
    from cluster.runtime import shared_actors

    with shared_actors():
        return _run(out, spec, address)


def _run(out: Path, spec: DemoSpec, address: str | None) -> int:
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    print(f"harvest demo: generating a demo season in {out / 'season'} ...", flush=True)
    season = make_demo_season(out / "season", spec)
    print(season.summary(), flush=True)
    configs = demo_configs(season, out)
    cfg_dir = out / "configs"
    cfg_dir.mkdir(exist_ok=True)
    for name, cfg in configs.items():
        (cfg_dir / f"{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    ingest = run_ingest(IngestConfig.model_validate(configs["ingest"]), address=address)
    print(ingest.summary(), flush=True)
    if not ingest.ok:
        return 1
    indices = run_indices(IndicesConfig.model_validate(configs["indices"]), address=address)
    print(indices.summary(), flush=True)
    if not indices.ok:
        return 1

    from jobs.classify import ClassifyConfig

    classify = ClassifyConfig.model_validate(configs["classify"])
    trained = run_train(classify.section("train"), address=address)
    print(trained.summary(), flush=True)
    mapped = run_predict(classify.section("predict"), address=address)
    print(mapped.summary(), flush=True)
    if not mapped.ok:
        return 1
    accuracy, _ = check_crop_map(season, configs["ingest"]["store"], list(trained.model.classes))
    print(f"\ncrop map {season.spec.years[-1]} on the {accuracy['fields']} fields the survey left out "
          f"({accuracy['pixels']:,} pixels; never used in training): overall accuracy "
          f"{accuracy['overall_accuracy']:.3f}, kappa {accuracy['kappa']:.3f}")
    print("  F1: " + ", ".join(f"{k} {v['f1']:.2f}" for k, v in accuracy["per_class"].items() if v["f1"] is not None))

    aggregate = run_aggregate(AggregateConfig.model_validate(configs["aggregate"]), address=address)
    statistics = aggregate.table
    print(aggregate.summary(), flush=True)
    if not aggregate.ok:
        return 1
    areas = pd.read_parquet(out / "statistics_crop_areas.parquet")
    area_check = check_areas(season, areas)
    print("\ncrop area per region, last season: mapped and error-adjusted (95 % CI) against the true area:")
    print(area_check.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    flat = area_check[area_check["ci95_low_ha"] == area_check["ci95_high_ha"]]
    if len(flat):
        print(f"  zero-width intervals ({', '.join(sorted(set(flat['crop'])))}): the validation saw no error for "
              "these classes, so the estimator has none to propagate; their real uncertainty is larger")
    area_check.to_csv(out / "crop_area_check.csv", index=False)

    from cluster.forecast import run_forecast

    checks = {}
    per_crop = []
    for label, stats, weather in (("per crop (crop map)", statistics, True),
                                  ("without weather", statistics, False),
                                  ("all cropland (no crop map)", _all_cropland(statistics), True)):
        forecasts = {}
        for crop, cfg in forecast_configs(season, out, stats, areas if stats is statistics else None,
                                          weather=weather).items():
            result = run_forecast(cfg)
            forecasts[crop] = result.forecast
            if label == "per crop (crop map)":
                per_crop.append(result)
                print(f"\nforecast {crop} {cfg.season_year} as of {cfg.as_of}:", flush=True)
                text = "\n".join(line for line in result.summary().splitlines()
                                  if not line.startswith("  wrote "))
                print(text, flush=True)
        checks[label] = check_against_truth(season, forecasts)
        if label == "per crop (crop map)":
            rollup = pd.concat([f[f["level"] != "region"] for f in forecasts.values()])
            print("\nproduction forecast, rolled up (t, 80 % interval; area from the crop map):")
            for _, r in rollup.iterrows():
                print(f"  {r['level']:8s} {str(r['region_id']):8s} {r['crop']:6s} {r['production_t']:12,.0f} "
                      f"[{r['production_lo_t']:,.0f} .. {r['production_hi_t']:,.0f}]"
                      f"  yield {r['yield_t_ha']:.2f} t/ha  "
                      f"{r['condition']}")
    check = checks["per crop (crop map)"].merge(
        checks["without weather"][["crop", "nrmse_pct"]].rename(columns={"nrmse_pct": "nrmse_pct_without_weather"}),
        on="crop").merge(
        checks["all cropland (no crop map)"][["crop", "nrmse_pct", "production_nrmse_pct"]],
        on="crop", suffixes=("", "_all_cropland"))
    print("\nself-check against the demo's true yields and production (never read by the pipeline): "
          "nRMSE % of each crop's forecast from its own series, the weather and the crop-map area; "
          "the same without the weather; and from all-cropland statistics with last year's reported area:")
    print(check.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    check.to_csv(out / "forecast" / "truth_check.csv", index=False)

    from cluster.forecast.bulletin import write_bulletin

    bulletin = write_bulletin(per_crop, out / "bulletin.html")
    print(f"\nharvest demo: done in {time.perf_counter() - t0:.0f} s. Outputs:")
    print(f"  crop bulletin (every crop, supply view; open in a browser): {bulletin}")
    print(f"  cube (bands, indices, crop_type, crop_probability): {configs['ingest']['store']}")
    print("    open it: import cluster; ds = cluster.open_cube(" + repr(configs['ingest']['store']) + ")")
    print(f"  crop model and its validation report: {out / 'model'}/ (report.md, confusion.png)")
    print(f"  statistics per region, crop and date: {out / 'statistics.parquet'} (+ .csv); crop areas: "
          f"{out / 'statistics_crop_areas.parquet'}")
    print(f"  forecasts, metrics and plots per crop: {out / 'forecast'}/<crop>/")
    print(f"  reports: {configs['ingest']['store']}.harvest/")
    print(f"  configs to rerun each step: {cfg_dir}/")
    print(f"  demo inputs and ground truth: {season.root}/")
    return 0


def _all_cropland(statistics: pd.DataFrame) -> pd.DataFrame:
    """The per-crop table folded back to all pixels (what the pipeline saw without a crop map):
    the pixel-weighted mean over classes."""
    s = statistics.dropna(subset=["mean"])
    w = s["valid_px"].astype(float)
    g = s.assign(wm=s["mean"] * w, w=w).groupby(["region_id", "date", "index"], as_index=False)[["wm", "w"]].sum()
    return g.assign(mean=g["wm"] / g["w"], crop="all")[["region_id", "crop", "date", "index", "mean"]]


def check_areas(season: DemoSeason, areas: pd.DataFrame) -> pd.DataFrame:
    """Last season's mapped and error-adjusted area per region and crop against the truth."""
    truth = pd.read_csv(season.truth_yields, dtype={"region_id": str})
    year = season.spec.years[-1]
    t = truth[truth.year == year][["region_id", "crop", "harvested_area_ha"]].rename(
        columns={"harvested_area_ha": "true_area_ha"})
    a = areas[areas.season_year == year]
    m = a.merge(t, on=["region_id", "crop"], how="inner")
    m["mapped_error_pct"] = 100 * (m["mapped_area_ha"] / m["true_area_ha"] - 1)
    m["estimated_error_pct"] = 100 * (m["estimated_area_ha"] / m["true_area_ha"] - 1)
    # the truth table's areas are rounded to 0.01 ha: a zero-width interval on the true pixel
    # count holds the rounded truth within half of that
    half = 0.005
    m["true_inside_ci95"] = m["true_area_ha"].between(m["ci95_low_ha"] - half, m["ci95_high_ha"] + half)
    return m[["region_id", "crop", "true_area_ha", "mapped_area_ha", "mapped_error_pct", "estimated_area_ha",
              "ci95_low_ha", "ci95_high_ha", "estimated_error_pct", "true_inside_ci95"]]


@command("demo")
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harvest demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("harvest-demo"), help="output folder")
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--address", default=None, help="Ray cluster to join; default: local Ray")
    args = parser.parse_args(argv)
    spec = SIZES[args.size]
    if args.seed is not None:
        spec = spec.replace(seed=args.seed)
    return run(args.out.resolve(), spec, args.address)


if __name__ == "__main__":
    sys.exit(main())
