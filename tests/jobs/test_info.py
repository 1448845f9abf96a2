"""``harvest info``: what a real cube holds and how each step made it, from its metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cluster.indices import IndicesConfig
from cluster.pipeline import run_indices
from cluster import store as cstore
from jobs import info as info_job
from tests.jobs.test_bad_input import DATES, _ingest_cfg, _run_ingest, _scenes

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


def test_info__arrays_dates_grid_steps_and_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "cube.zarr")
    ingest = _run_ingest(_ingest_cfg(tmp_path, _scenes(tmp_path / "scenes")))
    indices = run_indices(IndicesConfig(store=store, kernels=["ndvi"]))
    assert ingest.ok and indices.ok

    assert info_job.main([store]) == 0
    text = capsys.readouterr().out
    assert "bands: blue, green, nir, red\n" in text  # the cloud mask is applied, not stored and "indices: ndvi" in text
    assert f"dates: 3, {DATES[0]} .. {DATES[-1]}" in text
    assert f"ingest    {ingest.tiles_total}/{ingest.tiles_total}  ok" in text and "3 inputs used, 0 rejected" in text

    assert info_job.main([store, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dates"] == list(DATES) and doc["grid"]["crs"] == "EPSG:6933" and doc["grid"]["pixel_size"] == 64
    steps = {j["job"]: j for j in doc["jobs"]}
    assert set(steps) == {"ingest", "indices"}
    assert steps["indices"]["tiles_done"] == indices.tiles_done + indices.tiles_empty
    assert steps["ingest"]["config"]["sensor"] == "cbers4-awfi" and steps["ingest"]["version"]
    assert doc["size_bytes"] == cstore.store_bytes(store) > 0
    ndvi = next(a for a in doc["arrays"] if a["name"] == "ndvi")
    assert ndvi["kind"] == "index" and ndvi["dims"] == ["time", "y", "x"]


def test_info__not_a_cube_is_said_plainly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert info_job.main([str(tmp_path / "nothing.zarr")]) == 2
    assert "no cube at" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's file")
    assert info_job.main([str(tmp_path / "mine")]) == 2
    err = capsys.readouterr().err
    assert "is not a cube made by harvest (1 entries that are not a Zarr group ('notes.txt'))" in err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "a user's file"
