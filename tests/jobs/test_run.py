"""The run config: every shipped example and the KubeRay ConfigMap validate, step by step."""

from __future__ import annotations

from pathlib import Path

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


def test_run__kuberay_configmap_is_a_valid_run_config() -> None:
    doc = yaml.safe_load((ROOT / "infra" / "k8s" / "run-config.yaml").read_text())
    cfg = parse_config(RunConfig, yaml.safe_load(doc["data"]["run.yaml"]))
    assert [name for name, _ in cfg.steps()] == ["ingest", "indices", "aggregate"]


def test_run__a_typo_in_a_later_step_fails_before_any_work() -> None:
    cfg = parse_config(RunConfig, {"store": "c.zarr", "ingest": {"scenes": ["a.tif"], "sensor": "sentinel2-l2a"},
                                   "indices": {"kernelz": ["ndvi"]}})
    with pytest.raises(ConfigError, match=r"invalid run.indices config:\n  kernelz: unknown key"):
        cfg.steps()
