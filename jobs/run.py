"""Run the pipeline's steps in order from one config: ingest -> indices -> classify -> aggregate -> forecast.

Each section is the config of that step's job; a section left out is skipped. Top-level
``store``, ``storage``, ``max_actors`` and ``resources`` are defaults for every section.
``classify`` is the predict step (``harvest classify predict``: a trained model maps every
season of the cube); train the model first with ``harvest classify train``. With it, the
aggregate step reads its map (``crop_map: crop_type``) unless its section sets ``crop_map``. ``forecast``
forecasts each of its ``crops`` from the aggregate step's statistics (that crop's own series
and area with a crop map, all-cropland series without) plus the yield history and crop
calendar it names; any ``harvest forecast`` key applies to every crop, each crop writes to
``<out_dir>/<crop>/`` and one ``<out_dir>/bulletin.html`` covers them all (forecast files
are written on the driver's disk). Writes what the steps write, plus
``<store>.harvest/run-report.json``.

    harvest run --config run.yaml
    python -m jobs.run --config run.yaml         # as a Ray job (KubeRay RayJob entrypoint)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Sequence

from pydantic import Field

from cluster.pipeline import run_aggregate, run_indices, run_ingest
from cluster import store as cstore
from cluster.config import StorageOptions, StrictModel, WorkerResources, load_config
from cluster.errors import ClusterError, ConfigError
from cluster.progress import progress_mode
from cluster.aggregate import AggregateConfig
from cluster.indices import IndicesConfig
from cluster.ingest import IngestConfig
from jobs._cli import command, job_parser, overrides, parse

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
    forecast: dict[str, Any] | None = None
    """``crops`` (one forecast each) and any ``harvest forecast`` key but ``crop`` and ``series``."""

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
            aggregate = self.section("aggregate", AggregateConfig)
            if self.classify is not None and "crop_map" not in self.aggregate:
                # the map the classify step writes: per-crop statistics unless crop_map: null says otherwise
                aggregate = aggregate.model_copy(update={"crop_map": "crop_type"})
            out.append(("aggregate", aggregate))
        return out

    def forecasts(self) -> list[Any]:
        """One validated forecast config per crop (their series come from the aggregate step)."""
        if self.forecast is None:
            return []
        from cluster.forecast.config import parse_forecast_config

        data = dict(self.forecast)
        crops = data.pop("crops", None)
        if not crops or not isinstance(crops, list):
            raise ConfigError("run.forecast needs 'crops': a list of the crops to forecast, e.g. [wheat, maize]")
        for key in ("crop", "series"):
            if key in data:
                raise ConfigError(f"run.forecast takes no {key!r}: it forecasts every crop of 'crops' from the "
                                  "aggregate step's statistics")
        if self.aggregate is None:
            raise ConfigError("run.forecast reads the statistics of the aggregate step: add an 'aggregate' "
                              "section (or run 'harvest forecast' on its own with a series table)")
        out_dir = str(data.pop("out_dir", "out/forecast"))
        return [parse_forecast_config({**data, "crop": c, "out_dir": f"{out_dir.rstrip('/')}/{c}"},
                                      where=f"run.forecast ({c})") for c in crops]


def run(config: RunConfig, address: str | None = None) -> tuple[list[Any], bool]:
    """Run every configured step; stop at the first that fails. Returns the tile steps'
    reports and whether every step (the forecast too) succeeded."""
    from cluster.classify.run import run_predict
    from cluster.runtime import shared_actors  # Ray loads when a job runs, not for --help

    runners = {"ingest": run_ingest, "indices": run_indices, "classify": run_predict, "aggregate": run_aggregate}
    steps = config.steps()
    forecasts = config.forecasts()
    if not steps:
        raise ClusterError("run config has no steps; add 'ingest', 'indices', 'classify', 'aggregate' "
                           "and/or 'forecast' sections")
    t0 = time.perf_counter()
    reports = []
    with shared_actors():  # one set of actor processes for every step that asks for the same
        for name, cfg in steps:
            report = runners[name](cfg, address=address)
            print(report.summary(), flush=True)
            reports.append(report)
            if not report.ok:
                break
    summary: dict[str, Any] = {
        "wall_s": 0.0,
        "steps": [{"job": r.job, "ok": r.ok, "wall_s": round(r.wall_s, 3)} for r in reports],
        "tiles_per_node": {r.job: r.tiles_per_node for r in reports},
    }
    if forecasts and all(r.ok for r in reports):
        from cluster.forecast.from_cube import run_crop_forecasts

        agg = reports[-1]
        bulletin = forecasts[0].resolve(str(Path(forecasts[0].out_dir).parent)) / "bulletin.html"
        try:
            results = run_crop_forecasts(forecasts, agg.tables["statistics"], agg.tables.get("crop_areas"),
                                         bulletin, progress=lambda line: print(line, file=sys.stderr, flush=True))
        except ClusterError as e:  # the cube steps stand; the forecast's inputs need fixing
            print(f"harvest run: forecast: {e}", file=sys.stderr, flush=True)
            summary["forecast_error"] = str(e)
        else:
            for r in results:
                print(r.summary(), flush=True)
            summary["forecast"] = {r.config.crop: r.outputs for r in results}
            summary["bulletin"] = str(bulletin)
            print(f"harvest run: crop bulletin: {bulletin}", flush=True)
    summary["wall_s"] = round(time.perf_counter() - t0, 3)
    cstore.write_json(config.storage.locate(config.store).report("run"), summary)
    ok = all(r.ok for r in reports) and len(reports) == len(steps) and "forecast_error" not in summary
    return reports, ok


@command("run")
def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser("run", __doc__.splitlines()[0])
    args = parse(parser, argv)
    config = load_config(RunConfig, args.config, overrides(args))
    with progress_mode(args.progress):
        reports, ok = run(config, address=args.address)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
