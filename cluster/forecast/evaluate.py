"""Backtests (leave-one-year-out as CY-Bench reports it, and walk-forward) and their metrics.

* LOYO: for each year Y, every model (baselines included) is fit on all other years and
  predicts Y. Walk-forward: fit on the years before Y only (at least ``min_train_years``).
* nRMSE of a held-out year: ``100 * RMSE / mean observed yield`` over that year's regions;
  the reported figure is the median over the held-out years (CY-Bench's protocol).
* MAPE, R² and the 80 % interval coverage are pooled over all held-out region-years.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from cluster.forecast.models import BASELINES, bounded, select_and_fit

__all__ = ["iter_folds", "backtest", "nrmse_by_year", "compute_metrics", "add_skill", "interval_score", "SCHEMES"]

SCHEMES = ("loyo", "walk_forward")
SELECTED = "selected"
"""Model name of the candidate picked by inner validation in each fold."""


def iter_folds(years: Iterable[Any], scheme: str, min_train_years: int) -> Iterator[tuple[int, list[int]]]:
    """Yield ``(test_year, train_years)``.

    >>> [(y, tr) for y, tr in iter_folds([2001, 2002, 2003], "loyo", 1)][0]
    (2001, [2002, 2003])
    >>> list(iter_folds([2001, 2002, 2003], "walk_forward", 2))
    [(2003, [2001, 2002])]
    """
    years = sorted({int(y) for y in years})
    for y in years:
        if scheme == "loyo":
            train = [t for t in years if t != y]
        elif scheme == "walk_forward":
            train = [t for t in years if t < y]
        else:
            raise ValueError(f"unknown scheme {scheme!r}; expected one of {SCHEMES!r}")
        if len(train) >= min_train_years:
            yield y, train


def backtest(data: pd.DataFrame, features: list[str], learners: Sequence[str], *, scheme: str, min_train_years: int,
             inner_folds: int, coverage: float, seed: int = 0, model: str = "auto",
             trend_horizon: int | None = None) -> pd.DataFrame:
    """Run one backtest scheme over the years of ``data`` (``region_id, year, y`` + features).

    Returns:
        Long table: ``region_id, year, scheme, model, y_true, y_pred, lo, hi, chosen`` with one
        row per held-out region-year and model (``selected`` is the inner-validation pick).
    """
    out = []
    for test_year, train_years in iter_folds(data["year"].unique(), scheme, min_train_years):
        train = data[data["year"].isin(train_years)]
        test = data[data["year"] == test_year]
        preds, sel = select_and_fit(train, test, features, learners, min_years=min_train_years,
                                    inner_folds=inner_folds, coverage=coverage, seed=seed, model=model,
                                    trend_horizon=trend_horizon)
        preds = dict(preds)
        preds[SELECTED] = preds[sel.chosen]
        for name, raw in preds.items():
            p, lo, hi = bounded(raw, sel.quantiles[sel.chosen if name == SELECTED else name])
            out.append(pd.DataFrame({
                "region_id": test["region_id"].to_numpy(), "year": test_year, "scheme": scheme, "model": name,
                "y_true": test["y"].to_numpy(float), "y_pred": p, "lo": lo, "hi": hi,
                "chosen": sel.chosen,
            }))
    if not out:
        return pd.DataFrame(columns=["region_id", "year", "scheme", "model", "y_true", "y_pred", "lo", "hi", "chosen"])
    res = pd.concat(out, ignore_index=True)
    # Score every model on the same region-years: those that every model could predict.
    ok = pd.Series(np.isfinite(res["y_pred"].to_numpy(float))).groupby([res["region_id"], res["year"]]).transform("all")
    return res[ok.to_numpy(bool)].reset_index(drop=True)


def nrmse_by_year(pred: pd.DataFrame) -> pd.Series:
    """Per held-out year: ``100 * RMSE / mean(y_true)`` over that year's regions.

    >>> p = pd.DataFrame({"year": [1, 1, 2, 2], "y_true": [2., 4, 5, 5], "y_pred": [3., 3, 5, 6]})
    >>> nrmse_by_year(p).round(4).tolist()
    [33.3333, 14.1421]
    """
    def one(g: pd.DataFrame) -> float:
        return float(100 * np.sqrt(np.mean((g["y_pred"] - g["y_true"]) ** 2)) / g["y_true"].mean())
    return pd.Series({y: one(g) for y, g in pred.groupby("year")}, dtype=float)


def interval_score(y: npt.ArrayLike, lo: npt.ArrayLike, hi: npt.ArrayLike, coverage: float) -> np.ndarray:
    """The interval score of central ``coverage`` intervals (Gneiting and Raftery 2007, eq. 43):
    the width plus ``2 / alpha`` times how far ``y`` falls outside; lower is better, and a wide
    interval pays for its width.

    >>> interval_score(np.array([5.0, 5.0, 9.0]), np.array([4.0, 4.0, 4.0]), np.array([6.0, 6.0, 8.0]), 0.5).tolist()
    [2.0, 2.0, 8.0]
    """
    y, lo, hi = (np.asarray(v, float) for v in (y, lo, hi))
    alpha = 1 - coverage
    out: np.ndarray = (hi - lo) + 2 / alpha * (np.maximum(lo - y, 0) + np.maximum(y - hi, 0))
    return out


def _pooled(pred: pd.DataFrame, coverage: float) -> dict[str, float]:
    y, p = pred["y_true"].to_numpy(float), pred["y_pred"].to_numpy(float)
    sst = float(np.sum((y - y.mean()) ** 2))
    cov = ((pred["lo"] <= pred["y_true"]) & (pred["y_true"] <= pred["hi"]))
    has_iv = (np.isfinite(pred["lo"]) & np.isfinite(pred["hi"])).to_numpy()
    score = interval_score(y[has_iv], pred["lo"].to_numpy(float)[has_iv], pred["hi"].to_numpy(float)[has_iv], coverage)
    return {
        "rmse": float(np.sqrt(np.mean((p - y) ** 2))),
        "mape": float(100 * np.mean(np.abs(p - y) / y)),
        "r2": float(1 - np.sum((p - y) ** 2) / sst) if sst > 0 else float("nan"),
        "interval_coverage_80": float(cov[has_iv].mean()) if has_iv.any() else float("nan"),
        "interval_score": float(score.mean()) if has_iv.any() else float("nan"),
        "interval_width": float(np.mean(pred["hi"].to_numpy(float)[has_iv] - pred["lo"].to_numpy(float)[has_iv]))
        if has_iv.any() else float("nan"),
    }


def compute_metrics(pred: pd.DataFrame, keys: tuple[str, ...] = ("country", "crop", "lead_time", "model"),
                    coverage: float = 0.8) -> list[dict[str, Any]]:
    """Metrics per ``keys``: ``nrmse_median_loyo``, ``nrmse_walk_forward`` (median over years too),
    ``rmse``, ``mape``, ``r2``, ``interval_coverage_80``, ``interval_score`` and ``interval_width``
    (walk-forward, the operational view), and every pooled metric per scheme with a ``_loyo`` /
    ``_walk_forward`` suffix. The selected model's records add its skill against each baseline
    (:func:`add_skill`)."""
    records = []
    for key, grp in pred.groupby(list(keys), sort=True):
        rec: dict[str, object] = dict(zip(keys, key, strict=True))
        for scheme in SCHEMES:
            g = grp[grp["scheme"] == scheme]
            suffix = "median_loyo" if scheme == "loyo" else "walk_forward"
            if g.empty:
                rec[f"nrmse_{suffix}"] = None
                rec[f"n_years_{scheme}"] = 0
                continue
            per_year = nrmse_by_year(g)
            rec[f"nrmse_{suffix}"] = float(per_year.median())
            rec[f"n_years_{scheme}"] = int(per_year.size)
            rec[f"n_predictions_{scheme}"] = int(len(g))
            pooled = _pooled(g, coverage)
            for name, v in pooled.items():
                rec[f"{name}_{scheme}"] = v
            rec[f"nrmse_by_year_{scheme}"] = {int(k): round(float(v), 3) for k, v in per_year.items()}
            if scheme == "walk_forward" or "mape" not in rec:
                rec.update(pooled)
        if "chosen" in grp and rec.get("model") == SELECTED:
            chosen = grp.drop_duplicates(["scheme", "year"])["chosen"].value_counts()
            rec["chosen_counts"] = {str(k): int(v) for k, v in chosen.items()}
        records.append(rec)
    add_skill(records, [k for k in keys if k != "model"])
    return records


def add_skill(records: list[dict[str, Any]], group: list[str]) -> None:
    """Give each ``selected`` record, per scheme, its skill against every baseline of its group
    (``skill[baseline][scheme] = 1 - RMSE_ours / RMSE_baseline``: above 0 is better than the
    baseline, 1 is perfect) and the name of the best baseline (lowest median nRMSE)."""
    by_group: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for r in records:
        by_group.setdefault(tuple(r.get(k) for k in group), {})[r["model"]] = r
    for models in by_group.values():
        ours = models.get(SELECTED)
        if ours is None:
            continue
        skill: dict[str, dict[str, float]] = {}
        for scheme, nrmse in (("loyo", "nrmse_median_loyo"), ("walk_forward", "nrmse_walk_forward")):
            if not ours.get(f"rmse_{scheme}"):
                continue
            have = [b for b in BASELINES if b in models and models[b].get(f"rmse_{scheme}")]
            for b in have:
                skill.setdefault(b, {})[scheme] = 1 - ours[f"rmse_{scheme}"] / models[b][f"rmse_{scheme}"]
            scored = [b for b in have if models[b].get(nrmse) is not None]
            if scored:
                ours[f"best_baseline_{scheme}"] = min(scored, key=lambda b: models[b][nrmse])
        ours["skill"] = skill
