"""Run the pipeline's steps in order from one config: ingest -> indices -> classify -> aggregate.

Each section is the config of that step's job; a section left out is skipped. Top-level
``store``, ``storage``, ``max_actors`` and ``resources`` are defaults for every section.
``classify`` is the predict step (``harvest classify predict``: a trained model maps every
season of the cube); train the model first with ``harvest classify train``. The forecast
runs on its own (``harvest forecast``) with the statistics table as its series input: it
needs yield history and a crop calendar that are not part of a cube run.
Writes what the steps write, plus ``<store>.harvest/run-report.json``.

    harvest run --config run.yaml
    python -m jobs.run --config run.yaml         # as a Ray job (KubeRay RayJob entrypoint)
"""

from __future__ import annotations

import sys
import time
from typing import Any, Sequence

from pydantic import Field

from cluster.pipeline import run_aggregate, run_indices, run_ingest
from cluster import store as cstore
from cluster.config import StorageOptions, StrictModel, WorkerResources, load_config
from cluster.errors import ClusterError
from cluster.progress import progress_mode
from cluster.aggregation import AggregateConfig
from cluster.indices import IndicesConfig
from cluster.ingest import IngestConfig
from jobs._common import job_parser, overrides, parse

__all__ = ["RunConfig", "run", "main"]

_SHARED = ("store", "storage", "max_actors", "resources", "break_lease")


class RunConfig(StrictModel):
    """Sections are the step configs, minus what the top level sets for all of them."""

    store: str
    storage: StorageOptions = Field(default_factory=StorageOptions)
    max_actors: int | None = Field(default=None, ge=1)
    resources: WorkerResources | None = None
    break_lease: bool | None = None
    ingest: dict[str, Any] | None = None
    indices: dict[str, Any] | None = None
    classify: dict[str, Any] | None = None
    """The predict step: ``model`` (a folder from ``harvest classify train``), ``years``, ..."""
    aggregate: dict[str, Any] | None = None

    def section(self, name: str, model: type[StrictModel]) -> Any:
        data = dict(getattr(self, name) or {})
        for key in _SHARED:
            value = getattr(self, key)
            if key not in data and value is not None:
                data[key] = value.model_dump() if hasattr(value, "model_dump") else value
        from cluster.config import parse_config

        return parse_config(model, data, name=f"run.{name}")

    def steps(self) -> list[tuple[str, Any]]:
        """The configured steps, validated up front (a typo in the last step fails first)."""
        out: list[tuple[str, Any]] = []
        if self.ingest is not None:
            out.append(("ingest", self.section("ingest", IngestConfig)))
        if self.indices is not None:
            out.append(("indices", self.section("indices", IndicesConfig)))
        if self.classify is not None:
            from cluster.classify.predict import PredictConfig

            out.append(("classify", self.section("classify", PredictConfig)))
        if self.aggregate is not None:
            out.append(("aggregate", self.section("aggregate", AggregateConfig)))
        return out


def run(config: RunConfig, address: str | None = None) -> list[Any]:
    """Run every configured step; stop at the first that fails. Returns their reports."""
    from cluster.classify.run import run_predict

    runners = {"ingest": run_ingest, "indices": run_indices, "classify": run_predict, "aggregate": run_aggregate}
    steps = config.steps()
    if not steps:
        raise ClusterError("run config has no steps; add 'ingest', 'indices', 'classify' and/or 'aggregate' sections")
    t0 = time.perf_counter()
    reports = []
    for name, cfg in steps:
        report = runners[name](cfg, address=address)
        print(report.summary(), flush=True)
        reports.append(report)
        if not report.ok:
            break
    summary = {
        "wall_s": round(time.perf_counter() - t0, 3),
        "steps": [{"job": r.job, "ok": r.ok, "wall_s": round(r.wall_s, 3)} for r in reports],
        "tiles_per_node": {r.job: r.tiles_per_node for r in reports},
    }
    cstore.write_json(f"{cstore.meta_url(config.store)}/run-report.json", summary,
                      config.storage.to_fsspec())
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser("run", __doc__.splitlines()[0])
    args = parse(parser, argv)
    try:
        config = load_config(RunConfig, args.config, overrides(args))
        with progress_mode(args.progress):
            reports = run(config, address=args.address)
    except ClusterError as e:
        print(f"harvest run: {e}", file=sys.stderr)
        return 2
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
