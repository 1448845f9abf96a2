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
from cluster.records import GridTasks, TileTask, plan_for_workers

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
