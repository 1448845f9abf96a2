"""A worker node lost mid-job: the job completes on the nodes left, with an identical cube.

Its own 3-node cluster (the node is really killed: its raylet, workers and agents get
SIGKILL), so the other multi-node tests keep theirs intact.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time
from pathlib import Path

import pytest
import yaml

from cluster.pipeline import run_ingest
from cluster import store as cstore
from tests.cluster_multinode._cluster import REPO_ROOT, LocalRayCluster
from tests.jobs.test_ingest import cbers_config

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.fixture(scope="module")
def cluster() -> LocalRayCluster:
    with LocalRayCluster(workers=2, cpus_per_node=1) as c:
        yield c


def _chunks(store: str) -> dict[str, bytes]:
    return {os.path.relpath(p, store): Path(p).read_bytes()
            for p in glob.glob(f"{store}/**/c/**", recursive=True) if os.path.isfile(p)}


def test_node_loss__job_completes_on_the_nodes_left(cluster: LocalRayCluster, tmp_path: Path,
                                                     ray_session: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.job_submission import JobStatus, JobSubmissionClient

    from jobs import submit

    grid = {"crs": "EPSG:6933", "pixel_size": 64, "tile_size_px": 16}
    clean = str(tmp_path / "clean.zarr")
    assert run_ingest(cbers_config(clean, grid=grid)).ok  # in this process's own Ray

    store = str(tmp_path / "lost-node.zarr")
    cfg = cbers_config(store, grid=grid, max_actors=3).model_dump(mode="json", exclude={"storage"})
    path = Path(__file__).with_name("_tmp_node_loss.yaml")  # inside the uploaded working dir
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(cluster.token_path))
    try:
        code = submit.main(["ingest", "--config", str(path.relative_to(REPO_ROOT)), "--address", cluster.address,
                            "--python", sys.executable, "--submission-id", "harvest-node-loss"])
    finally:
        path.unlink(missing_ok=True)
    assert code == 0
    manifest = Path(cstore.meta_url(store)) / "manifest" / "ingest"
    deadline = time.monotonic() + 180

    def writers() -> set[int]:
        pids = set()
        for p in manifest.rglob("*.json"):
            try:
                pids.add(json.loads(p.read_text())["pid"])
            except (OSError, ValueError, KeyError):
                continue
        return pids

    while len(writers()) < 3:  # every node's actor is up and has written tiles
        assert time.monotonic() < deadline, "the job never got going on all three nodes"
        time.sleep(0.02)
    cluster.kill_worker(1)
    killed_at = len(list(manifest.rglob("*.json")))
    client = JobSubmissionClient(cluster.address, headers=cluster.headers)
    while client.get_job_status("harvest-node-loss") not in (JobStatus.SUCCEEDED, JobStatus.FAILED,
                                                             JobStatus.STOPPED):
        assert time.monotonic() < deadline, client.get_job_logs("harvest-node-loss")[-3000:]
        time.sleep(0.5)
    logs = client.get_job_logs("harvest-node-loss")
    assert client.get_job_status("harvest-node-loss") == JobStatus.SUCCEEDED, logs[-3000:]
    report = cstore.read_json(f"{cstore.meta_url(store)}/ingest-report.json")
    assert report["ok"] and report["tiles_failed"] == 0
    assert killed_at < report["tiles_total"], "the node was lost after the job had finished"
    assert report["actors_replaced"] >= 1 and report["retries"] >= 1, (
        report["tiles_per_node"], killed_at, report["tiles_total"], report["wall_s"])
    a, b = _chunks(clean), _chunks(store)
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
