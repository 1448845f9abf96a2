"""The Ray cluster-launcher config for AWS, validated offline against Ray's schema.

Uses ``ray.autoscaler._private.util.{prepare_config, validate_config}``: private
API (ray 2.60.0), but it is exactly what ``ray up`` runs before touching the cloud,
and it needs no credentials. Re-check the import on Ray upgrades.
"""

from __future__ import annotations

import copy

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.infra.conftest import INFRA, pinned_ray_version

CONFIG = yaml.safe_load((INFRA / "ray-cluster-aws.yaml").read_text())


def test_launcher__passes_rays_schema():
    validate_config(prepare_config(copy.deepcopy(CONFIG)))


def test_launcher__schema_check_catches_typos():
    broken = copy.deepcopy(CONFIG)
    broken["available_node_types"]["cpu_worker"]["min_workerz"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))


def test_launcher__every_node_uses_the_restricted_instance_profile():
    for name, node_type in CONFIG["available_node_types"].items():
        arn = node_type["node_config"]["IamInstanceProfile"]["Arn"]
        assert ":instance-profile/" in arn and "ray-autoscaler" not in arn, name
        assert node_type["node_config"]["MetadataOptions"]["HttpTokens"] == "required", name


def test_launcher__token_auth_and_pinned_images():
    run_options = " ".join(CONFIG["docker"]["run_options"])
    assert "RAY_AUTH_MODE=token" in run_options
    assert any("auth_token" in target for target in CONFIG["file_mounts"])
    pinned = pinned_ray_version()
    assert CONFIG["docker"]["image"].startswith(f"rayproject/ray:{pinned}.")
    assert "--dashboard-host=127.0.0.1" in " ".join(CONFIG["head_start_ray_commands"])
