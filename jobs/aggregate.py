"""Per-region statistics of a cube's indices: pixel count, area (ha), mean, std, ... per
(region, crop class, date, index).

Reads ``<store>`` (index arrays, optional crop map) and a regions file; writes
``<out>.parquet`` and ``<out>.csv`` (default ``<store>.harvest/statistics``) and
``<store>.harvest/aggregate-report.json``. Partials are exact and merge in any order, so
the table is bit-identical whatever the number of workers, nodes or the tile order.

    harvest aggregate --config aggregate.yaml
From a notebook: ``cluster.run_aggregate(config)`` (the same function).
"""

from __future__ import annotations

import sys
from typing import Sequence

from cluster.aggregate import AggregateConfig
from cluster.pipeline import run_aggregate
from cluster.progress import progress_mode
from jobs._cli import command, job_parser, overrides, parse

__all__ = ["main"]


@command("aggregate")
def main(argv: Sequence[str] | None = None) -> int:
    from cluster.config import load_config

    args = parse(job_parser("aggregate", __doc__.splitlines()[0]), argv)
    config = load_config(AggregateConfig, args.config, overrides(args))
    with progress_mode(args.progress):
        report = run_aggregate(config, address=args.address)
    table = report.tables["statistics"]
    print(report.summary())
    print(f"  rows: {len(table)} ({table['region_id'].nunique() if len(table) else 0} regions)")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
