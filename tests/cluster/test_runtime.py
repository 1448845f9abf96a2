"""The actor pool under faults: killed workers, failing tiles, impossible resource asks."""

from __future__ import annotations

import functools
import glob
import os
import time
from pathlib import Path

import pytest

from cluster.config import WorkerResources
from cluster.errors import ClusterError, ResourceError
from cluster.ingest import IngestWorker, plan_ingest, prepare_store
from cluster.runtime import PoolOptions, run_tile_tasks, shared_actors
from cluster.grid import TileIndex
from cluster.records import TileResult, TileTask
from cluster.chaos import FailOnWorker, KillOnceWorker
from tests.jobs.test_ingest import cbers_config

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


def _chunks(store: str) -> dict[str, bytes]:
    return {os.path.relpath(p, store): Path(p).read_bytes()
            for p in glob.glob(f"{store}/**/c/**", recursive=True) if os.path.isfile(p)}


def _prepared(store: str):  # noqa: ANN202
    cfg = cbers_config(store, grid={"crs": "EPSG:6933", "pixel_size": 64, "tile_size_px": 16})
    plan = plan_ingest(cfg)
    prepare_store(plan, cfg)
    return plan, functools.partial(IngestWorker, plan)


def test_runtime__killed_worker_costs_a_retry_not_a_tile(tmp_path: Path) -> None:
    clean_plan, clean = _prepared(str(tmp_path / "clean.zarr"))
    outcome = run_tile_tasks(clean, clean_plan.tiles, PoolOptions(2))
    assert "failed" not in outcome.counts and sum(outcome.counts.values()) == len(clean_plan.tiles)

    plan, inner = _prepared(str(tmp_path / "chaos.zarr"))
    victim = plan.tiles[len(plan.tiles) // 2].tile.id
    factory = functools.partial(KillOnceWorker, inner, victim, str(tmp_path), 0.05)
    results: list[TileResult] = []
    outcome = run_tile_tasks(factory, plan.tiles, PoolOptions(2), on_result=results.append)
    assert outcome.retries >= 1 and outcome.actors_replaced == 1
    killed_pid = int((tmp_path / f"killed-{victim}").read_text())
    by_tile = {r.tile_id: r for r in results}
    assert by_tile[victim].status in ("done", "empty")
    assert by_tile[victim].pid != killed_pid  # it ran again, in a restarted actor process
    assert not [r for r in results if r.status == "failed"]
    assert _chunks(str(tmp_path / "chaos.zarr")) == _chunks(str(tmp_path / "clean.zarr"))


class _SquareWorker:
    """A typed worker: an int payload in, its square out (after a pause the kill can hit)."""

    def process(self, task: TileTask[int]) -> TileResult[int]:
        time.sleep(0.2)
        return TileResult(task.tile.id, "done", output=task.payload**2)


class CountingFactory:
    """A worker factory that counts, in this (the driver's) process, how often it is pickled:
    once per ``ray.put``, once per actor if it went by value into each constructor."""

    pickled = 0

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner = inner

    def __call__(self):  # noqa: ANN204
        return self.inner()

    def __reduce__(self):  # noqa: ANN204
        type(self).pickled += 1
        return (CountingFactory, (self.inner,))


def test_runtime__the_plan_goes_to_the_object_store_once(tmp_path: Path) -> None:
    """The factory (which holds the job's plan: for ingest, every scene) is serialised once
    for the whole pool, replacement actors included, not once per actor."""
    tasks = [TileTask(TileIndex(0, c), payload=c) for c in range(8)]
    victim = tasks[1].tile.id
    factory = CountingFactory(functools.partial(KillOnceWorker, _SquareWorker, victim, str(tmp_path), 0.05))
    CountingFactory.pickled = 0
    results: list[TileResult[int]] = []
    outcome = run_tile_tasks(factory, tasks, PoolOptions(2), on_result=results.append)
    assert outcome.actors_replaced == 1  # three actors built a worker from it
    assert sorted((r.tile_id, r.output) for r in results) == sorted((t.tile.id, t.payload**2) for t in tasks)
    assert CountingFactory.pickled == 1


def test_runtime__shared_actors_serve_the_next_job_and_a_dead_one_is_replaced() -> None:
    """Inside ``shared_actors`` a job's actors are parked and the next job's worker is built
    in them (the same processes); one that died while parked is replaced, the job loses no
    tile; after the block a job starts new processes."""
    import signal

    tasks = [TileTask(TileIndex(0, c), payload=c) for c in range(6)]

    def job(resources: WorkerResources | None = None) -> set[int]:
        results: list[TileResult[int]] = []
        outcome = run_tile_tasks(_SquareWorker, tasks, PoolOptions(2, resources or WorkerResources()),
                                 on_result=results.append)
        assert outcome.counts == {"done": len(tasks)}
        assert sorted(r.output for r in results) == sorted(t.payload**2 for t in tasks)
        return {r.pid for r in results}

    with shared_actors():
        first = job()
        assert job() == first and len(first) == 2  # the same two processes
        os.kill(min(first), signal.SIGKILL)  # dies while parked
        time.sleep(0.5)
        after_kill = job()
        assert max(first) in after_kill and min(first) not in after_kill, (first, after_kill)
        # other resources: new actors, and the parked ones made way for them
        other = job(WorkerResources(num_cpus=0.5))
        assert other.isdisjoint(first | after_kill)
        assert job().isdisjoint(other | first | after_kill)
    assert job().isdisjoint(first | after_kill | other)  # the block killed what it parked


def test_runtime__actors_carry_readable_names_and_a_replacement_a_new_one(tmp_path: Path) -> None:
    import re

    from ray._private.state import actors as gcs_actors  # the GCS table: no dashboard in tests

    plan, inner = _prepared(str(tmp_path / "c.zarr"))
    victim = plan.tiles[1].tile.id
    factory = functools.partial(KillOnceWorker, inner, victim, str(tmp_path), 0.05)
    named = lambda: {a["Name"] for a in gcs_actors().values() if a["Name"].startswith("harvest-ingest-")}  # noqa: E731
    before, seen = named(), set()  # earlier jobs of this test run named theirs too

    def look(_: TileResult) -> None:
        seen.update(named() - before)

    outcome = run_tile_tasks(factory, plan.tiles, PoolOptions(2, label="ingest"), on_result=look)
    assert outcome.actors_replaced == 1
    runs = {re.fullmatch(r"harvest-ingest-([0-9a-f]{6})-(\d+)", n).group(1) for n in seen}
    numbers = sorted(int(n.rsplit("-", 1)[1]) for n in seen)
    assert len(runs) == 1 and numbers == [0, 1, 2]  # two started, the killed one's replacement is the third


def test_runtime__failing_tile_is_reported_and_the_rest_goes_on(tmp_path: Path) -> None:
    plan, inner = _prepared(str(tmp_path / "c.zarr"))
    bad = plan.tiles[0].tile.id
    factory = functools.partial(FailOnWorker, inner, (bad,))
    results: list[TileResult] = []
    outcome = run_tile_tasks(factory, plan.tiles, PoolOptions(2), on_result=results.append)
    assert outcome.counts["failed"] == 1
    failed = [r for r in results if r.status == "failed"]
    assert [r.tile_id for r in failed] == [bad]
    assert "simulated read failure on tile" in failed[0].error
    assert len(results) == len(plan.tiles)
    with pytest.raises(ClusterError, match=f"strict mode: tile {bad} failed"):
        run_tile_tasks(factory, plan.tiles, PoolOptions(1), strict=True)


def test_runtime__gpu_request_without_gpu_fails_fast(tmp_path: Path) -> None:
    plan, inner = _prepared(str(tmp_path / "c.zarr"))
    t0 = time.monotonic()
    with pytest.raises(ResourceError, match=r"asks for GPU=1 per node but no node of this Ray cluster has it .*"
                                            r"set num_gpus: 0.*No autoscaler was found.*HARVEST_AUTOSCALING=on"):
        run_tile_tasks(inner, plan.tiles, PoolOptions(2, WorkerResources(num_gpus=1)))
    assert time.monotonic() - t0 < 10


def test_runtime__on_an_autoscaling_cluster_a_gpu_request_waits_for_a_node(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With an autoscaler, "no GPU node yet" is not an error: the pending actors are the
    autoscaler's demand. Only when no actor started before the deadline does the job fail."""
    import cluster.runtime as runtime

    plan, inner = _prepared(str(tmp_path / "c.zarr"))
    monkeypatch.setenv("HARVEST_AUTOSCALING", "on")
    monkeypatch.setattr(runtime, "START_TIMEOUT_S", 4.0)
    t0 = time.monotonic()
    with pytest.raises(ResourceError, match=r"no tiles actor started in 4 s: the autoscaler added no node that holds "
                                            r"\{'CPU': 1.0, 'GPU': 1.0.*'ray status'"):
        run_tile_tasks(inner, plan.tiles, PoolOptions(2, WorkerResources(num_gpus=1)))
    assert 4.0 <= time.monotonic() - t0 < 30


def test_cluster_autoscales__the_variable_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    from cluster.runtime import cluster_autoscales

    monkeypatch.setenv("HARVEST_AUTOSCALING", "on")
    assert cluster_autoscales()
    monkeypatch.setenv("HARVEST_AUTOSCALING", "off")
    assert not cluster_autoscales()
    monkeypatch.delenv("HARVEST_AUTOSCALING")
    assert not cluster_autoscales()  # the suite's local Ray has no autoscaler


def test_actors_per_node__counts_what_each_node_holds() -> None:
    from cluster.runtime import _actors_per_node

    nodes = [{"CPU": 3.0, "memory": 4.0 * 2**30}, {"CPU": 8.0, "GPU": 1.0, "memory": 2.0 * 2**30}]
    assert _actors_per_node({"CPU": 1.0}, nodes) == 11
    assert _actors_per_node({"CPU": 1.0, "memory": 2.0**30}, nodes) == 3 + 2  # memory bounds both
    assert _actors_per_node({"CPU": 1.0, "GPU": 0.25}, nodes) == 4  # only the GPU node, 4 shares
    assert _actors_per_node({"CPU": 4.0}, nodes) == 2  # never split across nodes (3 + 8 CPUs)
