"""Starting or joining Ray, and running tile tasks on a pool of actors.

The embedded default is a local Ray started in-process, every listener on 127.0.0.1. Set
``address`` (or ``RAY_ADDRESS``, which Ray reads itself) to join an existing cluster.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

import ray

from cluster._retry import backoff_s
from cluster.config import WorkerResources
from cluster.errors import ClusterError, ConfigError, ResourceError
from cluster.records import TileResult, TileTask, TileWorker

__all__ = ["ensure_ray", "run_tile_tasks", "PoolOptions", "PoolOutcome", "cluster_autoscales", "shared_actors"]

log = logging.getLogger(__name__)

PayloadT = TypeVar("PayloadT")
OutputT = TypeVar("OutputT")


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None,
               env_vars: Mapping[str, str] | None = None) -> None:
    """Connect to Ray once: to ``address`` if given (or ``RAY_ADDRESS``), else start a
    local Ray on 127.0.0.1. A no-op when this process is already connected.

    ``env_vars`` (credentials from a job config) are set in this process's environment
    before a local Ray starts; joining a cluster with them is refused (they would not reach
    its workers)."""
    if ray.is_initialized():
        return
    import os

    if env_vars and (address or os.environ.get("RAY_ADDRESS")):
        raise ConfigError(
            "storage credentials in a job config do not reach a cluster's workers; give the cluster "
            "its own (an IRSA or instance role), or forward AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "from your environment with 'harvest submit'"
        )
    kwargs: dict[str, Any] = {"log_to_driver": True, "configure_logging": False}
    if env_vars:
        # a local Ray's processes inherit this process's environment: credentials reach the
        # workers without entering Ray's job config (where they would be stored and shown)
        os.environ.update(env_vars)
    if address:
        ray.init(address=address, **kwargs)
    else:
        if os.environ.get("RAY_ADDRESS"):
            ray.init(**kwargs)  # Ray reads RAY_ADDRESS itself
        else:
            _keep_on_loopback()
            _quiet_token_notice()
            ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                     **kwargs)


class _TokenNotice(logging.Filter):
    """Moves Ray's start-up notice that token authentication is on (its default for a local
    Ray, and what we want) from the user's terminal to this module's debug log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Token authentication is enabled for this Ray cluster"):
            log.debug("ray: %s", record.getMessage())
            return False
        return True


def _quiet_token_notice() -> None:
    notices = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _TokenNotice) for f in notices.filters):
        notices.addFilter(_TokenNotice())


def _keep_on_loopback() -> None:
    """Make a local Ray listen on 127.0.0.1 only.

    Ray replaces a loopback node address with the host's interface address
    (``services.resolve_ip_for_localhost``) and its servers then listen on every interface.
    Its single-node switch (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, what it does on macOS)
    keeps the node address, and so every gRPC, agent and metrics listener, on loopback. The
    variable is read when Ray is imported, so the module flag is set here; the processes
    Ray starts take the address from their command lines.
    """
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


@dataclass(frozen=True)
class PoolOptions:
    """How a pool runs: its size, its retry budget and its actors' names. What each actor
    asks of a node is the job config's :class:`~cluster.config.WorkerResources` block,
    held here as it is (the one resources model of configs, pools and ``harvest submit``).

    >>> PoolOptions(4, WorkerResources(num_gpus=1)).resources.to_ray()
    {'CPU': 1.0, 'GPU': 1.0, 'memory': 1073741824.0}
    """

    max_actors: int
    resources: WorkerResources = field(default_factory=WorkerResources)
    """Per actor: CPUs, GPUs, memory, custom resources (a job config's ``resources``)."""
    max_tile_attempts: int = 4
    """Starts of one tile before it is failed: actor deaths and transient storage
    errors each cost one."""
    retry_base_s: float = 1.0
    """Backoff before a tile's retry: full jitter over ``retry_base_s * 2**attempt``."""
    unavailable_after: int | None = None
    """Stop the job when this many tiles in a row failed for good on transient storage
    errors (the endpoint is down, not flaky); default ``max(4, 2 * actors)``."""
    label: str = "tiles"
    """Names the actors in Ray's dashboard: ``harvest-<label>-<run>-<n>``."""


_UNBOUNDED = 2**31
"""What a node holds of actors that ask for no resource at all."""
GROW_EVERY_S = 2.0
"""How often a pool that is below its size looks for nodes that joined the cluster."""
START_TIMEOUT_S = float(os.environ.get("HARVEST_ACTOR_START_TIMEOUT_S", "900"))
"""On an autoscaling cluster, how long a pool waits for its first actor to start (the
autoscaler adding a node) before it fails; ``HARVEST_ACTOR_START_TIMEOUT_S`` sets it."""


def cluster_autoscales() -> bool:
    """Whether the connected cluster adds nodes on demand: ``HARVEST_AUTOSCALING=on`` (set by
    the project's KubeRay and cluster-launcher manifests on the head, where job drivers run),
    or Ray's autoscaler v2 flagged in the GCS.

    Ray's v1 autoscaler cannot be told apart from a fixed cluster reliably: every head, even
    a local one, runs a monitor that publishes an "autoscaler" report over a read-only node
    provider. So v1 clusters say so through the variable.
    """
    env = os.environ.get("HARVEST_AUTOSCALING", "auto").strip().lower()
    if env in ("on", "1", "true", "yes"):
        return True
    if env in ("off", "0", "false", "no"):
        return False
    try:
        from ray.autoscaler.v2.utils import is_autoscaler_v2

        return bool(is_autoscaler_v2())
    except Exception as e:  # noqa: BLE001 - a Ray internal moved: say so, and assume a fixed cluster
        log.warning("could not tell whether the cluster autoscales (%s: %s); assuming it does not: "
                    "set HARVEST_AUTOSCALING=on if it does", type(e).__name__, e)
        return False


def _alive_nodes() -> list[dict[str, float]]:
    return [{k: float(v) for k, v in n.get("Resources", {}).items()} for n in ray.nodes() if n.get("Alive")]


def _actors_per_node(request: Mapping[str, float], nodes: Sequence[Mapping[str, float]]) -> int:
    """How many actors of this shape the nodes hold, by their total resources (a busy node
    counts: its resources come back). An actor that asks for nothing fits without bound
    (the pool's ``max_actors`` caps it).

    >>> _actors_per_node({}, [{"CPU": 1.0}]) > 1_000
    True
    """
    if not request:
        return _UNBOUNDED
    return sum(min((math.floor(node.get(k, 0.0) / v + 1e-9) for k, v in request.items()), default=0)
               for node in nodes)


def _pool_size(opts: PoolOptions, n_tasks: int, autoscales: bool) -> int:
    """Actors to start now. A fixed cluster gets what its nodes hold (and the pool grows when
    nodes join); an autoscaling one gets every actor the job can use, up to
    ``max_actors``: the pending ones are the demand the autoscaler adds nodes for."""
    want = max(1, min(opts.max_actors, n_tasks))
    if autoscales:
        return want
    request = opts.resources.to_ray()
    # one actor must fit on one node: checked per node, never against the cluster's totals
    try:
        opts.resources.check_fits(_alive_nodes(), what=f"a {opts.label} actor", cluster="this Ray cluster")
    except ResourceError as e:
        raise ResourceError(f"{e}. No autoscaler was found, so no such node will come; on a cluster that "
                            "adds nodes on demand set HARVEST_AUTOSCALING=on") from None
    return max(1, min(want, _actors_per_node(request, _alive_nodes())))


_parked: dict[str, list[Any]] | None = None
"""Tile actors kept between the jobs of a :func:`shared_actors` block, by what they ask of a
node; None outside such a block."""


@contextlib.contextmanager
def shared_actors() -> Iterator[None]:
    """Keep tile actors between the tile jobs run inside the block.

    When a job ends normally its actors are parked (their worker dropped) instead of killed,
    and the next job whose actors ask a node for the same resources rebuilds its worker in
    them (``TileActor.rebuild``) instead of starting new processes: the process start, the
    imports and the kernels the process compiled or loaded are paid once per pipeline, not
    once per job. That was a second of a two-second ``indices`` step on the demo's cube.

    A job whose actors ask for other resources gets new actors, and the parked ones are
    killed first, so that they never hold a node's resources another job waits for.

    The fault rules stay the pool's: a parked actor that died, or whose rebuild fails, is
    replaced by a new one without counting as a start failure; a job that stops early or
    raises kills its actors. Every parked actor is killed when the block ends. A reused actor
    keeps the name it was started with (``harvest-<label>-<run>-<n>`` of its first job).

    Example:
        >>> from cluster.runtime import shared_actors
        >>> with shared_actors():  # doctest: +SKIP
        ...     run_ingest(ingest_config)
        ...     run_indices(indices_config)  # in the ingest job's actors
    """
    global _parked
    if _parked is not None:  # nested: the outer block keeps the actors
        yield
        return
    _parked = {}
    try:
        yield
    finally:
        parked, _parked = _parked, None
        for actors in parked.values():
            for a in actors:
                ray.kill(a, no_restart=True)


def _take_parked(key: str, n: int) -> list[Any]:
    """Up to ``n`` parked actors that ask for ``key``; every other parked actor is killed, since
    it holds a node's resources that this job's actors may need."""
    if _parked is None:
        return []
    stock = _parked.pop(key, [])
    for a in stock[n:] + [a for actors in _parked.values() for a in actors]:
        ray.kill(a, no_restart=True)
    _parked.clear()
    return stock[:n]


@dataclass
class PoolOutcome:
    """How many tiles ended in each status, and why the pool stopped early (if it did).

    The results themselves went to ``on_result``: the pool keeps none, so the driver's
    memory does not grow with the plan."""

    counts: dict[str, int] = field(default_factory=dict)
    """Final tile results per status (``done``, ``empty``, ``failed``, ...)."""
    retries: int = 0
    """Tile starts beyond the first: after an actor died or storage did not answer."""
    actors_replaced: int = 0
    stopped: str | None = None


def run_tile_tasks(
    factory: Callable[[], TileWorker[PayloadT, OutputT]],
    tasks: Sequence[TileTask[PayloadT]],
    opts: PoolOptions,
    *,
    strict: bool = False,
    on_result: Callable[[TileResult[OutputT]], None] | None = None,
    stop: Callable[[], str | None] | None = None,
) -> PoolOutcome:
    """Run every task on a pool of :class:`~cluster.actors.TileActor`; at most one task in
    flight per actor (backpressure); every final result is handed to ``on_result`` as it
    arrives (including a "not finished" one per tile left when the pool stops early) and
    is not kept here.

    Faults cost retries, not the job:

    * The worker factory goes to the object store once (``ray.put``) and actors receive the
      reference, which this function holds: an actor rebuilt by Ray, or a replacement,
      can always get it back (ray#53727: a by-value constructor argument over Ray's inline
      limit is lost after the first start).
    * An actor that dies (SIGKILL, OOM kill, node lost) is replaced by a new actor and
      never handed another tile; its tile is retried on another actor.
    * A tile that failed because object storage did not answer is retried after a
      backoff with jitter; a definite failure (damaged input) is not.
    * A tile is failed after ``opts.max_tile_attempts`` starts. When
      ``opts.unavailable_after`` tiles in a row failed for good on transient errors,
      storage is down, not flaky: the pool stops and says so (a rerun resumes).

    ``stop()`` is polled between tiles; a non-None answer stops the pool with that reason
    (the driver lost its lease). ``strict`` stops at the first failed tile.
    """
    from cluster.actors import TileActor

    outcome = PoolOutcome()
    if not tasks:
        return outcome
    autoscales = cluster_autoscales()
    n_actors = _pool_size(opts, len(tasks), autoscales)
    target = max(1, min(opts.max_actors, len(tasks)))
    request = opts.resources.to_ray()
    options: dict[str, Any] = {
        **opts.resources.to_actor_options(),
        # replaced by this loop, not restarted by Ray: a restarted actor would keep being
        # handed tiles while it restarts, and at-least-once retries are ours to count
        "max_restarts": 0,
        "max_task_retries": 0,
    }
    factory_ref = ray.put(factory)  # held until the pool ends: actors can always fetch it
    run = uuid.uuid4().hex[:6]  # names are unique per namespace: two pools never clash
    spawned = itertools.count()

    def spawn() -> Any:  # a readable name in Ray's dashboard and 'ray list actors'
        actor_class: Any = TileActor  # @ray.remote's annotations keep the class; it is an ActorClass
        return actor_class.options(name=f"harvest-{opts.label}-{run}-{next(spawned)}", **options).remote(factory_ref)  # noqa: F821 (del'd only after the last spawn)

    key = repr(sorted(options.items()))  # actors asking a node for the same can be shared
    actors = _take_parked(key, n_actors)
    reused = set(range(len(actors)))  # rebuilt, not started: a failure replaces, never counts
    actors += [spawn() for _ in range(n_actors - len(actors))]
    if autoscales:
        log.info("autoscaling cluster: asked for %d actor(s) of %s; those without a node wait for the "
                 "autoscaler", n_actors, request, extra={"job": opts.label})
    t_start = time.monotonic()
    next_grow = t_start + GROW_EVERY_S
    ever_started = False
    # an actor takes tiles once it is up: a replacement on a cluster that lost a node may wait
    # for a free slot (or for the autoscaler) while the others carry on
    starting: dict[Any, int] = {(a.rebuild.remote(factory_ref) if i in reused else a.ready.remote()): i
                                for i, a in enumerate(actors)}
    start_failures = 0
    unavailable_after = opts.unavailable_after or max(4, 2 * n_actors)
    # Locality: each actor owns a contiguous strip of the (row-major) tiles, and an idle actor
    # with an empty strip steals from the far end of the longest strip. Neighbouring tiles read
    # the same source blocks, which then come from that actor's GDAL block cache instead of
    # being decoded again by another process (measured: 2.6x less decode time per tile).
    # Strips are ranges of positions in ``tasks``: the pool holds no copy of the plan.
    strips = _strips(len(tasks), n_actors)
    retry_queue: list[tuple[float, int, TileTask[PayloadT]]] = []  # (not before, seq, task): a heap
    attempts: dict[str, int] = {}  # starts so far, of tiles started more than once
    idle: list[int] = []
    in_flight: dict[Any, tuple[int, TileTask[PayloadT]]] = {}
    down_streak = 0
    seq = 0
    parked: set[int] = set()  # the actors this job hands to the next (in a shared_actors block)

    context = {"job": opts.label, "run": run}

    def finish(res: TileResult[OutputT]) -> None:
        nonlocal down_streak
        res.attempts = attempts.pop(res.tile_id, 1)
        log.log(logging.WARNING if res.status == "failed" else logging.INFO,
                "%s%s", res.status, f": {res.error}" if res.error else "",
                extra={**context, "tile": res.tile_id, "status": res.status, "seconds": round(res.seconds, 3),
                       "attempts": res.attempts, "node": res.node_id})
        outcome.counts[res.status] = outcome.counts.get(res.status, 0) + 1
        if on_result is not None:
            on_result(res)
        if res.status == "failed" and res.retryable:
            down_streak += 1
        elif res.status != "failed":
            down_streak = 0
        if strict and res.status == "failed":
            raise ClusterError(f"strict mode: tile {res.tile_id} failed: {res.error}")

    def retry_or_finish(task: TileTask[PayloadT], res: TileResult[OutputT]) -> None:
        nonlocal seq
        n = attempts.get(task.tile.id, 1)
        if n >= opts.max_tile_attempts:
            if res.error:
                res.error = f"{res.error} (gave up after {n} attempts)"
            finish(res)
            return
        attempts[task.tile.id] = n + 1
        outcome.retries += 1
        log.info("retrying (attempt %d of %d): %s", n + 1, opts.max_tile_attempts, res.error,
                 extra={**context, "tile": task.tile.id, "attempts": n})
        seq += 1
        heapq.heappush(retry_queue, (time.monotonic() + backoff_s(n - 1, opts.retry_base_s, 30.0), seq, task))

    def next_task(i: int) -> TileTask[PayloadT] | None:
        if retry_queue and retry_queue[0][0] <= time.monotonic():
            return heapq.heappop(retry_queue)[2]
        if any(strips):
            return tasks[_next_position(strips, i)]
        return None

    def grow() -> None:
        """A fixed cluster that gained nodes: start the actors they hold (up to the target);
        a new actor's strip is empty, so it steals from the longest one."""
        have = len(actors)
        room = min(target, _actors_per_node(request, _alive_nodes())) - have
        for _ in range(max(0, room)):
            actors.append(spawn())
            strips.append(range(0))
            starting[actors[-1].ready.remote()] = len(actors) - 1
        if room > 0:
            log.info("the cluster grew: %d more actor(s), %d in all", room, len(actors), extra=context)

    try:
        while any(strips) or retry_queue or in_flight:
            now = time.monotonic()
            if not autoscales and len(actors) < target and now >= next_grow:
                grow()
                next_grow = now + GROW_EVERY_S
            if autoscales and not ever_started and now - t_start > START_TIMEOUT_S:
                raise ResourceError(
                    f"no {opts.label} actor started in {START_TIMEOUT_S:.0f} s: the autoscaler added no node that "
                    f"holds {request} per actor; check the worker groups' resources and limits ('ray status'), "
                    "or lower the job's resources block")
            reason = stop() if stop is not None else None
            if reason is None and down_streak >= unavailable_after:
                reason = (f"{down_streak} tiles in a row failed because object storage did not answer "
                          "(see the failures for the endpoint); stopped instead of failing every tile. "
                          "Nothing is lost: done tiles are recorded, and a rerun resumes when storage is back")
            if reason is not None:
                outcome.stopped = reason
                break
            while idle:
                task = next_task(idle[-1])
                if task is None:
                    break
                i = idle.pop()
                in_flight[actors[i].process.remote(task)] = (i, task)
            if not in_flight and not starting:  # only retries waiting for their backoff
                time.sleep(max(0.0, min(1.0, retry_queue[0][0] - time.monotonic())))
                continue
            wait_s = max(0.05, retry_queue[0][0] - time.monotonic()) if retry_queue else GROW_EVERY_S
            wait_s = min(wait_s, GROW_EVERY_S)  # wake up to grow the pool and to check the start deadline
            ready, _ = ray.wait([*in_flight, *starting], num_returns=1, timeout=wait_s)
            if not ready:
                continue
            if ready[0] in starting:
                i = starting.pop(ready[0])
                try:
                    ray.get(ready[0])
                except ray.exceptions.RayError as e:
                    # the worker could not be built: the same factory fails the same way again
                    # (a reused actor may just have died while parked: a new one says which)
                    start_failures += i not in reused
                    reused.discard(i)
                    if start_failures >= 3:
                        raise ClusterError(f"tile actors fail to start ({type(e).__name__}: "
                                           f"{_first_line(e)}); fix the cause and rerun") from None
                    ray.kill(actors[i], no_restart=True)
                    actors[i] = spawn()
                    starting[actors[i].ready.remote()] = i
                    continue
                start_failures = 0
                ever_started = True
                idle.append(i)
                continue
            i, task = in_flight.pop(ready[0])
            idle.append(i)
            try:
                res: TileResult[OutputT] = ray.get(ready[0])
            except ray.exceptions.RayActorError as e:
                # the actor process is gone (killed, out of memory, node lost): replace it and
                # give the tile to whichever actor is idle next
                log.warning("actor died (%s); replacing it and retrying the tile", type(e).__name__,
                            extra={**context, "tile": task.tile.id})
                idle.remove(i)
                ray.kill(actors[i], no_restart=True)
                actors[i] = spawn()
                starting[actors[i].ready.remote()] = i
                outcome.actors_replaced += 1
                retry_or_finish(task, TileResult(
                    task.tile.id, "failed",
                    error=f"the actor died on this tile every time ({type(e).__name__}: {_first_line(e)}): "
                          "a tile too big for the actor's memory? raise resources.memory_mib or lower "
                          "grid.tile_size_px"))
                continue
            except ray.exceptions.RayError as e:
                finish(TileResult(task.tile.id, "failed", error=f"{type(e).__name__}: {_first_line(e)}"))
                continue
            if res.status == "failed" and res.retryable:
                retry_or_finish(task, res)
            else:
                finish(res)
        if _parked is not None and outcome.stopped is None:  # ended normally: park the actors that are up
            parked = set(idle)
    finally:
        for i, a in enumerate(actors):
            if i in parked:
                a.release.remote()
            else:
                ray.kill(a, no_restart=True)
        if parked and _parked is not None:
            _parked[key] = [actors[i] for i in sorted(parked)]
        del factory_ref
    if outcome.stopped:  # every tile not finished: in flight, waiting for a retry, never started
        left = [(t, attempts.get(t.tile.id, 1)) for _, t in in_flight.values()]
        left += [(t, attempts.get(t.tile.id, 1)) for _, _, t in retry_queue]
        left += [(tasks[k], 0) for strip in strips for k in strip]
        for task, n in left:
            unfinished: TileResult[OutputT] = TileResult(task.tile.id, "failed",
                                                   error="not finished: the job stopped early")
            unfinished.attempts = n
            outcome.counts["failed"] = outcome.counts.get("failed", 0) + 1
            if on_result is not None:
                on_result(unfinished)
    return outcome


def _strips(n_tasks: int, n: int) -> list[range]:
    """Split task positions ``0 .. n_tasks - 1`` into ``n`` contiguous strips of near-equal
    length (an actor takes from the front of its own, a thief from the back of another's).

    >>> _strips(10, 3)
    [range(0, 4), range(4, 7), range(7, 10)]
    """
    size, extra = divmod(n_tasks, n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(range(start, end))
        start = end
    return out


def _next_position(strips: list[range], i: int) -> int:
    """The next task position of strip ``i``, or one stolen from the end of the longest strip.

    >>> strips = [range(0, 1), range(1, 5)]
    >>> _next_position(strips, 0), _next_position(strips, 0), strips
    (0, 4, [range(1, 1), range(1, 4)])
    """
    if strips[i]:
        k, strips[i] = strips[i][0], strips[i][1:]
        return k
    longest = max(range(len(strips)), key=lambda j: len(strips[j]))
    k, strips[longest] = strips[longest][-1], strips[longest][:-1]
    return k


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__

