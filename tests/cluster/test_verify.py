"""``harvest verify``: damage is found precisely, and a rerun repairs exactly the damaged tiles."""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import pytest

from cluster.pipeline import run_ingest
from cluster import store as cstore
from cluster.grid import TileIndex
from cluster.verify import verify_store
from jobs import verify as verify_job
from tests.jobs.test_ingest import cbers_config

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


def _shards(store: str, array: str) -> list[str]:
    return sorted(p for p in glob.glob(f"{store}/{array}/c/**", recursive=True) if os.path.isfile(p))


def _tile_of(store: str, shard: str) -> str:
    """The grid tile id of a shard file ``<array>/c/<t>/<y>/<x>``."""
    extent = cstore.extent_of(cstore.open_group(store, mode="r"))
    _, y, x = (int(p) for p in Path(shard).parts[-3:])
    return TileIndex(extent.row0 + y, extent.col0 + x).id


def test_verify__finds_damage_and_a_rerun_repairs_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "c.zarr")
    cfg = cbers_config(store, grid={"crs": "EPSG:6933", "pixel_size": 64, "tile_size_px": 32}, select=["red", "nir"])
    assert run_ingest(cfg).ok
    clean = verify_store(store)
    assert clean.ok and clean.tiles_checked == clean.jobs["ingest"]["done"] + clean.jobs["ingest"]["empty"] > 0
    assert verify_job.main([store]) == 0
    before = {p: Path(p).read_bytes() for p in _shards(store, "red") + _shards(store, "nir")}

    # flip bytes inside one shard of 'red' and delete one shard of 'nir'
    red, nir = _shards(store, "red"), _shards(store, "nir")
    data = bytearray(Path(red[0]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(red[0]).write_bytes(bytes(data))
    os.remove(nir[-1])
    found = verify_store(store)
    assert not found.ok
    damaged = {(p.tile, p.array) for p in found.problems if p.kind == "damaged"}
    assert damaged == {(_tile_of(store, red[0]), "red"), (_tile_of(store, nir[-1]), "nir")}, found.summary()
    assert all("verify --forget-damaged" in p.fix for p in found.problems)
    capsys.readouterr()
    assert verify_job.main([store, "--json"]) == 1
    listed = json.loads(capsys.readouterr().out)["problems"]
    assert {(p["tile"], p["array"]) for p in listed} == damaged

    # forget the damaged tiles' records, rerun: exactly those tiles are rewritten
    assert verify_job.main([store, "--forget-damaged"]) == 1
    rerun = run_ingest(cfg)
    assert rerun.ok and rerun.tiles_done + rerun.tiles_empty == 2, rerun.summary()
    assert verify_store(store).ok
    after = {p: Path(p).read_bytes() for p in _shards(store, "red") + _shards(store, "nir")}
    assert after == before

    # a missing record is an incomplete cube, not a clean one
    record = sorted(glob.glob(f"{cstore.meta_url(store)}/manifest/ingest/*/*.json"))[0]
    os.remove(record)
    found = verify_store(store)
    assert [p.kind for p in found.problems] == ["incomplete"]
    assert found.problems[0].tile == Path(record).stem


def test_verify__checks_records_that_name_crc32_as_older_versions_wrote_them(tmp_path: Path) -> None:
    # manifests written before the switch to XXH3 hold zlib CRC-32s under "crc32": still
    # verified with that algorithm, and damage is still found
    store = str(tmp_path / "c.zarr")
    cfg = cbers_config(store, grid={"crs": "EPSG:6933", "pixel_size": 64, "tile_size_px": 32}, select=["red"])
    assert run_ingest(cfg).ok
    group = cstore.open_group(store, mode="r")
    extent = cstore.extent_of(group)
    rewritten = 0
    for path in glob.glob(f"{cstore.meta_url(store)}/manifest/ingest/*/*.json"):
        rec = json.loads(Path(path).read_text())
        if cstore.CHECKSUM not in rec:
            continue  # an empty tile: no checksums
        raw = cstore.read_tile(group, "red", extent, TileIndex.from_id(Path(path).stem))
        del rec[cstore.CHECKSUM]
        rec["crc32"] = {"red": cstore.tile_checksum(raw, "crc32")}
        Path(path).write_text(json.dumps(rec))
        rewritten += 1
        last = path
    assert rewritten > 0
    assert verify_store(store).ok
    # another valid shard in one tile's place: it reads fine, only the checksum can tell
    tid = Path(last).stem
    raw = cstore.read_tile(group, "red", extent, TileIndex.from_id(tid))
    cstore.write_tile(cstore.open_group(store, mode="r+"), "red", extent, TileIndex.from_id(tid), raw + 1, store)
    found = verify_store(store)
    assert [(p.kind, p.tile, p.array) for p in found.problems] == [("damaged", tid, "red")], found.summary()
    assert "crc32" in found.problems[0].what


def test_verify__lists_a_shard_write_a_killed_job_left(tmp_path: Path) -> None:
    store = str(tmp_path / "c.zarr")
    cfg = cbers_config(store, grid={"crs": "EPSG:6933", "pixel_size": 64, "tile_size_px": 32}, select=["red"])
    assert run_ingest(cfg).ok and verify_store(store).ok
    shard = _shards(store, "red")[0]
    Path(shard + ".harvest-partial").write_bytes(b"half a shard")  # what a SIGKILL mid-write leaves
    found = verify_store(store)
    assert [(p.kind, p.tile, p.array) for p in found.problems] == [("incomplete", _tile_of(store, shard), "red")]
    assert "interrupted" in found.problems[0].what and "rerun" in found.problems[0].fix


def test_verify__refuses_what_is_not_a_cube(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("mine")
    assert verify_job.main([str(folder)]) == 2
    assert "holds no harvest cube" in capsys.readouterr().err
