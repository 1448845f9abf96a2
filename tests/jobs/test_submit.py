"""``harvest submit`` without a cluster: runtime env, masking, token lookup, resources.

The end-to-end path (a real multi-node cluster over HTTP) is in
tests/cluster_multinode/test_multinode.py.
"""

from __future__ import annotations

import pytest

from cluster.config import WorkerResources
from cluster.errors import ConfigError, ResourceError
from cluster.submit import (
    auth_headers,
    build_runtime_env,
    check_resources,
    mask_env,
    node_resources_from_summary,
    read_auth_token,
    redact,
)
from jobs import submit

ENV = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:5555",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY",
    "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
    "AWS_REGION": "eu-central-1",
    "HOME": "/nonexistent",
    "UNRELATED": "x",
}


def test_build_runtime_env__forwards_s3_settings_and_excludes_data(tmp_path):
    env = build_runtime_env(tmp_path, environ=ENV)
    assert env["working_dir"] == str(tmp_path.resolve())
    assert {".venv", "data", "outputs"} <= set(env["excludes"])
    assert env["env_vars"] == {k: v for k, v in ENV.items() if k.startswith("AWS_")}


def test_build_runtime_env__no_working_dir_no_env():
    assert build_runtime_env(None, environ={}) == {}


def test_build_runtime_env__missing_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="is not a folder"):
        build_runtime_env(tmp_path / "nope", environ={})


def test_mask_env__hides_secrets_keeps_the_rest():
    masked = mask_env(ENV)
    assert masked["AWS_SECRET_ACCESS_KEY"] == "***"
    assert masked["AWS_ACCESS_KEY_ID"] == "***"
    assert masked["AWS_REGION"] == "eu-central-1"
    assert "s3cr3t-value" not in str(masked)


def test_redact__replaces_every_occurrence():
    assert redact("a s3cr3t-value b s3cr3t-value", ["s3cr3t-value", ""]) == "a *** b ***"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"RAY_AUTH_TOKEN": "tok-env", "RAY_AUTH_TOKEN_PATH": "FILE"}, "tok-env"),
        ({"RAY_AUTH_TOKEN_PATH": "FILE"}, "tok-file"),
        ({"HOME": "HOME"}, "tok-home"),
        ({"HOME": "/nonexistent"}, None),
    ],
    ids=["env-wins", "path", "home-default", "none"],
)
def test_read_auth_token__follows_rays_order(tmp_path, env, expected):
    (tmp_path / "tok").write_text("tok-file\n")
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("tok-home")
    env = {k: v.replace("FILE", str(tmp_path / "tok")).replace("HOME", str(tmp_path))
           for k, v in env.items()}
    assert read_auth_token(env) == expected
    assert auth_headers(expected) == ({"Authorization": f"Bearer {expected}"} if expected else {})


def test_read_auth_token__unreadable_path_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="RAY_AUTH_TOKEN_PATH=.*cannot be read"):
        read_auth_token({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    ("requested", "nodes", "message"),
    [
        ({"GPU": 1}, [{"CPU": 4.0}, {"CPU": 2.0}], r"GPU=1 per node .*largest offer: GPU=0; 2 alive"),
        ({"CPU": 8}, [{"CPU": 4.0}], r"CPU=8 per node .*largest offer: CPU=4"),
        ({"CPU": 2, "GPU": 1}, [{"CPU": 4.0}, {"CPU": 1.0, "GPU": 1.0}], r"no single node"),
        ({"CPU": 1}, [], r"no alive nodes"),
    ],
    ids=["gpu-on-cpu-cluster", "too-many-cpus", "split-across-nodes", "no-nodes"],
)
def test_check_resources__impossible_requests_fail_with_a_clear_message(requested, nodes, message):
    with pytest.raises(ResourceError, match=message):
        check_resources(requested, nodes)


@pytest.mark.parametrize(
    "requested",
    [{}, {"CPU": 0}, {"CPU": 1, "GPU": 0.5}, {"memory": 2**30}],
    ids=["nothing", "zero", "fractional-gpu", "memory"],
)
def test_check_resources__satisfiable_requests_pass(requested):
    check_resources(requested, [{"CPU": 1.0}, {"CPU": 2.0, "GPU": 1.0, "memory": 4.0 * 2**30}])


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"num_gpu": 1}, r"resources has unknown keys \['num_gpu'\]; expected some of \['memory_mib', 'num_cpus'"),
        ({"num_cpus": -1}, r"num_cpus: Input should be greater than or equal to 0 \(got -1\)"),
        ({"num_gpus": float("inf")}, r"num_gpus: Input should be a finite number"),
        ({"resources": {"x": -2}}, r"custom resource x=-2.0 is invalid; expected a finite number >= 0"),
    ],
    ids=["unknown-key", "negative", "infinite", "negative-custom"],
)
def test_worker_resources__bad_blocks_fail_with_a_clear_message(block, message):
    with pytest.raises(ConfigError, match=message):
        WorkerResources.from_mapping(block, where="resources")


def test_worker_resources__to_ray_in_rays_names_with_the_jobs_defaults():
    # what harvest submit checks is what the pool asks: missing keys take the job's defaults
    assert WorkerResources.from_mapping({"num_gpus": 1, "resources": {"x": 2}}, where="resources").to_ray() == {
        "CPU": 1, "GPU": 1, "memory": 1024 * 2**20, "x": 2}
    assert WorkerResources(num_cpus=0, memory_mib=None).to_ray() == {}  # an entrypoint that reserves nothing
    with pytest.raises(ResourceError, match=r"a worker of the job asks for GPU=1 per node"):
        WorkerResources(num_gpus=1).check_fits([{"CPU": 4.0, "memory": 8.0 * 2**30}])


def test_parse_args__resources_from_the_config_and_the_flags(tmp_path, monkeypatch):
    (tmp_path / "job.yaml").write_text("resources: {num_cpus: 2, memory_mib: 2048}\n")
    (tmp_path / "none.yaml").write_text("store: cube.zarr\n")
    monkeypatch.chdir(tmp_path)
    base = ["ingest", "--address", "http://127.0.0.1:9"]
    config = submit._parse_args([*base, "--config", "job.yaml", "--worker-num-gpus", "0.5",
                                 "--entrypoint-num-cpus", "1"])
    assert config.worker == WorkerResources(num_cpus=2, num_gpus=0.5, memory_mib=2048)
    assert config.entrypoint.to_ray() == {"CPU": 1}
    plain = submit._parse_args([*base, "--config", "none.yaml"])
    assert plain.worker is None and plain.entrypoint.to_ray() == {}  # no block: nothing checked or reserved


def test_node_resources_from_summary__reads_alive_nodes_only():
    summary = {"data": {"summary": [
        {"raylet": {"state": "ALIVE", "resourcesTotal": {"CPU": 1, "GPU": 1}}},
        {"raylet": {"state": "DEAD", "resourcesTotal": {"CPU": 64}}},
    ]}}
    assert node_resources_from_summary(summary) == [{"CPU": 1.0, "GPU": 1.0}]
    with pytest.raises(ResourceError, match="cannot read node resources"):
        node_resources_from_summary({"result": False})


def test_submit_config__entrypoint_is_relative_to_the_working_dir(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "ingest.yaml").write_text("cube_uri: s3://b/c\n")
    monkeypatch.chdir(tmp_path)
    config = submit.SubmitConfig(job="ingest", config="configs/ingest.yaml",
                                 address="http://127.0.0.1:8265")
    assert config.entrypoint_command() == "python -m jobs.ingest --config configs/ingest.yaml"
    remote = submit.SubmitConfig(job="indices", config="s3://b/indices.yaml",
                                 address="http://h:8265", python="/opt/py/bin/python")
    assert remote.entrypoint_command() == (
        "/opt/py/bin/python -m jobs.indices --config s3://b/indices.yaml")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"job": "ingset"}, "unknown job 'ingset'"),
        ({"address": "127.0.0.1:6379"}, "not a dashboard URL"),
        ({"config": "../outside.yaml"}, "outside the working dir"),
        ({"config": "missing.yaml"}, "does not exist"),
    ],
    ids=["typo-job", "gcs-address", "config-outside", "config-missing"],
)
def test_submit_config__bad_values_fail_with_a_clear_message(tmp_path, monkeypatch, kwargs, message):
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "outside.yaml").write_text("{}\n")
    monkeypatch.chdir(work)
    args = {"job": "ingest", "config": "missing.yaml", "address": "http://127.0.0.1:8265", **kwargs}
    with pytest.raises(ConfigError, match=message):
        submit.SubmitConfig(**args).entrypoint_command()


def test_main__unreachable_cluster_exits_3(tmp_path, monkeypatch, capsys):
    (tmp_path / "job.yaml").write_text("resources: {num_cpus: 1}\n")
    monkeypatch.chdir(tmp_path)
    code = submit.main(["ingest", "--config", "job.yaml", "--address", "http://127.0.0.1:9"])
    assert code == 3
    assert "cannot reach the Ray dashboard" in capsys.readouterr().err


def test_main__bad_resources_block_exits_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "job.yaml").write_text("resources: {gpus: 1}\n")
    monkeypatch.chdir(tmp_path)
    code = submit.main(["ingest", "--config", "job.yaml", "--address", "http://127.0.0.1:9"])
    assert code == 2
    assert "unknown keys ['gpus']" in capsys.readouterr().err
