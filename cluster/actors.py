"""Thin Ray actors. The work itself lives in plain classes (``IngestWorker``, ...)."""

from __future__ import annotations

import os
import resource
import traceback
from typing import Callable

import ray

from cluster.records import TileResult, TileTask, TileWorker

__all__ = ["TileActor"]


@ray.remote
class TileActor:
    """Builds one worker (open datasets, caches, a GPU context) and feeds it tiles.

    Worker exceptions come back as a failed :class:`TileResult` (with the tile id, whether
    the failure is worth a retry, and the traceback), so one bad tile does not take the
    actor down. ``factory`` arrives through an object reference that the driver holds, so
    a replacement actor can always build its worker again.
    """

    def __init__(self, factory: Callable[[], TileWorker]) -> None:
        self.worker: TileWorker | None = factory()
        self.node_id = ray.get_runtime_context().get_node_id()

    def ready(self) -> str:
        """Answers once the worker is built: the pool hands tiles only to actors that are up."""
        return str(self.node_id)

    def rebuild(self, factory: Callable[[], TileWorker]) -> str:
        """Build the next job's worker in this process (see :func:`cluster.runtime.shared_actors`):
        its imports, compiled kernels and caches stay, the last job's worker goes."""
        self.worker = None
        self.worker = factory()
        return str(self.node_id)

    def release(self) -> None:
        """Drop the worker while parked between jobs: its buffers and open stores go with it."""
        self.worker = None

    def process(self, task: TileTask) -> TileResult:
        try:
            assert self.worker is not None, "released actor given a tile"
            result = self.worker.process(task)
        except Exception as e:  # noqa: BLE001 — reported per tile, the job goes on
            from cluster._retry import endpoint_of, is_transient

            retryable = is_transient(e)
            where = endpoint_of(e) if retryable else None
            result = TileResult(task.tile.id, "failed", retryable=retryable,
                                error=f"{type(e).__name__}: {e}" + (f" [endpoint {where}]" if where else ""),
                                traceback=traceback.format_exc())
        result.node_id = self.node_id
        result.pid = os.getpid()
        # ru_maxrss is KiB on Linux: the process's high-water mark, the figure that an OOM
        # killer or memory_mib must allow for
        result.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return result
