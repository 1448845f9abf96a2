"""KubeRay manifests: lint, built-in kinds against the Kubernetes schema, checkov,
and the invariants a CRD schema would not catch (or that KubeRay gets wrong silently).
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterator

import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from tests.infra.conftest import INFRA, REPO_ROOT, load_all, pinned_ray_version

K8S = INFRA / "k8s"
K8S_VERSION = "1.32.0"  # the kubectl client here; EKS supports it


def _kustomize_build() -> list[dict]:
    result = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True,
                            text=True, timeout=60)
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize infra/k8s failed: {result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _all_manifests() -> list[dict]:
    """The kustomize build (RayCluster and friends) plus the standalone RayJob."""
    try:
        docs = _kustomize_build()
    except FileNotFoundError:  # no kubectl: the raw files are the same objects
        docs = [d for p in sorted(K8S.glob("*.yaml")) if p.name not in
                ("kustomization.yaml", "rayjob.yaml") for d in load_all(p)]
    return docs + load_all(K8S / "rayjob.yaml")


MANIFESTS = _all_manifests()


def _cluster_specs() -> Iterator[tuple[str, dict]]:
    for doc in MANIFESTS:
        if doc["kind"] == "RayCluster":
            yield f"RayCluster/{doc['metadata']['name']}", doc["spec"]
        elif doc["kind"] == "RayJob":
            yield "RayJob", doc["spec"]["rayClusterSpec"]


CLUSTER_SPECS = list(_cluster_specs())
CLUSTER_IDS = [name for name, _ in CLUSTER_SPECS]


def _groups(spec: dict) -> Iterator[tuple[str, dict]]:
    yield "head", spec["headGroupSpec"]
    for group in spec["workerGroupSpecs"]:
        yield group["groupName"], group


def test_yamllint__infra_is_clean():
    config = YamlLintConfig(file=str(INFRA / ".yamllint"))
    problems = []
    for path in sorted(INFRA.rglob("*.yaml")) + sorted(INFRA.rglob("*.yml")):
        for problem in linter.run(path.read_text(), config, str(path)):
            problems.append(f"{path.relative_to(REPO_ROOT)}:{problem.line}: {problem.desc}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "doc", [d for d in MANIFESTS if "." not in d["apiVersion"].split("/")[0]
            or d["apiVersion"].startswith("networking.k8s.io")],
    ids=lambda d: f"{d['kind']}/{d['metadata'].get('name')}",
)
def test_builtin_kinds__valid_against_kubernetes_schema(doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _pod_templates() -> Iterator[tuple[str, dict]]:
    for name, spec in CLUSTER_SPECS:
        for group, body in _groups(spec):
            yield f"{name}/{group}", body["template"]
    for doc in MANIFESTS:
        if doc["kind"] == "RayJob":
            yield "RayJob/submitter", doc["spec"]["submitterPodTemplate"]


POD_TEMPLATES = list(_pod_templates())


@pytest.mark.parametrize("template", [t for _, t in POD_TEMPLATES],
                         ids=[n for n, _ in POD_TEMPLATES])
def test_pod_templates__valid_against_kubernetes_schema(template):
    """Pod templates inside the CRs are core PodTemplateSpecs: validate them as such."""
    template = copy.deepcopy(template)
    template["spec"].setdefault("containers", [])
    wrapper = {"apiVersion": "v1", "kind": "PodTemplate",
               "metadata": {"name": "check"}, "template": template}
    kubernetes_validate.validate(wrapper, K8S_VERSION, strict=True)


@pytest.mark.parametrize("template", [t for _, t in POD_TEMPLATES],
                         ids=[n for n, _ in POD_TEMPLATES])
def test_pod_templates__use_the_irsa_service_account(template):
    assert template["spec"]["serviceAccountName"] == "harvest-ray"


@pytest.mark.parametrize("spec", [s for _, s in CLUSTER_SPECS], ids=CLUSTER_IDS)
def test_ray_cluster__ray_start_params_are_strings(spec):
    for group, body in _groups(spec):
        for key, value in body["rayStartParams"].items():
            assert isinstance(value, str), f"{group}: rayStartParams.{key}={value!r} must be a string"


@pytest.mark.parametrize("spec", [s for _, s in CLUSTER_SPECS], ids=CLUSTER_IDS)
def test_ray_cluster__gpu_group_requests_gpus_and_tolerates_gpu_taints(spec):
    groups = dict(_groups(spec))
    gpu = groups["gpu"]
    pod = gpu["template"]["spec"]
    (container,) = pod["containers"]
    limits = container["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) >= 1
    assert gpu["rayStartParams"]["num-gpus"] == limits["nvidia.com/gpu"]
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert pod["nodeSelector"]
    for name, body in groups.items():  # CPU pods must not see the node's GPUs
        if name not in ("gpu", "head"):
            c = body["template"]["spec"]["containers"][0]
            assert "nvidia.com/gpu" not in c["resources"].get("limits", {})
            assert {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"} in c["env"]


@pytest.mark.parametrize("spec", [s for _, s in CLUSTER_SPECS], ids=CLUSTER_IDS)
def test_ray_cluster__shm_is_a_memory_volume(spec):
    for group, body in _groups(spec):
        pod = body["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        assert "/dev/shm" in mounts, group
        assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory", group


@pytest.mark.parametrize("spec", [s for _, s in CLUSTER_SPECS], ids=CLUSTER_IDS)
def test_ray_cluster__dashboard_internal_only_with_token_auth(spec):
    assert spec["headGroupSpec"].get("serviceType", "ClusterIP") == "ClusterIP"
    assert spec["authOptions"]["mode"] == "token"
    for doc in MANIFESTS:
        if doc["kind"] in ("Service", "Ingress"):
            assert doc.get("spec", {}).get("type") not in ("LoadBalancer", "NodePort"), doc


@pytest.mark.parametrize("spec", [s for _, s in CLUSTER_SPECS], ids=CLUSTER_IDS)
def test_ray_cluster__ray_version_and_image_tags_match_pyproject(spec):
    pinned = pinned_ray_version()
    assert spec["rayVersion"].startswith(pinned + "."), spec["rayVersion"]
    for group, body in _groups(spec):
        image = body["template"]["spec"]["containers"][0]["image"]
        tag = image.rsplit(":", 1)[1]
        assert tag.startswith(spec["rayVersion"]), f"{group}: {image} does not carry Ray {spec['rayVersion']}"


@pytest.mark.parametrize("spec", [s for _, s in CLUSTER_SPECS], ids=CLUSTER_IDS)
def test_ray_cluster__autoscaling_bounds(spec):
    assert spec["enableInTreeAutoscaling"] is True
    for group, body in _groups(spec):
        if group != "head":
            assert 0 <= body["minReplicas"] <= body["replicas"] <= body["maxReplicas"], group


def test_rayjob__runs_the_pipeline_and_cleans_up():
    (job,) = [d for d in MANIFESTS if d["kind"] == "RayJob"]
    spec = job["spec"]
    assert spec["entrypoint"].startswith("python -m jobs.run --config ")
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] > 0


def test_rayjob__its_config_loads_with_the_environment_the_manifests_set(tmp_path, monkeypatch):
    """The entrypoint reads run-config.yaml with every HARVEST_ variable the pods set (the
    head's HARVEST_AUTOSCALING=on once broke every job: 'autoscaling: unknown key')."""
    import argparse

    from cluster.config import load_config
    from jobs._cli import overrides
    from jobs.run import RunConfig

    (config_map,) = [d for d in MANIFESTS if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "harvest-run-config"]
    path = tmp_path / "run.yaml"
    path.write_text(config_map["data"]["run.yaml"])
    env = {e["name"]: e["value"] for _, spec in CLUSTER_SPECS for _, group in _groups(spec)
           for c in group["template"]["spec"]["containers"] for e in c.get("env", [])
           if e["name"].startswith("HARVEST_") and "value" in e}
    assert env.get("HARVEST_AUTOSCALING") == "on"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = load_config(RunConfig, path, overrides(argparse.Namespace(overrides=[])))
    assert config.store.startswith("s3://")


def test_docker__base_images_pin_the_ray_version():
    pinned = pinned_ray_version()
    cpu = (INFRA / "docker" / "Dockerfile").read_text()
    gpu = (INFRA / "docker" / "Dockerfile.gpu").read_text()
    assert f"ARG RAY_IMAGE=rayproject/ray:{pinned}." in cpu and "-py311\n" in cpu
    assert f"ARG RAY_IMAGE=rayproject/ray:{pinned}." in gpu and "-py311-gpu\n" in gpu
    assert "numba-cuda" in gpu


def test_k8s__checkov_has_no_failed_checks(checkov, tmp_path):
    built = tmp_path / "built.yaml"
    built.write_text(yaml.safe_dump_all(MANIFESTS))
    result = subprocess.run(
        [str(checkov), "-f", str(built), "--framework", "kubernetes", "--skip-download",
         "--compact", "--quiet"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
