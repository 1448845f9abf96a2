"""A Ray job that runs a slow tile job through the real actor pool and reports where each
tile ran: the pool must take up nodes that join while it runs.

Run as ``python -m tests.cluster_multinode._grow_job --config FILE`` (YAML: ``tiles``,
default 120; ``sleep_s`` per tile, default 0.25; ``max_actors``, default 4). Prints one line
``GROW_RESULT {json}``: per node id, the tiles it ran.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import yaml

from cluster.grid import TileIndex
from cluster.records import TileResult, TileTask


class SleepWorker:
    """A worker whose every tile takes ``sleep_s``: the job lasts long enough to grow."""

    def __init__(self, sleep_s: float) -> None:
        self.sleep_s = sleep_s

    def process(self, task: TileTask) -> TileResult:
        time.sleep(self.sleep_s)
        return TileResult(task.tile.id, "done")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grow")
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    with open(args.config) as f:
        config = yaml.safe_load(f) or {}

    import functools

    import ray

    from cluster.config import WorkerResources
    from cluster.runtime import PoolOptions, run_tile_tasks

    ray.init()  # RAY_ADDRESS is set by the job supervisor
    tasks = [TileTask(TileIndex(0, c)) for c in range(int(config.get("tiles", 120)))]
    per_node: dict[str, int] = {}

    def seen(res: TileResult) -> None:
        per_node[str(res.node_id)] = per_node.get(str(res.node_id), 0) + 1
        print(f"tile {res.tile_id} {res.status} on {res.node_id}", flush=True)

    opts = PoolOptions(int(config.get("max_actors", 4)), WorkerResources(memory_mib=None))
    outcome = run_tile_tasks(functools.partial(SleepWorker, float(config.get("sleep_s", 0.25))), tasks, opts,
                             on_result=seen)
    print("GROW_RESULT " + json.dumps({"per_node": per_node, "counts": outcome.counts}), flush=True)
    return 0 if outcome.counts.get("done", 0) == len(tasks) else 1


if __name__ == "__main__":
    sys.exit(main())
