"""Training with validation that does not flatter.

Samples are split into folds by *group* (a field, a spatial block, a Sentinel-2 tile or an
H3 cell: whatever the config names), never by pixel or date, so no field and no
neighbourhood is on both sides of a split (pixels of one field are near-copies; fields of
one block share soil and weather). Folds are drawn with ``StratifiedGroupKFold`` once per
seed: the spread over folds *and* seeds is reported, not one lucky number. Every fold also
trains the baseline, a random forest on the raw per-period band values (the EUCROPMAP
method), so every report shows whether the features and the booster beat it.

The final model is then trained on all samples; its reported accuracy is the
cross-validated one (out-of-fold predictions).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from pydantic import Field

from cluster.classify.accuracy import accuracy_report, confusion_matrix
from cluster.classify.features import FeatureConfig, FeatureMatrix
from cluster.classify.model import CropModel, LightGBMParams, fit_booster, fit_random_forest
from cluster.config import StrictModel
from cluster.errors import DataError

__all__ = ["ValidationConfig", "CrossValidation", "cross_validate", "train_model", "render_report"]


class ValidationConfig(StrictModel):
    """How the model is validated."""

    folds: int = Field(default=5, ge=2)
    """Grouped folds; fewer groups than folds gives one fold per group (leave one group out)."""
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    """One fold assignment and one booster/forest seed per entry: the report gives the spread."""
    group: str | None = None
    """The sample column that groups samples which must stay on one side of a split (a field
    id, ``tile``, ``h3_l3_cell``, or ``block`` for spatial blocks of ``block_m``). Default:
    ``field_id`` where samples have it (pixels sampled from the cube at the labels: every
    pixel of a field on one side), else ``sample_id`` (a table: one sample per field)."""
    block_m: float = Field(default=2000.0, gt=0)
    """Side of the spatial blocks when ``group: block`` (grid units, metres on the default grid)."""
    baseline: bool = True
    """Also cross-validate the random-forest baseline on the same folds."""


@dataclass
class CrossValidation:
    """Out-of-fold predictions of the booster and the baseline, per seed."""

    classes: tuple[str, ...]
    y: np.ndarray
    groups: np.ndarray
    n_folds: int
    seeds: tuple[int, ...]
    oof: dict[str, list[np.ndarray]]
    """model name (``booster``, ``baseline``) -> per seed the (N,) out-of-fold predictions."""
    fold_of: list[np.ndarray]
    """Per seed, the fold of each sample."""
    notes: list[str] = field(default_factory=list)
    """What limits the validation (classes with few groups), for the report."""

    def _metrics(self, model: str) -> dict[str, Any]:
        labels = list(range(len(self.classes)))
        per_seed = [accuracy_report(self.y, p, labels, list(self.classes)) for p in self.oof[model]]
        per_fold = []
        for s, pred in enumerate(self.oof[model]):
            for k in range(self.n_folds):
                m = self.fold_of[s] == k
                if m.any():
                    per_fold.append(accuracy_report(self.y[m], pred[m], labels, list(self.classes)))
        first = per_seed[0]
        out: dict[str, Any] = {}
        for key in ("overall_accuracy", "balanced_accuracy", "kappa"):
            vals = [r[key] for r in per_seed if r[key] is not None]
            out[key] = float(np.mean(vals)) if vals else None
        out["per_class"] = {}
        for name in self.classes:
            row: dict[str, Any] = {"support": first["per_class"][name]["support"]}
            for key in ("precision", "recall", "f1"):
                vals = [r["per_class"][name][key] for r in per_seed if r["per_class"][name][key] is not None]
                row[key] = float(np.mean(vals)) if vals else None
            out["per_class"][name] = row
        out["confusion"] = first["confusion"]
        out["spread"] = {
            key: _spread([r[key] for r in per_fold if r[key] is not None],
                         [r[key] for r in per_seed if r[key] is not None])
            for key in ("overall_accuracy", "balanced_accuracy", "kappa")
        }
        out["spread"]["f1"] = {
            name: _spread([r["per_class"][name]["f1"] for r in per_fold if r["per_class"][name]["f1"] is not None],
                          [r["per_class"][name]["f1"] for r in per_seed if r["per_class"][name]["f1"] is not None])
            for name in self.classes
        }
        return out

    def report(self, split_by: str) -> dict[str, Any]:
        """The validation report (``report.json``): the booster's metrics, their spread, the
        baseline's metrics on the same folds."""
        rep = self._metrics("booster")
        rep.update({
            "n_samples": int(len(self.y)),
            "n_groups": int(len(np.unique(self.groups))),
            "folds": self.n_folds,
            "split": {"by": split_by, "method": "StratifiedGroupKFold, one fold assignment per seed",
                      "seeds": list(self.seeds),
                      "note": "metrics are of out-of-fold predictions pooled per seed, averaged over "
                              "seeds; spread is over folds x seeds (per fold) and over seeds (pooled)"},
        })
        if self.notes:
            rep["notes"] = list(self.notes)
        if "baseline" in self.oof:
            base = self._metrics("baseline")
            rep["baseline"] = {"method": "random forest, 500 trees, on raw per-period band values "
                                         "(EUCROPMAP)", **base}
            if rep["balanced_accuracy"] is not None and base["balanced_accuracy"] is not None:
                rep["gain_over_baseline"] = {
                    "balanced_accuracy_points": 100 * (rep["balanced_accuracy"] - base["balanced_accuracy"])}
        return rep

    def confusion_counts(self, fields: np.ndarray | None = None) -> np.ndarray:
        """Rows = map (predicted), columns = reference: the first seed's out-of-fold counts
        (for :func:`~cluster.classify.accuracy.error_adjusted_area`).

        With ``fields`` (the field of each sample), each field counts once, with the class
        most of its pixels were predicted as: pixels of one field are not independent
        samples, and counting them one by one would shrink the area's confidence interval
        by the square root of the pixels per field.
        """
        pred = self.oof["booster"][0]
        if fields is None:
            return confusion_matrix(self.y, pred, list(range(len(self.classes))))
        frame = pd.DataFrame({"field": fields, "y": self.y, "pred": pred})
        per = frame.groupby("field").agg(y=("y", "first"), pred=("pred", lambda p: np.bincount(p).argmax()))
        return confusion_matrix(per["y"].to_numpy(), per["pred"].to_numpy(), list(range(len(self.classes))))


def _spread(per_fold: Sequence[float], per_seed: Sequence[float]) -> dict[str, Any]:
    f = np.asarray(per_fold, dtype=float)
    s = np.asarray(per_seed, dtype=float)
    return {"fold_mean": float(f.mean()) if f.size else None, "fold_std": float(f.std(ddof=1)) if f.size > 1 else None,
            "fold_min": float(f.min()) if f.size else None, "fold_max": float(f.max()) if f.size else None,
            "seed_std": float(s.std(ddof=1)) if s.size > 1 else None}


def raw_band_columns(names: Sequence[str], bands: Sequence[str]) -> np.ndarray:
    """Indices of the per-period band columns (the baseline's inputs).

    >>> raw_band_columns(["red_p00", "red_p01", "ndvi_p00", "ndvi_peak_value"], ["red"]).tolist()
    [0, 1]
    """
    prefixes = tuple(f"{b}_p" for b in bands)
    return np.array([i for i, n in enumerate(names) if n.startswith(prefixes)], dtype=np.intp)


def cross_validate(fm: FeatureMatrix, y: np.ndarray, groups: np.ndarray, classes: Sequence[str],
                   features: FeatureConfig, params: LightGBMParams, validation: ValidationConfig,
                   threads: int = 0) -> CrossValidation:
    """Grouped, stratified k-fold of the booster (and the baseline) over several seeds."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise DataError(f"validation needs samples from at least 2 groups ({validation.group!r}); all "
                        f"{len(y)} samples are in one. Use a finer group, or more samples")
    k = min(validation.folds, n_groups)
    notes = _scarce_classes(y, groups, classes, k, validation.group)
    raw = raw_band_columns(fm.names, features.bands)
    oof: dict[str, list[np.ndarray]] = {"booster": []}
    if validation.baseline:
        oof["baseline"] = []
    folds_of = []
    for seed in validation.seeds:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        fold_of = np.full(len(y), -1, dtype=np.int64)
        pred = {m: np.full(len(y), -1, dtype=np.int64) for m in oof}
        for f, (tr, te) in enumerate(splitter.split(fm.values, y, groups)):
            fold_of[te] = f
            booster = fit_booster(fm.values[tr], y[tr], len(classes), params, seed=seed, threads=threads)
            pred["booster"][te] = np.argmax(booster.predict(fm.values[te], num_threads=threads)
                                            .reshape(len(te), len(classes)), axis=1)
            if "baseline" in oof:
                rf = fit_random_forest(np.nan_to_num(fm.values[tr][:, raw], nan=-1.0), y[tr], seed=seed,
                                       threads=threads or -1)
                pred["baseline"][te] = rf.classes_[rf.predict_proba(
                    np.nan_to_num(fm.values[te][:, raw], nan=-1.0)).argmax(axis=1)]
        for m in oof:
            oof[m].append(pred[m])
        folds_of.append(fold_of)
    return CrossValidation(tuple(classes), y, groups, k, tuple(validation.seeds), oof, folds_of, notes)


def _scarce_classes(y: np.ndarray, groups: np.ndarray, classes: Sequence[str], k: int,
                    group_by: str | None) -> list[str]:
    """Folds split groups, so a class needs groups (fields, tiles), not just samples: with
    fewer than 2 it cannot be trained on and validated (an error); with fewer than ``k`` some
    folds never test it (a note for the report)."""
    per_class = pd.DataFrame({"y": y, "g": groups}).groupby("y")["g"].nunique()
    n = {classes[int(c)]: int(v) for c, v in per_class.items()}
    scarce = {c: v for c, v in n.items() if v < 2}
    if scarce:
        raise DataError(f"class(es) {sorted(scarce)!r} have fewer than 2 validation groups (by {group_by!r}: "
                        f"{scarce}): the folds split groups, so such a class cannot be both trained on and "
                        "validated. Add labelled fields of it, merge it into another class, drop it, or "
                        "group by something finer (validation.group)")
    few = {c: v for c, v in n.items() if v < k}
    if not few:
        return []
    return [f"class(es) {sorted(few)!r} have fewer validation groups (by {group_by!r}: {few}) than the {k} "
            "folds: each is tested in that many folds only, and its scores are the least certain"]


def train_model(fm: FeatureMatrix, y: np.ndarray, groups: np.ndarray, classes: Sequence[str],
                features: FeatureConfig, params: LightGBMParams, validation: ValidationConfig,
                meta: dict[str, Any], threads: int = 0,
                fields: np.ndarray | None = None) -> tuple[CropModel, CrossValidation]:
    """Cross-validate, then train the final model on every sample (``fields``: the field
    of each sample, for the confusion counts the area estimates use)."""
    cv = cross_validate(fm, y, groups, classes, features, params, validation, threads)
    booster = fit_booster(fm.values, y, len(classes), params, seed=validation.seeds[0], threads=threads,
                          feature_names=[n.replace(" ", "_") for n in fm.names])
    rep = cv.report(str(validation.group))
    model = CropModel(booster, tuple(classes), features, fm.names,
                      {**meta, "validation": {k: rep[k] for k in ("overall_accuracy", "balanced_accuracy",
                                                                   "kappa", "n_samples", "n_groups", "folds")},
                       "confusion_counts": cv.confusion_counts(fields).tolist(),
                       "confusion_unit": "field" if fields is not None else "sample",
                       "confusion_orientation": "rows = map (predicted) class, columns = reference class"})
    return model, cv


def render_report(rep: dict[str, Any], title: str) -> tuple[str, bytes]:
    """``report.md`` text and ``confusion.png`` bytes for a validation report."""
    lines = [f"# {title}", "",
             f"{rep['n_samples']} samples in {rep['n_groups']} groups, {rep['folds']} folds grouped by "
             f"`{rep['split']['by']}`, seeds {rep['split']['seeds']}.", "",
             "| metric | model | fold spread (min-max) | baseline (RF, raw bands) |", "| --- | --- | --- | --- |"]
    base = rep.get("baseline", {})
    for key in ("overall_accuracy", "balanced_accuracy", "kappa"):
        sp = rep["spread"][key]
        lines.append(f"| {key} | {_fmt(rep[key])} | {_fmt(sp['fold_min'])}-{_fmt(sp['fold_max'])} | "
                     f"{_fmt(base.get(key))} |")
    lines += ["", "| class | support | precision | recall | F1 | baseline F1 |",
              "| --- | --- | --- | --- | --- | --- |"]
    for name, row in rep["per_class"].items():
        bf = base.get("per_class", {}).get(name, {}).get("f1")
        lines.append(f"| {name} | {row['support']} | {_fmt(row['precision'])} | {_fmt(row['recall'])} | "
                     f"{_fmt(row['f1'])} | {_fmt(bf)} |")
    lines += ["", "Confusion matrix (first seed, out-of-fold): rows = predicted, columns = reference; "
              "see confusion.png.", ""]
    return "\n".join(lines), _confusion_png(rep["confusion"], title)


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def _confusion_png(conf: dict[str, Any], title: str) -> bytes:
    from cluster.plots import figure_ax

    m = np.asarray(conf["matrix"], dtype=float)
    names = conf["labels"]
    col = m.sum(axis=0, keepdims=True)
    share = np.divide(m, col, out=np.zeros_like(m), where=col > 0)  # per reference class
    ax = figure_ax((1.0 + 0.6 * len(names), 0.8 + 0.6 * len(names)), dpi=110)
    from matplotlib.figure import Figure

    fig = ax.figure
    assert isinstance(fig, Figure), "a SubFigure cannot be saved on its own"
    ax.imshow(share, cmap="Greens", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            if m[i, j]:
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center",
                        color="white" if share[i, j] > 0.6 else "black", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("reference")
    ax.set_ylabel("predicted (map)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def report_files(rep: dict[str, Any], title: str) -> dict[str, bytes]:
    md, png = render_report(rep, title)
    return {"report.json": json.dumps(rep, indent=2).encode(), "report.md": md.encode(), "confusion.png": png}
