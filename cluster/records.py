"""Work records that travel between the driver and tile actors: small, frozen, picklable.

Pixels never travel in these: workers read their inputs from storage and write their
outputs to the store themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from cluster.grid import TileIndex

__all__ = ["TileTask", "TileResult", "TileWorker"]


@dataclass(frozen=True)
class TileTask:
    """One unit of work: one grid tile across all dates."""

    tile: TileIndex
    payload: Any = None
    """Job-specific, small (e.g. the indices of the scenes that touch this tile)."""


@dataclass
class TileResult:
    """What a worker reports for one tile. Counters and timers, never pixels."""

    tile_id: str
    status: str  # "done" | "empty" | "failed"
    bytes_written: int = 0
    pixels: int = 0
    seconds: float = 0.0
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    retryable: bool = False
    """A failure worth another attempt: object storage did not answer (5xx, throttling,
    resets, timeouts). Definite failures (a damaged input) are not retried."""
    attempts: int = 1
    """How many times the tile was started (the pool counts retries and actor deaths)."""
    traceback: str | None = None
    """The worker's traceback of a failure, for the JSON report (never printed)."""
    record: dict[str, Any] = field(default_factory=dict)
    """What the manifest records for a done tile (e.g. a checksum per array written)."""
    node_id: str | None = None
    pid: int | None = None
    peak_rss_mib: float = 0.0
    """The actor process's peak resident memory so far (after this tile)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Small job-specific results, e.g. an aggregation partial table."""


class TileWorker(Protocol):
    """What a tile actor wraps: built once per actor, then called once per tile."""

    def process(self, task: TileTask) -> TileResult: ...
