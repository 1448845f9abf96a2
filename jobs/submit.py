"""Submit a harvest job to a Ray cluster: ``harvest submit <job> --config FILE --address URL``.

Reads: the job's config file (inside the uploaded working dir), the submitter's
environment (S3 endpoint/credentials, Ray auth token). Writes nothing locally; on
the cluster it starts the Ray job ``python -m jobs.<job> --config <file>``.

Equivalent to::

    ray job submit --address http://HEAD:8265 --working-dir . \\
        -- python -m jobs.<job> --config <file>

plus what the plain CLI does not do: forwards ``AWS_*`` settings through the
runtime environment (never through job metadata; printed masked), sends the token
from ``RAY_AUTH_TOKEN``/``RAY_AUTH_TOKEN_PATH``, refuses resource requests that no
node can satisfy before submitting, and with ``--wait`` streams the logs (secrets
redacted) and exits with the job's status: 0 if it SUCCEEDED, the driver's exit
code (or 1) if it FAILED, 1 if it was STOPPED.

Exit codes: 0 ok/submitted, 1 job failed or stopped, 2 bad usage/config/resources,
3 cannot reach the cluster or it refused the request (e.g. 401 without a token).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cluster.config import WorkerResources
from cluster.errors import ClusterError, ConfigError, ResourceError
from cluster.location import has_protocol
from cluster.submit import (
    auth_headers,
    build_runtime_env,
    mask_env,
    node_resources_from_summary,
    read_auth_token,
    redact,
)

__all__ = ["SubmitConfig", "SubmitResult", "main", "run"]

JOBS = ("ingest", "indices", "classify", "aggregate", "forecast", "run", "demo")
"""Job modules that ``harvest submit`` may start (``python -m jobs.<job>``)."""

_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")

NO_RESERVATION = WorkerResources(num_cpus=0, memory_mib=None)
"""What a job's entrypoint reserves unless told otherwise: nothing (Ray's own default)."""


@dataclass(frozen=True)
class SubmitConfig:
    """One submission: which job, where, with what resources."""

    job: str
    """Job under ``jobs/`` (``ingest``, ``indices``, ...), or a dotted module path in the
    working dir (``pkg.module``) for ad-hoc jobs such as probes."""
    config: str
    """The job's config: a path inside ``working_dir`` or a URL (``s3://...``)."""
    address: str
    """Dashboard/Jobs API URL of the head, e.g. ``http://127.0.0.1:8265``."""
    wait: bool = False
    """Stream logs and exit with the job's status instead of returning at once."""
    working_dir: str | None = "."
    """Folder uploaded as the job's working dir; None when the image has the code."""
    python: str = "python"
    """Interpreter on the cluster (resolved through the head's PATH)."""
    entrypoint: WorkerResources = NO_RESERVATION
    """Resources reserved for the driver. Leave 0 unless the driver needs them: on a
    small cluster a reserved CPU can starve the job's own tasks (it then never ends)."""
    worker: WorkerResources | None = None
    """What one worker of the job asks for (the config's ``resources`` block, validated as
    the job will: missing keys take the job's defaults); checked against the nodes before
    submitting, not reserved. None: the config has no such block here, nothing to check."""
    submission_id: str | None = None
    """Ray submission id; Ray makes one when None."""
    timeout_s: float | None = None
    """With ``wait``: stop the job and fail after this many seconds."""
    resource_check: bool = True
    """Query the cluster's nodes and refuse impossible requests before submitting."""
    token: str | None = field(default=None, repr=False)
    """Ray auth token; default read from the environment (:func:`read_auth_token`)."""
    allow_insecure_http: bool = False
    """Send the token over plain ``http://`` to a host that is not this machine. Off by
    default: anyone on the path could read the token and run code on the cluster."""

    def __post_init__(self) -> None:
        if self.job not in JOBS and not _is_dotted_module(self.job):
            raise ConfigError(
                f"unknown job {self.job!r}; expected one of {list(JOBS)} or a dotted module "
                "path inside the working dir; e.g. 'harvest submit ingest --config "
                "ingest.yaml --address http://HEAD:8265'"
            )
        if not self.address.startswith(("http://", "https://")):
            raise ConfigError(
                f"address {self.address!r} is not a dashboard URL; expected "
                "http://HEAD:8265 (the Jobs API), not the GCS address HEAD:6379"
            )

    def entrypoint_command(self) -> str:
        """The shell command Ray runs on the head: ``python -m jobs.<job> --config ...``."""
        config = self.config
        if not has_protocol(config) and self.working_dir is not None:
            config = _relative_config(config, self.working_dir)
        return f"{shlex.quote(self.python)} -m {self.module} --config {shlex.quote(config)}"

    @property
    def module(self) -> str:
        """The module the entrypoint runs with ``python -m``."""
        return f"jobs.{self.job}" if self.job in JOBS else self.job


@dataclass(frozen=True)
class SubmitResult:
    """What happened to a submission."""

    submission_id: str
    status: str
    """Ray job status: PENDING/RUNNING when not waited for, else terminal."""
    exit_code: int
    """What ``harvest submit`` returns."""
    driver_exit_code: int | None = None


def _is_dotted_module(name: str) -> bool:
    parts = name.split(".")
    return len(parts) > 1 and all(part.isidentifier() for part in parts)


def _relative_config(config: str, working_dir: str) -> str:
    root = Path(working_dir).resolve()
    path = Path(config)
    path = (Path.cwd() / path).resolve() if not path.is_absolute() else path.resolve()
    if not path.is_file():
        raise ConfigError(
            f"config file {config!r} does not exist; expected a YAML file inside the "
            f"working dir {str(root)!r}; fix the path"
        )
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        raise ConfigError(
            f"config file {config!r} is outside the working dir {str(root)!r}, so the "
            "cluster would not see it; move it under the working dir or put it on the "
            "object store (s3://...)"
        ) from None


def _worker_request_from_config(config: str) -> WorkerResources | None:
    """The ``resources`` block of a local job config (None when absent or remote)."""
    if has_protocol(config) or not Path(config).is_file():
        return None
    try:
        data = yaml.safe_load(Path(config).read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {config!r} is not valid YAML ({e}); fix it") from None
    block = data.get("resources") if isinstance(data, Mapping) else None
    if block is None:
        return None
    if not isinstance(block, Mapping):
        raise ConfigError(f"{config!r} resources is {block!r}; expected a mapping such as "
                          "{num_cpus: 1, num_gpus: 0, memory_mib: 1024}; fix the config")
    return WorkerResources.from_mapping(block, where=f"{config!r} resources")


def _get_json(url: str, headers: Mapping[str, str], timeout_s: float = 10.0) -> Any:
    request = urllib.request.Request(url, headers=dict(headers))
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
        return json.load(response)


def fetch_node_resources(address: str, headers: Mapping[str, str]) -> list[dict[str, float]]:
    """Total resources of each alive node, from the dashboard (``/nodes?view=summary``)."""
    return node_resources_from_summary(
        _get_json(address.rstrip("/") + "/nodes?view=summary", headers)
    )


def run(config: SubmitConfig, *, environ: Mapping[str, str] | None = None,
        out: Any = None) -> SubmitResult:
    """Check, submit, and (with ``wait``) follow one job.

    Raises:
        ConfigError: bad config path or working dir.
        ResourceError: the request cannot fit on any node of the cluster.
        ClusterError: the cluster cannot be reached or refused the request.
    """
    from ray.job_submission import JobSubmissionClient  # Ray only where needed

    out = sys.stdout if out is None else out
    environ = os.environ if environ is None else environ
    token = config.token if config.token is not None else read_auth_token(environ)
    headers = auth_headers(token)
    entrypoint = config.entrypoint_command()
    runtime_env = build_runtime_env(config.working_dir, environ=environ)
    secrets = [v for v in runtime_env.get("env_vars", {}).values()] + ([token] if token else [])

    host = urllib.parse.urlsplit(config.address).hostname or ""
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    if token and config.address.startswith("http://") and not loopback and not config.allow_insecure_http:
        raise ConfigError(
            f"refusing to send the Ray token over plain http:// to {host!r}: anyone on the path could read it "
            "and run code on the cluster. Use https://, or a port-forward to this machine (kubectl "
            "port-forward svc/<cluster>-head-svc 8265, then --address http://127.0.0.1:8265); on a "
            "network you trust, pass --allow-insecure-http"
        )
    print(f"harvest submit: {entrypoint}", file=out)
    print(f"  address: {config.address}  token: {'yes' if token else 'no'}", file=out)
    if not token:
        print("  no Ray token found (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token): a cluster "
              "with token authentication will refuse the request (HTTP 401)", file=out)
    print(f"  env_vars: {mask_env(runtime_env.get('env_vars', {}))}", file=out)

    if config.resource_check:
        try:
            nodes = fetch_node_resources(config.address, headers)
        except urllib.error.HTTPError as e:
            e.close()
            raise ClusterError(_http_error_message(config.address, e.code, token)) from None
        except (urllib.error.URLError, OSError) as e:
            raise ClusterError(
                f"cannot reach the Ray dashboard at {config.address!r} ({e}); expected the "
                "head's Jobs API; check the address or port-forward svc/<cluster>-head-svc 8265"
            ) from None
        config.entrypoint.check_fits(nodes, what="the entrypoint", cluster=config.address)
        if config.worker is not None:
            config.worker.check_fits(nodes, what="a worker of the job", cluster=config.address)

    try:
        client = JobSubmissionClient(config.address, headers=headers)
        submission_id = client.submit_job(
            entrypoint=entrypoint,
            runtime_env=runtime_env,
            submission_id=config.submission_id,
            # Metadata is readable by anyone with dashboard access: no env, no secrets.
            metadata={"harvest_job": config.module, "config": config.config,
                      "submitted_by": "harvest submit"},
            entrypoint_num_cpus=config.entrypoint.num_cpus or None,
            entrypoint_num_gpus=config.entrypoint.num_gpus or None,
            entrypoint_memory=(config.entrypoint.memory_mib or 0) * 2**20 or None,
            entrypoint_resources=dict(config.entrypoint.resources) or None,
        )
    except (RuntimeError, ConnectionError) as e:
        raise ClusterError(
            f"the cluster at {config.address!r} refused the submission: "
            f"{redact(str(e), secrets)}; check RAY_AUTH_TOKEN/RAY_AUTH_TOKEN_PATH"
        ) from None
    print(f"  submission id: {submission_id}", file=out)
    if not config.wait:
        return SubmitResult(submission_id, str(client.get_job_status(submission_id)), 0)

    deadline = None if config.timeout_s is None else time.monotonic() + config.timeout_s

    async def _follow() -> None:
        async for chunk in client.tail_job_logs(submission_id):
            print(redact(chunk, secrets), end="", file=out, flush=True)
            if deadline is not None and time.monotonic() > deadline:
                return

    try:
        with warnings.catch_warnings():
            # Ray 2.60's tail_job_logs passes ssl=None to aiohttp's ws_connect, which
            # aiohttp >= 3.10 deprecates; harmless. Drop when Ray passes ssl=True/False.
            warnings.filterwarnings("ignore", "ssl=None is deprecated", DeprecationWarning)
            asyncio.run(asyncio.wait_for(_follow(), timeout=config.timeout_s))
    except asyncio.TimeoutError:
        pass
    status = str(client.get_job_status(submission_id))
    # The log stream can end a moment before the status turns terminal.
    while status not in _TERMINAL and (deadline is None or time.monotonic() < deadline):
        time.sleep(0.2)
        status = str(client.get_job_status(submission_id))
    if status not in _TERMINAL:
        client.stop_job(submission_id)
        print(f"harvest submit: timed out after {config.timeout_s} s; stopped the job",
              file=out)
        return SubmitResult(submission_id, status, 1)
    info = client.get_job_info(submission_id)
    driver_exit_code = getattr(info, "driver_exit_code", None)
    if status == "SUCCEEDED":
        code = 0
    else:
        code = driver_exit_code if driver_exit_code not in (None, 0) else 1
    print(f"harvest submit: job {submission_id} {status} (driver exit code "
          f"{driver_exit_code})", file=out)
    return SubmitResult(submission_id, status, int(code), driver_exit_code)


def _http_error_message(address: str, code: int, token: str | None) -> str:
    if code == 401:
        return (f"the cluster at {address!r} requires a token (HTTP 401) and none was sent; "
                "set RAY_AUTH_TOKEN_PATH to the token file (or RAY_AUTH_TOKEN)")
    if code == 403:
        return (f"the cluster at {address!r} rejected the token (HTTP 403); expected the "
                "token the head was started with; fetch it again (ray get-auth-token)")
    return f"the Ray dashboard at {address!r} answered HTTP {code}; check the address"


def _parse_args(argv: Sequence[str] | None) -> SubmitConfig:
    parser = argparse.ArgumentParser(
        prog="harvest submit",
        description="Submit a harvest job to a Ray cluster as a Ray job.",
    )
    parser.add_argument("job", help=f"job to run: one of {', '.join(JOBS)} (python -m "
                        "jobs.<job>), or a dotted module path inside the working dir")
    parser.add_argument("--config", required=True,
                        help="job config (inside the working dir) or s3:// URL")
    parser.add_argument("--address", default=None,
                        help="Jobs API URL, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS"
                        " or $RAY_ADDRESS if it is an http URL)")
    parser.add_argument("--wait", action="store_true",
                        help="stream logs; exit 0 only if the job succeeded")
    parser.add_argument("--working-dir", default=".",
                        help="folder uploaded with the job (default '.')")
    parser.add_argument("--no-working-dir", action="store_true",
                        help="upload nothing: the cluster image has the code")
    parser.add_argument("--python", default="python",
                        help="interpreter on the cluster (default 'python')")
    parser.add_argument("--entrypoint-num-cpus", type=float, default=0.0)
    parser.add_argument("--entrypoint-num-gpus", type=float, default=0.0)
    parser.add_argument("--entrypoint-memory-mib", type=float, default=0.0)
    parser.add_argument("--entrypoint-resources", type=json.loads, default=None,
                        help='custom resources as JSON, e.g. \'{"gpu_worker": 1}\'')
    parser.add_argument("--worker-num-gpus", type=float, default=None,
                        help="override the config's resources.num_gpus (checked, per worker)")
    parser.add_argument("--submission-id", default=None)
    parser.add_argument("--timeout-s", type=float, default=None)
    parser.add_argument("--no-resource-check", action="store_true")
    parser.add_argument("--allow-insecure-http", action="store_true",
                        help="send the Ray token over plain http:// to a non-loopback address")
    args = parser.parse_args(argv)
    address = args.address or os.environ.get("RAY_API_SERVER_ADDRESS") or ""
    if not address and os.environ.get("RAY_ADDRESS", "").startswith("http"):
        address = os.environ["RAY_ADDRESS"]
    if not address:
        parser.error("--address http://HEAD:8265 is required (or set RAY_API_SERVER_ADDRESS)")
    worker = _worker_request_from_config(args.config)
    if args.worker_num_gpus is not None:
        block = worker.model_dump() if worker is not None else {}
        worker = WorkerResources.from_mapping({**block, "num_gpus": args.worker_num_gpus},
                                              where="--worker-num-gpus")
    return SubmitConfig(
        job=args.job,
        config=args.config,
        address=address,
        wait=args.wait,
        working_dir=None if args.no_working_dir else args.working_dir,
        python=args.python,
        entrypoint=WorkerResources.from_mapping(
            {"num_cpus": args.entrypoint_num_cpus, "num_gpus": args.entrypoint_num_gpus,
             "memory_mib": args.entrypoint_memory_mib or None, "resources": args.entrypoint_resources or {}},
            where="the --entrypoint-* flags"),
        worker=worker,
        submission_id=args.submission_id,
        timeout_s=args.timeout_s,
        resource_check=not args.no_resource_check,
        allow_insecure_http=args.allow_insecure_http,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``harvest submit ...``; returns the exit code described in the module docstring."""
    try:
        config = _parse_args(argv)
        result = run(config)
    except (ConfigError, ResourceError) as e:
        print(f"harvest submit: {e}", file=sys.stderr)
        return 2
    except ClusterError as e:
        print(f"harvest submit: {e}", file=sys.stderr)
        return 3
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
