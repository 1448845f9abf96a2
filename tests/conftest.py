"""Shared fixtures: one local Ray for the whole run, one S3 server on loopback.

Both bind to 127.0.0.1. Ray's token authentication is disabled for the shared session
(set explicitly: Ray >= 2.59 turns it on by default for ``ray.init()``); the multi-node
tests start their own cluster with tokens on.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

# Set before Ray or botocore are imported anywhere in the test process.
_HOME = tempfile.mkdtemp(prefix="harvest-test-home-")
os.environ.update({
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "0",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    # Ray's own switch to keep node addresses on loopback: without it a second driver (the
    # killed-ingest subprocess) turns "127.0.0.1:port" into the host's interface address
    # (services.resolve_ip_for_localhost) and cannot reach a GCS bound to 127.0.0.1.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # Test scenes are a few thousand pixels; on a real GPU numba warns that such small grids
    # under-use the device, and warnings are errors here. Production tiles are megapixels.
    "NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS": "0",
})
os.environ.pop("RAY_ADDRESS", None)
os.environ.pop("AWS_PROFILE", None)
os.environ.setdefault("HOME", _HOME)
os.environ["HOME"] = _HOME  # Ray writes ~/.ray; keep the user's home untouched

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=40, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=40)
settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "dev")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on an ephemeral loopback port (as zarr's and s3fs's own tests do)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    yield endpoint
    server.stop()


@pytest.fixture(scope="session")
def ray_session(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One local Ray for the whole test run: 2 CPUs, small object store, loopback only.

    The S3 endpoint reaches the workers through the runtime environment, and so does a
    download cache of the run's own (remote parcel files), not the user's.
    """
    import ray

    os.environ["HARVEST_CACHE_DIR"] = str(tmp_path_factory.mktemp("harvest-cache"))
    env = {
        "HARVEST_CACHE_DIR": os.environ["HARVEST_CACHE_DIR"],
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    ctx = ray.init(
        num_cpus=2,
        object_store_memory=200 * 1024 * 1024,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        runtime_env={"env_vars": env},
        configure_logging=False,
        log_to_driver=False,
    )
    yield {"gcs_address": ctx.address_info["gcs_address"], **env}
    ray.shutdown()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> Iterator[str]:
    """A fresh bucket per test; yields its name."""
    import uuid

    import boto3

    name = f"harvest-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    yield name


@pytest.fixture
def s3_options(s3_endpoint: str) -> dict[str, object]:
    """fsspec storage options for the loopback S3 server."""
    return {"client_kwargs": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
            "key": "testing", "secret": "testing"}


@pytest.fixture
def tmp_store(tmp_path: Path) -> str:
    return str(tmp_path / "cube.zarr")
