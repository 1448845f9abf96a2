"""Ingest scenes into an analysis-ready Zarr cube on the processing grid.

Reads: scenes (GeoTIFF/COG paths, globs, URLs, or a STAC ItemCollection), local or s3://.
Writes: ``<store>`` (Zarr v3 group, one ``(time, y, x)`` array per band) and
``<store>.harvest/`` (per-tile manifest, ``ingest-report.json``).

    harvest ingest --config ingest.yaml [--address ray://head:10001]
    python -m jobs.ingest --config ingest.yaml
From a notebook: ``cluster.run_ingest(config)`` (the same function).
"""

from __future__ import annotations

import sys
from typing import Sequence

from cluster.ingest import IngestConfig
from cluster.pipeline import run_ingest
from jobs._cli import job_main

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    return job_main("ingest", __doc__.splitlines()[0], IngestConfig, run_ingest, argv)


if __name__ == "__main__":
    sys.exit(main())
