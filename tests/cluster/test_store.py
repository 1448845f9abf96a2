"""The store contract on every backend (local path, file://, s3:// on loopback moto)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from cluster import store as cstore
from cluster.errors import AlignmentError, LeaseError, StoreError
from cluster.grid import CubeExtent, GridSpec, TileIndex
from cluster.lease import Lease, check_lease

GRID = GridSpec("EPSG:6933", pixel_size=20, tile_size_px=32, chunk_size_px=16)
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
                           storage_options=so)
        group = cstore.open_group(url, so)
        assert cstore.extent_of(group) == EXTENT
        red = group["red"]
        assert red.shards == (3, 32, 32) and red.chunks == (1, 16, 16) and red.fill_value == 0
        block = np.arange(3 * 32 * 32, dtype="uint16").reshape(3, 32, 32) + 1
        tile = TileIndex(11, -3)
        written = cstore.write_tile(group, "red", EXTENT, tile, block, url)
        assert written.nbytes == block.nbytes
        back = cstore.read_tile(group, "red", EXTENT, tile)
        np.testing.assert_array_equal(back, block)
        assert written.crc32 == cstore.tile_crc32(back) != cstore.tile_crc32(back[:, ::-1])
        ds = cstore.open_cube(url, so, chunks=None)
        assert ds.rio.crs.to_epsg() == 6933
        ys, xs = EXTENT.tile_slices(tile)
        np.testing.assert_allclose(ds.red.values[:, ys, xs], block * 1e-4 - 0.1, atol=1e-7)
        assert np.isnan(ds.red.values[:, :32, :32]).all()  # never written: fill -> NaN
        assert np.isnan(ds.ndvi.values).all()
        # with dask (the default) the scaled band is float32, lazily, chunked like the storage
        lazy = cstore.open_cube(url, so)
        assert lazy.red.dtype == np.float32 and lazy.red.chunks is not None
        assert all(c % 16 == 0 for c in lazy.red.data.chunksize[1:])
        np.testing.assert_allclose(lazy.red.values[:, ys, xs], (block * 1e-4 - 0.1).astype(np.float32), rtol=1e-6)

    def test_store__misaligned_region_is_refused(self, target: tuple[str, dict]) -> None:
        url, so = target
        cstore.create_cube(url, EXTENT, TIMES, SPECS, {}, storage_options=so)
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


    def test_store__inspect_tells_absent_ours_and_foreign(self, target: tuple[str, dict]) -> None:
        url, so = target
        assert cstore.inspect_store(url, so).kind == "absent"
        cstore.create_cube(url, EXTENT, TIMES, SPECS, OURS, storage_options=so)
        state = cstore.inspect_store(url, so)
        assert state.kind == "cube" and state.harvest["plan_hash"] == "p1"
        other = url.rstrip("/") + "-other"
        zarr.open_group(cstore.open_store(other, so), mode="w", zarr_format=3).attrs["tool"] = "x"
        assert cstore.inspect_store(other, so).kind == "foreign"
        users = url.rstrip("/") + "-users"
        fs, path = cstore.filesystem(users, so)
        _put(fs, f"{path}/thesis.docx", b"years of work")
        state = cstore.inspect_store(users, so)
        assert state.kind == "foreign" and "thesis.docx" in state.detail

    def test_store__remove_takes_only_what_we_wrote(self, target: tuple[str, dict]) -> None:
        url, so = target
        fs, path = cstore.filesystem(url, so)
        users = url.rstrip("/") + "-users"
        _put(fs, f"{cstore.filesystem(users, so)[1]}/thesis.docx", b"years of work")
        with pytest.raises(StoreError, match=r"refusing to remove .*thesis.docx.*Nothing was removed"):
            cstore.remove_store(users, so)
        assert fs.cat_file(f"{cstore.filesystem(users, so)[1]}/thesis.docx") == b"years of work"

        cstore.create_cube(url, EXTENT, TIMES, SPECS, OURS, storage_options=so)
        group = cstore.open_group(url, so)
        cstore.write_tile(group, "red", EXTENT, TileIndex(11, -3), np.ones((3, 32, 32), "uint16"), url)
        _put(fs, f"{path}/red/notes.txt", b"mine")
        before = sorted(fs.find(path))
        with pytest.raises(StoreError,
                           match=r"also holds 1 file\(s\) harvest-cluster did not write \('red/notes.txt'\)"):
            cstore.remove_store(url, so)
        assert sorted(fs.find(path)) == before  # nothing removed
        fs.rm_file(f"{path}/red/notes.txt")
        assert cstore.remove_store(url, so) == len(before) - 1
        assert cstore.inspect_store(url, so).kind == "absent"

    def test_store__lease_is_exclusive_until_released_or_stale(self, target: tuple[str, dict]) -> None:
        url, so = target
        first = Lease(url, "ingest", "p1", so)
        first.acquire()
        second = Lease(url, "indices", "p2", so)
        with pytest.raises(LeaseError, match=r"being written by another job 'ingest' \(plan 'p1'\).*--break-lease"):
            second.acquire()
        check_lease(url, first.owner, so)
        second.acquire(break_lease=True)
        assert second.broke is not None and second.broke.owner == first.owner
        with pytest.raises(LeaseError, match="now belongs to job 'indices'"):
            check_lease(url, first.owner, so)
        first.renew()
        assert first.lost and "taken over by job 'indices'" in first.lost
        second.release()
        assert second.read() is None
        short = Lease(url, "ingest", "p3", so, ttl_s=0.01)
        short.acquire()
        time.sleep(0.05)
        third = Lease(url, "ingest", "p3", so)
        third.acquire()  # expired: taken over without being asked
        assert third.broke is not None and "expired" in third.stale_reason(third.broke)
        third.release()


def _put(fs, path: str, data: bytes) -> None:  # noqa: ANN001
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)  # local folders; a no-op on S3
    fs.pipe_file(path, data)


OURS = {"harvest": {"written_by": cstore.OWNER_TAG, "job": "ingest", "plan_hash": "p1",
                    "grid": EXTENT.to_dict()}}


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
