"""A real multi-node Ray cluster on 127.0.0.1 with token auth, driven over HTTP.

Covers ``harvest submit``: the job runs on more than one node, logs are streamed
with secrets redacted, the job's exit status comes back, a GPU request on a
CPU-only cluster fails fast, and a request without the token is refused.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from jobs import submit
from tests.cluster_multinode._cluster import REPO_ROOT, LocalRayCluster

# Starts 3 Ray nodes (~25 s on 2 cores) and runs 2 real jobs (~15 s each): ~70 s in all.
pytestmark = pytest.mark.slow

PROBE = "tests.cluster_multinode._probe_job"
SECRET = "probe-secret-value-0123456789"


@pytest.fixture
def probe_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
                 multinode_cluster: LocalRayCluster):
    """Write a probe config inside the repo (the working dir) and point env at the cluster."""
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(multinode_cluster.token_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    created: list[Path] = []

    def make(name: str, text: str) -> str:
        path = Path(__file__).with_name(f"_tmp_{name}.yaml")
        path.write_text(text)
        created.append(path)
        return str(path.relative_to(REPO_ROOT))

    yield make
    for path in created:
        path.unlink(missing_ok=True)


def _submit(cluster: LocalRayCluster, config: str, *extra: str) -> list[str]:
    return [PROBE, "--config", config, "--address", cluster.address,
            "--python", sys.executable, *extra]


def test_submit__wait_runs_on_several_nodes_and_streams_redacted_logs(
    multinode_cluster, probe_config, capsys
):
    config = probe_config("ok", "tasks: 6\nsleep_s: 0.5\nprint_env: [AWS_SECRET_ACCESS_KEY]\n")
    code = submit.main(_submit(multinode_cluster, config, "--wait", "--timeout-s", "120"))
    out = capsys.readouterr().out
    assert code == 0, out
    line = next(x for x in out.splitlines() if x.startswith("PROBE_RESULT "))
    result = json.loads(line.removeprefix("PROBE_RESULT "))
    assert result["cluster_nodes"] == 3
    assert len(result["node_ids"]) > 1, result  # work ran on more than one node
    assert result["node_ips"] == ["127.0.0.1"]  # and the cluster stayed on loopback
    # The job saw the forwarded secret, the terminal did not.
    assert "env AWS_SECRET_ACCESS_KEY=***" in out
    assert SECRET not in out
    assert "SUCCEEDED" in out


def test_submit__wait_returns_the_jobs_exit_code(multinode_cluster, probe_config, capsys):
    from ray.job_submission import JobSubmissionClient

    config = probe_config("fail", "tasks: 2\nsleep_s: 0.1\nexit_code: 7\n")
    code = submit.main(_submit(multinode_cluster, config, "--wait", "--submission-id",
                               "harvest-probe-exit-7"))
    out = capsys.readouterr().out
    assert code == 7, out
    client = JobSubmissionClient(multinode_cluster.address, headers=multinode_cluster.headers)
    info = client.get_job_info("harvest-probe-exit-7")
    assert str(info.status) == "FAILED"
    # Credentials travel in the runtime env only, never in the job's metadata.
    assert SECRET not in json.dumps(info.metadata)
    assert info.metadata["harvest_job"] == PROBE


def test_submit__gpu_request_on_cpu_cluster_fails_fast(multinode_cluster, probe_config, capsys):
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(multinode_cluster.address, headers=multinode_cluster.headers)
    before = len(client.list_jobs())
    config = probe_config("gpu", "tasks: 1\nresources:\n  num_gpus: 1\n")
    start = time.monotonic()
    code = submit.main(_submit(multinode_cluster, config, "--wait"))
    elapsed_s = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 2
    assert "asks for GPU=1" in err and "3 alive node(s)" in err
    assert elapsed_s < 10
    assert len(client.list_jobs()) == before  # nothing was submitted


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer not-the-token"}, 403)],
    ids=["no-token", "wrong-token"],
)
def test_jobs_api__refuses_requests_without_the_token(multinode_cluster, headers, status):
    body = json.dumps({"entrypoint": "echo should-not-run"}).encode()
    request = urllib.request.Request(
        multinode_cluster.address + "/api/jobs/", data=body, method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    info.value.close()
    assert info.value.code == status
    # ... while the same request with the token is accepted (listing, no job started).
    jobs = multinode_cluster.get_json("/api/jobs/")
    assert all(j["entrypoint"] != "echo should-not-run" for j in jobs)


def test_submit__without_token_is_refused_with_a_clear_message(
    multinode_cluster, probe_config, monkeypatch, capsys
):
    config = probe_config("notoken", "tasks: 1\n")
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    monkeypatch.setenv("HOME", str(multinode_cluster.base / "nobody"))  # no ~/.ray/auth_token
    code = submit.main(_submit(multinode_cluster, config))
    assert code == 3
    assert "HTTP 401" in capsys.readouterr().err


def test_submit__run_ingests_and_computes_indices_into_s3_on_several_nodes(
    multinode_cluster, probe_config, s3_endpoint, s3_bucket, s3_options, monkeypatch, capsys
):
    """The real pipeline as a Ray job over HTTP: CBERS scenes on loopback S3 -> cube on S3,
    tiles spread over the cluster's nodes (read back from the job's own report)."""
    import s3fs
    import yaml

    from cluster import store as cstore
    from tests._data import shared_data

    fs = s3fs.S3FileSystem(**s3_options, skip_instance_cache=True)
    root = shared_data("cbers4_awfi_cerrado_timeseries")
    for f in sorted(root.glob("*_2017-*.tif")):
        fs.put(str(f), f"{s3_bucket}/scenes/{f.name}")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    store = f"s3://{s3_bucket}/cubes/cbers.zarr"
    config = probe_config("run", yaml.safe_dump({
        "store": store,
        "max_actors": 3,
        "ingest": {"scenes": [f"s3://{s3_bucket}/scenes/CBERS-4_AWFI_{{band}}_*.tif"],
                   "sensor": "cbers4-awfi",
                   "grid": {"crs": "EPSG:6933", "pixel_size": 64, "tile_size_px": 16}},
        "indices": {"kernels": ["ndvi", "evi"]},
    }))
    code = submit.main(["run", "--config", config, "--address", multinode_cluster.address,
                        "--python", sys.executable, "--wait", "--timeout-s", "300"])
    out = capsys.readouterr().out
    assert code == 0, out
    report = cstore.read_json(f"{cstore.meta_url(store)}/ingest-report.json", s3_options)
    assert report["ok"] and report["tiles_done"] > 6
    assert len(report["tiles_per_node"]) > 1, report["tiles_per_node"]
    cube = cstore.open_cube(store, s3_options, chunks=None)
    assert {"red", "nir", "ndvi", "evi"} <= set(cube.data_vars)
    ndvi = ((cube.nir - cube.red) / (cube.nir + cube.red)).astype("float32")
    import numpy as np

    np.testing.assert_allclose(cube.ndvi.values, ndvi.values, rtol=2e-5, atol=2e-6, equal_nan=True)
    assert "testing" not in fs.cat(f"{s3_bucket}/cubes/cbers.zarr/zarr.json").decode()
