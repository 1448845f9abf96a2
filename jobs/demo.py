"""Run the whole pipeline on a generated demo season, locally, with no download.

Makes a seeded demo season (two UTM zones, six seasons, wheat/oats/rye/maize/fallow/
grassland fields, clouds), then runs ingest -> indices -> aggregate -> forecast on a local
Ray and a local Zarr cube, checks the forecast against the season's ground truth, and
prints where every output is. The configs it used are written next to the outputs, so each
step can be rerun on its own with ``harvest <step> --config ...``.

The demo has no crop-type map (classification is not part of the pipeline yet), so the
statistics are over "all cropland" and every crop's forecast reads the same regional NDVI
and EVI; the per-crop signal comes from each crop's own yield history and trend.

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

from cluster.aggregation import AggregateConfig
from cluster.demo import YIELD_CROPS, DemoSeason, DemoSpec, make_demo_season
from cluster.errors import ClusterError
from cluster.indices import IndicesConfig
from cluster.ingest import IngestConfig
from jobs import aggregate as aggregate_job
from jobs import indices as indices_job
from jobs import ingest as ingest_job

__all__ = ["demo_configs", "run", "main"]

SIZES: dict[str, DemoSpec] = {
    "default": DemoSpec(),
    # a few seconds end to end: what the tests run
    "small": DemoSpec(width_km=6.0, height_km=4.0, years=(2021, 2022, 2023, 2024, 2025),
                      dates_per_season=8),
}

INDICES = ["ndvi", "evi", "ndmi", "gndvi", "savi"]


def demo_configs(season: DemoSeason, out: Path) -> dict[str, Any]:
    """The configs of every step for a demo season (plain data, as a user would write them)."""
    grid = season.spec.grid()
    cube = str(out / "cube.zarr")
    bands = {name: {"description": name} for name in ("blue", "green", "red", "nir", "swir16", "scl")}
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
        "aggregate": {
            "store": cube,
            "regions": {"path": str(season.regions), "id_column": "region_id",
                        "name_column": "name", "parent_column": "parent"},
            "indices": ["ndvi", "evi"],
            "out": str(out / "statistics"),
        },
    }


def forecast_configs(season: DemoSeason, out: Path, statistics: pd.DataFrame) -> dict[str, Any]:
    """One forecast config per crop: the last season, as of its last acquisition."""
    from cluster.forecast import ForecastConfig, TableInput

    regions = pd.DataFrame(gpd.read_file(season.regions)[["region_id", "name", "parent"]])
    series = statistics[["region_id", "date", "index", "mean", "area_ha"]].copy()
    last_year = season.spec.years[-1]
    as_of = max(d for d in season.spec.acquisition_dates() if d.year == last_year)
    out_cfgs = {}
    for crop in YIELD_CROPS:
        crop_series = series.assign(crop=crop).drop(columns="area_ha")  # all-cropland NDVI
        out_cfgs[crop] = ForecastConfig(
            crop=crop,
            yields=TableInput(paths=(str(season.yield_history),)),
            calendar=TableInput(paths=(str(season.crop_calendar),)),
            series=(TableInput(frame=crop_series),),
            regions=TableInput(frame=regions),
            as_of=as_of,
            season_year=last_year,
            min_train_years=3,
            spinup_days=0,  # the demo season starts with its first acquisition (late April)
            out_dir=str(out / "forecast" / crop),
        )
    return out_cfgs


def check_against_truth(season: DemoSeason, forecasts: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per crop: the forecast's error against the demo's true yields of the last season."""
    truth = pd.read_csv(season.truth_yields, dtype={"region_id": str})
    year = season.spec.years[-1]
    rows = []
    for crop, fc in forecasts.items():
        reg = fc[fc["level"] == "region"][["region_id", "yield_t_ha", "yield_lo_t_ha", "yield_hi_t_ha"]]
        t = truth[(truth.year == year) & (truth.crop == crop)][["region_id", "yield_t_ha"]]
        m = reg.merge(t, on="region_id", suffixes=("", "_true")).dropna()
        if m.empty:
            continue
        err = m["yield_t_ha"] - m["yield_t_ha_true"]
        inside = (m["yield_lo_t_ha"] <= m["yield_t_ha_true"]) & (m["yield_t_ha_true"] <= m["yield_hi_t_ha"])
        rows.append({"crop": crop, "regions": len(m),
                     "nrmse_pct": 100 * float(np.sqrt((err ** 2).mean()) / m["yield_t_ha_true"].mean()),
                     "mean_error_t_ha": float(err.mean()), "inside_80pct_interval": int(inside.sum())})
    return pd.DataFrame(rows)


def run(out: Path, spec: DemoSpec, address: str | None = None) -> int:
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

    ingest = ingest_job.run(IngestConfig.model_validate(configs["ingest"]), address=address)
    print(ingest.summary(), flush=True)
    if not ingest.ok:
        return 1
    indices = indices_job.run(IndicesConfig.model_validate(configs["indices"]), address=address)
    print(indices.summary(), flush=True)
    if not indices.ok:
        return 1
    aggregate, statistics = aggregate_job.run(AggregateConfig.model_validate(configs["aggregate"]),
                                              address=address)
    print(aggregate.summary(), flush=True)
    if not aggregate.ok:
        return 1

    from cluster.forecast import run_forecast

    forecasts = {}
    for crop, cfg in forecast_configs(season, out, statistics).items():
        result = run_forecast(cfg)
        forecasts[crop] = result.forecast
        print(f"\nforecast {crop} {cfg.season_year} as of {cfg.as_of}:", flush=True)
        text = "\n".join(l for l in result.summary().splitlines() if not l.startswith("  wrote "))
        print(text, flush=True)
    rollup = pd.concat([f[f["level"] != "region"] for f in forecasts.values()])
    print("\nproduction forecast, rolled up (t, 80 % interval):")
    for _, r in rollup.iterrows():
        print(f"  {r['level']:8s} {str(r['region_id']):8s} {r['crop']:6s} {r['production_t']:12,.0f} "
              f"[{r['production_lo_t']:,.0f} .. {r['production_hi_t']:,.0f}]  yield {r['yield_t_ha']:.2f} t/ha  "
              f"{r['condition']}")
    check = check_against_truth(season, forecasts)
    print("\nself-check against the demo's true yields (never read by the pipeline):")
    print(check.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    check.to_csv(out / "forecast" / "truth_check.csv", index=False)

    print(f"\nharvest demo: done in {time.perf_counter() - t0:.0f} s. Outputs:")
    print(f"  cube (bands + indices): {configs['ingest']['store']}")
    print("    open it: import cluster; ds = cluster.open_cube(" + repr(configs['ingest']['store']) + ")")
    print(f"  regional statistics: {out / 'statistics.parquet'} (+ .csv)")
    print(f"  forecasts, metrics and plots per crop: {out / 'forecast'}/<crop>/")
    print(f"  reports: {configs['ingest']['store']}.harvest/")
    print(f"  configs to rerun each step: {cfg_dir}/")
    print(f"  demo inputs and ground truth: {season.root}/")
    return 0


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
    try:
        return run(args.out.resolve(), spec, args.address)
    except ClusterError as e:
        print(f"harvest demo: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
