"""The ``harvest`` command line: ``harvest <verb> [options]`` runs ``jobs.<verb>.main``.

Every verb is also a Ray job entry point: ``python -m jobs.<verb> --config FILE``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Sequence

VERBS: dict[str, str] = {
    "demo": "make a demo season and run the whole pipeline on it, locally",
    "ingest": "tile scenes into a Zarr cube on the processing grid",
    "indices": "compute spectral indices into the cube",
    "classify": "train a crop-type model (train) and map crops into the cube (predict)",
    "aggregate": "per-region statistics from the cube",
    "forecast": "yield and production forecasts with a backtest",
    "run": "ingest -> indices -> classify (predict) -> aggregate -> forecast, from one config",
    "verify": "check a cube: every tile recorded done is there and unchanged",
    "info": "show what a cube holds (arrays, dates, grid, size) and how each step made it",
    "submit": "submit any of these as a Ray job to a cluster",
}


def _usage() -> str:
    width = max(map(len, VERBS))
    lines = ["usage: harvest <command> [options]", "", "commands:"]
    for verb, text in VERBS.items():
        if importlib.util.find_spec(f"jobs.{verb}") is not None:
            lines.append(f"  {verb.ljust(width)}  {text}")
    lines += ["", "Run 'harvest <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    verb, rest = args[0], args[1:]
    if verb not in VERBS or importlib.util.find_spec(f"jobs.{verb}") is None:
        print(f"harvest: unknown command {verb!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"jobs.{verb}")
    return int(module.main(rest))


if __name__ == "__main__":
    sys.exit(main())
