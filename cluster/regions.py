"""Regions for aggregation: load and validate a vector file, rasterize it per tile.

A region has an id, a name and a parent (a country code). Regions come from any vector file
GeoPandas reads (GeoJSON, GeoPackage, Shapefile) or GeoParquet, in any CRS. Bad rows are
reported, never dropped silently: :func:`load_regions` returns the usable regions and a list of
:class:`RegionIssue` for the job report.

Rasterization uses the pixel-centre rule (a pixel belongs to a region when its centre is
inside; GDAL's default, ``all_touched=False``). Where regions overlap, the pixel goes to the
region with the lowest code, i.e. the first ``region_id`` in sort order; :func:`load_regions`
reports overlapping pairs.

Nothing here imports Ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from pydantic import BaseModel, ConfigDict

from cluster._rasterize import burn_polygons
from cluster.errors import DataError
from cluster.grid import GridSpec, TileIndex
from cluster.location import is_remote, local_path
from cluster.vector import read_vector

__all__ = [
    "RegionsConfig",
    "RegionIssue",
    "load_regions",
    "to_grid_crs",
    "rasterize_regions",
    "rasterize_window",
]

_POLYGONAL = ("Polygon", "MultiPolygon")


class RegionsConfig(BaseModel):
    """Where the regions are and which columns hold their id, name and parent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    """A local path or URL of a GeoJSON, GeoPackage, Shapefile or GeoParquet file."""
    id_column: str
    """Column with a unique region id (written as text)."""
    name_column: str | None = None
    """Column with a display name; None uses the id."""
    parent_column: str | None = None
    """Column with the parent (e.g. an ISO country code); None leaves it empty."""
    layer: str | None = None
    """Layer of a multi-layer file (GeoPackage); None takes the first."""
    crs: str | None = None
    """CRS to assume when the file declares none; a file with a CRS keeps its own."""
    check_overlaps: bool = True
    """Report overlapping regions (each pixel goes to only one region). Costs a spatial join."""


@dataclass(frozen=True)
class RegionIssue:
    """One problem found in the regions file, for the job report."""

    row: int | None
    """Row number in the file (0-based), or None for a problem across rows."""
    region_id: str | None
    problem: str
    action: str
    """What was done: 'repaired', 'dropped' or 'kept'."""

    def __str__(self) -> str:
        where = f"row {self.row} (region {self.region_id!r})" if self.row is not None else (
            f"region {self.region_id!r}" if self.region_id is not None else "regions")
        return f"{where}: {self.problem}; {self.action}"


def _read(cfg: RegionsConfig, storage_options: Mapping[str, Any] | None = None) -> gpd.GeoDataFrame:
    path = cfg.path
    if not is_remote(path) and not Path(local_path(path)).exists():
        raise DataError(f"regions file {path!r} does not exist; check RegionsConfig.path")
    try:
        return read_vector(path, cfg.layer, storage_options=storage_options)
    except Exception as e:  # noqa: BLE001 - pyogrio/pyarrow raise many types; report them as one
        raise DataError(
            f"cannot read regions file {path!r} (layer={cfg.layer!r}): {e}; expected a GeoJSON, "
            "GeoPackage, Shapefile or GeoParquet file"
        ) from None


def _id_text(values: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(values) and values.dropna().mod(1).eq(0).all():
        values = values.astype("Int64")
    return values.astype("str").where(values.notna(), None)


def load_regions(
    config: RegionsConfig | str | Path,
    id_column: str | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    **fields: Any,
) -> tuple[gpd.GeoDataFrame, list[RegionIssue]]:
    """Read, validate and normalise regions.

    Args:
        config: a :class:`RegionsConfig`, or a path (then give ``id_column`` and any other
            config field as keywords).
        id_column, fields: config fields when ``config`` is a path.
        storage_options: how to reach a file on object storage (a job's ``storage``
            settings: endpoint, region, credentials); None: GDAL's defaults.

    Returns:
        ``(regions, issues)``: a GeoDataFrame with columns ``region_id`` (str), ``name``,
        ``parent``, ``geometry`` in the file's CRS, sorted by ``region_id`` (row position =
        region code), and the problems found.

    Raises:
        DataError: unreadable file, no CRS, a missing column (the message lists the columns
            there are), or duplicate ids.

    Example:
        >>> import geopandas as gpd, shapely, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "r.geojson")
        >>> gpd.GeoDataFrame({"code": ["B", "A"], "geometry": [shapely.box(0, 0, 1, 1),
        ...     shapely.box(1, 0, 2, 1)]}, crs="EPSG:4326").to_file(path)
        >>> regions, issues = load_regions(path, id_column="code")
        >>> list(regions.region_id), issues
        (['A', 'B'], [])
    """
    if isinstance(config, RegionsConfig):
        cfg = config
    else:
        if id_column is None:
            raise DataError(f"load_regions({str(config)!r}) needs id_column= (the column of region ids)")
        cfg = RegionsConfig(path=str(config), id_column=id_column, **fields)
    raw = _read(cfg, storage_options)
    cols = [c for c in raw.columns if c != raw.geometry.name]
    for what, col in (("id_column", cfg.id_column), ("name_column", cfg.name_column),
                      ("parent_column", cfg.parent_column)):
        if col is not None and col not in raw.columns:
            raise DataError(
                f"regions file {cfg.path!r} has no column {col!r} ({what}); available columns: "
                f"{cols!r}"
            )
    if raw.crs is None:
        if cfg.crs is None:
            raise DataError(
                f"regions file {cfg.path!r} declares no CRS; set RegionsConfig.crs (e.g. 'EPSG:4326')"
            )
        raw = raw.set_crs(cfg.crs)

    ids = _id_text(raw[cfg.id_column])
    frame = gpd.GeoDataFrame({
        "region_id": ids,
        "name": _id_text(raw[cfg.name_column]) if cfg.name_column else ids,
        "parent": _id_text(raw[cfg.parent_column]) if cfg.parent_column else pd.Series([None] * len(raw), dtype="str"),
        "row": np.arange(len(raw)),
    }, geometry=raw.geometry.values, crs=raw.crs)

    issues: list[RegionIssue] = []
    keep = np.ones(len(frame), bool)
    for i, (rid, geom) in enumerate(zip(frame["region_id"], frame.geometry, strict=True)):
        if rid is None or pd.isna(rid) or rid == "":
            issues.append(RegionIssue(i, None, f"empty id in column {cfg.id_column!r}", "dropped"))
            keep[i] = False
            continue
        if geom is None or geom.is_empty:
            issues.append(RegionIssue(i, rid, "empty or missing geometry", "dropped"))
            keep[i] = False
            continue
        if geom.geom_type not in _POLYGONAL and geom.geom_type != "GeometryCollection":
            issues.append(RegionIssue(i, rid, f"geometry is a {geom.geom_type}, not a polygon", "dropped"))
            keep[i] = False
            continue
        if not geom.is_valid or geom.geom_type == "GeometryCollection":
            reason = shapely.is_valid_reason(geom)
            fixed = _polygonal_part(shapely.make_valid(geom))
            if fixed is None:
                issues.append(RegionIssue(i, rid, f"invalid geometry ({reason}) with no area after repair", "dropped"))
                keep[i] = False
            else:
                issues.append(RegionIssue(i, rid, f"invalid geometry ({reason})", "repaired with make_valid"))
                frame.loc[frame.index[i], "geometry"] = fixed
    frame = frame[keep]

    dup = frame["region_id"][frame["region_id"].duplicated(keep=False)]
    if len(dup):
        names = sorted(set(dup))
        raise DataError(
            f"regions file {cfg.path!r} has duplicate ids in column {cfg.id_column!r}: {names[:10]!r}"
            f"{' ...' if len(names) > 10 else ''}; ids must be unique (dissolve multi-row regions "
            "first, e.g. GeoDataFrame.dissolve(by=...), or pick another id_column)"
        )
    frame = frame.sort_values("region_id", kind="stable").reset_index(drop=True)
    if cfg.check_overlaps and len(frame) > 1:
        issues.extend(_overlaps(frame))
    out = frame.drop(columns="row")
    return gpd.GeoDataFrame(out, geometry="geometry", crs=frame.crs), issues


def _polygonal_part(geom: Any) -> Any:
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type in _POLYGONAL:
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in _POLYGONAL and not g.is_empty]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    return merged if merged.area > 0 else None


def _overlaps(frame: gpd.GeoDataFrame) -> list[RegionIssue]:
    left, right = frame.sindex.query(frame.geometry, predicate="intersects")
    pairs = left < right
    out = []
    for a, b in zip(left[pairs], right[pairs], strict=True):
        ga, gb = frame.geometry.iloc[a], frame.geometry.iloc[b]
        if shapely.relate_pattern(ga, gb, "2********"):  # interiors share area
            ida, idb = frame["region_id"].iloc[a], frame["region_id"].iloc[b]
            out.append(RegionIssue(
                None, str(idb), f"overlaps region {ida!r}",
                f"kept; shared pixels count for {ida!r} only (lowest region code wins)"))
    return out


def to_grid_crs(regions: gpd.GeoDataFrame, grid: GridSpec | str) -> gpd.GeoDataFrame:
    """Reproject regions to the grid's CRS, repairing geometries the reprojection broke."""
    crs = grid.crs if isinstance(grid, GridSpec) else grid
    out = regions.to_crs(crs)
    bad = ~out.geometry.is_valid
    if bad.any():
        out.loc[bad, "geometry"] = [
            _polygonal_part(shapely.make_valid(g)) for g in out.geometry[bad]
        ]
    return out


def rasterize_window(
    regions: gpd.GeoDataFrame,
    transform: Affine,
    shape: tuple[int, int],
) -> tuple[np.ndarray, dict[int, str]]:
    """Region codes of a pixel window (pixel-centre rule).

    Args:
        regions: regions in the window's CRS, as :func:`load_regions` returns them (row
            position = code).
        transform: the window's affine transform (north-up).
        shape: ``(y, x)`` pixels.

    Returns:
        ``(labels, codes)``: an int32 ``(y, x)`` array of region codes (-1 = no region) and
        ``{code: region_id}`` for the regions whose geometry touches the window (a region may
        touch it yet own no pixel centre; :func:`cluster.zonal.accumulate_tile` only
        reports regions with pixels).

    Example:
        >>> import shapely
        >>> r = gpd.GeoDataFrame({"region_id": ["a", "b"]}, geometry=[shapely.box(0, 0, 2, 2),
        ...     shapely.box(1, 1, 4, 4)], crs="EPSG:3857")
        >>> labels, codes = rasterize_window(r, Affine(1, 0, 0, 0, -1, 4), (4, 4))
        >>> labels
        array([[-1,  1,  1,  1],
               [-1,  1,  1,  1],
               [ 0,  0,  1,  1],
               [ 0,  0, -1, -1]], dtype=int32)
        >>> codes
        {0: 'a', 1: 'b'}
    """
    ny, nx = int(shape[0]), int(shape[1])
    labels = np.full((ny, nx), -1, np.int32)
    if len(regions) == 0 or ny == 0 or nx == 0:
        return labels, {}
    left, top = transform.c, transform.f
    right, bottom = left + nx * transform.a, top + ny * transform.e
    box = shapely.box(min(left, right), min(top, bottom), max(left, right), max(top, bottom))
    hits = np.sort(regions.sindex.query(box, predicate="intersects"))
    if hits.size == 0:
        return labels, {}
    geoms = regions.geometry.values
    # later shapes overwrite: burn the highest code first so the lowest code wins overlaps
    order = [int(i) for i in hits[::-1] if geoms[i] is not None]
    burn_polygons(labels, geoms[order], order, transform)
    ids = regions["region_id"].to_numpy()
    return labels, {int(c): str(ids[c]) for c in hits}


def rasterize_regions(
    regions: gpd.GeoDataFrame,
    grid: GridSpec,
    tile: TileIndex,
) -> tuple[np.ndarray, dict[int, str]]:
    """Region codes of one grid tile (pixel-centre rule; lowest code wins overlaps).

    ``regions`` must already be in the grid's CRS (:func:`to_grid_crs`); regions whose bounds
    miss the tile are skipped through the spatial index.

    Returns:
        ``(labels, codes)`` as :func:`rasterize_window`, labels of shape
        ``(tile_size_px, tile_size_px)``.
    """
    if regions.crs is not None and not regions.crs.equals(grid.pyproj_crs):
        raise DataError(
            f"regions are in {regions.crs.to_string()!r} but the grid is {grid.crs!r}; "
            "call to_grid_crs(regions, grid) first"
        )
    n = grid.tile_size_px
    return rasterize_window(regions, grid.tile_transform(tile), (n, n))
