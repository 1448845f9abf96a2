"""Credentials never leak: a job run with recognisable fake keys leaves them nowhere.

The keys are given the way that most invites a leak: in the job's config file. The job runs
as its own process (``python -m jobs.ingest``) with its own local Ray under a private temp
dir, against the loopback S3 server (which accepts any key). Afterwards every file Ray wrote
(its logs included), every object in the bucket (cube, reports, manifests, lease), the
job's output and the pickled plan the actors receive are searched for the keys.
"""

from __future__ import annotations

import functools
import os
import pickle
import shutil
import subprocess
import tempfile
import sys
from pathlib import Path

import pytest
import yaml

from cluster.ingest import IngestConfig, IngestWorker, plan_ingest
from tests._data import shared_data

pytestmark = [pytest.mark.s3, pytest.mark.slow]

KEY = "AKIAFAKEKEY7Q2W3E4R5"
SECRET = "fAkE/SeCrEt+0123456789abcdefGHIJKLMNopqr"


def test_secrets__fake_keys_appear_in_no_output(tmp_path: Path, s3_endpoint: str, s3_bucket: str,
                                               s3_options: dict) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(**s3_options, skip_instance_cache=True)
    root = shared_data("cbers4_awfi_cerrado_timeseries")
    for f in sorted(root.glob("*_2017-08-29.tif")):
        fs.put(str(f), f"{s3_bucket}/scenes/{f.name}")
    config = {
        "store": f"s3://{s3_bucket}/cube.zarr",
        "scenes": [f"s3://{s3_bucket}/scenes/CBERS-4_AWFI_{{band}}_*.tif"],
        "sensor": "cbers4-awfi",
        "grid": {"crs": "EPSG:6933", "pixel_size": 64, "tile_size_px": 32},
        "max_actors": 2,
        "storage": {"endpoint_url": s3_endpoint, "region": "us-east-1", "key": KEY, "secret": SECRET},
    }
    path = tmp_path / "ingest.yaml"
    path.write_text(yaml.safe_dump(config))
    ray_tmp = Path(tempfile.mkdtemp(prefix="hrvs", dir="/tmp"))  # short: Ray's sockets live below it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_ADDRESS"))}
    env.update(RAY_TMPDIR=str(ray_tmp), RAY_AUTH_MODE="disabled", HOME=str(tmp_path / "home"),
               RAY_USAGE_STATS_ENABLED="0")
    proc = subprocess.run([sys.executable, "-m", "jobs.ingest", "--config", str(path)], env=env,
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    def leaks(text: str | bytes) -> bool:
        data = text.encode() if isinstance(text, str) else text
        return KEY.encode() in data or SECRET.encode() in data

    assert not leaks(proc.stdout) and not leaks(proc.stderr)
    ray_files = [p for p in ray_tmp.rglob("*") if p.is_file()]
    assert any("raylet" in p.name for p in ray_files), "Ray's logs were not where expected"
    leaked = [str(p) for p in ray_files if leaks(p.read_bytes())]
    shutil.rmtree(ray_tmp, ignore_errors=True)
    assert not leaked, leaked
    objects = fs.find(s3_bucket)
    assert any(o.endswith("ingest-report.json") for o in objects) and any(o.endswith("zarr.json") for o in objects)
    leaked = [o for o in objects if leaks(fs.cat_file(o))]
    assert not leaked, leaked
    # the plan and worker factory as the job builds them for its actors
    cfg = IngestConfig.model_validate(config)
    plan = plan_ingest(cfg)
    factory = functools.partial(IngestWorker, plan)
    assert not leaks(pickle.dumps(factory))
    # a config error with the keys in it prints them masked
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**config, "scenes": [], "storage": {**config["storage"], "bogus": 1}}))
    proc = subprocess.run([sys.executable, "-m", "jobs.ingest", "--config", str(bad)], env=env,
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 2 and "bogus: unknown key" in proc.stderr
    assert not leaks(proc.stdout) and not leaks(proc.stderr)
