"""Where the cube is: one value, normalised once, that knows its derived places and keeps
credentials out of what travels to workers."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from cluster import store as cstore
from cluster.config import TileJobConfig
from cluster.location import StoreLocation, has_protocol, is_remote, local_path, norm_store, url_protocol

KEY = "AKIAFAKEKEY7Q2W3E4R5"
SECRET = "fAkE/SeCrEt+0123456789abcdefGHIJKLMNopqr"


@pytest.mark.parametrize(("url", "protocol", "remote"), [
    ("cube.zarr", "file", False),
    ("/data/cube.zarr", "file", False),
    ("file:///data/cube.zarr", "file", False),
    ("FILE:///data/cube.zarr", "file", False),
    ("s3://bucket/cube.zarr", "s3", True),
    ("S3://bucket/cube.zarr", "s3", True),
    ("memory://x/cube.zarr", "memory", True),
    ("https://host/scene.tif", "https", True),
], ids=["relative", "absolute", "file-url", "file-url-upper", "s3", "s3-upper", "memory", "https"])
def test_url_protocol__local_paths_and_file_urls_are_file(url: str, protocol: str, remote: bool) -> None:
    assert url_protocol(url) == protocol
    assert is_remote(url) is remote
    assert has_protocol(url) is ("://" in url)


def test_local_path__strips_file_only() -> None:
    assert local_path("file:///data/a.tif") == "/data/a.tif"
    assert local_path("scenes/a.tif") == "scenes/a.tif"
    assert local_path("s3://b/a.tif") == "s3://b/a.tif"


@pytest.mark.parametrize(("given", "expected"), [
    ("cube.zarr", os.path.join(os.getcwd(), "cube.zarr")),
    ("cube.zarr/", os.path.join(os.getcwd(), "cube.zarr")),
    ("/data/x/../cube.zarr", "/data/cube.zarr"),
    ("file:///data/cube.zarr/", "/data/cube.zarr"),
    ("s3://bucket/cubes/kz.zarr", "s3://bucket/cubes/kz.zarr"),
    ("s3://bucket/cubes/kz.zarr//", "s3://bucket/cubes/kz.zarr"),
], ids=["relative", "relative-slash", "dotdot", "file-url", "s3", "s3-slashes"])
def test_store_location__url_normalised_once(given: str, expected: str) -> None:
    loc = StoreLocation(given)
    assert loc.url == expected == loc.shown == str(loc)
    assert StoreLocation(loc.url) == loc  # idempotent
    assert loc.shown == cstore.shown(given)  # the store's old helper says the same


def test_store_location__local_and_remote() -> None:
    local, remote = StoreLocation("file:///tmp/c.zarr"), StoreLocation("s3://b/c.zarr")
    assert (local.protocol, local.is_local) == ("file", True)
    assert (remote.protocol, remote.is_local) == ("s3", False)
    assert cstore.is_local(local) and not cstore.is_local(remote)


def test_store_location__empty_url_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        StoreLocation("")


def test_store_location__derived_places() -> None:
    cube = StoreLocation("s3://b/cubes/kz.zarr/", {"anon": True})
    meta = "s3://b/cubes/kz.zarr.harvest"
    assert cube.meta.url == meta == cstore.meta_url("s3://b/cubes/kz.zarr/")
    assert cube.array("ndvi").url == "s3://b/cubes/kz.zarr/ndvi"
    assert cube.manifest("ingest").url == f"{meta}/manifest/ingest"
    assert cube.manifest("ingest", "3f2a").url == f"{meta}/manifest/ingest/3f2a"
    assert cube.lease.url == f"{meta}/lease.json"
    assert cube.report("indices").url == f"{meta}/indices-report.json"
    assert cube.stac.url == f"{meta}/collection.json"
    assert cube.statistics.suffixed("_crop_areas").url == f"{meta}/statistics_crop_areas"
    assert cube.name == "kz.zarr"
    # every derived place is reached the same way as the cube
    assert cube.lease.storage_options == {"anon": True}


def test_store_location__derived_places_are_where_the_jobs_write(tmp_path: Path) -> None:
    cube = StoreLocation(str(tmp_path / "cube.zarr"))
    manifest = cstore.Manifest(str(tmp_path / "cube.zarr"), "ingest", "p1")
    manifest.mark("0_0", {"tile": "0_0"})
    assert (Path(cube.manifest("ingest", "p1").url) / "0_0.json").is_file()
    assert manifest.done() == {"0_0"}
    cstore.write_json(cube.report("ingest"), {"ok": True})
    assert cstore.read_json(str(tmp_path / "cube.zarr.harvest" / "ingest-report.json")) == {"ok": True}


def test_store_location__filesystem() -> None:
    fs, path = StoreLocation("file:///tmp/c.zarr").filesystem()
    assert fs.protocol[0] == "file" and path == "/tmp/c.zarr"
    fs, path = StoreLocation("memory://x/c.zarr").filesystem()
    assert "memory" in fs.protocol and path.endswith("x/c.zarr")


def test_norm_store__string_at_the_edge_location_passes_through() -> None:
    loc = norm_store("s3://b/c.zarr", {"anon": True})
    assert loc.url == "s3://b/c.zarr" and loc.storage_options == {"anon": True}
    assert norm_store(loc) is loc
    assert norm_store(Path("/data/c.zarr")).url == "/data/c.zarr"
    with pytest.raises(ValueError, match="carries its own"):
        norm_store(loc, {"anon": False})


def _config() -> TileJobConfig:
    return TileJobConfig.model_validate({
        "store": "s3://bucket/cube.zarr/",
        "storage": {"endpoint_url": "http://127.0.0.1:9000", "region": "eu-central-1", "key": KEY,
                    "secret": SECRET},
    })


def test_config_location__built_from_store_and_storage() -> None:
    loc = _config().location()
    assert loc.url == "s3://bucket/cube.zarr"
    assert loc.storage_options["key"] == KEY  # the driver's copy reaches the store with the keys
    assert loc.storage_options["client_kwargs"] == {"endpoint_url": "http://127.0.0.1:9000",
                                                    "region_name": "eu-central-1"}
    assert KEY not in repr(loc) and SECRET not in repr(loc)


def test_config_location__worker_copy_pickles_without_secrets() -> None:
    loc = _config().location()
    worker = loc.for_workers()
    data = pickle.dumps(worker)
    assert KEY.encode() not in data and SECRET.encode() not in data
    back = pickle.loads(data)
    assert back == loc and back.url == loc.url
    # the rest of the settings travel: endpoint, region, retries
    assert back.storage_options["client_kwargs"]["endpoint_url"] == "http://127.0.0.1:9000"
    assert back.storage_options["config_kwargs"]["retries"]["mode"] == "standard"
    assert worker.lease.storage_options == back.storage_options  # derived places stay secret-free
    # the same rule as the config's own worker options
    assert back.storage_options == _config().storage.for_workers()


def test_config_location__client_kwargs_secrets_dropped_too() -> None:
    loc = StoreLocation("s3://b/c.zarr", {"token": "t", "client_kwargs": {
        "endpoint_url": "http://x", "aws_secret_access_key": SECRET}})
    assert loc.for_workers().storage_options == {"client_kwargs": {"endpoint_url": "http://x"}}
