"""Probe faster ways to do the tile worker's read and warp, on one real tile of a demo season.

Not a benchmark of record: it measures candidate changes to ``cluster.ingest.IngestWorker``
(which this file does not touch) and checks that each gives the same pixels:

* read: one ``ds.read(i, window)`` per band (today) vs one ``ds.read([1..6], window)`` per scene;
* warp (nearest): today's GDAL call with ``src_nodata`` over the stacked season, the same call
  without ``src_nodata`` (GDAL's no-mask fast path; the destination pre-filled with nodata), and
  warping a source *pixel index* once per source grid, then gathering every layer with NumPy.

Run: ``.venv/bin/python -m benchmarks._ingest_probe [--mpx 300] [--tiles 3]``.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds

from benchmarks.ingest import CACHE, demo_season, ours_config
from cluster.grid import BBox
from cluster.ingest import _source_window, plan_ingest


def _t(fn, repeat: int = 3):  # noqa: ANN001, ANN202
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mpx", type=float, default=300.0)
    p.add_argument("--tiles", type=int, default=3)
    args = p.parse_args(argv)
    season = demo_season(args.mpx)
    plan = plan_ingest(ours_config(season, CACHE / "probe.zarr", 1))
    grid = plan.extent.grid
    n = grid.tile_size_px
    tasks = sorted(plan.tiles, key=lambda t: -len(t.payload))[: args.tiles]
    totals: dict[str, float] = defaultdict(float)
    agree: dict[str, bool] = {}
    datasets: dict[str, rasterio.DatasetReader] = {}
    for task in tasks:
        tb = grid.tile_bounds(task.tile)
        dst_transform = grid.tile_transform(task.tile)
        # group scenes by source grid (CRS + window transform), as the worker does
        groups: dict[tuple, list[tuple[rasterio.DatasetReader, object]]] = defaultdict(list)
        for si in task.payload:
            url = plan.scenes[si].assets["blue"].url
            ds = datasets.get(url) or datasets.setdefault(url, rasterio.open(url))
            sb = BBox(*transform_bounds(grid.crs, ds.crs, *tb, densify_pts=21))
            win = _source_window(ds, sb)
            if win is None:
                continue
            groups[(ds.crs.to_wkt(), tuple(ds.window_transform(win)), int(win.height), int(win.width))].append((ds, win))

        # cold GDAL block cache: fresh handles for each variant (files are in the page cache)
        def read_per_band() -> dict:
            out = {}
            for k, v in groups.items():
                out[k] = []
                for ds0, w in v:
                    with rasterio.open(ds0.name) as ds:
                        out[k].append(np.stack([ds.read(i, window=w) for i in range(1, 7)]))
            return out

        def read_all_bands() -> dict:
            out = {}
            for k, v in groups.items():
                out[k] = []
                for ds0, w in v:
                    with rasterio.open(ds0.name) as ds:
                        out[k].append(ds.read(list(range(1, 7)), window=w))
            return out

        s0, _ = _t(lambda: [rasterio.open(ds0.name).close() for v in groups.values() for ds0, _ in v])
        totals["open: fresh handles (subtracted below)"] += s0
        s1, a = _t(read_per_band)
        s2, b = _t(read_all_bands)
        s1, s2 = s1 - s0, s2 - s0
        totals["read: one call per band (today)"] += s1
        totals["read: one call per scene"] += s2
        agree["read"] = agree.get("read", True) and all(
            np.array_equal(x, y) for k in a for x, y in zip(a[k], b[k]))

        stacks = {k: np.concatenate(v) for k, v in b.items()}  # (scenes*6, h, w)

        def warp_today() -> dict:
            out = {}
            for (wkt, tr, h, w), src in stacks.items():
                dst = np.zeros((src.shape[0], n, n), np.uint16)
                reproject(source=src, destination=dst, src_transform=Affine(*tr[:6]), src_crs=wkt, src_nodata=0,
                          dst_transform=dst_transform, dst_crs=grid.crs, dst_nodata=0,
                          resampling=Resampling.nearest, tolerance=0)
                out[(wkt, tr)] = dst
            return out

        def warp_no_nodata() -> dict:
            out = {}
            for (wkt, tr, h, w), src in stacks.items():
                dst = np.zeros((src.shape[0], n, n), np.uint16)
                reproject(source=src, destination=dst, src_transform=Affine(*tr[:6]), src_crs=wkt, src_nodata=None,
                          dst_transform=dst_transform, dst_crs=grid.crs, dst_nodata=None, init_dest_nodata=False,
                          resampling=Resampling.nearest, tolerance=0)
                out[(wkt, tr)] = dst
            return out

        def warp_index_gather() -> dict:
            out = {}
            for (wkt, tr, h, w), src in stacks.items():
                # 1-based flat source index, 0 = outside the source: warp it once per source grid
                idx = np.arange(1, h * w + 1, dtype=np.int32).reshape(1, h, w)
                map_ = np.zeros((1, n, n), np.int32)
                reproject(source=idx, destination=map_, src_transform=Affine(*tr[:6]), src_crs=wkt, src_nodata=0,
                          dst_transform=dst_transform, dst_crs=grid.crs, dst_nodata=0,
                          resampling=Resampling.nearest, tolerance=0)
                flat = map_[0].ravel()
                inside = flat > 0
                dst = np.zeros((src.shape[0], n * n), np.uint16)
                dst[:, inside] = src.reshape(src.shape[0], -1)[:, flat[inside] - 1]
                out[(wkt, tr)] = dst.reshape(-1, n, n)
            return out

        ref = None
        for name, fn in (("warp: GDAL with src_nodata (today)", warp_today),
                         ("warp: GDAL, no src_nodata", warp_no_nodata),
                         ("warp: index map once + NumPy gather", warp_index_gather)):
            s, out = _t(fn)
            totals[name] += s
            if ref is None:
                ref = out
            else:
                same = [np.array_equal(ref[k], out[k]) for k in ref]
                if not all(same):
                    k = next(k for k, ok in zip(ref, same) if not ok)
                    d = ref[k] != out[k]
                    print(f"  {name}: {int(d.sum())} of {d.size} differ; e.g. today "
                          f"{ref[k][d][:5].tolist()} vs {out[k][d][:5].tolist()}")
                agree[name] = agree.get(name, True) and all(same)
    layers = sum(len(t.payload) for t in tasks) * 6
    print(f"{len(tasks)} tiles of {n} px, {layers} scene-band layers (best of 3 per tile, summed):")
    for k, v in totals.items():
        print(f"  {k:<40} {v:7.3f} s")
    print("same pixels as today: " + ", ".join(f"{k}: {v}" for k, v in agree.items()))
    for ds in datasets.values():
        ds.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
