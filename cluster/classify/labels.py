"""Training samples from labels and a cube: the actor pool samples the cube at the labels.

Labels are fields (polygons) or points, in a GeoJSON, GeoPackage, GeoParquet or CSV file
with coordinates. Each tile that labels touch is read by one actor, which returns only
the sampled pixels' time series (a few KiB per field), never the tile. Pixels of a polygon
are taken by the pixel-centre rule, up to ``max_pixels_per_field`` per field (a seeded
choice, so reruns sample the same pixels); a point takes the pixel it falls in.

The rows come back as the same long table that :mod:`cluster.classify.samples` makes of a
sample file (``sample_id, date, <bands>, label``, plus ``field_id``, ``x``, ``y``), so
features are computed by one definition whichever way the samples came.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import zarr
from pydantic import Field

from cluster import store as cstore
from cluster.config import StrictModel
from cluster.errors import ConfigError, DataError
from cluster.grid import CubeExtent
from cluster.location import StoreLocation, is_remote, local_path
from cluster.regions import rasterize_window, to_grid_crs
from cluster.records import GridTasks, TileResult, TileTask
from cluster.vector import read_vector

__all__ = ["LabelsConfig", "load_labels", "SamplePlan", "SampledRows", "SampleWorker", "plan_sampling",
           "samples_frame"]


class LabelsConfig(StrictModel):
    """Where the labelled fields or points are."""

    path: str
    """GeoJSON, GeoPackage, Shapefile, GeoParquet, or CSV with coordinate columns."""
    id_column: str
    """A field (or point) id: pixels of one field are one validation group."""
    label_column: str
    """The source label (a code or a name), mapped to classes by the label mapping."""
    layer: str | None = None
    x_column: str | None = None
    """CSV only: the x / longitude column."""
    y_column: str | None = None
    crs: str = "EPSG:4326"
    """CRS of CSV coordinates (files with their own CRS keep it)."""
    max_pixels_per_field: int = Field(default=30, ge=1)
    """Pixels sampled per field: neighbouring pixels of a field are near-copies, so more
    adds cost, not information; all pixels of a field stay in one validation group."""
    seed: int = 0


def load_labels(cfg: LabelsConfig, storage_options: Mapping[str, Any] | None = None) -> gpd.GeoDataFrame:
    """Read labels into ``field_id, label, geometry``; errors name the file and the column.

    ``storage_options`` (the job's ``storage``) reach a labels file on object storage."""
    path = cfg.path
    if not is_remote(path) and not Path(local_path(path)).exists():
        raise ConfigError(f"labels file {path!r} does not exist; fix labels.path")
    try:
        if path.lower().endswith(".csv"):
            if not (cfg.x_column and cfg.y_column):
                raise ConfigError(f"labels file {path!r} is a CSV: set labels.x_column and labels.y_column")
            df = pd.read_csv(path, storage_options=dict(storage_options) if storage_options and is_remote(path)
                             else None)
            for c in (cfg.x_column, cfg.y_column):
                if c not in df:
                    raise ConfigError(f"labels file {path!r} has no column {c!r}; it has {list(df.columns)!r}")
            frame = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df[cfg.x_column], df[cfg.y_column]), crs=cfg.crs)
        else:
            frame = read_vector(path, cfg.layer or None, storage_options=storage_options)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 — readers raise many types
        raise ConfigError(f"cannot read labels file {path!r}: {type(e).__name__}: {e}") from None
    for c in (cfg.id_column, cfg.label_column):
        if c not in frame:
            raise ConfigError(f"labels file {path!r} has no column {c!r}; it has "
                              f"{[k for k in frame.columns if k != 'geometry']!r}")
    if frame.crs is None:
        frame = frame.set_crs(cfg.crs)
    out = gpd.GeoDataFrame({"field_id": frame[cfg.id_column].astype(str).to_numpy(),
                            "label": frame[cfg.label_column].astype(str).to_numpy()},
                           geometry=frame.geometry.to_numpy(), crs=frame.crs)
    bad = out.geometry.isna() | out.geometry.is_empty
    if bad.any():
        raise DataError(f"labels file {path!r}: {int(bad.sum())} row(s) without geometry (ids "
                        f"{out.field_id[bad].head(3).tolist()!r}); fix or drop them")
    dup = out.field_id.duplicated()
    if dup.any():
        raise DataError(f"labels file {path!r}: duplicate id(s) {out.field_id[dup].head(3).tolist()!r} in "
                        f"{cfg.id_column!r}; each field needs its own id")
    return out


@dataclass(frozen=True)
class SamplePlan:
    store: StoreLocation
    """The cube, without credentials (the plan travels to workers)."""
    extent: CubeExtent
    labels: gpd.GeoDataFrame
    """In the grid CRS; row position = label code."""
    polygons: gpd.GeoDataFrame
    """The polygon labels (``region_id`` = field id, ``code`` = row in ``labels``)."""
    points: np.ndarray
    """(K, 3) float: x, y and code of the point labels."""
    bands: dict[str, str]
    dates: tuple[str, ...]
    tiles: Sequence[TileTask]
    """The tiles labels touch."""
    max_pixels_per_field: int
    seed: int
    outside: tuple[str, ...]
    """Ids of labels that miss the cube: reported, not sampled."""


def plan_sampling(cube: StoreLocation, labels: gpd.GeoDataFrame,
                  bands: Mapping[str, str], cfg: LabelsConfig) -> SamplePlan:
    """The tiles labels touch; labels outside the cube are listed, not silently dropped."""
    store = cube.url
    group = cstore.open_group(cube, mode="r")
    extent = cstore.extent_of(group)
    missing = sorted(a for a in bands.values() if a not in set(group.array_keys()))
    if missing:
        raise ConfigError(f"the cube {store!r} lacks band(s) {missing!r} the features need; ingest them")
    lab = to_grid_crs(labels, extent.grid).reset_index(drop=True)
    from shapely.geometry import box

    cube_box = box(*extent.bounds)
    inside = lab.intersects(cube_box).to_numpy()
    outside = tuple(lab.field_id[~inside])
    if not inside.any():
        raise DataError(f"none of the {len(lab)} labels lies inside the cube {store!r} (its bounds in "
                        f"{extent.grid.crs}: {tuple(round(v) for v in extent.bounds)}); check the labels' CRS and file")
    lab = lab[inside].reset_index(drop=True)
    sindex = lab.sindex
    tiles = GridTasks(extent, keep=[len(sindex.query(box(*extent.grid.tile_bounds(t)))) > 0
                                    for t in extent.iter_tiles()])
    times = cstore.open_cube(cube).time.values
    is_poly = lab.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    polygons = gpd.GeoDataFrame({"region_id": lab.field_id[is_poly].to_numpy(),
                                 "code": np.flatnonzero(is_poly)},
                                geometry=lab.geometry[is_poly].to_numpy(), crs=lab.crs)
    is_point = (lab.geom_type == "Point").to_numpy()
    if (~is_poly & ~is_point).any():
        kinds = sorted(set(lab.geom_type[~is_poly & ~is_point]))
        raise DataError(f"labels must be polygons or points; found {kinds!r} (ids "
                        f"{lab.field_id[~is_poly & ~is_point].head(3).tolist()!r})")
    pts = lab.geometry[is_point]
    points = np.column_stack([pts.x.to_numpy(), pts.y.to_numpy(), np.flatnonzero(is_point)]) if is_point.any() \
        else np.zeros((0, 3))
    return SamplePlan(cube.for_workers(), extent, lab, polygons, points, dict(bands), tuple(str(t) for t in times),
                      tiles, cfg.max_pixels_per_field, cfg.seed, outside)


@dataclass(frozen=True, eq=False)
class SampledRows:
    """The labelled pixels one tile gave (the output of :class:`SampleWorker`): which label,
    where, and each band's time series. Small: at most ``max_pixels_per_field`` per field."""

    code: np.ndarray
    """(N,) int64: each pixel's label, as its row in :attr:`SamplePlan.labels`."""
    x: np.ndarray
    """(N,) pixel centres' x in the grid's CRS."""
    y: np.ndarray
    """(N,) pixel centres' y in the grid's CRS."""
    values: Mapping[str, np.ndarray]
    """Feature band -> (T, N) decoded values (NaN: missing), dates as :attr:`SamplePlan.dates`."""


class SampleWorker:
    """Returns the sampled pixels of one tile: ids, positions and per-band time series."""

    def __init__(self, plan: SamplePlan) -> None:
        self.plan = plan
        self._group: zarr.Group | None = None

    def process(self, task: TileTask) -> TileResult[SampledRows]:
        t0 = time.perf_counter()
        plan = self.plan
        if self._group is None:
            self._group = cstore.open_group(plan.store, mode="r")
        grid = plan.extent.grid
        transform = grid.tile_transform(task.tile)
        n = grid.tile_size_px
        codes = np.full((n, n), -1, dtype=np.int64)
        if len(plan.polygons):
            lab, _ = rasterize_window(plan.polygons, transform, (n, n))
            codes = np.where(lab >= 0, plan.polygons["code"].to_numpy()[np.clip(lab, 0, None)], -1)
        if len(plan.points):
            col, row = ~transform * (plan.points[:, 0], plan.points[:, 1])
            r, c = np.floor(row).astype(np.int64), np.floor(col).astype(np.int64)
            ok = (r >= 0) & (r < n) & (c >= 0) & (c < n)
            codes[r[ok], c[ok]] = plan.points[ok, 2].astype(np.int64)
        rows, cols, fields = [], [], []
        for code in np.unique(codes[codes >= 0]):
            rr, cc = np.nonzero(codes == code)
            fid = str(plan.labels.field_id.iloc[code])
            if rr.size > plan.max_pixels_per_field:
                seed = int(hashlib.sha256(f"{plan.seed}:{fid}:{task.tile.id}".encode()).hexdigest()[:8], 16)
                keep = np.sort(np.random.default_rng(seed).choice(rr.size, plan.max_pixels_per_field, replace=False))
                rr, cc = rr[keep], cc[keep]
            rows.append(rr)
            cols.append(cc)
            fields.append(np.full(rr.size, code, dtype=np.int64))
        result: TileResult[SampledRows] = TileResult(task.tile.id, "done", pid=os.getpid())
        if not rows:
            result.status = "empty"
            return result
        r = np.concatenate(rows)
        c = np.concatenate(cols)
        values = {b: cstore.read_tile_decoded(self._group, name, plan.extent, task.tile)[:, r, c]
                  for b, name in plan.bands.items()}
        x, y = transform * (c + 0.5, r + 0.5)  # type: ignore[operator]  # affine maps arrays too; its stubs say floats
        result.output = SampledRows(np.concatenate(fields), np.asarray(x), np.asarray(y), values)
        result.pixels = int(r.size)
        result.seconds = time.perf_counter() - t0
        return result


def samples_frame(plan: SamplePlan, parts: Sequence[SampledRows]) -> pd.DataFrame:
    """The long sample table (one row per sampled pixel and date) from the tiles' samples."""
    if not parts:
        raise DataError("no labelled pixel was found on the cube; check that the labels overlap its data")
    code = np.concatenate([p.code for p in parts])
    x = np.concatenate([p.x for p in parts])
    y = np.concatenate([p.y for p in parts])
    T = len(plan.dates)
    n = code.size
    ids = np.array([f"{plan.labels.field_id.iloc[k]}@{xi:.1f},{yi:.1f}" for k, xi, yi in zip(code, x, y, strict=True)])
    frame = pd.DataFrame({
        "sample_id": np.repeat(ids, T),
        "date": np.tile(np.asarray(plan.dates, dtype="datetime64[ns]"), n),
    })
    for b in plan.bands:
        frame[b] = np.concatenate([p.values[b] for p in parts], axis=1).T.reshape(-1).astype(np.float32)
    field = plan.labels.field_id.to_numpy()[code]
    frame["label"] = np.repeat(plan.labels.label.to_numpy()[code], T)
    frame["field_id"] = np.repeat(field, T)
    frame["x"] = np.repeat(x, T)
    frame["y"] = np.repeat(y, T)
    return frame.sort_values(["sample_id", "date"], kind="stable").reset_index(drop=True)
