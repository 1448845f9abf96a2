"""Spectral indices for every tile of a cube, written back into the same cube.

Reads the cube's band arrays (integer DN with CF scale/offset/fill) tile by tile and runs
the fused kernels of :mod:`cluster.kernels` on them, on CPU or GPU; writes one
``(time, y, x)`` array per index on the same grid, chunks and time axis, with the kernel's
name, formula and version in its attributes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Mapping, Sequence

import numpy as np
import zarr
from pydantic import Field

from cluster import store as cstore
from cluster.config import TileJobConfig
from cluster.errors import MissingBandError
from cluster.grid import CubeExtent
from cluster.kernels import BandInfo, GpuLaunch, OutputSpec, TileStaging, compute, get_kernel, gpu_available
from cluster.location import StoreLocation
from cluster.records import GridTasks, TileResult, TileTask

__all__ = ["IndicesConfig", "IndicesPlan", "IndicesWorker", "IndicesTileInfo", "plan_indices", "prepare_indices"]


class IndicesConfig(TileJobConfig):
    """Everything ``harvest indices`` needs (``store``: the cube made by ``harvest ingest``)."""

    kernels: list[str] = Field(default_factory=lambda: ["ndvi"], min_length=1)
    """Index names (``harvest indices --list`` prints the catalogue)."""
    output: Literal["float32", "int16"] = "float32"
    """float32 with NaN for missing, or int16 scaled by 1e-4 with fill -32768 (half the bytes)."""
    device: Literal["cpu", "gpu", "auto"] = "auto"
    """auto: the GPU kernels when the actor was given a GPU (resources.num_gpus > 0)."""
    gpu: GpuLaunch = Field(default_factory=GpuLaunch)
    """How the GPU loop is shaped and launched (threads_per_block, max_blocks, unroll, pack,
    max_bodies); the defaults are measured ones. The same bits either way: outside the plan
    hash."""
    band_names: dict[str, str] = Field(default_factory=dict)
    """Canonical band name -> cube array name, when the cube's names differ (e.g. nir: B08)."""
    overwrite: bool = False
    """Recompute indices that already exist (otherwise finished tiles are skipped)."""


@dataclass(frozen=True)
class IndicesPlan:
    store: StoreLocation
    """The cube, without credentials (the plan travels to workers)."""
    extent: CubeExtent
    kernels: tuple[str, ...]
    bands: dict[str, str]
    """Canonical band name -> cube array name, for every band the kernels need."""
    band_info: dict[str, BandInfo]
    output: OutputSpec
    n_time: int
    tiles: Sequence[TileTask]
    """Every tile of the cube."""
    hash: str
    device: str
    gpu: GpuLaunch


def plan_indices(config: IndicesConfig) -> IndicesPlan:
    """Check the kernels against the cube's bands and list the tiles. Reads metadata only."""
    kernels = [get_kernel(name) for name in config.kernels]  # unknown names fail here
    cube = config.location()
    group = cstore.open_group(cube, mode="r")
    extent = cstore.extent_of(group)
    arrays = set(group.array_keys())
    needed = sorted({b for k in kernels for b in k.bands})
    mapping = {b: config.band_names.get(b, b) for b in needed}
    missing = {b: a for b, a in mapping.items() if a not in arrays}
    if missing:
        by_kernel = {k.name: [b for b in k.bands if b in missing] for k in kernels}
        detail = "; ".join(f"{k} needs {v}" for k, v in by_kernel.items() if v)
        raise MissingBandError(
            f"the cube {config.store!r} lacks band(s) {sorted(missing.values())!r} ({detail}); "
            f"it has {sorted(arrays)!r}. Ingest those bands, map them with band_names, or drop those indices"
        )
    info: dict[str, BandInfo] = {}
    for band, name in mapping.items():
        arr = group[name]
        assert isinstance(arr, zarr.Array)
        attrs: Mapping[str, Any] = arr.attrs  # CF attributes, read as the numbers they should be
        fill = arr.fill_value
        nodata = None if fill is None or (isinstance(fill, float) and math.isnan(fill)) else float(fill)
        info[band] = BandInfo(scale=float(attrs.get("scale_factor", 1.0)),
                              offset=float(attrs.get("add_offset", 0.0)), nodata=nodata)
    first = group[mapping[needed[0]]]
    assert isinstance(first, zarr.Array)
    n_time = first.shape[0]
    output = OutputSpec.int16() if config.output == "int16" else OutputSpec()
    group_attrs: Mapping[str, Any] = group.attrs
    ingest_hash = str(group_attrs.get("harvest", {}).get("plan_hash", ""))
    h = hashlib.sha256(json.dumps({
        "ingest": ingest_hash,
        "kernels": [k.spec() for k in kernels],
        "bands": mapping,
        "output": config.output,
    }, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return IndicesPlan(cube.for_workers(), extent, tuple(k.name for k in kernels), mapping, info,
                       output, n_time, GridTasks(extent), h, config.device, config.gpu)


def prepare_indices(plan: IndicesPlan, config: IndicesConfig) -> cstore.Manifest:
    """Create the index arrays (kept if they exist) and return the job's manifest."""
    cube = config.location()  # the driver's copy: with the config's credentials
    manifest = cstore.Manifest(cube, "indices", plan.hash)
    if config.overwrite:
        manifest.clear()
    specs = []
    for name in plan.kernels:
        k = get_kernel(name)
        attrs = {"long_name": name, "harvest_kernel": k.spec(), "units": "1",
                 "harvest_job": "indices", "harvest_plan_hash": plan.hash}
        o = plan.output
        specs.append(cstore.ArraySpec(
            name, o.dtype, o.fill_value,
            o.scale_factor if o.dtype != "float32" else None,
            o.add_offset if o.dtype != "float32" else None, attrs))
    # No tile of this plan done yet: (re)create the arrays, replacing any left by another
    # plan (other kernel version or output type). Otherwise keep them and resume.
    cstore.add_arrays(cube, specs, like=next(iter(plan.bands.values())), overwrite=not manifest.done())
    return manifest


@dataclass(frozen=True)
class IndicesTileInfo:
    """What computing one tile's indices reports besides counters: where the kernels ran.

    >>> IndicesTileInfo("cpu").summary()
    {'device': 'cpu'}
    """

    device: str
    """``cpu`` or ``gpu``: the device the worker's kernels ran on (``auto`` resolved)."""

    def summary(self) -> dict[str, Any]:
        return {"device": self.device}


class IndicesWorker:
    """Reads a tile's bands, computes every index in one fused pass, writes them.

    Output buffers are allocated once per actor and reused: fresh large allocations cost
    page faults that can exceed the kernel's own time on these machines. On the GPU the bands
    stay on the device from the copy after decoding to the copy before encoding: pinned host
    buffers, device buffers and one stream per actor (:class:`cluster.kernels.TileStaging`),
    each band's upload overlapping the next band's decoding and each index's download the
    previous index's encoding. There, ``timings_s["kernel"]`` is the time to queue the work and
    ``encode_write`` includes waiting for the copies back.
    """

    def __init__(self, plan: IndicesPlan) -> None:
        self.plan = plan
        self._group: zarr.Group | None = None
        self._out: dict[str, np.ndarray] | None = None
        self.device = self._device(plan.device)
        self._staging = TileStaging() if self.device == "gpu" else None
        # Ray sets OMP_NUM_THREADS to the actor's num_cpus; numba's pool would otherwise use
        # every core of the node and actors would fight over them
        threads = os.environ.get("OMP_NUM_THREADS")
        if threads and threads.isdigit():
            import numba

            # numba.config's settings are set at import time, undeclared to type checkers
            numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]

    @staticmethod
    def _device(requested: str) -> str:
        if requested != "auto":
            return requested
        return "gpu" if gpu_available() else "cpu"

    def process(self, task: TileTask) -> TileResult[IndicesTileInfo]:
        t_start = time.perf_counter()
        plan = self.plan
        if self._group is None:
            self._group = cstore.open_group(plan.store, mode="r+")
        group = self._group
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        bands = {b: self._read(group, name, task, b) for b, name in plan.bands.items()}
        timings["read"] = time.perf_counter() - t0
        result: TileResult[IndicesTileInfo] = TileResult(task.tile.id, "done", pid=os.getpid())
        shape = next(iter(bands.values())).shape
        empty = all(_all_fill(a, plan.band_info[b]) for b, a in bands.items())
        if empty:
            result.status = "empty"  # no data in the tile: the index arrays' fill stands
        else:
            t0 = time.perf_counter()
            values = self._compute(bands, shape)
            timings["kernel"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            written = {}
            for name, arr in values:
                written[name] = cstore.write_tile(group, name, plan.extent, task.tile, arr, plan.store)
                result.bytes_written += written[name].nbytes
            result.record = cstore.checksum_record(written)
            timings["encode_write"] = time.perf_counter() - t0
        result.pixels = int(np.prod(shape))
        result.timings_s = timings
        result.output = IndicesTileInfo(self.device)
        result.seconds = time.perf_counter() - t_start
        return result

    def _read(self, group: zarr.Group, name: str, task: TileTask, band: str) -> np.ndarray:
        """One band of the tile. On the GPU: decoded into the staging's pinned buffer and its
        copy to the device queued at once, so it runs while the next band is decoded."""
        if self._staging is None:
            return cstore.read_tile(group, name, self.plan.extent, task.tile)
        array = group[name]
        assert isinstance(array, zarr.Array)
        ys, xs = self.plan.extent.tile_slices(task.tile)
        shape = (*array.shape[:-2], ys.stop - ys.start, xs.stop - xs.start)
        host = cstore.read_tile(group, name, self.plan.extent, task.tile,
                                out=self._staging.host_band(band, shape, array.dtype))
        self._staging.upload(band)
        return host

    def _compute(self, bands: dict[str, np.ndarray], shape: tuple[int, ...]
                 ) -> Iterator[tuple[str, np.ndarray]]:
        """(index, host array) pairs; on the GPU each pair comes as soon as its copy back has
        landed, so the first index is encoded while the others are still on their way."""
        plan = self.plan
        if self._staging is not None:
            self._staging.run(plan.kernels, plan.band_info, output=plan.output, launch=plan.gpu)
            return self._staging.results()
        if self._out is None or next(iter(self._out.values())).shape != shape:
            dtype = np.float32 if plan.output.dtype == "float32" else np.int16
            self._out = {k: np.empty(shape, dtype=dtype) for k in plan.kernels}
        values = compute(plan.kernels, bands, plan.band_info, output=plan.output, device="cpu",
                         out=self._out)
        return iter(values.items())


def _all_fill(a: np.ndarray, info: BandInfo) -> bool:
    if info.nodata is None:
        return bool(np.issubdtype(a.dtype, np.floating) and np.isnan(a).all())
    return bool((a == info.nodata).all())
