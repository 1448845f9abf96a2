"""Run the whole pipeline on a generated demo season, locally, with no download.

Makes a seeded demo season (two UTM zones, six seasons, wheat/oats/rye/maize/fallow/
grassland fields, clouds), then runs ingest -> indices on a local Ray and a local Zarr
cube, and prints where every output is. The configs it used are written next to the
outputs, so each step can be rerun on its own with ``harvest <step> --config ...``.

    harvest demo [--out harvest-demo] [--size small|default]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import yaml

from cluster.demo import DemoSeason, DemoSpec, make_demo_season
from cluster.errors import ClusterError
from cluster.indices import IndicesConfig
from cluster.ingest import IngestConfig
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
    }


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
    print(f"\nharvest demo: done in {time.perf_counter() - t0:.0f} s. Outputs:")
    print(f"  cube (bands + indices): {configs['ingest']['store']}")
    print("    open it: import cluster; ds = cluster.open_cube(" + repr(configs['ingest']['store']) + ")")
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
