"""The aggregate job's plan and tile worker: per (region, crop, date, index) statistics.

For each tile that regions touch, a worker rasterizes the regions on the tile (pixel-centre
rule), reads the tile's index arrays (decoded to float32, NaN = missing) and optionally a
crop map, and returns a small exact :class:`~cluster.zonal.TilePartial`. The driver
merges the partials (integer addition: the result does not depend on tile order, workers or
nodes) and writes one tidy table. Numerics live in :mod:`cluster.zonal` and
:mod:`cluster.regions`; this module only wires them to the cube.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import zarr
from pydantic import Field

from cluster import store as cstore
from cluster.zonal import HistogramSpec, TilePartial, accumulate_tile
from cluster.config import TileJobConfig
from cluster.errors import ConfigError
from cluster.grid import CubeExtent
from cluster.location import StoreLocation, norm_store
from cluster.regions import RegionIssue, RegionsConfig, load_regions, rasterize_regions, to_grid_crs
from cluster.records import GridTasks, TileResult, TileTask

__all__ = ["AggregateConfig", "AggregatePlan", "AggregateWorker", "plan_aggregate"]


class AggregateConfig(TileJobConfig):
    """Everything ``harvest aggregate`` needs (``store``: the cube, bands and indices)."""

    regions: RegionsConfig
    """Region polygons (GeoJSON/GPKG/Shapefile/GeoParquet, any CRS) and their id/name/parent columns."""
    indices: list[str] = Field(default_factory=lambda: ["ndvi"], min_length=1)
    """Cube arrays to summarise (indices, or bands)."""
    crop_map: str | None = None
    """A cube array of integer crop codes ``(time, y, x)`` (a crop-type map); None: every pixel
    counts as "all cropland" (class 0)."""
    crop_classes: dict[int, str] | None = None
    """Crop code -> name in the output table. Default: the crop map's own class table (CF
    ``flag_values`` / ``flag_meanings``, as ``harvest classify predict`` writes them), and
    ``{0: "all"}`` without a crop map."""
    quantiles: list[float] = Field(default_factory=list)
    """Approximate quantiles (from fixed 0.001-wide histogram bins over [-1, 1]), e.g. [0.1, 0.5, 0.9]."""
    out: str | None = None
    """Output path without suffix (``.parquet`` and ``.csv`` are written); default
    ``<store>.harvest/statistics``."""

    def out_location(self) -> StoreLocation:
        """Where the tables go (``.parquet`` / ``.csv`` added), reached with ``storage``."""
        cube = self.location()
        return norm_store(self.out, cube.storage_options) if self.out else cube.statistics



@dataclass(frozen=True)
class AggregatePlan:
    store: StoreLocation
    """The cube, without credentials (the plan travels to workers)."""
    extent: CubeExtent
    regions: gpd.GeoDataFrame
    """In the grid's CRS; row position = region code."""
    region_issues: tuple[RegionIssue, ...]
    indices: tuple[str, ...]
    crop_map: str | None
    dates: tuple[Any, ...]
    tiles: Sequence[TileTask]
    """The tiles regions touch."""
    histogram: HistogramSpec | None
    crop_names: dict[int, str]
    """Crop code -> name."""
    crop_attrs: dict[str, Any]
    """The crop map's attributes (its model's validation confusion, for area estimates)."""


def plan_aggregate(config: AggregateConfig) -> AggregatePlan:
    """Load and check the regions, check the arrays, list the tiles regions touch. No Ray."""
    cube = config.location()
    regions, issues = load_regions(config.regions, storage_options=cube.storage_options)
    if config.strict and issues:
        raise ConfigError("strict mode: region problems:\n  " + "\n  ".join(map(str, issues)))
    group = cstore.open_group(cube, mode="r")
    extent = cstore.extent_of(group)
    arrays = set(group.array_keys())
    wanted = list(config.indices) + ([config.crop_map] if config.crop_map else [])
    missing = [a for a in wanted if a not in arrays]
    if missing:
        raise ConfigError(
            f"the cube {config.store!r} has no array(s) {missing!r}; it has {sorted(arrays)!r}. "
            "Run 'harvest indices' for them or fix 'indices'/'crop_map'"
        )
    rg = to_grid_crs(regions, extent.grid).reset_index(drop=True)
    sindex = rg.sindex
    tiles = GridTasks(extent, keep=[len(sindex.query(_box(extent.grid.tile_bounds(t)))) > 0
                                    for t in extent.iter_tiles()])
    times = cstore.open_cube(cube).time.values
    hist = HistogramSpec(-1.0, 1.0, 2000) if config.quantiles else None
    crop_attrs = dict(group[config.crop_map].attrs) if config.crop_map else {}
    return AggregatePlan(cube.for_workers(), extent, rg, tuple(issues), tuple(config.indices),
                         config.crop_map, tuple(times), tiles, hist,
                         _crop_names(config, crop_attrs), crop_attrs)


def _crop_names(config: AggregateConfig, attrs: dict[str, Any]) -> dict[int, str]:
    if config.crop_classes is not None:
        return {int(k): v for k, v in config.crop_classes.items()}
    if not config.crop_map:
        return {0: "all"}
    values, meanings = attrs.get("flag_values"), str(attrs.get("flag_meanings", "")).split()
    if values is None or len(values) != len(meanings):
        raise ConfigError(f"crop map {config.crop_map!r} has no class table (flag_values/flag_meanings); "
                          "set crop_classes: {code: name, ...}")
    return {int(v): m for v, m in zip(values, meanings, strict=True)}


def _box(b: Any) -> Any:
    from shapely.geometry import box

    return box(*b)


class AggregateWorker:
    """Rasterizes regions per tile, reads index arrays, returns an exact partial."""

    def __init__(self, plan: AggregatePlan) -> None:
        self.plan = plan
        self._group: zarr.Group | None = None
        self.region_ids = list(plan.regions.region_id)

    def process(self, task: TileTask) -> TileResult[TilePartial]:
        t_start = time.perf_counter()
        plan = self.plan
        if self._group is None:
            self._group = cstore.open_group(plan.store, mode="r")
        grid = plan.extent.grid
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        labels, _ = rasterize_regions(plan.regions, grid, task.tile)
        timings["rasterize"] = time.perf_counter() - t0
        result: TileResult[TilePartial] = TileResult(task.tile.id, "done", pid=os.getpid())
        if (labels < 0).all():
            result.status = "empty"
            result.seconds = time.perf_counter() - t_start
            return result
        t0 = time.perf_counter()
        values = {name: cstore.read_tile_decoded(self._group, name, plan.extent, task.tile)
                  for name in plan.indices}
        crop = None
        if plan.crop_map:
            raw = cstore.read_tile(self._group, plan.crop_map, plan.extent, task.tile)
            crop_array = self._group[plan.crop_map]
            assert isinstance(crop_array, zarr.Array)
            fill = crop_array.fill_value
            crop = np.where(raw == fill, -1, raw.astype(np.int32))  # -1: not counted
        timings["read"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        partial = accumulate_tile(labels, values, region_ids=self.region_ids,
                                  row_area_m2=grid.pixel_area_m2(task.tile), dates=plan.dates,
                                  crop=crop, histogram=plan.histogram, tile_id=task.tile.id)
        timings["accumulate"] = time.perf_counter() - t0
        result.pixels = int(next(iter(values.values())).size)
        result.timings_s = timings
        result.output = partial  # merged on the driver as it arrives; never in the report
        result.seconds = time.perf_counter() - t_start
        return result


def region_frame(plan: AggregatePlan) -> pd.DataFrame:
    return pd.DataFrame(plan.regions[["region_id", "name", "parent"]])
