"""``harvest classify`` on a real cube (the small demo season, in the shared Ray session).

One feature definition for pixels and tables, training from labels sampled by the actor
pool, prediction written tile by tile and resumable, per-crop aggregation with
error-adjusted areas, and the bad inputs the issue lists.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cluster.pipeline import run_ingest, run_indices, run_aggregate
from cluster import store as cstore
from cluster.aggregate import AggregateConfig
from cluster.classify.features import season_features
from cluster.classify.model import CropModel
from cluster.classify.predict import PredictConfig, label_features, plan_predict
from cluster.classify.run import TrainConfig, run_predict, run_train
from cluster.classify.samples import LabelMapping, SampleTableConfig, load_samples, to_arrays
from cluster.demo import make_demo_season
from cluster.errors import ConfigError, DataError
from cluster.indices import IndicesConfig
from cluster.ingest import IngestConfig
from cluster.verify import verify_store
from jobs import classify as classify_job
from jobs.demo import SIZES, demo_configs

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, ray_session: dict) -> dict:
    root = tmp_path_factory.mktemp("classify")
    season = make_demo_season(root / "season", SIZES["small"])
    cfgs = demo_configs(season, root)
    assert run_ingest(IngestConfig.model_validate(cfgs["ingest"])).ok
    assert run_indices(IndicesConfig.model_validate(cfgs["indices"])).ok
    cfgs["season"] = season
    cfgs["root"] = root
    return cfgs


def _train_config(demo: dict, **changes: object) -> TrainConfig:
    c = classify_job.ClassifyConfig.model_validate(demo["classify"])
    train = c.section("train")
    return TrainConfig.model_validate({**train.model_dump(), **changes})


def test_classify__a_pixel_and_its_table_rows_give_identical_features(demo: dict, tmp_path: Path) -> None:
    train = _train_config(demo)
    store = demo["ingest"]["store"]
    group = cstore.open_group(store, mode="r")
    extent = cstore.extent_of(group)
    bands = train.features.bands
    tile = max(extent.iter_tiles(), key=lambda t: np.isfinite(
        cstore.read_tile_decoded(group, "red", extent, t)).sum())  # the tile with the most data
    cube = {b: cstore.read_tile_decoded(group, b, extent, tile) for b in bands}
    times = cstore.open_cube(store).time.values
    seen = np.isfinite(cube["red"]).any(axis=0)
    rows_, cols_ = np.nonzero(seen)
    pick = np.random.default_rng(1).choice(rows_.size, 12, replace=False)
    picks = [(int(rows_[i]), int(cols_[i])) for i in pick]
    flat = {b: np.stack([cube[b][:, r, c] for r, c in picks], axis=1) for b in bands}
    from_cube = season_features(flat, times, train.features, train.year)
    # the same pixels as rows of a long sample table, read back through the table loader
    rows = [{"id": f"px{k}", "date": str(t)[:10], "crop": "wheat", **{b: cube[b][i, r, c] for b in bands}}
            for k, (r, c) in enumerate(picks) for i, t in enumerate(times)]
    path = tmp_path / "pixels.csv"
    pd.DataFrame(rows).to_csv(path, index=False, float_format="%.9g")
    table = SampleTableConfig(paths=[str(path)], layout="long", id_column="id", label_column="crop",
                              time_column="date", bands={b: {"column": b} for b in bands})
    samples = load_samples(table, LabelMapping(classes=["wheat"]))
    ids, dates, values = to_arrays(samples.frame, bands)
    from_table = season_features(values, dates, train.features, train.year)
    assert list(ids) == sorted(f"px{k}" for k in range(len(picks)))
    order = [int(i[2:]) for i in ids]
    from_cube = season_features({b: v[:, order] for b, v in flat.items()}, times, train.features, train.year)
    np.testing.assert_array_equal(from_table.values, from_cube.values)
    assert from_table.names == from_cube.names


def test_classify__train_predict_resume_aggregate(demo: dict, capsys: pytest.CaptureFixture[str], s3_bucket: str,
                                                 s3_endpoint: str) -> None:
    store = demo["ingest"]["store"]
    cfg_path = Path(demo["root"]) / "classify.yaml"
    cfg_path.write_text(yaml.safe_dump({**demo["classify"], "train": {
        **demo["classify"]["train"], "validation": {**demo["classify"]["train"]["validation"], "folds": 3}}}))
    assert classify_job.main(["train", "--config", str(cfg_path)]) == 0
    out = capsys.readouterr().out
    assert "baseline (random forest, raw bands)" in out
    model_dir = Path(demo["classify"]["model"])
    report = json.loads((model_dir / "report.json").read_text())
    assert {"overall_accuracy", "balanced_accuracy", "kappa", "per_class", "confusion", "n_samples", "n_groups",
            "folds", "split", "baseline"} <= set(report)
    assert report["split"]["by"] == "block" and report["n_groups"] >= 3 and report["folds"] == 3
    # validation is by block: no field's pixels on both sides (every field in one group)
    assert (model_dir / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert "| wheat |" in (model_dir / "report.md").read_text()
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["format"].startswith("harvest-crop-model/") and meta["confusion_unit"] == "field"
    assert not list(model_dir.glob("*.pkl")) and not list(model_dir.glob("*.pickle"))
    assert report["balanced_accuracy"] > 0.6 and report["per_class"]["wheat"]["f1"] > 0.8

    assert classify_job.main(["predict", "--config", str(cfg_path)]) == 0
    ds = cstore.open_cube(store, chunks=None)
    crop = cstore.open_group(store, mode="r")["crop_type"]
    assert crop.dtype == np.uint8 and crop.fill_value == 255
    assert crop.attrs["flag_meanings"].split() == list(meta["classes"])
    assert crop.attrs["flag_values"] == list(range(len(meta["classes"])))
    years = pd.DatetimeIndex(ds.time.values).year
    raw = cstore.open_group(store, mode="r")["crop_type"][:]
    red = ds.red.values
    for year in sorted(set(years)):  # every season mapped, where it has data; one map per season
        sel = np.flatnonzero(years == year)
        seen = np.isfinite(red[sel]).any(axis=0)
        assert seen.sum() > 10_000
        assert (raw[sel[0]][seen] != 255).all() and (raw[sel[0]][~seen] == 255).all()
        assert (raw[sel] == raw[sel[0]]).all()
    prob = cstore.open_group(store, mode="r")["crop_probability"][:]
    mapped = prob[raw != 255]  # the winning class has at least 1/K of the probability
    assert mapped.min() >= 100 // len(meta["classes"]) and mapped.max() <= 100 and (prob[raw == 255] == 255).all()
    # resumable through the manifest: a rerun skips every tile
    predict = classify_job.ClassifyConfig.model_validate(demo["classify"]).section("predict")
    again = run_predict(predict)
    assert again.ok and again.tiles_skipped == again.tiles_total
    _a_changed_parcels_file_is_a_new_plan(predict)
    found = verify_store(store)
    assert found.ok and "classify" in found.jobs, found.summary()
    _each_parcel_has_one_class(predict, raw, prob)
    _parcels_on_object_storage_give_the_same_map(predict, raw, s3_bucket, s3_endpoint)
    _features_written_are_the_ones_classified(predict, model_dir, meta)

    agg = AggregateConfig.model_validate(demo["aggregate"])
    report_agg = run_aggregate(agg)
    table = report_agg.table
    assert report_agg.ok and set(table["crop"]) <= set(meta["classes"]) and "wheat" in set(table["crop"])
    areas = pd.read_parquet(Path(agg.out).with_name(Path(agg.out).name + "_crop_areas.parquet"))
    last = areas[areas.season_year == demo["season"].spec.years[-1]]
    assert {"mapped_area_ha", "estimated_area_ha", "ci95_low_ha", "ci95_high_ha"} <= set(last.columns)
    ok = last.dropna(subset=["estimated_area_ha"])
    assert len(ok)
    assert (ok.ci95_low_ha <= ok.estimated_area_ha).all() and (ok.estimated_area_ha <= ok.ci95_high_ha).all()
    # per region, the error-adjusted areas add up to the mapped total (a re-allocation)
    for _, g in ok.groupby(["region_id", "season_year"]):
        assert g.estimated_area_ha.sum() == pytest.approx(g.mapped_area_ha.sum(), rel=1e-6)


def _a_changed_parcels_file_is_a_new_plan(predict: PredictConfig) -> None:
    """A rerun after the parcels file changed maps every tile again (a new plan), rather than
    resuming a map made with the old boundaries; the same bytes with a new modification time
    (a copy unpacked again, as Ray's working dir is) resume."""
    import geopandas as gpd

    assert predict.parcels is not None
    model = CropModel.load(predict.model)
    before = plan_predict(predict, model)
    assert before.parcels is not None and plan_predict(predict, model).hash == before.hash
    path = Path(predict.parcels.path)
    original = path.read_bytes()
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert plan_predict(predict, model).hash == before.hash
    try:
        gpd.read_file(path).iloc[:-1].to_file(path)  # one parcel fewer
        assert plan_predict(predict, model).hash != before.hash
    finally:
        path.write_bytes(original)
    assert plan_predict(predict, model).hash == before.hash


def _each_parcel_has_one_class(predict: PredictConfig, crop: np.ndarray, prob: np.ndarray) -> None:
    """With ``parcels``, every parcel's pixels in a tile share one class and one probability;
    pixels between parcels are not forced to anything."""
    import geopandas as gpd
    from rasterio.features import rasterize

    assert predict.parcels is not None
    extent = cstore.extent_of(cstore.open_group(predict.store, mode="r"))
    parcels = gpd.read_file(predict.parcels.path)
    ny, nx = crop.shape[1:]
    ids = rasterize([(g, i + 1) for i, g in enumerate(parcels.geometry)], out_shape=(ny, nx),
                    transform=extent.transform, fill=0, dtype="int32")
    tile_px = extent.grid.tile_size_px
    tile = (np.arange(ny)[:, None] // tile_px) * 10_000 + np.arange(nx)[None, :] // tile_px
    last = crop[-1]
    keep = (ids > 0) & (last != 255)
    frame = pd.DataFrame({"parcel": ids[keep], "tile": tile[keep], "cls": last[keep], "prob": prob[-1][keep]})
    per_part = frame.groupby(["parcel", "tile"]).nunique()
    assert len(per_part) > 100
    assert (per_part["cls"] == 1).all() and (per_part["prob"] == 1).all()
    # the map is not a per-pixel one any more: parcels of more than one class exist
    assert frame.groupby("parcel")["cls"].first().nunique() >= 4


def _parcels_on_object_storage_give_the_same_map(predict: PredictConfig, crop: np.ndarray, bucket: str,
                                                 endpoint: str) -> None:
    """The parcel layer on S3 (as on a cluster, where a driver's local file is not on the
    workers): each actor fetches the GeoPackage once and maps the same classes."""
    import s3fs

    assert predict.parcels is not None
    storage = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, key="testing", secret="testing").put_file(
        predict.parcels.path, f"{bucket}/lpis/parcels.gpkg")
    copy = str(Path(predict.store).with_name("parcels-on-s3.zarr"))
    shutil.copytree(predict.store, copy)
    shutil.copytree(cstore.meta_url(predict.store), cstore.meta_url(copy))
    remote = {**predict.model_dump(), "store": copy, "storage": storage}
    report = run_predict(PredictConfig.model_validate({**remote, "parcels": {
        "path": f"s3://{bucket}/lpis/parcels.gpkg"}}))
    assert report.ok and report.tiles_skipped == 0, report.summary()
    np.testing.assert_array_equal(cstore.open_group(copy, mode="r")["crop_type"][:], crop)
    with pytest.raises(ConfigError, match=r"parcels file 's3://.*/lpis/none.gpkg' does not exist"):
        run_predict(PredictConfig.model_validate({**remote, "parcels": {"path": f"s3://{bucket}/lpis/none.gpkg"}}))


def _features_written_are_the_ones_classified(predict: PredictConfig, model_dir: Path, meta: dict) -> None:
    """``features: write`` on a copy of the cube: each pixel's stored vector is the one its
    class came from (recomputed here from the cube), named and defined in the attributes."""
    store = predict.store
    copy = str(Path(store).with_name("with-features.zarr"))
    shutil.copytree(store, copy)
    shutil.copytree(cstore.meta_url(store), cstore.meta_url(copy))  # the jobs' manifests
    report = run_predict(predict.model_copy(update={"store": copy, "features": "write"}))
    assert report.ok, report.summary()
    ds = cstore.open_cube(copy, chunks=None)
    feats = label_features(ds)
    assert feats.dims == ("season", "feature", "y", "x")
    assert list(feats.feature.values) == meta["feature_names"]
    years = sorted(set(pd.DatetimeIndex(ds.time.values).year))
    assert list(feats.season.values) == [y for y in years if str(y) in feats.attrs["feature_definitions"]]
    year = int(feats.season.values[-1])
    definition = feats.attrs["feature_definitions"][str(year)]
    assert definition["names"] == meta["feature_names"] and len(definition["periods"]) > 1
    if year == meta["season_year"]:  # the model's own record of its periods
        assert meta["periods"] == definition["periods"]
    model = CropModel.load(str(model_dir))
    in_season = (pd.DatetimeIndex(ds.time.values) >= pd.Timestamp(model.features.season.bounds(year)[0])) & \
                (pd.DatetimeIndex(ds.time.values) <= pd.Timestamp(model.features.season.bounds(year)[1]))
    values = {b: ds[b].values[in_season] for b in model.features.bands}
    seen = np.isfinite(values["red"]).any(axis=0)
    rows, cols = np.nonzero(seen)
    pick = np.random.default_rng(2).choice(rows.size, 20, replace=False)
    flat = {b: np.stack([v[:, rows[i], cols[i]] for i in pick], axis=1) for b, v in values.items()}
    expected = season_features(flat, ds.time.values[in_season], model.features, year).values
    stored = feats.sel(season=year).values[:, rows[pick], cols[pick]].T
    np.testing.assert_array_equal(stored, expected)
    assert np.isnan(feats.sel(season=year).values[:, ~seen]).all()
    # the map from these vectors is the map without them
    np.testing.assert_array_equal(ds.crop_type.values, cstore.open_cube(store, chunks=None).crop_type.values)
    found = verify_store(copy)  # the 4-d array's tiles are checked like the others
    assert found.ok and found.tiles_checked > 0, found.summary()
    shard = max(Path(copy, "season_features", "c").rglob("*"), key=lambda f: f.stat().st_size if f.is_file() else 0)
    shard.write_bytes(shard.read_bytes()[:-4096])  # a shard cut short, as a dying writer leaves it
    damaged = verify_store(copy)
    assert not damaged.ok and {p.array for p in damaged.problems} == {"season_features"}, damaged.summary()


def test_classify__bad_inputs_say_what_and_what_to_do(demo: dict, tmp_path: Path) -> None:
    store = demo["ingest"]["store"]
    model_dir = Path(demo["classify"]["model"])
    if not (model_dir / "model.json").exists():
        run_train(_train_config(demo, validation={"folds": 2, "seeds": [0], "group": "block", "baseline": False}))
    # a model folder from another major format version
    other = tmp_path / "old-model"
    other.mkdir()
    meta = json.loads((model_dir / "model.json").read_text())
    (other / "model.json").write_text(json.dumps({**meta, "format": "harvest-crop-model/0"}))
    (other / "model.txt").write_text((model_dir / "model.txt").read_text())
    with pytest.raises(ConfigError, match=r"has format 'harvest-crop-model/0', this version reads .*retrain"):
        CropModel.load(str(other))
    # a cube that lacks a band the model was trained on
    with pytest.raises(ConfigError, match=r"lacks band\(s\) \['nir'\].*ingest them"):
        run_predict(PredictConfig(store=store, model=str(model_dir), band_names={"nir": "nir_missing"}))
    # ... also when the model was trained on a cube of other names, and predict does not rename
    renamed = tmp_path / "renamed-model"
    shutil.copytree(model_dir, renamed)
    meta_renamed = json.loads((renamed / "model.json").read_text())
    meta_renamed["trained_on"]["band_names"] = {"nir": "B08"}
    (renamed / "model.json").write_text(json.dumps(meta_renamed))
    with pytest.raises(ConfigError, match=r"\(read as \{'nir': 'B08'\} by the model's training band_names\) "
                                          r"lacks band\(s\) \['nir'\]"):
        plan_predict(PredictConfig(store=store, model=str(renamed)), CropModel.load(str(renamed)))
    assert plan_predict(PredictConfig(store=store, model=str(renamed), band_names={}),
                        CropModel.load(str(renamed))).bands["nir"] == "nir"
    # a parcels file that is not there
    with pytest.raises(ConfigError, match=r"parcels file '.*nowhere.gpkg' does not exist; fix predict.parcels.path"):
        run_predict(PredictConfig(store=store, model=str(model_dir), parcels={"path": str(tmp_path / "nowhere.gpkg")}))
    # a season the cube does not cover
    with pytest.raises(ConfigError, match=r"has no date in the 2019 season"):
        run_predict(PredictConfig(store=store, model=str(model_dir), years=[2019]))
    # a model whose season runs two months past the cube's dates: those periods would be guessed
    longer = tmp_path / "longer-model"
    shutil.copytree(model_dir, longer)
    meta_longer = json.loads((longer / "model.json").read_text())
    meta_longer["features"]["season"]["end"] = "12-20"
    (longer / "model.json").write_text(json.dumps(meta_longer))
    last = demo["season"].spec.years[-1]
    with pytest.raises(ConfigError, match=rf"has no date in \d+ period\(s\) of the {last} season that the model "
                                          r"learnt from observations .*Ingest those dates, drop"):
        run_predict(PredictConfig(store=store, model=str(longer), years=[last]))
    with pytest.raises(ConfigError, match=r"covers no whole season .*season \d+ not mapped: the cube has no date"):
        run_predict(PredictConfig(store=store, model=str(longer)))
    # labels that all lie outside the cube
    import geopandas as gpd
    from shapely.geometry import box

    far = tmp_path / "far.geojson"
    gpd.GeoDataFrame({"field_id": ["a"], "crop_surveyed": ["wheat"]},
                     geometry=[box(10, 10, 10.01, 10.01)], crs="EPSG:4326").to_file(far)
    with pytest.raises(DataError, match=r"none of the 1 labels lies inside the cube"):
        run_train(_train_config(demo, labels={**_train_config(demo).labels.model_dump(), "path": str(far)}))
    # labels of a season the cube does not hold
    with pytest.raises(DataError, match=r"no observation falls in the 2019 season .*pick a covered year"):
        run_train(_train_config(demo, year=2019))
    # a class with fewer samples than the folds need
    fm_labels = tmp_path / "two.gpkg"
    src = gpd.read_file(demo["season"].field_labels)
    one_maize = pd.concat([src[src.crop_surveyed == "wheat"].head(6), src[src.crop_surveyed == "maize"].head(1)])
    one_maize.to_file(fm_labels)
    # ... however many pixels it has: folds split fields (the default group of sampled labels)
    cfg = _train_config(demo, labels={**_train_config(demo).labels.model_dump(), "path": str(fm_labels)},
                        validation={"folds": 2, "seeds": [0], "baseline": False})
    with pytest.raises(DataError, match=r"class\(es\) \['maize'\] have fewer than 2 validation groups "
                                        r"\(by 'field_id': \{'maize': 1\}\)"):
        run_train(cfg)
    # by default the folds split the sampled labels by field, never a field's pixels
    fields = tmp_path / "fields.gpkg"
    far_field = gpd.GeoDataFrame({"field_id": ["far-away"], "crop_surveyed": ["wheat"]},
                                 geometry=[box(10, 10, 10.01, 10.01)], crs="EPSG:4326").to_crs(src.crs)
    pd.concat([*(src[src.crop_surveyed == c].head(6) for c in ("wheat", "maize")), far_field]).to_file(fields)
    result = run_train(_train_config(demo, model=str(tmp_path / "m"),
                                     labels={**_train_config(demo).labels.model_dump(), "path": str(fields)},
                                     validation={"folds": 3, "seeds": [0], "baseline": False}))
    field_of = result.samples["sample_id"].str.split("@").str[0].to_numpy()
    assert result.report["split"]["by"] == "field_id" and result.report["n_groups"] == len(set(field_of)) >= 10
    assert len(field_of) > 5 * len(set(field_of))  # many pixels per field
    fold = pd.Series(result.cv.fold_of[0])
    assert (fold.groupby(field_of).nunique() == 1).all() and fold.nunique() == 3
    # a label off the cube is left out and named, the rest trains
    assert any("1 label(s) lie outside the cube and were not sampled (e.g. ['far-away'])" in i
               for i in result.issues), result.issues


def test_classify__the_prediction_benchmark_runs_on_a_cube_and_model(demo: dict, tmp_path: Path) -> None:
    """``benchmarks/classify.py`` (our tile worker against LightGBM's predict on the same rows)
    on the demo's cube and model, two tiles: it must keep running as the worker changes."""
    import subprocess
    import sys

    model_dir = Path(demo["classify"]["model"])
    if not (model_dir / "model.json").exists():
        run_train(_train_config(demo, validation={"folds": 2, "seeds": [0], "group": "block", "baseline": False}))
    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.classify", "--quick", "--model", str(model_dir),
                           "--store", demo["ingest"]["store"], "--json", str(out)],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    records = json.loads(out.read_text())["records"]
    assert {r["tool"] for r in records} == {"harvest-cluster", "lightgbm-predict"}
    for r in records:
        assert r["extra"]["pixels"] > 1000 and r["extra"]["px_per_s_per_core"] > 0
        assert r["extra"]["kazakhstan_core_hours"] == pytest.approx(2.5e9 / r["extra"]["px_per_s_per_core"] / 3600)
    assert "core-hours" in proc.stdout
