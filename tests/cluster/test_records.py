"""Task lists that cost the driver nothing per tile, and plans that travel without them."""

from __future__ import annotations

import pickle
import tracemalloc
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.errors import GridError
from cluster.grid import CubeExtent, GridSpec
from cluster.records import GridTasks, Ragged, TileTask, plan_for_workers

GRID = GridSpec("EPSG:6933", pixel_size=10.0, tile_size_px=512)


@given(row0=st.integers(-50, 50), col0=st.integers(-50, 50), nrows=st.integers(1, 12), ncols=st.integers(1, 12),
       data=st.data())
def test_records__grid_tasks_are_the_extents_tiles_in_order(row0: int, col0: int, nrows: int, ncols: int,
                                                           data: st.DataObject) -> None:
    extent = CubeExtent(GRID, row0, col0, nrows, ncols)
    keep = data.draw(st.lists(st.booleans(), min_size=nrows * ncols, max_size=nrows * ncols))
    oracle = [TileTask(t) for t, k in zip(extent.iter_tiles(), keep, strict=True) if k]  # what plans held before
    tasks = GridTasks(extent, keep=keep)
    assert len(tasks) == len(oracle)
    assert list(tasks) == oracle
    assert [tasks[i] for i in range(-len(oracle), len(oracle))] == oracle + oracle
    assert tasks[1::2] == oracle[1::2]
    with pytest.raises(IndexError):
        tasks[len(oracle)]
    assert list(GridTasks(extent)) == [TileTask(t) for t in extent.iter_tiles()]


def test_records__grid_tasks_hold_no_task_per_tile() -> None:
    """A continent's plan (1,000 x 1,000 tiles) in a few bytes: kept tiles cost 4 bytes each."""
    extent = CubeExtent(GRID, 0, 0, 1000, 1000)
    tracemalloc.start()
    try:
        every = GridTasks(extent)
        half = GridTasks(extent, keep=np.arange(1000 * 1000) % 2 == 0)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 4.5 * len(half) + 65_536, f"{held / len(half):.1f} B per kept tile"
    assert len(pickle.dumps(every)) < 1_000
    assert every[-1].tile.id == "r999_c999" and half[-1].tile.id == "r999_c998"
    assert pickle.loads(pickle.dumps(half)) == half != every


def test_records__keep_must_flag_every_tile_of_the_extent() -> None:
    with pytest.raises(GridError, match="expected one per tile of the 2x3 extent"):
        GridTasks(CubeExtent(GRID, 0, 0, 2, 3), keep=[True] * 5)
    with pytest.raises(GridError, match="2 payload"):
        GridTasks(CubeExtent(GRID, 0, 0, 2, 3), keep=[True] * 3 + [False] * 3, payloads=[(1,), (2,)])


@given(lists=st.lists(st.lists(st.integers(0, 2**31 - 1), max_size=6).map(tuple), max_size=20), data=st.data())
def test_records__ragged_payloads_are_the_tuples_they_were_made_from(lists: list[tuple[int, ...]],
                                                                     data: st.DataObject) -> None:
    """Ingest's scene lists, kept flat: every task gets back its own tuple."""
    values = np.array([v for t in lists for v in t], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in lists])]).astype(np.int64)
    ragged = Ragged(values, offsets)
    assert list(ragged) == lists and len(ragged) == len(lists)
    if lists:
        i = data.draw(st.integers(-len(lists), len(lists) - 1))
        assert ragged[i] == lists[i]
    extent = CubeExtent(GRID, 3, 4, 1, len(lists) + 1)
    keep = [True] * len(lists) + [False]
    tasks = GridTasks(extent, keep=keep, payloads=ragged)
    assert [t.payload for t in tasks] == lists
    assert tasks == GridTasks(extent, keep=keep, payloads=Ragged(values.copy(), offsets.copy()))
    with pytest.raises(IndexError):
        ragged[len(lists)]


def test_records__ragged_offsets_must_rise_from_zero_to_the_end() -> None:
    for offsets in ([1, 3], [0, 2], [0, 3, 1, 3], []):
        with pytest.raises(ValueError, match="offsets must rise"):
            Ragged(np.arange(3), np.array(offsets, dtype=np.int64))


def test_records__a_plan_travels_to_workers_without_its_tiles() -> None:
    @dataclass(frozen=True)
    class Plan:
        hash: str
        tiles: Sequence[TileTask]
        bands: tuple[str, ...]

    plan = Plan("ab12", GridTasks(CubeExtent(GRID, 0, 0, 300, 300)), ("red", "nir"))
    shipped = plan_for_workers(plan)
    assert shipped == Plan("ab12", (), ("red", "nir"))
    assert len(plan.tiles) == 90_000  # the driver's plan keeps them
