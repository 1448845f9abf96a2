"""Backtest folds never see the held-out year (or, walk-forward, any later year); nRMSE by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cluster.forecast import backtest, compute_metrics, iter_folds, nrmse_by_year


def _panel(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(6):
        for yr in range(2001, 2011):
            x = rng.normal()
            rows.append({"region_id": f"R{r}", "year": yr, "x": x,
                         "y": 4 + 0.3 * r + 0.05 * (yr - 2001) + 0.4 * x + rng.normal(0, 0.1)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("scheme, expected", [
    ("loyo", [(2001, [2002, 2003]), (2002, [2001, 2003]), (2003, [2001, 2002])]),
    ("walk_forward", [(2003, [2001, 2002])]),
], ids=["loyo", "walk-forward"])
def test_iter_folds__train_years_exclude_the_test_year(scheme, expected):
    assert list(iter_folds([2003, 2001, 2002, 2002], scheme, 2)) == expected


@pytest.mark.parametrize("scheme", ["loyo", "walk_forward"], ids=["loyo", "walk-forward"])
def test_backtest__prediction_does_not_depend_on_forbidden_years(scheme):
    data = _panel()
    base = backtest(data, ["x"], ("ridge", "hgb"), scheme=scheme, min_train_years=5, inner_folds=3, coverage=0.8)
    test_year = 2008
    # LOYO may not train on the held-out year; walk-forward may not train on it or anything later.
    forbidden = data["year"] == test_year if scheme == "loyo" else data["year"] >= test_year
    changed = data.copy()
    changed.loc[forbidden, "y"] = changed.loc[forbidden, "y"] * 3 + 7
    again = backtest(changed, ["x"], ("ridge", "hgb"), scheme=scheme, min_train_years=5, inner_folds=3, coverage=0.8)
    a = base[base["year"] == test_year].sort_values(["model", "region_id"])
    b = again[again["year"] == test_year].sort_values(["model", "region_id"])
    assert len(a) and set(a["model"]) >= {"average", "trend", "ridge", "hgb", "selected"}
    np.testing.assert_array_equal(a["y_pred"].to_numpy(), b["y_pred"].to_numpy())
    np.testing.assert_array_equal(a["lo"].to_numpy(), b["lo"].to_numpy())
    # ...while a year it may train on does change the prediction (the test can fail)
    allowed = data["year"] == (2010 if scheme == "loyo" else 2005)
    changed2 = data.copy()
    changed2.loc[allowed, "y"] += 5
    third = backtest(changed2, ["x"], ("ridge",), scheme=scheme, min_train_years=5, inner_folds=3, coverage=0.8)
    c = third[(third["year"] == test_year) & (third["model"] == "average")].sort_values("region_id")
    assert not np.allclose(c["y_pred"].to_numpy(), a[a["model"] == "average"]["y_pred"].to_numpy())


def test_backtest__walk_forward_starts_after_min_train_years():
    p = backtest(_panel(), ["x"], ("ridge",), scheme="walk_forward", min_train_years=5, inner_folds=3, coverage=0.8)
    assert sorted(p["year"].unique()) == list(range(2006, 2011))


def test_nrmse_by_year__matches_hand_computation():
    # year 1: errors (1, -1) on yields (2, 4): RMSE 1, mean 3 -> 33.33 %
    # year 2: errors (0, 1, -2) on yields (5, 5, 8): RMSE sqrt(5/3), mean 6 -> 21.517 %
    # year 3: errors (0.5) on yield 10: 5 %.  Median over years: 21.517 %
    pred = pd.DataFrame({
        "year": [1, 1, 2, 2, 2, 3],
        "y_true": [2.0, 4.0, 5.0, 5.0, 8.0, 10.0],
        "y_pred": [3.0, 3.0, 5.0, 6.0, 6.0, 10.5],
    })
    per_year = nrmse_by_year(pred)
    np.testing.assert_allclose(per_year.to_numpy(), [100 / 3, 100 * np.sqrt(5 / 3) / 6, 5.0])
    full = pred.assign(country="X", crop="c", lead_time="m", model="m1", scheme="loyo",
                       lo=pred["y_pred"] - 0.6, hi=pred["y_pred"] + 0.6)
    m = compute_metrics(full)[0]
    assert m["nrmse_median_loyo"] == pytest.approx(100 * np.sqrt(5 / 3) / 6)
    assert m["mape_loyo"] == pytest.approx(100 * np.mean([0.5, 0.25, 0, 0.2, 0.25, 0.05]))
    assert m["interval_coverage_80_loyo"] == pytest.approx(2 / 6)  # |error| <= 0.6: 0 and 0.5 only
    y = pred["y_true"]
    assert m["r2_loyo"] == pytest.approx(1 - np.sum((pred["y_pred"] - y) ** 2) / np.sum((y - y.mean()) ** 2))
