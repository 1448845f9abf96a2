"""The store contract on every backend (local path, file://, s3:// on loopback moto)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from cluster import store as cstore
from cluster._shard import decode_shard, encode_shard, get_shard, layout_of, put_shard
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
        assert written.checksum == cstore.tile_checksum(back) != cstore.tile_checksum(back[:, ::-1])
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

    @pytest.mark.parametrize("compression", ["lz4", "zstd", "none"])
    @pytest.mark.parametrize("chunk", [16, 32], ids=["chunk<tile", "chunk==tile"])
    def test_store__whole_shard_path_writes_and_reads_what_zarr_does(
            self, target: tuple[str, dict], compression: str, chunk: int) -> None:
        url, so = target
        grid = GridSpec("EPSG:6933", pixel_size=20, tile_size_px=32, chunk_size_px=chunk)
        extent = CubeExtent(grid, 10, -4, 2, 2)
        n_time = 1 if chunk == 32 and compression == "none" else 3  # (1, tile, tile): an unsharded array
        times = TIMES[:n_time]
        ours, theirs = url.rstrip("/") + "-ours", url.rstrip("/") + "-zarr"
        for u in (ours, theirs):
            cstore.create_cube(u, extent, times, IDENTITY_SPECS, {}, compression=compression, storage_options=so)
        g_ours, g_zarr = cstore.open_group(ours, so), cstore.open_group(theirs, so)
        rng = np.random.default_rng(chunk)
        for spec in IDENTITY_SPECS:
            arr = g_zarr[spec.name]
            assert isinstance(arr, zarr.Array) and not isinstance(layout_of(arr), str)
            assert (arr.shards is None) == (n_time == 1 and chunk == 32)
            for k, tile in enumerate(extent.iter_tiles()):
                block = _tile_block(rng, spec, (n_time, 32, 32), k)
                cstore.write_tile(g_ours, spec.name, extent, tile, block, ours)
                ys, xs = extent.tile_slices(tile)
                arr[:, ys, xs] = block  # zarr's own path
                np.testing.assert_array_equal(cstore.read_tile(g_zarr, spec.name, extent, tile), block)
                np.testing.assert_array_equal(cstore.read_tile(g_ours, spec.name, extent, tile), block)
        fs, p_ours = cstore.filesystem(ours, so)
        _, p_zarr = cstore.filesystem(theirs, so)
        files = sorted(f[len(p_zarr):] for f in fs.find(p_zarr))
        assert sorted(f[len(p_ours):] for f in fs.find(p_ours)) == files
        shards = [f for f in files if f.split("/")[1] in {s.name for s in IDENTITY_SPECS} and "/c/" in f]
        assert len(shards) == len(IDENTITY_SPECS) * 3  # tile 0 is all fill: no object, as zarr leaves it
        for f in files:
            assert fs.cat_file(p_ours + f) == fs.cat_file(p_zarr + f), f
        for spec in IDENTITY_SPECS:  # and zarr reads our store as it reads its own
            np.testing.assert_array_equal(np.asarray(g_zarr[spec.name][:]),
                                          np.asarray(cstore.open_group(ours, so, mode="r")[spec.name][:]))


IDENTITY_SPECS = [cstore.ArraySpec("dn", "uint16", 0, 1e-4, -0.1), cstore.ArraySpec("ndvi", "float32", float("nan")),
                  cstore.ArraySpec("sar", "int16", -9999), cstore.ArraySpec("cls", "uint8", 255),
                  cstore.ArraySpec("zero", "float32", 0.0)]


def _tile_block(rng: np.random.Generator, spec: cstore.ArraySpec, shape: tuple[int, int, int],
                k: int) -> np.ndarray:
    """Tile ``k`` of a test: 0 all fill, 1 some inner chunks and dates all fill, 2 full, 3 odd values."""
    dtype = np.dtype(spec.dtype)
    block = (rng.random(shape) * 250).astype(dtype)
    if k == 0:
        block[:] = spec.fill_value
    elif k == 1:
        block[: shape[0] // 2] = spec.fill_value
        block[-1, :16, 16:] = spec.fill_value
    elif k == 3 and dtype.kind == "f":
        block[-1, :16, :16] = -0.0  # not empty where the fill is 0.0: zarr compares bits
        block[0, 16:, 16:] = np.nan
    return block


def test_store__whole_shard_matches_zarr_for_other_layouts() -> None:
    """Index at the start, ``write_empty_chunks``, bitshuffle: the codec against zarr's, in memory."""
    from zarr.codecs import BloscCodec, BytesCodec, ShardingCodec

    rng = np.random.default_rng(1)
    data = (rng.random((4, 32, 32)) * 9).astype("float32")
    data[:2] = np.nan
    for location in ("start", "end"):
        for empty in (False, True):
            sharding = ShardingCodec(chunk_shape=(1, 16, 8), index_location=location, codecs=[
                BytesCodec(), BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle", typesize=4)])
            stores = [zarr.storage.MemoryStore(), zarr.storage.MemoryStore()]
            a, b = (zarr.create(shape=(4, 64, 32), dtype="float32", codecs=[sharding], chunk_shape=(4, 32, 32),
                                fill_value=np.nan, zarr_format=3, store=s, config={"write_empty_chunks": empty})
                    for s in stores)
            a[:, 32:, :] = data
            layout = layout_of(b)
            assert not isinstance(layout, str) and layout.index_location == location
            put_shard(b, (0, 1, 0), encode_shard(layout, data))
            assert stores[0]._store_dict["c/0/1/0"].to_bytes() == stores[1]._store_dict["c/0/1/0"].to_bytes()
            np.testing.assert_array_equal(decode_shard(layout, get_shard(a, (0, 1, 0))), data)


def test_store__write_tile_falls_back_to_zarr_once_with_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from zarr.codecs import GzipCodec

    url = str(tmp_path / "c.zarr")
    cstore.create_cube(url, EXTENT, TIMES, SPECS, {})
    group = cstore.open_group(url)
    ref = group["red"]
    group.create_array("gz", shape=ref.shape, dtype="uint16", chunks=ref.chunks, shards=ref.shards,
                       fill_value=0, compressors=[GzipCodec()])
    assert "compressor" in str(layout_of(group["gz"]))
    block = np.arange(3 * 32 * 32, dtype="uint16").reshape(3, 32, 32)
    with caplog.at_level("WARNING", logger="cluster.store"):
        for tile in (TileIndex(10, -4), TileIndex(11, -3)):
            cstore.write_tile(group, "gz", EXTENT, tile, block, url)
            np.testing.assert_array_equal(cstore.read_tile(group, "gz", EXTENT, tile), block)
    why = [r.getMessage() for r in caplog.records if "falling back to zarr" in r.getMessage()]
    assert len(why) == 1 and "'gz'" in why[0] and "gzip" in why[0]


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


def test_store__a_killed_writers_leftover_is_replaced_by_the_retry(tmp_path: Path) -> None:
    """An actor killed between writing a shard's temporary file and renaming it leaves
    ``<shard>.harvest-partial``; the tile's retry writes that same name and renames it away,
    so a cube that survived a kill holds exactly the files of a clean one."""
    url = str(tmp_path / "cube.zarr")
    cstore.create_cube(url, EXTENT, TIMES, SPECS, {"harvest": {"grid": EXTENT.to_dict()}})
    group = cstore.open_group(url)
    tile = next(iter(EXTENT.iter_tiles()))
    block = np.arange(3 * 32 * 32, dtype="float32").reshape(3, 32, 32)
    cstore.write_tile(group, "ndvi", EXTENT, tile, block)
    shard = next(p for p in Path(url, "ndvi", "c").rglob("*") if p.is_file())
    leftover = shard.with_name(shard.name + ".harvest-partial")
    leftover.write_bytes(b"half a shard")  # what SIGKILL mid-write leaves
    cstore.write_tile(group, "ndvi", EXTENT, tile, block + 1)
    assert not leftover.exists()
    assert not [p for p in Path(url).rglob("*partial*")]
    np.testing.assert_array_equal(cstore.read_tile(group, "ndvi", EXTENT, tile), block + 1)


def test_store__a_cube_whose_metadata_cannot_be_read_is_never_removed(tmp_path: Path) -> None:
    """A damaged group zarr.json could hide anyone's store: overwrite refuses, nothing goes."""
    url = str(tmp_path / "cube.zarr")
    cstore.create_cube(url, EXTENT, TIMES, SPECS, OURS)
    cstore.write_tile(cstore.open_group(url), "red", EXTENT, TileIndex(11, -3), np.ones((3, 32, 32), "uint16"), url)
    (tmp_path / "cube.zarr" / "zarr.json").write_text('{"node_type": "group", "attri')  # cut short
    before = {p: p.read_bytes() for p in (tmp_path / "cube.zarr").rglob("*") if p.is_file()}
    with pytest.raises(StoreError, match=r"zarr.json that is not valid JSON.*harvest verify"):
        cstore.remove_store(url)
    assert {p: p.read_bytes() for p in (tmp_path / "cube.zarr").rglob("*") if p.is_file()} == before
