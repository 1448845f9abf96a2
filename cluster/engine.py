"""The tile-job engine: lease -> prepare the store -> skip done tiles -> pool -> report.

Every tile job (``ingest``, ``indices``, ``aggregate``, ``classify predict``) runs through
:func:`run_tile_job`, from the command line or from a notebook. The engine owns the rules
that keep a store safe, so no job re-implements them:

* **One writer per store**: a job that writes the cube takes the store's lease
  (:mod:`cluster.lease`) before its first write (``prepare`` runs under it) and renews it
  while tiles run; losing it stops the pool.
* **Done means complete**: the worker writes a tile; then, on the actor, the lease is
  checked and only then the tile is recorded in the manifest (:class:`RecordingWorker`).
  A killed worker leaves no record, so a rerun redoes that tile and skips the rest.
* **Faults cost retries**: see :func:`cluster.runtime.run_tile_tasks`.
* **Readers open it in one request**: a job that writes the cube ends, still under the
  lease, by consolidating its metadata (:func:`cluster.store.consolidate`) and rewriting
  its STAC record (:mod:`cluster.stac`).

Imports no Ray at module level (the pool is imported when tiles run).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
from typing import Callable, Generic, Sequence, TypeVar

from cluster import store as cstore
from cluster.config import TileJobConfig
from cluster.errors import StoreError
from cluster.lease import Lease, check_lease
from cluster.location import StoreLocation
from cluster.progress import TileProgress
from cluster.report import JobReport
from cluster.records import TileResult, TileTask, TileWorker

__all__ = ["RecordingWorker", "run_tile_job", "write_report"]

log = logging.getLogger(__name__)

PayloadT = TypeVar("PayloadT")
OutputT = TypeVar("OutputT")


class RecordingWorker(Generic[PayloadT, OutputT]):
    """Runs a tile, then (still on the actor) checks the lease and records the tile done.

    The manifest record carries what the worker reports in ``TileResult.record`` (a
    checksum per array written), which ``harvest verify`` checks the store against.
    """

    def __init__(self, factory: Callable[[], TileWorker[PayloadT, OutputT]], store: StoreLocation, job: str,
                 plan_hash: str, owner: str | None) -> None:
        self.inner = factory()
        self.store = store
        self.owner = owner
        self.manifest = cstore.Manifest(store, job, plan_hash)

    def process(self, task: TileTask[PayloadT]) -> TileResult[OutputT]:
        result = self.inner.process(task)
        if result.status in ("done", "empty"):
            if self.owner is not None:
                check_lease(self.store, self.owner)  # another job took the store
            self.manifest.mark(task.tile.id, {"tile": task.tile.id, "status": result.status,
                                              "bytes_written": result.bytes_written, "pid": os.getpid(),
                                              "host": socket.gethostname(), **result.record})
        return result


def run_tile_job(job: str, config: TileJobConfig, plan_hash: str, tasks: Sequence[TileTask[PayloadT]],
                 factory: Callable[[], TileWorker[PayloadT, OutputT]], address: str | None = None, *,
                 prepare: Callable[[], cstore.Manifest | None] | None = None,
                 writes_store: bool = True,
                 on_result: Callable[[TileResult[OutputT]], None] | None = None) -> JobReport:
    """Run a tile job's tasks that are not done yet, safely; return its report so far.

    Args:
        job: the job's name (``ingest``, ...): names its manifest, lease and report.
        config: the job's config (store, storage, pool size, resources, strict, break_lease).
        plan_hash: what the tiles' results depend on; names the manifest folder.
        tasks: every tile of the plan (done ones are skipped here).
        factory: builds the job's tile worker on each actor; picklable, no secrets.
        address: Ray cluster to join; None starts (or reuses) a local Ray on 127.0.0.1.
        prepare: creates or checks the store's arrays, under the lease; returns the
            manifest (None: the job keeps none and redoes every tile).
        writes_store: False for jobs that only read the cube (aggregate): no lease.
        on_result: called with each final tile result as it arrives (on the driver), its
            typed ``output`` included: merge or write it there, the engine keeps none.

    Returns:
        The report, without wall time and outputs: the caller adds what is particular to
        its job and calls :func:`write_report`.
    """
    from cluster.runtime import PoolOptions, ensure_ray, run_tile_tasks

    cube = config.location()
    report = JobReport(job=job, store=cube.shown, plan_hash=plan_hash, config=config.public_dict())
    report.tiles_total = len(tasks)
    log.info("started", extra={"job": job, "store": cube.shown, "tiles": len(tasks)})
    # the driver uses the config's credentials; what travels to actors has none (for_workers)
    lease = Lease(cube, job, plan_hash) if writes_store else None
    if lease is not None:
        lease.acquire(break_lease=config.break_lease)
        if lease.broke is not None:
            report.warnings.append(f"took over the store's write lease from {lease.broke.describe()}")
    prepared = False
    try:
        if lease is not None:
            lease.start_renewing()
        manifest = prepare() if prepare is not None else None
        prepared = True
        done = manifest.done() if manifest is not None else set()
        todo = [t for t in tasks if t.tile.id not in done] if done else tasks  # a first run copies nothing
        report.tiles_skipped = len(tasks) - len(todo)
        if todo:
            ensure_ray(address, env_vars=config.storage.worker_env())
            worker: Callable[[], TileWorker[PayloadT, OutputT]] = factory
            if manifest is not None:
                worker = functools.partial(RecordingWorker, factory, cube.for_workers(), job, plan_hash,
                                           lease.owner if lease is not None else None)
            opts = PoolOptions(config.max_actors, config.resources, label=job)
            progress = TileProgress(job, len(todo), skipped=report.tiles_skipped)

            def collect(r: TileResult[OutputT]) -> None:
                if on_result is not None:
                    on_result(r)
                report.add_result(r)
                progress(r)

            try:
                outcome = run_tile_tasks(worker, todo, opts, strict=config.strict, on_result=collect,
                                         stop=(lambda: lease.lost) if lease is not None else None)
            finally:
                progress.close()
            report.retries = outcome.retries
            report.actors_replaced = outcome.actors_replaced
            report.stopped = outcome.stopped
    finally:
        if lease is not None:
            # whatever the tiles did, the arrays exist: readers get their metadata in one read
            # (not when the job stopped because storage stopped answering: it would not now)
            if prepared and report.stopped is None:
                _describe(cube, report)
            lease.release()
    log.info("finished: %d done, %d empty, %d skipped, %d failed", report.tiles_done, report.tiles_empty,
             report.tiles_skipped, report.tiles_failed, extra={"job": job, "store": cube.shown})
    return report


def _describe(cube: StoreLocation, report: JobReport) -> None:
    """Consolidated metadata and the STAC record, from the cube as it now is."""
    from cluster.stac import write_collection

    try:
        cstore.consolidate(cube)
    except StoreError as e:
        report.warnings.append(f"{e}; readers still open the cube, one request per array")
    try:
        write_collection(cube)
        report.outputs["stac"] = cube.stac.shown
    except StoreError as e:
        report.warnings.append(f"the cube's STAC record was not written: {e}")


def write_report(report: JobReport, config: TileJobConfig, started: float, **outputs: str) -> None:
    """Finish a job report: wall time, outputs, and the JSON at ``<store>.harvest/<job>-report.json``.

    When the store cannot be written (storage is down), the report is still complete in
    memory and printed by the caller; the failure to save it is added to it.
    """
    report.wall_s = time.perf_counter() - started
    cube = config.location()
    where = cube.report(report.job)
    report.store = cube.shown
    report.outputs = {**outputs, **report.outputs, "report": where.shown}
    if "cube" in outputs:
        report.outputs["cube"] = cstore.shown(outputs["cube"])
    try:
        cstore.write_json(where, report.to_dict())
    except StoreError as e:
        report.outputs["report"] = f"not written: {e}"
        report.warnings.append(f"the report could not be saved: {e}")
