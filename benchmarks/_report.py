"""Shared output for benchmark scripts: one table on stdout and, with --json, the same records.

Each record: ``tool`` (ours is ``harvest-cluster``), ``case``, ``seconds``, ``mpix_per_s``,
optionally ``gbps`` and ``fraction_of_bandwidth``, and ``ratio_vs_ours`` (the tool's seconds divided by
ours for the same case, so above 1 means ours is faster).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

OURS = "harvest-cluster"


@dataclass
class Record:
    tool: str
    case: str
    seconds: float
    mpix_per_s: float
    gbps: float | None = None
    fraction_of_bandwidth: float | None = None
    ratio_vs_ours: float | None = None
    extra: dict[str, object] = field(default_factory=dict)


def parse_args(description: str, argv: Sequence[str] | None = None,
               extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The common flags: ``--quick`` (a small version in under a minute) and ``--json PATH``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes; finishes in under a minute")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the records as JSON to PATH")
    if extra is not None:
        extra(parser)
    return parser.parse_args(argv)


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Median wall time in seconds of ``repeat`` calls (after they ran once to warm up)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def fill_ratios(records: list[Record]) -> None:
    """Set ``ratio_vs_ours`` = tool seconds / ours seconds for the same case."""
    ours = {r.case: r.seconds for r in records if r.tool == OURS}
    for r in records:
        if r.case in ours and ours[r.case] > 0:
            r.ratio_vs_ours = r.seconds / ours[r.case]


def emit(records: list[Record], json_path: Path | None, meta: dict[str, object] | None = None) -> None:
    """Print the table and write JSON when asked."""
    fill_ratios(records)
    head = f"{'case':<28} {'tool':<22} {'seconds':>9} {'Mpx/s':>9} {'GB/s':>7} {'%bw':>6} {'x ours':>7}"
    print(head)
    print("-" * len(head))
    for r in records:
        gb = f"{r.gbps:7.2f}" if r.gbps is not None else " " * 7
        bw = f"{100 * r.fraction_of_bandwidth:5.1f}%" if r.fraction_of_bandwidth is not None else " " * 6
        ratio = f"{r.ratio_vs_ours:7.2f}" if r.ratio_vs_ours is not None else " " * 7
        print(f"{r.case:<28} {r.tool:<22} {r.seconds:9.4f} {r.mpix_per_s:9.1f} {gb} {bw} {ratio}")
    print("x ours = that tool's time / ours (above 1: ours is faster)")
    if json_path is not None:
        payload = {
            "meta": {"python": platform.python_version(), "machine": platform.machine(), **(meta or {})},
            "records": [asdict(r) for r in records],
        }
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(payload, indent=2))
        print(f"wrote {json_path}")


def records_for(tool_times: Iterable[tuple[str, str, float]], mpix: float) -> list[Record]:
    return [Record(tool=t, case=c, seconds=s, mpix_per_s=mpix / s if s > 0 else float("inf"))
            for t, c, s in tool_times]
