"""The yield-history models: the robust per-region level."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cluster.forecast.models import fit_predict, huber_level


def test_huber_level__a_deeper_shock_year_does_not_move_it():
    ordinary = [8.0, 8.3, 8.1, 7.8, 8.4, 8.2, 7.9]
    levels = [float(huber_level(["A"] * 8, ordinary + [shock])["A"]) for shock in (6.0, 4.0, 1.0)]
    means = [np.mean(ordinary + [shock]) for shock in (6.0, 4.0, 1.0)]
    assert levels[0] == pytest.approx(levels[1], abs=1e-8) == pytest.approx(levels[2], abs=1e-8)
    assert means[0] - means[2] > 0.6  # while the mean falls with the shock
    assert min(ordinary) < levels[0] < np.mean(ordinary)


def test_huber_level__the_mean_when_no_year_is_far_off():
    y = [8.0, 8.1, 8.3, 8.0, 8.2]
    assert float(huber_level(["A"] * 5, y)["A"]) == pytest.approx(np.mean(y), abs=1e-9)


def test_huber_level__per_region_whatever_the_row_order():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"region_id": np.repeat(["A", "B", "C"], 12), "y": rng.normal(8, 0.5, 36)})
    df.loc[[3, 15], "y"] = 2.0
    whole = huber_level(df["region_id"], df["y"])
    shuffled = df.sample(frac=1, random_state=2)
    pd.testing.assert_series_equal(huber_level(shuffled["region_id"], shuffled["y"]), whole, atol=1e-9, rtol=0)
    for rid, g in df.groupby("region_id"):
        assert whole[rid] == pytest.approx(float(huber_level(g["region_id"], g["y"])[rid]), abs=1e-9)


def test_huber_level__median_where_most_years_are_equal():
    assert float(huber_level(["A"] * 4, [8.0, 8.0, 8.0, 5.0])["A"]) == 8.0


def test_fit_predict__huber_average_is_a_candidate_fit_on_training_rows_only():
    train = pd.DataFrame({"region_id": ["A"] * 6, "year": range(2000, 2006), "y": [8.0, 8.2, 8.1, 7.9, 8.0, 3.0]})
    test = pd.DataFrame({"region_id": ["A", "B"], "year": [2006, 2006], "y": [np.nan, np.nan]})
    preds = fit_predict(train, test, [], [], min_years=5)
    assert preds["huber-average"][0] == pytest.approx(float(huber_level(train["region_id"], train["y"])["A"]))
    assert preds["huber-average"][0] > preds["average"][0] + 0.5
    assert np.isnan(preds["huber-average"][1])  # no training rows for B
