"""The procedural demo season: determinism, layout, metadata, and that it behaves like a
crop season (crop-specific NDVI curves, clouds, yields that follow greenness).

Real rasterio / pyproj / rioxarray / geopandas throughout; no Ray.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import rioxarray
from pyproj import Transformer
from rasterio.features import rasterize
from rasterio.warp import transform_bounds

from cluster.demo import (
    CROP_CLASSES,
    DEMO_CRS,
    DN_OFFSET,
    DN_SCALE,
    SCENE_BANDS,
    SCL_CLEAR,
    YIELD_CROPS,
    DemoSeason,
    DemoSpec,
    make_demo_season,
    plan_demo_scenes,
)
from cluster.errors import ConfigError

# rioxarray 0.19 builds coordinates with `affine * affine`, which affine >= 2.4 flags as a
# PendingDeprecationWarning ("Use `@` matmul"); drop this once rioxarray uses `@`.
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")

# Small enough to generate in well under a second; clouds forced on so there are some.
TINY = DemoSpec(seed=3, width_km=4.0, height_km=3.0, years=(2024, 2025), dates_per_season=3,
                cloud_fraction=0.3)
# Big enough for statistics: ~150 fields, 4 regions, 4 seasons of 10 dates.
SEASON = DemoSpec(seed=11, width_km=6.0, height_km=4.0, years=(2022, 2023, 2024, 2025),
                  dates_per_season=10, cloud_fraction=0.12)

CODE = {name: code for code, name in CROP_CLASSES.items()}


def _read_all(paths: tuple[Path, ...]) -> dict[str, np.ndarray]:
    out = {}
    for p in paths:
        with rasterio.open(p) as ds:
            out[p.name] = ds.read()
    return out


@pytest.fixture(scope="module")
def season(tmp_path_factory: pytest.TempPathFactory) -> DemoSeason:
    return make_demo_season(tmp_path_factory.mktemp("season"), SEASON)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> DemoSeason:
    return make_demo_season(tmp_path_factory.mktemp("tiny"), TINY)


@pytest.fixture(scope="module")
def truth(season: DemoSeason) -> dict[str, np.ndarray]:
    """Interior truth pixels (5x5 neighbourhood of one crop), their EPSG:6933 centres,
    crop code and region index (regions rasterised from the GeoJSON, pixel-centre rule)."""
    with rasterio.open(season.truth_crop_type) as ds:
        crop = ds.read(1)
        transform, shape = ds.transform, crop.shape
    regions = gpd.read_file(season.regions).to_crs(DEMO_CRS)
    region = rasterize(((g, i + 1) for i, g in enumerate(regions.geometry)), out_shape=shape,
                       transform=transform, fill=0, dtype="int32") - 1
    pad = np.pad(crop, 2, mode="edge")
    same = np.ones(shape, dtype=bool)
    for dy in range(5):
        for dx in range(5):
            same &= pad[dy:dy + shape[0], dx:dx + shape[1]] == crop
    rows, cols = np.nonzero(same & (region >= 0))
    xs = transform.c + (cols + 0.5) * transform.a
    ys = transform.f + (rows + 0.5) * transform.e
    return {"x": xs, "y": ys, "crop": crop[rows, cols], "region": region[rows, cols],
            "crop_map": crop, "region_map": region, "region_ids": regions["region_id"].to_numpy()}


def _sample(path: Path, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 6 bands at EPSG:6933 points (nearest scene pixel) and which points fall inside."""
    with rasterio.open(path) as ds:
        px, py = Transformer.from_crs(DEMO_CRS, ds.crs, always_xy=True).transform(xs, ys)
        col = np.floor((np.asarray(px) - ds.transform.c) / ds.transform.a).astype(int)
        row = np.floor((np.asarray(py) - ds.transform.f) / ds.transform.e).astype(int)
        inside = (row >= 0) & (row < ds.height) & (col >= 0) & (col < ds.width)
        data = ds.read()
    vals = np.zeros((6, len(xs)), dtype=np.uint16)
    vals[:, inside] = data[:, row[inside], col[inside]]
    return vals, inside


def _ndvi(dn: np.ndarray) -> np.ndarray:
    refl = dn.astype(np.float64) * DN_SCALE + DN_OFFSET
    return (refl[3] - refl[2]) / (refl[3] + refl[2])


def _peak_doy(doys: np.ndarray, curve: np.ndarray) -> float:
    """Day of year of a sampled curve's maximum, refined by a parabola through the
    maximum and its two neighbours (acquisitions are ~18 days apart)."""
    k = int(np.nanargmax(curve))
    if k == 0 or k == len(curve) - 1:
        return float(doys[k])
    y0, y1, y2 = curve[k - 1:k + 2]
    h = 0.5 * (doys[k + 1] - doys[k - 1])
    return float(doys[k] + h * (y0 - y2) / (2.0 * (y0 - 2.0 * y1 + y2)))


@pytest.fixture(scope="module")
def clear_ndvi(season: DemoSeason, truth: dict[str, np.ndarray]) -> dict[dt.date, np.ndarray]:
    """NDVI of every interior truth pixel on every date (NaN where cloudy or no data),
    taking the first scene (west to east) that has the pixel clear."""
    out: dict[dt.date, np.ndarray] = {}
    for path in season.scenes:
        date = dt.date.fromisoformat(path.stem.split("_")[2])
        vals, inside = _sample(path, truth["x"], truth["y"])
        ok = inside & np.isin(vals[5], SCL_CLEAR)
        nd = out.setdefault(date, np.full(len(truth["x"]), np.nan))
        fill = ok & np.isnan(nd)
        nd[fill] = _ndvi(vals[:, fill])
    return out


# ------------------------------------------------------------------------------ determinism


def test_make_demo_season__same_seed_is_byte_identical(tiny: DemoSeason, tmp_path: Path) -> None:
    again = make_demo_season(tmp_path, TINY)
    assert [p.name for p in again.scenes] == [p.name for p in tiny.scenes]
    for a, b in zip(tiny.scenes, again.scenes, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    for a, b in [(tiny.truth_crop_type, again.truth_crop_type), (tiny.truth_yields, again.truth_yields),
                 (tiny.regions, again.regions), (tiny.crop_calendar, again.crop_calendar)]:
        assert a.read_bytes() == b.read_bytes(), a.name


def test_make_demo_season__different_seed_differs(tiny: DemoSeason, tmp_path: Path) -> None:
    other = make_demo_season(tmp_path, TINY.replace(seed=4))
    a, b = _read_all(tiny.scenes), _read_all(other.scenes)
    assert a.keys() == b.keys()  # same dates and grids: only the content changes
    differing = sum(not np.array_equal(a[k], b[k]) for k in a)
    assert differing == len(a)
    with rasterio.open(tiny.truth_crop_type) as x, rasterio.open(other.truth_crop_type) as y:
        assert (x.read(1) != y.read(1)).mean() > 0.3


def test_make_demo_season__windows_equal_one_block(tiny: DemoSeason, tmp_path: Path) -> None:
    small = make_demo_season(tmp_path / "small", TINY.replace(block_px=40))
    big = make_demo_season(tmp_path / "big", TINY.replace(block_px=4096))
    a, b, ref = _read_all(small.scenes), _read_all(big.scenes), _read_all(tiny.scenes)
    assert a.keys() == b.keys() == ref.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        np.testing.assert_array_equal(a[k], ref[k], err_msg=k)
    with rasterio.open(small.truth_crop_type) as x, rasterio.open(big.truth_crop_type) as y:
        np.testing.assert_array_equal(x.read(), y.read())


def test_make_demo_season__rerun_removes_stale_scenes(tmp_path: Path) -> None:
    make_demo_season(tmp_path, TINY.replace(years=(2023, 2024, 2025)))
    again = make_demo_season(tmp_path, TINY)
    assert sorted(p.name for p in (tmp_path / "scenes").iterdir()) == sorted(p.name for p in again.scenes)


# ------------------------------------------------------------------------------ scenes


def test_scenes__two_utm_crs_that_overlap(tiny: DemoSeason) -> None:
    names = [p.name for p in tiny.scenes]
    assert len(names) == 2 * len(TINY.years) * TINY.dates_per_season
    by_date: dict[str, dict[int, Path]] = {}
    for p in tiny.scenes:
        _, epsg, date = p.stem.split("_")
        by_date.setdefault(date, {})[int(epsg)] = p
    assert all(set(v) == {32641, 32642} for v in by_date.values())
    for pair in by_date.values():
        with rasterio.open(pair[32641]) as w, rasterio.open(pair[32642]) as e:
            assert w.crs.to_epsg() == 32641 and e.crs.to_epsg() == 32642
            wb = transform_bounds(w.crs, "EPSG:4326", *w.bounds)
            eb = transform_bounds(e.crs, "EPSG:4326", *e.bounds)
        # each reaches ~1 km (0.0146 deg at 52 N) past 66 E: ~2 km shared
        assert wb[2] > 66.01 and eb[0] < 65.99
        assert wb[2] - eb[0] > 0.02


def test_scenes__agree_where_zones_overlap(season: DemoSeason, truth: dict[str, np.ndarray]) -> None:
    lon, _ = Transformer.from_crs(DEMO_CRS, "EPSG:4326", always_xy=True).transform(truth["x"], truth["y"])
    near = np.abs(np.asarray(lon) - 66.0) < 0.008
    assert near.sum() > 100
    xs, ys = truth["x"][near], truth["y"][near]
    agree_flags, nd_w, nd_e = [], [], []
    for w in (p for p in season.scenes if "_32641_" in p.name):
        e = w.with_name(w.name.replace("_32641_", "_32642_"))
        vw, iw = _sample(w, xs, ys)
        ve, ie = _sample(e, xs, ys)
        both = iw & ie & (vw[5] != 0) & (ve[5] != 0)
        assert both.mean() > 0.9
        cloud_w, cloud_e = np.isin(vw[5], (8, 9)), np.isin(ve[5], (8, 9))
        agree_flags.append((cloud_w == cloud_e)[both])
        clear = both & np.isin(vw[5], SCL_CLEAR) & np.isin(ve[5], SCL_CLEAR)
        nd_w.append(_ndvi(vw[:, clear]))
        nd_e.append(_ndvi(ve[:, clear]))
    assert np.concatenate(agree_flags).mean() > 0.97  # the same clouds from both zones
    assert np.corrcoef(np.concatenate(nd_w), np.concatenate(nd_e))[0, 1] > 0.9


def test_scenes__metadata(tiny: DemoSeason) -> None:
    ps = TINY.pixel_size_m
    for p in tiny.scenes:
        with rasterio.open(p) as ds:
            assert ds.count == 6 and set(ds.dtypes) == {"uint16"}
            assert ds.descriptions == SCENE_BANDS
            assert ds.nodatavals == (0.0,) * 6
            assert ds.scales == (DN_SCALE,) * 5 + (1.0,)
            assert ds.offsets == (DN_OFFSET,) * 5 + (0.0,)
            date = dt.date.fromisoformat(p.stem.split("_")[2])
            assert ds.tags()["TIFFTAG_DATETIME"].startswith(f"{date:%Y:%m:%d} ")
            assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert ds.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
            t = ds.transform
            assert (t.a, t.b, t.d, t.e) == (ps, 0.0, 0.0, -ps)
            assert t.c % ps == 0 and t.f % ps == 0


def test_scenes__rioxarray_applies_scale_offset_and_nodata(tiny: DemoSeason) -> None:
    # Bands differ in scale (scl is 1.0), so rioxarray scales per band only with
    # band_as_variable=True; a plain (band, y, x) open leaves DN and warns.
    path = tiny.scenes[0]
    with rasterio.open(path) as ds:
        dn = ds.read()
    xds = rioxarray.open_rasterio(path, mask_and_scale=True, band_as_variable=True)
    try:
        assert xds.rio.crs.to_epsg() == int(path.stem.split("_")[1])
        assert [xds[f"band_{i}"].attrs["long_name"] for i in range(1, 7)] == list(SCENE_BANDS)
        valid = dn[0] != 0
        for i in range(5):
            refl = xds[f"band_{i + 1}"].values
            np.testing.assert_allclose(refl[valid], dn[i][valid] * DN_SCALE + DN_OFFSET, rtol=1e-5, atol=1e-6)
            assert np.isnan(refl[~valid]).all()
        np.testing.assert_array_equal(xds["band_6"].values[valid], dn[5][valid])
    finally:
        xds.close()


def test_scenes__nodata_is_zero_in_every_band(tiny: DemoSeason) -> None:
    total = 0
    for p in tiny.scenes:
        with rasterio.open(p) as ds:
            a = ds.read()
            edge = "west" if "_32641_" in p.name else "east"
        any_zero = (a == 0).any(axis=0)
        assert ((a == 0).all(axis=0) == any_zero).all(), p.name
        assert (a[5][any_zero] == 0).all()
        cols = np.nonzero(any_zero)[1]
        if cols.size:  # only a thin strip along the scene's outer edge
            dist = cols if edge == "west" else a.shape[2] - 1 - cols
            assert dist.max() < 7
        total += int(any_zero.sum())
    assert total > 0


def test_clouds__flagged_pixels_are_exactly_the_bright_ones(tiny: DemoSeason, season: DemoSeason) -> None:
    counts = np.zeros(10, dtype=np.int64)
    for p in tiny.scenes + season.scenes:
        with rasterio.open(p) as ds:
            a = ds.read()
        valid = a[5] != 0
        bright = (a[0] * DN_SCALE + DN_OFFSET) > 0.2
        flagged = np.isin(a[5], (8, 9))
        assert (bright == flagged)[valid].all(), p.name
        counts += np.bincount(a[5].ravel(), minlength=10)
        clear = np.isin(a[5], SCL_CLEAR)
        if (a[5] == 3).any() and clear.any():  # shadows are darker than the clear land
            assert a[3][a[5] == 3].mean() < a[3][clear].mean()
    assert set(np.nonzero(counts)[0]) == {0, 3, 4, 5, 8, 9}
    cloudy = counts[8] + counts[9]
    assert 0.02 < cloudy / counts[1:].sum() < 0.5


# ------------------------------------------------------------------------------ crop behaviour


def test_scene_ndvi__crop_curves_peak_at_their_season(
    clear_ndvi: dict[dt.date, np.ndarray], truth: dict[str, np.ndarray]
) -> None:
    # Pool the seasons: the k-th acquisition of every year falls on about the same DOY.
    dates = sorted(clear_ndvi)
    per_season = SEASON.dates_per_season
    doys = np.array([d.timetuple().tm_yday for d in dates[:per_season]])
    curves = {}
    for name in ("wheat", "oats", "rye", "maize", "fallow", "grassland"):
        sel = truth["crop"] == CODE[name]
        assert sel.sum() > 50, name
        stacked = np.stack([clear_ndvi[d][sel] for d in dates]).reshape(len(SEASON.years), per_season, -1)
        stacked = stacked.transpose(1, 0, 2).reshape(per_season, -1)
        assert (np.isfinite(stacked).sum(axis=1) > 50).all(), name
        curves[name] = np.nanmean(stacked, axis=1)
    peak = {k: _peak_doy(doys, v) for k, v in curves.items()}
    assert abs(peak["wheat"] - 198) <= 10
    assert abs(peak["maize"] - 218) <= 10
    assert abs(peak["rye"] - 156) <= 10
    assert peak["rye"] < peak["oats"] < peak["wheat"] < peak["maize"]
    assert 0.65 < np.nanmax(curves["wheat"]) < 0.9
    assert np.nanmax(curves["fallow"]) < 0.25
    assert 0.35 < np.nanmax(curves["grassland"]) < 0.55
    assert np.nanmin(curves["wheat"]) < 0.3  # bare in spring / after harvest


def test_yields__correlate_with_region_year_peak_wheat_ndvi(
    season: DemoSeason, clear_ndvi: dict[dt.date, np.ndarray], truth: dict[str, np.ndarray]
) -> None:
    yields = pd.read_csv(season.truth_yields)
    wheat = yields[yields["crop"] == "wheat"].set_index(["region_id", "year"])["yield_t_ha"]
    sel = truth["crop"] == CODE["wheat"]
    peak, obs = [], []
    for year in SEASON.years:
        dates = [d for d in clear_ndvi if d.year == year]
        for r, rid in enumerate(truth["region_ids"]):
            m = sel & (truth["region"] == r)
            assert m.sum() > 30
            per_date = [np.nanmean(clear_ndvi[d][m]) for d in dates if np.isfinite(clear_ndvi[d][m]).sum() > 10]
            assert len(per_date) >= len(dates) // 2
            peak.append(max(per_date))
            obs.append(wheat[(rid, year)])
    assert len(obs) == len(SEASON.years) * 4
    assert np.corrcoef(peak, obs)[0, 1] > 0.6


# ------------------------------------------------------------------------------ tables


def test_regions__have_two_parent_countries(season: DemoSeason) -> None:
    regions = gpd.read_file(season.regions)
    assert regions.crs.to_epsg() == 4326
    assert list(regions.columns[:3]) == ["region_id", "name", "parent"]
    assert regions["region_id"].is_unique and len(regions) == SEASON.regions_x * SEASON.regions_y
    assert sorted(regions["parent"].unique()) == ["KZ", "QZ"]
    assert all(rid.startswith(par + "-") for rid, par in zip(regions["region_id"], regions["parent"], strict=True))
    # west half KZ, east half QZ
    west = regions.geometry.bounds["maxx"] <= 66.0 + 1e-6
    assert (regions.loc[west, "parent"] == "KZ").all() and (regions.loc[~west, "parent"] == "QZ").all()
    # the regions tile the AOI
    aoi = transform_bounds(DEMO_CRS, "EPSG:4326", *season.bounds)
    np.testing.assert_allclose(regions.total_bounds, aoi, atol=1e-9)
    assert regions.to_crs(DEMO_CRS).area.sum() == pytest.approx(
        (season.bounds.right - season.bounds.left) * (season.bounds.top - season.bounds.bottom), rel=1e-9)


def test_yield_history__excludes_the_last_season(season: DemoSeason) -> None:
    history = pd.read_csv(season.yield_history)
    allyears = pd.read_csv(season.truth_yields)
    cols = ["region_id", "year", "crop", "yield_t_ha", "harvested_area_ha", "production_t"]
    assert list(history.columns) == list(allyears.columns) == cols
    assert sorted(history["year"].unique()) == list(SEASON.years[:-1])
    assert sorted(allyears["year"].unique()) == list(SEASON.years)
    expected = allyears[allyears["year"] != SEASON.years[-1]].reset_index(drop=True)
    pd.testing.assert_frame_equal(history.reset_index(drop=True), expected)
    np.testing.assert_allclose(allyears["production_t"], allyears["yield_t_ha"] * allyears["harvested_area_ha"],
                               atol=0.01)
    assert set(allyears["crop"]) == set(YIELD_CROPS)
    base = allyears.groupby("crop")["yield_t_ha"].mean()
    assert 1.3 < base["wheat"] < 2.4 and 3.5 < base["maize"] < 6.5


def test_yields__area_is_truth_pixels_times_pixel_area(season: DemoSeason, truth: dict[str, np.ndarray]) -> None:
    allyears = pd.read_csv(season.truth_yields)
    pixel_ha = SEASON.pixel_size_m**2 / 10_000
    crop, region = truth["crop_map"], truth["region_map"]
    assert (region >= 0).all()  # the regions cover every truth pixel
    for (rid, name), area in allyears.groupby(["region_id", "crop"])["harvested_area_ha"]:
        r = list(truth["region_ids"]).index(rid)
        n = int(((crop == CODE[name]) & (region == r)).sum())
        assert area.nunique() == 1  # fields keep their crop every year
        assert area.iloc[0] == pytest.approx(n * pixel_ha, abs=0.01)


def test_crop_calendar__covers_regions_and_crops(season: DemoSeason) -> None:
    cal = pd.read_csv(season.crop_calendar)
    assert list(cal.columns) == ["region_id", "crop", "sos_doy", "eos_doy"]
    assert len(cal) == SEASON.regions_x * SEASON.regions_y * len(YIELD_CROPS)
    assert (cal["sos_doy"] < cal["eos_doy"]).all()
    mean = cal.groupby("crop")[["sos_doy", "eos_doy"]].mean()
    assert mean.loc["rye", "sos_doy"] < mean.loc["wheat", "sos_doy"] < mean.loc["maize", "sos_doy"]


def test_truth__crop_type_on_the_grid(season: DemoSeason) -> None:
    grid = SEASON.grid()
    with rasterio.open(season.truth_crop_type) as ds:
        crop = ds.read(1)
        assert ds.crs.to_epsg() == 6933 and ds.dtypes == ("uint8",) and ds.nodata == 0
        assert ds.res == (grid.pixel_size, grid.pixel_size)
        assert ds.transform.c % grid.pixel_size == 0 and ds.transform.f % grid.pixel_size == 0
        assert tuple(ds.bounds) == pytest.approx(tuple(season.bounds))
    share = np.bincount(crop.ravel(), minlength=7) / crop.size
    assert share[0] == 0 and share.argmax() == CODE["wheat"] and share[1] > 0.35
    assert (share[1:] > 0.02).all()
    classes = json.loads((season.root / "truth" / "crop_classes.json").read_text())
    assert {int(k): v for k, v in classes.items()} == season.crop_classes == CROP_CLASSES


def test_truth__fields_match_the_crop_map(season: DemoSeason) -> None:
    assert season.truth_fields is not None
    fields = gpd.read_file(season.truth_fields)
    assert fields.crs.to_epsg() == 6933
    assert fields["field_id"].is_unique
    area = (season.bounds.right - season.bounds.left) * (season.bounds.top - season.bounds.bottom)
    assert fields.area.sum() == pytest.approx(area, rel=1e-9)  # a partition of the AOI
    assert fields["area_ha"].std() > 0.2 * fields["area_ha"].mean()  # fields differ in size
    with rasterio.open(season.truth_crop_type) as ds:
        pts = fields.geometry.representative_point()
        vals = np.array([v[0] for v in ds.sample(zip(pts.x, pts.y, strict=True))])
    assert (vals == fields["crop_code"].to_numpy()).all()


# ------------------------------------------------------------------------------ spec


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"width_km": 0.0}, "width_km and height_km must be > 0"),
        ({"years": (2025, 2024)}, "years must be non-empty, ascending"),
        ({"years": ()}, "years must be non-empty"),
        ({"dates_per_season": 0}, "dates_per_season must be an integer >= 1"),
        ({"cloud_fraction": 0.9}, r"cloud_fraction must be in \[0, 0.6\]"),
        ({"block_px": 8}, "block_px must be an integer >= 16"),
        ({"field_size_m": 30.0}, "field_size_m must be at least two pixels"),
        ({"center_lat": 88.0}, "where UTM is defined"),
        ({"regions_x": 0}, "regions_x and regions_y must be >= 1"),
    ],
    ids=["zero-width", "descending-years", "no-years", "no-dates", "too-cloudy", "tiny-block",
         "tiny-fields", "polar", "no-regions"],
)
def test_demo_spec__rejects_bad_values(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        DemoSpec(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("megapixels", [50.0, 300.0], ids=["50mpx", "300mpx"])
def test_demo_spec__for_benchmark_hits_the_size(megapixels: float) -> None:
    spec = DemoSpec.for_benchmark(megapixels, years=(2024, 2025), dates_per_season=6)
    assert spec.scene_megapixels() == pytest.approx(megapixels, rel=0.02)
    assert spec.years == (2024, 2025) and spec.width_km / spec.height_km == pytest.approx(1.5)
    assert [s.epsg for s in plan_demo_scenes(spec)] == [32641, 32642]


def test_plan_demo_scenes__rejects_the_antimeridian() -> None:
    with pytest.raises(ConfigError, match="across the antimeridian"):
        plan_demo_scenes(DemoSpec(center_lon=179.99, width_km=20.0))


def test_demo_spec__single_zone_away_from_66e() -> None:
    scenes = plan_demo_scenes(DemoSpec(center_lon=70.0, width_km=5.0, height_km=5.0))
    assert [s.epsg for s in scenes] == [32642]


def test_make_demo_season__default_spec_paths(tiny: DemoSeason) -> None:
    for p in (tiny.regions, tiny.yield_history, tiny.crop_calendar, tiny.truth_crop_type,
              tiny.truth_yields, tiny.truth_fields, tiny.root / "demo_spec.json"):
        assert p is not None and p.is_file(), p
    assert tiny.dates == TINY.acquisition_dates()
    assert "EPSG:32641, EPSG:32642" in tiny.summary()
    recorded = json.loads((tiny.root / "demo_spec.json").read_text())
    assert DemoSpec(**{**recorded["spec"], "years": tuple(recorded["spec"]["years"])}) == TINY
    assert DemoSpec().grid().crs == DEMO_CRS and DemoSpec().grid().tile_size_px == 256


def test_weather__daily_per_region_and_driven_by_the_year_anomaly(season: DemoSeason) -> None:
    weather = pd.read_csv(season.weather, dtype={"region_id": str}, parse_dates=["date"])
    assert list(weather.columns) == ["region_id", "date", "variable", "value"]
    days = sum(366 if y % 4 == 0 else 365 for y in SEASON.years)
    assert len(weather) == SEASON.regions_x * SEASON.regions_y * days * 3
    wide = weather.pivot_table(index=["region_id", "date"], columns="variable", values="value")
    assert (wide["tmin"] < wide["tmax"]).mean() > 0.99 and (wide["prec"] >= 0).all()
    summer = wide[wide.index.get_level_values("date").month.isin([6, 7])].reset_index()
    summer["year"] = summer["date"].dt.year
    per = summer.groupby(["region_id", "year"])[["tmax", "prec"]].mean()
    anomaly = pd.read_csv(season.truth_weather, dtype={"region_id": str}).set_index(["region_id", "year"])["anomaly"]
    joined = per.join(anomaly)
    assert joined["tmax"].corr(joined["anomaly"]) < -0.5  # a poor year is hot...
    assert joined["prec"].corr(joined["anomaly"]) > 0.2  # ...and dry
