"""Show what a cube holds and how it was made.

Bands, indices, crop maps and feature layers; dates; the grid; per step (ingest, indices,
classify, aggregate) the tiles done against the plan, when it ran, the version and its
inputs; the size on storage. Reads metadata only.

    harvest info harvest-demo/cube.zarr [--json]

Exit codes: 0 shown; 2 not a cube, or it cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from jobs._cli import command, overrides
from jobs.verify import VerifyConfig

__all__ = ["main"]


@command("info")
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harvest info", description=__doc__.splitlines()[0])
    parser.add_argument("store", help="the cube's URL (local path or s3://...)")
    parser.add_argument("--json", action="store_true", help="print it as JSON (with every step's config)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="storage settings, e.g. --set storage.endpoint_url=http://127.0.0.1:9000")
    args = parser.parse_args(list(argv) if argv is not None else None)
    from cluster.config import load_config
    from cluster.info import store_info

    config = load_config(VerifyConfig, None, {**overrides(args), "store": args.store})
    info = store_info(config.storage.locate(config.store))
    print(json.dumps(info.to_dict(), indent=2, default=str) if args.json else info.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
