"""Per-region statistics of a cube's indices: pixel count, area (ha), mean, std, ... per
(region, crop class, date, index).

Reads ``<store>`` (index arrays, optional crop map) and a regions file; writes
``<out>.parquet`` and ``<out>.csv`` (default ``<store>.harvest/statistics``) and
``<store>.harvest/aggregate-report.json``. Partials are exact and merge in any order, so
the table is bit-identical whatever the number of workers, nodes or the tile order.

    harvest aggregate --config aggregate.yaml
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Callable, Sequence

import pandas as pd

from cluster.aggregate import PartialMerger, finalize, write_statistics
from cluster.aggregation import (
    AggregateConfig,
    AggregatePlan,
    AggregateWorker,
    plan_aggregate,
    region_frame,
)
from cluster.errors import ClusterError
from cluster.engine import run_tile_job, write_report
from cluster.report import JobReport
from cluster.tasks import TileResult
from jobs._common import job_parser, overrides, parse

__all__ = ["AggregateConfig", "plan", "run", "main"]


def plan(config: AggregateConfig) -> AggregatePlan:
    """Load regions, check arrays, list tiles; never starts Ray."""
    return plan_aggregate(config)


def run(config: AggregateConfig, address: str | None = None,
        progress: Callable[[TileResult], None] | None = None) -> tuple[JobReport, pd.DataFrame]:
    """Run every tile, merge, finalize, write. Returns the report and the statistics table.

    ``progress`` is called with each tile's final result (its partial already taken).
    """
    t0 = time.perf_counter()
    p = plan(config)
    merged = PartialMerger()

    def keep_partial(r: TileResult) -> None:  # partials go to the merge, not into the report
        part = r.extra.pop("partial", None)
        if part is not None:
            merged.add(part)
        if progress is not None:
            progress(r)

    # no manifest and no lease: aggregation only reads the cube, and recomputes from it
    report = run_tile_job("aggregate", config, "", p.tiles,
                          functools.partial(AggregateWorker, p, config.storage.for_workers()),
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
        report.errors.append(f"none of the {len(regions)} region(s) has a pixel on the cube {config.store!r}: "
                             "the table is empty. Check that the regions file covers the cube's area "
                             "(and its CRS), or aggregate another cube")
    for rid in regions.region_id:
        if rid not in seen:
            report.warnings.append(f"region {rid!r} has no pixels on the cube's grid (outside it, or "
                                   "smaller than a pixel under the pixel-centre rule); it has no rows")
    out = config.out_path()
    write_statistics(table, out, storage_options=config.storage.to_fsspec())
    outputs = {"statistics": f"{out}.parquet (+ .csv)"}
    if "flag_meanings" in p.crop_attrs and not table.empty:
        from cluster.classify.areas import crop_areas

        areas = crop_areas(table, p.crop_attrs)
        write_statistics(areas, f"{out}_crop_areas", storage_options=config.storage.to_fsspec())
        outputs["crop_areas"] = f"{out}_crop_areas.parquet (+ .csv): mapped and error-adjusted (95 % CI)"
    write_report(report, config, t0, **outputs)
    return report, table


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser("aggregate", __doc__.splitlines()[0])
    args = parse(parser, argv)
    try:
        from cluster.config import load_config

        config = load_config(AggregateConfig, args.config, overrides(args))
        report, table = run(config, address=args.address)
    except ClusterError as e:
        print(f"harvest aggregate: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"  rows: {len(table)} ({table['region_id'].nunique() if len(table) else 0} regions)")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
