"""The indices job end to end: its arrays equal the same formulas computed in xarray
from the decoded cube (xarray-beam's "compare with the direct computation" pattern)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from cluster.pipeline import run_ingest, run_indices
from cluster import store as cstore
from cluster.errors import MissingBandError, UnknownKernelError
from cluster.indices import IndicesConfig, plan_indices
from tests.jobs.test_ingest import cbers_config

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


@pytest.fixture(scope="module")
def cbers_cube(tmp_path_factory: pytest.TempPathFactory, ray_session: dict) -> str:
    store = str(tmp_path_factory.mktemp("idx") / "cbers.zarr")
    assert run_ingest(cbers_config(store)).ok
    return store


def test_indices__match_xarray_formulas(cbers_cube: str) -> None:
    report = run_indices(IndicesConfig(store=cbers_cube, kernels=["ndvi", "evi", "gndvi"], max_actors=2))
    assert report.ok and report.tiles_done + report.tiles_empty == report.tiles_total
    cube = cstore.open_cube(cbers_cube, chunks=None)
    b, g, r, n = (cube[k].astype("float64") for k in ("blue", "green", "red", "nir"))
    expected = {
        "ndvi": (n - r) / (n + r),
        "evi": 2.5 * (n - r) / (n + 6 * r - 7.5 * b + 1),
        "gndvi": (n - g) / (n + g),
    }
    for name, ref in expected.items():
        got = cube[name]
        assert got.dims == ("time", "y", "x") and got.dtype == np.float32
        assert got.attrs["harvest_kernel"]["name"] == name
        np.testing.assert_allclose(got.values, ref.values.astype("float32"), rtol=2e-5, atol=2e-6,
                                   equal_nan=True)
        assert np.isnan(got.values).sum() == np.isnan(ref.values).sum()
    assert cube.ndvi.rio.crs.to_epsg() == 6933
    again = run_indices(IndicesConfig(store=cbers_cube, kernels=["ndvi", "evi", "gndvi"], max_actors=2))
    assert again.tiles_skipped == again.tiles_total


def test_indices__cube_opens_from_consolidated_metadata_with_every_array(cbers_cube: str) -> None:
    import json
    import warnings

    assert run_indices(IndicesConfig(store=cbers_cube, kernels=["gndvi"], max_actors=2)).ok
    root = json.loads((Path(cbers_cube) / "zarr.json").read_text())
    assert "gndvi" in root["consolidated_metadata"]["metadata"]  # the array this job added
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # xarray's fallback warning would fail here
        plain = xr.open_zarr(cbers_cube, decode_coords="all")
    assert set(plain.data_vars) == set(cstore.open_cube(cbers_cube).data_vars)
    assert plain.gndvi.rio.crs.to_epsg() == 6933


def test_indices__stac_record_describes_the_cube_as_it_now_is(cbers_cube: str) -> None:
    import pystac

    report = run_indices(IndicesConfig(store=cbers_cube, kernels=["ndvi"], max_actors=2))
    assert report.outputs["stac"].endswith("cbers.zarr.harvest/collection.json")
    col = pystac.Collection.from_file(report.outputs["stac"])
    cube = cstore.open_cube(cbers_cube)
    lon0, lat0, lon1, lat1 = cube.rio.transform_bounds("EPSG:4326")
    (w, s, e, n), = col.extent.spatial.bboxes
    assert w <= lon0 and s <= lat0 and e >= lon1 and n >= lat1 and (e - w) < 2 * (lon1 - lon0) + 1e-6
    first, last = col.extent.temporal.intervals[0]
    assert first.date() == cube.time_bnds.values.min().astype("datetime64[D]").item()
    assert last.date() == cube.time_bnds.values.max().astype("datetime64[D]").item()
    dc = col.extra_fields
    arrays = {k for k, v in cube.data_vars.items() if v.dims == ("time", "y", "x")}
    assert set(dc["cube:variables"]) == arrays and {"ndvi", "red"} <= arrays
    assert dc["cube:dimensions"]["x"]["reference_system"] == 6933
    assert len(dc["cube:dimensions"]["time"]["values"]) == cube.sizes["time"]
    asset = col.assets["zarr"]
    opened = xr.open_dataset(asset.href, **asset.extra_fields["xarray:open_kwargs"])
    assert set(opened.data_vars) >= arrays  # the record's own recipe opens the cube


def test_indices__int16_output_is_scaled_cf(tmp_path: Path, cbers_cube: str) -> None:
    report = run_indices(IndicesConfig(store=cbers_cube, kernels=["savi"], output="int16", max_actors=2))
    assert report.ok
    raw = xr.open_zarr(cbers_cube, mask_and_scale=False, consolidated=False)
    assert raw.savi.dtype == np.int16
    cube = cstore.open_cube(cbers_cube, chunks=None)
    r, n = cube.red.astype("f8"), cube.nir.astype("f8")
    ref = 1.5 * (n - r) / (n + r + 0.5)
    np.testing.assert_allclose(cube.savi.values, ref.values, atol=0.6e-4, equal_nan=True)


def test_indices__bad_names_are_explained(cbers_cube: str) -> None:
    with pytest.raises(UnknownKernelError, match="no kernel named 'ndwvi'.*known: .*ndvi"):
        plan_indices(IndicesConfig(store=cbers_cube, kernels=["ndwvi"]))
    with pytest.raises(MissingBandError, match=r"lacks band\(s\) \['swir22'\] \(nbr needs \['swir22'\]\)"):
        plan_indices(IndicesConfig(store=cbers_cube, kernels=["ndvi", "nbr"]))


def test_indices__gpu_launch_travels_in_the_plan_outside_its_hash(cbers_cube: str) -> None:
    """The GPU loop's shape is a config block that reaches the workers in the plan (a module
    global would stay on the driver) and, giving the same bits, keeps the plan hash."""
    from cluster.config import parse_config
    from cluster.errors import ConfigError
    from cluster.kernels import GpuLaunch

    tuned = parse_config(IndicesConfig, {"store": cbers_cube, "gpu": {"pack": 1, "unroll": 4}})
    plan, plain = plan_indices(tuned), plan_indices(IndicesConfig(store=cbers_cube))
    assert plan.gpu == GpuLaunch(pack=1, unroll=4) != plain.gpu
    assert plan.hash == plain.hash
    with pytest.raises(ConfigError, match="gpu: GpuLaunch.pack=3 is not supported"):
        parse_config(IndicesConfig, {"store": cbers_cube, "gpu": {"pack": 3}})


def test_indices__gpu_worker_writes_the_cpu_workers_bytes(tmp_path: Path) -> None:
    # The GPU actor's path (pinned buffers, one stream, uploads and downloads queued, words of
    # four pixels) under numba's CUDA simulator, in a child process since the simulator must
    # be on before numba is imported; tile 2 is all nodata, so the staging's buffers are
    # read into again after a tile whose uploads never met a kernel.
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.indices_device", "--tiles", "4", "--dates", "2",
         "--tile-px", "32", "--empty", "2", "--pack", "4", "--work", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "15 index shards written by the CPU and the GPU worker: same bytes" in proc.stdout
    assert "(tiles timed: 2)" in proc.stdout  # tiles 1 and 3; tile 0 warms up, tile 2 is empty
