"""Defaults, config validation helpers and environment overrides shared by every job.

Each default carries the reason for its number. Environment variables use one prefix,
``HARVEST_``, with ``__`` for nesting (``HARVEST_STORAGE__ENDPOINT_URL``); they are read
once, at a job's entry point, never deep inside ``cluster``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from cluster.errors import ClusterError, ConfigError
from cluster.location import SECRET_OPTIONS, StoreLocation, url_protocol

__all__ = [
    "ENV_PREFIX",
    "DEFAULT_MAX_ACTORS",
    "StrictModel",
    "StorageOptions",
    "WorkerResources",
    "TileJobConfig",
    "RUN_KEYS",
    "load_config",
    "as_config",
    "env_overrides",
    "ENV_SETTINGS",
    "mask_secrets",
    "SECRET_NAMES",
]

ENV_PREFIX = "HARVEST_"
ENV_SETTINGS = frozenset({
    "HARVEST_AUTOSCALING", "HARVEST_ACTOR_START_TIMEOUT_S",  # cluster.runtime: how the pool waits
    "HARVEST_LOG_FORMAT", "HARVEST_LOG_LEVEL",  # cluster.logs
    "HARVEST_CACHE_DIR",  # cluster.vector: where remote parcel files are cached
    "HARVEST_BENCH_DIR", "HARVEST_QUICKSTART_OUT",  # benchmarks and the quickstart notebook
})
"""``HARVEST_`` variables that set up the process, not a job's config: never config overrides
(the cluster manifests set ``HARVEST_AUTOSCALING=on`` on the head, where job drivers run)."""

DEFAULT_TILE_SIZE_PX = 512
"""512 x 512 x 2 bytes x 30 dates ~ 16 MB per band per tile: big enough that per-tile
overheads (task round trip ~1 ms, S3 request latency) are amortised, small enough that an
actor holds a tile of a dozen bands, with its source windows, in well under its 1 GiB
(:attr:`WorkerResources.memory_mib`)."""

DEFAULT_MAX_ACTORS = max(1, (os.cpu_count() or 2))
"""One actor per CPU: warping and decoding are CPU-bound, and GDAL releases the GIL."""

_T = TypeVar("_T", bound=BaseModel)


class StrictModel(BaseModel):
    """A config model: frozen, unknown keys rejected, field docstrings as descriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class StorageOptions(StrictModel):
    """How to reach object storage. Unset fields fall back to the standard AWS chain
    (environment, profile, instance role). Secrets are never printed or written out."""

    endpoint_url: str | None = None
    """S3-compatible endpoint, e.g. ``http://127.0.0.1:9000`` for MinIO or moto."""
    region: str | None = None
    profile: str | None = None
    key: SecretStr | None = None
    secret: SecretStr | None = None
    anon: bool = False
    """Unsigned requests, for public buckets."""
    max_attempts: int = Field(default=10, ge=0, le=50)
    """Retries per S3 request (botocore's ``max_attempts``: 10 means 11 attempts, "standard"
    mode: 5xx, throttling, resets and timeouts, with exponential backoff and jitter). 10
    rides out a storm in which more than half of all requests fail (0.6**11 < 0.4 %); a
    tile then gets more attempts of its own."""
    connect_timeout_s: float = Field(default=10.0, gt=0)
    """Seconds to open a connection; an endpoint that is down is noticed after
    ``max_attempts`` of these, not after botocore's default minute each."""
    read_timeout_s: float = Field(default=60.0, gt=0)
    """Seconds a socket read may stall before the request is retried."""

    def for_workers(self) -> dict[str, Any]:
        """:meth:`to_fsspec` without credentials: what goes into plans that travel to tile
        actors. Workers take credentials from their environment or the AWS chain
        (:meth:`worker_env`, instance roles, IRSA), never from a pickled plan."""
        return {k: v for k, v in self.to_fsspec().items() if k not in SECRET_OPTIONS}

    def locate(self, url: str) -> StoreLocation:
        """The place at ``url`` reached with these settings (credentials included: the
        driver's copy; :meth:`StoreLocation.for_workers` drops them). Every config that
        names a store builds its location here, once."""
        return StoreLocation(url, self.to_fsspec())

    def worker_env(self) -> dict[str, str]:
        """The config's credentials as the standard AWS variables, for a local Ray's workers."""
        env = {}
        if self.key is not None:
            env["AWS_ACCESS_KEY_ID"] = self.key.get_secret_value()
        if self.secret is not None:
            env["AWS_SECRET_ACCESS_KEY"] = self.secret.get_secret_value()
        return env

    def to_fsspec(self) -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem`` (secrets revealed: in memory only)."""
        out: dict[str, Any] = {
            "config_kwargs": {
                "retries": {"max_attempts": self.max_attempts, "mode": "standard"},
                "connect_timeout": self.connect_timeout_s,
                "read_timeout": self.read_timeout_s,
            },
        }
        client: dict[str, Any] = {}
        if self.endpoint_url:
            client["endpoint_url"] = self.endpoint_url
        if self.region:
            client["region_name"] = self.region
        if client:
            out["client_kwargs"] = client
        if self.profile:
            out["profile"] = self.profile
        if self.key is not None:
            out["key"] = self.key.get_secret_value()
        if self.secret is not None:
            out["secret"] = self.secret.get_secret_value()
        if self.anon:
            out["anon"] = True
        return out


class WorkerResources(StrictModel):
    """What one unit of work asks of a single Ray node: a tile actor (the ``resources``
    block of a job config), or, in ``harvest submit``, the job's entrypoint.

    The one resources model: job configs hold it, the actor pool (:class:`~cluster.runtime.PoolOptions`)
    starts actors with it, and ``harvest submit`` reads the same block from a job's YAML to
    refuse, before submitting, a request no node can satisfy (a GPU on a CPU-only
    cluster, ...): :meth:`check_fits`. Imports no Ray.

    Example:
        >>> WorkerResources(num_gpus=0.5, resources={"gpu_worker": 1}).to_ray()
        {'CPU': 1.0, 'GPU': 0.5, 'memory': 1073741824.0, 'gpu_worker': 1.0}
    """

    num_cpus: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    """CPUs per actor; warping and decoding are CPU-bound, so 1. 0 reserves none (what a
    job's entrypoint asks by default: a reserved CPU can starve a small cluster's actors)."""
    num_gpus: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    """GPUs per actor; use 1/n fractions to share a device. 0 runs on CPU."""
    memory_mib: int | None = Field(default=1024, ge=64)
    """Ray logical memory per actor (scheduling: Ray places no more actors on a node than its
    memory holds; not a hard limit). 1 GiB: measured peaks are 0.5-0.65 GiB for ingest (GDAL
    cache capped at 256 MiB, scenes streamed in batches; the same at 1x and 10x the demo's
    area: ``python -m benchmarks.soak``), ~0.5 GiB for indices and aggregate, ~0.65 GiB for
    classify predict. None: no reservation."""
    resources: dict[str, float] = Field(default_factory=dict)
    """Custom Ray resources, e.g. ``{gpu_worker: 1}`` to pin actors to a node group."""

    @field_validator("resources")
    @classmethod
    def _amounts(cls, v: dict[str, float]) -> dict[str, float]:
        for name, amount in v.items():
            if not math.isfinite(amount) or amount < 0:
                raise ConfigError(f"custom resource {name}={amount!r} is invalid; expected a finite "
                                  "number >= 0; fix the resources block")
        return v

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, *, where: str) -> "WorkerResources":
        """Validate a ``resources`` block read from YAML or flags (None: the defaults).

        Raises:
            ConfigError: naming unknown keys (and the known ones) or bad values.
        """
        data = dict(data or {})
        unknown = sorted(set(data) - set(cls.model_fields))
        if unknown:
            raise ConfigError(f"{where} has unknown keys {unknown!r}; expected some of "
                              f"{sorted(cls.model_fields)}; fix the spelling")
        return parse_config(cls, data, where)

    def to_ray(self) -> dict[str, float]:
        """Ray resource names -> amounts (memory in bytes), zeros dropped: what one node
        must hold for one unit (:func:`cluster.submit.check_resources` compares it).

        Example:
            >>> WorkerResources(num_cpus=0, memory_mib=None).to_ray()
            {}
        """
        out = {"CPU": float(self.num_cpus), "GPU": float(self.num_gpus),
               "memory": float(self.memory_mib or 0) * 2**20,
               **{k: float(v) for k, v in self.resources.items()}}
        return {k: v for k, v in out.items() if v > 0}

    def to_actor_options(self) -> dict[str, Any]:
        """Keyword arguments for a Ray actor's ``.options(...)``: the same request."""
        out: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory_mib:
            out["memory"] = self.memory_mib * 2**20
        if self.resources:
            out["resources"] = dict(self.resources)
        return out

    def check_fits(self, nodes: Sequence[Mapping[str, float]], *, what: str = "a worker of the job",
                   cluster: str = "the cluster") -> None:
        """Fail fast if no single node of ``nodes`` (each node's total resources) holds
        this request: Ray would keep it pending forever.

        Raises:
            ResourceError: naming the missing resource, the largest offer and the fix.
        """
        from cluster.submit import check_resources

        check_resources(self.to_ray(), nodes, what=what, cluster=cluster)


def check_url(url: str, role: Literal["store", "input"]) -> str:
    """Refuse, at config time, a URL whose protocol cannot serve ``role``.

    A local path or ``file://`` always can. Any fsspec protocol whose package is installed
    can be read (s3, http, gs, ...); a store must be object storage or memory
    (:data:`STORE_PROTOCOLS`).

    >>> check_url("s3://bucket/cube.zarr", "store")
    's3://bucket/cube.zarr'
    >>> check_url("foo://x/scene.tif", "input")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    ValueError: unknown URL protocol 'foo' in 'foo://x/scene.tif'; use a local path, file://, s3://
    or another fsspec protocol
    """
    proto = url_protocol(url)
    if proto == "file":
        return url
    if any(part in ("..", ".") for part in url.split("://", 1)[1].split("/")):
        raise ValueError(f"URL {url!r} has '.' or '..' segments: object keys are taken literally, so it "
                         "names another object than it seems to; write the path without them")
    import fsspec

    try:
        cls = fsspec.get_filesystem_class(proto)
    except ImportError as e:
        raise ValueError(f"URL {url!r} needs a package that is not installed ({e}); install it, "
                         "or copy the data to s3:// or a local path") from None
    except ValueError:
        raise ValueError(f"unknown URL protocol {proto!r} in {url!r}; use a local path, file://, s3:// "
                         "or another fsspec protocol") from None
    del cls
    if role == "store" and proto not in STORE_PROTOCOLS:
        raise ValueError(f"a cube cannot be written to {url!r}: a store needs object storage (s3://, gs://, "
                         "az://) or a local path, whose writes are atomic per object and whose leases "
                         f"can be taken exclusively; {proto!r} is not one of {sorted(STORE_PROTOCOLS)}")
    return url


STORE_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})
"""Protocols a cube may be written to (besides local paths and file://)."""


class TileJobConfig(StrictModel):
    """What every tile job (ingest, indices, aggregate, classify predict) is configured with."""

    store: str
    """The cube's URL: a local path, ``file://...`` or ``s3://bucket/prefix/cube.zarr``."""
    storage: StorageOptions = Field(default_factory=StorageOptions)
    max_actors: int = Field(default=DEFAULT_MAX_ACTORS, ge=1)
    """Upper bound on concurrent tile actors; one tile in flight per actor."""
    resources: WorkerResources = Field(default_factory=WorkerResources)
    """Per actor: num_cpus, num_gpus, memory_mib, custom resources."""
    strict: bool = False
    """Stop at the first bad input item or failed tile instead of reporting it and going on."""
    break_lease: bool = False
    """Take the store's write lease even though another job seems to hold it (only for a
    holder known to be dead on another host; stale leases are taken over anyway)."""

    @field_validator("store")
    @classmethod
    def _store_url(cls, v: str) -> str:
        return check_url(v, "store")

    def location(self) -> StoreLocation:
        """Where the cube is, read once from ``store`` and ``storage``: the value every part
        of a job is given instead of the URL (credentials included: the driver's copy; give
        workers ``location().for_workers()``)."""
        return self.storage.locate(self.store)

    def public_dict(self) -> dict[str, Any]:
        """The config as recorded in outputs: storage options (credentials) left out."""
        return self.model_dump(mode="json", exclude={"storage"})


RUN_KEYS = ("storage", "max_actors", "resources", "strict", "break_lease", "overwrite", "tuning", "gpu")
"""Config keys that change how a job runs, not what it computes: kept out of plan hashes."""


def _format_validation_error(name: str, err: ValidationError) -> str:
    lines = [f"invalid {name} config:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        value = e.get("input")
        if e["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            lines.append(f"  {loc}: unknown key; remove it or check its spelling")
        elif e["type"] == "missing":
            lines.append(f"  {loc}: required key is missing; add it")
        elif e["type"] == "value_error" and isinstance(e.get("ctx", {}).get("error"), ClusterError):
            lines.append(f"  {loc}: {e['ctx']['error']}")  # our own checks name the key and the value
        else:
            shown = "<secret>" if any(s in loc for s in ("key", "secret", "token")) else repr(mask_secrets(value))
            lines.append(f"  {loc}: {e['msg']} (got {shown})")
    return "\n".join(lines)


def parse_config(model: type[_T], data: Mapping[str, Any], name: str | None = None) -> _T:
    """Validate ``data`` into ``model``; errors become one ConfigError naming every bad key."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as e:
        raise ConfigError(_format_validation_error(name or model.__name__, e)) from None


def load_config(
    model: type[_T], path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> _T:
    """Read a YAML config, apply overrides (CLI, environment), validate.

    Relative paths inside the file stay relative to the current directory, as on the
    command line; the README's examples run from the repository root.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {str(p)!r} does not exist; pass an existing YAML file")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {str(p)!r} is not valid YAML: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {str(p)!r} must hold a mapping of keys, got {type(loaded).__name__}"
            )
        data = loaded
    for key, value in (overrides or {}).items():
        _set_nested(data, key.split("."), value)
    return parse_config(model, data, name=str(path) if path else None)


def as_config(model: type[_T], config: _T | Mapping[str, Any] | str | Path) -> _T:
    """What the notebook API accepts as a config: the model itself, a dict as the YAML file
    would hold, or the path of that file."""
    if isinstance(config, model):
        return config
    if isinstance(config, (str, Path)):
        return load_config(model, config)
    if isinstance(config, Mapping):
        return parse_config(model, config)
    raise ConfigError(f"a {model.__name__} config must be a {model.__name__}, a dict or a YAML file path, "
                      f"got {type(config).__name__}")


def _set_nested(data: dict[str, Any], keys: list[str], value: Any) -> None:
    for k in keys[:-1]:
        data = data.setdefault(k, {})
    data[keys[-1]] = value


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Config overrides from ``HARVEST_*`` variables: ``HARVEST_GRID__PIXEL_SIZE=20`` ->
    ``{"grid.pixel_size": "20"}`` (pydantic converts the string).

    The process settings in :data:`ENV_SETTINGS` are not overrides.

    >>> env_overrides({"HARVEST_STORE": "s3://b/c.zarr", "HARVEST_GRID__PIXEL_SIZE": "20", "HOME": "/",
    ...                "HARVEST_AUTOSCALING": "on"})
    {'store': 's3://b/c.zarr', 'grid.pixel_size': '20'}
    """
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for name, value in env.items():
        if name.startswith(ENV_PREFIX) and name != ENV_PREFIX and name not in ENV_SETTINGS:
            out[name[len(ENV_PREFIX):].lower().replace("__", ".")] = value
    return out


def mask_secrets(obj: Any) -> Any:
    """A copy of ``obj`` with secret-looking values replaced by ``'***'``.

    >>> mask_secrets({"storage": {"key": "AKIA...", "endpoint_url": "http://x"}, "bands": {"red": 1}})
    {'storage': {'key': '***', 'endpoint_url': 'http://x'}, 'bands': {'red': 1}}
    """
    if isinstance(obj, SecretStr):
        return "***"
    if isinstance(obj, Mapping):
        return {
            k: ("***" if v is not None and isinstance(k, str) and k.lower() in SECRET_NAMES else mask_secrets(v))
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return type(obj)(mask_secrets(v) for v in obj)
    return obj


SECRET_NAMES = frozenset({"key", "secret", "token", "password", "aws_secret_access_key", "aws_access_key_id",
                          "aws_session_token", "ray_auth_token", "credentials"})
"""Config keys whose values are secrets: masked when printed, refused on command lines."""
