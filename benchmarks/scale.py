"""The tile-job engine at continental scale: 100,000 tiles through one driver, on 1 to 3 Ray nodes.

A plan of N tiles (the 10 m grid, 512 x 512 px tiles, EPSG:6933: 100,000 tiles is about
Kazakhstan's area) runs through :func:`cluster.engine.run_tile_job`, the function every tile
job (``ingest``, ``indices``, ``aggregate``, ``classify predict``) runs through: the store's write
lease (renewed by the driver), the actor pool of :func:`cluster.runtime.run_tile_tasks`, the
manifest record that each actor writes after each tile (after checking the lease), the report.
The worker does no pixel work (``--work-ms`` adds a sleep per tile), so what is measured is
the engine's own cost:

* ``plan s``: building the plan (grid extent, its ``GridTasks``, the plan hash), as
  ``plan_indices`` and ``plan_predict`` do. ``ingest`` also lists each tile's scenes
  (``cluster.ingest.scenes_per_tile``); that step is timed on its own (``--scenes`` granules
  of 110 km, the Sentinel-2 size, over 100,000 tiles, per tile) and printed below the table.
* ``list s``: ``Manifest.done()`` over the N records the run left (one listing, what a rerun
  does before it skips done tiles); the store is a local folder.
* ``CPU ms/tile``: the driver process's CPU time (``time.process_time``: Python, Ray's core
  worker threads in the driver, the lease renewals) over the run, per tile.
* ``RSS MiB``: the driver's resident memory before the plan, and its peak during the run
  (sampled every 20 ms); ``py MiB`` (with ``--tracemalloc``, which slows the driver): the
  peak of Python allocations from before the plan to the end of the run.
* ``tiles/s``: from the first result to the last (actor start-up left out); ``wall s`` is the
  whole ``run_tile_job`` call.

Nodes are separate ``ray start`` processes on 127.0.0.1 (``tests.cluster_multinode._cluster``,
each ``--cpus-per-node`` CPUs, one actor per CPU). On a single machine they share its cores,
so tiles/s here is scheduling overhead, not compute: more nodes add actors, not cores.

Run: ``.venv/bin/python -m benchmarks.scale [--tiles 100000] [--sizes 10000,30000]
[--nodes 1,2,3] [--cpus-per-node 2] [--work-ms 0] [--tracemalloc] [--quick] [--json PATH]``.
``--sizes`` are extra plan sizes run on the first node count only (memory against N).
``--quick``: 2,000 tiles, sizes 500,1000, nodes 1,2 (about a minute).
"""

from __future__ import annotations

import functools
import hashlib
import numpy as np
import math
import os
import pickle
import secrets
import tempfile
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from benchmarks._report import parse_args
from cluster.grid import BBox, CubeExtent, GridSpec
from cluster.ingest import scenes_per_tile
from cluster.records import GridTasks, TileResult, TileTask, plan_for_workers

TILE_PX = 512
PIXEL_M = 10.0
JOB = "scale"
KZ_TILES = 100_000
"""Kazakhstan, 2.72e6 km2, at 10 m in 512 x 512 px tiles (26.2 km2 each): ~104,000 tiles."""


@dataclass(frozen=True)
class ScalePlan:
    """What the jobs' plans are to the engine: the tiles and a hash (and it travels to every
    actor inside the worker factory, without its tiles, as ``IndicesPlan`` does)."""

    tiles: Sequence[TileTask]
    hash: str
    work_s: float = 0.0


class NoopWorker:
    """A tile worker that writes nothing and reports a 512 x 512 tile done."""

    def __init__(self, plan: ScalePlan) -> None:
        self.plan = plan

    def process(self, task: TileTask) -> TileResult:
        t0 = time.perf_counter()
        if self.plan.work_s:
            time.sleep(self.plan.work_s)
        return TileResult(task.tile.id, "done", pixels=TILE_PX * TILE_PX,
                          seconds=time.perf_counter() - t0, record={"noop": True})


def plan_tiles(n_tiles: int, work_s: float = 0.0) -> tuple[GridSpec, ScalePlan]:
    """N tiles, row-major over a near-square block of the grid: the first N of the block's
    tiles, as a :class:`~cluster.records.GridTasks` (what the jobs' plans hold)."""
    grid = GridSpec("EPSG:6933", pixel_size=PIXEL_M, tile_size_px=TILE_PX)
    ncols = math.ceil(math.sqrt(n_tiles))
    extent = CubeExtent(grid, row0=900, col0=1400, nrows=math.ceil(n_tiles / ncols), ncols=ncols)
    tiles = GridTasks(extent, keep=np.arange(extent.nrows * extent.ncols) < n_tiles)
    h = hashlib.sha256(repr((extent.to_dict(), n_tiles, work_s)).encode()).hexdigest()[:16]
    return grid, ScalePlan(tiles, h, work_s)


def time_scene_assignment(grid: GridSpec, n_scenes: int) -> float:
    """Seconds per tile of ingest's tile -> scenes step (``cluster.ingest.scenes_per_tile``, as
    ``plan_ingest`` calls it) over a square of ``KZ_TILES`` tiles, with ``n_scenes`` 110 km
    granules spread over it (so about as many touch a tile as in a real season)."""
    n = math.ceil(math.sqrt(KZ_TILES))
    side = n * grid.tile_extent  # the plan's area, about Kazakhstan's
    granule = 109_800.0
    per_row = max(1, math.ceil(side / granule))
    footprints = []
    for i in range(n_scenes):
        cell = i % (per_row * per_row)
        x0 = 1400 * grid.tile_extent + (cell % per_row) * granule
        y0 = -900 * grid.tile_extent - (cell // per_row) * granule
        footprints.append(BBox(x0, y0 - granule, x0 + granule, y0))
    extent = CubeExtent(grid, row0=900, col0=1400, nrows=n, ncols=n)
    t0 = time.perf_counter()
    scenes_per_tile(extent, footprints)  # what plan_ingest calls
    return (time.perf_counter() - t0) / (extent.nrows * extent.ncols)


def create_store(url: str) -> None:
    """A minimal cube (one 2 x 2 array, CRS, time) so the job's end (consolidated metadata,
    STAC record) runs as it does on a real cube."""
    import numpy as np
    import rioxarray  # noqa: F401  (the .rio accessor)
    import xarray as xr

    from cluster.store import OWNER_TAG

    ds = xr.Dataset({"noop": (("time", "y", "x"), np.zeros((1, 2, 2), np.uint8))},
                    coords={"time": [np.datetime64("2026-06-01", "ns")], "y": [5.0, -5.0], "x": [-5.0, 5.0]})
    ds = ds.rio.write_crs("EPSG:6933")
    ds.attrs["harvest"] = {"written_by": OWNER_TAG, "job": JOB}
    ds.to_zarr(url, mode="w", zarr_format=3, consolidated=False)


class RssSampler:
    """The driver's peak resident memory over a block, read from ``/proc/self/statm``."""

    def __init__(self, every_s: float = 0.02) -> None:
        self.every_s = every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> "RssSampler":
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


@dataclass
class Run:
    nodes: int
    actors: int
    tiles: int
    plan_s: float
    plan_pickle_mib: float
    wall_s: float
    steady_tiles_per_s: float
    driver_cpu_ms_per_tile: float
    """The whole ``run_tile_job`` call (lease, prepare, pool, the job's end) per tile."""
    pool_cpu_ms_per_tile: float
    """From the first result to the last: the marginal cost of one more tile."""
    rss_before_mib: float
    rss_peak_mib: float
    list_s: float
    py_peak_mib: float | None = None
    tiles_per_node: list[int] = field(default_factory=list)


def run_once(address: str, nodes: int, cpus_per_node: int, n_tiles: int, work_s: float,
             trace: bool, root: Path) -> Run:
    """Plan ``n_tiles``, run them through the engine, list the manifest; one fresh store."""
    from cluster import store as cstore
    from cluster.config import TileJobConfig
    from cluster.engine import run_tile_job

    store = str(root / f"scale-{nodes}n-{n_tiles}.zarr")
    config = TileJobConfig(store=store, max_actors=nodes * cpus_per_node)
    if trace:
        tracemalloc.start()
    rss0 = RssSampler.rss()
    t0 = time.perf_counter()
    _, plan = plan_tiles(n_tiles, work_s)
    plan_s = time.perf_counter() - t0
    factory = functools.partial(NoopWorker, plan_for_workers(plan))
    first_last: list[tuple[float, float]] = []  # (wall, driver CPU) at the first and last result

    def on_result(r: TileResult) -> None:
        now = (time.perf_counter(), time.process_time())
        if len(first_last) < 2:
            first_last.append(now)
        first_last[-1] = now

    def prepare() -> cstore.Manifest:
        create_store(store)
        return cstore.Manifest(store, JOB, plan.hash)

    cpu0 = time.process_time()
    t1 = time.perf_counter()
    with RssSampler() as rss:
        report = run_tile_job(JOB, config, plan.hash, plan.tiles, factory, address, prepare=prepare,
                              on_result=on_result)
    wall_s = time.perf_counter() - t1
    cpu_s = time.process_time() - cpu0
    py_peak = None
    if trace:
        py_peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    if report.tiles_done != n_tiles:
        raise RuntimeError(f"{report.tiles_done} of {n_tiles} tiles done: {report.summary()}")
    t2 = time.perf_counter()
    done = cstore.Manifest(store, JOB, plan.hash).done()
    list_s = time.perf_counter() - t2
    if len(done) != n_tiles:
        raise RuntimeError(f"the manifest lists {len(done)} tiles, not {n_tiles}")
    (w0, c0), (w1, c1) = first_last if len(first_last) == 2 else (first_last[0], first_last[0])
    steady = (n_tiles - 1) / (w1 - w0) if w1 > w0 else 0.0
    steady_cpu = 1e3 * (c1 - c0) / (n_tiles - 1) if n_tiles > 1 else 0.0
    return Run(nodes=nodes, actors=config.max_actors, tiles=n_tiles, plan_s=plan_s,
               plan_pickle_mib=len(pickle.dumps(factory)) / 2**20, wall_s=wall_s,
               steady_tiles_per_s=steady, driver_cpu_ms_per_tile=1e3 * cpu_s / n_tiles,
               pool_cpu_ms_per_tile=steady_cpu,
               rss_before_mib=rss0 / 2**20, rss_peak_mib=rss.peak / 2**20, list_s=list_s,
               py_peak_mib=py_peak, tiles_per_node=sorted(report.tiles_per_node.values(), reverse=True))


def _start_cluster(nodes: int, cpus_per_node: int, token: str) -> Any:
    """Head + ``nodes - 1`` workers, token auth, on 127.0.0.1 (the test suite's helper: not
    ``ray.cluster_utils.Cluster``, which would publish its address in the machine-wide
    ``/tmp/ray/ray_current_cluster`` for any other ``ray.init()`` to join).

    Every cluster of the run gets the same token: Ray caches the driver's token once per
    process."""
    from tests.cluster_multinode._cluster import LocalRayCluster

    cluster = LocalRayCluster(workers=nodes - 1, cpus_per_node=cpus_per_node, object_store_mib=200)
    cluster.token = token
    cluster.token_path.write_text(token)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def main(argv: Sequence[str] | None = None) -> int:
    def extra(p: Any) -> None:
        p.add_argument("--tiles", type=int, default=KZ_TILES, help="plan size for every node count")
        p.add_argument("--sizes", default="10000,30000",
                       help="extra plan sizes, run on the first node count only ('' for none)")
        p.add_argument("--nodes", default="1,2,3", help="node counts, e.g. 1,2,3")
        p.add_argument("--cpus-per-node", type=int, default=2, help="Ray CPUs per node (one actor each)")
        p.add_argument("--work-ms", type=float, default=0.0, help="sleep per tile in the worker")
        p.add_argument("--scenes", type=int, default=12_000,
                       help="scene granules for ingest's tile -> scenes step (Kazakhstan, a season: "
                            "~300 granules x ~40 dates)")
        p.add_argument("--tracemalloc", action="store_true",
                       help="also trace Python allocations in the driver (slower driver)")

    args = parse_args(__doc__.splitlines()[0], argv, extra)
    if args.quick:
        args.tiles, args.sizes, args.nodes = 2000, "500,1000", "1,2"
    node_counts = [int(n) for n in args.nodes.split(",") if n]
    sizes = sorted({int(s) for s in args.sizes.split(",") if s} | {args.tiles})
    # before Ray is imported: this driver stays on 127.0.0.1 and uses the clusters' token
    token = secrets.token_hex(32)
    os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0",
                      RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    os.environ.pop("RAY_ADDRESS", None)
    import ray
    import rioxarray  # noqa: F401  (imported before any clock starts: create_store needs it)
    import xarray  # noqa: F401

    from cluster.runtime import ensure_ray

    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="harvest-scale-") as tmp:
        for k, nodes in enumerate(node_counts):
            cluster = _start_cluster(nodes, args.cpus_per_node, token)
            try:
                ensure_ray(cluster.gcs_address)  # joined before the clock starts
                for n in (sizes if k == 0 else [args.tiles]):
                    run = run_once(cluster.gcs_address, nodes, args.cpus_per_node, n, args.work_ms / 1e3,
                                   args.tracemalloc, Path(tmp))
                    runs.append(run)
                    print(f"  {nodes} node(s), {n:,} tiles: {run.wall_s:.1f} s", flush=True)
            finally:
                ray.shutdown()
                cluster.stop()

    head = (f"{'nodes':>5} {'actors':>6} {'tiles':>8} {'plan s':>7} {'plan MiB':>8} {'wall s':>7} "
            f"{'tiles/s':>8} {'CPU ms/tile':>11} {'steady':>6} {'RSS MiB':>15} {'py MiB':>7} {'list s':>7}  tiles per node")
    print(head)
    print("-" * len(head))
    for r in runs:
        py = f"{r.py_peak_mib:7.1f}" if r.py_peak_mib is not None else " " * 7
        print(f"{r.nodes:>5} {r.actors:>6} {r.tiles:>8,} {r.plan_s:7.2f} {r.plan_pickle_mib:8.2f} "
              f"{r.wall_s:7.1f} {r.steady_tiles_per_s:8.0f} {r.driver_cpu_ms_per_tile:11.3f} {r.pool_cpu_ms_per_tile:6.3f} "
              f"{r.rss_before_mib:6.0f} -> {r.rss_peak_mib:5.0f} {py} {r.list_s:7.2f}  "
              f"{', '.join(map(str, r.tiles_per_node))}")
    print("CPU ms/tile: driver CPU of the whole job / tiles; steady: from the first result to the last. "
          "RSS: before the plan -> peak during the run; plan MiB: the pickled worker factory "
          "(the plan without its tiles) that every actor fetches")

    grid = GridSpec("EPSG:6933", pixel_size=PIXEL_M, tile_size_px=TILE_PX)
    per_tile = time_scene_assignment(grid, args.scenes)
    print(f"ingest's tile -> scenes step: {1e3 * per_tile:.3f} ms per tile with {args.scenes:,} scenes, "
          f"{per_tile * args.tiles:,.0f} s for {args.tiles:,} tiles")
    _verdicts(runs, args.tiles)
    if args.json is not None:
        import json
        from dataclasses import asdict

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": {"time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                  "cpus_per_node": args.cpus_per_node, "work_ms": args.work_ms,
                                                  "scenes": args.scenes, "cores": os.cpu_count(),
                                                  "ingest_scene_loop_s_per_tile": per_tile},
                                         "runs": [asdict(r) for r in runs]}, indent=2))
        print(f"wrote {args.json}")
    return 0


def _verdicts(runs: list[Run], n_tiles: int) -> None:
    """The issue's three goals, each met or not, from this run's numbers."""
    big = [r for r in runs if r.tiles == n_tiles]
    worst_cpu = max(r.driver_cpu_ms_per_tile for r in big)
    worst_steady = max(r.pool_cpu_ms_per_tile for r in big)
    print(f"goal driver <= 1 ms CPU per tile at {n_tiles:,} tiles: {'met' if worst_cpu <= 1.0 else 'NOT met'} "
          f"(worst {worst_cpu:.3f} ms for the whole job, {worst_steady:.3f} ms steady)")
    first = [r for r in runs if r.nodes == runs[0].nodes]
    if len(first) > 1:
        a, b = first[0], first[-1]
        per_tile = (b.rss_peak_mib - a.rss_peak_mib) * 2**20 / (b.tiles - a.tiles)
        print(f"driver memory: peak RSS {a.rss_peak_mib:.0f} MiB at {a.tiles:,} tiles, {b.rss_peak_mib:.0f} MiB "
              f"at {b.tiles:,} ({per_tile:,.0f} B per extra tile, plan included)")
    by_nodes = [r for r in runs if r.tiles == n_tiles]
    rates = ", ".join(f"{r.nodes} node(s) {r.steady_tiles_per_s:.0f}" for r in by_nodes)
    # 10 % per added node, so that run-to-run noise (a few %) does not count as growth
    grows = all(b.steady_tiles_per_s > 1.1 * a.steady_tiles_per_s for a, b in zip(by_nodes, by_nodes[1:]))
    verdict = "not measured (one node count)" if len(by_nodes) < 2 else "met" if grows else "NOT met"
    print(f"goal throughput grows with nodes (>= 10 % per added node): {verdict} "
          f"(tiles/s: {rates}; one machine's cores shared by every node)")


if __name__ == "__main__":
    raise SystemExit(main())
