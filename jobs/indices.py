"""Compute spectral indices for every tile of a cube.

Reads ``<store>/<band>`` (integer DN with CF scale/offset/fill); writes ``<store>/<index>``
(one ``(time, y, x)`` array per index, float32 or scaled int16) and
``<store>.harvest/indices-report.json``.

    harvest indices --config indices.yaml
    harvest indices --list                    # the index catalogue
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Callable, Sequence

from cluster import store as cstore
from cluster.indices import IndicesConfig, IndicesPlan, IndicesWorker, plan_indices, prepare_indices
from cluster.engine import run_tile_job, write_report
from cluster.report import JobReport
from cluster.tasks import TileResult
from jobs._common import job_main

__all__ = ["IndicesConfig", "plan", "run", "main"]


def plan(config: IndicesConfig) -> IndicesPlan:
    """Check kernels and bands, list the tiles; reads metadata only, never starts Ray."""
    return plan_indices(config)


def run(config: IndicesConfig, address: str | None = None,
        progress: Callable[[TileResult], None] | None = None) -> JobReport:
    """Check, prepare the index arrays, run every tile not yet done, report (``progress``:
    called with each tile's final result as it arrives)."""
    t0 = time.perf_counter()
    p = plan(config)
    so = config.storage.for_workers()  # no credentials in what actors receive
    report = run_tile_job("indices", config, p.hash, p.tiles, functools.partial(IndicesWorker, p, so),
                          address, prepare=lambda: prepare_indices(p, config), on_result=progress)
    report.store_bytes = sum(cstore.store_bytes(f"{config.store.rstrip('/')}/{k}", config.storage.to_fsspec())
                             for k in p.kernels)
    write_report(report, config, t0, cube=config.store, indices=", ".join(p.kernels))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if "--list" in args_list:
        from cluster.kernels import get_kernel, list_kernels

        for name in list_kernels():
            k = get_kernel(name)
            print(f"{name:10s} {', '.join(k.bands):30s} {getattr(k, 'formula', '')}")
        return 0
    return job_main("indices", __doc__.splitlines()[0], IndicesConfig, run, args_list)


if __name__ == "__main__":
    sys.exit(main())
