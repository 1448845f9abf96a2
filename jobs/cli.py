"""The ``harvest`` command line: ``harvest <verb> [options]`` runs ``jobs.<verb>.main``.

Every verb is also a Ray job entry point: ``python -m jobs.<verb> --config FILE``.

Exit codes: 0 done; 1 finished, but some tiles, checks or steps failed (listed; a rerun
redoes only those); 2 bad config or input, nothing written; 3 (``submit``) the cluster could
not be reached; 4 an unexpected error (a bug or a broken environment: one paragraph, the
traceback with ``--debug``); 130 interrupted (done tiles stay recorded: rerun to resume).
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
    "presets": "list the sensor presets: band files, scaling, valid ranges, cloud mask",
    "submit": "submit any of these as a Ray job to a cluster",
}


def _usage() -> str:
    width = max(map(len, VERBS))
    lines = ["usage: harvest <command> [options]", "", "commands:"]
    for verb, text in VERBS.items():
        if importlib.util.find_spec(f"jobs.{verb}") is not None:
            lines.append(f"  {verb.ljust(width)}  {text}")
    lines += ["", "Run 'harvest <command> --help' for a command's options; 'harvest --debug <command> ...'",
              "shows tracebacks. Exit codes: 0 done, 1 partly failed (listed), 2 bad config or input,",
              "3 cluster unreachable (submit), 4 unexpected error, 130 interrupted."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    verb, rest = args[0], args[1:]
    if verb not in VERBS or importlib.util.find_spec(f"jobs.{verb}") is None:
        print(f"harvest: unknown command {verb!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    if debug:
        import logging

        logging.getLogger("cluster").setLevel(logging.DEBUG)
    try:
        module = importlib.import_module(f"jobs.{verb}")
        return int(module.main(rest))
    except KeyboardInterrupt:
        print(f"harvest {verb}: interrupted. Tiles already done are recorded; rerun the same command "
              "to resume from them.", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the last line of defence: one paragraph, not a traceback
        if debug:
            raise
        where = _where(e)
        print(f"harvest {verb}: unexpected error {type(e).__name__}: {e}{where}. This is a bug in "
              "harvest-cluster or a problem of this environment (a broken install, a full disk), not "
              f"of your config. Rerun with 'harvest --debug {verb} ...' for the traceback and report it "
              "with the command.", file=sys.stderr)
        return 4


def _where(e: BaseException) -> str:
    """' (in file:line)' of the innermost frame of our own code the error passed through."""
    tb, found = e.__traceback__, ""
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if "/cluster/" in name or "/jobs/" in name:
            found = f" (in {'/'.join(name.split('/')[-2:])}:{tb.tb_lineno})"
        tb = tb.tb_next
    return found


if __name__ == "__main__":
    sys.exit(main())
