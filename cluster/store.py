"""The cube on object storage: create the template, write one tile, open it in xarray.

Layout of a cube at ``URL`` (a Zarr v3 group, readable by ``xarray.open_zarr``):

* one array per band and per derived product, dims ``(time, y, x)``, integer DN with CF
  ``scale_factor`` / ``add_offset`` / ``_FillValue`` (or float32 with NaN);
* coordinates ``time``, ``y``, ``x`` (pixel centres) and a scalar ``spatial_ref`` with
  ``crs_wkt`` and ``GeoTransform``, so rioxarray finds the CRS;
* chunks ``(1, chunk, chunk)`` inside shards ``(n_time, tile, tile)``: one shard is one
  grid tile across all dates, written whole by exactly one worker.

Bookkeeping lives beside the group, at ``URL.harvest/``: ``manifest/<job>/<tile>.json``
marks a tile done *after* its data is written, and ``<job>-report.json`` is the report.
Zarr never sees these files, so the group stays a clean Zarr hierarchy.

Every function takes the store as a :class:`~cluster.location.StoreLocation` (what jobs pass:
the URL read once, with its storage options) or, for notebook users, as a URL or path with
``storage_options``; the URL is read at that edge (:func:`~cluster.location.norm_store`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import posixpath
import uuid
import zlib
from dataclasses import dataclass
from typing import Any, Literal, Mapping, NamedTuple, Sequence

import fsspec
import numpy as np
import xarray as xr
import xxhash
import zarr
import zarr.storage
from zarr.codecs import BloscCodec, ZstdCodec

from cluster._retry import retry_storage
from cluster._shard import ShardDecodeError, ShardLayout, decode_shard, encode_shard, get_shard, layout_of, put_shard
from cluster.errors import AlignmentError, StoreError, TileWriteError
from cluster.grid import CubeExtent, TileIndex
from cluster.location import StoreLike, StoreLocation, is_remote, norm_store

__all__ = [
    "ArraySpec",
    "Manifest",
    "open_store",
    "open_group",
    "open_cube",
    "create_cube",
    "add_arrays",
    "add_layers",
    "check_aligned",
    "write_tile",
    "CHECKSUM",
    "CHECKSUMS",
    "TileWrite",
    "checksum_record",
    "tile_checksum",
    "read_tile",
    "read_tile_decoded",
    "extent_of",
    "meta_url",
    "write_json",
    "read_json",
    "OWNER_TAG",
    "filesystem",
    "is_local",
    "shown",
    "StoreState",
    "inspect_store",
    "remove_store",
    "StoreLocation",
    "StoreLike",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArraySpec:
    """One ``(time, y, x)`` array of the cube."""

    name: str
    dtype: str
    fill_value: float | int
    scale_factor: float | None = None
    add_offset: float | None = None
    attrs: Mapping[str, Any] | None = None


def is_local(url: StoreLike) -> bool:
    """A local path or ``file://`` URL (read and written without fsspec's remote layers)."""
    return url.is_local if isinstance(url, StoreLocation) else not is_remote(os.fspath(url))


def shown(url: StoreLike) -> str:
    """The URL as a user should read it: a local path made absolute, '..' resolved
    (:attr:`StoreLocation.shown`).

    >>> shown("s3://b/c.zarr")
    's3://b/c.zarr'
    >>> shown("/data/x/../cube.zarr")
    '/data/cube.zarr'
    """
    return norm_store(url).shown


def open_store(store: StoreLike, storage_options: Mapping[str, Any] | None = None,
               read_only: bool = False) -> zarr.storage.StoreLike:
    """A Zarr store for a location: local path / ``file://`` or any fsspec URL (``s3://``...)."""
    return _zarr_store(norm_store(store, storage_options), read_only)


def _zarr_store(loc: StoreLocation, read_only: bool = False) -> zarr.storage.StoreLike:
    if loc.is_local:
        return zarr.storage.LocalStore(loc.url, read_only=read_only)
    try:
        return zarr.storage.FsspecStore.from_url(
            loc.url, storage_options=dict(loc.storage_options), read_only=read_only
        )
    except Exception as e:  # noqa: BLE001 — fsspec raises many types; name the URL
        raise StoreError(f"cannot open store {loc.url!r}: {type(e).__name__}: {e}") from None


def open_group(store: StoreLike, storage_options: Mapping[str, Any] | None = None,
               mode: Literal["r", "r+", "a", "w", "w-"] = "r+") -> zarr.Group:
    return _open_group(norm_store(store, storage_options), mode)


def _open_group(loc: StoreLocation, mode: Literal["r", "r+", "a", "w", "w-"] = "r+") -> zarr.Group:
    try:
        # our own reads never trust consolidated metadata: a job killed between adding an
        # array and consolidating would leave a stale copy (see :func:`consolidate`)
        return zarr.open_group(_zarr_store(loc, read_only=mode == "r"),
                               mode=mode, zarr_format=3, use_consolidated=False)
    except FileNotFoundError:
        raise StoreError(f"no Zarr group at {loc.url!r}; run 'harvest ingest' first") from None


def consolidate(store: StoreLike, storage_options: Mapping[str, Any] | None = None) -> None:
    """Copy every array's metadata into the group's ``zarr.json`` (consolidated metadata):
    a reader opens the cube in one request instead of one per array, and ``xr.open_zarr``
    finds it without its fallback warning. Every job that writes the cube calls this last.
    The harvest jobs themselves never read the copy (:func:`open_group`)."""
    import warnings

    loc = norm_store(store, storage_options)
    with warnings.catch_warnings():  # zarr notes that v3 has no consolidated metadata in the spec yet
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        retry_storage(lambda: zarr.consolidate_metadata(_zarr_store(loc), zarr_format=3),
                      what=f"consolidating metadata of {loc.url}")


def open_cube(url: StoreLike, storage_options: Mapping[str, Any] | None = None,
              chunks: Any = "auto") -> xr.Dataset:
    """Open a cube as an ``xarray.Dataset`` whose ``.rio.crs`` is the grid CRS; with dask
    chunks (the default) scaled integer bands are decoded to float32.

    ``decode_coords="all"`` turns ``spatial_ref`` back into a coordinate; without it,
    plain ``xr.open_zarr`` returns it as a data variable and ``.rio.crs`` is None.

    Example:
        >>> ds = open_cube("s3://bucket/cubes/kz-2025.zarr")  # doctest: +SKIP
        >>> ds.rio.crs  # doctest: +SKIP
        CRS.from_epsg(6933)
    """
    import rioxarray  # noqa: F401 — registers the .rio accessor

    loc = norm_store(url, storage_options)
    store = _zarr_store(loc, read_only=True)
    try:
        ds: xr.Dataset = xr.open_zarr(store, consolidated=False, decode_coords="all", zarr_format=3, chunks=chunks)
    except FileNotFoundError:
        raise StoreError(f"no cube at {loc.url!r}; run 'harvest ingest' first") from None
    # bands stored as scaled integers (reflectance = DN * 1e-4 - 0.1) decode to float32, not
    # xarray's float64: they hold 4-5 significant digits, and half the memory matters. Lazily,
    # so with dask chunks only (chunks=None keeps xarray's lazy indexing, and its float64).
    for name, var in ds.data_vars.items() if chunks is not None else ():
        enc = var.encoding
        if np.dtype(enc.get("dtype", var.dtype)).kind in "iu" and ("scale_factor" in enc or "add_offset" in enc):
            ds[name] = var.astype(np.float32)
            ds[name].encoding = enc
    return ds


def _compressors(compression: str, level: int) -> list[Any]:
    if compression == "none":
        return []
    if compression == "zstd":
        return [ZstdCodec(level=level)]
    if compression == "lz4":
        # byte shuffle groups the high and low bytes of uint16 DN: ~2x better ratio
        return [BloscCodec(cname="lz4", clevel=level, shuffle="shuffle")]
    raise StoreError(f"unknown compression {compression!r}; use 'lz4', 'zstd' or 'none'")


def _array_encoding(spec: ArraySpec, n_time: int, tile: int, chunk: int,
                    compressors: list[Any]) -> dict[str, Any]:
    enc: dict[str, Any] = {
        "dtype": spec.dtype,
        "_FillValue": spec.fill_value,
        # zarr's own fill_value too: chunks never written (tiles no scene covers, or not yet
        # written) must read as nodata, not as zarr's default 0
        "fill_value": spec.fill_value,
        "chunks": (1, chunk, chunk),
        "compressors": compressors,
    }
    if (n_time, tile, tile) != (1, chunk, chunk):
        enc["shards"] = (n_time, tile, tile)
    if spec.scale_factor is not None:
        enc["scale_factor"] = spec.scale_factor
    if spec.add_offset is not None:
        enc["add_offset"] = spec.add_offset
    return enc


def _template(extent: CubeExtent, times: Sequence[np.datetime64], specs: Sequence[ArraySpec],
              chunk: int, compressors: list[Any], step_days: int = 1) -> tuple[xr.Dataset, dict[str, Any]]:
    import dask.array as da
    import rioxarray  # noqa: F401

    ny, nx = extent.shape
    tile = extent.grid.tile_size_px
    n_time = len(times)
    coords = {
        "time": np.asarray(times, dtype="datetime64[ns]"),
        "y": extent.y_coords(),
        "x": extent.x_coords(),
    }
    data_vars = {}
    encoding: dict[str, Any] = {}
    for spec in specs:
        decoded = "float32"
        lazy = da.zeros((n_time, ny, nx), dtype=decoded, chunks=(n_time, tile, tile))
        attrs = dict(spec.attrs or {})
        data_vars[spec.name] = xr.DataArray(lazy, dims=("time", "y", "x"), attrs=attrs)
        encoding[spec.name] = _array_encoding(spec, n_time, tile, chunk, compressors)
    ds = xr.Dataset(data_vars, coords=coords)
    # CF cell bounds: each time step stands for [label, label + step) (a composite's bin, or
    # the acquisition's day); readers see what period a value covers
    start = coords["time"]
    ds["time_bnds"] = (("time", "bnds"), np.stack([start, start + np.timedelta64(step_days, "D")], axis=1))
    ds["time"].attrs.update(bounds="time_bnds", standard_name="time", axis="T")
    ds = ds.rio.write_crs(extent.grid.pyproj_crs.to_wkt()).rio.write_transform(extent.transform)
    ds["x"].attrs.update(units="m" if extent.grid.pyproj_crs.is_projected else "degrees_east",
                         standard_name="projection_x_coordinate", axis="X")
    ds["y"].attrs.update(units="m" if extent.grid.pyproj_crs.is_projected else "degrees_north",
                         standard_name="projection_y_coordinate", axis="Y")
    for name in data_vars:
        # an attribute, not encoding: the explicit to_zarr encoding would drop it
        ds[name].attrs["grid_mapping"] = "spatial_ref"
    return ds, encoding


def create_cube(url: StoreLike, extent: CubeExtent, times: Sequence[np.datetime64],
                specs: Sequence[ArraySpec], attrs: Mapping[str, Any], *,
                compression: str = "lz4", compression_level: int = 5,
                step_days: int = 1, storage_options: Mapping[str, Any] | None = None) -> None:
    """Write the cube's metadata and coordinates (no pixel data): the template. Time step
    ``t`` covers ``[t, t + step_days)`` (CF ``time_bnds``).

    Every array reads as its fill value until a tile is written, so the store can be opened
    at any moment, even while (or after) a job dies half-way. Chunks are the grid's
    (:attr:`GridSpec.chunk`), shards its tiles.
    """
    ds, encoding = _template(extent, times, specs, extent.grid.chunk,
                             _compressors(compression, compression_level), step_days)
    ds.attrs.update(_jsonable(attrs))
    store = _zarr_store(norm_store(url, storage_options))
    # "w-": fail rather than clear whatever is there; the caller checked the URL is free
    ds.to_zarr(store, mode="w-", compute=False, zarr_format=3, consolidated=False,
               encoding=encoding)


def add_arrays(url: StoreLike, specs: Sequence[ArraySpec], *, like: str,
               storage_options: Mapping[str, Any] | None = None,
               compression: str = "lz4", compression_level: int = 5,
               overwrite: bool = False) -> list[str]:
    """Add ``(time, y, x)`` arrays shaped and chunked like existing array ``like``.

    Used by jobs that derive products (indices, crop maps) into an existing cube; each
    spec's ``attrs["harvest_job"]`` names the job. Returns the names that were created
    (existing ones are kept unless ``overwrite``).

    Raises:
        StoreError: an array of that name exists but another job (or tool) wrote it, e.g.
            an ingested band called ``ndvi``: it is never written into or replaced.
    """
    loc = norm_store(url, storage_options)
    group = _open_group(loc)
    ref = group[like]
    assert isinstance(ref, zarr.Array)
    made = []
    for spec in specs:
        if spec.name in group:
            _check_owner(group, loc.url, spec.name, (spec.attrs or {}).get("harvest_job"))
            if not overwrite:
                continue
        attrs: dict[str, Any] = dict(spec.attrs or {})
        # xarray's own encoding of the attribute (base64 for floats), so open_zarr decodes it
        from xarray.backends.zarr import FillValueCoder

        attrs["_FillValue"] = FillValueCoder.encode(spec.fill_value, np.dtype(spec.dtype))
        if spec.scale_factor is not None:
            attrs["scale_factor"] = spec.scale_factor
        if spec.add_offset is not None:
            attrs["add_offset"] = spec.add_offset
        attrs["grid_mapping"] = "spatial_ref"
        group.create_array(
            spec.name, shape=ref.shape, dtype=spec.dtype, chunks=ref.chunks, shards=ref.shards,
            fill_value=spec.fill_value, compressors=_compressors(compression, compression_level),
            dimension_names=("time", "y", "x"), attributes=_jsonable(attrs), overwrite=True,
        )
        made.append(spec.name)
    return made


def _check_owner(group: zarr.Group, url: str, name: str, job: str | None) -> None:
    """Raise StoreError unless the existing array ``name`` was written by ``job``."""
    existing = dict(group[name].attrs)
    # index arrays of 0.1.0 carry their kernel but no job name
    owner = existing.get("harvest_job") or ("indices" if "harvest_kernel" in existing else None)
    if owner != job:
        owner = owner or "ingest (a band) or another tool"
        raise StoreError(
            f"the cube {url!r} already has an array {name!r} written by {owner}; the {job} "
            f"job never writes into or replaces it. Pick another output name"
        )


def add_layers(url: StoreLike, name: str, season: Sequence[int], n_layers: int, *, like: str, layer_dim: str,
               attrs: Mapping[str, Any], storage_options: Mapping[str, Any] | None = None,
               compression: str = "lz4", compression_level: int = 5, overwrite: bool = False) -> bool:
    """Add a float32 ``(season, layer, y, x)`` array: per-pixel values that belong to a
    season, not to a date (a season's feature vectors), with a ``season`` coordinate; the
    layer dimension is called ``layer_dim`` and has no coordinate (name the layers in
    ``attrs``).

    Spatially chunked like ``like``; one shard holds a tile's every season and layer, so a
    tile is one whole-shard write. ``attrs["harvest_job"]`` names the owner, as in
    :func:`add_arrays`. Returns False when the array exists and is kept.
    """
    loc = norm_store(url, storage_options)
    group = _open_group(loc)
    ref = group[like]
    assert isinstance(ref, zarr.Array)
    if name in group:
        _check_owner(group, loc.url, name, attrs.get("harvest_job"))
        if not overwrite:
            return False
    from xarray.backends.zarr import FillValueCoder

    ny, nx = ref.shape[-2:]
    chunk = ref.chunks[-2:]
    tile = (ref.shards or ref.chunks)[-2:]
    n_seasons = len(season)
    all_attrs = {**attrs, "_FillValue": FillValueCoder.encode(np.nan, np.dtype("float32")),
                 "grid_mapping": "spatial_ref"}
    group.create_array(
        name, shape=(n_seasons, n_layers, ny, nx), dtype="float32", chunks=(1, 1, *chunk),
        shards=(n_seasons, n_layers, *tile), fill_value=np.nan,
        compressors=_compressors(compression, compression_level),
        dimension_names=("season", layer_dim, "y", "x"), attributes=_jsonable(all_attrs),
        overwrite=True,
    )
    coord = group.create_array("season", shape=(n_seasons,), dtype="int64", dimension_names=("season",),
                               attributes={"long_name": "harvest year"}, overwrite=True)
    coord[:] = np.asarray(season, dtype="int64")
    return True


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def check_aligned(array: zarr.Array[Any], region: tuple[slice, ...]) -> None:
    """Refuse a region write that does not cover whole shards (or chunks, unsharded).

    xarray checks alignment only for dask arrays; workers hold NumPy, so a misaligned
    write would silently read-modify-write a shard another worker owns.
    """
    unit = array.shards or array.chunks
    for axis, (sl, u, n) in enumerate(zip(region, unit, array.shape, strict=False)):
        start = sl.start or 0
        stop = n if sl.stop is None else sl.stop
        if start % u or (stop % u and stop != n):
            raise AlignmentError(
                f"region {region!r} of array {array.path!r} is not aligned to its "
                f"{'shards' if array.shards else 'chunks'} {unit!r} on axis {axis} "
                f"(shape {array.shape!r}); write whole shards only"
            )


class TileWrite(NamedTuple):
    """What writing one tile of one array did."""

    nbytes: int
    """Raw (uncompressed) bytes."""
    checksum: str
    """:data:`CHECKSUM` of the raw bytes as stored (C order, the array's dtype): ``harvest
    verify`` reads the tile back and compares."""


CHECKSUM = "xxh3_64"
"""The tile checksum the jobs record (the key of a manifest record's checksums): XXH3, 64
bits, 20-30 GB/s per core. zlib's CRC-32, recorded before 2026-12, ran at 2-5 GB/s and
took 30 % of a tile's floor time in the indices job (``benchmarks/RESULTS.md``)."""

CHECKSUMS = (CHECKSUM, "crc32")
"""Every algorithm a manifest record may name; ``harvest verify`` checks each."""


def tile_checksum(block: np.ndarray, algorithm: str = CHECKSUM) -> str | int:
    """A checksum of an array's raw bytes in C order, as a manifest records it: XXH3-64 as 16
    hex digits, or (older records) zlib's CRC-32 as an integer.

    >>> tile_checksum(np.zeros((1, 2, 2), np.uint16))
    'c77b3abb6f87acd9'
    >>> tile_checksum(np.zeros((1, 2, 2), np.uint16), "crc32")
    1696784233
    """
    # an ndarray is a buffer; numpy declares __buffer__ for Python >= 3.12 only
    data: Any = np.ascontiguousarray(block)
    if algorithm == "xxh3_64":
        return f"{xxhash.xxh3_64_intdigest(data):016x}"
    if algorithm == "crc32":
        return zlib.crc32(data)
    raise ValueError(f"unknown tile checksum {algorithm!r}; expected one of {list(CHECKSUMS)}")


def checksum_record(written: Mapping[str, TileWrite]) -> dict[str, dict[str, str]]:
    """A tile's manifest record of the arrays it wrote: ``{CHECKSUM: {array: checksum}}``."""
    return {CHECKSUM: {name: w.checksum for name, w in written.items()}}


_FALLBACKS: set[str] = set()


def _fell_back(why: str) -> None:
    """Log once per reason that a tile goes through zarr's chunk-by-chunk path."""
    if why not in _FALLBACKS:
        _FALLBACKS.add(why)
        log.warning("whole-shard path not used for %s: falling back to zarr's chunk-by-chunk path", why)


def _whole_shard(array: zarr.Array[Any], region: tuple[slice, ...]) -> tuple[ShardLayout, tuple[int, ...]] | None:
    """The layout and shard coordinates when ``region`` is exactly one shard (or chunk, unsharded)
    that :mod:`cluster._shard` encodes byte for byte as zarr does; None (logged once per
    reason) where zarr's own path must do it."""
    layout = layout_of(array)
    if isinstance(layout, str):
        _fell_back(f"array {array.path!r}: {layout}")
        return None
    coords = []
    for sl, n, s in zip(region, array.shape, layout.shard_shape, strict=True):
        start = sl.start or 0
        stop = n if sl.stop is None else sl.stop
        if start % s or stop - start != s:
            _fell_back(f"array {array.path!r}: a region {region!r} that is not one whole shard {layout.shard_shape}")
            return None
        coords.append(start // s)
    return layout, tuple(coords)


def write_tile(group: zarr.Group, name: str, extent: CubeExtent, tile: TileIndex,
               block: np.ndarray, url: StoreLike = "?") -> TileWrite:
    """Write one tile (every date, or every leading index) of one array: one whole shard,
    so a retry is idempotent.

    The shard is encoded whole (:mod:`cluster._shard`: the array's own codecs, byte for byte
    what zarr writes) and stored in one put; an array outside what that covers goes through
    zarr's ``Array.__setitem__`` (logged once per reason).

    Transient storage errors are retried here; what remains is raised as
    :class:`TileWriteError` with the storage error as its cause (the pool then retries
    the whole tile when that cause is transient).
    """
    from cluster._retry import retry_transient

    url = str(url)  # for messages only
    ys, xs = extent.tile_slices(tile)
    array = group[name]
    assert isinstance(array, zarr.Array)
    lead = tuple(array.shape[:-2])
    region = (*(slice(0, n) for n in lead), ys, xs)
    check_aligned(array, region)
    want = (*lead, ys.stop - ys.start, xs.stop - xs.start)
    if block.shape != want:
        raise TileWriteError(
            f"tile={tile.id} array={name!r} path={url!r}: block shape {block.shape} does not "
            f"match the region {want}"
        )
    data = np.ascontiguousarray(block.astype(array.dtype, copy=False))
    fast = _whole_shard(array, region)
    if fast is not None:
        layout, coords = fast
        blob = encode_shard(layout, data)

        def put() -> None:
            put_shard(array, coords, blob)
    else:
        def put() -> None:
            array[region] = data
    try:
        retry_transient(put, attempts=4)
    except Exception as e:  # noqa: BLE001 — re-raised with the tile and the path
        raise TileWriteError(f"writing tile={tile.id} array={name!r} path={url!r} failed: "
                             f"{type(e).__name__}: {e}") from e
    return TileWrite(int(data.nbytes), str(tile_checksum(data)))


def extent_of(group: zarr.Group) -> CubeExtent:
    """The cube's grid and tile extent, from the attributes ingest wrote."""
    from cluster.grid import GridSpec

    meta = group.attrs.get("harvest")
    if not isinstance(meta, dict) or "grid" not in meta:
        raise StoreError("the store has no harvest grid attributes; was it made by 'harvest ingest'?")
    g = dict(meta["grid"])
    grid = GridSpec(**g["grid"])
    return CubeExtent(grid, g["row0"], g["col0"], g["nrows"], g["ncols"])


def read_tile(group: zarr.Group, name: str, extent: CubeExtent, tile: TileIndex,
              out: np.ndarray | None = None) -> np.ndarray:
    """Read one tile (every date, or every leading index) of one array, raw (undecoded DN):
    one get of its shard, decoded whole as zarr would (:mod:`cluster._shard`), or zarr's own
    read where that does not apply. ``out``: a C-contiguous buffer of the tile's shape and the
    array's dtype to decode into (e.g. pinned memory for a copy to the GPU)."""
    ys, xs = extent.tile_slices(tile)
    array = group[name]
    assert isinstance(array, zarr.Array)
    region = (*(slice(0, n) for n in array.shape[:-2]), ys, xs)
    fast = _whole_shard(array, region)
    if fast is not None:
        layout, coords = fast
        try:
            return decode_shard(layout, get_shard(array, coords), out)
        except ShardDecodeError as e:  # zarr's own read says what is wrong, in its words
            _fell_back(f"reading a shard of {array.path!r}: {e}")
    if out is None:
        return np.asarray(array[..., ys, xs])
    out[...] = array[..., ys, xs]
    return out


def read_tile_decoded(group: zarr.Group, name: str, extent: CubeExtent, tile: TileIndex) -> np.ndarray:
    """A tile of an array as float32 physical values, NaN where missing (CF decoding)."""
    arr = group[name]
    assert isinstance(arr, zarr.Array)
    raw = read_tile(group, name, extent, tile)
    fill = arr.fill_value
    out = raw.astype(np.float32)
    attrs: Mapping[str, Any] = arr.attrs  # CF attributes, read as the numbers they should be
    scale, offset = attrs.get("scale_factor"), attrs.get("add_offset")
    if scale is not None or offset is not None:
        out = (raw.astype(np.float64) * float(scale or 1.0) + float(offset or 0.0)).astype(np.float32)
    if fill is not None and not (isinstance(fill, float) and math.isnan(fill)):
        out[raw == fill] = np.nan
    return out


# --- bookkeeping beside the group -----------------------------------------------------


def meta_url(url: StoreLike) -> str:
    """Where a cube's manifests and reports live: ``<url>.harvest`` (:attr:`StoreLocation.meta`)."""
    return norm_store(url).meta.url


def filesystem(url: StoreLike, storage_options: Mapping[str, Any] | None = None
               ) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and path for a location (local paths made absolute)."""
    return norm_store(url, storage_options).filesystem()


def write_json(url: StoreLike, obj: Any, storage_options: Mapping[str, Any] | None = None) -> None:
    """Write JSON atomically (local: a uniquely named temp file + rename; S3: one PUT),
    retrying transient errors."""
    loc = norm_store(url, storage_options)
    fs, path = loc.filesystem()
    data = json.dumps(obj, indent=2, default=str).encode()
    if loc.is_local:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    else:
        retry_storage(lambda: fs.pipe_file(path, data), f"cannot write {loc.url!r}")


def read_json(url: StoreLike, storage_options: Mapping[str, Any] | None = None) -> Any:
    """Read a JSON document, retrying transient errors; FileNotFoundError when absent."""
    loc = norm_store(url, storage_options)
    fs, path = loc.filesystem()
    return json.loads(retry_storage(lambda: fs.cat_file(path), f"cannot read {loc.url!r}"))


class Manifest:
    """Which tiles of a job are done, under ``manifest/<job>/<plan hash>/<tile>.json``.

    A tile's record is written only after all of its arrays are written, so a record
    means "complete"; a killed worker leaves no record and its tile is redone. The plan's
    hash is part of the path, so listing one folder answers "which tiles are done" (one
    LIST on S3, not one GET per tile), and records of another plan are never mistaken for
    this one's.
    """

    def __init__(self, store: StoreLike, job: str, plan_hash: str,
                 storage_options: Mapping[str, Any] | None = None) -> None:
        cube = norm_store(store, storage_options)
        self.plan_hash = plan_hash
        self.job_location = cube.manifest(job)
        self.location = cube.manifest(job, plan_hash)
        self.job_root = self.job_location.url
        self.root = self.location.url

    def done(self) -> set[str]:
        """Ids of the tiles recorded as complete (one listing; transient errors retried)."""
        fs, path = self.location.filesystem()
        fs.invalidate_cache(path)  # s3fs caches listings; other workers wrote since
        try:
            names = retry_storage(lambda: fs.ls(path, detail=False),
                              f"cannot list the manifest {self.root!r}")
        except FileNotFoundError:
            return set()
        # records are written atomically (temp file + rename, or one PUT): no torn reads;
        # a leftover temp file ends in ``.tmp``, not ``.json``
        return {posixpath.basename(n)[:-5] for n in names if n.endswith(".json")}

    def record(self, tile_id: str) -> dict[str, Any]:
        """The record of one done tile (what was written, with checksums)."""
        return dict(read_json(self.location.join(f"{tile_id}.json")))

    def mark(self, tile_id: str, record: Mapping[str, Any]) -> None:
        write_json(self.location.join(f"{tile_id}.json"), {**record, "plan_hash": self.plan_hash})

    def forget(self, tile_id: str) -> None:
        """Remove one tile's record, so that a rerun redoes the tile."""
        fs, path = self.location.join(f"{tile_id}.json").filesystem()
        retry_storage(lambda: fs.rm_file(path), f"cannot remove the record of tile {tile_id}")

    def clear(self) -> None:
        """Forget every plan's records of this job (they are all ours: tile records only)."""
        fs, path = self.job_location.filesystem()
        if retry_storage(lambda: fs.exists(path), f"cannot inspect {self.job_root!r}"):
            retry_storage(lambda: fs.rm(path, recursive=True), f"cannot clear {self.job_root!r}")


OWNER_TAG = "harvest-cluster"
"""``attrs["harvest"]["written_by"]`` of every group this project creates: how a store is
recognised as ours before anything in it is replaced or removed."""


@dataclass(frozen=True)
class StoreState:
    """What is at a store URL, as far as removing or reusing it is concerned."""

    kind: Literal["absent", "cube", "foreign"]
    """``absent``: nothing there (or an empty folder); ``cube``: a group this project wrote;
    ``foreign``: anything else (a user's files, another tool's Zarr group)."""
    harvest: Mapping[str, Any] | None = None
    """The cube's ``harvest`` attributes when ``kind == "cube"``."""
    detail: str = ""
    """For ``foreign``: what was found, for the error message."""


def inspect_store(url: StoreLike, storage_options: Mapping[str, Any] | None = None) -> StoreState:
    """Look at what is at ``url`` without changing anything.

    Transient errors are retried; any error that remains is raised as :class:`StoreError`
    (it is never taken to mean "no store here"): a failed read of an existing cube's
    ``zarr.json`` must not lead to the cube being replaced.
    """
    return _inspect(norm_store(url, storage_options))


def _inspect(loc: StoreLocation) -> StoreState:
    url = loc.url
    fs, path = loc.filesystem()
    what = f"cannot inspect store {url!r}"
    try:
        retry_storage(lambda: fs.invalidate_cache(path), what)
        if not retry_storage(lambda: fs.exists(path), what):
            return StoreState("absent")
        if not retry_storage(lambda: fs.isdir(path), what):
            return StoreState("foreign", detail="a file, not a folder")
        names = retry_storage(lambda: fs.ls(path, detail=False), what)
    except FileNotFoundError:
        return StoreState("absent")
    if not names:
        return StoreState("absent")
    try:
        raw = retry_storage(lambda: fs.cat_file(f"{path}/zarr.json"), what)
    except FileNotFoundError:
        shown = ", ".join(repr(posixpath.basename(n.rstrip("/"))) for n in sorted(names)[:3])
        return StoreState("foreign", detail=f"{len(names)} entries that are not a Zarr group ({shown}"
                                            f"{', ...' if len(names) > 3 else ''})")
    try:
        meta = json.loads(raw)
    except ValueError as e:
        raise StoreError(f"store {url!r} has a zarr.json that is not valid JSON ({e}); it may be "
                         "damaged: run 'harvest verify' on it, or move it away") from None
    harvest = (meta.get("attributes") or {}).get("harvest") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or meta.get("node_type") != "group" or not _ours(harvest):
        return StoreState("foreign", detail="a Zarr node not written by harvest-cluster")
    return StoreState("cube", harvest=harvest)


def _ours(harvest: Any) -> bool:
    """A cube's own metadata says harvest-cluster wrote it (cubes of 0.1.0 carry no
    ``written_by`` yet, but their ingest plan hash)."""
    if not isinstance(harvest, dict):
        return False
    return harvest.get("written_by") == OWNER_TAG or (harvest.get("job") == "ingest" and "plan_hash" in harvest)


def _owned_files(fs: fsspec.AbstractFileSystem, path: str) -> tuple[list[str], list[str]]:
    """Split the files below ``path`` into those a harvest cube consists of and the rest.

    A cube is ``zarr.json`` files (group and array metadata) and chunk or shard objects
    below ``<array>/c/`` of arrays declared by such a ``zarr.json``. Anything else was put
    there by someone else.
    """
    files = sorted(fs.find(path, withdirs=False))
    arrays = set()
    for f in files:
        if posixpath.basename(f) == "zarr.json":
            node = json.loads(fs.cat_file(f))
            if node.get("node_type") == "array":
                arrays.add(posixpath.dirname(f))
    prefixes = tuple(f"{a}/c/" for a in arrays)
    ours: list[str] = []
    other: list[str] = []
    for f in files:
        (ours if posixpath.basename(f) == "zarr.json" or f.startswith(prefixes) else other).append(f)
    return ours, other


def remove_store(url: StoreLike, storage_options: Mapping[str, Any] | None = None) -> int:
    """Delete a cube this project wrote, file by file (``overwrite: true``).

    Refuses, and removes nothing, unless the group's own metadata says harvest-cluster
    wrote it and every file below it is part of the cube. Bookkeeping beside the group
    (manifests keyed by plan hash, reports) is kept: it is small and names what was there.

    Returns:
        The number of files removed.

    Raises:
        StoreError: the URL holds something else, or listing/removing failed.
    """
    loc = norm_store(url, storage_options)
    url = loc.url
    state = _inspect(loc)
    if state.kind == "absent":
        return 0
    if state.kind == "foreign":
        raise StoreError(
            f"refusing to remove {url!r}: it holds {state.detail}, not a cube written by "
            "harvest-cluster. Nothing was removed; pick another store URL or move those files away"
        )
    fs, path = loc.filesystem()
    ours, other = retry_storage(lambda: _owned_files(fs, path), f"cannot list store {url!r}")
    if other:
        shown = ", ".join(repr(posixpath.relpath(f, path)) for f in other[:3])
        raise StoreError(
            f"refusing to remove cube {url!r}: it also holds {len(other)} file(s) harvest-cluster did "
            f"not write ({shown}{', ...' if len(other) > 3 else ''}). Nothing was removed; move them "
            "out of the cube folder and rerun"
        )
    # metadata last: until the group's zarr.json is gone, the folder still reads as our cube,
    # so a removal cut short can be finished by a rerun with overwrite
    ours.sort(key=lambda f: (posixpath.basename(f) == "zarr.json", -f.count("/")))
    for f in ours:
        retry_storage(functools.partial(fs.rm_file, f), f"cannot remove {f!r} of store {url!r}")
    if loc.is_local:
        for d in sorted((p for p in fs.find(path, withdirs=True) if fs.isdir(p)), key=len, reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(d)
        with contextlib.suppress(OSError):
            os.rmdir(path)
    return len(ours)


def store_bytes(url: StoreLike, storage_options: Mapping[str, Any] | None = None) -> int:
    """Bytes the cube (or one of its arrays) occupies on its storage (after compression); -1
    when storage cannot tell (it is down): a statistic for the report, never a reason to fail
    a finished job."""
    fs, path = norm_store(url, storage_options).filesystem()
    try:
        return int(fs.du(path))
    except FileNotFoundError:
        return 0
    except Exception as e:  # noqa: BLE001 — see the docstring
        log.warning("cannot measure the size of %s (%s: %s); the report says -1", shown(url), type(e).__name__, e)
        return -1
