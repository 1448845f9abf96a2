"""Reading vector files: one rule for every input that holds geometries (regions, labels, an
extent, outlines for maps).

GeoParquet goes through pyarrow (``geopandas.read_parquet``): GDAL's Parquet driver is not in
every wheel. Everything else (GeoJSON, GeoPackage, Shapefile, FlatGeobuf, ...) goes through
pyogrio. Callers turn a failure into their own message, naming the config key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["read_vector", "is_parquet"]


def is_parquet(path: str) -> bool:
    return str(path).lower().endswith((".parquet", ".geoparquet"))


def read_vector(path: str, layer: str | None = None) -> "gpd.GeoDataFrame":
    """The file's features; ``layer`` for multi-layer files (GeoPackage)."""
    import geopandas as gpd

    if is_parquet(path):
        return gpd.read_parquet(path)
    return gpd.read_file(path, **({"layer": layer} if layer is not None else {}))
