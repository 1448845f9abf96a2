"""What a cube holds, and how it was made: the data behind ``harvest info``.

Reads the group's metadata, the time coordinate, each job's report and manifest under
``<store>.harvest/``; never a pixel.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from cluster import store as cstore
from cluster.config import mask_secrets
from cluster.errors import StoreError
from cluster.location import StoreLike, StoreLocation, norm_store

__all__ = ["StoreInfo", "store_info"]

JOBS = ("ingest", "indices", "classify", "aggregate")
"""The tile jobs whose reports and manifests a cube can have, in pipeline order."""
_KIND = {"indices": "index", "classify": "crop map"}
_COORDS = {"time", "x", "y", "spatial_ref", "season", "feature"}


@dataclass
class StoreInfo:
    """A cube's contents and provenance; ``summary()`` for people, ``to_dict()`` for programs."""

    url: str
    grid: dict[str, Any]
    dates: list[str]
    arrays: list[dict[str, Any]]
    jobs: list[dict[str, Any]] = field(default_factory=list)
    size_bytes: int = -1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        g = self.grid
        lines = [
            f"cube {self.url}",
            f"  grid: {g['crs']} at {g['pixel_size']:g} m, {g['shape'][1]} x {g['shape'][0]} px "
            f"({g['tiles']} tiles of {g['tile_size_px']} px), bounds {', '.join(f'{v:.0f}' for v in g['bounds'])}",
            f"  dates: {len(self.dates)}" + (f", {self.dates[0]} .. {self.dates[-1]}" if self.dates else ""),
            f"  size on storage: {self.size_bytes / 1e6:,.1f} MB" if self.size_bytes >= 0 else "  size on storage: ?",
        ]
        for kind, plural in (("band", "bands"), ("index", "indices"), ("crop map", "crop maps"),
                             ("layers", "feature layers")):
            names = [a["name"] for a in self.arrays if a["kind"] == kind]
            if names:
                lines.append(f"  {plural}: {', '.join(names)}")
        for a in self.arrays:
            if a.get("classes"):
                lines.append(f"  {a['name']} classes: {a['classes']}")
        lines.append("  steps (tiles done / planned, when, version, inputs):")
        for j in self.jobs:
            status = "ok" if j["ok"] else "FAILED" if j["ok"] is False else "no report"
            lines.append(
                f"    {j['job']:9s} {j['tiles_done']}/{j['tiles_total'] if j['tiles_total'] is not None else '?'}"
                f"  {status}  {j.get('started_at') or '-'}  v{j.get('version') or '?'}"
                + (f"  {j['inputs_used']} inputs used, {j['inputs_rejected']} rejected"
                   if j.get("inputs_used") else ""))
        return "\n".join(lines)


def store_info(store: StoreLike, storage_options: Mapping[str, Any] | None = None) -> StoreInfo:
    """Describe the cube at ``store`` (a location, or a URL with its ``storage_options``).

    Raises:
        StoreError: nothing there, not a harvest cube, or it cannot be read.
    """
    cube = norm_store(store, storage_options)
    url = cube.url
    state = cstore.inspect_store(cube)
    if state.kind == "absent":
        raise StoreError(f"no cube at {url!r}: nothing is there; check the path (and the storage settings)")
    if state.kind != "cube":
        raise StoreError(f"{url!r} is not a cube made by harvest ({state.detail}); 'harvest info' reads what "
                         "'harvest ingest' wrote")
    group = cstore.open_group(cube, mode="r")
    extent = cstore.extent_of(group)
    grid = {"crs": extent.grid.crs, "pixel_size": extent.grid.pixel_size, "tile_size_px": extent.grid.tile_size_px,
            "shape": list(extent.shape), "tiles": extent.nrows * extent.ncols, "bounds": list(extent.bounds)}
    ds = cstore.open_cube(cube)
    dates = [str(np.datetime_as_string(t, unit="D")) for t in ds["time"].values] if "time" in ds.coords else []
    arrays = []
    for name, var in sorted(ds.data_vars.items()):
        if name in _COORDS:
            continue
        job = var.attrs.get("harvest_job")
        kind = "layers" if var.ndim >= 4 else _KIND.get(job or "", "band")
        entry = {"name": name, "kind": kind, "dims": list(var.dims), "shape": list(var.shape), "dtype": str(var.dtype),
                 "long_name": var.attrs.get("long_name"), "units": var.attrs.get("units")}
        if "flag_meanings" in var.attrs:
            entry["classes"] = var.attrs["flag_meanings"]
        arrays.append(entry)
    assert state.harvest is not None  # inspect_store sets it for a cube
    jobs = [_job(cube, job, state.harvest.get("plan_hash") if job == "ingest" else None)
            for job in JOBS]
    jobs = [j for j in jobs if j["ok"] is not None or j["tiles_done"]]
    return StoreInfo(url=cube.shown, grid=grid, dates=dates, arrays=arrays, jobs=jobs,
                     size_bytes=cstore.store_bytes(cube))


def _job(cube: StoreLocation, job: str, plan: str | None) -> dict[str, Any]:
    """One step's provenance from its report, and its done tiles from the manifest of the
    report's plan (else ``plan``: the ingest plan from the cube's attributes)."""
    try:
        report = cstore.read_json(cube.report(job))
    except FileNotFoundError:
        report = {}
    plan = report.get("plan_hash") or plan
    done = len(cstore.Manifest(cube, job, plan).done()) if plan else 0
    if not done and report:  # a job whose output is a table (aggregate) keeps no manifest
        done = int(report.get("tiles_done", 0)) + int(report.get("tiles_empty", 0))
    return {
        "job": job, "ok": report.get("ok"), "tiles_done": done, "tiles_total": report.get("tiles_total"),
        "started_at": report.get("started_at"), "wall_s": report.get("wall_s"), "version": report.get("version"),
        "plan_hash": plan, "inputs_used": report.get("inputs_used"),
        "inputs_rejected": len(report.get("inputs_rejected") or []),
        "config": mask_secrets(report.get("config") or {}), "outputs": report.get("outputs") or {},
    }
