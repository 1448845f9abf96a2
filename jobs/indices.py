"""Compute spectral indices for every tile of a cube.

Reads ``<store>/<band>`` (integer DN with CF scale/offset/fill); writes ``<store>/<index>``
(one ``(time, y, x)`` array per index, float32 or scaled int16) and
``<store>.harvest/indices-report.json``.

    harvest indices --config indices.yaml
    harvest indices --list                    # the index catalogue
From a notebook: ``cluster.run_indices(config)`` (the same function).
"""

from __future__ import annotations

import sys
from typing import Sequence

from cluster.indices import IndicesConfig
from cluster.pipeline import run_indices
from jobs._cli import job_main

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if "--list" in args_list:
        from cluster.kernels import get_kernel, list_kernels

        for name in list_kernels():
            k = get_kernel(name)
            print(f"{name:10s} {', '.join(k.bands):30s} {getattr(k, 'formula', '')}")
        return 0
    return job_main("indices", __doc__.splitlines()[0], IndicesConfig, run_indices, args_list,
                    epilog="'harvest indices --list' prints the index catalogue: name, bands, formula.")


if __name__ == "__main__":
    sys.exit(main())
