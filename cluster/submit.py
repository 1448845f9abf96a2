"""Submitting jobs to a Ray cluster: runtime environment, secrets, token auth, resources.

The Ray-free half of ``harvest submit`` (``jobs/submit.py`` holds the Ray half):
everything here is plain Python so it can be tested without a cluster and reused
from notebooks.

- :func:`build_runtime_env` uploads the project (``working_dir``) without virtual
  environments, data or outputs, and passes the S3 endpoint and credentials from the
  submitter's environment to the job as ``env_vars``.
- :func:`mask_env` / :func:`redact` hide secret values whenever an environment, a
  config or a log line is printed.
- :func:`read_auth_token` / :func:`auth_headers` follow Ray's token lookup order so
  that a submission to a cluster with ``RAY_AUTH_MODE=token`` carries the token even
  when the submitter's own ``RAY_AUTH_MODE`` is not ``token`` (Ray 2.60's
  ``JobSubmissionClient`` only adds the header itself in that case).
- :func:`check_resources` refuses, before submission, a request that no node of
  the cluster can satisfy (e.g. a GPU on a CPU-only cluster), instead of a job that
  stays PENDING forever. The request is a :class:`~cluster.config.WorkerResources`
  (the job config's ``resources`` block, or the entrypoint's flags): the one
  resources model of configs, the actor pool and submission.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cluster.errors import ConfigError, ResourceError

__all__ = [
    "FORWARDED_ENV_VARS",
    "SECRET_ENV_VARS",
    "WORKING_DIR_EXCLUDES",
    "auth_headers",
    "build_runtime_env",
    "check_resources",
    "forwarded_env",
    "mask_env",
    "node_resources_from_summary",
    "read_auth_token",
    "redact",
]

FORWARDED_ENV_VARS: tuple[str, ...] = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
)
"""Variables copied from the submitter's environment into the job's ``env_vars``.

The S3 endpoint, region and credentials of the standard AWS chain; s3fs/botocore on
every worker read them. On Kubernetes/EC2 prefer IRSA/instance roles and leave the
keys unset: then nothing secret travels with the job.
"""

SECRET_ENV_VARS: frozenset[str] = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "RAY_AUTH_TOKEN"}
)
"""Variables whose values are never printed (masked as ``***``)."""

_SECRET_MARKERS = ("SECRET", "TOKEN", "PASSWORD", "CREDENTIAL", "PRIVATE_KEY")

WORKING_DIR_EXCLUDES: tuple[str, ...] = (
    ".git",
    ".venv",
    ".venv-*",
    "data",
    "outputs",
    "out",
    "*.zarr",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    "*.egg-info",
    "build",
    "harvest-demo",
)
"""Never uploaded with the working dir (gitwildmatch patterns, like ``.rayignore``).

Ray caps the zipped working dir at the gRPC message size (512 MiB); data belongs
in the object store, code in the image or the working dir.
"""

MASK = "***"


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's value must be masked.

    Example:
        >>> is_secret_name("AWS_SECRET_ACCESS_KEY"), is_secret_name("AWS_REGION")
        (True, False)
    """
    upper = name.upper()
    return upper in SECRET_ENV_VARS or any(m in upper for m in _SECRET_MARKERS)


def mask_env(env: Mapping[str, str]) -> dict[str, str]:
    """Return a copy of ``env`` that is safe to print: secret values become ``***``.

    Example:
        >>> mask_env({"AWS_REGION": "eu-west-1", "AWS_SECRET_ACCESS_KEY": "abc"})
        {'AWS_REGION': 'eu-west-1', 'AWS_SECRET_ACCESS_KEY': '***'}
    """
    return {k: (MASK if is_secret_name(k) and v else v) for k, v in env.items()}


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret value in ``text`` by ``***``.

    Used on streamed job logs, so that a job that prints its environment does not
    leak the submitter's credentials into the terminal or CI logs. Values shorter
    than 4 characters are left alone (they would mask ordinary words).

    Example:
        >>> redact("key=abcd1234 ok", ["abcd1234"])
        'key=*** ok'
    """
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def forwarded_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The :data:`FORWARDED_ENV_VARS` set (and non-empty) in ``environ``."""
    environ = os.environ if environ is None else environ
    return {k: environ[k] for k in FORWARDED_ENV_VARS if environ.get(k)}


def build_runtime_env(
    working_dir: str | os.PathLike[str] | None,
    *,
    environ: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    excludes: Sequence[str] = WORKING_DIR_EXCLUDES,
) -> dict[str, Any]:
    """The job's Ray ``runtime_env``: working dir upload plus forwarded S3 settings.

    Args:
        working_dir: Local folder uploaded as the job's working dir (``.`` for the
            project), or None when the code is baked into the cluster image.
        environ: Where to read :data:`FORWARDED_ENV_VARS` from; default ``os.environ``.
        extra_env: More ``env_vars`` for the job (win over forwarded ones).
        excludes: Patterns never uploaded; ``.gitignore`` and ``.rayignore`` are
            honoured by Ray on top of these.

    Returns:
        A dict for ``JobSubmissionClient.submit_job(runtime_env=...)``. It holds
        secrets: print it only through :func:`mask_env`.

    Raises:
        ConfigError: if ``working_dir`` is not an existing folder.
    """
    runtime_env: dict[str, Any] = {}
    if working_dir is not None:
        path = Path(working_dir)
        if not path.is_dir():
            raise ConfigError(
                f"working dir {str(working_dir)!r} is not a folder; expected the project "
                "root to upload (usually '.'); run from the repository root or pass "
                "--working-dir"
            )
        runtime_env["working_dir"] = str(path.resolve())
        runtime_env["excludes"] = list(excludes)
    env_vars = forwarded_env(environ)
    env_vars.update(extra_env or {})
    if env_vars:
        runtime_env["env_vars"] = env_vars
    return runtime_env


def read_auth_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The Ray auth token, looked up in Ray's order; None when there is none.

    ``RAY_AUTH_TOKEN`` > the file at ``RAY_AUTH_TOKEN_PATH`` > ``~/.ray/auth_token``
    (ray ``doc/source/ray-security/token-auth.md``).

    Raises:
        ConfigError: if ``RAY_AUTH_TOKEN_PATH`` is set but unreadable or empty.
    """
    environ = os.environ if environ is None else environ
    token = environ.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token
    token_path = environ.get("RAY_AUTH_TOKEN_PATH", "")
    if token_path:
        try:
            token = Path(token_path).expanduser().read_text().strip()
        except OSError as e:
            raise ConfigError(
                f"RAY_AUTH_TOKEN_PATH={token_path!r} cannot be read ({e.strerror}); "
                "expected a file holding the cluster's token; fix the path or unset it"
            ) from None
        if not token:
            raise ConfigError(
                f"RAY_AUTH_TOKEN_PATH={token_path!r} is empty; expected the cluster's "
                "token; write it with 'ray get-auth-token' or fix the path"
            )
        return token
    home = environ.get("HOME")
    default = Path(home) / ".ray" / "auth_token" if home else None
    if default is not None and default.is_file():
        return default.read_text().strip() or None
    return None


def auth_headers(token: str | None) -> dict[str, str]:
    """HTTP headers for Ray's dashboard/Jobs API: ``Authorization: Bearer <token>``."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def check_resources(
    requested: Mapping[str, float],
    available: Sequence[Mapping[str, float]],
    *,
    what: str = "the job",
    cluster: str = "the cluster",
) -> None:
    """Fail fast if no single node can ever hold ``requested``.

    Ray keeps an unsatisfiable task or job PENDING forever (or until the autoscaler
    gives up); this check turns that into an immediate, clear error. It compares
    against each node's *total* resources, not what is free right now: a busy
    cluster is fine, an impossible request is not.

    Args:
        requested: Ray resource name -> amount for one unit of work
            (see :meth:`cluster.config.WorkerResources.to_ray`, whose
            :meth:`~cluster.config.WorkerResources.check_fits` calls this).
        available: One mapping per alive node: resource name -> total amount.
        what: Names the unit in the message ("the entrypoint", "a worker").
        cluster: Names the cluster in the message (its address).

    Raises:
        ResourceError: naming the missing resource, the largest amount any node
            offers, and how to fix it.

    Example:
        >>> check_resources({"CPU": 1}, [{"CPU": 2.0}])
        >>> check_resources({"GPU": 1}, [{"CPU": 2.0}])  # doctest: +NORMALIZE_WHITESPACE
        Traceback (most recent call last):
        ...
        cluster.errors.ResourceError: the job asks for GPU=1 per node but no node of the cluster has it
        (largest offer: GPU=0; 1 alive node(s)); add a GPU worker group or set num_gpus: 0 (CPU kernels)
        in the job's resources
    """
    wanted = {k: float(v) for k, v in requested.items() if v}
    if not wanted:
        return
    if not available:
        raise ResourceError(
            f"{cluster} reports no alive nodes; expected at least one to run {what}; "
            "check the address and that the head node is up ('ray status')"
        )
    for node in available:
        if all(node.get(k, 0.0) >= v for k, v in wanted.items()):
            return
    # Explain the first resource that nothing offers enough of.
    for name, amount in wanted.items():
        best = max(node.get(name, 0.0) for node in available)
        if best < amount:
            fix = _FIXES.get(name, f"add nodes with resource {name!r} or lower the request")
            raise ResourceError(
                f"{what} asks for {name}={_fmt(amount)} per node but no node of {cluster} "
                f"has it (largest offer: {name}={_fmt(best)}; {len(available)} alive "
                f"node(s)); {fix}"
            )
    raise ResourceError(
        f"{what} asks for {_fmt_map(wanted)} on one node but no single node of {cluster} "
        f"has all of it (nodes: {[_fmt_map(n) for n in available]}); lower the request "
        "or add bigger nodes"
    )


_FIXES = {
    "GPU": "add a GPU worker group or set num_gpus: 0 (CPU kernels) in the job's resources",
    "CPU": "lower num_cpus or add bigger worker nodes",
    "memory": "lower memory_mib or add nodes with more memory",
}


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _fmt_map(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(values.items()))


def node_resources_from_summary(summary: Mapping[str, Any]) -> list[dict[str, float]]:
    """Per-node total resources from the dashboard's ``GET /nodes?view=summary``.

    Ray 2.60 answers ``{"data": {"summary": [{"raylet": {"state": "ALIVE",
    "resourcesTotal": {...}}}, ...]}}``; dead nodes are skipped.

    Raises:
        ResourceError: if the answer does not have that shape (another Ray version).
    """
    try:
        nodes = summary["data"]["summary"]
        return [
            {k: float(v) for k, v in (node["raylet"].get("resourcesTotal") or {}).items()}
            for node in nodes
            if node["raylet"].get("state", "ALIVE") == "ALIVE"
        ]
    except (KeyError, TypeError, AttributeError):
        raise ResourceError(
            f"cannot read node resources from the dashboard answer {str(summary)[:200]!r}; "
            "expected Ray 2.60's /nodes?view=summary shape; check the Ray version of the "
            "cluster or pass --no-resource-check"
        ) from None
