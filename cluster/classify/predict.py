"""Crop maps at cluster scale: each actor loads the model once and classifies its tiles.

For every season of the cube (or the configured harvest years), a tile's bands are read
and decoded (CF scale/offset, masked pixels NaN), turned into the season's features
(:func:`cluster.classify.features.season_features`, the same definition training used),
classified, and written as two ``(time, y, x)`` arrays on the cube's time axis:

* ``crop_type`` (uint8): the class code of the season each date belongs to, the class table
  in CF ``flag_values`` / ``flag_meanings``; 255 where the pixel had no valid observation in
  the season, or the date lies outside every classified season;
* ``crop_probability`` (uint8, percent): the probability of the winning class;
* with ``parcels`` (field boundaries such as a LPIS/GSAA layer), every parcel takes one class:
  the argmax of its pixels' mean class probabilities (object-based classification: a field
  grows one crop, and averaging a few hundred pixels removes the noise a pixel carries);
  ``crop_probability`` is then the parcel's mean probability of that class. A parcel that
  crosses tiles votes per tile (each part on its own pixels). Pixels outside every parcel
  keep their own (or ``smooth_px``-smoothed) class;
* with ``features: write``, ``season_features`` (float32, ``(season, feature, y, x)``): the
  feature vector each pixel was classified from, the feature names and their definitions
  (periods, composite rule, phenology) in its attributes (:func:`label_features` puts the
  names on the ``feature`` axis). For inspecting a map, not for whole continents: ~100
  features are 400 bytes per pixel and season.

Writing the map on the time axis keeps one layout for every product: the aggregate job
reads ``crop_type`` date by date, so each date's statistics use that season's map.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import zarr
from pydantic import Field

from cluster import store as cstore
from cluster.classify.features import (FeatureConfig, check_bands, feature_definitions, season_features,
                                      season_periods)
from cluster.classify.model import CropModel
from cluster.config import StrictModel, TileJobConfig
from cluster.errors import ConfigError, StoreError
from cluster.grid import CubeExtent
from cluster.location import StoreLocation
from cluster.records import GridTasks, TileResult, TileTask
from cluster.vector import VectorSource

__all__ = ["PredictConfig", "ParcelsConfig", "PredictPlan", "PredictWorker", "plan_predict", "prepare_predict",
           "label_features", "FILL", "CROP_TYPE", "CROP_PROBABILITY", "SEASON_FEATURES"]

FILL = 255
CROP_TYPE = "crop_type"
CROP_PROBABILITY = "crop_probability"
SEASON_FEATURES = "season_features"
_CHUNK_PX = 65_536
"""Pixels classified per batch: bounds the feature matrix (~100 features) to ~25 MB."""


class ParcelsConfig(StrictModel):
    """Field boundaries to classify whole fields (GeoPackage, GeoJSON, GeoParquet, ...)."""

    path: str
    """The parcels file, local or on object storage (reached with the job's ``storage``),
    read tile by tile through its spatial index. On a cluster give an object-storage URL:
    a local path must exist on every worker node. A remote GeoParquet file with a bbox
    covering column is read per tile in place; any other remote file is fetched once per
    node into a cache (:class:`cluster.vector.VectorSource`). The file's version (size and
    content hash, or ETag) is part of the plan: after a change a rerun maps every tile
    again, and a tile that finds the file changed while the job runs fails and says so."""
    layer: str | None = None
    """Layer of a multi-layer file (GeoPackage)."""


class PredictConfig(TileJobConfig):
    """``harvest classify predict``: the model and the cube it maps (``store``)."""

    model: str
    """The model folder written by ``harvest classify train`` (local or s3://)."""
    years: list[int] | None = None
    """Harvest years to map; default: every season the cube's dates cover. A season whose
    dates stop short of periods the model learnt from observations is left out (noted in the
    report); named here, it is an error."""
    band_names: dict[str, str] | None = None
    """Feature band name -> cube array name, when they differ (e.g. nir: B08); default: the
    names the model was trained with on its cube (``trained_on.band_names``), if any."""
    smooth_px: int = Field(default=0, ge=0)
    """Average the class probabilities over a ``smooth_px`` x ``smooth_px`` window before
    picking the class (0: off). Removes the salt-and-pepper errors of per-pixel maps inside
    fields; keep it below the narrowest field's width in pixels."""
    parcels: ParcelsConfig | None = None
    """Field boundaries: each parcel gets the class of its pixels' mean probabilities (see
    the module notes). Pixels outside every parcel are classified on their own."""
    features: Literal["none", "write"] = "none"
    """``write``: also store each pixel's season feature vector (``season_features``, with
    the features' names and definitions in its attributes), to inspect what the model saw."""
    overwrite: bool = False
    """Map again even if tiles of this plan are done."""


@dataclass(frozen=True)
class PlanParcels:
    """The parcels file a plan was made with: every actor reads this version or fails."""

    path: str
    layer: str | None
    crs: str
    version: str

    def source(self, storage_options: Mapping[str, Any]) -> VectorSource:
        return VectorSource(self.path, self.layer, storage_options, version=self.version)


@dataclass(frozen=True)
class PredictPlan:
    store: StoreLocation
    """The cube, without credentials (the plan travels to workers); the model folder is
    reached with the same storage options."""
    model: str
    extent: CubeExtent
    years: tuple[int, ...]
    season_steps: tuple[tuple[int, ...], ...]
    """Per year, the cube time steps inside that season."""
    dates: tuple[str, ...]
    bands: dict[str, str]
    classes: tuple[str, ...]
    tiles: Sequence[TileTask]
    """Every tile of the cube."""
    hash: str
    smooth_px: int = 0
    parcels: PlanParcels | None = None
    n_features: int = 0
    """Length of the feature vectors written per pixel and season (0: none written)."""
    notes: tuple[str, ...] = ()
    """Seasons left out, and why (into the job report)."""


def _covered_years(features: FeatureConfig, dates: np.ndarray) -> list[int]:
    years = sorted({int(str(d)[:4]) for d in dates} | {int(str(d)[:4]) + 1 for d in dates})
    d = dates.astype("datetime64[D]")
    out = []
    for y in years:
        s, e = features.season.bounds(y)
        inside = (d >= np.datetime64(s)) & (d <= np.datetime64(e))
        # a season counts when observations span at least half of it
        if inside.any() and (d[inside].max() - d[inside].min()).astype(int) >= (e - s).days / 2:
            out.append(y)
    return out


def plan_predict(config: PredictConfig, model: CropModel) -> PredictPlan:
    """Check the model against the cube (bands, seasons) and list the tiles. Reads metadata."""
    cube = config.location()
    group = cstore.open_group(cube, mode="r")
    extent = cstore.extent_of(group)
    arrays = set(group.array_keys())
    trained = dict(model.meta.get("trained_on") or {}).get("band_names") or {}
    names = config.band_names if config.band_names is not None else trained
    bands = {b: names.get(b, b) for b in model.features.bands}
    renamed = {b: a for b, a in bands.items() if a != b}
    source = "predict.band_names" if config.band_names is not None else "the model's training band_names"
    check_bands(model.features, [b for b, a in bands.items() if a in arrays],
                f"the cube {config.store!r}" + (f" (read as {renamed} by {source})" if renamed else ""))
    times = cstore.open_cube(cube).time.values
    d = times.astype("datetime64[D]")
    years = config.years or _covered_years(model.features, times)
    short = {y: why for y in years if (why := _season_shortfall(model, y, d))}
    if short and config.years:
        y, why = next(iter(short.items()))
        raise ConfigError(f"the cube {config.store!r} {why}: their features would be guessed by holding the "
                          f"nearest values. Ingest those dates, drop {y} from years, or train a model on the "
                          "part of the season the cube has (features.season.start/end)")
    notes = tuple(f"season {y} not mapped: the cube {why}" for y, why in short.items())
    years = [y for y in years if y not in short]
    if not years:
        raise ConfigError(f"the cube {config.store!r} covers no whole season {model.features.season.start} to "
                          f"{model.features.season.end} (dates {str(times.min())[:10]} to {str(times.max())[:10]})"
                          + (f"; {notes[0]}" if notes else "") + "; set years, or train with a season the cube covers")
    steps = []
    for y in years:
        s, e = model.features.season.bounds(y)
        idx = tuple(int(i) for i in np.flatnonzero((d >= np.datetime64(s)) & (d <= np.datetime64(e))))
        if not idx:
            raise ConfigError(f"the cube {config.store!r} has no date in the {y} season ({s} to {e}); "
                              f"drop {y} from years")
        steps.append(idx)
    parcels = _check_parcels(config.parcels, cube.storage_options)
    h = hashlib.sha256(json.dumps({
        "ingest": str(dict(group.attrs.get("harvest") or {}).get("plan_hash", "")),  # type: ignore[arg-type]
        "model": model.meta.get("created_at"), "model_classes": list(model.classes),
        "model_features": list(model.feature_names), "years": list(years), "bands": bands,
        "smooth_px": config.smooth_px, "features": config.features,
        "parcels": config.parcels.model_dump() if config.parcels else None,
        "parcels_version": parcels.version if parcels else None,  # a changed file is a new plan
    }, sort_keys=True, default=str).encode()).hexdigest()[:16]
    n_features = len(model.feature_names) if config.features == "write" else 0
    return PredictPlan(cube.for_workers(), config.model, extent, tuple(years), tuple(steps),
                       tuple(str(t) for t in times), bands, model.classes, GridTasks(extent), h, config.smooth_px,
                       parcels, n_features, notes)


def _season_shortfall(model: CropModel, year: int, dates: np.ndarray) -> str | None:
    """Why the cube's dates lack periods of the ``year`` season that the model learnt from
    observations (None if they do not). Inside the cube's dates a period without one is a gap,
    interpolated as in training; beyond its first or last date in the season, the features
    would be extrapolated. That counts only where the cube stops short of the season by more
    than its own longest gap between dates, and for periods observed in at least half of the
    model's training samples (``period_observed_share``; every period for older models)."""
    start, end = (np.datetime64(b, "D") for b in model.features.season.bounds(year))
    inside = np.sort(dates[(dates >= start) & (dates <= end)])
    if inside.size == 0:
        return None  # no date at all: plan_predict's own message
    first, last = inside[0], inside[-1]
    longest = int(np.diff(inside).astype(int).max()) if inside.size > 1 else 0
    share = model.meta.get("period_observed_share")
    lacking = []
    for i, (a, b) in enumerate(season_periods(model.features.season, year)):
        seen = share[i] if isinstance(share, list) and i < len(share) else 1.0
        before = np.datetime64(b, "D") < first and (first - start).astype(int) > longest
        after = np.datetime64(a, "D") > last and (end - last).astype(int) > longest
        if (before or after) and seen >= 0.5:
            lacking.append(f"{a}..{b}")
    if not lacking:
        return None
    return (f"has no date in {len(lacking)} period(s) of the {year} season that the model learnt from "
            f"observations ({', '.join(lacking[:3])}{', ...' if len(lacking) > 3 else ''}); its dates in that "
            f"season run {first} to {last}, {longest} days apart at most")


def _check_parcels(cfg: ParcelsConfig | None, storage_options: Mapping[str, Any]) -> PlanParcels | None:
    """The parcels file's path, CRS and version, after checking it can be read (metadata
    only; a remote file other than GeoParquet is fetched into the node's cache for it, where
    the driver node's actors find it)."""
    if cfg is None:
        return None
    source = VectorSource(cfg.path, cfg.layer, storage_options)
    if not source.exists():
        raise ConfigError(f"parcels file {cfg.path!r} does not exist; fix predict.parcels.path or remove parcels")
    try:
        crs = source.crs()
    except StoreError:
        raise  # storage did not answer: its own message, not "fix the path"
    except Exception as e:  # noqa: BLE001 - any reader error becomes one message naming the key
        raise ConfigError(f"cannot read parcels file {cfg.path!r}: {type(e).__name__}: {e}; "
                          "fix predict.parcels.path (or .layer)") from None
    if crs is None:
        raise ConfigError(f"parcels file {cfg.path!r} declares no CRS; write it with one (e.g. EPSG:4326)")
    return PlanParcels(cfg.path, cfg.layer, crs, source.version())


def prepare_predict(plan: PredictPlan, config: PredictConfig, model: CropModel) -> cstore.Manifest:
    """Create ``crop_type`` and ``crop_probability`` (kept if this plan has done tiles)."""
    cube = config.location()  # the driver's copy: with the config's credentials
    manifest = cstore.Manifest(cube, "classify", plan.hash)
    if config.overwrite:
        manifest.clear()
    common = {"harvest_job": "classify", "harvest_plan_hash": plan.hash, "model": plan.model,
              "model_created_at": model.meta.get("created_at"), "years": list(plan.years),
              "season_dates": {str(y): [str(d) for d in model.features.season.bounds(y)] for y in plan.years},
              "validation": model.meta.get("validation", {}),
              "confusion_counts": model.meta.get("confusion_counts"),
              "confusion_unit": model.meta.get("confusion_unit", "sample"),
              "confusion_orientation": "rows = map (predicted) class, columns = reference class"}
    specs = [
        cstore.ArraySpec(CROP_TYPE, "uint8", FILL, attrs={
            **common, "long_name": "crop type", "flag_values": list(range(len(plan.classes))),
            "flag_meanings": " ".join(c.replace(" ", "_") for c in plan.classes),
            "comment": "the class of the season each date belongs to; 255: not classified"}),
        cstore.ArraySpec(CROP_PROBABILITY, "uint8", FILL, attrs={
            **common, "long_name": "probability of the mapped crop type", "units": "percent"}),
    ]
    like = next(iter(plan.bands.values()))
    cstore.add_arrays(cube, specs, like=like, overwrite=not manifest.done())
    if plan.n_features:
        definitions = {str(y): feature_definitions(model.features, y) for y in plan.years}
        cstore.add_layers(cube, SEASON_FEATURES, plan.years, plan.n_features, like=like, layer_dim="feature",
                          overwrite=not manifest.done(), attrs={
                              **common, "long_name": "season feature vector the crop type was mapped from",
                              "feature_names": list(model.feature_names),
                              "feature_definitions": definitions,
                              "comment": "NaN: no valid observation of the pixel in the season"})
    return manifest


def label_features(cube: Any) -> Any:
    """``season_features`` of an opened cube (:func:`cluster.open_cube`) with the feature
    names on its ``feature`` axis: ``label_features(ds).sel(feature="ndvi_peak_value")``."""
    da = cube[SEASON_FEATURES]
    return da.assign_coords(feature=list(da.attrs["feature_names"]))


def _smooth(probs: np.ndarray, seen: np.ndarray, k: int) -> np.ndarray:
    """Mean class probabilities over k x k windows of classified pixels (``(y, x, K)``)."""
    from scipy.ndimage import uniform_filter

    w = seen.astype(np.float32)
    den = uniform_filter(w, size=k, mode="nearest")
    out = np.empty_like(probs)
    for c in range(probs.shape[2]):
        num = uniform_filter(probs[:, :, c] * w, size=k, mode="nearest")
        out[:, :, c] = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return out


def _parcel_codes(plan: PredictPlan, parcels_file: VectorSource | None, task: TileTask,
                  shape: tuple[int, int]) -> np.ndarray | None:
    """Per pixel of the tile, the row of its parcel among those read for it (-1: none)."""
    if parcels_file is None or plan.parcels is None:
        return None
    from pyproj import Transformer

    from cluster.regions import rasterize_window, to_grid_crs

    grid = plan.extent.grid
    transform = grid.tile_transform(task.tile)
    left, top = transform.c, transform.f
    right, bottom = left + shape[1] * transform.a, top + shape[0] * transform.e
    to_file = Transformer.from_crs(grid.pyproj_crs, plan.parcels.crs, always_xy=True)
    bbox = to_file.transform_bounds(left, bottom, right, top, densify_pts=21)
    parcels = parcels_file.read(bbox)
    if parcels.empty:
        return np.full(shape, -1, np.int32)
    parcels = parcels[parcels.geom_type.isin(["Polygon", "MultiPolygon"])]
    parcels = to_grid_crs(parcels.assign(region_id=np.arange(len(parcels)).astype(str)), grid.crs)
    codes, _ = rasterize_window(parcels.reset_index(drop=True), transform, shape)
    return codes


def _parcel_vote(probs: np.ndarray, seen: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``probs`` (pixels, classes) with every parcel's seen pixels set to the parcel's mean."""
    inside = seen & (codes >= 0)
    if not inside.any():
        return probs
    _, idx = np.unique(codes[inside], return_inverse=True)
    n = np.bincount(idx).astype(np.float64)
    mean = np.stack([np.bincount(idx, weights=probs[inside, c]) for c in range(probs.shape[1])], axis=1) / n[:, None]
    out = probs.copy()
    out[inside] = mean[idx].astype(probs.dtype)
    return out


class PredictWorker:
    """Loads the model once per actor; reads, featurises, classifies and writes tiles."""

    def __init__(self, plan: PredictPlan) -> None:
        self.plan = plan
        self.model = CropModel.load(plan.model, plan.store.storage_options)
        self.parcels = plan.parcels.source(plan.store.storage_options) if plan.parcels else None
        self._group: zarr.Group | None = None
        threads = os.environ.get("OMP_NUM_THREADS")  # Ray sets it to the actor's num_cpus
        self.threads = int(threads) if threads and threads.isdigit() else 0

    def process(self, task: TileTask) -> TileResult:
        t_start = time.perf_counter()
        plan = self.plan
        if self._group is None:
            self._group = cstore.open_group(plan.store, mode="r+")
        group = self._group
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        values = {b: cstore.read_tile_decoded(group, name, plan.extent, task.tile) for b, name in plan.bands.items()}
        timings["read"] = time.perf_counter() - t0
        nt, ny, nx = next(iter(values.values())).shape
        codes = _parcel_codes(plan, self.parcels, task, (ny, nx))
        crop = np.full((nt, ny, nx), FILL, dtype=np.uint8)
        prob = np.full((nt, ny, nx), FILL, dtype=np.uint8)
        result = TileResult(task.tile.id, "done", pid=os.getpid())
        dates = np.asarray(plan.dates, dtype="datetime64[ns]")
        timings["features"] = timings["predict"] = 0.0
        mapped = 0
        feats = (np.full((len(plan.years), plan.n_features, ny * nx), np.nan, dtype=np.float32)
                 if plan.n_features else None)
        for k, (year, steps) in enumerate(zip(plan.years, plan.season_steps, strict=True)):
            sel = list(steps)
            flat = {b: v[sel].reshape(len(sel), ny * nx) for b, v in values.items()}
            seen = np.zeros(ny * nx, dtype=bool)
            for v in flat.values():
                seen |= (~np.isnan(v)).any(axis=0)
            todo = np.flatnonzero(seen)
            if todo.size == 0:
                continue
            probs = np.zeros((ny * nx, len(plan.classes)), dtype=np.float32)
            for start in range(0, todo.size, _CHUNK_PX):
                part = todo[start:start + _CHUNK_PX]
                t0 = time.perf_counter()
                fm = season_features({b: v[:, part] for b, v in flat.items()}, dates[sel], self.model.features, year)
                timings["features"] += time.perf_counter() - t0
                if feats is not None:
                    feats[k][:, part] = fm.values.T
                t0 = time.perf_counter()
                probs[part] = self.model.predict_proba(fm.values, threads=self.threads)
                timings["predict"] += time.perf_counter() - t0
            own = probs
            if plan.smooth_px > 1:
                probs = _smooth(probs.reshape(ny, nx, -1), seen.reshape(ny, nx), plan.smooth_px).reshape(ny * nx, -1)
            if codes is not None:  # parcels vote on their pixels' own probabilities, not smoothed ones
                voted = _parcel_vote(own, seen, codes.ravel())
                probs = np.where((codes.ravel() >= 0)[:, None], voted, probs)
            cls = np.where(seen, np.argmax(probs, axis=1), FILL).astype(np.uint8)
            pct = np.where(seen, np.round(100 * probs.max(axis=1)), FILL).astype(np.uint8)
            mapped += int(todo.size)
            crop[sel] = cls.reshape(ny, nx)[None]
            prob[sel] = pct.reshape(ny, nx)[None]
        t0 = time.perf_counter()
        if mapped:
            written = {}
            blocks: list[tuple[str, np.ndarray]] = [(CROP_TYPE, crop), (CROP_PROBABILITY, prob)]
            if feats is not None:
                blocks.append((SEASON_FEATURES, feats.reshape(len(plan.years), plan.n_features, ny, nx)))
            for name, block in blocks:
                written[name] = cstore.write_tile(group, name, plan.extent, task.tile, block, plan.store)
                result.bytes_written += written[name].nbytes
            result.record = cstore.checksum_record(written)
        else:
            result.status = "empty"
        timings["encode_write"] = time.perf_counter() - t0
        result.pixels = nt * ny * nx
        result.timings_s = timings
        result.seconds = time.perf_counter() - t_start
        return result
