"""Reading vector files: one rule for every input that holds geometries (regions, labels, an
extent, outlines for maps).

GeoParquet goes through pyarrow (``geopandas.read_parquet``): GDAL's Parquet driver is not in
every wheel. Everything else (GeoJSON, GeoPackage, Shapefile, FlatGeobuf, ...) goes through
pyogrio. Callers turn a failure into their own message, naming the config key.

A file read once goes through :func:`read_vector`; one read window by window many times (the
parcels of every tile a classify actor maps) through a :class:`VectorSource`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import posixpath
import socket
import tempfile
from typing import TYPE_CHECKING, Any, Mapping

from cluster.errors import DataError
from cluster.location import is_remote, local_path

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["read_vector", "is_parquet", "vector_crs", "VectorSource", "vector_cache_dir"]

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
        return _read_parquet(path, bbox)
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
        return _read_parquet(fs_path, bbox, fs)
    data = retry_storage(lambda: fs.cat_file(fs_path), f"cannot read {path!r}")
    kwargs: dict[str, object] = {}
    if layer is not None:
        kwargs["layer"] = layer
    if bbox is not None:
        kwargs["bbox"] = bbox
    return gpd.read_file(io.BytesIO(data), **kwargs)


def _read_parquet(path: str, bbox: tuple[float, float, float, float] | None,
                  filesystem: Any = None) -> "gpd.GeoDataFrame":
    """A GeoParquet file, by ``bbox`` through its covering column; without one, read whole and
    filtered (logged)."""
    import geopandas as gpd

    try:
        frame: gpd.GeoDataFrame = gpd.read_parquet(path, filesystem=filesystem, bbox=bbox)
        return frame
    except ValueError as e:  # no bbox covering column
        if bbox is None:
            raise
        log.info("%s: %s; reading the whole file and filtering by %s", path, e, bbox)
        whole = gpd.read_parquet(path, filesystem=filesystem)
        return whole.cx[bbox[0]:bbox[2], bbox[1]:bbox[3]]


def _geo_metadata(path: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``geo`` metadata of a GeoParquet file's schema (no rows read)."""
    import json

    import fsspec
    import pyarrow.parquet as pq

    if storage_options is not None and is_remote(path):
        fs, fs_path = fsspec.core.url_to_fs(path, **dict(storage_options))
        schema = pq.read_schema(fs_path, filesystem=fs)
    else:
        schema = pq.read_schema(path)
    geo: dict[str, Any] = json.loads((schema.metadata or {}).get(b"geo", b"{}"))
    return geo


def vector_crs(path: str, layer: str | None = None,
               storage_options: Mapping[str, Any] | None = None) -> str | None:
    """The CRS of a vector file (WKT or authority string; None if it declares none), read
    from its metadata only. ``storage_options`` reach a remote GeoParquet file (other remote
    formats: ask a :class:`VectorSource`, which fetches them)."""
    if is_parquet(path):
        import json

        geo = _geo_metadata(path, storage_options)
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

    A local file, or a remote GeoParquet file with a bbox covering column, is read per window
    as :func:`read_vector` reads it (the file's spatial index, or the row groups' bbox
    statistics over fsspec). Any other remote file (GeoPackage, FlatGeobuf, a zipped
    Shapefile, GeoParquet without that column) has no index fsspec can use, so it is fetched
    whole, once per node and file version, into a private
    cache folder (:func:`vector_cache_dir`) under a key made of its URL, size and ETag; its
    windows then come from the copy's index. Every actor of a node, in this job and later
    ones, reads the same copy; a changed object has another ETag and is fetched again. The
    node's disk must hold it (a national LPIS GeoPackage is a few GB; as GeoParquet with a
    bbox covering column nothing is copied). Copies are kept, as any download cache: remove
    the folder to free the space.

    Example:
        >>> import geopandas as gpd, shapely, tempfile
        >>> path = tempfile.mkdtemp() + "/p.gpkg"
        >>> gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1), shapely.box(5, 5, 6, 6)],
        ...                  crs="EPSG:32642").to_file(path)
        >>> source = VectorSource(path)
        >>> "32642" in source.crs(), len(source.read((4, 4, 9, 9)))
        (True, 1)
    """

    def __init__(self, path: str, layer: str | None = None,
                 storage_options: Mapping[str, Any] | None = None, version: str | None = None) -> None:
        self.path = path
        self.layer = layer
        self.pinned = version
        """A :meth:`version` every read must find (a job's plan pins the file it was made with)."""
        self._options = dict(storage_options or {})
        self._fetch_flag: bool | None = None if is_remote(path) and is_parquet(path) else is_remote(path)
        self._copy: str | None = None
        self._hashed: tuple[tuple[int, int], str] | None = None

    @property
    def _fetch(self) -> bool:
        """Whether windows come from a local copy (a remote file fsspec cannot read by window)."""
        if self._fetch_flag is None:
            from cluster._retry import retry_storage

            geo = retry_storage(lambda: _geo_metadata(self.path, self._options), f"cannot read {self.path!r}")
            column = geo.get("columns", {}).get(geo.get("primary_column"), {})
            self._fetch_flag = "covering" not in column
        return self._fetch_flag

    def exists(self) -> bool:
        """Whether the file is there (a remote one asked with the storage options)."""
        if not is_remote(self.path):
            return os.path.exists(local_path(self.path))
        from cluster._retry import retry_storage

        fs, fs_path = self._remote()
        found: bool = retry_storage(lambda: fs.exists(fs_path), f"cannot look for {self.path!r}")
        return found

    def version(self) -> str:
        """The file's version now: its size and the XXH3 hash of its bytes, or on object
        storage its size and ETag. A changed file has another version; copies of one file on
        several nodes (a Ray working dir, unpacked with new modification times) have the same.
        A local file is hashed again only when its size or modification time changes."""
        if not is_remote(self.path):
            st = os.stat(local_path(self.path))
            seen = (st.st_size, st.st_mtime_ns)
            if self._hashed is None or self._hashed[0] != seen:
                self._hashed = (seen, _file_hash(local_path(self.path)))
            return f"{st.st_size}:xxh3:{self._hashed[1]}"
        from cluster._retry import retry_storage

        fs, fs_path = self._remote()
        fs.invalidate_cache(fs_path)  # the object now, not a listing cached earlier
        info = retry_storage(lambda: fs.info(fs_path), f"cannot read {self.path!r}")
        stamp = next((str(info[k]) for k in ("ETag", "etag", "LastModified", "mtime") if info.get(k)), "")
        return f"{info.get('size')}:{stamp}"

    def _remote(self) -> tuple[Any, str]:
        """The fsspec filesystem of the remote file, with the storage options, and its path there."""
        import fsspec

        fs, fs_path = fsspec.core.url_to_fs(self.path, **self._options)
        return fs, fs_path

    def _check_pinned(self, version: str) -> None:
        if self.pinned is not None and version != self.pinned:
            raise DataError(f"the vector file {self.path!r} changed after this job was planned (version "
                            f"{self.pinned}, now {version}): rerun the job; its plan changes with the file, "
                            "so every tile is done again with the new file rather than with two versions")

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
        if self.pinned is not None:
            self._check_pinned(self.version())
        return read_vector(local_path(self.path), self.layer, bbox=bbox,
                           storage_options=self._options if is_remote(self.path) else None)

    def _local_copy(self) -> str:
        """The cached copy of this version of the file, fetched if the node has none."""
        if self._copy is None:
            from cluster._retry import retry_storage

            version = self.version()
            self._check_pinned(version)  # a copy once made is that version: later reads need no check
            fs, fs_path = self._remote()
            key = hashlib.sha256(f"{self.path}\0{version}".encode()).hexdigest()[:24]
            copy = os.path.join(vector_cache_dir(), key, posixpath.basename(fs_path))
            if not os.path.exists(copy):
                os.makedirs(os.path.dirname(copy), exist_ok=True)
                part = f"{copy}.{socket.gethostname()}.{os.getpid()}.part"  # others may fetch at once
                try:
                    retry_storage(lambda: fs.get_file(fs_path, part), f"cannot fetch {self.path!r}")
                    os.replace(part, copy)
                finally:
                    if os.path.exists(part):
                        os.remove(part)
                log.info("fetched %s to %s, read window by window from there", self.path, copy)
            self._copy = copy
        return self._copy


def _file_hash(path: str) -> str:
    """XXH3-64 of a file's bytes, read in 8 MiB blocks (a few GB in about a second)."""
    import xxhash

    h = xxhash.xxh3_64()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    return h.hexdigest()


def vector_cache_dir() -> str:
    """Where remote vector files are cached: ``$HARVEST_CACHE_DIR/vectors``, else a per-user
    folder in the system temp dir (node-local, shared by the user's processes: Ray workers).
    Made private (0700); a folder of another user is refused."""
    root = os.environ.get("HARVEST_CACHE_DIR")
    folder = os.path.join(root, "vectors") if root else os.path.join(tempfile.gettempdir(),
                                                                     f"harvest-cluster-vectors-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    if os.stat(folder).st_uid != os.getuid():
        raise OSError(f"the vector cache {folder!r} belongs to another user; set HARVEST_CACHE_DIR to a folder "
                      "of your own")
    return folder
