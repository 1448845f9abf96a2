"""Check a cube against its own records: is every tile a job called done really there?

For each job that wrote arrays into the cube (``ingest`` for the bands, ``indices``,
``classify``, ...), the manifest under ``<store>.harvest/manifest/<job>/<plan hash>/``
lists the tiles recorded as complete, with a CRC-32 of every array's tile as it was
written. :func:`verify_store` reads each such tile back and compares; it also checks that
the metadata agrees with the grid and time axis the cube was planned with, and that every
tile of the plan is done. Damage is reported precisely: which tile, which array, what is
wrong. Nothing is changed.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import zarr

from cluster import store as cstore
from cluster._shard import PARTIAL_SUFFIX
from cluster.errors import ClusterError
from cluster.grid import CubeExtent, TileIndex
from cluster.location import StoreLike, local_path, norm_store

__all__ = ["Problem", "VerifyReport", "verify_store"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the cube."""

    kind: str
    """``damaged`` (a done tile differs from what was written or cannot be read),
    ``metadata`` (arrays disagree with the plan), ``incomplete`` (tiles not done yet)."""
    what: str
    tile: str | None = None
    array: str | None = None
    fix: str = ""

    def __str__(self) -> str:
        where = ", ".join(p for p in (f"tile {self.tile}" if self.tile else "",
                                      f"array {self.array!r}" if self.array else "") if p)
        return f"{self.kind}: {where + ': ' if where else ''}{self.what}" + (f" ({self.fix})" if self.fix else "")


@dataclass
class VerifyReport:
    """What :func:`verify_store` found; ``ok`` only when nothing is wrong."""

    store: str
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per job: plan hash, arrays, tiles in the plan, done, empty, checked."""
    tiles_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"store": self.store, "ok": self.ok, "jobs": self.jobs, "tiles_checked": self.tiles_checked,
                "problems": [asdict(p) for p in self.problems]}

    def summary(self) -> str:
        lines = [f"harvest verify: {'OK' if self.ok else 'PROBLEMS FOUND'} -> {self.store}"]
        for job, info in self.jobs.items():
            lines.append(f"  {job} (plan {info['plan_hash']}): {info['done']} done + {info['empty']} empty "
                         f"of {info['tiles']} tiles; arrays {', '.join(info['arrays'])}")
        lines.append(f"  tiles read back and compared: {self.tiles_checked}")
        by_kind: dict[str, int] = {}
        for p in self.problems:
            by_kind[p.kind] = by_kind.get(p.kind, 0) + 1
        if by_kind:
            lines.append("  problems: " + ", ".join(f"{n} {k}" for k, n in sorted(by_kind.items())))
        for p in self.problems[:20]:
            lines.append(f"  {p}")
        if len(self.problems) > 20:
            lines.append(f"  ... and {len(self.problems) - 20} more (see --json)")
        return "\n".join(lines)


FIX = "run 'harvest verify --forget-damaged' on the store, then rerun {job}: it rewrites those tiles"


def _is_fill(raw: np.ndarray, fill: Any) -> bool:
    if fill is None:
        return False
    if isinstance(fill, float) and math.isnan(fill):
        return bool(np.isnan(raw).all())
    return bool((raw == fill).all())


def _jobs_of(group: zarr.Group) -> dict[tuple[str, str], list[str]]:
    """(job, plan hash) -> the arrays that job wrote, from the arrays' own attributes."""
    group_attrs: Mapping[str, Any] = group.attrs
    meta = group_attrs.get("harvest") or {}
    ingest_hash = str(meta.get("plan_hash", ""))
    jobs: dict[tuple[str, str], list[str]] = {}
    for name in sorted(group.array_keys()):
        arr = group[name]
        assert isinstance(arr, zarr.Array)
        if arr.ndim < 3:
            continue  # coordinates
        attrs: Mapping[str, Any] = arr.attrs
        job = attrs.get("harvest_job") or ("indices" if "harvest_kernel" in attrs else "ingest")
        plan = str(attrs.get("harvest_plan_hash", ingest_hash if job == "ingest" else ""))
        jobs.setdefault((job, plan), []).append(name)
    return jobs


def _check_metadata(group: zarr.Group, extent: CubeExtent, n_time: int, report: VerifyReport) -> None:
    tile = extent.grid.tile_size_px
    for name in sorted(group.array_keys()):
        arr = group[name]
        assert isinstance(arr, zarr.Array)
        if arr.ndim < 3:
            continue  # coordinates
        # (time, y, x) arrays, and (season, feature, y, x) layers: one shard per tile either way
        lead = (n_time,) if arr.ndim == 3 else tuple(arr.shape[:-2])
        if arr.shape != (*lead, *extent.shape):
            report.problems.append(Problem("metadata", f"shape {arr.shape} but the cube's plan is "
                                           f"{(*lead, *extent.shape)} (..., y, x)", array=name,
                                           fix="the array does not belong to this cube: "
                                               "rerun the job that wrote it with overwrite"))
        elif ((arr.shards or arr.chunks)[-2:] != (tile, tile)
              or (arr.ndim > 3 and (arr.shards or arr.chunks)[:-2] != lead)):
            report.problems.append(Problem("metadata", f"shards {(arr.shards or arr.chunks)} do not match the "
                                           f"grid's {tile} px tiles", array=name,
                                           fix="rerun the job that wrote it with overwrite"))


def _check_partial_writes(root: str, extent: CubeExtent, report: VerifyReport) -> None:
    """Shards of a local cube left half-written by a killed job (``<shard>.harvest-partial``,
    :data:`cluster._shard.PARTIAL_SUFFIX`): never read, but a sign the tile was not redone."""
    for path in sorted(Path(root).glob(f"*/c/**/*{PARTIAL_SUFFIX}")):
        rel = path.relative_to(root).parts  # <array>/c/<chunk coords...>.harvest-partial
        try:
            y, x = int(rel[-2]), int(rel[-1][:-len(PARTIAL_SUFFIX)])
            tile: str | None = TileIndex(extent.row0 + y, extent.col0 + x).id
        except (ValueError, IndexError):
            tile = None
        report.problems.append(Problem(
            "incomplete", f"a shard write was interrupted (a job killed mid-write, that tile not redone): {path}",
            tile=tile, array=rel[0],
            fix="rerun the job that writes this array: the tile's retry writes the same file and renames it "
                "into place; or delete the file (the project's own temporary file, never read)"))


def verify_store(url: StoreLike, storage_options: Mapping[str, Any] | None = None, *,
                 threads: int = 4, forget_damaged: bool = False) -> VerifyReport:
    """Verify every tile the manifests call done, and the metadata, of the cube at ``url``.

    Args:
        forget_damaged: also remove the manifest records of damaged tiles (our own
            bookkeeping files, nothing else), so that rerunning the job rewrites them.

    Raises:
        ClusterError: the URL holds no harvest cube, or cannot be read at all.
    """
    cube = norm_store(url, storage_options)
    report = VerifyReport(cube.shown)
    state = cstore.inspect_store(cube)
    if state.kind != "cube":
        raise ClusterError(f"{cube.url!r} holds no harvest cube ({state.detail or 'nothing there'}); "
                           "nothing to verify")
    group = cstore.open_group(cube, mode="r")
    extent = cstore.extent_of(group)
    time_array = group["time"] if "time" in group else None
    assert time_array is None or isinstance(time_array, zarr.Array)
    n_time = time_array.shape[0] if time_array is not None else 0
    _check_metadata(group, extent, n_time, report)
    try:
        cstore.open_cube(cube, chunks=None)
    except Exception as e:  # noqa: BLE001 — any failure to open is the finding
        report.problems.append(Problem("metadata", f"xarray cannot open the cube: {type(e).__name__}: {e}",
                                       fix="restore the metadata (zarr.json files) from a backup, or rerun ingest"))
    plan_tiles = [t.id for t in extent.iter_tiles()]
    if cube.is_local:
        _check_partial_writes(local_path(cube.url), extent, report)
    for (job, plan_hash), arrays in sorted(_jobs_of(group).items()):
        manifest = cstore.Manifest(cube, job, plan_hash)
        done = manifest.done()
        outside = sorted(done - set(plan_tiles))
        for tid in outside:
            report.problems.append(Problem("metadata", "the manifest records a tile outside the cube's grid",
                                           tile=tid, fix="the manifest belongs to another plan; rerun the job"))
        records = {}
        for tid in sorted(done & set(plan_tiles)):
            try:
                records[tid] = manifest.record(tid)
            except Exception as e:  # noqa: BLE001 — reported
                report.problems.append(Problem("damaged", f"its manifest record cannot be read ({e})", tile=tid,
                                               fix=FIX.format(job=job)))
        empty = sum(1 for r in records.values() if r.get("status") == "empty")
        report.jobs[job if job not in report.jobs else f"{job}:{plan_hash}"] = {
            "plan_hash": plan_hash, "arrays": arrays, "tiles": len(plan_tiles),
            "done": len(records) - empty, "empty": empty}
        missing = [t for t in plan_tiles if t not in done]
        for tid in missing[:50]:
            report.problems.append(Problem("incomplete", "not done", tile=tid,
                                           fix=f"rerun '{job}' with the same config: it does the missing tiles only"))
        if len(missing) > 50:
            report.problems.append(Problem("incomplete", f"... and {len(missing) - 50} more tiles not done",
                                           fix=f"rerun '{job}'"))

        # this job's arrays and name bound when defined, so check never sees a later iteration's
        def check(item: tuple[str, dict[str, Any]], arrays: list[str] = arrays, job: str = job) -> list[Problem]:
            tid, rec = item
            found = []
            # the record names its algorithm (xxh3_64; crc32 in records written before 2026-12)
            algorithm = next((a for a in cstore.CHECKSUMS if a in rec), cstore.CHECKSUM)
            sums = rec.get(algorithm) or {}
            for name in arrays:
                arr = group[name]
                assert isinstance(arr, zarr.Array)
                try:
                    raw = cstore.read_tile(group, name, extent, TileIndex.from_id(tid))
                except Exception as e:  # noqa: BLE001 — the finding
                    found.append(Problem("damaged", f"cannot be read: {type(e).__name__}: {e}", tid, name,
                                         FIX.format(job=job)))
                    continue
                if rec.get("status") == "empty":
                    if not _is_fill(raw, arr.fill_value):
                        found.append(Problem("damaged", "recorded empty but holds data", tid, name,
                                             FIX.format(job=job)))
                elif name not in sums:
                    found.append(Problem("damaged", "recorded done without a checksum for this array "
                                         "(written by an older version, or the array was added later)", tid, name,
                                         f"rerun {job} with overwrite to rewrite it"))
                elif (now := cstore.tile_checksum(raw, algorithm)) != sums[name]:
                    found.append(Problem("damaged", f"content differs from what was written ({algorithm} "
                                         f"{now} != recorded {sums[name]})", tid, name,
                                         FIX.format(job=job)))
            return found

        with ThreadPoolExecutor(max_workers=threads) as pool:
            for found in pool.map(check, sorted(records.items())):
                report.problems.extend(found)
        report.tiles_checked += len(records)
        if forget_damaged:
            for tid in sorted({p.tile for p in report.problems if p.kind == "damaged" and p.tile in done}):
                manifest.forget(tid)
    return report
