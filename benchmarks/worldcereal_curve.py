"""How WorldCereal France's crop-type scores grow with the number of training fields (issue #12).

The goals (maize F1 >= 0.85, the booster >= the random forest + 5 balanced-accuracy points,
both under tile-grouped folds) are measured on 267 crop fields in 4 Sentinel-2 tiles. This
asks whether more fields of the same tiles would move them: for each seed and each tile fold
(leave one tile out, as ``examples/classify-worldcereal.yaml`` validates), the training
fields are cut to a fraction, class by class (every class keeps at least one field), and
the booster and the baseline forest are fitted on the same cut and scored on the held-out
tile. Out-of-fold predictions are pooled per seed; the table gives the mean over seeds and
their range. A score still rising at the full set says the sample, not the method, limits it.

Run: ``.venv/bin/python -m benchmarks.worldcereal_curve [--fractions 0.25,0.5,0.75,1]
[--seeds 0,1,2] [--json PATH]`` from the repository root (it reads ``../shared/data``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from cluster.classify.accuracy import accuracy_report
from cluster.classify.model import fit_booster, fit_random_forest
from cluster.classify.run import TrainConfig, training_set
from cluster.classify.train import raw_band_columns
from jobs.classify import ClassifyConfig

CONFIG = Path("examples/classify-worldcereal.yaml")


def _cut(train: np.ndarray, y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """``fraction`` of the training samples of each class (at least one), at random."""
    keep = []
    for c in np.unique(y[train]):
        of_c = train[y[train] == c]
        keep.append(rng.choice(of_c, max(1, round(fraction * len(of_c))), replace=False))
    return np.sort(np.concatenate(keep))


def curve(config: TrainConfig, fractions: Sequence[float], seeds: Sequence[int]) -> list[dict[str, Any]]:
    from sklearn.model_selection import StratifiedGroupKFold

    data = training_set(config)
    X, y, groups, classes = data.features.values, data.y, data.groups, data.classes
    raw = raw_band_columns(data.features.names, config.features.bands)
    labels = list(range(len(classes)))
    k = min(config.validation.folds, len(np.unique(groups)))
    rows = []
    for fraction in fractions:
        per_seed: dict[str, list[dict[str, Any]]] = {"booster": [], "forest": []}
        trained = []
        for seed in seeds:
            pred = {m: np.full(len(y), -1) for m in per_seed}
            splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
            for fold, (tr, te) in enumerate(splitter.split(X, y, groups)):
                cut = _cut(tr, y, fraction, np.random.default_rng([seed, fold]))
                trained.append(len(cut))
                booster = fit_booster(X[cut], y[cut], len(classes), config.lightgbm, seed=seed)
                pred["booster"][te] = booster.predict(X[te]).reshape(len(te), -1).argmax(axis=1)
                rf = fit_random_forest(np.nan_to_num(X[cut][:, raw], nan=-1.0), y[cut], seed=seed)
                pred["forest"][te] = rf.classes_[rf.predict_proba(np.nan_to_num(X[te][:, raw], nan=-1.0)).argmax(axis=1)]
            for m in per_seed:
                per_seed[m].append(accuracy_report(y, pred[m], labels, list(classes)))
        row: dict[str, Any] = {"fraction": fraction, "fields_trained_mean": float(np.mean(trained))}
        for m, reports in per_seed.items():
            ba = [r["balanced_accuracy"] for r in reports]
            row[f"{m}_ba"], row[f"{m}_ba_range"] = float(np.mean(ba)), (min(ba), max(ba))
            for name in ("maize", "wheat"):
                f1 = [r["per_class"][name]["f1"] or 0.0 for r in reports]
                row[f"{m}_{name}_f1"], row[f"{m}_{name}_f1_range"] = float(np.mean(f1)), (min(f1), max(f1))
        rows.append(row)
        print(_line(row), flush=True)
    return rows


def _line(r: dict[str, Any]) -> str:
    def cell(key: str) -> str:
        lo, hi = r[f"{key}_range"]
        return f"{r[key]:.3f} ({lo:.2f}-{hi:.2f})"

    return (f"| {r['fraction']:.2f} | {r['fields_trained_mean']:.0f} | {cell('booster_ba')} | {cell('forest_ba')} | "
            f"{100 * (r['booster_ba'] - r['forest_ba']):+.1f} | {cell('booster_maize_f1')} | "
            f"{cell('forest_maize_f1')} | {cell('booster_wheat_f1')} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", default="0.25,0.5,0.75,1")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args(argv)
    config: TrainConfig = ClassifyConfig.model_validate(yaml.safe_load(CONFIG.read_text())).section("train")
    t0 = time.perf_counter()
    print("| fraction | fields trained per fold | booster BA | forest BA | booster - forest (points) | "
          "booster maize F1 | forest maize F1 | booster wheat F1 |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = curve(config, [float(f) for f in args.fractions.split(",")], [int(s) for s in args.seeds.split(",")])
    print(f"mean over seeds (range over seeds); tile folds; {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
