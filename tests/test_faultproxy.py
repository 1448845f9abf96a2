"""The fault-injecting S3 proxy (``tests/_faultproxy.py``) against a real loopback moto server.

Everything here is real HTTP on 127.0.0.1: boto3/botocore and s3fs talk to the proxy, the proxy
talks to moto. The one thing patched is botocore's retry backoff in the retry tests, so that
50 retried GETs take a second, not the ~30 s its jittered exponential backoff would sleep.
"""

from __future__ import annotations

import http.client
import io
import random
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import boto3
import pytest
import s3fs
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.retries.standard import ExponentialBackoff

from tests._faultproxy import FaultProxy

pytestmark = pytest.mark.s3

REPO_ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20
# total_max_attempts counts the first try; botocore's plain "max_attempts" counts *retries*
# when given in a client Config (see test_max_attempts_counts_retries).
NO_RETRIES: dict[str, Any] = {"total_max_attempts": 1}

MakeClient = Callable[..., Any]


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """A moto S3 server of this module's own on an ephemeral loopback port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    """Factory for boto3 S3 clients (closed at teardown, so no pooled socket leaks)."""
    clients = []

    def make(endpoint: str, *, retries: dict[str, Any] | None = None, **config: Any) -> Any:
        cfg = Config(retries=retries or {"total_max_attempts": 3}, **config)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=cfg)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def bucket(upstream: str, make_client: MakeClient) -> str:
    """A fresh bucket, created directly on the upstream (not through any proxy)."""
    name = f"fp-{uuid.uuid4().hex[:12]}"
    make_client(upstream).create_bucket(Bucket=name)
    return name


@pytest.fixture
def proxy(upstream: str) -> Iterator[FaultProxy]:
    """A fault-free proxy in front of ``upstream``; tests turn faults on with ``set``."""
    with FaultProxy(upstream, seed=0) as p:
        yield p


def _payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


# -- (a) no faults: a transparent proxy -----------------------------------------------------


def test_boto3_round_trip_through_proxy(proxy: FaultProxy, upstream: str,
                                        make_client: MakeClient) -> None:
    client, direct = make_client(proxy.endpoint), make_client(upstream)
    name = f"fp-{uuid.uuid4().hex[:12]}"
    small, big = b"NDVI tile r3c7\n", _payload(6 * MIB + 123)

    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="scenes/small.txt", Body=small,
                      Metadata={"tile": "r3c7"})
    client.put_object(Bucket=name, Key="scenes/big.bin", Body=big)
    # Above the threshold, boto3 uses multipart: POST ?uploads, concurrent PUT parts, POST.
    client.upload_fileobj(io.BytesIO(big), name, "scenes/multi.bin",
                          Config=TransferConfig(multipart_threshold=5 * MIB,
                                                multipart_chunksize=5 * MIB))

    got = client.get_object(Bucket=name, Key="scenes/small.txt")
    assert got["Body"].read() == small
    assert got["Metadata"] == {"tile": "r3c7"}
    for key in ("scenes/big.bin", "scenes/multi.bin"):
        assert client.get_object(Bucket=name, Key=key)["Body"].read() == big
        assert direct.get_object(Bucket=name, Key=key)["Body"].read() == big  # really stored
    head = client.head_object(Bucket=name, Key="scenes/big.bin")  # no body, Content-Length set
    assert head["ContentLength"] == len(big)
    ranged = client.get_object(Bucket=name, Key="scenes/big.bin", Range="bytes=10-19")
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert ranged["Body"].read() == big[10:20]

    # 304 has no body: the connection must stay in sync for the next request on it.
    with pytest.raises(ClientError) as not_modified:
        client.get_object(Bucket=name, Key="scenes/small.txt", IfNoneMatch=got["ETag"])
    assert not_modified.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304

    listed = client.list_objects_v2(Bucket=name, Prefix="scenes/")
    assert sorted(o["Key"] for o in listed["Contents"]) == [
        "scenes/big.bin", "scenes/multi.bin", "scenes/small.txt"]
    deleted = client.delete_object(Bucket=name, Key="scenes/small.txt")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    client.delete_objects(Bucket=name, Delete={"Objects": [{"Key": "scenes/big.bin"},
                                                           {"Key": "scenes/multi.bin"}]})
    assert client.list_objects_v2(Bucket=name).get("KeyCount") == 0
    client.delete_bucket(Bucket=name)

    stats = proxy.stats()
    assert stats["requests"] == stats["forwarded"] > 10
    assert stats["errors"] == stats["resets"] == stats["delays"] == stats["upstream_errors"] == 0


def test_s3fs_round_trip_through_proxy(proxy: FaultProxy, bucket: str) -> None:
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": proxy.endpoint,
                                          "region_name": "us-east-1"},
                           skip_instance_cache=True)
    small, big = b"zarr.json contents", _payload(6 * MIB + 7, seed=2)

    fs.pipe(f"{bucket}/cube/zarr.json", small)
    with fs.open(f"{bucket}/cube/c/0/0", "wb", block_size=5 * MIB) as f:  # multipart upload
        f.write(big)

    assert fs.cat(f"{bucket}/cube/zarr.json") == small
    assert fs.cat(f"{bucket}/cube/c/0/0") == big
    assert fs.info(f"{bucket}/cube/c/0/0")["size"] == len(big)
    assert sorted(fs.find(f"{bucket}/cube")) == [f"{bucket}/cube/c/0/0",
                                                 f"{bucket}/cube/zarr.json"]
    fs.rm(f"{bucket}/cube", recursive=True)
    fs.invalidate_cache()
    assert not fs.exists(f"{bucket}/cube/zarr.json")
    assert proxy.stats()["forwarded"] == proxy.stats()["requests"]


def test_chunked_request_body_is_forwarded(proxy: FaultProxy, bucket: str,
                                           make_client: MakeClient) -> None:
    # botocore 1.43 sends Content-Length (plus Expect: 100-continue) over plain HTTP; other
    # clients stream with Transfer-Encoding: chunked, which the proxy must de-chunk.
    body = _payload(300_000, seed=3)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        conn.request("PUT", f"/{bucket}/chunked.bin",
                     body=(body[i:i + 65_536] for i in range(0, len(body), 65_536)),
                     encode_chunked=True)
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    finally:
        conn.close()
    got = make_client(proxy.endpoint).get_object(Bucket=bucket, Key="chunked.bin")
    assert got["Body"].read() == body


# -- (b) injected errors ----------------------------------------------------------------------


def test_error_rate_one_fails_matching_gets(proxy: FaultProxy, bucket: str,
                                            make_client: MakeClient) -> None:
    client = make_client(proxy.endpoint, retries=NO_RETRIES)
    client.put_object(Bucket=bucket, Key="scenes/a.tif", Body=b"x")
    proxy.set(error_rate=1.0, match=rf"^(GET|HEAD) /{bucket}/scenes/")
    proxy.clear_stats()

    with pytest.raises(ClientError) as failed:
        client.get_object(Bucket=bucket, Key="scenes/a.tif")
    response = failed.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] in (500, 503)
    assert response["Error"]["Code"] in ("InternalError", "ServiceUnavailable")
    assert response["Error"]["Message"] == "injected"
    with pytest.raises(ClientError) as failed_head:  # HEAD: status only, no XML body
        client.head_object(Bucket=bucket, Key="scenes/a.tif")
    assert failed_head.value.response["Error"]["Code"] in ("500", "503")

    # Requests that do not match pass through, on the same pooled connection.
    client.put_object(Bucket=bucket, Key="scenes/b.tif", Body=b"y")
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 2
    assert proxy.stats() == {"requests": 4, "matched": 2, "forwarded": 2, "errors": 2,
                             "resets": 0, "delays": 0, "refused": 0, "upstream_errors": 0}


def test_max_attempts_counts_retries(proxy: FaultProxy, bucket: str, make_client: MakeClient,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore turns Config(retries={"max_attempts": N}) into N + 1 attempts in all.
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    client = make_client(proxy.endpoint, retries={"max_attempts": 1, "mode": "standard"})
    proxy.set(error_rate=1.0, match=r"^GET ", error_statuses=(503,))
    with pytest.raises(ClientError) as failed:
        client.get_object(Bucket=bucket, Key="missing")
    assert failed.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert failed.value.response["ResponseMetadata"]["RetryAttempts"] == 1
    assert proxy.stats()["errors"] == 2


def test_standard_retries_ride_out_half_failing_gets(
        proxy: FaultProxy, bucket: str, make_client: MakeClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    client = make_client(proxy.endpoint, retries={"max_attempts": 10, "mode": "standard"})
    bodies = {f"scenes/{i:02d}.tif": _payload(1000 + i, seed=i) for i in range(50)}
    for key, body in bodies.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    proxy.set(error_rate=0.5, match=r"^GET /[^?]*/scenes/")
    proxy.clear_stats()

    retries = 0
    for key, body in bodies.items():
        got = client.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == body
        retries += got["ResponseMetadata"]["RetryAttempts"]

    stats = proxy.stats()
    assert stats["errors"] > 0
    assert stats["errors"] == retries  # every injected error was retried, nothing else
    assert stats["forwarded"] == 50


# -- (c) resets, delays -----------------------------------------------------------------------


def test_reset_rate_one_is_a_connection_error(proxy: FaultProxy, bucket: str,
                                              make_client: MakeClient) -> None:
    client = make_client(proxy.endpoint, retries=NO_RETRIES)
    client.put_object(Bucket=bucket, Key="scenes/a.tif", Body=b"x")
    proxy.set(reset_rate=1.0, match=r"^GET ")

    with pytest.raises(ConnectionClosedError) as failed:
        client.get_object(Bucket=bucket, Key="scenes/a.tif")
    assert isinstance(failed.value.kwargs["error"].args[1], ConnectionResetError)
    assert proxy.stats()["resets"] == 1
    client.put_object(Bucket=bucket, Key="scenes/b.tif", Body=b"y")  # a new connection works


def test_delay_slows_requests_and_trips_read_timeouts(proxy: FaultProxy, bucket: str,
                                                      make_client: MakeClient) -> None:
    patient = make_client(proxy.endpoint, retries=NO_RETRIES)
    impatient = make_client(proxy.endpoint, retries=NO_RETRIES, read_timeout=0.2)
    patient.put_object(Bucket=bucket, Key="a", Body=b"x")
    proxy.set(delay_rate=1.0, delay_s=0.5, match=r"^GET ")

    start = time.monotonic()
    assert patient.get_object(Bucket=bucket, Key="a")["Body"].read() == b"x"
    assert time.monotonic() - start >= 0.5
    with pytest.raises(ReadTimeoutError):
        impatient.get_object(Bucket=bucket, Key="a")
    assert proxy.stats()["delays"] == 2


# -- (d) the endpoint going down --------------------------------------------------------------


def test_down_refuses_connections_and_up_restores(proxy: FaultProxy, bucket: str,
                                                  make_client: MakeClient) -> None:
    client = make_client(proxy.endpoint, retries=NO_RETRIES, connect_timeout=1,
                         read_timeout=5)
    client.head_bucket(Bucket=bucket)  # leaves a pooled keep-alive connection behind

    proxy.down()
    assert proxy.is_down
    start = time.monotonic()
    with pytest.raises(EndpointConnectionError):
        client.head_bucket(Bucket=bucket)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
    assert time.monotonic() - start < 5

    proxy.up()
    assert client.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200


# -- (e) reproducibility ----------------------------------------------------------------------


def _fault_sequence(upstream: str, bucket: str, seed: int,
                    make_client: MakeClient) -> list[tuple[str, int | None, float]]:
    with FaultProxy(upstream, seed=seed, error_rate=0.3, reset_rate=0.2, delay_rate=0.2,
                    delay_s=0.01, match=r"^GET ") as proxy:
        client = make_client(proxy.endpoint, retries=NO_RETRIES)
        for _ in range(30):
            try:
                client.get_object(Bucket=bucket, Key="a")["Body"].read()
            except (ClientError, ConnectionClosedError):
                pass
        return [(d.action, d.status, d.delay_s) for d in proxy.history() if d.matched]


def test_same_seed_same_faults(upstream: str, bucket: str, make_client: MakeClient) -> None:
    make_client(upstream).put_object(Bucket=bucket, Key="a", Body=b"x")
    first = _fault_sequence(upstream, bucket, 7, make_client)
    assert len(first) == 30
    assert {action for action, _, _ in first} == {"forward", "error", "reset"}
    assert _fault_sequence(upstream, bucket, 7, make_client) == first
    assert _fault_sequence(upstream, bucket, 8, make_client) != first


# -- running as a separate process ------------------------------------------------------------


def test_runs_as_a_script(upstream: str, bucket: str, make_client: MakeClient,
                          tmp_path: Path) -> None:
    port_file = tmp_path / "proxy-url"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests._faultproxy", "--upstream", upstream, "--error-rate",
         "1.0", "--error-statuses", "503", "--match", "^GET ", "--port-file", str(port_file)],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert proc.poll() is None, "proxy process exited early"
            assert time.monotonic() < deadline, "proxy did not write its port file"
            time.sleep(0.05)
        endpoint = port_file.read_text().strip()
        client = make_client(endpoint, retries=NO_RETRIES)
        client.put_object(Bucket=bucket, Key="a", Body=b"x")
        with pytest.raises(ClientError) as failed:
            client.get_object(Bucket=bucket, Key="a")
        assert failed.value.response["Error"]["Code"] == "ServiceUnavailable"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
