"""One indices actor's work per tile on the GPU against one on the CPU: same machine, same cube.

What runs is the job's own worker, :class:`cluster.indices.IndicesWorker`, tile after tile in
this process: read each band's shard and decode it, the five indices in one fused pass, encode
and write each index's shard (with the CRC the manifest records). Once with ``device="cpu"``
(numba on one thread, as an actor with the default ``num_cpus: 1``) and once with
``device="gpu"`` (:class:`cluster.kernels.TileStaging`: pinned buffers, one stream, uploads
overlapping the decoding, downloads overlapping the encoding). Both must write the same bytes:
every shard of every index is compared.

Ray is left out on purpose: an actor's work is this ``process()`` call, and Ray's wheel is
larger than what can travel to the GPU machine. The cube is synthetic (``benchmarks._bands``:
Sentinel-2-like uint16 DN with 0.5 % nodata), written with the job's own ``create_cube`` and
write path (lz4 + shuffle, one shard per tile), so the script needs no ingest.

Run: ``python -m benchmarks.indices_device [--tiles 6] [--dates 24] [--tile-px 512] [--json PATH]``.
Without a GPU it exits with a message; under ``NUMBA_ENABLE_CUDASIM=1`` with tiny sizes it runs
the logic (the tests do that), with no meaningful numbers.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._bands import CASES, NODATA, OFFSET, SCALE, bands_for, make_bands
from benchmarks._report import OURS, Record, emit, parse_args

KERNELS = CASES["five (ndvi evi savi ndmi nbr)"]


def make_template(path: Path, tiles: int, dates: int, tile_px: int) -> None:
    """The cube's metadata and coordinates: ``tiles`` tiles in a row, ``dates`` dates, the five
    indices' bands (uint16 DN, CF scale/offset, nodata 0; lz4 + shuffle, one shard per tile).
    Needs rioxarray and dask, which a GPU machine may lack: make it here and carry it there."""
    from cluster import store as cstore
    from cluster.grid import CubeExtent, GridSpec

    extent = CubeExtent(GridSpec("EPSG:6933", pixel_size=10.0, tile_size_px=tile_px), 0, 0, 1, tiles)
    times = [np.datetime64("2025-04-01") + np.timedelta64(10 * d, "D") for d in range(dates)]
    specs = [cstore.ArraySpec(b, "uint16", NODATA, float(SCALE), float(OFFSET)) for b in bands_for(KERNELS)]
    cstore.create_cube(str(path), extent, times, specs,
                       {"harvest": {"job": "ingest", "grid": extent.to_dict()}})


def make_cube(path: Path, tiles: int, dates: int, tile_px: int, empty: tuple[int, ...] = ()) -> None:
    """:func:`make_template` (unless ``path`` holds it already), then every band of every tile
    written with the job's write path; the tiles ``empty`` are left unwritten (all nodata, as
    tiles outside a country are)."""
    from cluster import store as cstore

    if not (path / "zarr.json").exists():
        make_template(path, tiles, dates, tile_px)
    group = cstore.open_group(str(path), mode="r+")
    extent = cstore.extent_of(group)
    shape = group[bands_for(KERNELS)[0]].shape
    if (extent.nrows, extent.ncols, extent.grid.tile_size_px, shape[0]) != (1, tiles, tile_px, dates):
        raise SystemExit(f"{path} holds a cube of {extent.ncols} tiles of {shape[0]} x "
                         f"{extent.grid.tile_size_px} px, not {tiles} of {dates} x {tile_px}; "
                         "remove it or pass the matching --tiles/--dates/--tile-px")
    for tile in extent.iter_tiles():
        if tile.col - extent.col0 in empty:
            continue
        stack = [make_bands(tile_px, seed=1000 * tile.col + d) for d in range(dates)]
        for b in bands_for(KERNELS):
            cstore.write_tile(group, b, extent, tile, np.stack([s[b] for s in stack]), str(path))


def run_worker(cube: Path, device: str, gpu: dict[str, Any] | None = None) -> dict[str, Any]:
    """The worker on every tile but the first (which warms up: JIT or kernel cache, buffers);
    per-tile seconds, the stage sums, and a hash of every index shard it wrote."""
    from cluster.indices import IndicesConfig, IndicesWorker, plan_indices, prepare_indices

    config = IndicesConfig(store=str(cube), kernels=list(KERNELS), device=device,  # type: ignore[arg-type]
                           overwrite=True, **({"gpu": gpu} if gpu else {}))
    plan = plan_indices(config)
    prepare_indices(plan, config)
    worker = IndicesWorker(plan)
    tasks = list(plan.tiles)
    first = worker.process(tasks[0])
    assert first.output is not None and first.output.device == device, first.output
    per_tile, stages, pixels = [], dict.fromkeys(("read", "kernel", "encode_write"), 0.0), 0
    for task in tasks[1:]:
        t0 = time.perf_counter()
        result = worker.process(task)
        if result.status == "empty":
            continue  # nothing computed or written: not a tile's work
        per_tile.append(time.perf_counter() - t0)
        pixels += result.pixels
        for k, v in result.timings_s.items():
            stages[k] = stages.get(k, 0.0) + v
    return {"per_tile_s": per_tile, "stages_s": stages, "pixels": pixels,
            "shards": shard_hashes(cube)}


def shard_hashes(cube: Path) -> dict[str, str]:
    """sha256 of every stored object of every index array (its shards)."""
    out = {}
    for name in KERNELS:
        for f in sorted((cube / name).rglob("*")):
            if f.is_file() and f.name != "zarr.json":
                out[str(f.relative_to(cube))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def main(argv: list[str] | None = None) -> int:
    def extra(p: Any) -> None:
        p.add_argument("--tiles", type=int, default=6, help="tiles (the first one warms up)")
        p.add_argument("--dates", type=int, default=24, help="dates per tile")
        p.add_argument("--tile-px", type=int, default=512, help="tile side in pixels")
        p.add_argument("--work", type=Path, default=None, help="folder for the cube (default: a temp dir)")
        p.add_argument("--pack", type=int, default=None, help="GpuLaunch.pack for the GPU worker")
        p.add_argument("--template-only", action="store_true",
                       help="write the cube's metadata into --work and stop (for a GPU machine "
                            "without rioxarray and dask: carry that folder there)")
        p.add_argument("--empty", type=int, action="append", default=[], metavar="COL",
                       help="leave tile COL unwritten (all nodata); may repeat")

    args = parse_args(__doc__.splitlines()[0], argv, extra=extra)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as Ray sets it for a num_cpus=1 actor
    work = args.work or Path(tempfile.mkdtemp(prefix="harvest-indices-device-"))
    cube = work / "cube.zarr"
    if args.template_only:
        make_template(cube, args.tiles, args.dates, args.tile_px)
        print(f"wrote the cube's metadata to {cube}")
        return 0
    from numba import cuda

    if not cuda.is_available():
        print("no CUDA GPU here (numba.cuda.is_available() is False); run this on a GPU machine",
              file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    make_cube(cube, args.tiles, args.dates, args.tile_px, tuple(args.empty))
    print(f"cube: {args.tiles} tiles of {args.dates} x {args.tile_px} x {args.tile_px}, "
          f"{len(bands_for(KERNELS))} uint16 bands, written in {time.perf_counter() - t0:.1f} s; "
          f"indices {', '.join(KERNELS)}; OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    gpu = {"pack": args.pack} if args.pack else None
    runs = {device: run_worker(cube, device, gpu if device == "gpu" else None) for device in ("cpu", "gpu")}
    same = runs["cpu"]["shards"] == runs["gpu"]["shards"]
    n_shards = len(runs["cpu"]["shards"])
    records = []
    for device, tool in (("gpu", OURS), ("cpu", f"{OURS} (CPU actor)")):
        r = runs[device]
        median = statistics.median(r["per_tile_s"])
        px_tile = r["pixels"] / len(r["per_tile_s"])
        records.append(Record(tool=tool, case="indices, one tile", seconds=median,
                              mpix_per_s=px_tile / median / 1e6,
                              extra={"device": device, "per_tile_s": r["per_tile_s"],
                                     "stages_s": r["stages_s"]}))
    emit(records, args.json, meta={"tiles": args.tiles, "dates": args.dates, "tile_px": args.tile_px,
                                   "same_bytes": same, "shards_compared": n_shards,
                                   "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
    for device in ("cpu", "gpu"):
        r = runs[device]
        n = len(r["per_tile_s"])
        parts = ", ".join(f"{k} {1e3 * v / n:.1f} ms" for k, v in r["stages_s"].items())
        print(f"{device}: per tile {parts} (tiles timed: {n})")
    print(f"GPU actor / CPU actor, tiles per second: "
          f"{statistics.median(runs['cpu']['per_tile_s']) / statistics.median(runs['gpu']['per_tile_s']):.2f}x")
    print(f"check: {n_shards} index shards written by the CPU and the GPU worker: "
          f"{'same bytes' if same else 'DIFFERENT BYTES'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
