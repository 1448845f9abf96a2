"""Yield models: per-region average, per-region linear trend, and learners on trend-adjusted yields.

Models of the yield history alone (:data:`HISTORY_MODELS`): the two baselines, a CY-Bench-style
local trend, and a robust per-region average (:func:`huber_level`) that estimates an ordinary
year's yield without being pulled down by the few shock years. Every model is fit on training
rows only and predicts other rows; :func:`fit_predict` fits all of them on the same rows. The
learners (ridge, gradient boosting, and their mean) predict the residual from the region's
trend in units of the region's mean yield, ``r = (yield - trend) / region_mean``, from index
features centred on the region's own mean over the training years (so persistent differences
between regions do not pose as anomalies) and from the last years' trend residuals.
:func:`select_and_fit` picks one candidate by inner, year-grouped validation on the training
years and takes interval quantiles from the inner out-of-sample errors (split-conformal on
relative errors).
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

__all__ = ["BASELINES", "HISTORY_MODELS", "LEVEL_MODELS", "MODEL_NAMES", "fit_trend", "predict_trend", "huber_level",
           "recent_mean", "trend_distance", "fit_predict", "select_and_fit", "bounded", "Selection"]

BASELINES = ("average", "trend", "mean-5y", "last-year")
"""Baselines computed in the same run on the same folds: the region's mean over every training
year, its linear trend, the mean of its 5 latest training years before the predicted year, and
its latest training year's yield (the persistence forecast)."""
HISTORY_MODELS = (*BASELINES, "local-trend", "huber-average")
LEVEL_MODELS = ("average", "mean-5y", "last-year", "huber-average")
"""History models without a slope: what a region falls back to beyond the trend horizon."""
"""Models of the yield history alone, always fitted and always candidates."""
MODEL_NAMES = (*HISTORY_MODELS, *(f"{m}{s}" for m in ("ridge", "hgb", "ridge+hgb") for s in ("", "@avg")))
"""Every name :func:`fit_predict` can return (learners when asked for)."""
YIELD_FEATURES = ("trend_rel", "lag1_resid", "lag3_resid")


def fit_trend(train: pd.DataFrame, min_years: int) -> pd.DataFrame:
    """Per-region OLS ``yield ~ year`` on ``train`` (``region_id, year, y``).

    Regions with fewer than ``min_years`` years get a flat trend at their mean.

    >>> t = fit_trend(pd.DataFrame({"region_id": ["A"] * 5, "year": range(2000, 2005), "y": [1., 2, 3, 4, 5]}), 5)
    >>> float(predict_trend(t, ["A"], [2006])[0])
    7.0
    """
    codes, regions = pd.factorize(train["region_id"], sort=True)
    m = len(regions)
    year, y = train["year"].to_numpy(float), train["y"].to_numpy(float)
    n = np.bincount(codes, minlength=m)
    mean_y, mean_t = np.bincount(codes, y, m) / n, np.bincount(codes, year, m) / n
    tc, yc = year - mean_t[codes], y - mean_y[codes]
    sxx = np.bincount(codes, tc * tc, m)
    slope = np.divide(np.bincount(codes, tc * yc, m), sxx, out=np.zeros(m), where=sxx > 0)
    return pd.DataFrame({"n": n, "mean_y": mean_y, "mean_t": mean_t, "slope": np.where(n >= min_years, slope, 0.0)},
                        index=pd.Index(regions, name="region_id"))


def predict_trend(params: pd.DataFrame, region_ids: npt.ArrayLike, years: npt.ArrayLike) -> np.ndarray:
    """Trend value of each (region, year); NaN for regions not in ``params``."""
    p = params.reindex(pd.Index(region_ids))
    t = np.asarray(years, float) - p["mean_t"].to_numpy()
    out: np.ndarray = p["mean_y"].to_numpy() + p["slope"].to_numpy() * t
    return out


class _History:
    """The training rows sorted by (region, year), and where each predicted row's region lies
    in them: every history model's window is a slice, and its sums come from running sums."""

    def __init__(self, train: pd.DataFrame, rows: pd.DataFrame) -> None:
        codes, regions = pd.factorize(train["region_id"], sort=True)
        order = np.lexsort((train["year"].to_numpy(), codes))
        self.years = train["year"].to_numpy(float)[order]
        self.y = train["y"].to_numpy(float)[order] if "y" in train else np.zeros(len(order))
        counts = np.bincount(codes, minlength=len(regions))
        ends = np.cumsum(counts)
        row_code = regions.get_indexer(rows["region_id"])
        self.known = row_code >= 0
        safe = np.where(self.known, row_code, 0)
        self.start = np.where(self.known, ends[safe] - counts[safe], 0)
        self.end = np.where(self.known, ends[safe], 0)
        self.at = np.asarray(rows["year"], float)
        keys = codes[order].astype(float) * 1e5 + self.years  # years < 1e5
        self.before = np.searchsorted(keys, safe * 1e5 + self.at, side="left")  # first index with year >= row's
        self.before = np.where(self.known, self.before, 0)

    def sums(self, values: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Sum of ``values`` (sorted like the history) over each row's slice ``[a, b)``."""
        c = np.concatenate([[0.0], np.cumsum(values)])
        out: np.ndarray = c[b] - c[a]
        return out


def predict_local_trend(train: pd.DataFrame, rows: pd.DataFrame, *, min_years: int = 5,
                        max_years: int = 10, alpha: float = 0.05) -> np.ndarray:
    """Per row (region, year): an OLS trend on that region's ``max_years`` training years
    nearest the year (ties: the earlier year), used only where its slope is significant
    (two-sided t-test at ``alpha``), else their mean. NaN with fewer than ``min_years`` years.

    This follows the trend baseline of the CY-Bench benchmark: a trend fitted over all years
    extrapolates noise where yields have plateaued (the Netherlands), and one over a short
    window near the year follows a trend that changed.

    >>> tr = pd.DataFrame({"region_id": ["A"] * 6, "year": range(2000, 2006), "y": [1., 2, 3, 4, 5, 6]})
    >>> float(predict_local_trend(tr, pd.DataFrame({"region_id": ["A"], "year": [2007]}))[0])
    8.0
    >>> flat = tr.assign(y=[5., 6, 5, 6, 5, 6])
    >>> float(predict_local_trend(flat, pd.DataFrame({"region_id": ["A"], "year": [2007]}))[0])
    5.5
    """
    return _local_trend(_History(train, rows), min_years, max_years, alpha)


def _local_trend(h: _History, min_years: int = 5, max_years: int = 10, alpha: float = 0.05) -> np.ndarray:
    from scipy import stats

    size = h.end - h.start
    m = np.minimum(size, max_years)
    # the m nearest years are a contiguous window of the sorted years: binary search for its
    # start, moving right only while the left end is strictly farther than the next year
    lo, hi = h.start.copy(), h.end - m
    years = np.concatenate([h.years, [np.inf]])
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        right = (h.at - years[mid] > years[np.minimum(mid + m, len(h.years))] - h.at) & (lo < hi)
        lo = np.where(right, mid + 1, lo)
        hi = np.where(right | (lo >= hi), hi, mid)
    a, b = lo, lo + m
    ref = float(np.mean(h.years)) if len(h.years) else 0.0
    t = h.years - ref  # centred: the running sums of t^2 keep their precision
    n = m.astype(float)
    ok = h.known & (size >= min_years)
    with np.errstate(invalid="ignore", divide="ignore"):
        mt, my = h.sums(t, a, b) / n, h.sums(h.y, a, b) / n
        stt = h.sums(t * t, a, b) - n * mt * mt
        sty = h.sums(t * h.y, a, b) - n * mt * my
        syy = h.sums(h.y * h.y, a, b) - n * my * my
        slope = sty / stt
        rss = np.maximum(syy - slope * sty, 0.0)
        se = np.sqrt(rss / (n - 2) / stt)
        t_stat = np.where(se > 1e-12 * np.abs(slope), np.abs(slope) / se, np.inf)
    significant = np.zeros(len(n), bool)
    significant[ok] = 2 * stats.t.sf(t_stat[ok], n[ok] - 2) < alpha
    mean = np.where(ok, my, np.nan)
    return np.where(significant, mean + slope * (h.at - ref - mt), mean)


def recent_mean(train: pd.DataFrame, rows: pd.DataFrame, k: int) -> np.ndarray:
    """Per row (region, year): the mean yield of the region's ``k`` latest training years
    before the row's year (the ``k`` nearest years when none is earlier, as in a LOYO fold
    holding out the first year). NaN for a region without training rows.

    >>> tr = pd.DataFrame({"region_id": ["A"] * 7, "year": range(2000, 2007), "y": [1., 2, 3, 4, 5, 6, 7]})
    >>> rows = pd.DataFrame({"region_id": ["A", "A", "B"], "year": [2004, 1990, 2004]})
    >>> recent_mean(tr, rows, 2).tolist(), recent_mean(tr, rows, 1).tolist()[:2]
    ([3.5, 1.5, nan], [4.0, 1.0])
    """
    return _recent_mean(_History(train, rows), k)


def _recent_mean(h: _History, k: int) -> np.ndarray:
    earlier = h.before > h.start
    a = np.where(earlier, np.maximum(h.before - k, h.start), h.start)
    b = np.where(earlier, h.before, np.minimum(h.start + k, h.end))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(h.known, h.sums(h.y, a, b) / (b - a), np.nan)


def trend_distance(train: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """Per row: how many years its year lies outside the span of its region's training years
    (0 inside it; NaN for a region without training rows) -- how far a trend extrapolates.

    >>> tr = pd.DataFrame({"region_id": ["A", "A"], "year": [2000, 2005]})
    >>> trend_distance(tr, pd.DataFrame({"region_id": ["A", "A", "A"], "year": [2003, 2011, 1998]})).tolist()
    [0.0, 6.0, 2.0]
    """
    return _distance(_History(train, rows))


def _distance(h: _History) -> np.ndarray:
    years = np.concatenate([h.years, [np.nan]])
    first = np.where(h.known, years[h.start], np.nan)
    last = np.where(h.known, years[np.maximum(h.end - 1, 0)], np.nan)
    out: np.ndarray = np.maximum(np.maximum(h.at - last, first - h.at), 0.0)
    return out


def bounded(pred: npt.ArrayLike, q: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A yield forecast and its interval made physically possible: the interval from relative
    error quantiles ``q`` around ``pred``, then every value at least 0 and ``lo <= pred <= hi``.

    >>> [v.tolist() for v in bounded(np.array([5.0, -1.0]), (-0.2, 0.1))]
    [[5.0, 0.0], [4.0, 0.0], [5.5, 0.0]]
    """
    p = np.maximum(np.asarray(pred, float), 0.0)
    lo, hi = p * (1 + q[0]), p * (1 + q[1])
    return p, np.clip(np.fmin(lo, hi), 0.0, p), np.fmax(np.fmax(lo, hi), p)


def huber_level(region_ids: npt.ArrayLike, y: npt.ArrayLike, *, k: float = 1.345, max_iter: int = 50) -> pd.Series:
    """Per region, the Huber M-estimate of the yield level: a mean that down-weights shock years.

    Yields are skewed to the left: a few years of drought, flood or disease fall far below the
    rest, and pull a plain mean below the yield of an ordinary year. Residuals beyond ``k``
    robust standard deviations (MAD x 1.4826, fixed at the start) get weight ``k / |r|``
    (iteratively reweighted means); ``k = 1.345`` keeps 95 % of the mean's efficiency on normal
    data. A region whose MAD is 0 (most years equal) gets its median.

    >>> round(float(huber_level(["A"] * 6, [8.0, 8.2, 8.1, 7.9, 8.0, 5.0])["A"]), 2)  # the mean is 7.53
    8.0
    >>> float(huber_level(["A"] * 2, [7.0, 8.0])["A"])
    7.5
    """
    codes, regions = pd.factorize(np.asarray(region_ids), sort=True)
    y = np.asarray(y, float)
    n = len(regions)
    med = _group_median(codes, y, n)
    mad = _group_median(codes, np.abs(y - med[codes]), n) * 1.4826
    level = med.copy()
    scaled = mad > 0
    for _ in range(max_iter):
        r = np.abs(y - level[codes]) / np.where(scaled, mad, 1.0)[codes]
        w = np.minimum(1.0, k / np.maximum(r, 1e-12))
        new = np.bincount(codes, w * y, n) / np.bincount(codes, w, n)
        new = np.where(scaled, new, med)
        converged = np.allclose(new, level, rtol=0, atol=1e-9)
        level = new
        if converged:
            break
    return pd.Series(level, index=regions)


def _group_median(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """The median of ``values`` per group code ``0..n-1`` (NaN for an empty group).

    >>> _group_median(np.array([0, 1, 0, 0, 1]), np.array([3.0, 1.0, 1.0, 2.0, 4.0]), 3).tolist()
    [2.0, 2.5, nan]
    """
    order = np.lexsort((values, codes))
    v = values[order]
    counts = np.bincount(codes, minlength=n)
    start = np.cumsum(counts) - counts
    top = max(len(v) - 1, 0)
    lo, hi = np.minimum(start + (counts - 1) // 2, top), np.minimum(start + counts // 2, top)
    v = np.concatenate([v, [np.nan]]) if len(v) == 0 else v
    return np.where(counts > 0, (v[lo] + v[hi]) / 2, np.nan)


def _yield_features(rows: pd.DataFrame, train: pd.DataFrame, params: pd.DataFrame) -> pd.DataFrame:
    """Trend (relative to the region mean) and the last years' trend residuals, from ``train`` only."""
    mean = rows["region_id"].map(params["mean_y"]).to_numpy()
    trend = predict_trend(params, rows["region_id"], rows["year"])
    hist = train[["region_id", "year", "y"]].copy()
    hist_trend = predict_trend(params, hist["region_id"], hist["year"])
    hist["resid"] = (hist["y"] - hist_trend) / hist["region_id"].map(params["mean_y"])
    lookup = hist.set_index(["region_id", "year"])["resid"]
    out = pd.DataFrame(index=rows.index)
    out["trend_rel"] = trend / mean
    lags = []
    for k in (1, 2, 3):
        key = pd.MultiIndex.from_arrays([rows["region_id"], rows["year"] - k])
        lags.append(lookup.reindex(key).to_numpy())
    out["lag1_resid"] = lags[0]
    with warnings.catch_warnings():  # all-NaN rows (no history) are expected; they become 0 below
        warnings.simplefilter("ignore", RuntimeWarning)
        out["lag3_resid"] = np.nanmean(np.vstack(lags), axis=0)
    return out.fillna(0.0)


def _learners(names: Sequence[str], seed: int) -> dict[str, Any]:
    models: dict[str, Any] = {}  # scikit-learn regressors
    if "ridge" in names:
        models["ridge"] = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(1, 4.5, 15)))
    if "hgb" in names:
        models["hgb"] = HistGradientBoostingRegressor(
            max_iter=100, learning_rate=0.05, max_leaf_nodes=8, min_samples_leaf=10,
            l2_regularization=1.0, early_stopping=False, random_state=seed)
    return models


def fit_predict(train: pd.DataFrame, test: pd.DataFrame, features: list[str], learners: Sequence[str], *,
                min_years: int, seed: int = 0, trend_horizon: int | None = None) -> dict[str, np.ndarray]:
    """Fit every model on ``train`` and predict ``test`` (both ``region_id, year, y`` + features).

    A row more than ``trend_horizon`` years outside its region's training years gets no
    trend: every model but the levels (:data:`LEVEL_MODELS`) predicts the ``mean-5y`` level
    there (a line fitted to 1923-1960 says nothing about 2020, and it can say a negative yield).

    Returns:
        model name -> predicted yields for the rows of ``test`` (NaN where a region has no
        training rows). Names: :data:`HISTORY_MODELS`, each learner and ``ridge+hgb`` on the
        trend, and the same on the region mean with an ``@avg`` suffix.
    """
    params = fit_trend(train, min_years)
    history = _History(train, test)
    preds: dict[str, np.ndarray] = {
        "average": test["region_id"].map(params["mean_y"]).to_numpy(float),
        "trend": predict_trend(params, test["region_id"], test["year"]),
        "mean-5y": _recent_mean(history, 5),
        "last-year": _recent_mean(history, 1),
        "local-trend": _local_trend(history),
        "huber-average": test["region_id"].map(huber_level(train["region_id"], train["y"])).to_numpy(float),
    }
    if learners:
        _learn(train, test, features, learners, params, preds, seed)
    if trend_horizon is not None:
        beyond = _distance(history) > trend_horizon
        if beyond.any():
            for name in preds:
                if name not in LEVEL_MODELS:  # learners too: their features include the trend
                    preds[name] = np.where(beyond, preds["mean-5y"], preds[name])
    return preds


def _learn(train: pd.DataFrame, test: pd.DataFrame, features: list[str], learners: Sequence[str], params: pd.DataFrame,
           preds: dict[str, np.ndarray], seed: int) -> None:
    """Add the learners' predictions (residuals on the trend and on the mean) to ``preds``."""
    mean_tr = train["region_id"].map(params["mean_y"]).to_numpy()
    target = (train["y"].to_numpy() - predict_trend(params, train["region_id"], train["year"])) / mean_tr
    centre = train.groupby("region_id")[features].mean()

    def design(rows: pd.DataFrame) -> np.ndarray:
        x = rows[features].to_numpy(float) - centre.reindex(rows["region_id"]).to_numpy(float)
        x = np.nan_to_num(x, nan=0.0)  # no observation / no training mean: the region's normal
        return np.hstack([x, _yield_features(rows, train, params).to_numpy(float)])

    x_tr, x_te = design(train), design(test)
    mean_te = test["region_id"].map(params["mean_y"]).to_numpy(float)
    # Two bases for the residual: the region's trend, and its mean (no trend) -- the latter is
    # better where yields have plateaued and a trend extrapolates noise (e.g. NL).
    bases = {"": (target, preds["trend"]), "@avg": ((train["y"].to_numpy() - mean_tr) / mean_tr, preds["average"])}
    with threadpool_limits(limits=1):  # tiny fits: threads only add overhead and fight other work
        for suffix, (tgt, base_te) in bases.items():
            for name, model in _learners(learners, seed).items():
                model.fit(x_tr, tgt)
                preds[name + suffix] = base_te + model.predict(x_te) * mean_te
            if "ridge" + suffix in preds and "hgb" + suffix in preds:
                preds["ridge+hgb" + suffix] = (preds["ridge" + suffix] + preds["hgb" + suffix]) / 2


@dataclass(frozen=True)
class Selection:
    """The outcome of inner validation on the training years."""

    chosen: str
    """The candidate with the lowest inner score: a learner on the trend or on the mean
    (``<learner>@avg``), or a model of the yield history alone (:data:`HISTORY_MODELS`)."""
    inner_nrmse: dict[str, float]
    """Inner-validation score of every model: the mean over validation years of that year's nRMSE (%)."""
    quantiles: dict[str, tuple[float, float]]
    """Per model, the (low, high) quantiles of inner out-of-sample relative errors ``y / pred - 1``."""


def _conformal_quantiles(rel_err: np.ndarray, coverage: float) -> tuple[float, float]:
    rel_err = rel_err[np.isfinite(rel_err)]
    if rel_err.size == 0:
        return (float("nan"), float("nan"))
    n = rel_err.size
    a = (1 - coverage) / 2
    # finite-sample split-conformal levels, per tail
    lo_level = max(0.0, np.floor(a * (n + 1)) / n)
    hi_level = min(1.0, np.ceil((1 - a) * (n + 1)) / n)
    return (float(np.quantile(rel_err, lo_level)), float(np.quantile(rel_err, hi_level)))


def _mean_yearly_nrmse(years: np.ndarray, y: np.ndarray, pred: np.ndarray) -> float:
    """Mean over years of ``100 * RMSE / mean(y)``: the benchmark's per-year score, averaged
    (a mean is steadier than a median over the few inner years).

    >>> _mean_yearly_nrmse(np.array([1, 1, 2]), np.array([2., 4, 5]), np.array([3., 3, 5]))
    16.666666666666668
    """
    if y.size == 0:
        return float("inf")
    codes = np.unique(years, return_inverse=True)[1]
    n = np.bincount(codes)
    rmse = np.sqrt(np.bincount(codes, (pred - y) ** 2) / n)
    return float(np.mean(100 * rmse / (np.bincount(codes, y) / n)))


def select_and_fit(train: pd.DataFrame, test: pd.DataFrame, features: list[str], learners: Sequence[str], *,
                   min_years: int, inner_folds: int, coverage: float, seed: int = 0,
                   model: str = "auto", trend_horizon: int | None = None) -> tuple[dict[str, np.ndarray], Selection]:
    """Inner validation on ``train``'s years, then :func:`fit_predict` on all of ``train``.

    The inner folds group whole years (no year is split across train and validation), so the
    chosen model and the interval quantiles depend on the training years only. ``model``
    other than ``auto`` forces that candidate (its intervals still come from inner validation).
    """
    years = np.array(sorted(train["year"].unique()))
    k = int(min(inner_folds, len(years)))
    inner: dict[str, list[np.ndarray]] = {}
    truth: list[np.ndarray] = []
    years_in: list[np.ndarray] = []
    if k >= 2:
        for j in range(k):
            val_years = years[j::k]
            is_val = train["year"].isin(val_years).to_numpy()
            tr, va = train[~is_val], train[is_val]
            p = fit_predict(tr, va, features, learners, min_years=min_years, seed=seed, trend_horizon=trend_horizon)
            truth.append(va["y"].to_numpy(float))
            years_in.append(va["year"].to_numpy())
            for name, v in p.items():
                inner.setdefault(name, []).append(v)
    y_in = np.concatenate(truth) if truth else np.empty(0)
    yr_in = np.concatenate(years_in) if years_in else np.empty(0)
    score, quant = {}, {}
    for name, parts in inner.items():
        pred = np.concatenate(parts)
        ok = np.isfinite(pred)
        score[name] = _mean_yearly_nrmse(yr_in[ok], y_in[ok], pred[ok])
        quant[name] = _conformal_quantiles(y_in[ok] / pred[ok] - 1, coverage)
    # With both learners, only their mean competes with the baselines: fewer candidates means
    # less selection noise on a handful of inner years (the single learners are still scored).
    candidates = [c for c in score if "+" in c or c in HISTORY_MODELS] if any("+" in c for c in score) else list(score)
    chosen = min(candidates, key=lambda c: score[c]) if candidates else "trend"
    if model != "auto":
        if model not in score and k >= 2:
            raise ValueError(f"model {model!r} is not a candidate; expected 'auto' or one of {sorted(score)!r}")
        chosen = model
    preds = fit_predict(train, test, features, learners, min_years=min_years, seed=seed, trend_horizon=trend_horizon)
    for name in preds:
        quant.setdefault(name, (float("nan"), float("nan")))
    return preds, Selection(chosen=chosen, inner_nrmse=score, quantiles=quant)
