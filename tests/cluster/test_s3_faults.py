"""Object-storage faults, through a fault-injecting HTTP proxy between Ray workers and moto.

Every request of the job (scene reads, chunk writes, manifest records, the lease) goes
through :class:`tests._faultproxy.FaultProxy` on 127.0.0.1, which answers a share of them
with 500/503, resets connections or delays them. The job must finish with a cube whose
every chunk object is byte-identical to a clean run's; with the endpoint down for good it
must stop with a clear error naming the endpoint, and a rerun after it comes back must
finish the job. Nothing of an existing cube may be removed because storage misbehaved.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from cluster.pipeline import run_ingest
from cluster import store as cstore
from cluster.errors import StoreError
from cluster.verify import verify_store
from tests._data import shared_data
from tests._faultproxy import FaultProxy
from tests.jobs.test_ingest import cbers_config

pytestmark = [pytest.mark.ray, pytest.mark.s3, pytest.mark.slow, pytest.mark.usefixtures("ray_session")]

GRID = {"crs": "EPSG:6933", "pixel_size": 64, "tile_size_px": 32}  # 6 tiles: enough to kill mid-job


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str, ray_session: dict) -> Iterator[dict[str, str]]:
    """A bucket with three CBERS dates and a clean cube ingested straight from moto."""
    import uuid

    import boto3
    import s3fs

    name = f"faults-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": s3_endpoint},
                           skip_instance_cache=True)
    root = shared_data("cbers4_awfi_cerrado_timeseries")
    for f in sorted(root.glob("*_2017-0*.tif")):
        fs.put(str(f), f"{name}/scenes/{f.name}")
    info = {"bucket": name, "scenes": f"s3://{name}/scenes/CBERS-4_AWFI_{{band}}_*.tif"}
    report = run_ingest(_config(info, f"s3://{name}/clean.zarr", s3_endpoint))
    assert report.ok and report.tiles_done >= 4
    yield info


def _config(info: dict[str, str], store: str, endpoint: str, **storage: object):  # noqa: ANN202
    return cbers_config(store, scenes=info["scenes"], grid=GRID, select=["red", "nir"],
                        storage={"endpoint_url": endpoint, "region": "us-east-1", **storage})


def _objects(s3_endpoint: str, prefix: str) -> dict[str, bytes]:
    """Every chunk object and array metadata document under a cube, read straight from moto."""
    import s3fs

    fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": s3_endpoint},
                           skip_instance_cache=True)
    keys = [k for k in fs.find(prefix) if "/c/" in k or (k.endswith("zarr.json") and k != f"{prefix}/zarr.json")]
    return {k[len(prefix):]: fs.cat_file(k) for k in keys}


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(s3_endpoint, seed=7) as p:
        yield p


def test_s3_faults__flaky_storage_gives_identical_bytes(bucket: dict, proxy: FaultProxy, s3_endpoint: str) -> None:
    proxy.set(error_rate=0.2, reset_rate=0.05, delay_rate=0.1, delay_s=0.05)
    store = f"s3://{bucket['bucket']}/flaky.zarr"
    report = run_ingest(_config(bucket, store, proxy.endpoint))
    stats = proxy.stats()
    assert stats["errors"] > 10 and stats["resets"] > 2, stats
    assert report.ok, report.summary()
    assert not report.inputs_rejected  # a 5xx is never taken for a bad scene
    clean = _objects(s3_endpoint, f"{bucket['bucket']}/clean.zarr")
    assert _objects(s3_endpoint, f"{bucket['bucket']}/flaky.zarr") == clean
    assert verify_store(store, {"client_kwargs": {"endpoint_url": s3_endpoint}}).ok


def test_s3_faults__most_scene_reads_answering_503(bucket: dict, proxy: FaultProxy, s3_endpoint: str) -> None:
    proxy.set(error_rate=0.6, match=rf"^(GET|HEAD) /{bucket['bucket']}/scenes/")
    store = f"s3://{bucket['bucket']}/storm.zarr"
    report = run_ingest(_config(bucket, store, proxy.endpoint))
    assert proxy.stats()["errors"] > 20
    assert report.ok and not report.inputs_rejected, report.summary()
    assert _objects(s3_endpoint, f"{bucket['bucket']}/storm.zarr") == \
        _objects(s3_endpoint, f"{bucket['bucket']}/clean.zarr")


def test_s3_faults__endpoint_down_stops_clearly_and_a_rerun_finishes(bucket: dict, proxy: FaultProxy,
                                                                     s3_endpoint: str) -> None:
    store = f"s3://{bucket['bucket']}/down.zarr"
    # few retries and short timeouts: the test waits for the give-up, not for a storm to pass
    cfg = _config(bucket, store, proxy.endpoint, max_attempts=1, connect_timeout_s=2, read_timeout_s=5)
    done: list[str] = []

    def take_down_after_three(result) -> None:  # noqa: ANN001
        done.append(result.tile_id)
        if len(done) == 3:
            proxy.down()

    report = run_ingest(cfg, progress=take_down_after_three)
    assert not report.ok and report.stopped and "object storage did not answer" in report.stopped
    assert any(proxy.endpoint in f["error"] for f in report.failures), report.failures[:3]
    # every tile is accounted for: the ones in flight, waiting for a retry or never started
    # are reported failed ("not finished"), none is lost from the count
    assert report.tiles_done + report.tiles_empty + report.tiles_failed == report.tiles_total
    assert any("not finished" in f["error"] for f in report.failures)
    assert "rerun" in report.summary()
    proxy.up()
    again = run_ingest(cfg)
    assert again.ok and again.tiles_skipped >= 3, again.summary()
    assert _objects(s3_endpoint, f"{bucket['bucket']}/down.zarr") == \
        _objects(s3_endpoint, f"{bucket['bucket']}/clean.zarr")


def test_s3_faults__a_rerun_during_503s_on_metadata_never_deletes(bucket: dict, proxy: FaultProxy,
                                                                  s3_endpoint: str) -> None:
    before = _objects(s3_endpoint, f"{bucket['bucket']}/clean.zarr")
    store = f"s3://{bucket['bucket']}/clean.zarr"
    proxy.set(error_rate=0.5, match=r"zarr\.json")  # a burst: retries ride it out
    again = run_ingest(_config(bucket, store, proxy.endpoint))
    assert again.ok and again.tiles_skipped == again.tiles_total
    proxy.set(error_rate=1.0)  # storage refuses every read of the metadata: an error, not "no cube"
    with pytest.raises(StoreError, match=r"object storage did not answer.*nothing was changed"):
        run_ingest(_config(bucket, store, proxy.endpoint, max_attempts=2).model_copy(
            update={"overwrite": True}))
    assert _objects(s3_endpoint, f"{bucket['bucket']}/clean.zarr") == before
    assert cstore.inspect_store(store, {"client_kwargs": {"endpoint_url": s3_endpoint}}).kind == "cube"


def test_s3_faults__a_scene_the_credentials_may_not_read_is_rejected_by_name(
        bucket: dict, proxy: FaultProxy, s3_endpoint: str) -> None:
    denied = "CBERS-4_AWFI_B16_2017-09-14.tif"
    proxy.set(error_rate=1.0, error_statuses=(403,), match=rf"^(GET|HEAD) /{bucket['bucket']}/scenes/{denied}")
    report = run_ingest(_config(bucket, f"s3://{bucket['bucket']}/denied.zarr", proxy.endpoint))
    assert report.ok and report.inputs_used == 2, report.summary()
    [rejected] = report.inputs_rejected
    assert "2017-09-14" in rejected["item"] and "access denied reading" in rejected["reason"]
    assert denied in rejected["reason"] and "credentials" in rejected["reason"]
