"""One writer per store: a lease object with an expiry in the store's bookkeeping.

A job that writes a cube takes ``<store>.harvest/lease.json`` before its first write and
renews it while it runs; a second job finds it and refuses with a message that names the
first. Taking the lease is an exclusive create (``If-None-Match: *`` on S3, ``O_EXCL``
locally), so two jobs starting at once cannot both win. A lease whose holder stopped
renewing it (expired), or whose holder was a process on this host that no longer exists,
is stale and taken over; a live-looking lease is only broken on request
(``break_lease: true`` / ``--break-lease``), for a holder known to be dead on another host.

Tile workers check the lease before they mark a tile done (:meth:`Lease.check`): a job
whose lease was taken over stops writing instead of interleaving with the new holder.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from cluster import store as cstore
from cluster._retry import retry_storage
from cluster.errors import LeaseError
from cluster.location import StoreLike, norm_store

log = logging.getLogger(__name__)

__all__ = ["Lease", "LeaseRecord", "DEFAULT_LEASE_TTL_S"]

DEFAULT_LEASE_TTL_S = 120.0
"""A lease not renewed for two minutes is stale. The driver renews it every third of that
(40 s), so a slow S3 PUT or a few retried requests never let it lapse, while a rerun after
a killed driver on another host waits at most two minutes (on the same host: not at all,
the dead pid is seen)."""


@dataclass(frozen=True)
class LeaseRecord:
    """What ``lease.json`` holds: who writes the store, and until when."""

    owner: str
    """A random id of the holding job run (also given to its tile workers)."""
    job: str
    plan_hash: str
    host: str
    pid: int
    pid_started: float
    """The holder's process start time, so that a reused pid is not taken for it."""
    acquired_at: str
    expires_at: float
    """Unix time; renewals move it forward."""

    def describe(self) -> str:
        left = self.expires_at - time.time()
        state = f"expires in {left:.0f} s" if left > 0 else f"expired {-left:.0f} s ago"
        return (f"job {self.job!r} (plan {self.plan_hash!r}) on host {self.host!r} pid {self.pid}, "
                f"since {self.acquired_at}; lease {state}")


_HELD: set[str] = set()
"""Owner ids of the leases this process holds now (a lease of this pid that is not here was
left by an earlier job of this process that could not release it: storage was down)."""


def _process_start(pid: int) -> float | None:
    """An identity of a running process (its start time in clock ticks since boot, from
    ``/proc``), 0.0 when it runs but its start is unknown, None when no such process runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # it exists, under another user
    try:
        with open(f"/proc/{pid}/stat") as f:
            return float(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
    except (OSError, IndexError, ValueError):
        return 0.0


class Lease:
    """The write lease of one store, held by one job run.

    Example:
        >>> lease = Lease("s3://bucket/cube.zarr", "ingest", "3f2a...")  # doctest: +SKIP
        >>> with lease.held():  # doctest: +SKIP
        ...     ...  # write tiles; lease.owner goes to the workers
    """

    def __init__(self, store: StoreLike, job: str, plan_hash: str,
                 storage_options: Mapping[str, Any] | None = None,
                 ttl_s: float = DEFAULT_LEASE_TTL_S) -> None:
        cube = norm_store(store, storage_options)
        self.store = cube.url
        self.job = job
        self.plan_hash = plan_hash
        self.ttl_s = float(ttl_s)
        self.location = cube.lease
        self.url = self.location.url
        self.owner = uuid.uuid4().hex
        self.lost: str | None = None
        """Set (with the reason) when a renewal finds another holder."""
        self.broke: LeaseRecord | None = None
        """The stale or broken lease this one replaced, if any (for the report)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- records -------------------------------------------------------------------------

    def _record(self) -> LeaseRecord:
        pid = os.getpid()
        return LeaseRecord(
            owner=self.owner, job=self.job, plan_hash=self.plan_hash, host=socket.gethostname(),
            pid=pid, pid_started=_process_start(pid) or 0.0,
            acquired_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            expires_at=time.time() + self.ttl_s,
        )

    def read(self) -> LeaseRecord | None:
        """The current lease of the store, or None when nobody holds one."""
        try:
            data = cstore.read_json(self.location)
        except FileNotFoundError:
            return None
        try:
            return LeaseRecord(**data)
        except TypeError:
            raise LeaseError(f"the lease {self.url!r} is not a harvest lease ({data!r}); it may be "
                             "damaged: rerun with --break-lease to replace it") from None

    def _create(self, record: LeaseRecord) -> bool:
        """Exclusive create; False when a lease already exists."""
        fs, path = self.location.filesystem()
        data = json.dumps(asdict(record), indent=2).encode()
        if self.location.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return True
        try:
            retry_storage(lambda: fs.pipe_file(path, data, mode="create"),
                             f"cannot take the lease {self.url!r}")
        except FileExistsError:
            # also what a retried create whose first attempt landed answers: the read-back
            # in acquire() then finds our own owner id
            return False
        return True

    def _replace(self, record: LeaseRecord) -> None:
        cstore.write_json(self.location, asdict(record))

    # --- life cycle ----------------------------------------------------------------------

    def stale_reason(self, held: LeaseRecord) -> str | None:
        """Why ``held`` may be taken over without being asked to, or None."""
        if held.expires_at < time.time():
            return "it expired (its holder stopped renewing it)"
        if held.host == socket.gethostname() and held.pid == os.getpid() and held.owner not in _HELD:
            return "an earlier job of this process left it behind (it could not be released)"
        if held.host == socket.gethostname():
            started = _process_start(held.pid)
            if started is None or (started and held.pid_started and started != held.pid_started):
                return f"its holder, pid {held.pid} on this host, is no longer running"
        return None

    def acquire(self, *, break_lease: bool = False) -> None:
        """Take the lease, or raise :class:`LeaseError` naming the job that holds it."""
        for _ in range(3):
            mine = self._record()
            if self._create(mine):
                self._confirm()
                _HELD.add(self.owner)
                return
            held = self.read()
            if held is None:
                continue  # released between our create and our read: try again
            if held.owner == self.owner:
                _HELD.add(self.owner)
                return
            reason = self.stale_reason(held) or ("broken on request (--break-lease)" if break_lease else None)
            if reason is None:
                raise LeaseError(
                    f"store {self.store!r} is being written by another {held.describe()}. Two jobs must "
                    "not write one store at once: wait for that job to finish, or if it is dead (on "
                    "another host), rerun with --break-lease (break_lease: true)"
                )
            self.broke = held
            self._replace(mine)
            self._confirm()
            _HELD.add(self.owner)
            return
        raise LeaseError(f"could not take the lease {self.url!r}: it changed under us three times; "
                         "another job is starting on this store, wait and rerun")

    def _confirm(self) -> None:
        """Read the lease back: a concurrent takeover may have overwritten ours."""
        held = self.read()
        if held is None or held.owner != self.owner:
            raise LeaseError(
                f"lost the race for store {self.store!r} to "
                f"{held.describe() if held else 'a job that released it at once'}; wait and rerun"
            )

    def renew(self) -> None:
        """Move the expiry forward; records ``lost`` if another job holds the lease now."""
        held = self.read()
        if held is None or held.owner != self.owner:
            self.lost = (f"the lease of store {self.store!r} was taken over by "
                         f"{held.describe() if held else 'nobody (it was removed)'}")
            return
        self._replace(LeaseRecord(**{**asdict(held), "expires_at": time.time() + self.ttl_s}))

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.renew()
            except Exception as e:  # noqa: BLE001 — storage hiccup: try again next period
                log.warning("could not renew the lease %s (%s: %s); trying again in %.0f s",
                            self.url, type(e).__name__, e, self.ttl_s / 3)
                continue
            if self.lost:
                return

    def start_renewing(self) -> None:
        self._thread = threading.Thread(target=self._renew_loop, name="harvest-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop renewing and remove the lease if it is still ours."""
        self._stop.set()
        _HELD.discard(self.owner)
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            held = self.read()
            if held is not None and held.owner == self.owner:
                fs, path = self.location.filesystem()
                retry_storage(lambda: fs.rm_file(path), f"cannot release the lease {self.url!r}")
        except Exception as e:  # noqa: BLE001 — an unreleased lease expires on its own
            log.warning("could not release the lease %s (%s: %s); it expires in %.0f s",
                        self.url, type(e).__name__, e, self.ttl_s)

    def __enter__(self) -> "Lease":
        self.start_renewing()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def check_lease(store: StoreLike, owner: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`LeaseError` unless the job ``owner`` still holds the store's lease.

    Tile workers call it before marking a tile done, so a job that lost its lease (a
    second job broke it) never records work as complete.
    """
    cube = norm_store(store, storage_options)
    store = cube.url
    try:
        data = cstore.read_json(cube.lease)
    except FileNotFoundError:
        raise LeaseError(f"the lease of store {store!r} is gone; this job no longer owns the store") from None
    if data.get("owner") != owner:
        rec = LeaseRecord(**data)
        raise LeaseError(f"the lease of store {store!r} now belongs to {rec.describe()}; "
                         "this job stopped writing")
