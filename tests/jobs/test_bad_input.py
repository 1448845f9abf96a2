"""Bad input, table-driven: each case asserts the message (what, which item, what to do), the
exit code, and that the rest of the output is complete.

The ingest cases start from three real CBERS dates copied into a scene folder and spoil one
thing; "the rest is complete" means every tile is done from the scenes that were fine (the
cube is compared with a clean run of the good scenes only). Run through the command line
(``main``), as a user meets them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from shapely.geometry import Polygon, box

from cluster.indices import IndicesConfig
from cluster.pipeline import run_ingest, run_indices
from cluster import store as cstore
from jobs import aggregate as aggregate_job
from jobs import forecast as forecast_job
from jobs import ingest as ingest_job
from tests._data import shared_data
from tests.cluster.forecast._cybench import example_dict

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]

DATES = ("2017-08-29", "2017-09-14", "2017-09-30")
BANDS = ("B13", "B14", "B15", "B16", "CMASK")
GRID = {"crs": "EPSG:6933", "pixel_size": 64, "tile_size_px": 32}


def _scenes(folder: Path) -> Path:
    root = shared_data("cbers4_awfi_cerrado_timeseries")
    folder.mkdir(parents=True, exist_ok=True)
    for d in DATES:
        for b in BANDS:
            shutil.copy(root / f"CBERS-4_AWFI_{b}_{d}.tif", folder / f"CBERS-4_AWFI_{b}_{d}.tif")
    return folder


def _ingest_cfg(tmp: Path, scenes: Path, **extra: object) -> dict:
    return {"store": str(tmp / "cube.zarr"), "scenes": [str(scenes / "CBERS-4_AWFI_{band}_*.tif")],
            "sensor": "cbers4-awfi", "grid": GRID, "max_actors": 2, **extra}


def _run_ingest(cfg: dict):  # noqa: ANN202
    from cluster.ingest import IngestConfig

    return run_ingest(IngestConfig.model_validate(cfg))


def _main(main: Callable[[list[str]], int], tmp: Path, cfg: dict, *args: str) -> int:
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return main(["--config", str(path), *args])


@dataclass
class Case:
    id: str
    run: Callable[[Path], tuple[int, dict]]
    """Sets up the bad input under a temp dir, runs the command; returns (exit code, context)."""
    code: int
    message: str
    """A regular expression the command's output must contain."""
    complete: Callable[[Path, dict], None] | None = None
    """Checks that the rest of the output is whole."""


def _spoil_ingest(spoil: Callable[[Path], None], **extra: object) -> Callable[[Path], tuple[int, dict]]:
    def run(tmp: Path) -> tuple[int, dict]:
        scenes = _scenes(tmp / "scenes")
        spoil(scenes)
        return _main(ingest_job.main, tmp, _ingest_cfg(tmp, scenes, **extra)), {}
    return run


def _complete_without(*dates: str, **extra: object) -> Callable[[Path, dict], None]:
    """Every tile done, and the cube equal to a clean run of the other dates."""
    def check(tmp: Path, _: dict) -> None:
        good = _scenes(tmp / "good")
        for d in dates:
            for f in good.glob(f"*_{d}.tif"):
                f.unlink()
        assert _run_ingest(_ingest_cfg(tmp, good, store=str(tmp / "clean.zarr"), **extra)).ok
        got = cstore.open_cube(str(tmp / "cube.zarr"), chunks=None)
        want = cstore.open_cube(str(tmp / "clean.zarr"), chunks=None)
        assert got.sizes["time"] == want.sizes["time"] == len(DATES) - len(dates)
        for band in ("red", "nir"):
            np.testing.assert_array_equal(got[band].values, want[band].values)
    return check


def _nothing_written(tmp: Path) -> None:
    assert not (tmp / "cube.zarr").exists() and not Path(cstore.meta_url(str(tmp / "cube.zarr"))).exists()


def _truncate(scenes: Path) -> None:
    f = scenes / f"CBERS-4_AWFI_B15_{DATES[1]}.tif"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) * 2 // 3])


def _no_crs(scenes: Path) -> None:
    f = scenes / f"CBERS-4_AWFI_B16_{DATES[2]}.tif"
    with rasterio.open(f) as ds:
        profile, data = ds.profile, ds.read()
    profile.pop("crs")
    with rasterio.open(f, "w", **profile) as out:
        out.write(data)


def _all_nodata(scenes: Path) -> None:
    for b in BANDS[:4]:
        f = scenes / f"CBERS-4_AWFI_{b}_{DATES[2]}.tif"
        with rasterio.open(f, "r+") as ds:
            ds.write(np.full((1, ds.height, ds.width), -9999, dtype=ds.dtypes[0]))


def _out_of_range(scenes: Path) -> None:
    with rasterio.open(scenes / f"CBERS-4_AWFI_B15_{DATES[1]}.tif", "r+") as ds:
        red = ds.read(1)
        red[:10, :10] = 30_000  # reflectance 3.0: saturated, or a wrong scale
        ds.write(red, 1)


def _nan_and_inf(scenes: Path) -> None:
    f = scenes / f"CBERS-4_AWFI_B16_{DATES[2]}.tif"
    with rasterio.open(f) as ds:
        profile, nir = ds.profile, ds.read(1).astype("float32")
    nir[:5, :] = np.nan
    nir[5:10, :] = np.inf
    profile.update(dtype="float32")
    with rasterio.open(f, "w", **profile) as out:
        out.write(nir, 1)


def _copy_one_date(scenes: Path) -> None:
    for b in BANDS:
        shutil.copy(scenes / f"CBERS-4_AWFI_{b}_{DATES[0]}.tif", scenes / f"CBERS-4_AWFI_{b}_{DATES[0]}_copy.tif")


def _move_one_date(scenes: Path) -> None:
    """The last date's files georeferenced 200 km east of the others."""
    for b in BANDS:
        with rasterio.open(scenes / f"CBERS-4_AWFI_{b}_{DATES[2]}.tif", "r+") as ds:
            ds.transform = ds.transform * ds.transform.__class__.translation(200_000 / ds.res[0], 0)


def _scene_bounds() -> dict:
    with rasterio.open(shared_data("cbers4_awfi_cerrado_timeseries") / f"CBERS-4_AWFI_B13_{DATES[0]}.tif") as ds:
        return {"bounds": list(ds.bounds), "crs": ds.crs.to_string()}


def _complete_but_missing_where_invalid(tmp: Path, _: dict) -> None:
    """Every tile done; the cube equals a clean run's except pixels now missing, and no
    value outside the valid range reached it."""
    assert _run_ingest(_ingest_cfg(tmp, _scenes(tmp / "good"), store=str(tmp / "clean.zarr"))).ok
    got = cstore.open_cube(str(tmp / "cube.zarr"), chunks=None)
    want = cstore.open_cube(str(tmp / "clean.zarr"), chunks=None)
    for band in ("red", "nir"):
        g, w = got[band].values, want[band].values
        differ = ~((g == w) | (np.isnan(g) & np.isnan(w)))
        assert differ.any() and np.isnan(g[differ]).all(), band
        assert np.nanmax(g) <= 1.6


def _regions_case(make: Callable[[Path], gpd.GeoDataFrame], **regions: object
                  ) -> Callable[[Path], tuple[int, dict]]:
    def run(tmp: Path) -> tuple[int, dict]:
        scenes = _scenes(tmp / "scenes")
        assert _run_ingest(_ingest_cfg(tmp, scenes)).ok
        assert run_indices(IndicesConfig(store=str(tmp / "cube.zarr"), kernels=["ndvi"])).ok
        path = tmp / "regions.geojson"
        cube = cstore.open_cube(str(tmp / "cube.zarr"))
        make(path, cube)
        cfg = {"store": str(tmp / "cube.zarr"), "indices": ["ndvi"], "out": str(tmp / "stats"),
               "regions": {"path": str(path), "id_column": "code", **regions}}
        return _main(aggregate_job.main, tmp, cfg), {}
    return run


def _cube_halves(path: Path, cube, transform=None) -> None:  # noqa: ANN001
    x0, x1, y0, y1 = float(cube.x.min()), float(cube.x.max()), float(cube.y.min()), float(cube.y.max())
    xm = (x0 + x1) / 2
    bowtie = Polygon([(xm, y0), (x1, y1), (x1, y0), (xm, y1)])  # self-intersecting
    gdf = gpd.GeoDataFrame({"code": ["W", "E"]}, geometry=[box(x0, y0, xm, y1), bowtie], crs="EPSG:6933")
    (transform or (lambda g: g))(gdf).to_crs(4326).to_file(path)


def _forecast_case(spoil: Callable[[pd.DataFrame], None] = lambda y: None, **config: object
                   ) -> Callable[[Path], tuple[int, dict]]:
    """The Netherlands' CY-Bench wheat files copied, the yield table spoiled, one learner."""
    def run(tmp: Path) -> tuple[int, dict]:
        src = shared_data("cybench_wheat_es_nl")
        for f in src.glob("*_NL.csv"):
            shutil.copy(f, tmp / f.name)
        yields = pd.read_csv(tmp / "yield_wheat_NL.csv")
        spoil(yields)
        yields.to_csv(tmp / "yield_wheat_NL.csv", index=False)
        raw = example_dict(("NL",), tmp)
        raw.update(lead_times=["middle-of-season"], learners=["ridge"], inner_folds=3, plots=False,
                   out_dir=str(tmp / "out"), **config)
        return _main(forecast_job.main, tmp, raw), {}
    return run


def _every_region_forecast(condition: str | None = None) -> Callable[[Path, dict], None]:
    def check(tmp: Path, _: dict) -> None:
        table = pd.read_parquet(tmp / "out" / "forecast.parquet")
        regions = table[table["level"] == "region"]
        assert len(regions) == 12 and regions["yield_t_ha"].gt(0).all()
        if condition is not None:
            assert (table["condition"] == condition).all(), table[["region_id", "condition"]]
    return check


def _set_yields(rows: dict[int, float]) -> Callable[[pd.DataFrame], None]:
    def spoil(y: pd.DataFrame) -> None:
        for i, v in rows.items():
            y.loc[i, "yield"] = v
    return spoil


def _no_outputs(tmp: Path, _: dict) -> None:
    assert not (tmp / "out").exists()


CASES = [
    Case("truncated-geotiff", _spoil_ingest(_truncate), 1,
         r"rejected .*B15_2017-09-14\.tif.* is truncated: its last data block ends at byte [\d,]+ but the file "
         r"has [\d,]+ bytes .*fetch it again", _complete_without(DATES[1])),
    Case("text-file-named-tif",
         _spoil_ingest(lambda s: (s / f"CBERS-4_AWFI_B14_{DATES[0]}.tif").write_text("not a tiff")), 1,
         r"rejected .*2017-08-29\.tif: cannot open raster .*fix or remove the file", _complete_without(DATES[0])),
    Case("scene-without-crs", _spoil_ingest(_no_crs), 1,
         r"B16_2017-09-30\.tif' has no CRS; set one with gdal_edit\.py -a_srs", _complete_without(DATES[2])),
    Case("band-missing-from-one-scene",
         _spoil_ingest(lambda s: (s / f"CBERS-4_AWFI_B13_{DATES[2]}.tif").unlink()), 1,
         r"rejected .*2017-09-30\.tif: missing band file\(s\) for \['blue'\] \(band files are named by their token "
         r"in place of \{band\}: 'B13' \(blue\); add the files",
         _complete_without(DATES[2])),
    Case("all-nodata-scene", _spoil_ingest(_all_nodata), 0,
         r"warning: scene .*2017-09-30\.tif' gave no valid pixel in any tile \(all nodata, or all masked"),
    Case("reflectance-out-of-range", _spoil_ingest(_out_of_range), 0,
         r"warning: scene '.*2017-09-14\.tif': pixel values that are NaN, infinite or outside their band's valid "
         r"range were left out as missing: red \d[\d,]* \(valid range \[-0\.2, 1\.6\]\)\. .*wrong scale/offset",
         _complete_but_missing_where_invalid),
    Case("nan-and-inf-values", _spoil_ingest(_nan_and_inf), 0,
         r"warning: scene '.*2017-09-30\.tif': pixel values that are NaN, infinite .*: nir \d[\d,]* \(valid range",
         _complete_but_missing_where_invalid),
    Case("duplicate-dates-mosaicked", _spoil_ingest(_copy_one_date), 0,
         r"warning: scenes .*2017-08-29.* and .*2017-08-29_copy.* share the date 2017-08-29 and overlap 100 % .*"
         r"mosaicked in scene-id order .*drop it", _complete_without()),
    Case("scene-wholly-outside-the-extent", _spoil_ingest(_move_one_date, extent=_scene_bounds()), 1,
         r"rejected .*2017-09-30\.tif: outside the configured extent .*widen extent/bbox or drop the scene",
         _complete_without(DATES[2], extent=_scene_bounds())),
    Case("glob-matches-nothing", _spoil_ingest(lambda s: [f.unlink() for f in s.glob("*.tif")]), 2,
         r"no usable scenes; nothing to ingest:\n  .*: no files match any band token \['B13', 'B14', 'B15', "
         r"'B16', 'CMASK'\]"),
    Case("preset-tokens-match-nothing",
         _spoil_ingest(lambda s: [f.rename(f.with_name(f.name.replace("_B1", "_BAND1").replace("_CMASK", "_MASK")))
                                  for f in s.glob("*.tif")]),
         2, r"no files match any band token \['B13', .*files there are named like \['CBERS-4_AWFI_BAND13_"),
    Case("preset-tokens-match-some",
         _spoil_ingest(lambda s: [f.rename(f.with_name(f.name.replace("_B1", "_BAND1"))) for f in s.glob("*_B1*.tif")]),
         2, r"missing band file\(s\) for \['blue', 'green', 'nir', 'red'\] \(band files are named by their token in "
            r"place of \{band\}: 'B13' \(blue\), 'B14' \(green\), 'B16' \(nir\), 'B15' \(red\)"),
    Case("two-bands-from-one-file-band",
         lambda tmp: (_main(ingest_job.main, tmp, {**_ingest_cfg(tmp, _scenes(tmp / "scenes")),
                                                   "scenes": [str(tmp / "scenes" / "*_B15_*.tif")]}), {}),
         2, r"bands \['blue', 'green', 'red', 'nir', 'cmask'\] all read band 1 of .*put a \{band\} token in the "
            r"scene pattern \(band files named by 'B13', 'B14', 'B15', 'B16', 'CMASK'\)"),
    Case("duplicate-scene-listed-twice",
         lambda tmp: (_main(ingest_job.main, tmp, {**_ingest_cfg(tmp, _scenes(tmp / "scenes")),
                                                   "scenes": [str(tmp / "scenes" / "CBERS-4_AWFI_{band}_*.tif")] * 2}),
                      {}), 1, r"listed twice \(two patterns match it\) \(used once; nothing to do\)",
         _complete_without()),
    Case("config-key-typo", lambda tmp: (_main(ingest_job.main, tmp, {**_ingest_cfg(tmp, tmp), "gird": {}}), {}), 2,
         r"gird: unknown key; remove it or check its spelling"),
    Case("wrong-type", lambda tmp: (_main(ingest_job.main, tmp, {**_ingest_cfg(tmp, tmp), "max_actors": "many"}), {}),
         2, r"max_actors: Input should be a valid integer.*\(got 'many'\)"),
    Case("unsupported-url-scheme",
         lambda tmp: (_main(ingest_job.main, tmp, {**_ingest_cfg(tmp, tmp), "store": "ftp://host/cube.zarr"}), {}), 2,
         r"a cube cannot be written to 'ftp://host/cube\.zarr': a store needs object storage"),
    Case("unknown-scene-protocol",
         lambda tmp: (_main(ingest_job.main, tmp, {**_ingest_cfg(tmp, tmp), "scenes": ["foo://x/{band}.tif"]}), {}), 2,
         r"unknown URL protocol 'foo' in 'foo://x/\{band\}\.tif'"),
    Case("dot-dot-in-an-s3-store",
         lambda tmp: (_main(ingest_job.main, tmp, {**_ingest_cfg(tmp, tmp), "store": "s3://b/cubes/../x.zarr"}), {}),
         2, r"has '\.' or '\.\.' segments: object keys are taken literally"),
    Case("dot-dot-in-a-local-store",
         lambda tmp: (_main(ingest_job.main, tmp, _ingest_cfg(tmp, _scenes(tmp / "scenes"),
                                                               store=str(tmp / "scenes" / ".." / "cube.zarr"))), {}),
         0, r"OK in [\d.]+ s -> /\S+/test_bad_input_dot_dot_in_a_lo\w*/cube\.zarr\n", _complete_without()),
    Case("secret-on-the-command-line",
         lambda tmp: (_main(ingest_job.main, tmp, _ingest_cfg(tmp, tmp), "--set", "storage.secret=hunter2"), {}), 2,
         r"refused: a secret on the command line is visible to every user in 'ps'"),
    Case("existing-store-with-another-grid",
         lambda tmp: (_run_ingest(_ingest_cfg(tmp, _scenes(tmp / "scenes"))).ok and
                      _main(ingest_job.main, tmp, {**_ingest_cfg(tmp, tmp / "scenes"),
                                                   "grid": {**GRID, "pixel_size": 128}}), {}), 2,
         r"holds a cube made by another config .*the configs differ in grid.*set overwrite: true"),
    Case("strict-stops-before-writing",
         _spoil_ingest(lambda s: (s / f"CBERS-4_AWFI_B13_{DATES[2]}.tif").unlink(), strict=True), 2,
         r"strict mode: rejected input\(s\)", lambda tmp, _: _nothing_written(tmp)),
    Case("regions-all-outside-the-cube",
         _regions_case(lambda p, _: gpd.GeoDataFrame({"code": ["far"]}, geometry=[box(10, 10, 11, 11)],
                                                     crs="EPSG:4326").to_file(p)), 1,
         r"error: none of the 1 region\(s\) has a pixel on the cube"),
    Case("regions-without-the-id-column",
         _regions_case(lambda p, _: gpd.GeoDataFrame({"name": ["a"]}, geometry=[box(0, 0, 1, 1)],
                                                     crs="EPSG:4326").to_file(p)), 2,
         r"no column 'code' \(id_column\); available columns: \['name'\]"),
    Case("duplicate-region-ids",
         _regions_case(lambda p, cube: _cube_halves(p, cube, lambda g: g.assign(code=["A", "A"]))), 2,
         r"duplicate ids in column 'code': \['A'\]"),
    Case("self-intersecting-region-repaired-and-reported", _regions_case(_cube_halves), 0,
         r"warning: row 1 \(region 'E'\): .*repaired"),
    Case("overlapping-regions-reported",
         _regions_case(lambda p, cube: _cube_halves(p, cube, lambda g: g.assign(
             geometry=[g.geometry[0].buffer(500), g.geometry[1].envelope]))), 0,
         r"warning: region 'W': overlaps region 'E'; kept; shared pixels count for 'E' only \(lowest region code "
         r"wins\)"),
    Case("yields-in-kg-per-ha", _forecast_case(lambda y: y.__setitem__("yield", y["yield"] * 1000)), 2,
         r"the median yield is 8,\d{3}, which looks like kg/ha, not t/ha .*multipliers: \{yield_t_ha: 0\.001\}",
         _no_outputs),
    Case("missing-yields", _forecast_case(_set_yields({4: float("nan"), 7: float("nan")})), 0,
         r"\[yield_missing\].*2 row", _every_region_forecast()),
    Case("zero-and-negative-yields", _forecast_case(_set_yields({3: 0.0, 10: -1.5})), 0,
         r"\[yield_not_positive\].*2 row\(s\) have a zero or negative yield \('NL11/2003', 'NL11/2010'\)",
         _every_region_forecast()),
    Case("outlier-yield", _forecast_case(_set_yields({5: 33.3})), 0,
         r"\[yield_absurd\].*NL11/2005", _every_region_forecast()),
    Case("unknown-crop-name", _forecast_case(crop="whaet"), 2,
         r"crop 'whaet' never appears in the yield history \(crops there: \['wheat'\]\).*Fix 'crop'", _no_outputs),
    Case("season-with-no-observation-yet", _forecast_case(as_of="2019-09-01"), 0,
         r"\[season_without_observations\].*12 region\(s\) have no index observation of the 2020 season up to "
         r"2019-09-01",
         _every_region_forecast("history only (no imagery this season yet)")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, ctx = case.run(tmp_path)
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == case.code, text[-3000:]
    import re

    assert re.search(case.message, text, re.DOTALL), text[-3000:]
    if case.complete is not None:
        case.complete(tmp_path, ctx)
