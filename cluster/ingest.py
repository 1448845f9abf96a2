"""Ingest: warp scenes onto the grid and write them, tile by tile, into a Zarr cube.

Planning (:func:`plan_ingest`) reads scene headers only and never starts Ray. A tile worker
(:class:`IngestWorker`) runs inside a Ray actor, or in-process in tests: for its tile it
reads the needed window of every scene that touches the tile, warps it onto the tile's
pixels, masks clouds and nodata, mosaics, and writes the whole tile (all dates) at once.

**Mosaic rule.** Scenes are ordered by ``(date, scene id)``. For each output date (a scene
date, or an N-day bin) and pixel, the first scene in that order whose pixel is valid in
every band and clear under the mask rule wins. The result does not depend on which worker
ran when.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import math
import os
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import rasterio
import zarr
from affine import Affine
from pydantic import Field, field_validator, model_validator
from rasterio.enums import Resampling as RioResampling
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window, from_bounds

import cluster
from cluster import store as cstore
from cluster.config import RUN_KEYS, StrictModel, TileJobConfig, check_url
from cluster.errors import (
    ConfigError,
    GridError,
    SceneError,
    SceneReadError,
    StorageUnavailableError,
    StoreError,
    StoreMismatchError,
)
from cluster.grid import BBox, CubeExtent, GridSpec, TileIndex
from cluster.location import StoreLocation, is_remote
from cluster.scenes import (
    SENSORS,
    BandSpec,
    DateRule,
    MaskRule,
    RejectedScene,
    Scene,
    discover_scenes,
    open_raster,
)
from cluster.records import GridTasks, Ragged, TileResult, TileTask

__all__ = ["IngestConfig", "IngestTuning", "ResolvedBand", "IngestPlan", "IngestWorker", "IngestFindings",
           "plan_ingest", "prepare_store"]


class ExtentConfig(StrictModel):
    """The area a cube covers: ``bounds`` in ``crs``, or the bounds of a vector file."""

    bounds: tuple[float, float, float, float] | None = None
    """(west/left, south/bottom, east/right, north/top) in ``crs``."""
    crs: str = "EPSG:4326"
    path: str | None = None
    """GeoJSON, GeoPackage, Shapefile or GeoParquet (regions, an AOI polygon): its bounds."""

    @model_validator(mode="after")
    def _one(self) -> "ExtentConfig":
        if (self.bounds is None) == (self.path is None):
            raise ValueError("set exactly one of extent.bounds (with extent.crs) and extent.path")
        if self.bounds is not None:
            w, s, e, n = self.bounds
            if not (w < e and s < n):
                raise ValueError(f"extent.bounds {self.bounds!r} must be (left, bottom, right, top) with "
                                 "left < right and bottom < top")
        return self

    def in_crs(self, crs: str) -> BBox:
        """The extent's bounds in ``crs`` (edges densified)."""
        if self.path is not None:
            from cluster.vector import read_vector

            try:
                frame = read_vector(self.path)
            except Exception as e:  # noqa: BLE001 — readers raise many types
                raise ConfigError(f"extent.path {self.path!r} cannot be read ({type(e).__name__}: {e}); "
                                  "give a GeoJSON, GeoPackage, Shapefile or GeoParquet file") from None
            if frame.crs is None or frame.empty:
                raise ConfigError(f"extent.path {self.path!r} has no CRS or no features")
            return BBox(*frame.to_crs(crs).total_bounds)
        assert self.bounds is not None
        return BBox(*transform_bounds(self.crs, crs, *self.bounds, densify_pts=21))


class IngestTuning(StrictModel):
    """How an ingest actor reads (memory and caches), never what it writes: outside the plan
    hash, and carried to the actors in the plan (a module-level setting would not reach them)."""

    scenes_per_batch: int = Field(default=16, ge=1)
    """Scenes read, warped and mosaicked at once per tile: bounds an actor's memory (a 512 px
    tile of 6 bands is ~3 MB per scene, x3 for windows and warped layers) while one GDAL
    warp still serves many dates of one footprint."""
    gdal_cache_mib: int = Field(default=256, ge=0)
    """GDAL block cache per actor. GDAL's default is 5 % of the machine's RAM per process, so
    every actor on a node would grow to that; neighbouring tiles of a strip reuse the source
    blocks they share (a 512 px tile of a season of one footprint is ~100-200 MB of blocks)."""
    scene_cache_size: int = Field(default=512, ge=1)
    """Open datasets an actor keeps (~100 kB each; re-opening a COG costs a header read): a
    season of one-file-per-band scenes touching one tile (30 dates x 5 files) must fit, or
    every tile re-opens them all."""


class IngestConfig(TileJobConfig):
    """Everything ``harvest ingest`` needs. YAML keys are these field names."""

    scenes: list[str] = Field(default_factory=list)
    """Paths, globs or URLs. A ``{band}`` token marks one-file-per-band products."""
    stac: str | None = None
    """A STAC ItemCollection JSON file (local or URL); each item is a scene."""
    grid: GridSpec = Field(default_factory=GridSpec)
    sensor: str | None = None
    """A preset band mapping: one of cluster.scenes.SENSORS."""
    bands: dict[str, BandSpec] = Field(default_factory=dict)
    """Band name -> where it is and how to scale it; merged over the sensor preset."""
    select: list[str] | None = None
    """Keep only these bands of the preset (the mask band is kept when the mask needs it)."""
    date: DateRule = Field(default_factory=DateRule)
    mask: MaskRule | Literal["preset", "none"] = "preset"
    """The cloud/QA rule: the sensor's by default, 'none' to keep every pixel."""
    time_bin_days: int | None = Field(default=None, ge=1)
    """None: one time step per scene date. N: composites over N-day bins counted from
    1970-01-01, labelled by the bin's first day (stable whatever scenes are added)."""
    bbox: tuple[float, float, float, float] | None = None
    """Limit the cube to (west, south, east, north) in degrees; default: all scenes."""
    extent: ExtentConfig | None = None
    """The cube's area, explicitly: bounds in any CRS, or a vector file (its features'
    total bounds). Scenes outside it are rejected; without it (or bbox), the scenes'
    footprints set the area and far-off scenes are left out as outliers."""
    compression: Literal["lz4", "zstd", "none"] = "lz4"
    """lz4 (blosc, byte shuffle) writes fastest and compressed best in our measurements."""
    compression_level: int = Field(default=5, ge=0, le=22)
    tuning: IngestTuning = Field(default_factory=IngestTuning)
    overwrite: bool = False
    """Replace an existing cube made by a different config (otherwise that is an error).
    Only a cube this project wrote is ever removed, and only when it holds nothing else."""

    @field_validator("scenes")
    @classmethod
    def _scene_urls(cls, v: list[str]) -> list[str]:
        return [check_url(u, "input") for u in v]

    @field_validator("sensor")
    @classmethod
    def _known_sensor(cls, v: str | None) -> str | None:
        if v is not None and v not in SENSORS:
            raise ValueError(f"unknown sensor {v!r}; known: {sorted(SENSORS)} (or leave it out and map 'bands')")
        return v

    @model_validator(mode="after")
    def _inputs(self) -> "IngestConfig":
        if not self.scenes and not self.stac:
            raise ValueError("no inputs: set 'scenes' (paths/globs/URLs) or 'stac' (an ItemCollection file)")
        if self.sensor is None and not self.bands:
            raise ValueError("no bands: set 'sensor' to a preset or map 'bands' yourself")
        return self

    def band_specs(self) -> dict[str, BandSpec]:
        """The band mapping: preset, filtered by ``select``, with ``bands`` merged over it."""
        preset = SENSORS[self.sensor].bands if self.sensor else {}
        specs = dict(preset)
        mask = self.mask_rule()
        if self.select is not None:
            unknown = sorted(set(self.select) - set(preset) - set(self.bands))
            if unknown:
                raise ConfigError(f"select names unknown band(s) {unknown!r}; "
                                  f"known: {sorted(set(preset) | set(self.bands))}")
            keep = set(self.select) | ({mask.band} if mask else set())
            specs = {k: v for k, v in specs.items() if k in keep}
        for name, spec in self.bands.items():
            if name in specs:
                specs[name] = specs[name].model_copy(update=spec.model_dump(exclude_unset=True))
            else:
                specs[name] = spec
        if mask and mask.band not in specs:
            raise ConfigError(
                f"mask band {mask.band!r} is not in the band mapping {sorted(specs)}; "
                "add it under 'bands' or set mask: none"
            )
        return specs

    def mask_rule(self) -> MaskRule | None:
        if self.mask == "none":
            return None
        if self.mask == "preset":
            return SENSORS[self.sensor].mask if self.sensor else None
        return self.mask


@dataclass(frozen=True)
class ResolvedBand:
    """A cube band after looking at the scenes: storage dtype, fill value and CF scaling."""

    name: str
    spec: BandSpec
    dtype: str
    fill_value: float | int
    scale: float | None
    offset: float | None
    stored: bool = True
    """False for a mask band that is only read to mask the others."""

    def array_spec(self) -> cstore.ArraySpec:
        attrs: dict[str, Any] = {"long_name": self.name, "resampling": self.spec.resampling}
        return cstore.ArraySpec(self.name, self.dtype, self.fill_value, self.scale, self.offset, attrs)


@dataclass(frozen=True)
class IngestPlan:
    """Everything workers need, computed from headers only."""

    store: StoreLocation
    """The cube, without credentials (the plan travels to workers)."""
    extent: CubeExtent
    times: tuple[np.datetime64, ...]
    bands: tuple[ResolvedBand, ...]
    mask: MaskRule | None
    scenes: tuple[Scene, ...]
    scene_time: tuple[int, ...]
    """Time index of each scene."""
    tiles: Sequence[TileTask[tuple[int, ...]]]
    """One task per tile of the cube; its payload: the indices of the scenes that touch it, in
    mosaic order (a :class:`~cluster.records.GridTasks` over a :class:`~cluster.records.Ragged`)."""
    rejected: tuple[RejectedScene, ...]
    warnings: tuple[str, ...]
    hash: str
    compression: str
    compression_level: int
    tuning: IngestTuning

    @property
    def stored_bands(self) -> list[ResolvedBand]:
        return [b for b in self.bands if b.stored]

    def cube_attrs(self, config: IngestConfig) -> dict[str, Any]:
        return {
            "title": "harvest-cluster analysis-ready cube",
            "Conventions": "CF-1.8",
            "harvest": {
                "version": cluster.__version__,
                "written_by": cstore.OWNER_TAG,
                "job": "ingest",
                "plan_hash": self.hash,
                "config": config.public_dict(),
                "grid": self.extent.to_dict(),
                "mosaic_rule": "first valid and clear pixel in (date, scene id) order",
                "mask_rule": self.mask.model_dump(mode="json") if self.mask else None,
                "inputs": [{"id": s.id, "date": s.date.isoformat(),
                            "assets": {k: v.url for k, v in s.assets.items()}} for s in self.scenes],
                "rejected": [vars(r) for r in self.rejected],
            },
        }


# --- planning -------------------------------------------------------------------------


def scenes_per_tile(extent: CubeExtent, footprints: Sequence[BBox]) -> Ragged:
    """For each tile of ``extent`` (row-major), the positions of the footprints that share
    area with it (``BBox.intersects``), in ascending order: the mosaic order.

    Each footprint is tested only against the tiles around its own tile range, all at once,
    on the same tile edges as ``GridSpec.tile_bounds``. Testing every tile against every
    footprint cost 1 ms per tile with 12,000 Sentinel-2 granules: 100 s of driver CPU for
    Kazakhstan's 100,000 tiles. The lists are kept flat (:class:`~cluster.records.Ragged`).

    >>> from cluster.grid import GridSpec
    >>> extent = CubeExtent(GridSpec("EPSG:6933", 10.0, 100), row0=0, col0=0, nrows=1, ncols=3)
    >>> list(scenes_per_tile(extent, [BBox(0, -1000, 1500, 0), BBox(1000, -1000, 3000, 0)]))
    [(0,), (0, 1), (1,)]
    """
    grid = extent.grid
    ex, ey = grid.tile_extent, grid.tile_extent_y
    tiles: list[np.ndarray] = []  # per footprint: the tiles it touches (row-major positions)
    for fp in footprints:
        # the tiles that may touch it (one more on each side, for rounding), then the exact test
        c0 = max(extent.col0, math.floor((fp.left - grid.origin_x) / ex) - 1)
        c1 = min(extent.col0 + extent.ncols - 1, math.floor((fp.right - grid.origin_x) / ex) + 1)
        r0 = max(extent.row0, math.floor((grid.origin_y - fp.top) / ey) - 1)
        r1 = min(extent.row0 + extent.nrows - 1, math.floor((grid.origin_y - fp.bottom) / ey) + 1)
        cols = np.arange(c0, c1 + 1)
        left = grid.origin_x + cols * ex
        cols = cols[(fp.left < left + ex) & (left < fp.right)]
        rows = np.arange(r0, r1 + 1)
        top = grid.origin_y - rows * ey
        rows = rows[(fp.bottom < top) & (top - ey < fp.top)]
        flat = (rows[:, None] - extent.row0) * extent.ncols + (cols[None, :] - extent.col0)
        tiles.append(flat.ravel().astype(np.int32))  # a cube of 2**31 tiles would be 5e16 px
    n_tiles = extent.nrows * extent.ncols
    scene = np.repeat(np.arange(len(footprints), dtype=np.int32), [len(t) for t in tiles])
    tile = np.concatenate([np.zeros(0, np.int32), *tiles])
    del tiles
    order = np.argsort(tile, kind="stable")  # by tile; within a tile, footprints stay ascending
    offsets = np.zeros(n_tiles + 1, np.int64)
    np.cumsum(np.bincount(tile, minlength=n_tiles), out=offsets[1:])
    return Ragged(scene[order], offsets)


def _bin_label(date: dt.date, days: int | None) -> np.datetime64:
    if days is None:
        return np.datetime64(date, "ns")
    k = (date - dt.date(1970, 1, 1)).days // days
    return np.datetime64(dt.date(1970, 1, 1) + dt.timedelta(days=k * days), "ns")


def _resolve_bands(specs: Mapping[str, BandSpec], mask: MaskRule | None,
                   scenes: Sequence[Scene]) -> tuple[list[ResolvedBand], list[str]]:
    out, notes = [], []
    first = scenes[0]
    for name, spec in specs.items():
        dtype = spec.dtype or first.dtypes[name]
        nodata = spec.nodata if spec.nodata is not None else first.nodata[name]
        if nodata is None or (isinstance(nodata, float) and math.isnan(nodata)):
            if np.issubdtype(np.dtype(dtype), np.floating):
                fill: float | int = float("nan")
            else:
                fill = 0
                notes.append(f"band {name!r} has no nodata value; 0 marks missing pixels in the cube "
                             "(set bands.{name}.nodata to choose another)")
        else:
            fill = int(nodata) if np.issubdtype(np.dtype(dtype), np.integer) else float(nodata)
        scale = spec.scale if spec.scale is not None else first.scales.get(name)
        offset = spec.offset if spec.offset is not None else first.offsets.get(name)
        stored = not (mask is not None and name == mask.band and not mask.store)
        if mask is not None and name == mask.band and spec.resampling != "nearest":
            raise ConfigError(f"mask band {name!r} must use nearest resampling, not {spec.resampling!r}")
        out.append(ResolvedBand(name, spec, dtype, fill, scale, offset, stored))
    return out, notes


def _drop_outliers(scenes: list[Scene], footprints: list[BBox], grid: GridSpec
                   ) -> tuple[list[Scene], list[BBox], list[RejectedScene]]:
    """Keep the largest group of scenes whose footprints lie near each other.

    Two footprints are near when the gap between them is at most twice the median
    footprint's diagonal (or eight tiles, if more): adjacent acquisitions, swaths and
    MGRS tiles always are. A scene far from every other (a wrong file in the glob, a
    scene in a CRS whose bounds explode on the grid) would otherwise stretch the cube over
    empty tiles; it is left out and named, with the setting that includes it.
    """
    if len(scenes) < 3:
        return scenes, footprints, []  # with two scenes far apart, neither is the odd one
    from shapely import STRtree, box

    diag = sorted(math.hypot(f.right - f.left, f.top - f.bottom) for f in footprints)[len(footprints) // 2]
    link = max(2 * diag, 8 * grid.tile_extent)
    boxes = [box(*f) for f in footprints]
    tree = STRtree(boxes)
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, b in enumerate(boxes):
        for j in tree.query(b, predicate="dwithin", distance=link):
            parent[root(int(j))] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        groups.setdefault(root(i), []).append(i)
    main = max(groups.values(), key=lambda g: (len(g), -min(g)))
    if len(main) == len(scenes):
        return scenes, footprints, []
    keep = set(main)
    core = box(*footprints[main[0]])
    for i in main[1:]:
        core = core.union(box(*footprints[i]))
    out = []
    for i in range(len(scenes)):
        if i not in keep:
            km = boxes[i].distance(core.envelope) / 1000 if grid.pyproj_crs.is_projected else None
            far = f"{km:,.0f} km" if km is not None else "far"
            out.append(RejectedScene(
                scenes[i].id, f"its footprint lies {far} from the other {len(main)} scenes' (an outlier)",
                "left out; set 'extent' (or bbox) to an area that includes it if it belongs, or drop it"))
    return [scenes[i] for i in sorted(keep)], [footprints[i] for i in sorted(keep)], out


def _check_plan_size(grid: GridSpec, bounds: BBox, scenes: Sequence[Scene], footprints: Sequence[BBox],
                     explicit: bool, config: IngestConfig) -> None:
    """Stop, before anything is allocated, a plan whose size is absurd for its inputs."""
    n_tiles = grid.count_tiles(bounds)
    covered = sum(grid.count_tiles(fp) for fp in footprints)
    if not explicit and n_tiles > max(64, 10 * covered):
        extremes = {min(range(len(footprints)), key=lambda i: footprints[i].left),
                    max(range(len(footprints)), key=lambda i: footprints[i].right),
                    min(range(len(footprints)), key=lambda i: footprints[i].bottom),
                    max(range(len(footprints)), key=lambda i: footprints[i].top)}
        names = ", ".join(repr(scenes[i].id) for i in sorted(extremes))
        raise GridError(
            f"the plan would span {n_tiles:,} tiles, but the scenes cover at most {covered:,} tiles' worth: "
            f"they lie far apart, and the cube would be mostly empty. The extremes are {names}. Set "
            "'extent' (or bbox) to the area you want, or drop the scenes that do not belong"
        )
    bytes_per_px = sum(np.dtype(spec.dtype or scenes[0].dtypes[name]).itemsize
                       for name, spec in config.band_specs().items())
    n_time = len({_bin_label(s.date, config.time_bin_days) for s in scenes})
    tile_bytes = 2 * n_time * grid.tile_size_px ** 2 * bytes_per_px  # output blocks + warped inputs
    limit = (config.resources.memory_mib or 4096) * 2 ** 20
    if tile_bytes > limit:
        raise GridError(
            f"one tile needs about {tile_bytes / 2**30:.1f} GiB in an actor ({n_time} dates x "
            f"{grid.tile_size_px}^2 px x {bytes_per_px} bytes of bands, twice), more than "
            f"{limit / 2**30:.1f} GiB: lower grid.tile_size_px, composite dates with time_bin_days, "
            "or raise resources.memory_mib"
        )


def _same_date_overlaps(scenes: Sequence[Scene], footprints: Sequence[BBox], share: float = 0.5) -> list[str]:
    """Notes on scenes of one date and one CRS that cover mostly the same ground: adjacent
    granules of one pass are a normal mosaic, and so is one pass delivered in two UTM zones
    (Sentinel-2 tiles overlap across a zone boundary), but two copies of one scene in one
    CRS (a reprocessing, a second download) are usually a mistake the user should hear about."""
    def area(b: BBox) -> float:
        return max(b.right - b.left, 0.0) * max(b.top - b.bottom, 0.0)

    notes = []
    by_date: dict[object, list[int]] = {}
    for i, s in enumerate(scenes):
        by_date.setdefault(s.date, []).append(i)
    for date, idx in by_date.items():
        for a, b in itertools.combinations(idx, 2):
            if scenes[a].crs_wkt != scenes[b].crs_wkt:
                continue
            fa, fb = footprints[a], footprints[b]
            both = BBox(max(fa.left, fb.left), max(fa.bottom, fb.bottom), min(fa.right, fb.right), min(fa.top, fb.top))
            smaller = min(area(fa), area(fb))
            if smaller > 0 and area(both) / smaller > share:
                first, second = sorted((scenes[a].id, scenes[b].id))
                notes.append(
                    f"scenes {first!r} and {second!r} share the date {date} and overlap "
                    f"{100 * area(both) / smaller:.0f} % of the smaller footprint: they make one time step, "
                    f"mosaicked in scene-id order (the first valid, clear pixel wins, so {first!r} does); "
                    "if one is a copy or an older processing of the other, drop it")
    return notes


def plan_ingest(config: IngestConfig) -> IngestPlan:
    """Find scenes, read their headers, lay out the cube and list the tiles. No Ray."""
    grid = config.grid
    specs = config.band_specs()
    mask = config.mask_rule()
    cube = config.location()
    scenes, rejected = discover_scenes(config.scenes, specs, config.date, stac=config.stac,
                                       storage_options=cube.storage_options)
    footprints: list[BBox] = []
    kept: list[Scene] = []
    aoi = None
    if config.bbox is not None and config.extent is not None:
        raise ConfigError("set either bbox (degrees) or extent, not both")
    if config.bbox is not None:
        aoi = BBox(*transform_bounds("EPSG:4326", grid.crs, *config.bbox, densify_pts=21))
    elif config.extent is not None:
        aoi = config.extent.in_crs(grid.crs)
    for s in scenes:
        try:
            fp = s.footprint(grid.crs)
        except Exception as e:  # noqa: BLE001 — PROJ errors: scene outside the CRS's domain
            rejected.append(RejectedScene(s.id, f"cannot transform its bounds to {grid.crs}: {e}",
                                          "use a grid CRS that covers the scene"))
            continue
        if not all(map(math.isfinite, fp)):
            rejected.append(RejectedScene(s.id, f"its bounds are outside the domain of {grid.crs}",
                                          "use a grid CRS that covers the scene"))
            continue
        if aoi is not None and not fp.intersects(aoi):
            rejected.append(RejectedScene(s.id, "outside the configured extent", "widen extent/bbox or drop the scene"))
            continue
        kept.append(s)
        footprints.append(fp)
    if config.strict and rejected:
        raise SceneError("strict mode: rejected input(s):\n  " + "\n  ".join(map(str, rejected)))
    if not kept:
        detail = "\n  ".join(map(str, rejected)) or "no inputs"
        raise SceneError(f"no usable scenes; nothing to ingest:\n  {detail}")

    if aoi is None:
        kept, footprints, outliers = _drop_outliers(kept, footprints, grid)
        if outliers and config.strict:
            raise SceneError("strict mode: scene(s) far from the others:\n  " + "\n  ".join(map(str, outliers)))
        rejected.extend(outliers)
    bands, notes = _resolve_bands(specs, mask, kept)
    if config.time_bin_days is None:
        notes.extend(_same_date_overlaps(kept, footprints))
    if aoi is not None:
        bounds = aoi
    else:
        bounds = footprints[0]
        for fp in footprints[1:]:
            bounds = bounds.union(fp)
    _check_plan_size(grid, bounds, kept, footprints, aoi is not None, config)
    extent = CubeExtent.from_tiles(grid, grid.tiles_for_bounds(bounds))

    labels = sorted({_bin_label(s.date, config.time_bin_days) for s in kept})
    index = {t: i for i, t in enumerate(labels)}
    scene_time = tuple(index[_bin_label(s.date, config.time_bin_days)] for s in kept)

    tasks = GridTasks(extent, payloads=scenes_per_tile(extent, footprints))

    h = hashlib.sha256()
    h.update(json.dumps({
        # defaults left out: a new optional setting (of a later version) keeps old cubes' hashes
        "config": config.model_dump(mode="json", exclude=set(RUN_KEYS), exclude_defaults=True),
        "grid": extent.to_dict(),
        "times": [str(t) for t in labels],
        "scenes": [(s.id, s.date.isoformat()) for s in kept],
    }, sort_keys=True, default=str).encode())
    return IngestPlan(
        store=cube.for_workers(), extent=extent, times=tuple(labels), bands=tuple(bands), mask=mask,
        scenes=tuple(kept), scene_time=scene_time, tiles=tasks, rejected=tuple(rejected),
        warnings=tuple(notes), hash=h.hexdigest()[:16], compression=config.compression,
        compression_level=config.compression_level,
        tuning=config.tuning,
    )


def prepare_store(plan: IngestPlan, config: IngestConfig) -> cstore.Manifest:
    """Create the cube template, or reuse an existing cube made by this same plan.

    Never writes into, or removes, anything this project did not write: a URL holding
    other files or another tool's Zarr group is an error, ``overwrite`` or not. An error
    while looking at the URL is raised as that error (it never means "no store here").
    Returns the manifest; ``manifest.done()`` lists the tiles a rerun can skip.
    """
    cube = config.location()  # the driver's copy: with the config's credentials
    manifest = cstore.Manifest(cube, "ingest", plan.hash)
    state = cstore.inspect_store(cube)
    if state.kind == "foreign":
        raise StoreError(
            f"store {cube.url!r} already holds {state.detail}; harvest-cluster never writes into or "
            "removes what it did not write (overwrite or not). Pick another store URL: a new or empty "
            "folder or prefix"
        )
    if state.kind == "cube":
        assert state.harvest is not None
        if state.harvest.get("plan_hash") == plan.hash:
            return manifest
        if not config.overwrite:
            raise StoreMismatchError(
                f"store {cube.url!r} holds a cube made by another config (plan "
                f"{state.harvest.get('plan_hash')!r}, this one {plan.hash!r}"
                f"{_config_diff(state.harvest.get('config'), config.public_dict())}); set overwrite: "
                "true to replace it, or pick another store URL"
            )
        cstore.remove_store(cube)
    cstore.create_cube(cube, plan.extent, plan.times, [b.array_spec() for b in plan.stored_bands],
                       plan.cube_attrs(config),
                       compression=plan.compression, compression_level=plan.compression_level,
                       step_days=config.time_bin_days or 1)
    return manifest


def _config_diff(old: Any, new: Mapping[str, Any]) -> str:
    """``; it differs in grid, scenes`` when both configs are known, else ``""``."""
    if not isinstance(old, Mapping):
        return ""
    keys = sorted(k for k in set(old) | set(new)
                  if k not in ("overwrite", "strict", "max_actors", "resources", "break_lease")
                  and old.get(k) != new.get(k))
    return f"; the configs differ in {', '.join(keys)}" if keys else ""


@dataclass(frozen=True)
class IngestFindings:
    """What ingesting one tile found besides its pixels (the output of
    :class:`IngestWorker`): the driver's :class:`CubeCheck` reads it as tiles arrive.

    >>> IngestFindings(3, (0, 2, 5), {(2, "red"): 7}).summary()
    {'scenes_used': 3, 'scenes_with_data': 3, 'invalid_values': 7, 'identical_bands': []}
    """

    scenes_used: int = 0
    """Scenes that gave at least one pixel to the tile's mosaic."""
    scenes_with_data: tuple[int, ...] = ()
    """Plan indices of the scenes with a valid, clear pixel on the tile (used or not)."""
    invalid_values: Mapping[tuple[int, str], int] = field(default_factory=dict)
    """(scene index, band) -> pixels that were no data (NaN, infinite, outside the band's
    valid range) where the scene otherwise had data."""
    identical_bands: tuple[tuple[str, str], ...] = ()
    """Pairs of stored bands whose blocks are identical on this tile (a tile with data)."""

    def summary(self) -> dict[str, Any]:
        """What the JSON report shows per tile: counts, and the identical band pairs."""
        return {"scenes_used": self.scenes_used, "scenes_with_data": len(self.scenes_with_data),
                "invalid_values": sum(self.invalid_values.values()),
                "identical_bands": [list(p) for p in self.identical_bands]}


class CubeCheck:
    """Catches a silently wrong cube from the tiles' results, as they arrive.

    Two bands identical in every tile with data (read from the same source by mistake),
    or no tile with data at all (every pixel masked or nodata), end the job as failed; a
    scene that gave no valid pixel anywhere is a warning. Only tiles processed in this run
    are seen: a rerun that skips every tile checks nothing.
    """

    def __init__(self, bands: Sequence[str], scenes: Sequence[Scene] = ()) -> None:
        self.bands = list(bands)
        self.scenes = list(scenes)
        self.data_tiles = 0
        self.empty_tiles = 0
        self.failed_tiles = 0
        self.identical: dict[tuple[str, str], int] = {}
        self.with_data: set[int] = set()
        self.invalid: dict[tuple[int, str], int] = {}

    def add(self, r: TileResult[IngestFindings]) -> None:
        found = r.output if r.output is not None else IngestFindings()
        self.with_data.update(found.scenes_with_data)
        for key, n in found.invalid_values.items():
            self.invalid[key] = self.invalid.get(key, 0) + n
        if r.status == "empty":
            self.empty_tiles += 1
        if r.status == "failed":
            self.failed_tiles += 1
        if r.status != "done":
            return
        self.data_tiles += 1
        for a, b in found.identical_bands:
            self.identical[(a, b)] = self.identical.get((a, b), 0) + 1

    def errors(self) -> list[str]:
        out = []
        if self.empty_tiles and not self.data_tiles:
            out.append(f"every tile ({self.empty_tiles}) is empty: no scene pixel was valid and clear. Check "
                       "the mask rule (mask: none to test), the bands' nodata values and the scenes' dates")
        for (a, b), n in sorted(self.identical.items()):
            if n == self.data_tiles and self.data_tiles:
                out.append(f"bands {a!r} and {b!r} are identical in every tile with data: they were read "
                           "from the same source. Check the band mapping (file tokens, index, description)")
        return out

    def warnings(self, bands: Sequence[ResolvedBand] = (), full_run: bool = True) -> list[str]:
        """Scenes with values that are no data (NaN, infinite, outside a band's valid range)
        in the tiles seen, and scenes that gave no valid, clear pixel in any tile (only
        after a run that processed every tile: ``full_run``)."""
        ranges = {b.name: b.spec.valid_range for b in bands}
        out = []
        for si in sorted({si for si, _ in self.invalid}):
            parts = []
            for (i, band), n in sorted(self.invalid.items()):
                if i == si:
                    r = ranges.get(band)
                    parts.append(f"{band} {n:,}" + (f" (valid range [{r[0]:g}, {r[1]:g}])" if r else ""))
            out.append(f"scene {self.scenes[si].id!r}: pixel values that are NaN, infinite or outside their band's "
                       f"valid range were left out as missing: {'; '.join(parts)}. A few are saturated or damaged "
                       "pixels; many mean a wrong scale/offset for this product (check the preset, or set "
                       "bands.<name>.scale/offset/valid_range)")
        if not full_run or self.failed_tiles or not (self.data_tiles + self.empty_tiles):
            return out
        return out + [f"scene {s.id!r} gave no valid pixel in any tile (all nodata, or all masked as cloud): it "
                      "adds nothing to the cube; check its nodata value and mask, or drop it"
                      for i, s in enumerate(self.scenes) if i not in self.with_data]


# --- the tile worker ------------------------------------------------------------------


def _invalid_values(arr: np.ndarray, band: ResolvedBand) -> np.ndarray | None:
    """Pixels that hold no physical value: NaN, infinities, or outside the band's
    ``valid_range`` (compared in DN, so no float copy of an integer band). None: no check
    applies to this band and dtype."""
    bad = ~np.isfinite(arr) if np.issubdtype(arr.dtype, np.floating) else None
    if band.spec.valid_range is None:
        return bad
    scale = band.scale if band.scale is not None else 1.0
    offset = band.offset if band.offset is not None else 0.0
    lo, hi = sorted(((v - offset) / scale for v in band.spec.valid_range))
    # a small tolerance: the range's ends are round physical values, the DN are integers
    eps = 1e-6 * max(abs(lo), abs(hi), 1.0)
    out = (arr < lo - eps) | (arr > hi + eps)
    return out if bad is None else out | bad

_RESAMPLING = {name: getattr(RioResampling, name) for name in
               ("nearest", "bilinear", "cubic", "average", "mode", "max", "min", "med")}


class IngestWorker:
    """Warps, masks, mosaics and writes tiles. Holds open datasets across tiles."""

    def __init__(self, plan: IngestPlan) -> None:
        self.plan = plan
        # the job's storage settings (no credentials) reach the scenes as they reach the cube
        self.so = dict(plan.store.storage_options)
        self._datasets: OrderedDict[str, rasterio.DatasetReader] = OrderedDict()
        self._group: zarr.Group | None = None
        self._cache_size = plan.tuning.scene_cache_size
        self._batch = plan.tuning.scenes_per_batch
        # capped, so an actor's memory does not grow with the scenes it has read
        from rasterio.env import set_gdal_config

        set_gdal_config("GDAL_CACHEMAX", plan.tuning.gdal_cache_mib)

    # datasets stay open across tiles: re-opening a COG costs a header read (an S3 GET)
    def _dataset(self, url: str) -> rasterio.DatasetReader:
        ds = self._datasets.get(url)
        if ds is None:
            ds = open_raster(url, self.so)
            self._datasets[url] = ds
            while len(self._datasets) > self._cache_size:
                _, old = self._datasets.popitem(last=False)
                old.close()
        else:
            self._datasets.move_to_end(url)
        return ds

    def close(self) -> None:
        for ds in self._datasets.values():
            ds.close()
        self._datasets.clear()

    def _forget(self, scene: Scene) -> None:
        """Close a scene's cached datasets: a handle that failed a read is not reused."""
        for asset in scene.assets.values():
            ds = self._datasets.pop(asset.url, None)
            if ds is not None:
                ds.close()

    def _unreachable(self, scene: Scene) -> bool:
        """After a failed read: is the storage the problem (True), not the file?

        GDAL reports a failed remote read without the storage error behind it, so ask the
        storage directly: if the file's first bytes cannot be fetched even with retries,
        storage did not answer; if they can, the file itself is at fault.
        """
        from cluster._retry import is_transient, retry_transient

        for asset in scene.assets.values():
            if not is_remote(asset.url):
                continue
            try:
                fs, path = cstore.filesystem(asset.url, self.so)
                retry_transient(partial(fs.cat_file, path, start=0, end=1024), attempts=3)
            except Exception as e:  # noqa: BLE001 — classified
                return is_transient(e)
        return False

    def _read_scene_checked(self, scene: Scene, grid_crs: str, tb: BBox, bounds_cache: dict[str, BBox],
                            tile: TileIndex) -> list[tuple[ResolvedBand, tuple[Any, ...], np.ndarray]] | None:
        """:meth:`_read_scene`, where a failure is never a silently skipped scene.

        A transient failure is retried (then the tile fails as retryable: the pool tries it
        again later); any other failure is read once more from a fresh handle and then
        fails the tile, naming the scene. A tile is done only when every scene it needed
        was read.
        """
        from cluster._retry import backoff_s, is_transient

        for attempt in range(3):
            try:
                return self._read_scene(scene, grid_crs, tb, bounds_cache)
            except Exception as e:  # noqa: BLE001 — classified below; nothing is skipped
                self._forget(scene)
                transient = is_transient(e) or self._unreachable(scene)
                if attempt == 2 or (attempt == 1 and not transient):
                    detail = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
                    if transient:
                        raise StorageUnavailableError(
                            f"scene {scene.id!r} on tile {tile.id}: object storage did not answer "
                            f"({detail})") from e
                    raise SceneReadError(
                        f"scene {scene.id!r} could not be read on tile {tile.id} ({detail}); the file "
                        "looks damaged (truncated, or not a raster): replace or remove it, then rerun "
                        "(failed tiles are retried, done ones skipped)") from e
                time.sleep(backoff_s(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _group_handle(self) -> Any:
        if self._group is None:
            self._group = cstore.open_group(self.plan.store, mode="r+")
        return self._group

    def _read_scene(self, scene: Scene, grid_crs: str, tb: BBox,
                    bounds_cache: dict[str, BBox]) -> list[tuple[ResolvedBand, tuple[Any, ...], np.ndarray]] | None:
        """Read the source window of each band of a scene that the tile needs.

        Returns ``(band, warp key, pixels)`` per band, or None when the scene misses the tile.
        """
        out = []
        by_url: dict[str, list[ResolvedBand]] = {}
        for b in self.plan.bands:
            by_url.setdefault(scene.assets[b.name].url, []).append(b)
        for url, bands in by_url.items():
            ds = self._dataset(url)
            wkt = ds.crs.to_wkt()
            if wkt not in bounds_cache:  # one PROJ transform per source CRS per tile
                bounds_cache[wkt] = BBox(*transform_bounds(grid_crs, ds.crs, *tb, densify_pts=21))
            win = _source_window(ds, bounds_cache[wkt])
            if win is None:
                return None
            src_transform = ds.window_transform(win)
            # every band of a file in one read: one pass over pixel-interleaved blocks
            pixels = ds.read([scene.assets[b.name].index for b in bands], window=win)
            for b, arr in zip(bands, pixels, strict=True):
                index = scene.assets[b.name].index
                nod = b.spec.nodata if b.spec.nodata is not None else scene.nodata[b.name]
                key = (wkt, tuple(src_transform), (int(win.height), int(win.width)),
                       b.spec.resampling, nod, ds.dtypes[index - 1])
                out.append((b, key, arr))
        return out

    def _warp_group(self, key: tuple[Any, ...], layers: list[np.ndarray], tile: TileIndex
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Warp layers that share a source grid, resampling and nodata in ONE GDAL call.

        The coordinate transform is exact (``tolerance=0``): GDAL's default approximation
        (0.125 px) depends on the window warped, so the same pixel could land differently
        in different tiles or runs.

        A time series of one footprint (same MGRS tile / path-row) shares its grid, so a
        tile's whole season warps at once: warper set-up (PROJ) dominates small warps.
        Returns the warped stack and, for integer bands without nodata, a coverage mask.
        """
        grid = self.plan.extent.grid
        n = grid.tile_size_px
        wkt, transform, _, resampling, nod, dtype = key
        src_transform = Affine(*transform[:6])
        floating = np.issubdtype(np.dtype(dtype), np.floating)
        dst_fill = nod if nod is not None else (np.nan if floating else 0)
        src = np.stack(layers)
        dst = np.full((len(layers), n, n), dst_fill, dtype=src.dtype)
        reproject(source=src, destination=dst, src_transform=src_transform, src_crs=wkt,
                  src_nodata=nod, dst_transform=grid.tile_transform(tile), dst_crs=grid.crs,
                  dst_nodata=dst_fill, resampling=_RESAMPLING[resampling], tolerance=0)
        cover = None
        if nod is None and not floating:
            # no nodata value tells "outside the scene" from a real 0: warp coverage too
            cover = np.zeros((n, n), dtype=np.uint8)
            reproject(source=np.ones(src.shape[1:], dtype=np.uint8), destination=cover,
                      src_transform=src_transform, src_crs=wkt, src_nodata=0,
                      dst_transform=grid.tile_transform(tile), dst_crs=grid.crs, dst_nodata=0,
                      resampling=RioResampling.nearest, tolerance=0)
        return dst, cover

    def _mosaic_batch(self, batch: Sequence[int], tile: TileIndex, tb: BBox, bounds_cache: dict[str, BBox],
                      blocks: dict[str, np.ndarray], filled: np.ndarray, timings: dict[str, float],
                      invalid: dict[tuple[int, str], int], with_data: list[int]) -> int:
        """Read, warp, mask and mosaic one batch of scenes into ``blocks``; returns how many
        scenes gave pixels. Counts no-data values per (scene, band) into ``invalid`` and
        appends the scenes with a valid, clear pixel to ``with_data``."""
        plan = self.plan
        grid = plan.extent.grid
        n = grid.tile_size_px
        # 1. read every needed source window (scenes in mosaic order)
        t0 = time.perf_counter()
        reads: list[tuple[int, list[tuple[ResolvedBand, tuple[Any, ...], np.ndarray]]]] = []
        for si in batch:
            r = self._read_scene_checked(plan.scenes[si], grid.crs, tb, bounds_cache, tile)
            if r is not None:
                reads.append((si, r))
        timings["read_decode"] += time.perf_counter() - t0

        # 2. warp: one GDAL call per distinct source grid
        t0 = time.perf_counter()
        groups: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
        for ri, (_, bands) in enumerate(reads):
            for bi, (_, key, _) in enumerate(bands):
                groups.setdefault(key, []).append((ri, bi))
        warped: dict[tuple[int, int], np.ndarray] = {}
        coverage: dict[tuple[int, int], np.ndarray] = {}
        for key, members in groups.items():
            dst, cover = self._warp_group(key, [reads[ri][1][bi][2] for ri, bi in members], tile)
            for k, m in enumerate(members):
                warped[m] = dst[k]
                if cover is not None:
                    coverage[m] = cover
        timings["warp"] += time.perf_counter() - t0

        # 3. mask and mosaic in (date, scene id) order: first valid and clear pixel wins
        used = 0
        for ri, (si, bands) in enumerate(reads):
            t = plan.scene_time[si]
            t0 = time.perf_counter()
            valid = np.ones((n, n), dtype=bool)
            data: dict[str, np.ndarray] = {}
            for bi, (b, key, _) in enumerate(bands):
                arr = warped[(ri, bi)]
                nod = key[4]
                if (ri, bi) in coverage:
                    valid &= coverage[(ri, bi)].astype(bool)
                if nod is not None and not (isinstance(nod, float) and math.isnan(nod)):
                    valid &= arr != nod
                bad = _invalid_values(arr, b)  # NaN, +-inf, outside the valid range: missing
                if bad is not None:
                    n_bad = int(np.count_nonzero(bad & valid))
                    if n_bad:
                        invalid[(si, b.name)] = invalid.get((si, b.name), 0) + n_bad
                    valid &= ~bad
                data[b.name] = arr
            if plan.mask is not None:
                valid &= plan.mask.clear(data[plan.mask.band])
            timings["mask"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            if valid.any():
                with_data.append(si)
            take = valid & ~filled[t]
            if take.any():
                for name, block in blocks.items():
                    block[t][take] = data[name][take]
                filled[t] |= take
                used += 1
            timings["mosaic"] += time.perf_counter() - t0
        return used

    def process(self, task: TileTask[tuple[int, ...]]) -> TileResult[IngestFindings]:
        t_start = time.perf_counter()
        plan = self.plan
        tile = task.tile
        grid = plan.extent.grid
        n = grid.tile_size_px
        n_time = len(plan.times)
        tb = grid.tile_bounds(tile)
        timings: dict[str, float] = {"read_decode": 0.0, "warp": 0.0, "mask": 0.0, "mosaic": 0.0}
        result: TileResult[IngestFindings] = TileResult(tile.id, "done", pid=os.getpid())
        invalid: dict[tuple[int, str], int] = {}
        with_data: list[int] = []
        identical: tuple[tuple[str, str], ...] = ()

        blocks = {b.name: np.full((n_time, n, n), b.fill_value, dtype=b.dtype)
                  for b in plan.bands if b.stored}
        filled = np.zeros((n_time, n, n), dtype=bool)
        bounds_cache: dict[str, BBox] = {}
        used = 0
        # Scenes stream through in batches, in mosaic order: an actor's memory is bounded by
        # one batch of source windows and warped layers, whatever the number of scenes that
        # touch the tile (a season of daily looks is hundreds).
        for start in range(0, len(task.payload), self._batch):
            batch = task.payload[start:start + self._batch]
            used += self._mosaic_batch(batch, tile, tb, bounds_cache, blocks, filled, timings, invalid, with_data)

        # 4. write the whole tile (the engine marks it done afterwards)
        t0 = time.perf_counter()
        if filled.any():
            names = sorted(blocks)
            identical = tuple(
                (a, b) for i, a in enumerate(names) for b in names[i + 1:]
                if blocks[a].dtype == blocks[b].dtype and np.array_equal(blocks[a], blocks[b]))
            group = self._group_handle()
            # bands in parallel: zarr encodes and stores each band's shard on its event loop,
            # so one band's compression overlaps another's I/O
            with ThreadPoolExecutor(max_workers=len(blocks)) as pool:
                written = dict(zip(blocks, pool.map(
                    lambda kv: cstore.write_tile(group, kv[0], plan.extent, tile, kv[1], plan.store),
                    blocks.items()), strict=True))
            result.bytes_written += sum(w.nbytes for w in written.values())
            result.record = cstore.checksum_record(written)
        else:
            result.status = "empty"  # nothing covers it: the template's fill value stands
        timings["encode_write"] = time.perf_counter() - t0
        result.pixels = n * n * n_time
        result.timings_s = timings
        result.output = IngestFindings(used, tuple(with_data), invalid, identical)
        result.seconds = time.perf_counter() - t_start
        return result


def _source_window(ds: rasterio.DatasetReader, sb: BBox) -> Window | None:
    """The scene pixels covering ``sb`` (tile bounds in the scene's CRS) plus a margin for
    the resampling kernel, or None when the scene misses them."""
    win = from_bounds(*sb, transform=ds.transform)
    pad = 3  # source pixels around the window: cubic needs 2
    col0, row0 = math.floor(win.col_off) - pad, math.floor(win.row_off) - pad
    col1 = math.ceil(win.col_off + win.width) + pad
    row1 = math.ceil(win.row_off + win.height) + pad
    col0, row0 = max(col0, 0), max(row0, 0)
    col1, row1 = min(col1, ds.width), min(row1, ds.height)
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)
