"""Loading, validating and rasterizing regions."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine
from pydantic import ValidationError

from cluster.errors import DataError
from cluster.grid import GridSpec, TileIndex
from cluster.regions import RegionsConfig, load_regions, rasterize_regions, rasterize_window, to_grid_crs
from tests._data import shared_data


def write(tmp_path, frame, name="regions.gpkg"):
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_file(path)
    return path


def frame(ids, geoms, crs="EPSG:4326", **cols):
    return gpd.GeoDataFrame({"code": ids, "label": [f"n{i}" for i in ids], "iso": "KZ", **cols},
                            geometry=geoms, crs=crs)


BOXES = [shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), shapely.box(2, 0, 3, 1)]


@pytest.mark.parametrize("name", ["r.geojson", "r.gpkg", "r.shp", "r.parquet"],
                         ids=["geojson", "gpkg", "shapefile", "geoparquet"])
def test_load_regions__every_format_normalised(tmp_path, name):
    path = write(tmp_path, frame([30, 10, 20], BOXES), name)
    regions, issues = load_regions(RegionsConfig(path=str(path), id_column="code", name_column="label",
                                                 parent_column="iso"))
    assert list(regions.columns) == ["region_id", "name", "parent", "geometry"]
    assert list(regions.region_id) == ["10", "20", "30"]  # text, sorted: row = region code
    assert list(regions.name) == ["n10", "n20", "n30"] and set(regions.parent) == {"KZ"}
    assert issues == [] and regions.crs.to_epsg() == 4326


def test_load_regions__missing_column_lists_available(tmp_path):
    path = write(tmp_path, frame([1, 2, 3], BOXES))
    with pytest.raises(DataError, match=r"no column 'admin_id' \(id_column\); available columns: "
                                        r"\['code', 'label', 'iso'\]"):
        load_regions(path, id_column="admin_id")


def test_load_regions__duplicate_ids_refused(tmp_path):
    path = write(tmp_path, frame(["a", "b", "a"], BOXES))
    with pytest.raises(DataError, match=r"duplicate ids in column 'code': \['a'\].*dissolve"):
        load_regions(path, id_column="code")


def test_load_regions__bad_geometries_reported_never_silently_dropped(tmp_path):
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])  # self-intersecting
    geoms = [bowtie, shapely.LineString([(0, 0), (1, 1)]), shapely.Polygon(), shapely.box(5, 5, 6, 6)]
    f = gpd.GeoDataFrame({"code": ["bow", "line", "empty", None]}, geometry=geoms, crs="EPSG:4326")
    regions, issues = load_regions(write(tmp_path, f, "r.geojson"), id_column="code")
    assert list(regions.region_id) == ["bow"]
    assert regions.geometry.iloc[0].is_valid and regions.geometry.iloc[0].area == pytest.approx(0.5)
    text = [str(i) for i in issues]
    assert any("'bow'" in t and "invalid geometry" in t and "repaired" in t for t in text)
    assert any("'line'" in t and "LineString" in t and "dropped" in t for t in text)
    assert any("'empty'" in t and "empty" in t and "dropped" in t for t in text)
    assert any("row 3" in t and "empty id" in t for t in text)
    assert len(issues) == 4


def test_load_regions__overlaps_reported_and_lowest_code_wins(tmp_path):
    geoms = [shapely.box(0, 0, 2, 2), shapely.box(1, 1, 3, 3)]
    regions, issues = load_regions(write(tmp_path, frame(["b", "a"], geoms, crs="EPSG:3857")), id_column="code")
    assert [str(i) for i in issues] == [
        "region 'b': overlaps region 'a'; kept; shared pixels count for 'a' only (lowest region code wins)"]
    labels, codes = rasterize_window(regions, Affine(1, 0, 0, 0, -1, 3), (3, 3))
    assert labels[1, 1] == 0 and codes[0] == "a"  # the shared pixel (centre 1.5, 1.5) goes to 'a'


def test_load_regions__no_crs_needs_config(tmp_path):
    path = tmp_path / "r.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
                    '{"code": "a"}, "geometry": {"type": "Polygon", "coordinates": '
                    '[[[0, 0], [1, 0], [1, 1], [0, 0]]]}}]}')
    regions, _ = load_regions(path, id_column="code")  # GeoJSON is WGS84 by definition
    assert regions.crs.to_epsg() == 4326
    with pytest.raises(DataError, match="does not exist"):
        load_regions(tmp_path / "nope.gpkg", id_column="code")


def test_regions_config__rejects_unknown_keys():
    with pytest.raises(ValidationError, match="id_colum"):
        RegionsConfig(path="x.gpkg", id_column="a", id_colum="typo")


def test_rasterize_regions__pixel_centre_rule_and_fast_path():
    grid = GridSpec("EPSG:6933", pixel_size=10.0, tile_size_px=16)
    # covers 0.4 of pixel column 0 (centre outside) and 0.6 of column 1 (centre inside)
    regions = gpd.GeoDataFrame({"region_id": ["a", "far"]}, geometry=[
        shapely.box(6, -160, 16, 0), shapely.box(1e6, -1e6, 1e6 + 10, -1e6 + 10)], crs="EPSG:6933")
    labels, codes = rasterize_regions(regions, grid, TileIndex(0, 0))
    assert labels.shape == (16, 16) and labels.dtype == np.int32
    assert (labels[:, 0] == -1).all() and (labels[:, 1] == 0).all() and (labels[:, 2:] == -1).all()
    assert codes == {0: "a"}  # 'far' misses the tile's bounds: never burnt
    with pytest.raises(DataError, match="call to_grid_crs"):
        rasterize_regions(regions.to_crs("EPSG:4326"), grid, TileIndex(0, 0))


def test_load_regions__real_mato_grosso_reprojects_to_grid():
    path = shared_data("modis_mod13q1_sinop", "mato_grosso_boundary", "mt.shp")
    regions, issues = load_regions(path, id_column="CD_GEOCUF", name_column="NM_ESTADO")
    assert list(regions.region_id) == ["51"] and regions.name.iloc[0] == "MATO GROSSO"
    grid = GridSpec("EPSG:6933", pixel_size=1000.0, tile_size_px=256)
    g = to_grid_crs(regions, grid)
    assert g.crs.equals(grid.pyproj_crs) and g.geometry.is_valid.all()
    # ~903 000 km² (IBGE); a wrong CRS or axis order would be far off
    assert g.area.iloc[0] / 1e6 == pytest.approx(903_000, rel=0.01)


def _random_shapes(rng: np.random.Generator, kind: int) -> list:
    """A few polygons in a 60 x 60 px window of 10 m pixels (origin 1000, 5000)."""
    shapes = []
    for _ in range(int(rng.integers(1, 6))):
        if kind == 0:  # vertices on pixel centres and pixel edges: every tie case
            pts = 5.0 * rng.integers(0, 120, (int(rng.integers(3, 9)), 2))
            poly = shapely.Polygon(np.c_[1000 + pts[:, 0], 5000 - pts[:, 1]]).buffer(0)
        elif kind == 1:  # boxes with box holes, edges on pixel centres (horizontal ties)
            x0, y0 = 1005 + 10 * rng.integers(0, 25, 2)
            w, h = 10 * rng.integers(8, 30, 2)
            outer = shapely.box(x0, 5000 - y0 - h, x0 + w, 5000 - y0)
            poly = outer.difference(shapely.box(x0 + 30, 5000 - y0 - h + 30, x0 + w - 20, 5000 - y0 - 20))
        else:  # smooth shapes with holes, some as multipolygons
            c = rng.uniform(1000, 1600, 2) * [1, -1] + [0, 6000]
            poly = shapely.Point(c).buffer(rng.uniform(20, 250), quad_segs=int(rng.integers(2, 12)))
            poly = poly.difference(shapely.Point(c).buffer(rng.uniform(5, 60)))
            poly = shapely.union(poly, shapely.Point(c + 300).buffer(40))
        if not poly.is_empty:
            shapes.append(shapely.orient_polygons(poly, exterior_cw=bool(rng.integers(0, 2))))
    return shapes


def test_burn_polygons__same_pixels_as_gdal_ties_included():
    from rasterio import features

    from cluster._rasterize import burn_polygons

    rng = np.random.default_rng(7)
    for trial in range(240):
        shapes = _random_shapes(rng, trial % 3)
        values = list(range(len(shapes)))[::-1]
        transform = Affine(10.0, 0, 1000.0 + 5 * int(rng.integers(0, 3)), 0, -10.0, 5000.0)
        expected = np.full((60, 60), -1, np.int32)
        if shapes:
            features.rasterize(list(zip(shapes, values, strict=True)), out=expected, transform=transform)
        got = burn_polygons(np.full((60, 60), -1, np.int32), shapes, values, transform)
        assert np.array_equal(got, expected), f"trial {trial}: {int((got != expected).sum())} px differ"


@pytest.mark.parametrize("name", ["r.geojson", "r.parquet"], ids=["geojson", "geoparquet"])
def test_load_regions__remote_file_read_with_the_storage_options(tmp_path, name):
    import uuid

    import fsspec

    local = write(tmp_path, frame([2, 1], BOXES[:2]), name)
    url = f"memory://regions-{uuid.uuid4().hex[:8]}/{name}"  # only fsspec reaches memory://, never GDAL
    fsspec.filesystem("memory").pipe_file(url, local.read_bytes())
    regions, issues = load_regions(RegionsConfig(path=url, id_column="code"), storage_options={})
    assert list(regions.region_id) == ["1", "2"] and not issues


@pytest.mark.s3
def test_load_regions__s3_endpoint_from_the_job_config(tmp_path, s3_bucket, s3_options):
    import s3fs

    from cluster.aggregate import AggregateConfig

    local = write(tmp_path, frame([2, 1], BOXES[:2]), "r.geojson")
    s3fs.S3FileSystem(**s3_options).put(str(local), f"{s3_bucket}/regions/r.geojson")
    config = AggregateConfig.model_validate({
        "store": f"s3://{s3_bucket}/cube.zarr", "regions": {"path": f"s3://{s3_bucket}/regions/r.geojson",
                                                            "id_column": "code"},
        "storage": {"endpoint_url": s3_options["client_kwargs"]["endpoint_url"], "region": "us-east-1",
                    "key": "testing", "secret": "testing"}})
    regions, _ = load_regions(config.regions, storage_options=config.location().storage_options)
    assert list(regions.region_id) == ["1", "2"]
