"""The store contract on every backend (local path, file://, s3:// on loopback moto)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from cluster import store as cstore
from cluster.errors import AlignmentError, StoreError
from cluster.grid import CubeExtent, GridSpec, TileIndex

GRID = GridSpec("EPSG:6933", pixel_size=20, tile_size_px=32)
EXTENT = CubeExtent(GRID, 10, -4, 2, 3)
TIMES = [np.datetime64("2025-05-01"), np.datetime64("2025-05-17"), np.datetime64("2025-06-02")]
SPECS = [cstore.ArraySpec("red", "uint16", 0, 1e-4, -0.1), cstore.ArraySpec("ndvi", "float32", float("nan"))]


class StoreTests:
    """One subclass per backend; each provides ``url`` and ``options``."""

    @pytest.fixture
    def target(self, tmp_path: Path) -> tuple[str, dict]:
        raise NotImplementedError

    def test_store__round_trip_and_fill(self, target: tuple[str, dict]) -> None:
        url, so = target
        cstore.create_cube(url, EXTENT, TIMES, SPECS, {"harvest": {"grid": EXTENT.to_dict()}},
                           chunk_size_px=16, storage_options=so)
        group = cstore.open_group(url, so)
        assert cstore.extent_of(group) == EXTENT
        red = group["red"]
        assert red.shards == (3, 32, 32) and red.chunks == (1, 16, 16) and red.fill_value == 0
        block = np.arange(3 * 32 * 32, dtype="uint16").reshape(3, 32, 32) + 1
        tile = TileIndex(11, -3)
        assert cstore.write_tile(group, "red", EXTENT, tile, block, url) == block.nbytes
        np.testing.assert_array_equal(cstore.read_tile(group, "red", EXTENT, tile), block)
        ds = cstore.open_cube(url, so, chunks=None)
        assert ds.rio.crs.to_epsg() == 6933
        ys, xs = EXTENT.tile_slices(tile)
        np.testing.assert_allclose(ds.red.values[:, ys, xs], block * 1e-4 - 0.1, atol=1e-7)
        assert np.isnan(ds.red.values[:, :32, :32]).all()  # never written: fill -> NaN
        assert np.isnan(ds.ndvi.values).all()

    def test_store__misaligned_region_is_refused(self, target: tuple[str, dict]) -> None:
        url, so = target
        cstore.create_cube(url, EXTENT, TIMES, SPECS, {}, chunk_size_px=16, storage_options=so)
        arr = cstore.open_group(url, so)["red"]
        assert isinstance(arr, zarr.Array)
        with pytest.raises(AlignmentError, match=r"not aligned to its shards \(3, 32, 32\) on axis 1"):
            cstore.check_aligned(arr, (slice(0, 3), slice(16, 48), slice(0, 32)))
        with pytest.raises(AlignmentError, match="on axis 0"):
            cstore.check_aligned(arr, (slice(0, 2), slice(0, 32), slice(0, 32)))
        cstore.check_aligned(arr, (slice(0, 3), slice(32, 64), slice(64, 96)))

    def test_store__manifest_marks_and_lists(self, target: tuple[str, dict]) -> None:
        url, so = target
        m = cstore.Manifest(url, "ingest", "abc", so)
        assert m.done() == set()
        m.mark("r1_c2", {"status": "done"})
        m.mark("r1_c3", {"status": "empty"})
        assert m.done() == {"r1_c2", "r1_c3"}
        assert cstore.Manifest(url, "ingest", "other-plan", so).done() == set()
        m.clear()
        assert m.done() == set()


class TestLocalStore(StoreTests):
    @pytest.fixture
    def target(self, tmp_path: Path) -> tuple[str, dict]:
        return str(tmp_path / "c.zarr"), {}


class TestFileUrlStore(StoreTests):
    @pytest.fixture
    def target(self, tmp_path: Path) -> tuple[str, dict]:
        return f"file://{tmp_path}/c.zarr", {}


@pytest.mark.s3
class TestS3Store(StoreTests):
    @pytest.fixture
    def target(self, s3_bucket: str, s3_options: dict) -> tuple[str, dict]:
        return f"s3://{s3_bucket}/cubes/c.zarr", s3_options


def test_store__missing_cube_is_explained(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="run 'harvest ingest' first"):
        cstore.open_group(str(tmp_path / "nothing.zarr"), mode="r")
