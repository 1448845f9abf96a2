"""Scenes: finding them, reading their metadata, and mapping their files to named bands.

A *scene* is one acquisition: a set of band assets (a file and a band index in it) sharing
a date and a footprint. Scenes come from

* paths, globs or URLs of multi-band files (each file is a scene; bands are picked by
  index or by band description), or
* patterns with a ``{band}`` token for one-file-per-band products
  (``CBERS-4_AWFI_{band}_*.tif``): files that differ only in the band token form one scene,
* a STAC ItemCollection JSON file: each item is a scene, each band an asset.

Reading here is metadata only (headers); pixels are read by the ingest workers.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import fsspec
import numpy as np
import rasterio
from pydantic import Field, field_validator, model_validator
from rasterio.warp import transform_bounds

from cluster.config import StrictModel
from cluster.errors import ConfigError, SceneError
from cluster.grid import BBox
from cluster.location import has_protocol, is_remote, local_path, url_protocol

__all__ = [
    "BandSpec",
    "MaskRule",
    "DateRule",
    "SensorPreset",
    "SENSORS",
    "Asset",
    "Scene",
    "RejectedScene",
    "discover_scenes",
    "open_raster",
    "parse_date",
]

Resampling = Literal["nearest", "bilinear", "cubic", "average", "mode", "max", "min", "med"]


class BandSpec(StrictModel):
    """Where one named band lives in a scene and how to turn its DN into physical values."""

    file: str | None = None
    """The ``{band}`` token in one-file-per-band patterns, or the STAC asset key.
    Defaults to the band's own name."""
    index: int | None = Field(default=None, ge=1)
    """1-based band index inside the file (multi-band files). Default 1, or found by
    ``description``."""
    description: str | None = None
    """Pick the band whose GDAL description equals this (e.g. ``'B04'``)."""
    scale: float | None = None
    """Physical value = DN * scale + offset. Default: the file's own scale, else 1."""
    offset: float | None = None
    nodata: float | None = None
    """DN that marks missing pixels. Default: the file's nodata."""
    dtype: str | None = None
    """Storage dtype in the cube. Default: the file's dtype."""
    resampling: Resampling = "nearest"
    """Warp resampling. Nearest keeps DN exact; use bilinear/cubic for smooth reflectance
    when the grid's pixel size differs from the scene's."""
    valid_range: tuple[float, float] | None = None
    """Physical values outside ``[low, high]`` are not data (saturated, corrupt or wrongly
    scaled pixels): left out like nodata, and counted per scene and band in the report, as
    are NaN and infinities. The reflectance presets use ``[-0.2, 1.6]``."""

    @model_validator(mode="after")
    def _check_range(self) -> "BandSpec":
        if self.valid_range is not None and not self.valid_range[0] < self.valid_range[1]:
            raise ValueError(f"valid_range {list(self.valid_range)} must be [low, high] with low < high")
        return self


class MaskRule(StrictModel):
    """Which pixels are clear. Exactly one of ``clear_values``, ``cloud_values`` or
    ``cloud_bits`` is set. Masked pixels become nodata in every band of the cube."""

    band: str
    """Name of the mask/QA band (it must be listed in the band mapping)."""
    clear_values: list[int] | None = None
    """Values that mean clear (e.g. Sentinel-2 SCL 4, 5, 6, 7, 11)."""
    cloud_values: list[int] | None = None
    """Values that mean cloud; all others are clear."""
    cloud_bits: list[int] | None = None
    """Bit positions that flag cloud/shadow (Landsat QA_PIXEL: 1, 2, 3, 4)."""
    store: bool = False
    """Also write the mask band itself into the cube."""

    @model_validator(mode="after")
    def _one_rule(self) -> "MaskRule":
        given = [n for n in ("clear_values", "cloud_values", "cloud_bits") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                f"set exactly one of clear_values, cloud_values, cloud_bits; got {given or 'none'}"
            )
        return self

    def clear(self, values: np.ndarray) -> np.ndarray:
        """Boolean array: True where the mask band says clear."""
        if self.clear_values is not None:
            return np.isin(values, np.asarray(self.clear_values, dtype=values.dtype))
        if self.cloud_values is not None:
            return ~np.isin(values, np.asarray(self.cloud_values, dtype=values.dtype))
        bits = 0
        for b in self.cloud_bits or ():
            bits |= 1 << b
        clear: np.ndarray = (values.astype(np.int64) & bits) == 0
        return clear


class DateRule(StrictModel):
    """How a scene's acquisition date is found."""

    source: Literal["filename", "metadata", "stac", "fixed"] = "filename"
    """``fixed`` gives every scene the date ``value`` (undated files, e.g. a single mosaic)."""
    pattern: str = r"(?P<date>\d{4}-?\d{2}-?\d{2})"
    """Regex searched in the file name; the ``date`` group (or the whole match) is parsed."""
    format: str | None = None
    """strptime format of the matched text; default: ISO ``YYYY-MM-DD`` or ``YYYYMMDD``."""
    tag: str = "TIFFTAG_DATETIME"
    """GDAL metadata tag read when ``source: metadata``."""
    value: dt.date | None = None
    """The date used when ``source: fixed``."""

    @model_validator(mode="after")
    def _fixed_has_value(self) -> "DateRule":
        if (self.source == "fixed") != (self.value is not None):
            raise ValueError("set 'value' (YYYY-MM-DD) exactly when source is 'fixed'")
        return self

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from None
        return v


@dataclass(frozen=True)
class SensorPreset:
    """Band mapping, DN scaling and cloud mask of a common product."""

    bands: Mapping[str, BandSpec]
    mask: MaskRule | None = None
    note: str = ""


def _b(file: str, scale: float | None = None, offset: float | None = None,
       nodata: float | None = None, resampling: Resampling = "nearest",
       valid_range: tuple[float, float] | None = None) -> BandSpec:
    return BandSpec(file=file, scale=scale, offset=offset, nodata=nodata, resampling=resampling,
                    valid_range=valid_range)


# Scale/offset: Sentinel-2 L2A processing baseline >= 04.00 adds BOA_ADD_OFFSET = -1000,
# so reflectance = DN / 10000 - 0.1. Landsat C2 L2: 0.0000275 * DN - 0.2.
# Valid ranges: surface or top-of-atmosphere reflectance beyond [-0.2, 1.6] is an artefact
# (saturation, a corrupt block, a wrong scale), not a surface; MOD13Q1's documented NDVI/EVI
# range is -2000..10000 DN.
_REFLECTANCE = (-0.2, 1.6)
_S2: dict[str, Any] = dict(scale=1e-4, offset=-0.1, nodata=0, valid_range=_REFLECTANCE)
_LS: dict[str, Any] = dict(scale=2.75e-5, offset=-0.2, nodata=0, valid_range=_REFLECTANCE)
_CBERS: dict[str, Any] = dict(scale=1e-4, offset=0.0, nodata=-9999, valid_range=_REFLECTANCE)
_MODIS_VI: dict[str, Any] = dict(scale=1e-4, offset=0.0, nodata=-3000, valid_range=(-0.2, 1.0))
_MODIS_SR: dict[str, Any] = dict(scale=1e-4, offset=0.0, nodata=-1000, valid_range=_REFLECTANCE)
SENSORS: dict[str, SensorPreset] = {
    "sentinel2-l2a": SensorPreset(
        bands={
            "coastal": _b("B01", **_S2), "blue": _b("B02", **_S2), "green": _b("B03", **_S2),
            "red": _b("B04", **_S2), "rededge1": _b("B05", **_S2), "rededge2": _b("B06", **_S2),
            "rededge3": _b("B07", **_S2), "nir": _b("B08", **_S2), "nir08": _b("B8A", **_S2),
            "swir16": _b("B11", **_S2), "swir22": _b("B12", **_S2), "scl": _b("SCL", nodata=0),
        },
        mask=MaskRule(band="scl", clear_values=[4, 5, 6, 7, 11]),
        note="SCL 4 vegetation, 5 bare, 6 water, 7 unclassified, 11 snow are clear; "
             "3 shadow, 8/9 cloud, 10 cirrus are masked.",
    ),
    "landsat-c2-l2": SensorPreset(
        bands={
            "coastal": _b("SR_B1", **_LS), "blue": _b("SR_B2", **_LS), "green": _b("SR_B3", **_LS),
            "red": _b("SR_B4", **_LS), "nir": _b("SR_B5", **_LS), "swir16": _b("SR_B6", **_LS),
            "swir22": _b("SR_B7", **_LS), "qa_pixel": _b("QA_PIXEL", nodata=1),
        },
        mask=MaskRule(band="qa_pixel", cloud_bits=[1, 2, 3, 4]),
        note="QA_PIXEL bits 1 dilated cloud, 2 cirrus, 3 cloud, 4 shadow are masked.",
    ),
    "cbers4-awfi": SensorPreset(
        bands={
            "blue": _b("B13", **_CBERS), "green": _b("B14", **_CBERS),
            "red": _b("B15", **_CBERS), "nir": _b("B16", **_CBERS),
            "cmask": _b("CMASK", nodata=255),
        },
        mask=MaskRule(band="cmask", clear_values=[0, 127]),
        note="Brazil Data Cube CMASK: 0 clear, 127 clear (land), 2/4 cloud/shadow, 255 nodata.",
    ),
    "modis-mod13q1": SensorPreset(
        bands={
            "ndvi": _b("NDVI", **_MODIS_VI), "evi": _b("EVI", **_MODIS_VI),
            "red": _b("red_reflectance", **_MODIS_SR), "nir": _b("NIR_reflectance", **_MODIS_SR),
            "blue": _b("blue_reflectance", **_MODIS_SR), "swir22": _b("MIR_reflectance", **_MODIS_SR),
        },
        note="MOD13Q1 250 m 16-day composites; already cloud-screened (no mask band).",
    ),
}


@dataclass(frozen=True)
class Asset:
    """One band of one scene: a URL and a 1-based band index in it."""

    url: str
    index: int


@dataclass(frozen=True)
class Scene:
    """One acquisition with its band assets; built by :func:`discover_scenes`."""

    id: str
    date: dt.date
    assets: Mapping[str, Asset]
    crs_wkt: str
    bounds: BBox
    """In the scene's own CRS."""
    resolution: tuple[float, float]
    dtypes: Mapping[str, str]
    nodata: Mapping[str, float | None]
    scales: Mapping[str, float | None] = field(default_factory=dict)
    offsets: Mapping[str, float | None] = field(default_factory=dict)

    def footprint(self, crs: str) -> BBox:
        """The scene's bounding box in ``crs`` (edges densified, so curved edges count)."""
        return BBox(*transform_bounds(self.crs_wkt, crs, *self.bounds, densify_pts=21))


@dataclass(frozen=True)
class RejectedScene:
    """A scene (or file) that was not used, and why. Goes into the job report."""

    item: str
    reason: str
    fix: str

    def __str__(self) -> str:
        return f"{self.item}: {self.reason} ({self.fix})"


# --- opening rasters through fsspec (one code path for local, file:// and s3://) ---------


def open_raster(url: str, storage_options: Mapping[str, Any] | None = None) -> rasterio.DatasetReader:
    """Open a raster for reading: local paths directly (fastest), URLs through fsspec.

    The caller closes it. ``storage_options`` go to fsspec (s3fs: endpoint, keys, ...).
    """
    from cluster._retry import http_status_of, is_transient, retry_transient
    from cluster.errors import StorageUnavailableError

    try:
        if not is_remote(url):
            return rasterio.open(local_path(url))
        fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
        # Ask storage first, in Python: a refusal (403) raised inside GDAL's read callback
        # aborts the whole process (rasterio 1.4's opener), instead of raising
        retry_transient(lambda: fs.cat_file(path, start=0, end=1), attempts=3)
        # the filesystem object itself (not fs.open): rasterio then also uses its
        # isfile/ls for GDAL's sidecar probes instead of opening guessed names
        return retry_transient(lambda: rasterio.open(path, opener=fs), attempts=3)
    except rasterio.errors.RasterioIOError as e:
        raise SceneError(f"cannot open raster {url!r}: {e}") from None
    except Exception as e:  # noqa: BLE001 — classified: storage trouble is not a bad scene
        status = http_status_of(e)
        if isinstance(e, PermissionError) or status == 403:
            raise SceneError(f"access denied reading {url!r}: the credentials may not read it; check them "
                             "(AWS_* or the role), the bucket policy and the object's ACL") from None
        if isinstance(e, FileNotFoundError) or status == 404:
            raise SceneError(f"no such file or object {url!r}") from None
        if is_transient(e):
            raise StorageUnavailableError(f"object storage did not answer opening {url!r} ({type(e).__name__}: "
                                          f"{e}); the job stops here, rerun when it answers") from e
        raise SceneError(f"cannot open raster {url!r}: {type(e).__name__}: {e}") from None


def _expand(pattern: str, storage_options: Mapping[str, Any] | None) -> list[str]:
    """Paths or URLs matching a glob, sorted; plain paths pass through."""
    fs, path = fsspec.core.url_to_fs(pattern, **dict(storage_options or {}))
    if any(ch in path for ch in "*?["):
        found = sorted(fs.glob(path))
    else:
        found = [path] if fs.exists(path) else []
    if is_remote(pattern):
        proto = url_protocol(pattern)
        return [f"{proto}://{p}" for p in found]
    return found


# --- dates ----------------------------------------------------------------------------


def parse_date(text: str, fmt: str | None = None) -> dt.date:
    """Parse a date in ``fmt``, or ISO / compact ISO by default.

    >>> parse_date("2017-08-29"), parse_date("20170829"), parse_date("2017:08:29 10:00:00", "%Y:%m:%d %H:%M:%S")
    (datetime.date(2017, 8, 29), datetime.date(2017, 8, 29), datetime.date(2017, 8, 29))
    """
    if fmt:
        return dt.datetime.strptime(text, fmt).date()
    t = text.strip()
    for f in ("%Y-%m-%d", "%Y%m%d", "%Y-%m-%dT%H:%M:%S", "%Y:%m:%d %H:%M:%S"):
        try:
            return dt.datetime.strptime(t[: len(dt.datetime(2000, 1, 1).strftime(f))], f).date()
        except ValueError:
            continue
    return dt.datetime.fromisoformat(t.replace("Z", "+00:00")).date()


def _date_from_name(name: str, rule: DateRule) -> dt.date:
    m = re.search(rule.pattern, name)
    if not m:
        raise SceneError(f"no date in {name!r} matching pattern {rule.pattern!r}; set date.pattern, "
                         "or date.source: metadata / stac / fixed")
    text = m.group("date") if "date" in m.re.groupindex else m.group(0)
    try:
        return parse_date(text, rule.format)
    except ValueError:
        raise SceneError(f"date text {text!r} in {name!r} does not parse with format {rule.format!r}") from None


# --- discovery ------------------------------------------------------------------------


def _band_index(ds: rasterio.DatasetReader, name: str, spec: BandSpec) -> int:
    if spec.description is not None:
        for i, d in enumerate(ds.descriptions, start=1):
            if d == spec.description:
                return i
        raise SceneError(
            f"band {name!r}: no band described {spec.description!r}; descriptions are {list(ds.descriptions)!r}"
        )
    idx = spec.index or 1
    if idx > ds.count:
        raise SceneError(f"band {name!r}: index {idx} but the file has {ds.count} band(s)")
    return idx


def _scene_from_files(scene_id: str, files: Mapping[str, str], bands: Mapping[str, BandSpec],
                      date: dt.date | None, rule: DateRule,
                      storage_options: Mapping[str, Any] | None) -> Scene:
    """Read the headers of a scene's files and check they share one grid."""
    assets: dict[str, Asset] = {}
    dtypes: dict[str, str] = {}
    nodata: dict[str, float | None] = {}
    scales: dict[str, float | None] = {}
    offsets: dict[str, float | None] = {}
    ref: tuple[str, BBox, tuple[float, float]] | None = None
    opened: dict[str, rasterio.DatasetReader] = {}
    try:
        for name, spec in bands.items():
            url = files[name]
            if url not in opened:
                opened[url] = open_raster(url, storage_options)
                _check_complete(opened[url], url, storage_options)
            ds = opened[url]
            if ds.crs is None:
                raise SceneError(f"{url!r} has no CRS; set one with gdal_edit.py -a_srs or rio edit-info")
            idx = _band_index(ds, name, spec)
            here = (ds.crs.to_wkt(), BBox(*ds.bounds), ds.res)
            if ref is None:
                ref = here
            elif here[0] != ref[0]:
                raise SceneError(f"band {name!r} file {url!r} is in another CRS than the scene's other bands")
            else:
                # bands at other resolutions (20 m SWIR) are fine: each is warped on its own
                pass
            assets[name] = Asset(url, idx)
            dtypes[name] = ds.dtypes[idx - 1]
            nodata[name] = ds.nodatavals[idx - 1]
            scales[name] = ds.scales[idx - 1] if ds.scales and ds.scales[idx - 1] != 1.0 else None
            offsets[name] = ds.offsets[idx - 1] if ds.offsets and ds.offsets[idx - 1] != 0.0 else None
        sources: dict[tuple[str, int], list[str]] = {}
        for name, asset in assets.items():
            sources.setdefault((asset.url, asset.index), []).append(name)
        for (url, idx), names in sources.items():
            if len(names) > 1:
                tokens = ", ".join(repr(_band_token(n, bands[n])) for n in names)
                raise SceneError(
                    f"bands {names!r} all read band {idx} of {url!r} ({opened[url].count} band(s) in the "
                    "file): each band must come from its own file or band index. For one-file-per-band "
                    f"products put a {{band}} token in the scene pattern (band files named by {tokens}); "
                    "for multi-band files set bands.<name>.index or .description"
                )
        if date is None and rule.source == "metadata":
            first = next(iter(opened.values()))
            tag = first.tags().get(rule.tag)
            if not tag:
                raise SceneError(f"no {rule.tag} tag in {first.name!r}; use date.source: filename")
            date = parse_date(tag, rule.format)
        assert ref is not None and date is not None
        union = ref[1]
        for ds in opened.values():
            union = union.union(BBox(*ds.bounds))
        return Scene(scene_id, date, assets, ref[0], union, ref[2], dtypes, nodata, scales, offsets)
    finally:
        for ds in opened.values():
            ds.close()


def _check_complete(ds: rasterio.DatasetReader, url: str, storage_options: Mapping[str, Any] | None) -> None:
    """Refuse a GeoTIFF cut short (a download that stopped): its header is whole, so it
    opens, but its last data block lies past the end of the file. One size query; the
    pixels are not read."""
    if ds.driver not in ("GTiff", "COG"):
        return
    bh, bw = ds.block_shapes[0]
    bx, by = (ds.width + bw - 1) // bw - 1, (ds.height + bh - 1) // bh - 1
    offset = ds.get_tag_item(f"BLOCK_OFFSET_{bx}_{by}", "TIFF", bidx=ds.count)
    size = ds.get_tag_item(f"BLOCK_SIZE_{bx}_{by}", "TIFF", bidx=ds.count)
    if not offset or not size:
        return
    end = int(offset) + int(size)
    if not is_remote(url):
        have = Path(local_path(url)).stat().st_size
    else:
        from cluster._retry import retry_storage

        fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
        have = int(retry_storage(lambda: fs.size(path), f"cannot read the size of {url!r}"))
    if end > have:
        raise SceneError(f"{url!r} is truncated: its last data block ends at byte {end:,} but the file has "
                         f"{have:,} bytes (a download cut short?); fetch it again")


def _band_token(name: str, spec: BandSpec) -> str:
    return spec.file or name


def discover_scenes(
    patterns: Sequence[str],
    bands: Mapping[str, BandSpec],
    date_rule: DateRule,
    *,
    stac: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[list[Scene], list[RejectedScene]]:
    """Find scenes and read their headers. Bad items are returned as rejections, not raised.

    Returns scenes sorted by ``(date, id)``: the stable order the mosaic rule relies on.
    """
    scenes: list[Scene] = []
    rejected: list[RejectedScene] = []
    if not bands:
        raise ConfigError("no bands to ingest: set 'sensor' or 'bands' in the config")

    def add(scene_id: str, files: Mapping[str, str], date: dt.date | None) -> None:
        try:
            if date is None and date_rule.source == "fixed":
                date = date_rule.value
            if date is None and date_rule.source == "filename":
                # the file name first; else the whole path (per-scene folders of band files,
                # e.g. .../S2B_42UWB_20250601_0_L2A/B04.tif)
                try:
                    date = _date_from_name(scene_id.rsplit("/", 1)[-1], date_rule)
                except SceneError:
                    date = _date_from_name(scene_id, date_rule)
            scenes.append(_scene_from_files(scene_id, files, bands, date, date_rule, storage_options))
        except SceneError as e:
            rejected.append(RejectedScene(scene_id, str(e), "fix or remove the file, or correct the band mapping"))

    for pattern in patterns:
        if "{band}" in pattern:
            tokens = {name: _band_token(name, spec) for name, spec in bands.items()}
            groups: dict[str, dict[str, str]] = {}
            for name, token in tokens.items():
                for url in _expand(pattern.replace("{band}", token), storage_options):
                    key = _replace_token(url, token)
                    groups.setdefault(key, {})[name] = url
            if not groups:
                others = _expand(pattern.replace("{band}", "*"), storage_options)[:3]
                seen = f"; files there are named like {[o.rsplit('/', 1)[-1] for o in others]!r}" if others else ""
                rejected.append(RejectedScene(
                    pattern, f"no files match any band token {sorted(set(tokens.values()))!r} in place of "
                    f"{{band}}{seen}", "check the path, or map each band's token with bands.<name>.file"))
            for key in sorted(groups):
                files = groups[key]
                missing = sorted(set(bands) - set(files))
                if missing:
                    names = ", ".join(f"{tokens[m]!r} ({m})" for m in missing)
                    rejected.append(RejectedScene(
                        key, f"missing band file(s) for {missing!r}",
                        f"band files are named by their token in place of {{band}}: {names}; add the files, "
                        "map each band's token with bands.<name>.file, or drop those bands"))
                    continue
                add(key, files, None)
        else:
            urls = _expand(pattern, storage_options)
            if not urls:
                rejected.append(RejectedScene(pattern, "no files match", "check the path or glob"))
            for url in urls:
                add(url, {name: url for name in bands}, None)

    if stac is not None:
        for scene_id, files, date in _iter_stac(stac, bands, storage_options, rejected):
            add(scene_id, files, date if date_rule.source in ("stac", "filename") else None)

    scenes.sort(key=lambda s: (s.date, s.id))
    unique: list[Scene] = []
    for s in scenes:  # the same file matched by two patterns is one scene, used once
        if unique and unique[-1].id == s.id and unique[-1].date == s.date:
            rejected.append(RejectedScene(s.id, "listed twice (two patterns match it)", "used once; nothing to do"))
            continue
        unique.append(s)
    scenes = unique
    return scenes, rejected


def _replace_token(url: str, token: str) -> str:
    """The scene key of a per-band file: its name with the band token replaced by ``{band}``."""
    head, _, name = url.rpartition("/")
    i = name.rfind(token)
    return f"{head}/{name[:i]}{{band}}{name[i + len(token):]}" if head else f"{name[:i]}{{band}}{name[i + len(token):]}"


def _iter_stac(path: str, bands: Mapping[str, BandSpec], storage_options: Mapping[str, Any] | None,
               rejected: list[RejectedScene]) -> list[tuple[str, dict[str, str], dt.date]]:
    """Scenes from a STAC ItemCollection (or a single Item) JSON file."""
    with fsspec.open(path, "r", **dict(storage_options or {})) as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as e:
            raise ConfigError(f"STAC file {path!r} is not valid JSON: {e}") from None
    items = doc.get("features") if doc.get("type") == "FeatureCollection" else [doc]
    if not isinstance(items, list):
        raise ConfigError(f"STAC file {path!r} is neither an ItemCollection nor an Item")
    base = path.rsplit("/", 1)[0] if "/" in path else "."
    out = []
    for item in items:
        item_id = str(item.get("id", "?"))
        props = item.get("properties", {})
        when = props.get("datetime") or props.get("start_datetime")
        if not when:
            rejected.append(RejectedScene(item_id, "STAC item has no datetime", "set properties.datetime"))
            continue
        assets = item.get("assets", {})
        files: dict[str, str] = {}
        missing = []
        for name, spec in bands.items():
            key = _band_token(name, spec)
            asset = assets.get(key)
            if asset is None:
                missing.append(key)
                continue
            href = asset["href"]
            if not has_protocol(href) and not href.startswith("/"):
                href = f"{base}/{href}"
            files[name] = href
        if missing:
            rejected.append(RejectedScene(
                item_id, f"STAC item lacks asset(s) {missing!r}; it has {sorted(assets)!r}",
                "map the bands to existing asset keys with bands.<name>.file"))
            continue
        out.append((item_id, files, parse_date(when)))
    return out
