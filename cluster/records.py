"""Work records that travel between the driver and tile actors: small, frozen, picklable.

Pixels never travel in these: workers read their inputs from storage and write their
outputs to the store themselves.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Iterator, Protocol, Sequence, cast, overload, runtime_checkable

import numpy as np
from typing_extensions import TypeVar  # PEP 696 defaults (typing has them from Python 3.13)

from cluster.errors import GridError
from cluster.grid import CubeExtent, TileIndex

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["TileTask", "GridTasks", "Ragged", "TileResult", "TileWorker", "SummarizedOutput", "plan_for_workers"]

PayloadT = TypeVar("PayloadT", covariant=True, default=Any)
"""A task's payload. Covariant: a task is frozen, so a ``TileTask[tuple[int, int]]`` is a
``TileTask[tuple[int, ...]]``. A bare ``TileTask`` is ``TileTask[Any]``."""
OutputT = TypeVar("OutputT", default=Any)
"""A result's typed output (``IngestFindings``, ``TilePartial``, ...); invariant: a result is
filled in as the worker goes."""
PayloadT_contra = TypeVar("PayloadT_contra", contravariant=True, default=Any)
PlanT = TypeVar("PlanT", bound="DataclassInstance")


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


class Ragged(Sequence[tuple[int, ...]]):
    """Tuples of ints of different lengths, stored flat: item ``i`` is
    ``values[offsets[i]:offsets[i + 1]]``, made into a tuple when asked for.

    Ingest's per-tile scene lists (about 58 per tile with a season of Sentinel-2 granules)
    take 4 bytes per entry here, against 8 and a tuple per tile as Python objects.

    >>> r = Ragged(np.array([0, 1, 1, 2], np.int32), np.array([0, 1, 1, 4]))
    >>> len(r), list(r)
    (3, [(0,), (), (1, 1, 2)])
    """

    def __init__(self, values: np.ndarray, offsets: np.ndarray) -> None:
        if offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(values) \
                or np.any(np.diff(offsets) < 0):
            raise ValueError(f"offsets must rise from 0 to len(values) = {len(values)}")
        self.values = values
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, i: int) -> tuple[int, ...]: ...

    @overload
    def __getitem__(self, i: slice) -> list[tuple[int, ...]]: ...

    def __getitem__(self, i: int | slice) -> tuple[int, ...] | list[tuple[int, ...]]:
        if isinstance(i, slice):
            return [self[k] for k in range(len(self))[i]]
        k = range(len(self))[i]  # negative positions and IndexError, as a tuple has them
        return tuple(self.values[self.offsets[k]:self.offsets[k + 1]].tolist())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ragged):
            return NotImplemented
        return np.array_equal(self.values, other.values) and np.array_equal(self.offsets, other.offsets)

    def __repr__(self) -> str:
        return f"Ragged({len(self)} items, {len(self.values)} values)"


class GridTasks(Sequence[TileTask]):
    """The task list of a plan: every tile of ``extent`` in row-major order
    (``extent.iter_tiles()``'s), or the tiles ``keep`` flags (one flag per tile of the
    extent, row-major); task ``i``'s payload is ``payloads[i]`` (None without payloads).

    Tasks are made when asked for. A plan over a continent holds the extent and 4 bytes per
    kept tile instead of 100,000 task objects of ~150 bytes each, so the driver's memory
    does not grow with the tiles of an ``indices``, ``aggregate`` or ``classify`` job
    (ingest's payloads, a scene list per tile, are kept flat in a :class:`Ragged`).

    >>> from cluster.grid import GridSpec
    >>> extent = CubeExtent(GridSpec("EPSG:6933", 10.0, 512), row0=5, col0=7, nrows=2, ncols=3)
    >>> tasks = GridTasks(extent)
    >>> len(tasks), tasks[0].tile, tasks[-1].tile
    (6, TileIndex(row=5, col=7), TileIndex(row=6, col=9))
    >>> [t.tile.id for t in GridTasks(extent, keep=[0, 1, 0, 0, 0, 1])]
    ['r5_c8', 'r6_c9']
    >>> GridTasks(extent, keep=[0, 1, 0, 0, 0, 1], payloads=["a", "b"])[1].payload
    'b'
    """

    def __init__(self, extent: CubeExtent, keep: Sequence[bool] | np.ndarray | None = None,
                 payloads: Sequence[Any] | None = None) -> None:
        self.extent = extent
        self._kept: np.ndarray | None = None
        if keep is not None:
            flags = np.asarray(keep, dtype=bool)
            if flags.shape != (extent.nrows * extent.ncols,):
                raise GridError(f"keep has {flags.size} flag(s); expected one per tile of the "
                                f"{extent.nrows}x{extent.ncols} extent ({extent.nrows * extent.ncols})")
            self._kept = np.flatnonzero(flags).astype(np.int32 if flags.size < 2**31 else np.int64)
        if payloads is not None and len(payloads) != len(self):
            raise GridError(f"{len(payloads)} payload(s) for {len(self)} tile(s); expected one per task")
        self.payloads = payloads

    def __len__(self) -> int:
        return self.extent.nrows * self.extent.ncols if self._kept is None else len(self._kept)

    @overload
    def __getitem__(self, i: int) -> TileTask: ...

    @overload
    def __getitem__(self, i: slice) -> list[TileTask]: ...

    def __getitem__(self, i: int | slice) -> TileTask | list[TileTask]:
        if isinstance(i, slice):
            return [self[k] for k in range(len(self))[i]]
        i = range(len(self))[i]  # negative positions and IndexError, as a tuple has them
        r, c = divmod(i if self._kept is None else int(self._kept[i]), self.extent.ncols)
        tile = TileIndex(self.extent.row0 + r, self.extent.col0 + c)
        return TileTask(tile) if self.payloads is None else TileTask(tile, self.payloads[i])

    def __iter__(self) -> Iterator[TileTask]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GridTasks):
            return NotImplemented
        return self.extent == other.extent and list(self) == list(other)  # rare: tests, plan equality

    def __repr__(self) -> str:
        return f"GridTasks({len(self)} of {self.extent.nrows}x{self.extent.ncols} tiles)"


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


def plan_for_workers(plan: PlanT) -> PlanT:
    """A job's plan as its tile workers get it: without its task list (``tiles``).

    Each task reaches an actor with its own tile and payload, so no worker needs the list.
    Left in, it was pickled into the worker factory that every actor fetches and then kept
    by every actor: a copy of the plan per actor that grows with the tiles (69 B per tile
    pickled, 2.6 MiB at 100,000 tiles, more for ingest, whose tasks carry scene lists).

    >>> from cluster.grid import TileIndex
    >>> @dataclass(frozen=True)
    ... class Plan:
    ...     hash: str
    ...     tiles: tuple[TileTask, ...]
    >>> plan_for_workers(Plan("ab12", (TileTask(TileIndex(0, 0)),)))
    Plan(hash='ab12', tiles=())
    """
    return dataclasses.replace(plan, tiles=())
