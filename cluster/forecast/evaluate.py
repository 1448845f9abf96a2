"""Backtests (leave-one-year-out as CY-Bench reports it, and walk-forward) and their metrics.

* LOYO: for each year Y, every model (baselines included) is fit on all other years and
  predicts Y. Walk-forward: fit on the years before Y only (at least ``min_train_years``).
* nRMSE of a held-out year: ``100 * RMSE / mean observed yield`` over that year's regions;
  the reported figure is the median over the held-out years (CY-Bench's protocol).
* MAPE, R² and the 80 % interval coverage are pooled over all held-out region-years.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd

from cluster.forecast.models import select_and_fit

__all__ = ["iter_folds", "backtest", "nrmse_by_year", "compute_metrics", "SCHEMES"]

SCHEMES = ("loyo", "walk_forward")
SELECTED = "selected"
"""Model name of the candidate picked by inner validation in each fold."""


def iter_folds(years, scheme: str, min_train_years: int) -> Iterator[tuple[int, list[int]]]:
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


def backtest(data: pd.DataFrame, features: list[str], learners, *, scheme: str, min_train_years: int,
             inner_folds: int, coverage: float, seed: int = 0, model: str = "auto") -> pd.DataFrame:
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
                                    inner_folds=inner_folds, coverage=coverage, seed=seed, model=model)
        preds = dict(preds)
        preds[SELECTED] = preds[sel.chosen]
        for name, p in preds.items():
            q = sel.quantiles[sel.chosen if name == SELECTED else name]
            out.append(pd.DataFrame({
                "region_id": test["region_id"].to_numpy(), "year": test_year, "scheme": scheme, "model": name,
                "y_true": test["y"].to_numpy(float), "y_pred": p, "lo": p * (1 + q[0]), "hi": p * (1 + q[1]),
                "chosen": sel.chosen,
            }))
    if not out:
        return pd.DataFrame(columns=["region_id", "year", "scheme", "model", "y_true", "y_pred", "lo", "hi", "chosen"])
    res = pd.concat(out, ignore_index=True)
    # Score every model on the same region-years: those that every model could predict.
    ok = res.groupby(["region_id", "year"])["y_pred"].transform(lambda s: bool(np.isfinite(s).all()))
    return res[ok.astype(bool)].reset_index(drop=True)


def nrmse_by_year(pred: pd.DataFrame) -> pd.Series:
    """Per held-out year: ``100 * RMSE / mean(y_true)`` over that year's regions.

    >>> p = pd.DataFrame({"year": [1, 1, 2, 2], "y_true": [2., 4, 5, 5], "y_pred": [3., 3, 5, 6]})
    >>> nrmse_by_year(p).round(4).tolist()
    [33.3333, 14.1421]
    """
    def one(g: pd.DataFrame) -> float:
        return float(100 * np.sqrt(np.mean((g["y_pred"] - g["y_true"]) ** 2)) / g["y_true"].mean())
    return pd.Series({y: one(g) for y, g in pred.groupby("year")}, dtype=float)


def _pooled(pred: pd.DataFrame) -> dict[str, float]:
    y, p = pred["y_true"].to_numpy(float), pred["y_pred"].to_numpy(float)
    sst = float(np.sum((y - y.mean()) ** 2))
    cov = ((pred["lo"] <= pred["y_true"]) & (pred["y_true"] <= pred["hi"]))
    has_iv = np.isfinite(pred["lo"]) & np.isfinite(pred["hi"])
    return {
        "mape": float(100 * np.mean(np.abs(p - y) / y)),
        "r2": float(1 - np.sum((p - y) ** 2) / sst) if sst > 0 else float("nan"),
        "interval_coverage_80": float(cov[has_iv].mean()) if has_iv.any() else float("nan"),
    }


def compute_metrics(pred: pd.DataFrame, keys: tuple[str, ...] = ("country", "crop", "lead_time", "model")) -> list[dict]:
    """Metrics per ``keys``: ``nrmse_median_loyo``, ``nrmse_walk_forward`` (median over years too),
    ``mape``, ``r2``, ``interval_coverage_80`` (walk-forward, the operational view), and every
    pooled metric per scheme with a ``_loyo`` / ``_walk_forward`` suffix."""
    records = []
    for key, grp in pred.groupby(list(keys), sort=True):
        rec: dict[str, object] = dict(zip(keys, key))
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
            for name, v in _pooled(g).items():
                rec[f"{name}_{scheme}"] = v
            rec[f"nrmse_by_year_{scheme}"] = {int(k): round(float(v), 3) for k, v in per_year.items()}
            if scheme == "walk_forward" or "mape" not in rec:
                rec.update(_pooled(g))
        if "chosen" in grp and rec.get("model") == SELECTED:
            rec["chosen_counts"] = {str(k): int(v) for k, v in grp.drop_duplicates(["scheme", "year"])["chosen"].value_counts().items()}
        records.append(rec)
    return records
