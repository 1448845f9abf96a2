"""Work records that travel between the driver and tile actors: small, frozen, picklable.

Pixels never travel in these: workers read their inputs from storage and write their
outputs to the store themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, cast, runtime_checkable

from typing_extensions import TypeVar  # PEP 696 defaults (typing has them from Python 3.13)

from cluster.grid import TileIndex

__all__ = ["TileTask", "TileResult", "TileWorker", "SummarizedOutput"]

PayloadT = TypeVar("PayloadT", covariant=True, default=Any)
"""A task's payload. Covariant: a task is frozen, so a ``TileTask[tuple[int, int]]`` is a
``TileTask[tuple[int, ...]]``. A bare ``TileTask`` is ``TileTask[Any]``."""
OutputT = TypeVar("OutputT", default=Any)
"""A result's typed output (``IngestFindings``, ``TilePartial``, ...); invariant: a result is
filled in as the worker goes."""
PayloadT_contra = TypeVar("PayloadT_contra", contravariant=True, default=Any)


@dataclass(frozen=True)
class TileTask(Generic[PayloadT]):
    """One unit of work: one grid tile across all dates.

    >>> TileTask(TileIndex(0, 1), (3, 5)).payload
    (3, 5)
    """

    tile: TileIndex
    payload: PayloadT = cast("PayloadT", None)
    """Job-specific, small (e.g. the indices of the scenes that touch this tile); None for
    jobs whose tasks are just a tile (the cast says so to mypy: ``TileTask(tile)`` is a
    ``TileTask[Any]``)."""


@runtime_checkable
class SummarizedOutput(Protocol):
    """An output that says, small and JSON-able, what the report shows of it per tile.

    Outputs without ``summary`` (an aggregation partial, sampled rows: big, and consumed by
    the driver as they arrive) are not shown in the report."""

    def summary(self) -> dict[str, Any]: ...


@dataclass
class TileResult(Generic[OutputT]):
    """What a worker reports for one tile. Counters and timers, never pixels.

    The job's own findings travel typed in ``output`` (a frozen dataclass per job), so
    mypy checks the worker that makes them and the driver code that reads them.
    """

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
    output: OutputT | None = None
    """The job's typed per-tile result (e.g. ``IngestFindings``, an aggregation
    ``TilePartial``); None for a failed tile. Handed to the job's ``on_result`` on the
    driver as it arrives; the report shows only what its ``summary()`` gives
    (:class:`SummarizedOutput`)."""


class TileWorker(Protocol[PayloadT_contra, OutputT]):
    """What a tile actor wraps: built once per actor, then called once per tile.

    ``TileWorker[tuple[int, ...], IngestFindings]`` takes tasks with scene indices and
    returns results whose output is ingest findings; a bare ``TileWorker`` takes any."""

    def process(self, task: TileTask[PayloadT_contra]) -> TileResult[OutputT]: ...
