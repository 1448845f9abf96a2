"""The embedded local Ray listens on loopback only, with token authentication, quietly.

A fresh interpreter starts Ray the way ``harvest`` does without a cluster address
(``ensure_ray``), runs a task so that a worker process exists, and lists every listening
TCP socket of its process tree from /proc. Without ``cluster.runtime``'s single-node
switch Ray 2.60 listens on all interfaces (gcs_server, raylet, core workers) and on the
host's address (dashboard and runtime-env agents).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._sockets import is_loopback

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"),
                                                   reason="reads /proc")]

ROOT = Path(__file__).resolve().parents[2]

DRIVER = """
import dataclasses, json, os, ray
from cluster.runtime import ensure_ray
from tests._sockets import listeners
ensure_ray(num_cpus=1)
ray.get(ray.remote(lambda: os.getpid()).remote())
print(json.dumps([dataclasses.asdict(l) for l in listeners(os.getpid())]))
ray.shutdown()
"""


def test_exposure__local_ray_listens_on_loopback_only(tmp_path: Path) -> None:
    # as a user starts it: Ray's default authentication mode (token), a fresh home for its token
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS", "RAY_AUTH_MODE")}
    env["HOME"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", DRIVER], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / ".ray" / "auth_token").is_file()  # token auth is on...
    assert "Token authentication is enabled" not in done.stderr  # ...and says so only in the debug log
    found = json.loads(done.stdout.strip().splitlines()[-1])
    commands = " ".join(s["command"] for s in found)
    # the processes whose listeners Ray puts on all interfaces by default are all seen
    for process in ("gcs_server", "raylet", "DashboardAgent", "RuntimeEnvAgent"):
        assert process in commands, (process, found)
    exposed = [s for s in found if not is_loopback(s["address"])]
    assert not exposed, exposed
