"""Ingest: ``harvest ingest`` against the Pangeo way, on the same demo season, same machine, same run.

Both tools turn the same scenes (6-band uint16 COGs in two UTM zones, ``DEMO_<epsg>_<date>.tif``)
into the same cube: EPSG:6933 at the scenes' pixel size, nearest resampling, SCL 4/5 clear and
DN 0 masked, the two zones mosaicked per date (first valid scene in (date, scene id) order),
one ``(time, y, x)`` uint16 array per band, chunks ``(1, 256, 256)`` in shards
``(n_time, 256, 256)``, blosc lz4 + byte shuffle, in a fresh local Zarr v3 store.

Tools:
  * ``harvest-cluster``: ``jobs.ingest.run(IngestConfig)`` with the demo's config
    (``jobs.demo.demo_configs``), ``max_actors`` = workers. Ray is started before the clock
    (its start-up is printed apart); planning, the store template and actor start-up count.
  * ``pangeo (rioxarray+dask)``: per scene ``rioxarray.open_rasterio(chunks=..., lock=False)``,
    mask (``scl`` in {4, 5} and no band 0) lazily in dask, ``.rio.reproject_match`` onto a
    template of the cube grid (nearest, exact transform ``tolerance=0`` as ours,
    ``num_threads`` = workers for the GDAL warper), mosaic the zones per date with ``xr.where``,
    ``xr.concat`` over time, then ``to_zarr`` through dask (threaded scheduler,
    ``num_workers`` = workers) with the same encoding (chunks, shards, codec) as ours.
    rioxarray's ``reproject`` is not lazy: it calls ``.values``, which computes the masked source
    with dask, then warps eagerly into NumPy. A lazy warp (odc-geo ``xr_reproject``) is not
    installed here; with rioxarray this is how the Pangeo tutorials build a cube.

Units: ``Mpx/s`` is **input scene megapixels** (sum of width x height over all scenes, one pixel
= 6 bands) per second of wall time; output cube pixels per second (time x y x x) are printed too.
``x ours`` = that tool's seconds / ours at the same worker count (above 1: ours is faster).

After the runs: the baseline cube is compared with ours on a few dates (every band and pixel),
and the share of our worker time per stage (read_decode, warp, mask, mosaic, encode_write) is
printed. With ``--profile`` (or when ours is below 1.5x the baseline) ``IngestWorker.process``
runs in-process under cProfile on a few tiles and the top functions are listed.

Run: ``.venv/bin/python -m benchmarks.ingest [--quick] [--json PATH] [--workers 1,2] [--mpx N]``.
The demo season is generated once into ``/tmp/harvest-bench/season-<mpx>`` (reused while its
``demo_spec.json`` matches; generation is never timed).
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import shutil
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._report import OURS, Record, emit, parse_args

PANGEO = "pangeo (rioxarray+dask)"
CACHE = Path(os.environ.get("HARVEST_BENCH_DIR", "/tmp/harvest-bench"))
BANDS = ("blue", "green", "red", "nir", "swir16", "scl")
STORED = BANDS[:-1]
SCL_CLEAR = (4, 5)
GOAL = 1.5


# --- inputs ---------------------------------------------------------------------------


def demo_season(mpx: float) -> Any:
    """The cached demo season of about ``mpx`` scene megapixels (generated when missing)."""
    from cluster.demo import SCENE_BANDS, DemoSeason, DemoSpec, make_demo_season

    assert tuple(SCENE_BANDS) == BANDS, SCENE_BANDS
    spec = DemoSpec.for_benchmark(mpx)
    root = CACHE / f"season-{mpx:g}"
    meta = root / "demo_spec.json"
    scenes = sorted((root / "scenes").glob("DEMO_*.tif"), key=lambda p: (p.stem.split("_")[2], p.stem))
    n_expected = 2 * len(spec.years) * spec.dates_per_season
    if meta.exists() and json.loads(meta.read_text())["spec"] == spec.to_dict() and len(scenes) == n_expected:
        print(f"demo season: reusing {root} ({len(scenes)} scenes)")
        return DemoSeason(root=root, scenes=tuple(scenes), regions=root / "inputs" / "regions.geojson",
                          yield_history=root / "inputs" / "yield_history.csv",
                          crop_calendar=root / "inputs" / "crop_calendar.csv",
                          truth_crop_type=root / "truth" / "crop_type.tif", truth_fields=None,
                          truth_yields=root / "truth" / "yields.csv", crop_classes={}, spec=spec)
    print(f"demo season: generating {spec.scene_megapixels():.0f} Mpx into {root} (not timed) ...", flush=True)
    season = make_demo_season(root, spec)
    print(f"  done in {season.elapsed_s:.0f} s")
    return season


def scene_pixels(paths: tuple[Path, ...]) -> int:
    import rasterio

    total = 0
    for p in paths:
        with rasterio.open(p) as ds:
            total += ds.width * ds.height
    return total


def warm_page_cache(paths: tuple[Path, ...]) -> tuple[float, int]:
    """Read every scene file once so every run reads from the page cache alike."""
    t0 = time.perf_counter()
    n = 0
    for p in paths:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 24):
                n += len(chunk)
    return time.perf_counter() - t0, n


class ActorCpu:
    """CPU seconds (user + system) of Ray tile-actor processes, polled from /proc while a
    job runs (actors exit with it). The machine is shared, so CPU time is the fairer figure."""

    def __init__(self, every_s: float = 0.2) -> None:
        import threading

        self._every_s = every_s
        self._seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")

    def _poll(self) -> None:
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                if b"TileActor" not in (d / "cmdline").read_bytes():
                    continue
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / self._tick
            except (OSError, IndexError, ValueError):
                continue
            self._seen[int(d.name)] = max(cpu, self._seen.get(int(d.name), 0.0))

    def _loop(self) -> None:
        while not self._stop.wait(self._every_s):
            self._poll()

    def __enter__(self) -> "ActorCpu":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def seconds(self) -> float:
        return sum(self._seen.values())


# --- ours -----------------------------------------------------------------------------


def ours_config(season: Any, store: Path, workers: int) -> Any:
    from cluster.ingest import IngestConfig
    from jobs.demo import demo_configs

    cfg = demo_configs(season, store.parent)["ingest"]
    cfg.update(store=str(store), max_actors=workers)
    return IngestConfig.model_validate(cfg)


def run_ours(season: Any, store: Path, workers: int) -> tuple[float, float, Any]:
    """Returns (wall seconds, CPU seconds of driver + actors, the job report)."""
    from cluster.pipeline import run_ingest

    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(f"{store}.harvest", ignore_errors=True)
    config = ours_config(season, store, workers)
    c0 = time.process_time()
    t0 = time.perf_counter()
    with ActorCpu() as actors:
        report = run_ingest(config)
        seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0 + actors.seconds
    if not report.ok:
        raise RuntimeError(f"harvest ingest failed: {report.summary()}")
    return seconds, cpu, report


# --- the Pangeo baseline --------------------------------------------------------------


def run_pangeo(scenes: tuple[Path, ...], extent: Any, store: Path, workers: int,
               level: int = 5) -> tuple[float, float, dict[str, float]]:
    """The rioxarray + dask way, timed end to end; returns (wall s, CPU s, wall s per phase)."""
    import dask
    import rioxarray
    import xarray as xr
    from rasterio.enums import Resampling
    from zarr.codecs import BloscCodec

    shutil.rmtree(store, ignore_errors=True)
    phases: dict[str, float] = defaultdict(float)
    c0 = time.process_time()
    t_all = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=workers), warnings.catch_warnings():
        # open_rasterio notes that the bands' scales differ (DN bands vs scl): expected here
        warnings.filterwarnings("ignore", message="(Scales|Offsets) differ across bands")
        t0 = time.perf_counter()
        ny, nx = extent.shape
        template = xr.DataArray(
            dask.array.zeros((ny, nx), dtype=np.uint8, chunks=(ny, nx)), dims=("y", "x"),
            coords={"y": extent.y_coords(), "x": extent.x_coords()},
        ).rio.write_crs(extent.grid.crs).rio.write_transform(extent.transform)
        by_date: dict[str, list[Path]] = defaultdict(list)
        for p in scenes:  # (date, scene id) order: the mosaic order
            by_date[p.stem.split("_")[2]].append(p)
        phases["open"] += time.perf_counter() - t0

        per_date = []
        for date, paths in by_date.items():
            mosaic = None
            for p in paths:
                t0 = time.perf_counter()
                da = rioxarray.open_rasterio(p, chunks={"band": -1, "y": 1024, "x": 1024}, lock=False)
                da = da.assign_coords(band=list(da.attrs.get("long_name") or BANDS))
                valid = (da != 0).all("band") & da.sel(band="scl").isin(SCL_CLEAR)
                masked = da.where(valid, 0)  # stays uint16 (0 is nodata)
                phases["open"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                # eager: .values computes the masked source with dask, then one GDAL warp
                warped = masked.rio.reproject_match(template, resampling=Resampling.nearest,
                                                    tolerance=0, num_threads=workers)
                phases["read+mask+warp (reproject)"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                if mosaic is None:
                    mosaic = warped
                else:  # first valid wins
                    mosaic = xr.where((mosaic != 0).all("band"), mosaic, warped)
                phases["mosaic"] += time.perf_counter() - t0
            assert mosaic is not None
            ds = mosaic.to_dataset("band").drop_vars("scl")
            per_date.append(ds.expand_dims(time=[np.datetime64(date, "ns")]))

        t0 = time.perf_counter()
        cube = xr.concat(per_date, dim="time")
        n_time = cube.sizes["time"]
        tile = extent.grid.tile_size_px
        cube = cube.chunk({"time": -1, "y": tile, "x": tile})
        codec = BloscCodec(cname="lz4", clevel=level, shuffle="shuffle")
        encoding = {b: {"dtype": "uint16", "_FillValue": 0, "chunks": (1, tile, tile),
                        "shards": (n_time, tile, tile), "compressors": [codec]} for b in STORED}
        phases["concat"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        cube.to_zarr(str(store), mode="w", zarr_format=3, consolidated=False, encoding=encoding)
        phases["to_zarr (encode+write)"] += time.perf_counter() - t0
    return time.perf_counter() - t_all, time.process_time() - c0, dict(phases)


# --- checks and profile ---------------------------------------------------------------


def compare(ours: Path, theirs: Path, n_dates: int = 4) -> dict[str, Any]:
    """Pixel-by-pixel agreement on ``n_dates`` dates spread over the season (all bands)."""
    import zarr

    a, b = zarr.open_group(str(ours), mode="r"), zarr.open_group(str(theirs), mode="r")
    nt = a[STORED[0]].shape[0]
    ts = sorted({int(round(x)) for x in np.linspace(0, nt - 1, n_dates)})
    equal = total = valid_either = equal_valid = 0
    for band in STORED:
        x, y = a[band], b[band]
        if x.shape != y.shape:
            raise RuntimeError(f"cube shapes differ for {band!r}: ours {x.shape}, pangeo {y.shape}")
        for t in ts:
            u, v = np.asarray(x[t]), np.asarray(y[t])
            eq = u == v
            any_valid = (u != 0) | (v != 0)
            equal += int(eq.sum())
            total += eq.size
            valid_either += int(any_valid.sum())
            equal_valid += int((eq & any_valid).sum())
    return {"dates": ts, "pixels_compared": total, "equal_fraction": equal / total,
            "valid_pixels": valid_either,
            "equal_fraction_of_valid": equal_valid / valid_either if valid_either else float("nan")}


def exact_check(scenes: tuple[Path, ...], extent: Any, cubes: dict[str, Path], t: int,
                window_px: int = 768) -> dict[str, float]:
    """Share of pixels of each cube equal to the exact nearest-neighbour mosaic on date ``t``.

    The reference maps every cube pixel centre through PROJ (pyproj, no approximation) into
    each scene, takes the source pixel it falls in, and mosaics first valid in (date, scene
    id) order: what both tools claim to compute. Checked on a ``window_px`` square per tile
    column band around the cube's centre row (all bands).
    """
    import rasterio
    import zarr
    from pyproj import Transformer

    dates = sorted({p.stem.split("_")[2] for p in scenes})
    date = dates[t]
    ny, nx = extent.shape
    r0 = max(0, ny // 2 - window_px // 2)
    rows = slice(r0, min(ny, r0 + window_px))
    xs, ys = np.meshgrid(extent.x_coords(), extent.y_coords()[rows])
    ref = np.zeros((len(STORED), *xs.shape), np.uint16)
    filled = np.zeros(xs.shape, bool)
    for p in (p for p in scenes if p.stem.split("_")[2] == date):
        with rasterio.open(p) as ds:
            sx, sy = Transformer.from_crs(extent.grid.crs, ds.crs, always_xy=True).transform(xs, ys)
            col, row = ~ds.transform * (sx, sy)
            ci, ri = np.floor(col).astype(np.int64), np.floor(row).astype(np.int64)
            inside = (ci >= 0) & (ci < ds.width) & (ri >= 0) & (ri < ds.height)
            data = ds.read()
        v = np.zeros((data.shape[0], *xs.shape), np.uint16)
        v[:, inside] = data[:, ri[inside], ci[inside]]
        valid = (v != 0).all(0) & np.isin(v[-1], SCL_CLEAR)
        take = valid & ~filled
        ref[:, take] = v[:len(STORED), take]
        filled |= take
    out = {}
    for name, path in cubes.items():
        g = zarr.open_group(str(path), mode="r")
        got = np.stack([np.asarray(g[b][t, rows, :]) for b in STORED])
        out[name] = float((got == ref).mean())
    out["pixels"] = float(ref.size)
    return out


def profile_worker(season: Any, store: Path, n_tiles: int = 4, top: int = 18) -> dict[str, Any]:
    """cProfile ``IngestWorker.process`` in-process on the tiles with the most scenes."""
    from cluster.ingest import IngestWorker, plan_ingest, prepare_store

    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(f"{store}.harvest", ignore_errors=True)
    config = ours_config(season, store, 1)
    plan = plan_ingest(config)
    prepare_store(plan, config)
    tasks = sorted(plan.tiles, key=lambda t: -len(t.payload))[:n_tiles]
    worker = IngestWorker(plan)
    worker.process(tasks[-1])  # warm: opens datasets, builds PROJ pipelines, imports codecs
    prof = cProfile.Profile()
    stages: dict[str, float] = defaultdict(float)
    t0 = time.perf_counter()
    prof.enable()
    for task in tasks:
        res = worker.process(task)
        for k, v in res.timings_s.items():
            stages[k] += v
    prof.disable()
    wall = time.perf_counter() - t0
    worker.close()
    stats = pstats.Stats(prof)
    rows = []
    for (file, line, fn), (cc, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((tt, ct, nc, f"{Path(file).name}:{line}({fn})"))
    rows.sort(reverse=True)
    print(f"\ncProfile of IngestWorker.process on {len(tasks)} tiles "
          f"({sum(len(t.payload) for t in tasks)} scene windows), {wall:.2f} s in-process:")
    print("  stages: " + ", ".join(f"{k} {v:.2f} s ({100 * v / wall:.0f}%)" for k, v in
                                     sorted(stages.items(), key=lambda kv: -kv[1])))
    print(f"  {'own s':>7} {'own %':>6} {'cum s':>7} {'calls':>7}  function")
    for tt, ct, nc, name in rows[:top]:
        print(f"  {tt:7.3f} {100 * tt / wall:5.1f}% {ct:7.3f} {nc:7d}  {name}")
    return {"tiles": len(tasks), "wall_s": wall, "stages_s": dict(stages),
            "top_own_time": [{"function": n, "own_s": tt, "cum_s": ct, "calls": nc}
                             for tt, ct, nc, n in rows[:top]]}


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def write_json(path: Path, records: list[Record], meta: dict[str, Any]) -> None:
    """The records as ``emit`` writes them (ratios already filled by the printed table)."""
    import platform
    from dataclasses import asdict

    payload = {"meta": {"python": platform.python_version(), "machine": platform.machine(), **meta},
               "records": [asdict(r) for r in records]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))
    print(f"wrote {path}")


# --- main -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    def extra(p: Any) -> None:
        p.add_argument("--workers", default="1,2", help="comma-separated worker counts (max_actors; "
                       "dask threads for the baseline)")
        p.add_argument("--mpx", type=float, default=None, help="scene megapixels of the demo season "
                       "(default 300, quick 10)")
        p.add_argument("--baseline-workers", default=None,
                       help="worker counts for the baseline (default: the largest of --workers)")
        p.add_argument("--profile", action="store_true", help="always cProfile the tile worker")

    args = parse_args(__doc__.splitlines()[0], argv, extra)
    workers = [int(w) for w in str(args.workers).split(",")]
    mpx = args.mpx or (10.0 if args.quick else 300.0)
    if args.baseline_workers:
        base_workers = [int(w) for w in str(args.baseline_workers).split(",")]
    else:
        base_workers = [max(workers)]

    season = demo_season(mpx)
    scenes = tuple(season.scenes)
    in_px = scene_pixels(scenes)
    warm_s, nbytes = warm_page_cache(scenes)
    print(f"{len(scenes)} scenes, {in_px / 1e6:.1f} Mpx (x 6 bands uint16), {nbytes / 1e9:.2f} GB of COGs "
          f"(page cache warmed in {warm_s:.1f} s); {os.cpu_count()} CPUs")

    from cluster.ingest import plan_ingest
    from cluster.runtime import ensure_ray

    t0 = time.perf_counter()
    ensure_ray()
    ray_s = time.perf_counter() - t0
    print(f"Ray start-up (not timed below): {ray_s:.1f} s; load average {_load()} "
          "(other processes on this machine share its CPUs)")

    work = Path(tempfile.mkdtemp(prefix="ingest-", dir=CACHE))
    records: list[Record] = []
    extent = plan_ingest(ours_config(season, work / "plan.zarr", 1)).extent
    ny, nx = extent.shape
    n_time = len({p.stem.split("_")[2] for p in scenes})
    out_px = ny * nx * n_time
    print(f"cube: {n_time} dates x {ny} x {nx} px ({out_px / 1e6:.0f} Mpx per band), "
          f"{extent.nrows * extent.ncols} tiles of {extent.grid.tile_size_px} px")
    mcase = f"{in_px / 1e6:.0f} Mpx"

    reports = {}
    try:
        for w in workers:
            seconds, cpu, rep = run_ours(season, work / f"ours-{w}.zarr", w)
            reports[w] = rep
            print(f"  ours, {w} worker(s): {seconds:.1f} s ({cpu:.1f} CPU s)", flush=True)
            records.append(Record(OURS, f"ingest {mcase}, {w} worker(s)", seconds, in_px / 1e6 / seconds,
                                  extra={"output_mpix_per_s": out_px / 1e6 / seconds, "cpu_s": cpu,
                                         "timings_s": rep.timings_s, "tiles": rep.tiles_total,
                                         "ray_start_s": ray_s}))
        base_phases = {}
        for w in base_workers:
            seconds, cpu, phases = run_pangeo(scenes, extent, work / f"pangeo-{w}.zarr", w)
            base_phases[w] = phases
            print(f"  pangeo, {w} worker(s): {seconds:.1f} s ({cpu:.1f} CPU s)", flush=True)
            records.append(Record(PANGEO, f"ingest {mcase}, {w} worker(s)", seconds, in_px / 1e6 / seconds,
                                  extra={"output_mpix_per_s": out_px / 1e6 / seconds, "cpu_s": cpu,
                                         "phases_s": phases}))

        print()
        emit(records, None)
        print(f"Mpx/s = input scene megapixels / s. Output cube pixels / s "
              f"({n_time} x {ny} x {nx} per band), and CPU seconds (this machine is shared: "
              "CPU time is steadier than wall time):")
        for r in records:
            print(f"  {r.tool:<24} {r.case:<28} {r.extra['output_mpix_per_s']:8.1f} Mpx/s out "
                  f"{r.extra['cpu_s']:8.1f} CPU s")

        ours_by_w = {int(r.case.split(", ")[1].split()[0]): r for r in records if r.tool == OURS}
        if 1 in ours_by_w and len(ours_by_w) > 1:
            top = max(ours_by_w)
            print(f"scaling (ours): {top} workers are {ours_by_w[1].seconds / ours_by_w[top].seconds:.2f}x "
                  f"1 worker on {os.cpu_count()} CPUs")

        print("\nwhere our time goes (sum over tiles of worker time, all workers):")
        for w, rep in reports.items():
            tot = sum(rep.timings_s.values()) or 1.0
            parts = ", ".join(f"{k} {100 * v / tot:.0f}% ({v:.1f} s)"
                              for k, v in sorted(rep.timings_s.items(), key=lambda kv: -kv[1]))
            print(f"  {w} worker(s): {parts}; worker total {tot:.1f} s")
        print("where the baseline's time goes:")
        for w, ph in base_phases.items():
            print(f"  {w} worker(s): " + ", ".join(f"{k} {v:.1f} s" for k, v in ph.items()))

        print(f"load average at the end: {_load()}")
        ref_w = max(set(reports) & set(base_workers)) if set(reports) & set(base_workers) else None
        check, ratio = None, float("nan")
        if ref_w is not None:
            check = compare(work / f"ours-{ref_w}.zarr", work / f"pangeo-{ref_w}.zarr")
            ex = exact_check(scenes, extent, {OURS: work / f"ours-{ref_w}.zarr",
                                              PANGEO: work / f"pangeo-{ref_w}.zarr"}, check["dates"][1])
            check["exact_nearest"] = ex
            print(f"\ncheck: on dates {check['dates']} ({check['pixels_compared'] / 1e6:.1f} Mpx over "
                  f"{len(STORED)} bands) {100 * check['equal_fraction']:.3f}% of pixels are equal; "
                  f"{100 * check['equal_fraction_of_valid']:.3f}% of the "
                  f"{check['valid_pixels'] / 1e6:.1f} M pixels valid in either cube")
            print(f"check against the exact nearest mosaic (PROJ per pixel, no GDAL) on date {check['dates'][1]}, "
                  f"{ex['pixels'] / 1e6:.1f} Mpx over {len(STORED)} bands: ours {100 * ex[OURS]:.3f}% equal, "
                  f"pangeo {100 * ex[PANGEO]:.3f}% equal (GDAL's nearest pick near a source pixel edge "
                  "depends on the warp's destination window)")
            ours_r = ours_by_w[ref_w]
            base_r = next(r for r in records if r.tool == PANGEO and r.case == ours_r.case)
            ratio = base_r.seconds / ours_r.seconds
            verdict = "meets" if ratio >= GOAL else "MISSES"
            print(f"goal: ours is {ratio:.2f}x the Pangeo baseline at {ref_w} workers: {verdict} the "
                  f"{GOAL}x goal (2x stretch)")
        prof = None
        if args.profile or (not args.quick and ref_w is not None and ratio < GOAL):
            prof = profile_worker(season, work / "profile.zarr")
        if args.json is not None:
            write_json(args.json, records, {
                "scene_mpx": in_px / 1e6, "cube_shape": [n_time, ny, nx], "cpus": os.cpu_count(),
                "ray_start_s": ray_s, "page_cache_warm_s": warm_s, "check": check, "profile": prof,
                "unit": "mpix_per_s = input scene megapixels (6 bands each) per second"})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
