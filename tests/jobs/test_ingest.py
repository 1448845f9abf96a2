"""End-to-end ingest on real imagery, on a local store and on S3 (moto on loopback).

Reference values come from independent code paths: the source files read with rasterio,
and rioxarray's ``reproject`` onto the same grid with the same resampling.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.warp
import rioxarray  # noqa: F401
import xarray as xr
import yaml

from cluster.pipeline import run_ingest
from cluster import store as cstore
from cluster.errors import GridError, SceneError, StoreMismatchError
from cluster.ingest import IngestConfig, plan_ingest
from tests._data import shared_data

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]

SLOVENIA_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


def slovenia_config(store: str, **extra: object) -> IngestConfig:
    root = shared_data("sentinel2_slovenia_eolearn")
    with rasterio.open(next(iter(sorted((root / "s2_l1c_13band").glob("*.tif"))))) as ds:
        t = ds.transform
    return IngestConfig(
        store=store,
        scenes=[str(root / "s2_l1c_13band" / "S2_L1C_*.tif")],
        # the scenes' own grid: non-square 9.995 x 9.997 m pixels, origin at their corner
        grid={"crs": "EPSG:32633", "pixel_size": t.a, "pixel_size_y": -t.e, "origin_x": t.c,
              "origin_y": t.f, "tile_size_px": 64},
        bands={"red": {"description": "B04"}, "nir": {"description": "B08"},
               "green": {"index": 3}},
        max_actors=2,
        **extra,
    )


def test_ingest__slovenia_golden_ndvi(tmp_store: str) -> None:
    """On the scenes' own grid, cube NDVI equals the archived NDVI product of each date."""
    report = run_ingest(slovenia_config(tmp_store))
    assert report.ok and report.tiles_done == 4 and report.inputs_used == 5
    cube = cstore.open_cube(tmp_store)
    assert cube.rio.crs.to_epsg() == 32633
    root = shared_data("sentinel2_slovenia_eolearn")
    with rasterio.open(root / "ndvi_68dates.tif") as ds:
        ndvi_ref = ds.read()
        stamps = [d[:10] for d in ds.descriptions]
    assert cube.sizes["time"] == 5
    for i, t in enumerate(cube.time.values):
        day = str(t)[:10]
        red = cube.red.isel(time=i).values[:101, :100]
        nir = cube.nir.isel(time=i).values[:101, :100]
        ndvi = (nir - red) / (nir + red)
        np.testing.assert_allclose(ndvi, ndvi_ref[stamps.index(day)], atol=1e-6)
        # and every pixel is the source pixel, unchanged
        with rasterio.open(root / "s2_l1c_13band" / f"S2_L1C_{day}.tif") as ds:
            np.testing.assert_array_equal(red, ds.read(4))
            np.testing.assert_array_equal(cube.green.isel(time=i).values[:101, :100], ds.read(3))
    # outside the scenes the tiles read as fill (NaN for float bands)
    assert np.isnan(cube.red.values[:, 101:, :]).all()


def reproject_reference(src_path: Path, band: int, like: xr.DataArray, nodata: float) -> np.ndarray:
    """An independent warp: rioxarray's ``reproject`` onto the cube's grid, nearest, with an
    exact coordinate transform (``tolerance=0``, as ours).

    It warps tile by tile: GDAL's nearest pick for a pixel within ~1e-3 px of a source
    pixel edge depends on the destination window it warps into (0.08 % of the pixels
    differ between one whole-cube warp and per-tile warps, whoever runs them), and the cube
    is defined tile by tile.
    """
    da = rioxarray.open_rasterio(src_path, masked=False).sel(band=band).rio.write_nodata(nodata)
    transform = like.rio.transform()
    n = int(like.attrs.get("tile_size_px", 0)) or TILE_PX[0]
    out = np.full(like.shape, nodata, dtype=da.dtype)
    for r in range(0, like.shape[0], n):
        for c in range(0, like.shape[1], n):
            t = transform * rasterio.Affine.translation(c, r)
            tile = da.rio.reproject(like.rio.crs, shape=(n, n), transform=t, nodata=nodata,
                                    resampling=rasterio.enums.Resampling.nearest, tolerance=0)
            out[r:r + n, c:c + n] = tile.values
    return out


TILE_PX = [32]  # the tile size of the cube being compared (set by each test)


def cbers_config(store: str, scenes: str | None = None, **extra: object) -> IngestConfig:
    root = shared_data("cbers4_awfi_cerrado_timeseries")
    fields: dict[str, object] = {
        "store": store,
        "scenes": [scenes or str(root / "CBERS-4_AWFI_{band}_*.tif")],
        "sensor": "cbers4-awfi",
        "grid": {"crs": "EPSG:6933", "pixel_size": 64, "tile_size_px": 32},
        "max_actors": 2,
    }
    return IngestConfig(**(fields | extra))


def test_ingest__cbers_matches_independent_warp(tmp_store: str) -> None:
    report = run_ingest(cbers_config(tmp_store))
    assert report.ok, report.failures
    cube = cstore.open_cube(tmp_store, chunks=None)
    assert cube.sizes["time"] == 24
    assert set(cube.data_vars) == {"blue", "green", "red", "nir"}  # cmask only masks
    raw = xr.open_zarr(tmp_store, decode_coords="all", mask_and_scale=False, consolidated=False)
    assert raw.rio.crs.to_epsg() == 6933
    assert raw.red.attrs["_FillValue"] == -9999
    import zarr

    assert zarr.open_group(tmp_store)["red"].fill_value == -9999  # unwritten chunks read as nodata
    like = raw.red.isel(time=0).rio.write_crs(raw.rio.crs)
    TILE_PX[0] = 32
    root = shared_data("cbers4_awfi_cerrado_timeseries")
    for i in (0, 11, 23):
        day = str(cube.time.values[i])[:10]
        ref = reproject_reference(root / f"CBERS-4_AWFI_B15_{day}.tif", 1, like, -9999)
        got = raw.red.isel(time=i).values
        np.testing.assert_array_equal(got, ref)
    # the season: patch-mean NDVI low in September, high in February (data README)
    ndvi = ((cube.nir - cube.red) / (cube.nir + cube.red)).mean(("y", "x"))
    by_month = {str(t)[:7]: float(v) for t, v in zip(cube.time.values, ndvi.values, strict=True)}
    assert by_month["2017-09"] < 0.45 < by_month["2018-02"]


def test_ingest__unusual_crs_round_trips(tmp_store: str) -> None:
    """EPSG:10857 (BDC Albers) is not in every PROJ database: a WKT grid CRS survives Zarr."""
    root = shared_data("cbers4_awfi_cerrado_timeseries")
    with rasterio.open(root / "CBERS-4_AWFI_B13_2017-08-29.tif") as ds:
        wkt, t = ds.crs.to_wkt(), ds.transform
    cfg = cbers_config(tmp_store, grid={"crs": wkt, "pixel_size": t.a, "pixel_size_y": -t.e,
                                        "origin_x": t.c, "origin_y": t.f, "tile_size_px": 32},
                       select=["red", "nir"])
    assert run_ingest(cfg).ok
    cube = cstore.open_cube(tmp_store)
    assert cube.rio.crs == rasterio.crs.CRS.from_wkt(wkt)
    plain = xr.open_zarr(tmp_store, decode_coords="all", consolidated=False)
    assert plain.rio.crs == cube.rio.crs
    with rasterio.open(root / "CBERS-4_AWFI_B15_2017-08-29.tif") as ds:
        np.testing.assert_array_equal(
            xr.open_zarr(tmp_store, mask_and_scale=False, consolidated=False).red.isel(time=0).values[:50, :50],
            ds.read(1))


def test_ingest__landsat_and_patagonia_on_their_own_grids(tmp_path: Path) -> None:
    l7 = shared_data("landsat7_etm_olinda", "L7_ETMs.tif")
    with rasterio.open(l7) as ds:
        t, src = ds.transform, ds.read()
    cfg = IngestConfig(
        store=str(tmp_path / "l7.zarr"), scenes=[str(l7)],
        grid={"crs": "EPSG:31985", "pixel_size": t.a, "origin_x": t.c, "origin_y": t.f, "tile_size_px": 128},
        bands={"red": {"index": 3, "nodata": 0}, "nir": {"index": 4, "nodata": 0}},
        max_actors=2,
    )
    with pytest.raises(SceneError, match=r"no date in '.*L7_ETMs.tif'"):
        plan_ingest(cfg)  # the file carries no date anywhere: the plan says so
    cfg = IngestConfig.model_validate(cfg.model_dump() | {"date": {"source": "fixed", "value": "2001-08-01"}})
    assert run_ingest(cfg).ok
    cube = xr.open_zarr(tmp_path / "l7.zarr", mask_and_scale=False, consolidated=False)
    np.testing.assert_array_equal(cube.red.values[0, :352, :349], src[2])
    np.testing.assert_array_equal(cube.nir.values[0, :352, :349], src[3])

    pat = shared_data("sentinel2_patagonia_xrspatial", "s2_10m_B02_B03_B04_B08.tif")
    cfg = IngestConfig(
        store=str(tmp_path / "pat.zarr"), scenes=[str(pat)],
        grid={"crs": "EPSG:32719", "pixel_size": 10, "tile_size_px": 128},
        bands={"red": {"index": 3, "nodata": 0}, "nir": {"index": 4, "nodata": 0}},
        date={"source": "fixed", "value": "2020-01-01"},
        max_actors=2,
    )
    assert run_ingest(cfg).ok
    cube = cstore.open_cube(str(tmp_path / "pat.zarr"), chunks=None)
    with rasterio.open(pat) as ds:
        red, nir = ds.read(3).astype("f8"), ds.read(4).astype("f8")
        r0, c0 = (~cube.red.rio.transform()) * (ds.bounds.left, ds.bounds.top)
    r0, c0 = int(round(c0)), int(round(r0))
    got = cube.isel(time=0, y=slice(r0, r0 + 200), x=slice(c0, c0 + 300))
    ndvi_cube = ((got.nir - got.red) / (got.nir + got.red)).values
    np.testing.assert_allclose(ndvi_cube, (nir - red) / (nir + red), rtol=1e-6)


def test_ingest__two_crs_on_one_grid_and_empty_tiles(tmp_path: Path) -> None:
    """A scene re-projected into the next UTM zone lands on the same grid pixels, and a
    tile that no scene covers is all fill value and reported empty, not an error."""
    from rasterio.warp import calculate_default_transform, reproject

    pat = shared_data("sentinel2_patagonia_xrspatial", "s2_10m_B02_B03_B04_B08.tif")
    a = tmp_path / "scenes" / "zone19_2020-01-01.tif"
    b = tmp_path / "scenes" / "zone20_2020-01-17.tif"
    a.parent.mkdir()
    with rasterio.open(pat) as ds:
        profile = ds.profile | {"nodata": 0}
        with rasterio.open(a, "w", **profile) as out:
            out.write(ds.read())
        dst_crs = "EPSG:32720"
        transform, w, h = calculate_default_transform(ds.crs, dst_crs, ds.width, ds.height, *ds.bounds)
        moved = profile | {"crs": dst_crs, "transform": transform, "width": w, "height": h}
        with rasterio.open(b, "w", **moved) as out:
            for i in range(1, ds.count + 1):
                reproject(rasterio.band(ds, i), rasterio.band(out, i), resampling=rasterio.enums.Resampling.nearest)
    store = str(tmp_path / "two.zarr")
    with rasterio.open(pat) as ds:
        w, s_, e, n = rasterio.warp.transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    bbox_wide = (w - 0.02, s_ - 0.02, e + 0.02, n + 0.02)  # wider than the scenes: empty tiles
    cfg = IngestConfig(store=store, scenes=[str(tmp_path / "scenes" / "*.tif")],
                       grid={"crs": "EPSG:6933", "pixel_size": 20, "tile_size_px": 64},
                       bands={"red": {"index": 3}, "nir": {"index": 4}}, bbox=bbox_wide, max_actors=2)
    report = run_ingest(cfg)
    assert report.ok and report.tiles_empty > 0 and report.tiles_done > 0
    raw = xr.open_zarr(store, mask_and_scale=False, consolidated=False, decode_coords="all")
    assert raw.sizes["time"] == 2
    like = raw.red.isel(time=0).rio.write_crs(raw.rio.crs)
    TILE_PX[0] = 64
    for i, path in enumerate((a, b)):
        ref = reproject_reference(path, 3, like, 0)
        np.testing.assert_array_equal(raw.red.isel(time=i).values, ref)
    both = (raw.red.values > 0).all(axis=0)
    assert both.sum() > 1000  # the two CRSs overlap on the grid
    # empty tiles: nothing stored, read as fill
    for t in report.tiles:
        if t["status"] == "empty":
            from cluster.grid import TileIndex

            ext = plan_ingest(cfg).extent
            ys, xs = ext.tile_slices(TileIndex.from_id(t["tile"]))
            assert (raw.red.values[:, ys, xs] == 0).all()


def _chunk_files(store: str) -> dict[str, bytes]:
    out = {}
    for path in glob.glob(f"{store}/**/c/**", recursive=True):
        if os.path.isfile(path):
            out[os.path.relpath(path, store)] = Path(path).read_bytes()
    return out


def test_ingest__rerun_skips_and_killed_run_resumes_identically(tmp_path: Path, ray_session: dict[str, str]) -> None:
    """Kill a real ingest driver half-way (SIGKILL), rerun: the cube equals a clean run's,
    chunk file for chunk file; a second rerun skips every tile."""
    clean = str(tmp_path / "clean.zarr")
    cfg = cbers_config(clean, grid={"crs": "EPSG:6933", "pixel_size": 64, "tile_size_px": 16})
    first = run_ingest(cfg)
    assert first.ok and first.tiles_done + first.tiles_empty == first.tiles_total >= 20
    again = run_ingest(cfg)
    assert again.tiles_skipped == again.tiles_total and again.tiles_done == 0
    assert "skipped" in again.summary()

    killed = str(tmp_path / "killed.zarr")
    cfg_path = tmp_path / "killed.yaml"
    data = cfg.model_copy(update={"store": killed, "max_actors": 1}).model_dump(mode="json", exclude={"storage"})
    cfg_path.write_text(yaml.safe_dump(data))
    env = os.environ | {"RAY_ADDRESS": ray_session["gcs_address"]}
    log = tmp_path / "killed.log"
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "jobs.ingest", "--config", str(cfg_path)], env=env,
                                stdout=sink, stderr=subprocess.STDOUT)
    manifest = Path(cstore.meta_url(killed)) / "manifest" / "ingest"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        n = len(list(manifest.rglob("*.json"))) if manifest.exists() else 0
        if n >= 3:
            break
        assert proc.poll() is None, f"the job ended before the kill:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(list(manifest.rglob("*.json")))
    assert 3 <= partial < first.tiles_total, f"the kill should land half-way:\n{log.read_text()[-3000:]}"
    resumed = run_ingest(cfg.model_copy(update={"store": killed}))
    assert resumed.ok and resumed.tiles_skipped >= 3
    assert resumed.tiles_done + resumed.tiles_empty + resumed.tiles_skipped == first.tiles_total
    a, b = _chunk_files(clean), _chunk_files(killed)
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)


def test_ingest__s3_store_and_s3_scenes_match_local(tmp_path: Path, s3_bucket: str,
                                                    s3_endpoint: str, s3_options: dict) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(**s3_options, skip_instance_cache=True)
    root = shared_data("cbers4_awfi_cerrado_timeseries")
    for f in sorted(root.glob("*_2017-0*.tif")):
        fs.put(str(f), f"{s3_bucket}/scenes/{f.name}")
    local = str(tmp_path / "local.zarr")
    remote = f"s3://{s3_bucket}/cubes/cbers.zarr"
    storage = {"endpoint_url": s3_endpoint, "region": "us-east-1", "key": "testing", "secret": "testing"}
    ref = run_ingest(cbers_config(local, scenes=str(root / "CBERS-4_AWFI_{band}_2017-0*.tif")))
    got = run_ingest(cbers_config(remote, scenes=f"s3://{s3_bucket}/scenes/CBERS-4_AWFI_{{band}}_*.tif",
                                      storage=storage))
    assert ref.ok and got.ok and got.inputs_used == ref.inputs_used == 3
    cube = cstore.open_cube(remote, s3_options, chunks=None)
    assert cube.rio.crs.to_epsg() == 6933
    xr.testing.assert_identical(cube.drop_attrs(), cstore.open_cube(local, chunks=None).drop_attrs())
    # credentials never reach the store's attributes or the report
    meta = fs.cat(f"{s3_bucket}/cubes/cbers.zarr/zarr.json").decode()
    report = fs.cat(f"{s3_bucket}/cubes/cbers.zarr.harvest/ingest-report.json").decode()
    assert "endpoint_url" not in meta
    assert '"testing"' not in meta and '"testing"' not in report
    assert json.loads(report)["tiles_done"] == got.tiles_done


def test_ingest__bad_scene_is_reported_and_the_rest_goes_on(tmp_path: Path) -> None:
    root = shared_data("cbers4_awfi_cerrado_timeseries")
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for f in sorted(root.glob("*_2017-0*.tif")):
        (scenes / f.name).write_bytes(f.read_bytes())
    (scenes / "CBERS-4_AWFI_B15_2017-09-14.tif").write_bytes(b"not a tiff")  # corrupt one band
    (scenes / "CBERS-4_AWFI_B16_2017-08-29.tif").unlink()  # and drop another
    cfg = cbers_config(str(tmp_path / "c.zarr"), scenes=str(scenes / "CBERS-4_AWFI_{band}_*.tif"))
    report = run_ingest(cfg)
    assert report.ok and report.inputs_used == 1
    reasons = {r["item"].rsplit("/", 1)[-1]: r["reason"] for r in report.inputs_rejected}
    assert "missing band file(s) for ['nir']" in reasons["CBERS-4_AWFI_{band}_2017-08-29.tif"]
    assert "cannot open raster" in reasons["CBERS-4_AWFI_{band}_2017-09-14.tif"]
    assert "rejected" in report.summary()
    with pytest.raises(SceneError, match="strict mode"):
        run_ingest(cfg.model_copy(update={"strict": True, "store": str(tmp_path / "s.zarr")}))
    assert not (tmp_path / "s.zarr").exists()  # strict stops before creating anything


def test_ingest__other_config_on_same_store_is_refused(tmp_path: Path) -> None:
    store = str(tmp_path / "c.zarr")
    root = shared_data("cbers4_awfi_cerrado_timeseries")
    one = cbers_config(store, scenes=str(root / "CBERS-4_AWFI_{band}_2017-08-29.tif"))
    assert run_ingest(one).ok
    two = cbers_config(store, scenes=str(root / "CBERS-4_AWFI_{band}_2017-09-14.tif"))
    with pytest.raises(StoreMismatchError, match="overwrite: true"):
        run_ingest(two)
    assert run_ingest(two.model_copy(update={"overwrite": True})).ok


def test_ingest__time_bins_composite_first_clear_date(tmp_path: Path) -> None:
    """32-day bins: each bin takes, per pixel, its earliest clear scene (the mosaic rule)."""
    per_date = str(tmp_path / "dates.zarr")
    binned = str(tmp_path / "bins.zarr")
    assert run_ingest(cbers_config(per_date, select=["red"])).ok
    assert run_ingest(cbers_config(binned, select=["red"], time_bin_days=32)).ok
    a = xr.open_zarr(per_date, mask_and_scale=False, consolidated=False)
    b = xr.open_zarr(binned, mask_and_scale=False, consolidated=False)
    epoch = np.datetime64("1970-01-01")
    bins = ((a.time.values - epoch) // np.timedelta64(32, "D")).astype(int)
    assert b.sizes["time"] == len(set(bins)) < a.sizes["time"]
    red = a.red.values
    for k, label in enumerate(b.time.values):
        members = np.flatnonzero(bins == (label - epoch) // np.timedelta64(32, "D"))
        expected = np.full(red.shape[1:], -9999, dtype=red.dtype)
        for m in members[::-1]:  # the earliest valid pixel wins: fill from the latest back
            ok = red[m] != -9999
            expected[ok] = red[m][ok]
        np.testing.assert_array_equal(b.red.values[k], expected)


def test_ingest__landsat_warped_to_equal_area_matches_rioxarray(tmp_path: Path) -> None:
    l7 = shared_data("landsat7_etm_olinda", "L7_ETMs.tif")
    store = str(tmp_path / "l7-6933.zarr")
    cfg = IngestConfig(store=f"file://{store}", scenes=[str(l7)],
                       grid={"crs": "EPSG:6933", "pixel_size": 30, "tile_size_px": 64},
                       bands={"red": {"index": 3, "nodata": 0}, "nir": {"index": 4, "nodata": 0}},
                       date={"source": "fixed", "value": "2001-08-01"}, max_actors=2)
    assert run_ingest(cfg).ok
    raw = xr.open_zarr(store, mask_and_scale=False, consolidated=False, decode_coords="all")
    like = raw.nir.isel(time=0).rio.write_crs(raw.rio.crs)
    TILE_PX[0] = 64
    np.testing.assert_array_equal(raw.nir.isel(time=0).values, reproject_reference(l7, 4, like, 0))


def test_ingest__explicit_extent_in_any_crs_or_from_a_file(tmp_path: Path) -> None:
    """The cube's area set by bounds in the scenes' own CRS, or by a polygon file: the same
    tiles either way, fewer than the scenes' footprint gives, and no scene is an outlier."""
    import geopandas as gpd
    from shapely.geometry import box

    root = shared_data("cbers4_awfi_cerrado_timeseries")
    with rasterio.open(root / "CBERS-4_AWFI_B13_2017-08-29.tif") as ds:
        left, bottom, right, top = ds.bounds
        crs = ds.crs.to_wkt()
    half = (left, bottom, (left + right) / 2, top)  # the western half, in EPSG:10857
    grid = {"crs": "EPSG:6933", "pixel_size": 64, "tile_size_px": 16}
    full = plan_ingest(cbers_config(str(tmp_path / "a.zarr"), grid=grid))
    by_bounds = plan_ingest(cbers_config(str(tmp_path / "b.zarr"), grid=grid, extent={"bounds": half, "crs": crs}))
    path = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame({"name": ["west"]}, geometry=[box(*half)], crs=crs).to_file(path)
    by_file = plan_ingest(cbers_config(str(tmp_path / "c.zarr"), grid=grid, extent={"path": str(path)}))
    assert by_bounds.extent == by_file.extent
    assert len(by_bounds.tiles) < len(full.tiles) and not by_bounds.rejected
    with pytest.raises(ValueError, match="set exactly one of extent.bounds"):
        cbers_config(str(tmp_path / "d.zarr"), extent={"crs": crs})


def test_ingest__tuning_travels_in_the_plan_and_leaves_its_hash_alone(tmp_path: Path) -> None:
    """Reader settings reach the actors with the plan (a module global would stay on the
    driver), and, changing no pixel, they keep the plan hash (a rerun skips done tiles)."""
    from cluster.ingest import IngestWorker

    tuned = {"scenes_per_batch": 2, "gdal_cache_mib": 64, "scene_cache_size": 3}
    plain = plan_ingest(cbers_config(str(tmp_path / "a.zarr")))
    plan = plan_ingest(cbers_config(str(tmp_path / "a.zarr"), tuning=tuned))
    assert plan.hash == plain.hash
    assert plan.tuning.model_dump() == tuned != plain.tuning.model_dump()
    worker = IngestWorker(plan)
    assert (worker._batch, worker._cache_size) == (2, 3)
    with pytest.raises(ValueError, match="scene_cache"):
        cbers_config(str(tmp_path / "b.zarr"), tuning={"scene_cache": 3})


def _moved_copy(src: Path, dst: Path, dx_m: float = 0.0, crs: str | None = None) -> None:
    """A copy of a scene shifted east by ``dx_m`` (in its CRS units), or relabelled to ``crs``."""
    with rasterio.open(src) as ds:
        profile, data = ds.profile, ds.read()
    t = profile["transform"]
    profile["transform"] = rasterio.Affine(t.a, t.b, t.c + dx_m, t.d, t.e, t.f)
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)


def test_ingest__far_scenes_are_outliers_and_absurd_plans_stop_before_allocating(tmp_path: Path) -> None:
    root = shared_data("cbers4_awfi_cerrado_timeseries")
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    dates = ("2017-08-29", "2017-09-14", "2017-09-30")
    for d in dates:
        for b in ("B13", "B14", "B15", "B16", "CMASK"):
            shutil.copy(root / f"CBERS-4_AWFI_{b}_{d}.tif", scenes)
    grid = {"crs": "EPSG:6933", "pixel_size": 64, "tile_size_px": 16}
    pattern = str(scenes / "CBERS-4_AWFI_{band}_*.tif")
    near = plan_ingest(cbers_config(str(tmp_path / "a.zarr"), scenes=pattern, grid=grid))
    # one date's files moved 5,700 km east: an outlier, left out and named; the plan stays small
    for b in ("B13", "B14", "B15", "B16", "CMASK"):
        f = scenes / f"CBERS-4_AWFI_{b}_{dates[2]}.tif"
        _moved_copy(f, f, dx_m=5_700_000)
    far = plan_ingest(cbers_config(str(tmp_path / "b.zarr"), scenes=pattern, grid=grid))
    assert len(far.tiles) <= len(near.tiles) and len(far.scenes) == 2
    [out] = [r for r in far.rejected if "outlier" in r.reason]
    assert dates[2] in out.item and "km from the other 2 scenes" in out.reason and "extent" in out.fix
    with pytest.raises(SceneError, match="strict mode: scene\\(s\\) far from the others"):
        plan_ingest(cbers_config(str(tmp_path / "c.zarr"), scenes=str(scenes / "CBERS-4_AWFI_{band}_*.tif"),
                                 grid=grid, strict=True))
    # two scenes far apart (no majority): the plan would be mostly empty; it stops, naming them
    two = tmp_path / "two"
    two.mkdir()
    for d in dates[1:]:
        for b in ("B13", "B14", "B15", "B16", "CMASK"):
            shutil.copy(scenes / f"CBERS-4_AWFI_{b}_{d}.tif", two)
    with pytest.raises(GridError, match=r"would span [\d,]+ tiles, but the scenes cover at most [\d,]+ tiles' "
                                        r"worth.*The extremes are .*2017-09-14.*2017-09-30.*Set 'extent'"):
        plan_ingest(cbers_config(str(tmp_path / "d.zarr"), scenes=str(two / "CBERS-4_AWFI_{band}_*.tif"), grid=grid))
    # a tile too big for an actor's memory stops too, naming the settings
    with pytest.raises(GridError, match=r"one tile needs about [\d.]+ GiB.*lower grid.tile_size_px"):
        plan_ingest(cbers_config(str(tmp_path / "e.zarr"), scenes=str(root / "CBERS-4_AWFI_{band}_*.tif"),
                                 grid={**grid, "tile_size_px": 4096}, resources={"memory_mib": 64}))


def test_cube_check__identical_bands_and_all_empty_fail_the_job() -> None:
    from cluster.ingest import CubeCheck, IngestFindings
    from cluster.records import TileResult

    check = CubeCheck(["red", "nir", "green"])
    for i in range(3):
        check.add(TileResult(f"t{i}", "done", output=IngestFindings(identical_bands=(("nir", "red"),))))
    check.add(TileResult("t3", "empty"))
    [err] = check.errors()
    assert "bands 'nir' and 'red' are identical in every tile with data" in err
    check.add(TileResult("t4", "done"))  # one tile where they differ: not the same source
    assert check.errors() == []
    empty = CubeCheck(["red"])
    for i in range(4):
        empty.add(TileResult(f"t{i}", "empty"))
    assert "every tile (4) is empty" in empty.errors()[0]
