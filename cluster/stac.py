"""The cube's STAC record: a Collection with the datacube extension, beside the cube.

STAC-aware tools (catalog browsers, ``pystac``, ``odc-stac``, ``xpystac``) find the cube
through ``<store>.harvest/collection.json``: its footprint in WGS 84, its time span (from the
CF ``time_bnds``), every dimension with its CRS and step, every array, and a ``zarr`` asset
whose ``xarray:open_kwargs`` open it as :func:`cluster.open_cube` does. Every job that writes
the cube rewrites it last, from the cube's own metadata.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from cluster.location import StoreLike, norm_store

__all__ = ["cube_collection", "write_collection", "collection_url"]


def collection_url(url: StoreLike) -> str:
    """Where the cube's record is (:attr:`~cluster.location.StoreLocation.stac`)."""
    return norm_store(url).stac.url


def cube_collection(store: StoreLike, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The STAC Collection of the cube at ``url`` as a dict (metadata and coordinates only)."""
    import pystac
    from pyproj import CRS
    from pystac.extensions.datacube import DatacubeExtension, Dimension, Variable
    from rasterio.warp import transform_bounds

    from cluster.store import open_cube

    cube = norm_store(store, storage_options)
    url = cube.url
    ds = open_cube(cube, chunks=None)
    crs = CRS.from_user_input(ds.rio.crs)
    x, y = ds["x"].values, ds["y"].values
    step_x = float(x[1] - x[0]) if len(x) > 1 else float(ds.rio.resolution()[0])
    step_y = float(y[1] - y[0]) if len(y) > 1 else float(ds.rio.resolution()[1])
    left, right = float(x.min()) - abs(step_x) / 2, float(x.max()) + abs(step_x) / 2
    bottom, top = float(y.min()) - abs(step_y) / 2, float(y.max()) + abs(step_y) / 2
    bbox = list(transform_bounds(crs, "EPSG:4326", left, bottom, right, top, densify_pts=21))
    bounds = ds["time_bnds"].values if "time_bnds" in ds else np.stack([ds["time"].values] * 2, axis=1)
    start, end = (pd.Timestamp(v).to_pydatetime().replace(tzinfo=pd.Timestamp.now("UTC").tzinfo)
                  for v in (bounds.min(), bounds.max()))
    name = cube.name.removesuffix(".zarr") or "cube"
    collection = pystac.Collection(
        id=name,
        description=f"harvest-cluster analysis-ready cube {url}: {', '.join(sorted(map(str, ds.data_vars)))}",
        extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[start, end]])),
        license="other",  # the imagery's licences apply; the cube adds none
    )
    epsg = crs.to_epsg()
    spatial = {"reference_system": epsg if epsg is not None else crs.to_wkt()}
    times = ds["time"].values
    dims = {
        "x": Dimension({"type": "spatial", "axis": "x", "extent": [left, right], "step": step_x, **spatial}),
        "y": Dimension({"type": "spatial", "axis": "y", "extent": [bottom, top], "step": step_y, **spatial}),
        "time": Dimension({"type": "temporal", "extent": [start.isoformat(), end.isoformat()],
                           "values": [pd.Timestamp(t).isoformat() for t in times]}),
    }
    variables: dict[str, Variable] = {}
    for name_, var in ds.data_vars.items():
        if var.dims[-2:] != ("y", "x"):
            continue
        entry = {"type": "data", "dimensions": list(var.dims),
                 "description": str(var.attrs.get("long_name") or var.attrs.get("description") or name_)}
        if "units" in var.attrs:
            entry["unit"] = str(var.attrs["units"])
        variables[str(name_)] = Variable(entry)
    DatacubeExtension.ext(collection, add_if_missing=True).apply(dimensions=dims, variables=variables)
    collection.add_asset("zarr", pystac.Asset(
        href=url, media_type="application/vnd+zarr", roles=["data"], title="the cube (Zarr v3)",
        extra_fields={"xarray:open_kwargs": {"engine": "zarr", "consolidated": True, "decode_coords": "all"}}))
    return collection.to_dict(include_self_link=False, transform_hrefs=False)


def write_collection(store: StoreLike, storage_options: Mapping[str, Any] | None = None) -> str:
    """Write the record to :func:`collection_url`; returns that URL."""
    from cluster._retry import retry_storage
    from cluster.store import write_json

    cube = norm_store(store, storage_options)
    record = retry_storage(lambda: cube_collection(cube), what=f"reading the cube {cube.url}")
    write_json(cube.stac, record)
    return cube.stac.url
