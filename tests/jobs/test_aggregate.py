"""The aggregate job against a direct xarray computation on the same cube, and its
invariance to the number of workers."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio.features
from shapely.geometry import box

from cluster.pipeline import run_ingest, run_indices, run_aggregate
from cluster import store as cstore
from cluster.aggregate import AggregateConfig
from cluster.indices import IndicesConfig
from tests.jobs.test_ingest import cbers_config

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


@pytest.fixture(scope="module")
def cube_and_regions(tmp_path_factory: pytest.TempPathFactory, ray_session: dict) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("agg")
    store = str(root / "cbers.zarr")
    assert run_ingest(cbers_config(store, grid={"crs": "EPSG:6933", "pixel_size": 64, "tile_size_px": 16})).ok
    assert run_indices(IndicesConfig(store=store, kernels=["ndvi", "evi"], max_actors=2)).ok
    cube = cstore.open_cube(store, chunks=None)
    x0, x1 = float(cube.x.min()), float(cube.x.max())
    y0, y1 = float(cube.y.min()), float(cube.y.max())
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    shapes = [box(x0, y0, xm, y1), box(xm, ym, x1, y1), box(xm, y0, x1, ym).buffer(-200)]
    regions = gpd.GeoDataFrame({"code": ["W", "NE", "SE"], "label": ["west", "north-east", "south-east"],
                                "country": ["BR", "BR", "XX"]}, geometry=shapes, crs="EPSG:6933").to_crs(4326)
    path = root / "regions.geojson"
    regions.to_file(path)
    return store, path


def test_aggregate__matches_xarray_and_is_worker_invariant(cube_and_regions: tuple[str, Path], tmp_path: Path) -> None:
    store, regions_path = cube_and_regions
    cfg = AggregateConfig(store=store, regions={"path": str(regions_path), "id_column": "code",
                                                "name_column": "label", "parent_column": "country"},
                          indices=["ndvi", "evi"], out=str(tmp_path / "stats"), max_actors=2)
    report = run_aggregate(cfg)
    table = report.table
    assert report.ok and report.tiles_done > 4
    assert set(table.region_id) == {"W", "NE", "SE"}
    assert set(table.parent) == {"BR", "XX"} and set(table.crop) == {"all"}
    assert {"area_ha", "count_px", "valid_fraction", "mean", "std"} <= set(table.columns)
    # the oracle: rasterize each region on the whole cube grid (pixel centres) and use xarray
    cube = cstore.open_cube(store, chunks=None)
    regions = gpd.read_file(regions_path).to_crs(6933)
    transform = cube.rio.transform()
    for _, reg in regions.iterrows():
        inside = rasterio.features.geometry_mask([reg.geometry], out_shape=cube.ndvi.shape[1:],
                                                 transform=transform, invert=True)
        rows = table[(table.region_id == reg.code) & (table["index"] == "ndvi")].sort_values("date")
        ndvi = cube.ndvi.values[:, inside]
        assert (rows.count_px == inside.sum()).all()
        np.testing.assert_allclose(rows.area_ha, inside.sum() * 64 * 64 / 1e4, rtol=1e-9)
        np.testing.assert_array_equal(rows.valid_px, (~np.isnan(ndvi)).sum(axis=1))
        np.testing.assert_allclose(rows["mean"], np.nanmean(ndvi.astype("f8"), axis=1), rtol=1e-6)
        np.testing.assert_allclose(rows["std"], np.nanstd(ndvi.astype("f8"), axis=1), rtol=1e-5, atol=1e-9)
    # area against the polygons' own area (equal-area grid): off by at most a one-pixel strip
    # along the boundary (pixel-centre rule)
    geoms = regions.set_index("code").geometry
    got = table[table["index"] == "ndvi"].groupby("region_id").area_ha.first()
    for rid in got.index:
        assert abs(got[rid] - geoms[rid].area / 1e4) <= geoms[rid].length * 64 / 1e4
    # one worker, other tile order: bit-identical table
    again = run_aggregate(cfg.model_copy(update={"max_actors": 1, "out": str(tmp_path / "s1")})).table
    pd.testing.assert_frame_equal(table.reset_index(drop=True), again.reset_index(drop=True), check_exact=True)
    saved = pd.read_parquet(tmp_path / "stats.parquet")
    assert len(saved) == len(table)
    assert json.loads(Path(cstore.meta_url(store) + "/aggregate-report.json").read_text())["ok"]


def test_aggregate__region_outside_the_cube_is_reported(cube_and_regions: tuple[str, Path], tmp_path: Path) -> None:
    store, regions_path = cube_and_regions
    regions = gpd.read_file(regions_path)
    far = gpd.GeoDataFrame({"code": ["FAR"], "label": ["far away"], "country": ["AR"]},
                           geometry=[box(-60, -30, -59, -29)], crs=4326)
    path = tmp_path / "more.geojson"
    pd.concat([regions, far]).to_file(path)
    cfg = AggregateConfig(store=store, regions={"path": str(path), "id_column": "code"},
                          out=str(tmp_path / "stats"), max_actors=2)
    report = run_aggregate(cfg)
    table = report.table
    assert "FAR" not in set(table.region_id)
    assert any("region 'FAR' has no pixels" in w for w in report.warnings)


@pytest.mark.slow
def test_aggregate__driver_memory_does_not_grow_with_the_plan(tmp_path: Path) -> None:
    """10,000 tiles of 16 px: the driver merges partials and drops results as they arrive.

    Measured with tracemalloc between the 1,000th and the 10,000th tile (imports and the
    plan come before). Keeping every tile's result, as the pool once did, grew it by
    13 MiB over those 9,000 tiles; merged as they arrive it grows by 1.2 MiB
    (the report's capped per-tile entries, and the set of tile ids that guards against
    counting a tile twice)."""
    import tracemalloc

    from cluster.grid import CubeExtent, GridSpec

    n = 100
    extent = CubeExtent(GridSpec("EPSG:6933", pixel_size=100.0, tile_size_px=16), 0, 0, n, n)
    store = str(tmp_path / "cube.zarr")
    cstore.create_cube(store, extent, [np.datetime64("2025-06-01"), np.datetime64("2025-07-01")],
                       [cstore.ArraySpec("ndvi", "float32", float("nan"))],
                       {"harvest": {"job": "ingest", "grid": extent.to_dict()}})
    values = np.random.default_rng(0).random((2, n * 16, n * 16), dtype=np.float32)
    cstore.open_group(store, mode="r+")["ndvi"][:] = values
    b = extent.bounds
    xm = (b.left + b.right) / 2
    path = tmp_path / "halves.gpkg"
    gpd.GeoDataFrame({"id": ["west", "east"]},
                     geometry=[box(b.left, b.bottom, xm, b.top), box(xm, b.bottom, b.right, b.top)],
                     crs="EPSG:6933").to_file(path)
    cfg = AggregateConfig(store=store, regions={"path": str(path), "id_column": "id"}, indices=["ndvi"],
                          out=str(tmp_path / "stats"), max_actors=2)
    seen: dict[int, int] = {}

    def measure(_: object) -> None:
        seen["n"] = seen.get("n", 0) + 1
        if seen["n"] in (1_000, n * n):
            seen[seen["n"]] = tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        report = run_aggregate(cfg, progress=measure)
        table = report.table
    finally:
        tracemalloc.stop()
    assert report.ok and report.tiles_done == n * n
    growth_mib = (seen[n * n] - seen[1_000]) / 2**20
    assert growth_mib < 4, f"the driver grew by {growth_mib:.1f} MiB over 9,000 tiles"
    # and the merge lost nothing: every pixel counted once, the sums exact
    west = table[table.region_id == "west"].sort_values("date")
    assert list(west.count_px) == [n * 16 * n * 8] * 2
    expected = values[:, :, : n * 8].astype(np.float64).sum(axis=(1, 2))
    np.testing.assert_allclose(west["mean"] * west.count_px, expected, rtol=1e-9)
