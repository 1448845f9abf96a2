"""Argument parsing shared by the job entry points (no numerics here)."""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any, Callable, Protocol, Sequence

import yaml

from cluster.config import SECRET_NAMES, env_overrides
from cluster.errors import ClusterError, ConfigError


class Main(Protocol):
    """A command's ``main``: the command line in (``None``: ``sys.argv``), the exit code out."""

    def __call__(self, argv: Sequence[str] | None = None) -> int: ...


def command(verb: str) -> Callable[[Main], Main]:
    """Wrap a command's ``main``: an error of ours (bad config or input, storage refusing,
    nothing written) prints ``harvest <verb>: <message>`` on stderr and exits 2; every other
    exit code is the command's own."""

    def wrap(main: Main) -> Main:
        @functools.wraps(main)
        def run(argv: Sequence[str] | None = None) -> int:
            try:
                return main(argv)
            except ClusterError as e:
                print(f"harvest {verb}: {e}", file=sys.stderr)
                return 2

        return run

    return wrap


def job_parser(verb: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"harvest {verb}", description=description, epilog=epilog)
    parser.add_argument("--config", "-c", required=True, help="YAML config file")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join (ray://host:10001 or host:6379); default: "
                             "RAY_ADDRESS, else a local Ray on 127.0.0.1")
    parser.add_argument("--break-lease", action="store_true",
                        help="take the store's write lease even if another job seems to hold it "
                             "(only when that job is known to be dead)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set grid.pixel_size=20 (repeatable)")
    add_progress(parser)
    return parser


def add_progress(parser: argparse.ArgumentParser) -> None:
    from cluster.progress import MODES

    parser.add_argument("--progress", choices=MODES, default="auto",
                        help="live progress of the tiles: a bar, JSON lines (for schedulers) or none; "
                             "auto: a bar on a terminal, none otherwise")


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``HARVEST_*`` environment first, then ``--set`` (the command line wins)."""
    out = {k: yaml.safe_load(v) for k, v in env_overrides().items()}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        if key.rsplit(".", 1)[-1].lower() in SECRET_NAMES:
            raise ConfigError(
                f"--set {key}=... refused: a secret on the command line is visible to every user in 'ps' "
                "and is recorded in Ray's job table. Give credentials through the environment "
                "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), an AWS profile or an instance/IRSA role")
        out[key] = yaml.safe_load(value)  # '20' -> 20, '[a, b]' -> a list
    if getattr(args, "break_lease", False):
        out["break_lease"] = True
    return out


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line; the job's logs go to stderr as ``HARVEST_LOG_FORMAT`` says."""
    from cluster.logs import configure

    args = parser.parse_args(list(argv) if argv is not None else None)
    configure()
    return args


def job_main(verb: str, description: str, model: type[Any], run: Any,
             argv: Sequence[str] | None, epilog: str | None = None) -> int:
    """The shared ``main`` of a tile job: parse, load and validate the config, run, print.

    Exit codes: 0 done; 1 finished, but some tiles failed, a check failed or inputs were
    rejected (all listed in the report; a rerun redoes only what is missing); 2 bad config or
    input, nothing written.
    """
    from cluster.config import load_config
    from cluster.progress import progress_mode

    @command(verb)
    def main(argv: Sequence[str] | None = None) -> int:
        args = parse(job_parser(verb, description, epilog), argv)
        config = load_config(model, args.config, overrides(args))
        with progress_mode(args.progress):
            report = run(config, address=args.address)
        print(report.summary())
        return 0 if report.ok and not report.inputs_rejected else 1

    return main(argv)
