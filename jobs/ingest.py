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
from typing import Sequence

from cluster import store as cstore
from cluster.ingest import IngestConfig, IngestPlan, IngestWorker, plan_ingest, prepare_store
from cluster.report import JobReport
from jobs._common import job_main

__all__ = ["IngestConfig", "plan", "run", "main"]


def plan(config: IngestConfig) -> IngestPlan:
    """List the work: reads scene headers only; never starts Ray."""
    return plan_ingest(config)


def run(config: IngestConfig, address: str | None = None) -> JobReport:
    """Plan, prepare the store, run every tile not yet done on the actor pool, report."""
    from cluster.runtime import PoolOptions, ensure_ray, run_tile_tasks

    t0 = time.perf_counter()
    p = plan(config)
    manifest = prepare_store(p, config)
    done = manifest.done()
    todo = [t for t in p.tiles if t.tile.id not in done]
    report = JobReport(job="ingest", store=config.store, plan_hash=p.hash, config=config.public_dict())
    report.tiles_total = len(p.tiles)
    report.tiles_skipped = len(p.tiles) - len(todo)
    report.inputs_used = len(p.scenes)
    report.inputs_rejected = [vars(r) for r in p.rejected]
    report.warnings.extend(p.warnings)
    if todo:
        ensure_ray(address)
        factory = functools.partial(IngestWorker, p, config.storage.to_fsspec())
        opts = PoolOptions.from_config(config.max_actors, config.resources)
        report.add_results(run_tile_tasks(factory, todo, opts, strict=config.strict))
    report.wall_s = time.perf_counter() - t0
    so = config.storage.to_fsspec()
    report.store_bytes = cstore.store_bytes(config.store, so)
    report_url = f"{cstore.meta_url(config.store)}/ingest-report.json"
    report.outputs = {"cube": config.store, "report": report_url}
    cstore.write_json(report_url, report.to_dict(), so)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    return job_main("ingest", __doc__.splitlines()[0], IngestConfig, run, argv)


if __name__ == "__main__":
    sys.exit(main())
