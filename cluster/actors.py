"""Thin Ray actors. The work itself lives in plain classes (``IngestWorker``, ...)."""

from __future__ import annotations

import os
from typing import Any, Callable

import ray

from cluster.tasks import TileResult, TileTask, TileWorker

__all__ = ["TileActor"]


@ray.remote
class TileActor:
    """Builds one worker (open datasets, caches, a GPU context) and feeds it tiles.

    Worker exceptions come back as a failed :class:`TileResult` (with the tile id), so one
    bad tile does not take the actor down; a killed actor process is restarted by Ray and
    the call retried (``max_restarts`` / ``max_task_retries`` set by the runtime).
    """

    def __init__(self, factory: Callable[[], TileWorker]) -> None:
        self.worker = factory()
        self.node_id = ray.get_runtime_context().get_node_id()

    def process(self, task: TileTask) -> TileResult:
        try:
            result = self.worker.process(task)
        except Exception as e:  # noqa: BLE001 — reported per tile, the job goes on
            result = TileResult(task.tile.id, "failed", error=f"{type(e).__name__}: {e}")
        result.node_id = self.node_id
        result.pid = os.getpid()
        return result

    def pid(self) -> int:
        return os.getpid()

    def info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "node_id": self.node_id}
