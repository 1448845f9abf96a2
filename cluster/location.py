"""Where things are: URLs read once, at the edge, into values the rest of the code trusts.

Two kinds of place, two tools:

* :class:`StoreLocation` is *where the cube is*: its URL, normalised once (``file://``
  stripped, a local path made absolute, no trailing slash), the storage options that reach
  it, and every place derived from it (the Zarr group, an array, the bookkeeping folder
  ``<store>.harvest`` with its manifests, lease, reports and STAC record). A job builds it
  once from its config (:meth:`cluster.config.TileJobConfig.location`) and passes it down;
  tile workers get :meth:`StoreLocation.for_workers`, which carries no credentials.
* :func:`url_protocol` / :func:`is_remote` answer "local or not" for the job's *inputs*
  (scenes, labels, regions, sample tables), which stay plain strings.

Nothing else in the code looks for ``"://"`` in a URL. This module imports nothing of
``cluster`` and no Zarr or xarray, so the configs can build a location without them.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Mapping, Union

if TYPE_CHECKING:
    import fsspec

__all__ = [
    "StoreLocation",
    "StoreLike",
    "norm_store",
    "url_protocol",
    "is_remote",
    "has_protocol",
    "local_path",
    "SECRET_OPTIONS",
]

SECRET_OPTIONS = frozenset({"key", "secret", "token", "password", "session_token"})
"""fsspec/s3fs storage options that hold credentials: never in what travels to workers."""

_SECRET_CLIENT_OPTIONS = frozenset({"aws_access_key_id", "aws_secret_access_key", "aws_session_token"})
"""The same, spelled as botocore client arguments (``client_kwargs``)."""


def has_protocol(url: str) -> bool:
    """Whether ``url`` names a protocol (``s3://``, ``file://``, ...) rather than being a bare path.

    >>> has_protocol("s3://b/k"), has_protocol("file:///tmp/x"), has_protocol("scenes/a.tif")
    (True, True, False)
    """
    return "://" in url


def url_protocol(url: str) -> str:
    """The fsspec protocol of a URL, lower case; ``"file"`` for a local path or ``file://``.

    >>> url_protocol("s3://bucket/cube.zarr"), url_protocol("/data/x.tif"), url_protocol("FILE:///x")
    ('s3', 'file', 'file')
    """
    return url.split("://", 1)[0].lower() if has_protocol(url) else "file"


def is_remote(url: str) -> bool:
    """Whether ``url`` is read through fsspec's remote layers (not a local path or ``file://``).

    >>> is_remote("s3://bucket/a.tif"), is_remote("file:///tmp/a.tif"), is_remote("a.tif")
    (True, False, False)
    """
    return url_protocol(url) != "file"


def local_path(url: str) -> str:
    """A local URL as a path: ``file://`` stripped (relative paths stay relative).

    >>> local_path("file:///data/cube.zarr"), local_path("cube.zarr")
    ('/data/cube.zarr', 'cube.zarr')
    """
    return url.split("://", 1)[1] if has_protocol(url) and url_protocol(url) == "file" else url


def _norm_url(url: str | os.PathLike[str]) -> str:
    """The one spelling of a store URL (see :class:`StoreLocation`)."""
    text = os.fspath(url)
    if not text:
        raise ValueError("a store URL is empty; give a local path, file://... or s3://bucket/prefix")
    if not is_remote(text):
        # absolute: fsspec's local listings are absolute, paths are compared with them, and a
        # worker whose working directory differs from the driver's finds the same folder
        return os.path.abspath(local_path(text))
    proto, rest = text.split("://", 1)
    return f"{proto}://{rest.rstrip('/')}"


def _without_secrets(options: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in options.items() if k not in SECRET_OPTIONS}
    client = out.get("client_kwargs")
    if isinstance(client, Mapping):
        out["client_kwargs"] = {k: v for k, v in client.items() if k not in _SECRET_CLIENT_OPTIONS}
    return out


@dataclass(frozen=True)
class StoreLocation:
    """A place on storage (the cube, or a file of its bookkeeping) and how to reach it.

    The URL is normalised when the value is made: a local path or ``file://`` URL becomes an
    absolute path without ``file://``; an object-store URL keeps its protocol and loses any
    trailing slash. So ``url`` is also what users are shown (:attr:`shown`).

    Locations compare by URL; the storage options are left out of ``repr`` and of
    comparisons. They may hold credentials on the driver: give workers
    :meth:`for_workers`.

    Example:
        >>> cube = StoreLocation("s3://bucket/cubes/kz-2025.zarr/")
        >>> cube.url, cube.protocol, cube.is_local
        ('s3://bucket/cubes/kz-2025.zarr', 's3', False)
        >>> cube.lease.url
        's3://bucket/cubes/kz-2025.zarr.harvest/lease.json'
        >>> cube.manifest("ingest", "3f2a").url
        's3://bucket/cubes/kz-2025.zarr.harvest/manifest/ingest/3f2a'
    """

    url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """fsspec options (s3fs: endpoint, region, retries; on the driver also the keys)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", _norm_url(self.url))
        object.__setattr__(self, "storage_options", dict(self.storage_options or {}))

    def __str__(self) -> str:
        return self.url

    # --- what it is ----------------------------------------------------------------------

    @property
    def protocol(self) -> str:
        """``"file"`` for a local store, else the URL's protocol (``"s3"``, ``"memory"``, ...)."""
        return url_protocol(self.url)

    @property
    def is_local(self) -> bool:
        """On the local disk: read and written without fsspec's remote layers."""
        return self.protocol == "file"

    @property
    def shown(self) -> str:
        """The URL as a user reads it (in reports, logs, messages): a local path is absolute."""
        return self.url

    @property
    def name(self) -> str:
        """The last part of the URL (``kz-2025.zarr``)."""
        return posixpath.basename(self.url)

    def for_workers(self) -> StoreLocation:
        """The same place without credentials: what goes into plans that travel to tile
        actors. Workers take credentials from their environment or the AWS chain
        (instance roles, IRSA), never from a pickled plan."""
        return replace(self, storage_options=_without_secrets(self.storage_options))

    # --- places derived from it ----------------------------------------------------------

    def join(self, *parts: str) -> StoreLocation:
        """A place below this one, reached the same way (``cube.join("ndvi")``)."""
        return replace(self, url="/".join([self.url, *(p.strip("/") for p in parts)]))

    def suffixed(self, suffix: str) -> StoreLocation:
        """A place beside this one: the URL with ``suffix`` appended (``statistics_crop_areas``)."""
        return replace(self, url=self.url + suffix)

    def array(self, name: str) -> StoreLocation:
        """One array of the Zarr group."""
        return self.join(name)

    @property
    def meta(self) -> StoreLocation:
        """The bookkeeping folder beside the group, ``<store>.harvest`` (Zarr never sees it)."""
        return self.suffixed(".harvest")

    def manifest(self, job: str, plan_hash: str | None = None) -> StoreLocation:
        """A job's manifest folder (``manifest/<job>``), or one plan's (``.../<plan hash>``)."""
        parts = ("manifest", job) if plan_hash is None else ("manifest", job, plan_hash)
        return self.meta.join(*parts)

    @property
    def lease(self) -> StoreLocation:
        """The store's write lease (:mod:`cluster.lease`)."""
        return self.meta.join("lease.json")

    def report(self, job: str) -> StoreLocation:
        """A job's report, ``<job>-report.json``."""
        return self.meta.join(f"{job}-report.json")

    @property
    def stac(self) -> StoreLocation:
        """The cube's STAC Collection (:mod:`cluster.stac`)."""
        return self.meta.join("collection.json")

    @property
    def statistics(self) -> StoreLocation:
        """Where ``aggregate`` writes its tables by default (``.parquet`` / ``.csv`` added)."""
        return self.meta.join("statistics")

    # --- reaching it ---------------------------------------------------------------------

    def filesystem(self) -> tuple[fsspec.AbstractFileSystem, str]:
        """The fsspec filesystem and the path on it."""
        import fsspec

        if self.is_local:
            return fsspec.filesystem("file"), self.url
        fs_path: tuple[fsspec.AbstractFileSystem, str] = fsspec.core.url_to_fs(self.url, **self.storage_options)
        return fs_path


StoreLike = Union[str, "os.PathLike[str]", StoreLocation]
"""What a user may give as a store: a URL or path, or a :class:`StoreLocation`."""


def norm_store(store: StoreLike, storage_options: Mapping[str, Any] | None = None) -> StoreLocation:
    """A :class:`StoreLocation` from what a caller gave: the edge where a URL is read.

    Args:
        store: a URL, a path, or a location (returned as it is).
        storage_options: fsspec options for a URL; a location carries its own.

    Raises:
        ValueError: both a location and storage options were given.

    >>> norm_store("file:///data/cube.zarr/").url
    '/data/cube.zarr'
    """
    if isinstance(store, StoreLocation):
        if storage_options:
            raise ValueError(f"storage options given with the location {store.url!r}, which carries "
                             "its own; pass the location alone, or its URL with the options")
        return store
    return StoreLocation(os.fspath(store), storage_options or {})
