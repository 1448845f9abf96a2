"""Soak: the demo pipeline at growing sizes, actors saturated: run time and peak actor memory.

    .venv/bin/python -m benchmarks.soak [--scales 1,3,10] [--json PATH]

For each scale k, a demo season covering k times the default area (same dates, fields,
clouds) goes through ingest and indices on a local Ray with one actor per core. Printed per
job: wall time, megapixels per second, and the largest peak resident memory of any tile
actor (from the actors themselves, ``ru_maxrss``), and what Ray's object store spilled to
disk by the end of the job (cumulative; tiles travel as Zarr writes, not as objects, so it
should stay 0). Linear run time shows as constant Mpx/s; bounded memory as a peak that does
not grow with k.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Sequence

from benchmarks._report import OURS, Record, emit, parse_args


def _spilled_mib() -> int:
    """MiB spilled by the object store so far (Ray prints the line only once it spilled)."""
    from ray._private.internal_api import memory_summary

    m = re.search(r"Spilled (\d+) MiB", memory_summary(stats_only=True))
    return int(m.group(1)) if m else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv,
                      lambda p: p.add_argument("--scales", default="1,10", help="area multiples, e.g. 1,3,10"))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from cluster.demo import DemoSpec, make_demo_season
    from cluster.indices import IndicesConfig
    from cluster.ingest import IngestConfig
    from cluster.pipeline import run_indices, run_ingest
    from jobs.demo import demo_configs

    scales = [float(s) for s in args.scales.split(",")]
    if args.quick:
        scales = scales[:1]
    records = []
    base = DemoSpec()
    for k in scales:
        with tempfile.TemporaryDirectory() as tmp:
            spec = base.replace(width_km=base.width_km * math.sqrt(k), height_km=base.height_km * math.sqrt(k))
            t0 = time.perf_counter()
            season = make_demo_season(Path(tmp) / "season", spec)
            gen = time.perf_counter() - t0
            cfgs = demo_configs(season, Path(tmp))
            for job, run, cfg in (("ingest", run_ingest, IngestConfig.model_validate(cfgs["ingest"])),
                                  ("indices", run_indices, IndicesConfig.model_validate(cfgs["indices"]))):
                report = run(cfg)
                assert report.ok, report.summary()
                records.append(Record(OURS, f"{job} x{k:g}", report.wall_s, report.mpix_per_s, extra={
                    "scale": k, "tiles": report.tiles_total, "pixels": report.pixels,
                    "peak_actor_rss_mib": round(report.peak_actor_rss_mib), "generate_s": round(gen, 1),
                    "spilled_mib": _spilled_mib()}))
    emit(records, args.json)
    for r in records:
        print(f"{r.case:<14} {r.extra['tiles']:>5} tiles  {r.seconds:7.1f} s  {r.mpix_per_s:7.1f} Mpx/s  "
              f"peak actor memory {r.extra['peak_actor_rss_mib']:>6,} MiB  spilled {r.extra['spilled_mib']} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
