"""Ingest scenes into an analysis-ready Zarr cube on the processing grid.

Reads: scenes (GeoTIFF/COG paths, globs, URLs, or a STAC ItemCollection), local or s3://.
Writes: ``<store>`` (Zarr v3 group, one ``(time, y, x)`` array per band) and
``<store>.harvest/`` (per-tile manifest, ``ingest-report.json``).

    harvest ingest --config ingest.yaml [--address ray://head:10001]
    python -m jobs.ingest --config ingest.yaml
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Callable, Sequence

from cluster import store as cstore
from cluster.ingest import CubeCheck, IngestConfig, IngestPlan, IngestWorker, plan_ingest, prepare_store
from cluster.engine import run_tile_job, write_report
from cluster.report import JobReport
from cluster.tasks import TileResult
from jobs._common import job_main

__all__ = ["IngestConfig", "plan", "run", "main"]


def plan(config: IngestConfig) -> IngestPlan:
    """List the work: reads scene headers only; never starts Ray."""
    return plan_ingest(config)


def run(config: IngestConfig, address: str | None = None,
        progress: Callable[[TileResult], None] | None = None) -> JobReport:
    """Plan, prepare the store, run every tile not yet done on the actor pool, report.

    ``progress`` is called on the driver with each tile's final result as it arrives.
    """
    t0 = time.perf_counter()
    p = plan(config)
    so = config.storage.for_workers()  # no credentials in what actors receive
    check = CubeCheck([b.name for b in p.stored_bands], p.scenes)
    report = run_tile_job("ingest", config, p.hash, p.tiles, functools.partial(IngestWorker, p, so),
                          address, prepare=lambda: prepare_store(p, config),
                          on_result=_both(check.add, progress))
    report.errors.extend(check.errors())
    report.warnings.extend(check.warnings(p.bands, full_run=not report.tiles_skipped))
    report.inputs_used = len(p.scenes)
    report.inputs_rejected = [vars(r) for r in p.rejected]
    report.warnings.extend(p.warnings)
    report.store_bytes = cstore.store_bytes(config.store, config.storage.to_fsspec())
    write_report(report, config, t0, cube=config.store)
    return report


def _both(first: Callable[[TileResult], None], then: Callable[[TileResult], None] | None
          ) -> Callable[[TileResult], None]:
    def call(r: TileResult) -> None:
        first(r)
        if then is not None:
            then(r)
    return call


def main(argv: Sequence[str] | None = None) -> int:
    return job_main("ingest", __doc__.splitlines()[0], IngestConfig, run, argv)


if __name__ == "__main__":
    sys.exit(main())
