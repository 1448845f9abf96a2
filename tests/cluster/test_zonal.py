"""Exact, associative regional statistics: oracles, tiling/order invariance, real rasters."""

from __future__ import annotations

import math
import statistics

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Geod

from cluster.zonal import (
    ALL_CROPLAND,
    HistogramSpec,
    PartialMerger,
    accumulate_tile,
    finalize,
    merge_partials,
    write_statistics,
)
from cluster.errors import DataError
from cluster.grid import GridSpec, TileIndex
from cluster.regions import load_regions, rasterize_regions, rasterize_window, to_grid_crs
from tests._data import shared_data

IDS = [f"r{i}" for i in range(6)]


def oracle(labels, values, crop=None, ids=IDS):
    """pandas groupby + math.fsum: the exact statistics, pixel by pixel."""
    nt = values.shape[0]
    rows = []
    for t in range(nt):
        c = np.zeros(labels.shape, int) if crop is None else (crop[t] if crop.ndim == 3 else crop)
        df = pd.DataFrame({"r": labels.ravel(), "c": c.ravel(), "v": values[t].ravel().astype(np.float64)})
        df = df[(df.r >= 0) & (df.c >= 0)]
        for (r, cc), g in df.groupby(["r", "c"]):
            v = g.v[np.isfinite(g.v)]
            rows.append({"region_id": ids[r], "crop": cc, "date": t, "count_px": len(g),
                         "valid_px": len(v), "sum": math.fsum(v), "sum_sq": math.fsum(v * v)})
    return pd.DataFrame(rows).sort_values(["region_id", "crop", "date"]).reset_index(drop=True)


def check_against_oracle(table: pd.DataFrame, expected: pd.DataFrame) -> None:
    got = table[["region_id", "crop", "date", "count_px", "valid_px", "sum", "sum_sq"]]
    got = got.astype({"region_id": object}).reset_index(drop=True)
    exp = expected.astype({"region_id": object})
    pd.testing.assert_frame_equal(got, exp[got.columns], check_dtype=False, check_exact=True)


def random_case(rng, ny, nx, nt, crop_3d=False, extreme=True):
    labels = rng.integers(-1, len(IDS), (ny, nx)).astype(np.int32)
    scale = rng.choice([1e-40, 1e-12, 1e-3, 1.0, 1e25], (nt, ny, nx)) if extreme else 1.0
    values = (rng.standard_normal((nt, ny, nx)) * scale).astype(np.float32)
    values[rng.random(values.shape) < 0.15] = np.nan
    values[rng.random(values.shape) < 0.02] = np.inf
    crop = rng.integers(-1, 3, (nt, ny, nx) if crop_3d else (ny, nx)).astype(np.int16)
    return labels, values, crop


def split_and_merge(labels, values, crop, row_cuts, col_cuts, order, area=100.0, **kw):
    parts = []
    ys = [0, *row_cuts, labels.shape[0]]
    xs = [0, *col_cuts, labels.shape[1]]
    for i in range(len(ys) - 1):
        for j in range(len(xs) - 1):
            sy, sx = slice(ys[i], ys[i + 1]), slice(xs[j], xs[j + 1])
            if sy.start == sy.stop or sx.start == sx.stop:
                continue
            c = None if crop is None else crop[..., sy, sx]
            parts.append(accumulate_tile(labels[sy, sx], {"ndvi": values[:, sy, sx]}, region_ids=IDS,
                                         row_area_m2=area, crop=c, tile_id=f"{i}_{j}", **kw))
    parts = [parts[k % len(parts)] for k in order] if order else parts
    return parts


@pytest.mark.parametrize("crop_3d", [False, True], ids=["crop_2d", "crop_per_date"])
def test_accumulate_tile__equals_exact_oracle(crop_3d):
    rng = np.random.default_rng(1)
    labels, values, crop = random_case(rng, 37, 41, 3, crop_3d=crop_3d)
    values[0, 0, 0] = np.float32(1e-45)  # subnormal
    values[1, 0, 1] = np.float32(-3.4e38)  # near float32 max
    table = finalize(accumulate_tile(labels, {"ndvi": values}, region_ids=IDS, row_area_m2=100.0, crop=crop))
    check_against_oracle(table, oracle(labels, values, crop))
    assert set(table["crop"]) <= {0, 1, 2}  # negative codes are excluded


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    ny=st.integers(1, 24),
    nx=st.integers(1, 24),
    nt=st.integers(1, 3),
    data=st.data(),
)
def test_merge_partials__any_tiling_and_order_is_bit_identical(seed, ny, nx, nt, data):
    rng = np.random.default_rng(seed)
    labels, values, crop = random_case(rng, ny, nx, nt)
    row_cuts = sorted(data.draw(st.lists(st.integers(0, ny), max_size=3)))
    col_cuts = sorted(data.draw(st.lists(st.integers(0, nx), max_size=3)))
    parts = split_and_merge(labels, values, crop, row_cuts, col_cuts, None)
    perm = data.draw(st.permutations(range(len(parts))))
    shuffled = [parts[k] for k in perm]
    cut = data.draw(st.integers(0, len(parts)))
    # one flat merge vs a two-level tree in another order: same bits
    flat = finalize(merge_partials(parts))
    tree_parts = [merge_partials(shuffled[:cut])] if cut else []
    tree_parts += [merge_partials(shuffled[cut:])] if cut < len(parts) else []
    tree = finalize(merge_partials(tree_parts))
    whole = finalize(accumulate_tile(labels, {"ndvi": values}, region_ids=IDS, row_area_m2=100.0, crop=crop))
    pd.testing.assert_frame_equal(flat, tree, check_exact=True)
    pd.testing.assert_frame_equal(flat, whole, check_exact=True)
    if len(flat):
        check_against_oracle(flat, oracle(labels, values, crop))
    else:
        assert ((labels < 0) | (crop < 0)).all()


def test_finalize__std_has_no_cancellation():
    # a large offset with tiny spread: sum_sq/n - mean**2 in float64 would lose every digit
    k = np.random.default_rng(5).integers(-8, 9, 999).astype(np.float32)
    v = np.float32(1e6) + k * np.float32(0.0625)  # float32 steps of 1/16 around a million
    labels = np.zeros((1, v.size), np.int32)
    row = finalize(accumulate_tile(labels, v[None, None, :], region_ids=["a"], row_area_m2=1.0)).iloc[0]
    exact = statistics.pstdev([float(x) for x in v])  # Fractions inside: exact, then rounded
    assert row["std"] == pytest.approx(exact, rel=1e-15)
    assert row["mean"] == statistics.fmean([float(x) for x in v])
    naive = math.sqrt(max(row["sum_sq"] / v.size - row["mean"] ** 2, 0.0))
    assert abs(naive - exact) > 1e-5 * exact  # the textbook formula really is off here


def test_finalize__columns_units_and_valid_fraction():
    labels = np.array([[0, 0, 1]], np.int32)
    v = np.array([[[0.5, np.nan, 0.2]], [[0.1, 0.3, np.nan]]], np.float32)
    regions = pd.DataFrame({"region_id": ["a", "b"], "name": ["Alpha", "Beta"], "parent": ["KZ", "KZ"]})
    p = accumulate_tile(labels, {"ndvi": v, "evi": v * 2}, region_ids=["a", "b"], row_area_m2=[400.0],
                        dates=np.array(["2024-05-01", "2024-05-17"], "datetime64[D]"))
    t = finalize(p, regions)
    assert list(t.columns[:17]) == ["region_id", "name", "parent", "crop", "date", "index", "count_px",
                                    "valid_px", "valid_fraction", "area_ha", "valid_area_ha", "sum",
                                    "sum_sq", "mean", "std", "min", "max"]
    a = t[(t.region_id == "a") & (t["index"] == "ndvi") & (t.date == np.datetime64("2024-05-01"))].iloc[0]
    assert (a["count_px"], a["valid_px"], a["valid_fraction"]) == (2, 1, 0.5)
    assert (a["area_ha"], a["valid_area_ha"]) == (0.08, 0.04)
    assert (a["name"], a["parent"]) == ("Alpha", "KZ")
    b = t[(t.region_id == "b") & (t.date == np.datetime64("2024-05-17"))]
    assert b["valid_px"].tolist() == [0, 0] and b["mean"].isna().all()
    assert len(t) == 2 * 2 * 2


def test_finalize__quantiles_from_histogram_within_a_bin():
    rng = np.random.default_rng(3)
    v = rng.uniform(-0.2, 0.9, (1, 50, 60)).astype(np.float32)
    labels = np.zeros((50, 60), np.int32)
    spec = HistogramSpec(-1.0, 1.0, 200)
    parts = [accumulate_tile(labels[:, s], v[:, :, s], region_ids=["a"], row_area_m2=1.0,
                             histogram=spec, tile_id=str(i))
             for i, s in enumerate([slice(0, 25), slice(25, 60)])]
    t = finalize(merge_partials(parts), quantiles=(0.1, 0.5, 0.9))
    for q, col in ((0.1, "q10"), (0.5, "q50"), (0.9, "q90")):
        assert abs(t[col].iloc[0] - np.quantile(v, q)) <= spec.bin_width
    with pytest.raises(DataError, match="no histogram"):
        finalize(accumulate_tile(labels, v, region_ids=["a"], row_area_m2=1.0), quantiles=(0.5,))


def test_accumulate_tile__crop_mask_and_all_cropland():
    labels = np.array([[0, 0], [0, -1]], np.int32)
    v = np.ones((1, 2, 2), np.float32)
    mask = np.array([[True, False], [True, True]])
    t_mask = finalize(accumulate_tile(labels, v, region_ids=["a"], row_area_m2=1.0, crop=mask))
    t_all = finalize(accumulate_tile(labels, v, region_ids=["a"], row_area_m2=1.0))
    assert t_mask[["crop", "count_px"]].values.tolist() == [[ALL_CROPLAND, 2]]
    assert t_all[["crop", "count_px"]].values.tolist() == [[ALL_CROPLAND, 3]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"labels": np.full((2, 2), 5, np.int32)}, "region code 5"),
        ({"values": np.ones((1, 3, 3), np.float32)}, r"expected \(time, y, x\)"),
        ({"values": np.ones((1, 2, 2), np.uint16)}, "Scale integer bands"),
        ({"crop": np.ones((2, 2), np.float32)}, "integer class codes"),
        ({"row_area_m2": np.ones(3)}, "row_area_m2 must be 2"),
        ({"dates": ["2024-01-01", "2024-01-02"]}, "dates has 2 entries"),
    ],
    ids=["label_out_of_range", "shape", "int_values", "float_crop", "row_area", "dates"],
)
def test_accumulate_tile__bad_input_messages(kwargs, match):
    args = {"labels": np.zeros((2, 2), np.int32), "values": np.ones((1, 2, 2), np.float32),
            "region_ids": ["a"], "row_area_m2": 1.0}
    args.update(kwargs)
    labels, values = args.pop("labels"), args.pop("values")
    with pytest.raises(DataError, match=match):
        accumulate_tile(labels, values, **args)


def test_merge_partials__refuses_a_tile_twice():
    p = accumulate_tile(np.zeros((2, 2), np.int32), np.ones((1, 2, 2), np.float32), region_ids=["a"],
                        row_area_m2=1.0, tile_id="r0_c0")
    with pytest.raises(DataError, match=r"\['r0_c0'\] are in two partials"):
        merge_partials([p, p])


def test_partial_merger__bounded_and_equal_to_one_big_merge():
    """10,000 tiles' partials merged as they arrive: the result equals one merge of all of
    them, and the merger never holds more than one total plus a batch."""
    rng = np.random.default_rng(3)
    merger = PartialMerger(batch=64)
    parts = []
    held = 0
    for k in range(10_000):
        labels = rng.integers(-1, 3, (4, 4)).astype(np.int32)
        values = rng.random((2, 4, 4), dtype=np.float32)
        p = accumulate_tile(labels, {"ndvi": values}, region_ids=["a", "b", "c"], row_area_m2=100.0,
                            dates=np.array(["2025-05-01", "2025-06-01"], "datetime64[ns]"), tile_id=f"t{k}")
        parts.append(p)
        merger.add(p)
        held = max(held, len(merger._pending))
    assert held < 64
    total = merger.result()
    assert total.equals(merge_partials(parts)) and total.tiles == frozenset(f"t{k}" for k in range(10_000))
    # a tile that comes again, batches after its first result, is refused on arrival
    with pytest.raises(DataError, match=r"\['t17'\] are in two partials"):
        merger.add(parts[17])
    assert merger.result().tiles == total.tiles


def test_write_statistics__parquet_and_csv_round_trip(tmp_path):
    p = accumulate_tile(np.zeros((2, 2), np.int32), np.full((1, 2, 2), 0.1, np.float32),
                        region_ids=["a"], row_area_m2=1.0)
    t = finalize(p)
    pq, csv = write_statistics(t, tmp_path / "out" / "stats")
    back = pd.read_parquet(pq)
    pd.testing.assert_frame_equal(back, t, check_dtype=False)
    assert pd.read_csv(csv)["sum"].iloc[0] == t["sum"].iloc[0]  # %.17g keeps every bit


# ---------------------------------------------------------------------------------------------
# area from the grid, on the real Mato Grosso boundary


def _area_on_grid(regions, grid):
    parts = []
    rg = to_grid_crs(regions, grid)
    b = rg.total_bounds
    from cluster.grid import BBox

    for tile in grid.tiles_for_bounds(BBox(*b)):
        labels, _ = rasterize_regions(rg, grid, tile)
        n = grid.tile_size_px
        parts.append(accumulate_tile(labels, np.zeros((1, n, n), np.float32), region_ids=list(rg.region_id),
                                     row_area_m2=grid.pixel_area_m2(tile), tile_id=tile.id))
    return finalize(merge_partials(parts)).iloc[0]


@pytest.fixture(scope="module")
def mato_grosso():
    path = shared_data("modis_mod13q1_sinop", "mato_grosso_boundary", "mt.shp")
    regions, issues = load_regions(path, id_column="CD_GEOCUF", name_column="NM_ESTADO")
    return regions


def test_area__equal_area_grid_matches_polygon_area(mato_grosso):
    grid = GridSpec("EPSG:6933", pixel_size=2000.0, tile_size_px=256)
    row = _area_on_grid(mato_grosso, grid)
    truth_ha = mato_grosso.to_crs("EPSG:6933").area.iloc[0] / 1e4
    # pixel-centre discretisation on 2 km pixels of a ~900 000 km² state: well under 0.1 %
    assert row["area_ha"] == pytest.approx(truth_ha, rel=1e-3)
    assert row["area_ha"] == row["count_px"] * 400.0  # equal-area: every pixel is 400 ha exactly


def test_area__geographic_grid_uses_per_row_geodesic_area(mato_grosso):
    grid = GridSpec("EPSG:4674", pixel_size=0.02, tile_size_px=256)
    row = _area_on_grid(mato_grosso, grid)
    geod = Geod(ellps="GRS80")
    truth_ha = abs(geod.geometry_area_perimeter(mato_grosso.geometry.iloc[0])[0]) / 1e4
    assert row["area_ha"] == pytest.approx(truth_ha, rel=1e-3)
    equator_px_ha = grid.pixel_area_m2(TileIndex(0, 0))[0] / 1e4  # pixel count x a constant
    assert abs(row["count_px"] * equator_px_ha - truth_ha) > 5e-3 * truth_ha


# ---------------------------------------------------------------------------------------------
# cross-checks on real rasters: rasterstats (same pixel-centre rule) and exactextract


@pytest.fixture(scope="module")
def sinop():
    folder = shared_data("modis_mod13q1_sinop", "ndvi")
    files = sorted(folder.glob("TERRA_MODIS_NDVI_*.tif"))
    with rasterio.open(files[0]) as src:
        transform, crs = src.transform, src.crs
    stack = []
    for f in files:
        with rasterio.open(f) as src:
            dn = src.read(1)
        stack.append(np.where(dn == 65535, np.nan, dn / 10000.0).astype(np.float32))
    dates = np.array([f.stem.rsplit("_", 1)[1] for f in files], "datetime64[D]")
    return np.stack(stack), transform, crs, dates, files


def _sinop_regions(sinop, mato_grosso):
    _, transform, crs, _, _ = sinop
    samples = pd.read_csv(shared_data("modis_mod13q1_sinop", "samples_sinop_crop.csv"))
    pts = gpd.GeoSeries(gpd.points_from_xy(samples.longitude, samples.latitude), crs="EPSG:4326").to_crs(crs)
    ny, nx = sinop[0].shape[1:]
    frame = shapely.box(transform.c, transform.f + ny * transform.e, transform.c + nx * transform.a, transform.f)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts.values), extend_to=frame))
    cells = [c.intersection(frame) for c in cells]
    vor = gpd.GeoDataFrame({"region_id": [f"v{i:02d}" for i in range(len(cells))], "name": None,
                            "parent": "BR"}, geometry=cells, crs=crs)
    return {"mato_grosso": mato_grosso.to_crs(crs), "voronoi": vor}


def _ours_on_grid(values, transform, crs, dates, regions, tile_px=64):
    """Treat the raster as a grid of tiles (padding with NaN) and aggregate tile by tile."""
    grid = GridSpec(crs.to_wkt(), pixel_size=transform.a, tile_size_px=tile_px,
                    origin_x=transform.c, origin_y=transform.f)
    nt, ny, nx = values.shape
    parts = []
    for r in range(math.ceil(ny / tile_px)):
        for c in range(math.ceil(nx / tile_px)):
            tile = TileIndex(r, c)
            block = np.full((nt, tile_px, tile_px), np.nan, np.float32)
            sub = values[:, r * tile_px:(r + 1) * tile_px, c * tile_px:(c + 1) * tile_px]
            block[:, :sub.shape[1], :sub.shape[2]] = sub
            labels, _ = rasterize_regions(regions.set_crs(grid.pyproj_crs, allow_override=True), grid, tile)
            labels[sub.shape[1]:, :] = -1  # pixels outside the raster are not part of it
            labels[:, sub.shape[2]:] = -1
            parts.append(accumulate_tile(labels, {"ndvi": block}, region_ids=list(regions.region_id),
                                         dates=dates, row_area_m2=grid.pixel_area_m2(tile), tile_id=tile.id))
    parts.reverse()  # any order
    return finalize(merge_partials(parts), regions)


@pytest.mark.parametrize("which", ["mato_grosso", "voronoi"], ids=["mato_grosso", "voronoi_cells"])
def test_sinop_ndvi__identical_to_rasterstats_pixel_centre(sinop, mato_grosso, which):
    from rasterstats import zonal_stats

    values, transform, crs, dates, _ = sinop
    regions = _sinop_regions(sinop, mato_grosso)[which]
    ours = _ours_on_grid(values, transform, crs, dates, regions)
    for t in range(0, len(dates), 4):
        arr = np.where(np.isnan(values[t]), -9999.0, values[t].astype(np.float64))
        rs = zonal_stats(regions, arr, affine=transform, nodata=-9999.0, all_touched=False,
                         stats=["count", "mean", "nodata"])
        got = ours[ours.date == dates[t]].set_index("region_id")
        for rid, s in zip(regions.region_id, rs, strict=True):
            if not s["count"] and not s["nodata"]:
                assert rid not in got.index
                continue
            g = got.loc[rid]
            assert g["valid_px"] == s["count"]
            if which == "voronoi":  # inside the raster; rasterstats counts outside as nodata
                assert g["count_px"] == s["count"] + s["nodata"]
            if s["count"]:
                assert g["mean"] == pytest.approx(s["mean"], rel=1e-12)


def test_sinop_ndvi__close_to_exactextract(sinop, mato_grosso):
    from exactextract import exact_extract

    values, transform, crs, dates, files = sinop
    regions = _sinop_regions(sinop, mato_grosso)["voronoi"]
    ours = _ours_on_grid(values, transform, crs, dates, regions)
    ee = exact_extract(str(files[0]), regions, ["count", "mean"], include_cols=["region_id"], output="pandas")
    got = ours[ours.date == dates[0]].set_index("region_id").loc[ee.region_id]
    # exactextract weights boundary pixels by their covered fraction, ours counts whole pixels
    # by centre: they differ only on boundary pixels. Stated tolerance: counts within 10 % of
    # the perimeter in pixels, means within 10 % of the boundary share (perimeter / count)
    perimeter_px = regions.set_index("region_id").loc[ee.region_id].length.to_numpy() / transform.a
    assert (np.abs(got["valid_px"].to_numpy() - ee["count"]) <= 0.1 * perimeter_px).all()
    rel = np.abs(got["mean"].to_numpy() - ee["mean"] / 10000.0) / got["mean"].to_numpy()
    assert (rel <= 0.1 * perimeter_px / got["valid_px"].to_numpy()).all()
    assert np.median(rel) < 2e-3


def test_slovenia_ndvi_per_landcover_polygon__identical_to_rasterstats():
    from rasterstats import zonal_stats

    folder = shared_data("sentinel2_slovenia_eolearn")
    with rasterio.open(folder / "ndvi_68dates.tif") as src:
        values, transform = src.read(), src.transform
    regions, issues = load_regions(folder / "lulc_polygons.gpkg", id_column="index", name_column="LULC_NAME")
    ids = list(regions.region_id)
    labels, _ = rasterize_window(regions, transform, values.shape[1:])
    area = abs(transform.a * transform.e)  # UTM, non-square pixels: the raster's own pixel area
    whole = finalize(accumulate_tile(labels, {"ndvi": values}, region_ids=ids, row_area_m2=area), regions)
    # the same window cut in four and merged out of order: bit-identical
    parts = []
    for k, (sy, sx) in enumerate([(slice(0, 40), slice(0, 55)), (slice(0, 40), slice(55, 100)),
                                  (slice(40, 101), slice(0, 55)), (slice(40, 101), slice(55, 100))]):
        lab, _ = rasterize_window(regions, transform * transform.translation(sx.start, sy.start),
                                  (sy.stop - sy.start, sx.stop - sx.start))
        parts.append(accumulate_tile(lab, {"ndvi": values[:, sy, sx]}, region_ids=ids,
                                     row_area_m2=area, tile_id=str(k)))
    pd.testing.assert_frame_equal(finalize(merge_partials(parts[::-1]), regions), whole, check_exact=True)
    for t in (0, 17, 40, 67):
        rs = zonal_stats(regions, values[t].astype(np.float64), affine=transform, nodata=-9999.0,
                         all_touched=False, stats=["count", "mean"])
        got = whole[whole.date == t].set_index("region_id")
        for rid, s in zip(ids, rs, strict=True):
            if not s["count"]:
                assert rid not in got.index
                continue
            assert got.loc[rid, "count_px"] == s["count"]
            assert got.loc[rid, "mean"] == pytest.approx(s["mean"], rel=1e-12)
