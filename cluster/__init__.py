"""harvest-cluster: the library that plans and runs raster work on a Ray cluster.

Importable from notebooks::

    import cluster
    ds = cluster.open_cube("s3://bucket/cubes/kz-2025.zarr")   # xarray.Dataset, ds.rio.crs set
    cluster.kernels.compute(["ndvi", "evi"], {"red": red, "nir": nir, "blue": blue}, info)

Only ``cluster.actors`` and ``cluster.runtime`` import Ray; everything else runs anywhere.
"""

from __future__ import annotations

from cluster import kernels
from cluster.demo import DemoSeason, DemoSpec, make_demo_season
from cluster.errors import ClusterError, ConfigError
from cluster.grid import BBox, CubeExtent, GridSpec, TileIndex
from cluster.indices import IndicesConfig
from cluster.ingest import IngestConfig
from cluster.store import open_cube

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "BBox",
    "ClusterError",
    "ConfigError",
    "CubeExtent",
    "DemoSeason",
    "DemoSpec",
    "GridSpec",
    "IndicesConfig",
    "IngestConfig",
    "TileIndex",
    "kernels",
    "make_demo_season",
    "open_cube",
]
