"""harvest-cluster: the library that plans and runs raster work on a Ray cluster.

Importable from notebooks::

    import cluster
    ds = cluster.open_cube("s3://bucket/cubes/kz-2025.zarr")   # xarray.Dataset, ds.rio.crs set
    cluster.kernels.compute(["ndvi", "evi"], {"red": red, "nir": nir, "blue": blue}, info)

Only ``cluster.actors`` and ``cluster.runtime`` import Ray; everything else runs anywhere.
"""

from __future__ import annotations

import importlib
from typing import Any

from cluster.errors import ClusterError, ConfigError, DataError, ResourceError

# Everything else loads on first use (PEP 562): every Ray worker imports this package, and
# geopandas / scikit-learn / matplotlib would add about a second to each actor's start; and
# ``cluster.kernels`` needs only NumPy and numba (a GPU box need not have zarr or PROJ).
_LAZY = {
    "BBox": ("cluster.grid", "BBox"),
    "CubeExtent": ("cluster.grid", "CubeExtent"),
    "GridSpec": ("cluster.grid", "GridSpec"),
    "TileIndex": ("cluster.grid", "TileIndex"),
    "open_cube": ("cluster.store", "open_cube"),
    "kernels": ("cluster.kernels", None),
    "AggregateConfig": ("cluster.aggregate", "AggregateConfig"),
    "accumulate_tile": ("cluster.zonal", "accumulate_tile"),
    "merge_partials": ("cluster.zonal", "merge_partials"),
    "finalize": ("cluster.zonal", "finalize"),
    "DemoSeason": ("cluster.demo", "DemoSeason"),
    "DemoSpec": ("cluster.demo", "DemoSpec"),
    "make_demo_season": ("cluster.demo", "make_demo_season"),
    "ForecastConfig": ("cluster.forecast", "ForecastConfig"),
    "ForecastResult": ("cluster.forecast", "ForecastResult"),
    "run_forecast": ("cluster.forecast", "run_forecast"),
    "IndicesConfig": ("cluster.indices", "IndicesConfig"),
    "IngestConfig": ("cluster.ingest", "IngestConfig"),
    "RegionsConfig": ("cluster.regions", "RegionsConfig"),
    "load_regions": ("cluster.regions", "load_regions"),
    "TrainConfig": ("cluster.classify.run", "TrainConfig"),
    "PredictConfig": ("cluster.classify.predict", "PredictConfig"),
    "CropModel": ("cluster.classify.model", "CropModel"),
    "run_train": ("cluster.classify.run", "run_train"),
    "run_predict": ("cluster.classify.run", "run_predict"),
    "run_tile_job": ("cluster.engine", "run_tile_job"),
    "run_ingest": ("cluster.pipeline", "run_ingest"),
    "run_indices": ("cluster.pipeline", "run_indices"),
    "run_aggregate": ("cluster.pipeline", "run_aggregate"),
    "JobReport": ("cluster.report", "JobReport"),
    "plots": ("cluster.plots", None),
    "verify_store": ("cluster.verify", "verify_store"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'cluster' has no attribute {name!r}") from None
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "AggregateConfig",
    "BBox",
    "ClusterError",
    "ConfigError",
    "CropModel",
    "CubeExtent",
    "DataError",
    "DemoSeason",
    "DemoSpec",
    "ForecastConfig",
    "ForecastResult",
    "GridSpec",
    "IndicesConfig",
    "IngestConfig",
    "JobReport",
    "PredictConfig",
    "RegionsConfig",
    "ResourceError",
    "TileIndex",
    "TrainConfig",
    "accumulate_tile",
    "finalize",
    "kernels",
    "load_regions",
    "make_demo_season",
    "merge_partials",
    "open_cube",
    "plots",
    "run_aggregate",
    "run_forecast",
    "run_indices",
    "run_ingest",
    "run_predict",
    "run_tile_job",
    "run_train",
    "verify_store",
]
