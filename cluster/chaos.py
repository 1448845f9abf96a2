"""Test helpers that must be importable by Ray workers: chaos wrappers around tile workers.

They are real workers (nothing mocked): :class:`KillOnceWorker` SIGKILLs its own process
the first time it sees a chosen tile, part-way through the real work, to prove that a
killed worker costs a retry and never a corrupt tile.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Callable

from cluster.records import TileResult, TileTask, TileWorker

__all__ = ["KillOnceWorker", "FailOnWorker"]


class KillOnceWorker:
    """Wraps a worker; on the first attempt at ``kill_tile`` the process dies mid-tile."""

    def __init__(self, factory: Callable[[], TileWorker], kill_tile: str, marker_dir: str,
                 delay_s: float = 0.0) -> None:
        self.inner = factory()
        self.kill_tile = kill_tile
        self.marker = Path(marker_dir) / f"killed-{kill_tile}"
        self.delay_s = delay_s

    def process(self, task: TileTask) -> TileResult:
        if task.tile.id == self.kill_tile and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            # die part-way through the real work (reads done, writes in progress)
            threading.Timer(self.delay_s, os.kill, (os.getpid(), signal.SIGKILL)).start()
        return self.inner.process(task)


class FailOnWorker:
    """Wraps a worker; raises for the listed tiles (a bad tile must not stop the job)."""

    def __init__(self, factory: Callable[[], TileWorker], fail_tiles: tuple[str, ...]) -> None:
        self.inner = factory()
        self.fail_tiles = fail_tiles

    def process(self, task: TileTask) -> TileResult:
        if task.tile.id in self.fail_tiles:
            raise OSError(f"simulated read failure on tile {task.tile.id}")
        return self.inner.process(task)
