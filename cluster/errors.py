"""The exception hierarchy: every error the library raises derives from ClusterError.

Messages follow one shape: what failed, the offending value (``!r``), what was
expected, and how to fix it. Constructors take one preformatted message so that
errors raised on Ray workers pickle back to the driver unchanged.
"""

from __future__ import annotations

__all__ = [
    "ClusterError",
    "ConfigError",
    "GridError",
    "KernelError",
    "UnknownKernelError",
    "MissingBandError",
    "SceneError",
    "SceneReadError",
    "StoreError",
    "StorageUnavailableError",
    "StoreMismatchError",
    "AlignmentError",
    "TileWriteError",
    "LeaseError",
    "DataError",
    "ResourceError",
]


class ClusterError(Exception):
    """Root of every error raised by harvest-cluster."""


class ConfigError(ClusterError, ValueError):
    """A job config (YAML or Python) is invalid; the message names the key and the fix."""


class GridError(ClusterError, ValueError):
    """A grid specification or a tile index is invalid."""


class KernelError(ClusterError, ValueError):
    """A spectral-index kernel is misused or misregistered."""


class UnknownKernelError(KernelError, KeyError):
    """No kernel is registered under the requested name."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class MissingBandError(KernelError, KeyError):
    """A kernel needs bands that the cube or the input mapping does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class SceneError(ClusterError):
    """A scene cannot be used: unreadable, no date, no band, outside the grid, ..."""


class SceneReadError(SceneError):
    """A scene's pixels could not be read (the file is damaged); the tile is failed."""


class StoreError(ClusterError):
    """A Zarr store cannot be opened, created or written."""


class StorageUnavailableError(StoreError):
    """Object storage did not answer (5xx, throttling, resets, timeouts) after retries.

    Transient by definition: the tile is retried later, and never marked done.
    """


class StoreMismatchError(StoreError):
    """An existing store was made by a different config; refusing to mix the two."""


class AlignmentError(StoreError):
    """A region write does not cover whole chunks/shards; it would race other writers."""


class TileWriteError(StoreError):
    """Writing one tile failed; the message carries the tile id and the store path."""


class LeaseError(StoreError):
    """Another job holds the store's write lease (or took it over from this one)."""


class DataError(ClusterError, ValueError):
    """A table (yields, regions, statistics) has rows that cannot be used."""


class ResourceError(ClusterError):
    """A job asks for cluster resources (GPUs, CPUs) that the cluster does not have."""
