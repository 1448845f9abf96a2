"""Reading vector files: one rule for every input that holds geometries (regions, labels, an
extent, outlines for maps).

GeoParquet goes through pyarrow (``geopandas.read_parquet``): GDAL's Parquet driver is not in
every wheel. Everything else (GeoJSON, GeoPackage, Shapefile, FlatGeobuf, ...) goes through
pyogrio. Callers turn a failure into their own message, naming the config key.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, Any, Mapping

from cluster.location import is_remote

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["read_vector", "is_parquet", "vector_crs"]

log = logging.getLogger(__name__)


def is_parquet(path: str) -> bool:
    return str(path).lower().endswith((".parquet", ".geoparquet"))


def read_vector(path: str, layer: str | None = None,
                bbox: tuple[float, float, float, float] | None = None,
                storage_options: Mapping[str, Any] | None = None) -> "gpd.GeoDataFrame":
    """The file's features; ``layer`` for multi-layer files (GeoPackage).

    ``bbox`` (in the file's CRS, :func:`vector_crs`) keeps the features whose bounds meet it,
    through the file's spatial index where it has one (GeoPackage, FlatGeobuf, Shapefile with
    ``.qix``, GeoParquet with a bbox covering column). A GeoParquet file without that column
    is read whole and filtered (logged: give it a covering column to read less).

    ``storage_options`` (a job's ``storage`` settings: endpoint, region, ...) reach a remote
    file through fsspec; without them GDAL reads it with its own defaults. A remote file
    other than GeoParquet is fetched whole (region and label files are small; a Shapefile
    must then be zipped, its parts travel together).
    """
    import geopandas as gpd

    if storage_options is not None and is_remote(path):
        return _read_remote(path, layer, bbox, storage_options)
    if is_parquet(path):
        if bbox is None:
            return gpd.read_parquet(path)
        try:
            return gpd.read_parquet(path, bbox=bbox)
        except ValueError as e:  # no bbox covering column
            log.info("%s: %s; reading the whole file and filtering by %s", path, e, bbox)
            whole = gpd.read_parquet(path)
            return whole.cx[bbox[0]:bbox[2], bbox[1]:bbox[3]]
    kwargs: dict[str, object] = {}
    if layer is not None:
        kwargs["layer"] = layer
    if bbox is not None:
        kwargs["bbox"] = bbox
    return gpd.read_file(path, **kwargs)


def _read_remote(path: str, layer: str | None, bbox: tuple[float, float, float, float] | None,
                 storage_options: Mapping[str, Any]) -> "gpd.GeoDataFrame":
    import fsspec
    import geopandas as gpd

    from cluster._retry import retry_storage

    fs, fs_path = fsspec.core.url_to_fs(path, **dict(storage_options))
    if is_parquet(path):
        frame: gpd.GeoDataFrame = gpd.read_parquet(fs_path, filesystem=fs, bbox=bbox)
        return frame
    data = retry_storage(lambda: fs.cat_file(fs_path), f"cannot read {path!r}")
    kwargs: dict[str, object] = {}
    if layer is not None:
        kwargs["layer"] = layer
    if bbox is not None:
        kwargs["bbox"] = bbox
    return gpd.read_file(io.BytesIO(data), **kwargs)


def vector_crs(path: str, layer: str | None = None) -> str | None:
    """The CRS of a vector file (WKT or authority string; None if it declares none), read
    from its metadata only."""
    if is_parquet(path):
        import json

        import pyarrow.parquet as pq

        geo = json.loads((pq.read_schema(path).metadata or {}).get(b"geo", b"{}"))
        col = geo.get("primary_column")
        if not col:
            return None
        crs = geo.get("columns", {}).get(col, {}).get("crs", "OGC:CRS84")  # GeoParquet's default
        return None if crs is None else (crs if isinstance(crs, str) else json.dumps(crs))
    import pyogrio

    found: str | None = pyogrio.read_info(path, layer=layer).get("crs")
    return found
