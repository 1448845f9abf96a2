"""A probe Ray job: runs tasks with SPREAD scheduling and reports the nodes they ran on.

Run as ``python -m tests.cluster_multinode._probe_job --config FILE`` (the shape
of every harvest job). The YAML config may set ``tasks`` (default 6), ``sleep_s``
(default 1.0), ``exit_code`` (default 0; the driver exits with it after the work,
to test status propagation) and ``print_env`` (names of variables whose values
are printed, to test that the submitter redacts secrets in streamed logs).
Prints one line ``PROBE_RESULT {json}`` with the node ids.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

import yaml


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="probe")
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    with open(args.config) as f:
        config = yaml.safe_load(f) or {}

    import ray

    ray.init()  # RAY_ADDRESS is set by the job supervisor

    @ray.remote(num_cpus=1, scheduling_strategy="SPREAD")
    def where(sleep_s: float) -> dict[str, object]:
        time.sleep(sleep_s)
        context = ray.get_runtime_context()
        return {"node_id": context.get_node_id(), "pid": os.getpid(),
                "node_ip": ray.util.get_node_ip_address()}

    sleep_s = float(config.get("sleep_s", 1.0))
    records = ray.get([where.remote(sleep_s) for _ in range(int(config.get("tasks", 6)))])
    for name in config.get("print_env", []):
        print(f"env {name}={os.environ.get(name, '<unset>')}", flush=True)
    result = {
        "node_ids": sorted({r["node_id"] for r in records}),
        "node_ips": sorted({r["node_ip"] for r in records}),
        "tasks": len(records),
        "cluster_nodes": len([n for n in ray.nodes() if n["Alive"]]),
    }
    print("PROBE_RESULT " + json.dumps(result), flush=True)
    return int(config.get("exit_code", 0))


if __name__ == "__main__":
    sys.exit(main())
