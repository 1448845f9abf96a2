"""Vector reads by bounding box: the parcels a tile needs, from every format we read."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from cluster.vector import VectorSource, read_vector, vector_crs


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


@pytest.mark.parametrize("name", ["p.gpkg", "p-covering.parquet", "p.parquet"])
def test_vector_source__reads_windows_of_a_file_on_object_storage(
        squares: gpd.GeoDataFrame, tmp_path: Path, name: str, s3_bucket: str, s3_options: dict,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Parcels on S3 (the loopback server), read tile by tile: a GeoPackage, or a GeoParquet
    file without a bbox covering column, is fetched once per node and version into the cache;
    a GeoParquet file with one is read in place."""
    import s3fs

    local = tmp_path / name
    if name.endswith(".parquet"):
        squares.to_parquet(local, write_covering_bbox="covering" in name)
    else:
        squares.to_file(local)
    fs = s3fs.S3FileSystem(**s3_options)
    fs.put_file(str(local), f"{s3_bucket}/in/{name}")
    monkeypatch.setenv("HARVEST_CACHE_DIR", str(tmp_path / "cache"))
    url = f"s3://{s3_bucket}/in/{name}"

    assert not VectorSource(f"s3://{s3_bucket}/in/other.gpkg", storage_options=s3_options).exists()
    source = VectorSource(url, storage_options=s3_options)
    assert source.exists()
    assert "32642" in str(source.crs())
    assert sorted(source.read((250, 10, 420, 20)).field_id) == ["002", "003", "004"]
    suffix = f"*{Path(name).suffix}"
    copies = sorted((tmp_path / "cache").rglob(suffix))
    if "covering" in name:
        assert copies == []
        return
    assert len(copies) == 1 and not list((tmp_path / "cache").rglob("*.part"))
    # a second source (another actor of the node) reads the same copy: nothing is fetched
    stamp = copies[0].stat().st_mtime_ns
    again = VectorSource(url, storage_options=s3_options)
    assert sorted(again.read((0, 0, 150, 90)).field_id) == ["000", "001"]
    assert sorted((tmp_path / "cache").rglob(suffix)) == copies and copies[0].stat().st_mtime_ns == stamp
    # a changed object is another version: fetched again, beside the old copy
    if name.endswith(".parquet"):
        squares.iloc[:3].to_parquet(local)
    else:
        squares.iloc[:3].to_file(local)
    fs.put_file(str(local), f"{s3_bucket}/in/{name}")
    assert len(VectorSource(url, storage_options=s3_options).read()) == 3
    assert len(list((tmp_path / "cache").rglob(suffix))) == 2
    # the first source keeps reading its own version, even once the object is gone
    fs.rm_file(f"{s3_bucket}/in/{name}")
    assert len(source.read()) == 10


@pytest.mark.parametrize("where", ["local.gpkg", "s3:p.gpkg", "s3:p-covering.parquet"])
def test_vector_source__a_source_pinned_to_a_version_refuses_a_changed_file(
        squares: gpd.GeoDataFrame, tmp_path: Path, where: str, s3_bucket: str, s3_options: dict,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A job plans with the parcels' version; an actor that later finds another file (replaced
    locally or on S3, fetched or read in place) stops the tile instead of mixing versions."""
    import s3fs

    from cluster.errors import DataError

    monkeypatch.setenv("HARVEST_CACHE_DIR", str(tmp_path / "cache"))
    name = where.removeprefix("s3:")
    local = tmp_path / name

    def write(frame: gpd.GeoDataFrame) -> None:
        if name.endswith(".parquet"):
            frame.to_parquet(local, write_covering_bbox=True)
        else:
            frame.to_file(local)
        if where.startswith("s3:"):
            s3fs.S3FileSystem(**s3_options).put_file(str(local), f"{s3_bucket}/in/{name}")

    write(squares)
    url = f"s3://{s3_bucket}/in/{name}" if where.startswith("s3:") else str(local)
    options = s3_options if where.startswith("s3:") else None
    planned = VectorSource(url, storage_options=options).version()
    assert VectorSource(url, storage_options=options).version() == planned  # stable while unchanged
    if not where.startswith("s3:"):  # the same bytes with a new modification time: the same version
        os.utime(local, ns=(local.stat().st_atime_ns, local.stat().st_mtime_ns + 10**9))
        assert VectorSource(url).version() == planned
    assert len(VectorSource(url, storage_options=options, version=planned).read((0, 0, 150, 90))) == 2
    write(squares.iloc[:3])
    assert VectorSource(url, storage_options=options).version() != planned
    with pytest.raises(DataError, match=r"changed after this job was planned.*rerun the job"):
        VectorSource(url, storage_options=options, version=planned).read((0, 0, 150, 90))
