"""Crop-type prediction speed: our tile worker vs LightGBM's plain ``predict`` on the same rows.

    .venv/bin/python -m benchmarks.classify [--quick] [--json PATH] [--model DIR]

Without ``--model`` it makes the small demo season, ingests it and trains the demo's model
(as ``harvest demo`` does; about a minute). Then, on one thread and on every core:

* ``harvest-cluster``: :class:`cluster.classify.predict.PredictWorker` on whole tiles: read
  and decode the bands, season features, predict, class and probability (one season,
  the write skipped: it is Zarr's cost, measured by the ingest benchmark);
* ``lightgbm-predict``: ``Booster.predict`` alone on the same pixels' feature matrix, the
  lower bound for any pipeline that uses this model.

It prints pixels/s per core for each, and projects one season of Kazakhstan's cropland
(about 2.5e9 pixels at 10 m: 25 Mha) in core-hours.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from benchmarks._report import OURS, Record, emit, parse_args

KAZAKHSTAN_CROPLAND_PX = 2.5e9
"""About 25 Mha of cropland (FAOSTAT: ~23-30 Mha of arable land) at 10 m pixels."""


def demo_model(workdir: Path) -> tuple[str, str]:
    """Make the small demo season, its cube (bands) and its crop model; return (cube, model)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from cluster.demo import make_demo_season
    from cluster.indices import IndicesConfig
    from cluster.ingest import IngestConfig
    from cluster.classify.run import run_train
    from cluster.pipeline import run_indices, run_ingest
    from jobs.classify import ClassifyConfig
    from jobs.demo import SIZES, demo_configs

    season = make_demo_season(workdir / "season", SIZES["small"])
    cfgs = demo_configs(season, workdir)
    assert run_ingest(IngestConfig.model_validate(cfgs["ingest"])).ok
    assert run_indices(IndicesConfig.model_validate(cfgs["indices"])).ok
    classify = dict(cfgs["classify"])
    classify["train"] = {**classify["train"], "validation": {"folds": 2, "seeds": [0], "group": "block",
                                                             "baseline": False}}
    run_train(ClassifyConfig.model_validate(classify).section("train"))
    return cfgs["ingest"]["store"], classify["model"]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv,
                      lambda p: (p.add_argument("--model", default=None),
                                 p.add_argument("--store", default=None)))
    from cluster.classify.features import season_features
    from cluster.classify.model import CropModel
    from cluster.classify.predict import PredictConfig, PredictWorker, plan_predict
    from cluster import store as cstore

    with tempfile.TemporaryDirectory() as tmp:
        store, model_dir = (args.store, args.model) if args.model else demo_model(Path(tmp))
        model = CropModel.load(model_dir)
        plan = plan_predict(PredictConfig(store=store, model=model_dir), model)
        plan = type(plan)(**{**plan.__dict__, "years": plan.years[-1:], "season_steps": plan.season_steps[-1:]})
        tiles = plan.tiles[: 2 if args.quick else len(plan.tiles)]
        group = cstore.open_group(store, mode="r")
        # the rows LightGBM alone is timed on: the same pixels' features, computed once
        rows = []
        for task in tiles:
            vals = {b: cstore.read_tile_decoded(group, a, plan.extent, task.tile)[list(plan.season_steps[0])]
                    for b, a in plan.bands.items()}
            t, ny, nx = next(iter(vals.values())).shape
            flat = {b: v.reshape(t, ny * nx) for b, v in vals.items()}
            seen = np.zeros(ny * nx, bool)
            for v in flat.values():
                seen |= (~np.isnan(v)).any(axis=0)
            dates = np.asarray(plan.dates, "datetime64[ns]")[list(plan.season_steps[0])]
            rows.append(season_features({b: v[:, seen] for b, v in flat.items()}, dates, model.features,
                                        plan.years[0]).values)
        X = np.concatenate(rows)
        n_px = X.shape[0]
        records = []
        cores = os.cpu_count() or 1
        for threads in sorted({1, cores}):
            os.environ["OMP_NUM_THREADS"] = str(threads)
            worker = PredictWorker(plan)
            worker.threads = threads
            import cluster.store as cs
            real_write = cs.write_tile
            cs.write_tile = lambda *a, **k: cs.TileWrite(0, 0)  # time the classifier, not Zarr
            try:
                t0 = time.perf_counter()
                for task in tiles:
                    worker.process(task)
                ours = time.perf_counter() - t0
            finally:
                cs.write_tile = real_write
            t0 = time.perf_counter()
            model.booster.predict(X, num_threads=threads)
            plain = time.perf_counter() - t0
            for tool, secs in ((OURS, ours), ("lightgbm-predict", plain)):
                per_core = n_px / secs / threads
                records.append(Record(tool, f"{threads} thread(s)", secs, n_px / secs / 1e6, extra={
                    "pixels": n_px, "features": X.shape[1], "trees": model.booster.num_trees(),
                    "px_per_s_per_core": per_core,
                    "kazakhstan_core_hours": KAZAKHSTAN_CROPLAND_PX / per_core / 3600}))
        emit(records, args.json, {"model": model_dir, "classes": list(model.classes)})
        for r in records:
            print(f"{r.tool:<18} {r.case:<12} {r.extra['px_per_s_per_core']:>10,.0f} px/s per core -> "
                  f"Kazakhstan's cropland (2.5e9 px, one season): {r.extra['kazakhstan_core_hours']:,.0f} core-hours")
        print(f"({n_px:,} pixels of {len(tiles)} tiles, {X.shape[1]} features, {model.booster.num_trees()} trees; "
              "ours includes reading, decoding and the season features; the Zarr write is not timed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
