"""Vector reads by bounding box: the parcels a tile needs, from every format we read."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from cluster.vector import read_vector, vector_crs


@pytest.fixture
def squares() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"field_id": [f"{i:03d}" for i in range(10)]},
                            geometry=[shapely.box(i * 100, 0, i * 100 + 90, 90) for i in range(10)],
                            crs="EPSG:32642")


@pytest.mark.parametrize("name", ["p.gpkg", "p.geojson", "p.parquet", "p-covering.parquet"])
def test_read_vector__bbox_keeps_the_features_that_meet_it(squares: gpd.GeoDataFrame, tmp_path: Path, name: str,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    path = str(tmp_path / name)
    if name.endswith(".parquet"):
        squares.to_parquet(path, write_covering_bbox="covering" in name)
    else:
        squares.to_file(path)
    assert "32642" in str(vector_crs(path))
    with caplog.at_level(logging.INFO, logger="cluster.vector"):
        got = read_vector(path, bbox=(250, 10, 420, 20))
    assert sorted(got.field_id) == ["002", "003", "004"]
    # a GeoParquet file without a covering column is read whole: that fallback is logged
    assert ("reading the whole file" in caplog.text) == (name == "p.parquet")
    assert len(read_vector(path)) == 10
