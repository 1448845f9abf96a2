"""Season features against plain NumPy oracles: periods, composites, gaps, phenology."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.classify.features import FeatureConfig, SeasonConfig, season_features, season_periods
from cluster.errors import DataError

CFG = FeatureConfig(bands=["red", "nir"], indices=["ndvi"], season=SeasonConfig(start="04-01", end="09-30"))


def _curve(doy: np.ndarray, t1: float = 150, t2: float = 230, r: float = 0.1) -> np.ndarray:
    """A double-logistic NDVI season (green-up at ``t1``, senescence at ``t2``)."""
    return 0.2 + 0.6 * (1 / (1 + np.exp(-r * (doy - t1))) - 1 / (1 + np.exp(-r * (doy - t2))))


def _bands(ndvi: np.ndarray, total: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """red, nir with the given NDVI and red + nir = total."""
    return (total * (1 - ndvi) / 2).astype(np.float32), (total * (1 + ndvi) / 2).astype(np.float32)


def test_periods__dekads_months_and_days_tile_the_season_exactly():
    winter = SeasonConfig(start="09-01", end="08-31")
    dekads = season_periods(winter, 2024)
    assert len(dekads) == 36 and dekads[0] == (dt.date(2023, 9, 1), dt.date(2023, 9, 10))
    assert dekads[-1] == (dt.date(2024, 8, 21), dt.date(2024, 8, 31))
    assert (dt.date(2024, 2, 21), dt.date(2024, 2, 29)) in dekads  # leap-year February
    months = season_periods(SeasonConfig(start="03-15", end="06-10", period="month"), 2025)
    assert months == [(dt.date(2025, 3, 15), dt.date(2025, 3, 31)), (dt.date(2025, 4, 1), dt.date(2025, 4, 30)),
                      (dt.date(2025, 5, 1), dt.date(2025, 5, 31)), (dt.date(2025, 6, 1), dt.date(2025, 6, 10))]
    for periods in (dekads, months, season_periods(SeasonConfig(start="04-01", end="10-31", period=16), 2025)):
        for (_, b), (a, _) in zip(periods, periods[1:], strict=False):
            assert a == b + dt.timedelta(days=1)  # contiguous, no overlap, no gap


def test_features__vectorised_equals_one_sample_at_a_time():
    rng = np.random.default_rng(0)
    dates = np.arange(np.datetime64("2025-03-20"), np.datetime64("2025-10-10"), 6)
    doy = (dates - np.datetime64("2025-01-01")).astype(int) + 1
    ndvi = _curve(doy[:, None] + rng.normal(0, 8, (1, 40))) + rng.normal(0, 0.02, (len(dates), 40))
    red, nir = _bands(ndvi)
    cloud = rng.random(red.shape) < 0.3
    red[cloud] = np.nan
    nir[cloud] = np.nan
    all_at_once = season_features({"red": red, "nir": nir}, dates, CFG, 2025)
    for n in range(40):
        one = season_features({"red": red[:, n:n + 1], "nir": nir[:, n:n + 1]}, dates, CFG, 2025)
        np.testing.assert_array_equal(one.values[0], all_at_once.values[n])
    assert all_at_once.names[-1] == "gap_fraction" and len(set(all_at_once.names)) == len(all_at_once.names)


def test_features__median_composite_ignores_a_missed_cloud_and_gaps_interpolate():
    # three clear looks a dekad with a bright (missed) cloud in one: the median keeps the clear value
    dates = np.array(["2025-04-02", "2025-04-05", "2025-04-08", "2025-04-25", "2025-05-03"], "datetime64[D]")
    red = np.array([[0.10], [0.90], [0.10], [np.nan], [0.30]], np.float32)
    nir = np.array([[0.30], [0.95], [0.30], [np.nan], [0.50]], np.float32)
    fm = season_features({"red": red, "nir": nir}, dates, CFG, 2025)
    col = {n: fm.values[0, i] for i, n in enumerate(fm.names)}
    assert col["red_p00"] == pytest.approx(0.10)  # 1-10 April
    assert col["red_p03"] == pytest.approx(0.30)  # 1-10 May
    # 11-20 April had no look and 21-30 April only a masked one: both interpolated between
    # the period centres of 1-10 April and 1-10 May
    centres = np.array([4.5, 14.5, 24.5, 34.5])  # days after 1 April
    for p in (1, 2):
        assert col[f"red_p0{p}"] == pytest.approx(np.interp(centres[p], centres[[0, 3]], [0.10, 0.30]), rel=1e-6)
    assert col["gap_fraction"] == pytest.approx(sum(1 for p in fm.gap_filled[:, 0] if p) / len(fm.periods))
    assert fm.gap_filled[1, 0] and fm.gap_filled[2, 0] and not fm.gap_filled[0, 0]


def test_features__extra_columns_join_the_vector_and_sum_bands_are_summed_per_period():
    # daily precipitation (a weather column) and radar backscatter beside the optical bands:
    # precipitation is a period total (missing days skipped), VH a median like the bands
    dates = np.array(["2025-04-02", "2025-04-05", "2025-04-08", "2025-04-12"], "datetime64[D]")
    red = np.array([[0.10], [0.12], [0.11], [0.20]], np.float32)
    nir = np.array([[0.30], [0.32], [0.31], [0.40]], np.float32)
    precip = np.array([[2.0], [np.nan], [5.5], [1.0]], np.float32)
    vh = np.array([[-18.0], [-15.0], [-16.0], [-14.0]], np.float32)
    cfg = FeatureConfig.model_validate({**CFG.model_dump(), "bands": ["red", "nir", "precip", "vh"],
                                        "sum_bands": ["precip"]})
    fm = season_features({"red": red, "nir": nir, "precip": precip, "vh": vh}, dates, cfg, 2025)
    col = {n: fm.values[0, i] for i, n in enumerate(fm.names)}
    assert col["precip_p00"] == pytest.approx(7.5) and col["precip_p01"] == pytest.approx(1.0)
    assert col["vh_p00"] == pytest.approx(-16.0) and col["vh_p01"] == pytest.approx(-14.0)
    assert [n for n in fm.names if n.startswith("red_")] == [n.replace("precip", "red") for n in fm.names
                                                             if n.startswith("precip_")]


@settings(max_examples=25, deadline=None)
@given(t1=st.floats(120, 170), width=st.floats(50, 90), r=st.floats(0.06, 0.2))
def test_phenology__matches_the_curve_it_was_made_from(t1, width, r):
    t2 = t1 + width
    dates = np.arange(np.datetime64("2025-04-01"), np.datetime64("2025-10-01"), 2)
    doy = (dates - np.datetime64("2025-01-01")).astype(int) + 1
    red, nir = _bands(_curve(doy, t1, t2, r)[:, None])
    fm = season_features({"red": red, "nir": nir}, dates, CFG, 2025)
    col = {n: float(fm.values[0, i]) for i, n in enumerate(fm.names)}
    start_doy = 91  # 1 April
    # the oracle: the true curve day by day, its half-amplitude crossings and its peak
    fine = np.arange(91.0, 274.0, 0.05)
    true = _curve(fine, t1, t2, r)
    level = (true.min() + true.max()) / 2
    up = fine[np.argmax(true >= level)]
    down = fine[len(fine) - 1 - np.argmax(true[::-1] >= level)]
    # dekad composites of 2-day looks: the crossing is found to within half a dekad and a bit
    assert abs(col["ndvi_greenup_day"] + start_doy - up) < 6
    assert abs(col["ndvi_senescence_day"] + start_doy - down) < 6
    assert abs(col["ndvi_peak_day"] + start_doy - fine[np.argmax(true)]) <= max(10, width / 2)
    assert col["ndvi_greenup_slope"] > 0 > col["ndvi_senescence_slope"]
    assert col["ndvi_amplitude"] == pytest.approx(col["ndvi_peak_value"] - col["ndvi_base_value"])


def test_features__all_missing_sample_gives_nan_not_an_error():
    dates = np.array(["2025-05-01", "2025-06-01"], "datetime64[D]")
    red = np.array([[0.1, np.nan], [0.1, np.nan]], np.float32)
    fm = season_features({"red": red, "nir": red * 3}, dates, CFG, 2025)
    periodic = [i for i, n in enumerate(fm.names) if "_p" in n]
    assert np.isfinite(fm.values[0, periodic]).all()  # held constant beyond the two looks
    assert np.isnan(fm.values[1, :-1]).all() and fm.values[1, -1] == 1.0


@pytest.mark.parametrize("values, dates, match", [
    ({"red": np.zeros((2, 1), np.float32)}, ["2025-05-01", "2025-06-01"], r"lacks band\(s\) \['nir'\]"),
    ({"red": np.zeros((2, 1)), "nir": np.zeros((3, 1))}, ["2025-05-01", "2025-06-01"], r"must all be \(T, N\)"),
    ({"red": np.zeros((1, 1)), "nir": np.zeros((1, 1))}, ["2024-05-01"], r"no observation falls in the 2025 season"),
], ids=["missing-band", "shape", "no-season"])
def test_features__bad_input_messages(values, dates, match):
    with pytest.raises(DataError, match=match):
        season_features(values, np.array(dates, "datetime64[D]"), CFG, 2025)


@pytest.mark.parametrize("kwargs, match", [
    ({"season": {"start": "02-30"}}, "not a month-day"),
    ({"indices": ["ndvi"], "bands": ["red"]}, r"index 'ndvi' needs band\(s\) \['nir'\]"),
    ({"phenology_index": "evi"}, "phenology_index 'evi' must be one of indices"),
    ({"sum_bands": ["precip"]}, r"sum_bands \['precip'\] are not in bands"),
], ids=["bad-date", "index-bands", "phenology-index", "sum-bands"])
def test_feature_config__errors_name_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FeatureConfig.model_validate(kwargs)
