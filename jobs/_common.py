"""Argument parsing shared by the job entry points (no numerics here)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable, Sequence

import yaml

from cluster.config import env_overrides


def job_parser(verb: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"harvest {verb}", description=description)
    parser.add_argument("--config", "-c", required=True, help="YAML config file")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join (ray://host:10001 or host:6379); default: "
                             "RAY_ADDRESS, else a local Ray on 127.0.0.1")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set grid.pixel_size=20 (repeatable)")
    return parser


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``HARVEST_*`` environment first, then ``--set`` (the command line wins)."""
    out = {k: yaml.safe_load(v) for k, v in env_overrides().items()}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        out[key] = yaml.safe_load(value)  # '20' -> 20, '[a, b]' -> a list
    return out


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    return parser.parse_args(list(argv) if argv is not None else None)


def job_main(verb: str, description: str, model: type[Any], run: Any,
             argv: Sequence[str] | None) -> int:
    """The shared ``main`` of a tile job: parse, load and validate the config, run, print.

    Exit codes: 0 done, 1 some tiles failed (listed in the report), 2 bad config or input.
    """
    from cluster.config import load_config
    from cluster.errors import ClusterError

    args = parse(job_parser(verb, description), argv)
    try:
        config = load_config(model, args.config, overrides(args))
        report = run(config, address=args.address)
    except ClusterError as e:
        print(f"harvest {verb}: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0 if report.ok else 1


def run_tile_job(job: str, config: Any, plan_hash: str, tasks: Sequence[Any],
                 factory: Callable[[], Any], address: str | None, *,
                 manifest: Any = None, on_result: Callable[[Any], None] | None = None) -> Any:
    """Run a tile job's tasks that ``manifest`` has not marked done on the actor pool.

    ``config`` is a job config with ``store``, ``storage``, ``max_actors``, ``resources``
    and ``strict``. Returns the :class:`~cluster.report.JobReport` so far; the caller adds
    what is particular to its job and calls :func:`write_report`.
    """
    from cluster.report import JobReport
    from cluster.runtime import PoolOptions, ensure_ray, run_tile_tasks

    done = manifest.done() if manifest is not None else set()
    todo = [t for t in tasks if t.tile.id not in done]
    report = JobReport(job=job, store=config.store, plan_hash=plan_hash, config=config.public_dict())
    report.tiles_total = len(tasks)
    report.tiles_skipped = len(tasks) - len(todo)
    if todo:
        ensure_ray(address)
        opts = PoolOptions.from_config(config.max_actors, config.resources)
        report.add_results(run_tile_tasks(factory, todo, opts, strict=config.strict, on_result=on_result))
    return report


def write_report(report: Any, config: Any, started: float, **outputs: str) -> None:
    """Finish a job report: wall time, outputs, and the JSON at ``<store>.harvest/<job>-report.json``."""
    from cluster import store as cstore

    report.wall_s = time.perf_counter() - started
    url = f"{cstore.meta_url(config.store)}/{report.job}-report.json"
    report.outputs = {**outputs, "report": url}
    cstore.write_json(url, report.to_dict(), config.storage.to_fsspec())
