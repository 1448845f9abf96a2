"""harvest-cluster: the library that plans and runs raster work on a Ray cluster.

Importable from notebooks. Only ``cluster.actors`` and ``cluster.runtime`` import Ray.
"""

from __future__ import annotations

from cluster.errors import ClusterError, ConfigError
from cluster.grid import BBox, CubeExtent, GridSpec, TileIndex

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "BBox",
    "ClusterError",
    "ConfigError",
    "CubeExtent",
    "GridSpec",
    "TileIndex",
]
