"""A node that joins mid-job gets tiles: the pool of a fixed cluster grows as nodes appear.

Its own cluster (head + 1 worker, 1 CPU each), so the node it adds changes no other test.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.cluster_multinode._cluster import REPO_ROOT, LocalRayCluster

pytestmark = [pytest.mark.slow, pytest.mark.ray]

JOB = "tests.cluster_multinode._grow_job"


def test_pool__takes_up_a_node_that_joins_mid_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.job_submission import JobStatus, JobSubmissionClient

    from jobs import submit

    with LocalRayCluster(workers=1, cpus_per_node=1) as cluster:
        monkeypatch.chdir(REPO_ROOT)
        monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(cluster.token_path))
        monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
        config = Path(__file__).with_name("_tmp_grow.yaml")  # inside the uploaded working dir
        config.write_text("tiles: 160\nsleep_s: 0.25\nmax_actors: 4\n")
        try:
            code = submit.main([JOB, "--config", str(config.relative_to(REPO_ROOT)), "--address", cluster.address,
                                "--python", sys.executable, "--submission-id", "harvest-grow"])
        finally:
            config.unlink(missing_ok=True)
        assert code == 0
        client = JobSubmissionClient(cluster.address, headers=cluster.headers)
        deadline = time.monotonic() + 120
        while client.get_job_logs("harvest-grow").count(" done on ") < 4:  # the pool is at work
            assert client.get_job_status("harvest-grow") not in (JobStatus.FAILED, JobStatus.STOPPED), \
                client.get_job_logs("harvest-grow")[-3000:]
            assert time.monotonic() < deadline, "the job never started its tiles"
            time.sleep(0.2)
        before = {n["raylet"]["nodeId"] for n in cluster.alive_nodes()}
        cluster.add_worker()
        new = {n["raylet"]["nodeId"] for n in cluster.alive_nodes()} - before
        assert len(new) == 1
        while client.get_job_status("harvest-grow") not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            assert time.monotonic() < deadline, client.get_job_logs("harvest-grow")[-3000:]
            time.sleep(0.5)
        logs = client.get_job_logs("harvest-grow")
        assert client.get_job_status("harvest-grow") == JobStatus.SUCCEEDED, logs[-3000:]
        result = json.loads(logs.split("GROW_RESULT ", 1)[1].splitlines()[0])
        assert result["counts"] == {"done": 160}
        assert result["per_node"].get(new.pop(), 0) > 0, result  # the node that joined ran tiles
        assert len(result["per_node"]) == 3, result  # and so did the head and the first worker
