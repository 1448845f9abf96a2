"""Reading vector files: one rule for every input that holds geometries (regions, labels, an
extent, outlines for maps).

GeoParquet goes through pyarrow (``geopandas.read_parquet``): GDAL's Parquet driver is not in
every wheel. Everything else (GeoJSON, GeoPackage, Shapefile, FlatGeobuf, ...) goes through
pyogrio. Callers turn a failure into their own message, naming the config key.

A file read once goes through :func:`read_vector`; one read window by window many times (the
parcels of every tile a classify actor maps) through a :class:`VectorSource`.
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import shutil
import tempfile
import weakref
from typing import TYPE_CHECKING, Any, Mapping

from cluster.location import is_remote, local_path

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["read_vector", "is_parquet", "vector_crs", "VectorSource"]

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


def vector_crs(path: str, layer: str | None = None,
               storage_options: Mapping[str, Any] | None = None) -> str | None:
    """The CRS of a vector file (WKT or authority string; None if it declares none), read
    from its metadata only. ``storage_options`` reach a remote GeoParquet file (other remote
    formats: ask a :class:`VectorSource`, which fetches them)."""
    if is_parquet(path):
        import json

        import fsspec
        import pyarrow.parquet as pq

        if storage_options is not None and is_remote(path):
            fs, fs_path = fsspec.core.url_to_fs(path, **dict(storage_options))
            schema = pq.read_schema(fs_path, filesystem=fs)
        else:
            schema = pq.read_schema(path)
        geo = json.loads((schema.metadata or {}).get(b"geo", b"{}"))
        col = geo.get("primary_column")
        if not col:
            return None
        crs = geo.get("columns", {}).get(col, {}).get("crs", "OGC:CRS84")  # GeoParquet's default
        return None if crs is None else (crs if isinstance(crs, str) else json.dumps(crs))
    import pyogrio

    found: str | None = pyogrio.read_info(path, layer=layer).get("crs")
    return found


class VectorSource:
    """One vector file read window by window, many times: the parcels of every tile an actor
    maps.

    A local file, or a remote GeoParquet file, is read per window as :func:`read_vector`
    reads it (the file's spatial index, or the row groups' bbox statistics over fsspec). Any
    other remote file (GeoPackage, FlatGeobuf, a zipped Shapefile) has no spatial index
    fsspec can use, so it is fetched once, on first use, into a temporary folder that this
    source makes and removes again (:meth:`close`, or when the source is collected); its
    windows then come from the copy's index. So a parcel layer on object storage travels once
    per tile actor, not once per tile; the actor's local disk must hold it (a national LPIS
    GeoPackage is a few GB; as GeoParquet with a bbox covering column nothing is copied).

    Example:
        >>> import geopandas as gpd, shapely, tempfile
        >>> path = tempfile.mkdtemp() + "/p.gpkg"
        >>> gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1), shapely.box(5, 5, 6, 6)],
        ...                  crs="EPSG:32642").to_file(path)
        >>> with VectorSource(path) as source:
        ...     "32642" in source.crs(), len(source.read((4, 4, 9, 9)))
        (True, 1)
    """

    def __init__(self, path: str, layer: str | None = None,
                 storage_options: Mapping[str, Any] | None = None) -> None:
        self.path = path
        self.layer = layer
        self._options = dict(storage_options or {})
        self._fetch = is_remote(path) and not is_parquet(path)
        self._copy: str | None = None
        self._cleanup: weakref.finalize[Any, Any] | None = None

    def __enter__(self) -> VectorSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exists(self) -> bool:
        """Whether the file is there (a remote one asked with the storage options)."""
        if not is_remote(self.path):
            return os.path.exists(local_path(self.path))
        import fsspec

        from cluster._retry import retry_storage

        fs, fs_path = fsspec.core.url_to_fs(self.path, **self._options)
        found: bool = retry_storage(lambda: fs.exists(fs_path), f"cannot look for {self.path!r}")
        return found

    def crs(self) -> str | None:
        """The file's CRS (None if it declares none); a remote file other than GeoParquet is
        fetched for it."""
        if self._fetch:
            return vector_crs(self._local_copy(), self.layer)
        return vector_crs(local_path(self.path), self.layer, self._options if is_remote(self.path) else None)

    def read(self, bbox: tuple[float, float, float, float] | None = None) -> "gpd.GeoDataFrame":
        """The features whose bounds meet ``bbox`` (in the file's CRS); all without it."""
        if self._fetch:
            return read_vector(self._local_copy(), self.layer, bbox=bbox)
        return read_vector(local_path(self.path), self.layer, bbox=bbox,
                           storage_options=self._options if is_remote(self.path) else None)

    def close(self) -> None:
        """Remove the local copy, if this source made one (nothing else is touched)."""
        if self._cleanup is not None:
            self._cleanup()
        self._copy = self._cleanup = None

    def _local_copy(self) -> str:
        if self._copy is None:
            import fsspec

            from cluster._retry import retry_storage

            folder = tempfile.mkdtemp(prefix="harvest-vector-")
            cleanup = weakref.finalize(self, shutil.rmtree, folder, True)
            copy = os.path.join(folder, posixpath.basename(self.path))
            fs, fs_path = fsspec.core.url_to_fs(self.path, **self._options)
            try:
                retry_storage(lambda: fs.get_file(fs_path, copy), f"cannot fetch {self.path!r}")
            except BaseException:
                cleanup()
                raise
            self._copy, self._cleanup = copy, cleanup
            log.info("fetched %s to %s, read window by window from there", self.path, copy)
        return self._copy
