"""Verify a cube: every tile a job recorded as done is there, readable and unchanged.

Reads ``<store>`` and ``<store>.harvest/manifest/``; writes nothing (unless
``--forget-damaged``: then the manifest records of damaged tiles are removed, so that a
rerun of the job rewrites them).

    harvest verify harvest-demo/cube.zarr [--json] [--forget-damaged]

Exit codes: 0 clean; 1 problems found (listed); 2 not a cube, or it cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from cluster.config import StorageOptions, StrictModel, load_config
from jobs._cli import command, overrides

__all__ = ["VerifyConfig", "main"]


class VerifyConfig(StrictModel):
    store: str
    """The cube to verify."""
    storage: StorageOptions = StorageOptions()


@command("verify")
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harvest verify", description=__doc__.splitlines()[0])
    parser.add_argument("store", help="the cube's URL (local path or s3://...)")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument("--forget-damaged", action="store_true",
                        help="remove the manifest records of damaged tiles so a rerun rewrites them")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="storage settings, e.g. --set storage.endpoint_url=http://127.0.0.1:9000")
    args = parser.parse_args(list(argv) if argv is not None else None)
    from cluster.verify import verify_store

    config = load_config(VerifyConfig, None, {**overrides(args), "store": args.store})
    report = verify_store(config.storage.locate(config.store), forget_damaged=args.forget_damaged)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
