"""The pipeline's tile jobs as functions: what ``harvest ingest|indices|aggregate`` run.

Each takes its config as the config object, a dict shaped like the YAML file, or the file's
path, and returns a :class:`~cluster.report.JobReport` (which renders in Jupyter), so a
notebook runs a step exactly as the command line does::

    import cluster
    report = cluster.run_ingest({"store": "cube.zarr", "scenes": ["scenes/*.tif"], ...})
    ds = cluster.open_cube(report.store)
    stats = cluster.run_aggregate("aggregate.yaml").table   # per region, crop and date

Every job goes through :func:`cluster.engine.run_tile_job` (lease, manifest, pool, report);
``progress`` is called on the driver with each tile's final result as it arrives.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from cluster import store as cstore
from cluster.aggregate import AggregateConfig, AggregateWorker, plan_aggregate, region_frame
from cluster.config import as_config
from cluster.engine import run_tile_job, write_report
from cluster.indices import IndicesConfig, IndicesWorker, plan_indices, prepare_indices
from cluster.ingest import CubeCheck, IngestConfig, IngestFindings, IngestWorker, plan_ingest, prepare_store
from cluster.report import JobReport
from cluster.records import TileResult, plan_for_workers

__all__ = ["run_ingest", "run_indices", "run_aggregate"]

Progress = Callable[[TileResult], None] | None


def run_ingest(config: IngestConfig | Mapping[str, Any] | str | Path, address: str | None = None,
               progress: Progress = None) -> JobReport:
    """Plan (scene headers only), prepare the store, run every tile not yet done, report."""
    config = as_config(IngestConfig, config)
    t0 = time.perf_counter()
    p = plan_ingest(config)
    cube = config.location()
    check = CubeCheck([b.name for b in p.stored_bands], p.scenes)

    def on_result(r: TileResult[IngestFindings]) -> None:
        check.add(r)
        if progress is not None:
            progress(r)

    report = run_tile_job("ingest", config, p.hash, p.tiles, functools.partial(IngestWorker, plan_for_workers(p)),
                          address, prepare=lambda: prepare_store(p, config), on_result=on_result)
    report.errors.extend(check.errors())
    report.warnings.extend(check.warnings(p.bands, full_run=not report.tiles_skipped))
    report.inputs_used = len(p.scenes)
    report.inputs_rejected = [vars(r) for r in p.rejected]
    report.warnings.extend(p.warnings)
    report.store_bytes = cstore.store_bytes(cube)
    write_report(report, config, t0, cube=cube.shown)
    return report


def run_indices(config: IndicesConfig | Mapping[str, Any] | str | Path, address: str | None = None,
                progress: Progress = None) -> JobReport:
    """Check kernels and bands, prepare the index arrays, run every tile not yet done, report."""
    config = as_config(IndicesConfig, config)
    t0 = time.perf_counter()
    p = plan_indices(config)
    cube = config.location()
    report = run_tile_job("indices", config, p.hash, p.tiles, functools.partial(IndicesWorker, plan_for_workers(p)),
                          address, prepare=lambda: prepare_indices(p, config), on_result=progress)
    report.store_bytes = sum(cstore.store_bytes(cube.array(k)) for k in p.kernels)
    write_report(report, config, t0, cube=cube.shown, indices=", ".join(p.kernels))
    return report


def run_aggregate(config: AggregateConfig | Mapping[str, Any] | str | Path, address: str | None = None,
                  progress: Progress = None) -> JobReport:
    """Statistics per region, crop and date: every tile's partial merged as it arrives, then
    finalized and written (``<out>.parquet`` + ``.csv``; with a crop map also
    ``<out>_crop_areas``). The table is ``report.table``."""
    from cluster.zonal import PartialMerger, TilePartial, finalize, write_statistics

    config = as_config(AggregateConfig, config)
    t0 = time.perf_counter()
    p = plan_aggregate(config)
    merged = PartialMerger()

    def keep_partial(r: TileResult[TilePartial]) -> None:  # partials go to the merge, not into the report
        if r.output is not None:
            merged.add(r.output)  # the merger holds a running total and at most a batch of partials
        if progress is not None:
            progress(r)

    # no manifest and no lease: aggregation only reads the cube, and recomputes from it
    report = run_tile_job("aggregate", config, "", p.tiles,
                          functools.partial(AggregateWorker, plan_for_workers(p)),
                          address, writes_store=False, on_result=keep_partial)
    partial = merged.result()
    report.warnings.extend(str(i) for i in p.region_issues)
    regions = region_frame(p)
    table = finalize(partial, regions, quantiles=config.quantiles,
                     crop_names=p.crop_names) if partial is not None else pd.DataFrame()
    if "crop_name" in table:  # the tidy contract: crop is the class name
        table = table.drop(columns="crop").rename(columns={"crop_name": "crop"})
    seen = set(table["region_id"]) if not table.empty else set()
    if not seen:
        report.errors.append(f"none of the {len(regions)} region(s) has a pixel on the cube {p.store.url!r}: "
                             "the table is empty. Check that the regions file covers the cube's area "
                             "(and its CRS), or aggregate another cube")
    for rid in regions.region_id:
        if rid not in seen:
            report.warnings.append(f"region {rid!r} has no pixels on the cube's grid (outside it, or "
                                   "smaller than a pixel under the pixel-centre rule); it has no rows")
    out = config.out_location()
    report.tables["statistics"] = table
    write_statistics(table, out)
    outputs = {"statistics": f"{out.shown}.parquet (+ .csv)"}
    if "flag_meanings" in p.crop_attrs and not table.empty:
        from cluster.classify.areas import crop_areas

        areas = crop_areas(table, p.crop_attrs)
        write_statistics(areas, out.suffixed("_crop_areas"))
        outputs["crop_areas"] = f"{out.shown}_crop_areas.parquet (+ .csv): mapped and error-adjusted (95 % CI)"
        report.tables["crop_areas"] = areas
    write_report(report, config, t0, **outputs)
    return report
