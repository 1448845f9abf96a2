"""The run config: every shipped example and the KubeRay ConfigMap validate, step by step."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from cluster.config import load_config, parse_config
from cluster.errors import ConfigError
from jobs.run import RunConfig

ROOT = Path(__file__).resolve().parents[2]


def test_run__example_config_validates_every_step() -> None:
    cfg = load_config(RunConfig, ROOT / "examples" / "run.yaml")
    steps = dict(cfg.steps())
    assert list(steps) == ["ingest", "indices", "classify", "aggregate"]
    assert steps["ingest"].store == steps["classify"].store == steps["aggregate"].store == cfg.store
    assert steps["aggregate"].crop_map == "crop_type" and steps["classify"].smooth_px == 3
    assert steps["indices"].max_actors == 64 and steps["ingest"].resources.num_cpus == 1
    assert [f.crop for f in cfg.forecasts()] == ["wheat", "barley"]


def test_run__kuberay_configmap_is_a_valid_run_config() -> None:
    doc = yaml.safe_load((ROOT / "infra" / "k8s" / "run-config.yaml").read_text())
    cfg = parse_config(RunConfig, yaml.safe_load(doc["data"]["run.yaml"]))
    assert [name for name, _ in cfg.steps()] == ["ingest", "indices", "aggregate"]


def test_run__a_typo_in_a_later_step_fails_before_any_work() -> None:
    cfg = parse_config(RunConfig, {"store": "c.zarr", "ingest": {"scenes": ["a.tif"], "sensor": "sentinel2-l2a"},
                                   "indices": {"kernelz": ["ndvi"]}})
    with pytest.raises(ConfigError, match=r"invalid run.indices config:\n  kernelz: unknown key"):
        cfg.steps()


def test_run__with_a_classify_step_aggregate_reads_its_crop_map_unless_told_otherwise() -> None:
    aggregate = {"regions": {"path": "r.gpkg", "id_column": "id"}}
    classify = {"model": "m"}

    def crop_map(data: dict) -> str | None:
        return dict(parse_config(RunConfig, {"store": "c.zarr", **data}).steps())["aggregate"].crop_map

    assert crop_map({"classify": classify, "aggregate": aggregate}) == "crop_type"
    assert crop_map({"classify": classify, "aggregate": {**aggregate, "crop_map": None}}) is None
    assert crop_map({"classify": classify, "aggregate": {**aggregate, "crop_map": "my_map"}}) == "my_map"
    assert crop_map({"aggregate": aggregate}) is None


def _forecast_section(**extra: object) -> dict:
    return {"crops": ["wheat", "maize"], "yields": {"paths": ["y.csv"]}, "calendar": {"paths": ["c.csv"]},
            "as_of": "2025-07-15", "out_dir": "out/fc", **extra}


def test_run__forecast_section_is_one_config_per_crop_checked_up_front() -> None:
    base = {"store": "c.zarr", "aggregate": {"regions": {"path": "r.gpkg"}}}
    cfg = parse_config(RunConfig, {**base, "forecast": _forecast_section(min_train_years=3)})
    fcs = cfg.forecasts()
    assert [f.crop for f in fcs] == ["wheat", "maize"] and [f.out_dir for f in fcs] == ["out/fc/wheat", "out/fc/maize"]
    assert all(f.min_train_years == 3 and f.series == () for f in fcs)
    bad = [({**base, "forecast": {k: v for k, v in _forecast_section().items() if k != "crops"}}, "needs 'crops'"),
           ({**base, "forecast": _forecast_section(series=[{"paths": ["s.csv"]}])}, "takes no 'series'"),
           ({"store": "c.zarr", "forecast": _forecast_section()}, "add an 'aggregate' section"),
           ({**base, "forecast": _forecast_section(lead_timez=["14-days"])}, r"run.forecast \(wheat\).* is invalid")]
    for data, message in bad:
        with pytest.raises(ConfigError, match=message):
            parse_config(RunConfig, data).forecasts()


def test_series_from_statistics__crop_map_areas_and_all_cropland() -> None:
    from cluster.forecast.from_cube import series_from_statistics

    stats = pd.DataFrame({"region_id": ["R1", "R1", "R2"], "crop": ["wheat", "maize", "wheat"],
                          "date": pd.to_datetime(["2025-06-01"] * 3), "index": "ndvi", "mean": [0.5, 0.6, 0.7],
                          "area_ha": [100.0, 50.0, 80.0]})
    areas = pd.DataFrame({"region_id": ["R1"], "season_year": [2025], "crop": ["wheat"], "estimated_area_ha": [90.0]})
    wheat = series_from_statistics(stats, "wheat", areas).set_index("region_id")
    assert wheat.loc["R1", "area_ha"] == 90.0 and wheat.loc["R2", "area_ha"] == 80.0  # estimate where there is one
    assert wheat.loc["R1", "area_source"].startswith("crop map (error-adjusted")
    assert wheat.loc["R2", "area_source"] == "crop map (mapped pixels)"
    with pytest.raises(ConfigError, match="'oats' is not a class of the crop map"):
        series_from_statistics(stats, "oats")
    every = series_from_statistics(stats.assign(crop="all"), "oats")
    assert len(every) == 3 and set(every["crop"]) == {"oats"} and "area_ha" not in every


@pytest.mark.ray
@pytest.mark.usefixtures("ray_session")
def test_run__ingest_to_bulletin_from_one_config(tmp_path: Path) -> None:
    import json

    from cluster.demo import make_demo_season
    from jobs import run as run_job
    from jobs.demo import SIZES, demo_configs

    season = make_demo_season(tmp_path / "season", SIZES["small"])
    steps = demo_configs(season, tmp_path)
    last = season.spec.years[-1]
    config = {"store": steps["ingest"].pop("store"), "ingest": steps["ingest"],
              "indices": {"kernels": ["ndvi", "evi"]},
              "aggregate": {**{k: v for k, v in steps["aggregate"].items() if k not in ("store", "crop_map")}},
              "forecast": {"crops": ["wheat"], "yields": {"paths": [str(season.yield_history)]},
                           "calendar": {"paths": [str(season.crop_calendar)]}, "as_of": f"{last}-08-15",
                           "min_train_years": 3, "spinup_days": 0, "lead_times": ["14-days"],
                           "learners": ["ridge"], "out_dir": str(tmp_path / "forecast")}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    assert run_job.main(["--config", str(path), "--progress", "none"]) == 0
    table = pd.read_parquet(tmp_path / "forecast" / "wheat" / "forecast.parquet")
    assert {"region", "country", "global"} <= set(table["level"]) and table["yield_t_ha"].notna().all()
    assert "Crop bulletin: wheat, season" in (tmp_path / "forecast" / "bulletin.html").read_text(encoding="utf-8")
    report = json.loads(Path(f"{config['store']}.harvest/run-report.json").read_text())
    assert [s["job"] for s in report["steps"]] == ["ingest", "indices", "aggregate"]
    assert report["forecast"]["wheat"]["forecast_parquet"].endswith("forecast.parquet")
