"""Structured logs of a real tile job: JSON lines naming the job, its run and every tile."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from cluster.logs import configure
from cluster.pipeline import run_ingest
from tests.jobs.test_ingest import cbers_config

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


@pytest.fixture
def json_logs():  # noqa: ANN201
    stream = io.StringIO()
    configure("json", stream=stream)
    yield stream
    configure("text")  # back to what a terminal gets


def test_logs__json_lines_carry_job_run_and_tile(tmp_path: Path, json_logs: io.StringIO) -> None:
    report = run_ingest(cbers_config(str(tmp_path / "c.zarr")))
    assert report.ok
    records = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    tiles = [r for r in records if "tile" in r]
    assert sorted(r["tile"] for r in tiles) == sorted(t["tile"] for t in report.tiles)  # each tile once
    assert {r["job"] for r in tiles} == {"ingest"} and len({r["run"] for r in tiles}) == 1
    assert all(r["status"] in ("done", "empty") and r["level"] == "INFO" and r["seconds"] >= 0 for r in tiles)
    started, finished = records[0], records[-1]
    assert started["message"] == "started" and started["tiles"] == report.tiles_total
    assert finished["message"].startswith(f"finished: {report.tiles_done} done") and finished["job"] == "ingest"


def test_logs__text_is_quiet_but_names_the_tile_of_a_warning() -> None:
    stream = io.StringIO()
    configure("text", stream=stream)
    log = logging.getLogger("cluster.runtime")
    log.info("tile done", extra={"job": "ingest", "run": "abc123", "tile": "3_4"})
    log.warning("actor died (RayActorError)", extra={"job": "ingest", "run": "abc123", "tile": "3_4"})
    assert stream.getvalue() == "harvest ingest [run abc123] tile 3_4: actor died (RayActorError)\n"
    with pytest.raises(ValueError, match="HARVEST_LOG_FORMAT 'xml' is unknown"):
        configure("xml")
