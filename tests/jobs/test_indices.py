"""The indices job end to end: its arrays equal the same formulas computed in xarray
from the decoded cube (xarray-beam's "compare with the direct computation" pattern)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from cluster.pipeline import run_ingest, run_indices
from cluster import store as cstore
from cluster.errors import MissingBandError, UnknownKernelError
from cluster.indices import IndicesConfig, plan_indices
from tests.jobs.test_ingest import cbers_config

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
