"""A seeded, procedural demo season: Sentinel-2-like scenes, regions, yields and the truth.

``make_demo_season(out_dir, DemoSpec())`` writes everything a full run needs, with no
download, at any size from a unit test to a benchmark of hundreds of megapixels::

    out_dir/
      scenes/DEMO_<epsg>_<YYYY-MM-DD>.tif   one per UTM zone per date (EPSG:32641, EPSG:32642)
      inputs/regions.geojson                region polygons (EPSG:4326): region_id, name, parent
      inputs/yield_history.csv              region_id, year, crop, yield_t_ha,
                                            harvested_area_ha, production_t; all seasons but the last
      inputs/crop_calendar.csv              region_id, crop, sos_doy, eos_doy
      inputs/field_labels.gpkg              a field survey: field_id, crop_surveyed for a seeded
                                            share of the fields (training labels); EPSG:6933
      inputs/parcels.gpkg                   every field's boundary and field_id, no crop (a
                                            parcel register such as LPIS); EPSG:6933
      truth/crop_type.tif                   uint8 crop codes on the demo grid (EPSG:6933)
      truth/crop_classes.json               {"1": "wheat", ...}
      truth/fields.gpkg                     field polygons (EPSG:6933) with their crop
      truth/yields.csv                      as yield_history, every season
      inputs/weather.csv                    region_id, date, variable, value: daily tmin and
                                            tmax (deg C) and prec (mm) per region, every year
      truth/weather.csv                     the per (region, year) weather anomaly
      demo_spec.json                        the spec that made it

Nothing in the pipeline may read ``truth/``: it is for tests and the demo's self-check.

Scenes
    Six uint16 bands: ``blue, green, red, nir, swir16`` as Sentinel-2 L2A DN
    (reflectance = DN * 0.0001 - 0.1; the scale and offset are in the band metadata),
    then ``scl``, a Sentinel-2 scene classification (0 no data, 3 cloud shadow,
    4 vegetation, 5 bare soil, 8 cloud medium probability, 9 cloud high probability).
    Nodata is 0 in every band. Each scene covers the AOI's part in its UTM zone plus
    ``OVERLAP_M`` past the zone edge, on a pixel grid aligned to multiples of the pixel
    size; both zones share the acquisition dates (one satellite pass spans the zone
    boundary) and the same clouds where they overlap.

The world model
    Fields are a jittered lattice of about ``field_size_m`` on the ground, defined in
    EPSG:6933. Each field's crop is a seeded hash of its id and **stays the same every
    year** (so one crop map labels every season of the cube). Each crop has a
    double-logistic NDVI curve (:data:`cluster.demo.world.CROPS`); a field shifts it by a
    few days and scales it a little. A per (region, year) weather anomaly scales the
    seasonal rise of every crop's NDVI in that region-year *and* that region-year's yields:
    ``yield = base(crop) * (1 + 0.012 (year - first year)) * (1 + 0.12 anomaly) * (1 + 0.04 noise)``.
    Reflectances mix a soil and a canopy spectrum with the cover fraction that gives the
    curve's NDVI, so NDVI, EVI, NDWI... agree; then pixel noise, clouds, shadows and a thin
    no-data strip at the scene's outer edge (a swath edge) are added.

Every pixel is a pure function of (seed, field id, region, year, date, pixel position), so
scenes are computed and written window by window (``block_px``): memory stays bounded and
any window can be computed independently of the rest.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from pyproj import Geod, Transformer
from rasterio.windows import Window

from cluster.demo import world as _m
from cluster.errors import ConfigError
from cluster.grid import BBox, GridSpec

if TYPE_CHECKING:
    import pandas as pd  # for annotations; the functions import it where they use it

__all__ = [
    "DEMO_CRS",
    "CROP_CLASSES",
    "YIELD_CROPS",
    "SCENE_BANDS",
    "DN_SCALE",
    "DN_OFFSET",
    "SCL_CLEAR",
    "SCL_MASKED",
    "DemoSpec",
    "DemoScene",
    "DemoSeason",
    "plan_demo_scenes",
    "make_demo_season",
]

DEMO_CRS = "EPSG:6933"
"""The demo grid's CRS (equal-area; the project's default grid) and the CRS the world
model (fields, regions, clouds) is defined in."""

CROP_CLASSES: dict[int, str] = {c.code: c.name for c in _m.CROPS}
"""Crop codes of ``truth/crop_type.tif``; 0 is no data."""

YIELD_CROPS: tuple[str, ...] = tuple(c.name for c in _m.CROPS if c.base_yield_t_ha is not None)
"""Crops with a harvest (fallow and grassland have none)."""

SCENE_BANDS: tuple[str, ...] = (*_m.BAND_NAMES, "scl")
"""Band descriptions of every scene, in file order (band index = position + 1)."""

DN_SCALE = 0.0001
DN_OFFSET = -0.1
"""Reflectance = DN * DN_SCALE + DN_OFFSET (Sentinel-2 L2A since processing baseline 04.00)."""

SCL_NODATA, SCL_SHADOW, SCL_VEGETATION, SCL_BARE, SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH = 0, 3, 4, 5, 8, 9
SCL_CLEAR: tuple[int, ...] = (SCL_VEGETATION, SCL_BARE)
"""SCL values of clear land pixels; every other value should be masked."""
SCL_MASKED: tuple[int, ...] = (SCL_NODATA, SCL_SHADOW, SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH)
"""The SCL values the demo writes that are not clear land."""

OVERLAP_M = 1000.0
"""How far each zone's scenes reach past the UTM zone edge (metres on the ground)."""

FIRST_DOY, LAST_DOY = 116, 276
"""First and last acquisition day of year: late April to early October."""

_OVERPASS_UTC = "06:30:00"  # Sentinel-2 passes 10:30 local solar time; 66 E is UTC+4:24
_MAX_FIELDS = 200_000
_GENERATOR_VERSION = 1
"""Bump when the generated pixels change; recorded in demo_spec.json."""


# --------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoSpec:
    """What demo season to generate. Equal specs give byte-identical files.

    Example:
        >>> spec = DemoSpec(width_km=4.0, height_km=3.0, years=(2024, 2025), dates_per_season=4)
        >>> [s.epsg for s in plan_demo_scenes(spec)]
        [32641, 32642]
        >>> g = spec.grid()
        >>> (g.crs, g.pixel_size, g.tile_size_px)
        ('EPSG:6933', 20.0, 256)
    """

    seed: int = 7
    """Seeds every random choice: fields, crops, weather, clouds, noise."""
    width_km: float = 12.0
    """AOI width on the ground (east-west, at ``center_lat``)."""
    height_km: float = 8.0
    """AOI height on the ground (north-south)."""
    pixel_size_m: float = 20.0
    """Scene pixel size (UTM metres) and the demo grid's pixel size (EPSG:6933 units)."""
    years: tuple[int, ...] = (2020, 2021, 2022, 2023, 2024, 2025)
    """Seasons, ascending; the last one is "this season", left out of yield_history.csv."""
    dates_per_season: int = 10
    """Acquisitions per season per UTM zone, evenly spaced from DOY 116 to DOY 276
    (~every 18 days for 10)."""
    center_lon: float = 66.0
    """AOI centre longitude; 66 E is the boundary between UTM zones 41N and 42N, so the
    default AOI gives scenes in two CRSs."""
    center_lat: float = 52.0
    """AOI centre latitude (the Kazakh wheat belt)."""
    field_size_m: float = 400.0
    """Nominal field side on the ground; fields vary from ~0.4x to ~1.6x of it."""
    regions_x: int = 2
    regions_y: int = 2
    """Region polygons: ``regions_x * regions_y`` rectangles over the AOI. The western
    half of the columns belongs to country ``KZ``, the eastern half to the fictional
    country ``QZ`` (with one column: the northern half of the rows is ``KZ``)."""
    cloud_fraction: float = 0.08
    """Mean cloud cover per acquisition; ~30 % of dates are clear, the rest vary."""
    block_px: int = 512
    """Window side in pixels for computing and writing; bounds memory (~200 B per window
    pixel, ~50 MB at 512). A multiple of 256 (the files' tile size) keeps writes whole-tile."""
    survey_fraction: float = 0.4
    """Share of the fields whose crop the field survey (``inputs/field_labels.gpkg``) gives:
    training labels; the other fields are held out to check the crop map."""
    cog: bool = True
    """True: write Cloud-Optimized GeoTIFFs (driver ``COG``, via a tiled temporary file
    copied once). False: write tiled, deflated GeoTIFFs in place (faster, same pixels)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "years", tuple(int(y) for y in self.years))
        checks: list[tuple[bool, str]] = [
            (self.width_km > 0 and self.height_km > 0,
             f"width_km and height_km must be > 0, got {self.width_km!r} x {self.height_km!r}"),
            (self.pixel_size_m > 0 and math.isfinite(self.pixel_size_m),
             f"pixel_size_m must be a positive number, got {self.pixel_size_m!r}"),
            (len(self.years) >= 1 and list(self.years) == sorted(set(self.years)),
             f"years must be non-empty, ascending and unique, got {self.years!r}"),
            (int(self.dates_per_season) == self.dates_per_season and self.dates_per_season >= 1,
             f"dates_per_season must be an integer >= 1, got {self.dates_per_season!r}"),
            (-180.0 < self.center_lon < 180.0 and -80.0 < self.center_lat < 84.0,
             f"center ({self.center_lon!r}, {self.center_lat!r}) must be within lon (-180, 180) "
             "and lat (-80, 84), where UTM is defined"),
            (self.field_size_m >= 2 * self.pixel_size_m,
             f"field_size_m must be at least two pixels ({2 * self.pixel_size_m!r}), "
             f"got {self.field_size_m!r}"),
            (self.regions_x >= 1 and self.regions_y >= 1,
             f"regions_x and regions_y must be >= 1, got {self.regions_x!r} x {self.regions_y!r}"),
            (0.0 < self.survey_fraction <= 1.0,
             f"survey_fraction must be in (0, 1], got {self.survey_fraction!r}"),
            (0.0 <= self.cloud_fraction <= 0.6,
             f"cloud_fraction must be in [0, 0.6], got {self.cloud_fraction!r}"),
            (int(self.block_px) == self.block_px and self.block_px >= 16,
             f"block_px must be an integer >= 16, got {self.block_px!r}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"bad DemoSpec: {msg}; fix the value and retry")
        if self.width_km * 1000.0 / self.pixel_size_m < self.regions_x or (
            self.height_km * 1000.0 / self.pixel_size_m < self.regions_y
        ):
            raise ConfigError(
                f"bad DemoSpec: an AOI of {self.width_km!r} x {self.height_km!r} km cannot hold "
                f"{self.regions_x!r} x {self.regions_y!r} regions of at least one pixel; "
                "make it larger or use fewer regions"
            )

    def grid(self) -> GridSpec:
        """The demo grid: EPSG:6933 at ``pixel_size_m``, 256-pixel tiles."""
        return GridSpec(DEMO_CRS, pixel_size=self.pixel_size_m, tile_size_px=256)

    def replace(self, **changes: Any) -> "DemoSpec":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def for_benchmark(cls, megapixels: float = 300.0, **changes: Any) -> "DemoSpec":
        """A spec whose scenes hold about ``megapixels`` million pixels in all (each pixel
        has 6 uint16 bands, so ~12 MB per megapixel uncompressed); the AOI keeps the
        default 3:2 aspect and is scaled to fit, every other field is as given.

        Example:
            >>> spec = DemoSpec.for_benchmark(300)
            >>> round(spec.scene_megapixels() / 300, 1)
            1.0
        """
        if not megapixels > 0:
            raise ConfigError(f"for_benchmark: megapixels must be > 0, got {megapixels!r}")
        spec = cls(**changes)
        for _ in range(4):
            ratio = megapixels / spec.scene_megapixels()
            if abs(ratio - 1.0) < 0.005:
                break
            k = math.sqrt(ratio)
            spec = spec.replace(width_km=spec.width_km * k, height_km=spec.height_km * k)
        return spec

    def scene_megapixels(self) -> float:
        """Million pixels (per band) in all the scenes this spec writes."""
        per_date = sum(s.width * s.height for s in plan_demo_scenes(self))
        return per_date * len(self.years) * self.dates_per_season / 1e6

    def acquisition_dates(self) -> tuple[dt.date, ...]:
        """Every acquisition date, season by season (shared by all UTM zones)."""
        return tuple(d for y in self.years for d in _season_dates(y, self.dates_per_season))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["years"] = list(self.years)
        return d


def _season_dates(year: int, n: int) -> list[dt.date]:
    doys = [0.5 * (FIRST_DOY + LAST_DOY)] if n == 1 else np.linspace(FIRST_DOY, LAST_DOY, n)
    return [dt.date(year, 1, 1) + dt.timedelta(days=int(round(d)) - 1) for d in doys]


# --------------------------------------------------------------------------------------
# Planning: AOI, regions, scene grids (no pixels)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoScene:
    """The pixel grid of one UTM zone's scenes (the same on every date)."""

    zone: int
    epsg: int
    left: float
    top: float
    width: int
    height: int
    pixel_size: float
    nodata_edge: str
    """Which edge carries the thin no-data strip: ``"west"`` or ``"east"`` (away from the
    zone overlap, as a swath edge would be)."""

    @property
    def crs(self) -> str:
        return f"EPSG:{self.epsg}"

    @property
    def transform(self) -> Affine:
        return Affine(self.pixel_size, 0.0, self.left, 0.0, -self.pixel_size, self.top)

    @property
    def bounds(self) -> BBox:
        return BBox(self.left, self.top - self.height * self.pixel_size,
                    self.left + self.width * self.pixel_size, self.top)

    def path(self, root: Path, date: dt.date) -> Path:
        return root / "scenes" / f"DEMO_{self.epsg}_{date.isoformat()}.tif"


@dataclass(frozen=True)
class _Region:
    index: int
    region_id: str
    parent: str
    bounds: BBox  # EPSG:6933


class _World:
    """Everything derived from a spec that the pixel model needs (cheap to build)."""

    def __init__(self, spec: DemoSpec) -> None:
        self.spec = spec
        self.seed = int(spec.seed)
        ps = spec.pixel_size_m
        to_grid = Transformer.from_crs("EPSG:4326", DEMO_CRS, always_xy=True)
        xc, yc = to_grid.transform(spec.center_lon, spec.center_lat)
        self.kx, self.ky = _grid_units_per_ground_m(spec.center_lon, spec.center_lat)
        nx = max(spec.regions_x, round(spec.width_km * 1000.0 * self.kx / ps))
        ny = max(spec.regions_y, round(spec.height_km * 1000.0 * self.ky / ps))
        left = round((xc - 0.5 * nx * ps) / ps) * ps
        top = round((yc + 0.5 * ny * ps) / ps) * ps
        self.shape = (ny, nx)
        self.transform = Affine(ps, 0.0, left, 0.0, -ps, top)
        self.bounds = BBox(left, top - ny * ps, left + nx * ps, top)
        self.x_edges = np.array([left + round(k * nx / spec.regions_x) * ps for k in range(spec.regions_x + 1)])
        self.y_edges = np.array([top - round(k * ny / spec.regions_y) * ps for k in range(spec.regions_y + 1)])
        self.lattice = _m.FieldLattice(self.seed, spec.field_size_m * self.kx, spec.field_size_m * self.ky)
        self.regions = self._make_regions()
        nreg = len(self.regions)
        years = np.array(spec.years)
        r = np.arange(nreg)
        self.region_shift = (2.0 * _m.uniform(self.seed, _m.TAG_REGION, r, 0) - 1.0) * 3.0
        common = _m.normal(self.seed, _m.TAG_YEAR, years)[:, None]
        own = _m.normal(self.seed, _m.TAG_REGION_YEAR, r[None, :], years[:, None], 0)
        self.anomaly = np.clip(0.6 * common + 0.8 * own, -2.5, 2.5)  # (year, region)
        self.peak_factor = np.clip(1.0 + 0.08 * self.anomaly, 0.75, 1.2)
        self.year_shift = (2.0 * _m.uniform(self.seed, _m.TAG_REGION_YEAR, r[None, :], years[:, None], 1) - 1.0) * 4.0

    def _make_regions(self) -> list[_Region]:
        s = self.spec
        out: list[_Region] = []
        counters: dict[str, int] = {}
        for ry in range(s.regions_y):
            for rx in range(s.regions_x):
                if s.regions_x >= 2:
                    parent = "KZ" if rx < (s.regions_x + 1) // 2 else "QZ"
                else:
                    parent = "KZ" if ry < (s.regions_y + 1) // 2 else "QZ"
                counters[parent] = counters.get(parent, 0) + 1
                b = BBox(float(self.x_edges[rx]), float(self.y_edges[ry + 1]),
                         float(self.x_edges[rx + 1]), float(self.y_edges[ry]))
                out.append(_Region(ry * s.regions_x + rx, f"{parent}-{counters[parent]:02d}", parent, b))
        return out

    def region_of(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Region index of each point (pixel-centre rule); points outside the AOI get the
        nearest region (their weather), though no region polygon holds them."""
        rx = np.searchsorted(self.x_edges[1:-1], x, side="right")
        ry = np.searchsorted(-self.y_edges[1:-1], -y, side="left")
        return (ry * self.spec.regions_x + rx).astype(np.int64)


def _grid_units_per_ground_m(lon: float, lat: float) -> tuple[float, float]:
    """EPSG:6933 units per ground metre east-west and north-south at (lon, lat)."""
    geod = Geod(ellps="WGS84")
    t = Transformer.from_crs("EPSG:4326", DEMO_CRS, always_xy=True)
    d = 0.01
    x0, y0 = t.transform(lon - d, lat)
    x1, _ = t.transform(lon + d, lat)
    _, _, ew = geod.inv(lon - d, lat, lon + d, lat)
    _, ya = t.transform(lon, lat - d)
    _, yb = t.transform(lon, lat + d)
    _, _, ns = geod.inv(lon, lat - d, lon, lat + d)
    return abs(x1 - x0) / ew, abs(yb - ya) / ns


def _utm_zone(lon: float) -> int:
    return int(math.floor((lon + 180.0) / 6.0)) % 60 + 1


def plan_demo_scenes(spec: DemoSpec) -> tuple[DemoScene, ...]:
    """The scene grid of every UTM zone the AOI touches (west to east), reading nothing.

    Each covers the AOI's part in its zone plus ``OVERLAP_M`` past the zone edges, snapped
    outwards to whole pixels on multiples of ``pixel_size_m``.
    """
    w = _World(spec)
    to_ll = Transformer.from_crs(DEMO_CRS, "EPSG:4326", always_xy=True)
    b = w.bounds
    (lon0, lon1), (lat0, lat1) = to_ll.transform([b.left, b.right], [b.top, b.bottom])
    if not (-180.0 <= lon0 < lon1 <= 180.0):
        raise ConfigError(
            f"bad DemoSpec: the AOI spans longitudes {lon0!r}..{lon1!r}, across the antimeridian; "
            "move center_lon or make width_km smaller"
        )
    lat_lo, lat_hi = min(lat0, lat1), max(lat0, lat1)
    dlon = OVERLAP_M / (111_320.0 * math.cos(math.radians(spec.center_lat)))
    zones = range(_utm_zone(lon0), _utm_zone(lon1 - 1e-9) + 1)
    ps = spec.pixel_size_m
    out: list[DemoScene] = []
    for k, zone in enumerate(zones):
        zw = -180.0 + (zone - 1) * 6.0
        a, c = max(lon0, zw - dlon), min(lon1, zw + 6.0 + dlon)
        epsg = (32600 if spec.center_lat >= 0 else 32700) + zone
        t = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
        n = 64
        lons = np.concatenate([np.linspace(a, c, n), np.full(n, c), np.linspace(c, a, n), np.full(n, a)])
        lats = np.concatenate([np.full(n, lat_lo), np.linspace(lat_lo, lat_hi, n), np.full(n, lat_hi),
                               np.linspace(lat_hi, lat_lo, n)])
        xs, ys = t.transform(lons, lats)
        left = math.floor(min(xs) / ps) * ps
        right = math.ceil(max(xs) / ps) * ps
        bottom = math.floor(min(ys) / ps) * ps
        top = math.ceil(max(ys) / ps) * ps
        edge = "east" if (k == len(zones) - 1 and len(zones) > 1) else "west"
        out.append(DemoScene(zone, epsg, float(left), float(top), int(round((right - left) / ps)),
                             int(round((top - bottom) / ps)), ps, edge))
    return tuple(out)


# --------------------------------------------------------------------------------------
# The pixel model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Acquisition:
    year_index: int
    date: dt.date
    cover: float
    threshold: float

    @property
    def key(self) -> int:
        return self.date.toordinal()

    @property
    def doy(self) -> int:
        return self.date.timetuple().tm_yday


def _acquisitions(w: _World) -> list[_Acquisition]:
    s = w.spec
    out = []
    for yi, year in enumerate(s.years):
        for d in _season_dates(year, s.dates_per_season):
            key = d.toordinal()
            u_clear, u_amount = (float(_m.uniform(w.seed, _m.TAG_COVER, key, k)[0]) for k in range(2))
            cover = 0.0
            if s.cloud_fraction > 0 and u_clear >= 0.3:
                cover = min(0.75, s.cloud_fraction / 0.7 * -math.log1p(-u_amount))
            out.append(_Acquisition(yi, d, cover, _m.cloud_threshold(cover)))
    return out


_SHADOW_M = 650.0
"""Cloud-to-shadow distance on the ground. Shadows fall away from the sun (azimuth ~145
deg at a 10:30 overpass): a point is shadowed when a cloud lies this far to its south-east.
Fixed, so the shadow geometry of a window is computed once for all dates."""


class _WindowModel:
    """The part of the model that depends on position only, for one window of one scene;
    computed once and reused for every date."""

    def __init__(self, w: _World, scene: DemoScene, win: Window, to_grid: Transformer) -> None:
        self.w = w
        self.scene = scene
        self.win = win
        h, wd = int(win.height), int(win.width)
        ps = scene.pixel_size
        self.rows = int(win.row_off) + np.arange(h)
        self.cols = int(win.col_off) + np.arange(wd)
        xs = scene.left + (self.cols + 0.5) * ps
        ys = scene.top - (self.rows + 0.5) * ps
        xx, yy = np.meshgrid(xs, ys)
        gx, gy = to_grid.transform(xx.ravel(), yy.ravel())
        self.x = np.asarray(gx).reshape(h, wd)
        self.y = np.asarray(gy).reshape(h, wd)
        i, j = w.lattice.locate(self.x, self.y)
        fid = _m.FieldLattice.field_id(i, j)
        reg = w.region_of(self.x, self.y)
        nreg = len(w.regions)
        ufid, finv = np.unique(fid, return_inverse=True)
        combo = finv.reshape(h, wd).astype(np.int64) * nreg + reg
        ucombo, cinv = np.unique(combo, return_inverse=True)
        self.cinv = cinv.reshape(h, wd)
        cf, self.c_region = ucombo // nreg, ucombo % nreg
        f = ufid[cf]
        self.c_crop = _m.crop_of_fields(w.seed, f)
        self.c_shift = (2.0 * _m.uniform(w.seed, _m.TAG_FIELD, f, 0) - 1.0) * 6.0 + w.region_shift[self.c_region]
        self.c_amp = 0.92 + 0.14 * _m.uniform(w.seed, _m.TAG_FIELD, f, 1)
        c_bright = 0.85 + 0.30 * _m.uniform(w.seed, _m.TAG_FIELD, f, 2)
        self.bright = c_bright.astype(np.float32)[self.cinv]
        # absolute pixel indices in the UTM CRS, for the pixel noise
        self.abs_rows = int(round(scene.top / ps)) - self.rows
        self.abs_cols = int(round(scene.left / ps)) + self.cols
        self._stencils: tuple[list[_m.NoiseStencil], list[_m.NoiseStencil]] | None = None

    def stencils(self) -> tuple[list[_m.NoiseStencil], list[_m.NoiseStencil]]:
        """Cloud-noise stencils at each pixel and at its shadow-casting point (lazy: clear
        seasons never need them)."""
        if self._stencils is None:
            az = math.radians(145.0)
            dx, dy = _SHADOW_M * math.sin(az) * self.w.kx, _SHADOW_M * math.cos(az) * self.w.ky
            self._stencils = (_m.cloud_stencils(self.x, self.y), _m.cloud_stencils(self.x + dx, self.y + dy))
        return self._stencils

    def _noise(self, offset: np.ndarray) -> np.ndarray:
        """Pixel noise (standard normal, float32) read from the seed's table at a hashed
        offset: a pure function of the absolute pixel position and the offset."""
        ext = _m.noise_table_wrapped(self.w.seed)
        nt = ext.shape[0] // 2
        oy = int(offset[0] % np.uint64(nt))
        ox = int((offset[0] >> np.uint64(32)) % np.uint64(nt))
        # Table row = -(absolute northing index): increases by one per window row.
        r0 = (oy - int(self.abs_rows[0])) % nt
        c0 = (ox + int(self.abs_cols[0])) % nt
        h, wd = self.cinv.shape
        if h <= nt and wd <= nt:
            return ext[r0:r0 + h, c0:c0 + wd]
        wrapped: np.ndarray = ext[((r0 + np.arange(h)) % nt)[:, None], ((c0 + np.arange(wd)) % nt)[None, :]]
        return wrapped

    def render(self, acq: _Acquisition) -> np.ndarray:
        """The ``(6, h, w)`` uint16 pixels of this window on one date."""
        w, s = self.w, self.scene
        yi = acq.year_index
        t = acq.doy - self.c_shift - w.year_shift[yi, self.c_region]
        ndvi = _m.ndvi_curve(self.c_crop, t, self.c_amp * w.peak_factor[yi, self.c_region])
        # Rounded so that a last-bit difference of a vectorised exp() (SIMD body vs tail of
        # arrays of different lengths) can never change a pixel between window sizes.
        ndvi = np.round(ndvi, 6)
        fc = _m.fc_from_ndvi(ndvi).astype(np.float32)[self.cinv]
        soil_w = self.bright * (np.float32(1.0) - fc)
        offs = _m.hash_u64(w.seed, _m.TAG_NOISE, s.epsg, acq.key, np.arange(6))
        common = np.float32(1.0) + np.float32(0.012) * self._noise(offs[5:6])
        refl = np.empty((5, *fc.shape), dtype=np.float32)
        tmp = np.empty_like(fc)
        for b in range(5):
            r = refl[b]
            np.multiply(soil_w, np.float32(_m.SOIL[b]), out=r)
            np.multiply(fc, np.float32(_m.VEGETATION[b]), out=tmp)
            r += tmp
            np.multiply(self._noise(offs[b:b + 1]), np.float32(0.018), out=tmp)
            tmp += common
            r *= tmp
        nd = (refl[3] - refl[2]) / (refl[3] + refl[2])
        scl = np.where(nd > 0.3, SCL_VEGETATION, SCL_BARE).astype(np.uint16)
        if acq.cover > 0.0:
            here, there = self.stencils()
            d = _m.cloud_density(w.seed, acq.key, stencils=here)
            cloudy = d > acq.threshold
            shadow = _m.cloud_density(w.seed, acq.key, stencils=there) > acq.threshold
            shadow &= ~cloudy
            idx = np.flatnonzero(cloudy)
            # Opacity jumps to 0.45 at the cloud edge: SCL flags exactly the bright pixels.
            a = np.float32(0.45) + np.float32(0.55) * np.clip(
                (d.ravel()[idx] - np.float32(acq.threshold)) / np.float32(0.06), 0.0, 1.0
            ).astype(np.float32)
            sidx = np.flatnonzero(shadow)
            flat = refl.reshape(5, -1)
            for b in range(5):
                flat[b, idx] = (np.float32(1.0) - a) * flat[b, idx] + a * np.float32(_m.CLOUD[b])
                flat[b, sidx] *= np.float32(0.45)
            scl_flat = scl.reshape(-1)
            scl_flat[sidx] = SCL_SHADOW
            scl_flat[idx] = np.where(a >= 0.85, SCL_CLOUD_HIGH, SCL_CLOUD_MEDIUM)
        out = np.empty((6, *fc.shape), dtype=np.uint16)
        # DN = round((reflectance + 0.1) * 10000); reflectance >= 0 here, so DN >= 1000 and
        # adding 0.5 then truncating rounds.
        refl *= np.float32(10_000.0)
        refl += np.float32(1_000.5)
        np.minimum(refl, np.float32(65_535.0), out=refl)
        out[:5] = refl
        out[5] = scl
        # A thin no-data strip along the outer edge, its width 0-6 px varying along it.
        u0, u1 = _m.uniform(w.seed, _m.TAG_STRIP, s.epsg, acq.key, np.arange(2)) * 6.0
        width = u0 + (u1 - u0) * self.rows / max(1, s.height - 1)
        c = self.cols[None, :] if s.nodata_edge == "west" else (s.width - 1 - self.cols)[None, :]
        out[:, c < width[:, None]] = 0
        return out


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------

_TILE = 256


def _iter_windows(height: int, width: int, block: int) -> Iterator[Window]:
    for r in range(0, height, block):
        for c in range(0, width, block):
            yield Window(c, r, min(block, width - c), min(block, height - r))


def _gtiff_profile(compress: bool) -> dict[str, Any]:
    p: dict[str, Any] = {"driver": "GTiff", "tiled": True, "blockxsize": _TILE, "blockysize": _TILE,
                         "interleave": "pixel", "BIGTIFF": "IF_SAFER"}
    if compress:
        p.update(compress="deflate", zlevel=1)
    return p


def _finish(tmp: Path, dst: Path, cog: bool) -> None:
    if cog:
        # Level 1 and no predictor: noisy imagery compresses only ~1 % better at level 6 and
        # ~15 % better with the predictor, for 1.6x and 1.8x the time (measured, GDAL 3.10).
        rasterio.shutil.copy(tmp, dst, driver="COG", COMPRESS="DEFLATE", LEVEL=1,
                             BLOCKSIZE=_TILE, OVERVIEWS="NONE", BIGTIFF="IF_SAFER")
        tmp.unlink()
    else:
        os.replace(tmp, dst)


def _write_zone(root: Path, w: _World, scene: DemoScene, acqs: list[_Acquisition]) -> list[Path]:
    s = w.spec
    to_grid = Transformer.from_crs(scene.crs, DEMO_CRS, always_xy=True)
    paths = [scene.path(root, a.date) for a in acqs]
    tmps = [p.with_name(f".tmp_{p.name}") for p in paths]
    profile = dict(_gtiff_profile(compress=not s.cog), count=6, dtype="uint16", nodata=0,
                   width=scene.width, height=scene.height, crs=scene.crs, transform=scene.transform)
    dsts = []
    try:
        for tmp, acq in zip(tmps, acqs, strict=True):
            ds = rasterio.open(tmp, "w", **profile)
            dsts.append(ds)
            for b, name in enumerate(SCENE_BANDS, start=1):
                ds.set_band_description(b, name)
            ds.scales = (DN_SCALE,) * 5 + (1.0,)
            ds.offsets = (DN_OFFSET,) * 5 + (0.0,)
            ds.update_tags(
                TIFFTAG_DATETIME=f"{acq.date:%Y:%m:%d} {_OVERPASS_UTC}",
                ACQUISITION_DATE=acq.date.isoformat(),
                PLATFORM="demo (synthetic Sentinel-2 L2A-like)",
                SCL_CLASSES="0 no data, 3 cloud shadow, 4 vegetation, 5 bare soil, "
                "8 cloud medium probability, 9 cloud high probability",
            )
            ds.update_tags(6, CLEAR_VALUES="4,5")
        for win in _iter_windows(scene.height, scene.width, s.block_px):
            model = _WindowModel(w, scene, win, to_grid)
            for ds, acq in zip(dsts, acqs, strict=True):
                ds.write(model.render(acq), window=win)
    finally:
        for ds in dsts:
            ds.close()
    for tmp, p in zip(tmps, paths, strict=True):
        _finish(tmp, p, s.cog)
    return paths


def _write_truth(root: Path, w: _World) -> np.ndarray:
    """Write truth/crop_type.tif; return pixel counts per (region, crop code)."""
    s = w.spec
    ny, nx = w.shape
    counts = np.zeros((len(w.regions), len(CROP_CLASSES) + 1), dtype=np.int64)
    path = root / "truth" / "crop_type.tif"
    tmp = path.with_name(f".tmp_{path.name}")
    ps = s.pixel_size_m
    with rasterio.open(tmp, "w", **_gtiff_profile(compress=not s.cog), count=1, dtype="uint8",
                       nodata=0, width=nx, height=ny, crs=DEMO_CRS, transform=w.transform) as ds:
        ds.set_band_description(1, "crop_type")
        ds.update_tags(CLASSES=json.dumps({str(k): v for k, v in CROP_CLASSES.items()}))
        for win in _iter_windows(ny, nx, s.block_px):
            xs = w.bounds.left + (int(win.col_off) + np.arange(int(win.width)) + 0.5) * ps
            ys = w.bounds.top - (int(win.row_off) + np.arange(int(win.height)) + 0.5) * ps
            xx, yy = np.meshgrid(xs, ys)
            i, j = w.lattice.locate(xx, yy)
            fid = _m.FieldLattice.field_id(i, j)
            ufid, finv = np.unique(fid, return_inverse=True)
            code = _m.crop_of_fields(w.seed, ufid)[finv].reshape(xx.shape)
            reg = w.region_of(xx, yy)
            counts += np.bincount((reg * counts.shape[1] + code).ravel(),
                                  minlength=counts.size).reshape(counts.shape)
            ds.write(code, 1, window=win)
        ds.write_colormap(1, {0: (0, 0, 0, 0), 1: (230, 190, 40, 255), 2: (200, 150, 90, 255),
                              3: (150, 100, 200, 255), 4: (40, 160, 60, 255),
                              5: (150, 120, 90, 255), 6: (150, 210, 120, 255)})
    _finish(tmp, path, s.cog)
    return counts


def _write_tables(root: Path, w: _World, counts: np.ndarray) -> tuple[Path, Path, Path, Path]:
    import pandas as pd

    s = w.spec
    pixel_ha = s.pixel_size_m**2 / 10_000.0  # EPSG:6933 is equal-area: exact
    years = np.array(s.years)
    rows = []
    for crop in _m.CROPS:
        if crop.base_yield_t_ha is None:
            continue
        for reg in w.regions:
            area_ha = round(float(counts[reg.index, crop.code] * pixel_ha), 2)
            if area_ha <= 0:
                continue
            for yi, year in enumerate(s.years):
                noise = float(_m.normal(w.seed, _m.TAG_YIELD, reg.index, year, crop.code)[0])
                trend = 1.0 + 0.012 * (year - int(years[0]))
                y = crop.base_yield_t_ha * trend * (1.0 + 0.12 * w.anomaly[yi, reg.index]) * (1.0 + 0.04 * noise)
                y = round(max(0.1 * crop.base_yield_t_ha, y), 3)
                rows.append({"region_id": reg.region_id, "year": int(year), "crop": crop.name,
                             "yield_t_ha": y, "harvested_area_ha": area_ha,
                             "production_t": round(y * area_ha, 2)})
    cols = ["region_id", "year", "crop", "yield_t_ha", "harvested_area_ha", "production_t"]
    yields = pd.DataFrame(rows, columns=cols).sort_values(["region_id", "crop", "year"], kind="stable")
    truth_yields = root / "truth" / "yields.csv"
    history = root / "inputs" / "yield_history.csv"
    yields.to_csv(truth_yields, index=False)
    yields[yields["year"] < s.years[-1]].to_csv(history, index=False)

    calendar = root / "inputs" / "crop_calendar.csv"
    pd.DataFrame(
        [{"region_id": reg.region_id, "crop": c.name,
          "sos_doy": int(round(c.sos_doy + w.region_shift[reg.index])),
          "eos_doy": int(round(c.eos_doy + w.region_shift[reg.index]))}
         for reg in w.regions for c in _m.CROPS if c.base_yield_t_ha is not None]
    ).to_csv(calendar, index=False)

    pd.DataFrame(
        [{"region_id": reg.region_id, "year": int(year), "anomaly": round(float(w.anomaly[yi, reg.index]), 4),
          "peak_factor": round(float(w.peak_factor[yi, reg.index]), 4)}
         for yi, year in enumerate(s.years) for reg in w.regions]
    ).to_csv(root / "truth" / "weather.csv", index=False)

    _daily_weather(w, s.years).to_csv(root / "inputs" / "weather.csv", index=False)

    classes = root / "truth" / "crop_classes.json"
    classes.write_text(json.dumps({str(k): v for k, v in CROP_CLASSES.items()}, indent=1) + "\n")
    return truth_yields, history, calendar, classes


def _daily_weather(w: _World, years: Sequence[int]) -> pd.DataFrame:
    """Daily tmin, tmax and precipitation per region: a continental climatology (July highs
    near 29 deg C), daily noise, and in the growing season the region-year's weather anomaly
    that also drives its yields: a poor year is hotter (2 deg C per unit) and drier (rain on
    fewer days, and less of it)."""
    import pandas as pd

    parts = []
    for yi, year in enumerate(years):
        days = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")
        doy = days.day_of_year.to_numpy()
        season = np.exp(-(((doy - 185) / 55.0) ** 2))  # May to August
        for reg in w.regions:
            a = float(w.anomaly[yi, reg.index]) * season
            tmax = (12.0 + 17.0 * np.sin(2 * np.pi * (doy - 105) / 365.0) - 2.0 * a
                    + 2.5 * _m.normal(w.seed, _m.TAG_WEATHER, reg.index, year, doy, 0))
            tmin = tmax - 12.0 + 1.5 * _m.normal(w.seed, _m.TAG_WEATHER, reg.index, year, doy, 1)
            wet = _m.uniform(w.seed, _m.TAG_WEATHER, reg.index, year, doy, 2) < np.clip(0.25 * (1 + 0.4 * a), 0.02, 0.6)
            amount = -np.log1p(-_m.uniform(w.seed, _m.TAG_WEATHER, reg.index, year, doy, 3)) * 5.0 * (1 + 0.2 * a)
            for var, v in (("tmin", tmin), ("tmax", tmax), ("prec", np.where(wet, amount, 0.0))):
                parts.append(pd.DataFrame({"region_id": reg.region_id, "date": days.strftime("%Y-%m-%d"),
                                           "variable": var, "value": np.round(v, 2)}))
    return pd.concat(parts, ignore_index=True)


def _write_regions(root: Path, w: _World) -> Path:
    import geopandas as gpd
    from shapely.geometry import box

    to_ll = Transformer.from_crs(DEMO_CRS, "EPSG:4326", always_xy=True)
    # EPSG:6933 is cylindrical: its rectangles are longitude/latitude rectangles, so four
    # corners describe each region exactly.
    geoms, recs = [], []
    for reg in w.regions:
        (x0, x1), (y0, y1) = to_ll.transform([reg.bounds.left, reg.bounds.right],
                                             [reg.bounds.bottom, reg.bounds.top])
        geoms.append(box(x0, y0, x1, y1))
        recs.append({"region_id": reg.region_id, "name": f"Demo {reg.region_id}", "parent": reg.parent})
    gdf = gpd.GeoDataFrame(recs, geometry=geoms, crs="EPSG:4326")
    path = root / "inputs" / "regions.geojson"
    path.unlink(missing_ok=True)
    gdf.to_file(path, driver="GeoJSON")
    return path


def _write_fields(root: Path, w: _World) -> Path | None:
    import geopandas as gpd
    import shapely

    b = w.bounds
    lat = w.lattice
    est = (b.right - b.left) * (b.top - b.bottom) / (lat.cell_x * lat.cell_y)
    path = root / "truth" / "fields.gpkg"
    note = root / "truth" / "fields_SKIPPED.txt"
    path.unlink(missing_ok=True)
    note.unlink(missing_ok=True)
    (root / "inputs" / "field_labels.gpkg").unlink(missing_ok=True)
    (root / "inputs" / "parcels.gpkg").unlink(missing_ok=True)
    if est > _MAX_FIELDS:
        note.write_text(f"truth/fields.gpkg skipped: about {est:.0f} fields (> {_MAX_FIELDS}); "
                        "truth/crop_type.tif holds the same crops per pixel\n")
        return None
    ci = np.arange(math.floor(b.left / lat.cell_x) - 1, math.floor(b.right / lat.cell_x) + 2)
    cj = np.arange(math.floor(b.bottom / lat.cell_y) - 1, math.floor(b.top / lat.cell_y) + 2)
    i, j = (a.ravel() for a in np.meshgrid(ci, cj))
    x0 = np.maximum(lat.col_edge(i), b.left)
    x1 = np.minimum(lat.col_edge(i + 1), b.right)
    y0 = np.maximum(lat.row_edge(i, j), b.bottom)
    y1 = np.minimum(lat.row_edge(i, j + 1), b.top)
    keep = (x1 > x0) & (y1 > y0)
    i, j, x0, x1, y0, y1 = i[keep], j[keep], x0[keep], x1[keep], y0[keep], y1[keep]
    fid = _m.FieldLattice.field_id(i, j)
    code = _m.crop_of_fields(w.seed, fid)
    reg = w.region_of(0.5 * (x0 + x1), 0.5 * (y0 + y1))
    names = np.array(["nodata", *CROP_CLASSES.values()])
    gdf = gpd.GeoDataFrame(
        {"field_id": fid, "col": i, "row": j, "crop_code": code.astype(np.int16), "crop": names[code],
         "area_ha": np.round((x1 - x0) * (y1 - y0) / 10_000.0, 4),
         "region_id": np.array([r.region_id for r in w.regions])[reg]},
        geometry=shapely.box(x0, y0, x1, y1), crs=DEMO_CRS,
    )
    gdf.to_file(path, driver="GPKG", layer="fields")
    # the field survey: the crop of a seeded share of the fields, as a user's training labels
    surveyed = _m.uniform(w.seed, _m.TAG_SURVEY, fid) < w.spec.survey_fraction
    labels = gdf.loc[surveyed, ["field_id", "crop", "geometry"]].rename(columns={"crop": "crop_surveyed"})
    labels.to_file(root / "inputs" / "field_labels.gpkg", driver="GPKG", layer="labels")
    # the parcel register: every field's boundary, without its crop
    gdf[["field_id", "geometry"]].to_file(root / "inputs" / "parcels.gpkg", driver="GPKG", layer="parcels")
    return path


@dataclass(frozen=True)
class DemoSeason:
    """Paths of what :func:`make_demo_season` wrote (and how it was made)."""

    root: Path
    scenes: tuple[Path, ...]
    """Every scene, sorted by date then EPSG code."""
    regions: Path
    yield_history: Path
    crop_calendar: Path
    truth_crop_type: Path
    truth_fields: Path | None
    """None when the AOI holds more than 200 000 fields (a note file says so)."""
    truth_yields: Path
    crop_classes: dict[int, str]
    spec: DemoSpec = field(default_factory=DemoSpec)
    bounds: BBox = BBox(0.0, 0.0, 0.0, 0.0)
    """The AOI in EPSG:6933 (``truth/crop_type.tif`` covers exactly this)."""
    truth_crop_classes: Path | None = None
    truth_weather: Path | None = None
    weather: Path | None = None
    """``inputs/weather.csv``: daily weather per region, a forecast input."""
    field_labels: Path | None = None
    """``inputs/field_labels.gpkg``: the surveyed fields' crops (None when fields are skipped)."""
    parcels: Path | None = None
    """``inputs/parcels.gpkg``: every field's boundary, no crop (None when fields are skipped)."""
    elapsed_s: float = 0.0
    """Wall time the generation took."""

    @cached_property
    def dates(self) -> tuple[dt.date, ...]:
        return self.spec.acquisition_dates()

    def summary(self) -> str:
        """A few lines for a command line to print."""
        s = self.spec
        crs = sorted({p.stem.split("_")[1] for p in self.scenes})
        return (
            f"demo season in {self.root} ({self.elapsed_s:.1f} s)\n"
            f"  scenes: {len(self.scenes)} ({len(s.years)} seasons x {s.dates_per_season} dates x "
            f"{len(crs)} UTM zones: {', '.join('EPSG:' + c for c in crs)}), "
            f"{s.scene_megapixels():.1f} Mpx\n"
            f"  AOI: {s.width_km:.1f} x {s.height_km:.1f} km around ({s.center_lon}, {s.center_lat}); "
            f"grid {DEMO_CRS} at {s.pixel_size_m} m\n"
            f"  inputs: {self.regions.name}, {self.yield_history.name} "
            f"(seasons {s.years[0]}-{s.years[-2] if len(s.years) > 1 else '-'}), "
            f"{self.crop_calendar.name}; truth/ holds the answers (crop map, fields, {s.years[-1]} yields)"
        )


def make_demo_season(out_dir: str | Path, spec: DemoSpec = DemoSpec(), *, max_workers: int | None = None) -> DemoSeason:
    """Generate a demo season under ``out_dir`` (created; files of an earlier run are replaced).

    Args:
        out_dir: Output folder (local path).
        spec: What to generate; equal specs give byte-identical files.
        max_workers: Threads (one per UTM zone at most, plus the truth); default: CPUs.
            GDAL, PROJ and NumPy release the GIL, so zones are written in parallel.

    Returns:
        The paths written, with the spec and the AOI.

    Raises:
        ConfigError: ``spec`` is not a DemoSpec.
    """
    if not isinstance(spec, DemoSpec):
        raise ConfigError(f"make_demo_season: spec must be a DemoSpec, got {type(spec).__name__!r}; "
                          "build one with DemoSpec(...) or DemoSpec.for_benchmark(...)")
    t0 = time.perf_counter()
    root = Path(out_dir)
    for sub in ("scenes", "inputs", "truth"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    w = _World(spec)
    scenes = plan_demo_scenes(spec)
    acqs = _acquisitions(w)
    planned = {sc.path(root, a.date) for sc in scenes for a in acqs}
    for old in (root / "scenes").glob("DEMO_*.tif"):  # stale scenes of another spec
        if old not in planned:
            old.unlink()
    for sub in ("scenes", "truth"):  # temporaries of an interrupted run
        for old in (root / sub).glob(".tmp_*.tif"):
            old.unlink()
    workers = max_workers or min(len(scenes) + 1, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        truth = pool.submit(_write_truth, root, w)
        zones = [pool.submit(_write_zone, root, w, sc, acqs) for sc in scenes]
        counts = truth.result()
        for z in zones:
            z.result()
    truth_yields, history, calendar, classes = _write_tables(root, w, counts)
    regions = _write_regions(root, w)
    fields_path = _write_fields(root, w)
    (root / "demo_spec.json").write_text(json.dumps(
        {"generator_version": _GENERATOR_VERSION, "spec": spec.to_dict(),
         "aoi_bounds_epsg6933": list(w.bounds),
         "scene_crs": [sc.crs for sc in scenes]}, indent=1) + "\n")
    ordered = sorted(planned, key=lambda p: (p.stem.split("_")[2], p.stem))
    return DemoSeason(
        root=root, scenes=tuple(ordered), regions=regions, yield_history=history,
        crop_calendar=calendar, truth_crop_type=root / "truth" / "crop_type.tif",
        truth_fields=fields_path, truth_yields=truth_yields, crop_classes=dict(CROP_CLASSES),
        spec=spec, bounds=w.bounds, truth_crop_classes=classes,
        truth_weather=root / "truth" / "weather.csv", weather=root / "inputs" / "weather.csv",
        field_labels=root / "inputs" / "field_labels.gpkg" if fields_path else None,
        parcels=root / "inputs" / "parcels.gpkg" if fields_path else None,
        elapsed_s=time.perf_counter() - t0,
    )
