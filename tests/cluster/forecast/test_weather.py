"""Weather features: hand-computed values, the no-look-ahead rule, and the forecast reading them."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from cluster.forecast import ForecastConfig, TableInput, forecast_season, load_inputs
from cluster.forecast.features import season_windows
from cluster.forecast.weather import weather_features


def _daily(region: str, start: str, days: int, tmax, prec) -> pd.DataFrame:
    dates = pd.date_range(start, periods=days, freq="D")
    tmax = np.broadcast_to(np.asarray(tmax, float), (days,))
    prec = np.broadcast_to(np.asarray(prec, float), (days,))
    return pd.concat([pd.DataFrame({"region_id": region, "date": dates, "variable": v, "value": x})
                      for v, x in (("tmax", tmax), ("tmin", tmax - 10), ("prec", prec))], ignore_index=True)


def test_weather_features__by_hand():
    cal = pd.DataFrame({"region_id": ["A"], "crop": ["wheat"], "sos_doy": [91], "eos_doy": [190]})  # 1 Apr - 9 Jul
    w = season_windows(cal, [2021]).assign(cutoff_date=pd.Timestamp("2021-05-31"))
    tmax = np.r_[np.full(100, 20.0), np.full(100, 32.0)]  # from 1 Mar: 20 C, then 32 C from 9 Jun
    weather = _daily("A", "2021-03-01", 200, tmax, 2.0)
    f = weather_features(weather, w, "wheat").iloc[0]
    days = (pd.Timestamp("2021-05-31") - pd.Timestamp("2021-04-01")).days + 1  # 61 days in [sos, cutoff]
    assert f["w_gdd"] == pytest.approx(days * 15.0)  # tmean 15, base 0 for wheat
    # phase 1: 1 Apr up to mid-season (20 May, 49 days); phase 2: from there to the cutoff (12 days)
    assert f["w_heat_days"] == 0
    assert f["w_prec_p1"] == pytest.approx(49 * 2.0) and f["w_prec_p2"] == pytest.approx(12 * 2.0)
    # at the end of season: the hot days count, maize has its own base and threshold
    w = w.assign(cutoff_date=w["eos_date"])
    wheat, maize = weather_features(weather, w, "wheat").iloc[0], weather_features(weather, w, "maize").iloc[0]
    hot = (pd.Timestamp("2021-07-09") - pd.Timestamp("2021-06-09")).days + 1
    assert wheat["w_heat_days"] == hot and maize["w_heat_days"] == 0
    assert maize["w_gdd"] == pytest.approx(wheat["w_gdd"] - 10 * 100)  # 100 days, every tmean above 10


def _config(weather: pd.DataFrame, **kw) -> ForecastConfig:
    years = range(2008, 2021)
    rng = np.random.default_rng(0)
    shock = {y: rng.normal() for y in years}
    y = pd.DataFrame([(r, yr, 6.0 * (1 + 0.1 * shock[yr]) + (0.5 if r == "B" else 0), 100.0)
                      for r in ("A", "B") for yr in years],
                     columns=["region_id", "year", "yield_t_ha", "harvested_area_ha"])
    y = y.assign(crop="wheat", production_t=y["yield_t_ha"] * 100, country="X")
    cal = pd.DataFrame({"region_id": ["A", "B"], "crop": "wheat", "sos_doy": 91, "eos_doy": 190})
    return ForecastConfig(crop="wheat", yields=TableInput(frame=y), calendar=TableInput(frame=cal),
                          weather=TableInput(frame=weather), backtest=False, learners=("ridge",),
                          model="ridge@avg", plots=False, min_train_years=3, **kw)


def test_forecast__weather_before_as_of_only_and_it_is_used():
    rng = np.random.default_rng(1)
    parts = []
    for r in ("A", "B"):
        for yr in range(2008, 2021):
            parts.append(_daily(r, f"{yr}-01-01", 365, 22 + rng.normal(0, 2, 365), rng.exponential(2, 365)))
    weather = pd.concat(parts, ignore_index=True)
    cfg = _config(weather, as_of=date(2020, 6, 1))
    inputs = load_inputs(cfg)
    base = forecast_season(inputs, cfg)
    later = weather.copy()
    after = later["date"] > pd.Timestamp("2020-06-01")
    later.loc[after, "value"] = later.loc[after, "value"] * 3 + 5
    again = forecast_season(load_inputs(cfg.model_copy(update={"weather": TableInput(frame=later)})), cfg)
    pd.testing.assert_frame_equal(base, again)
    # ...and weather before the as-of date changes the forecast: the learner reads it
    early = weather.copy()
    season = (early["date"] > pd.Timestamp("2020-04-01")) & (early["date"] <= pd.Timestamp("2020-06-01"))
    early.loc[season & (early["variable"] == "prec"), "value"] *= 4
    third = forecast_season(load_inputs(cfg.model_copy(update={"weather": TableInput(frame=early)})), cfg)
    assert not np.allclose(third["yield_t_ha"], base["yield_t_ha"])


def test_weather__a_wide_table_reads_as_the_long_one():
    long = _daily("A", "2021-03-01", 200, 25.0, 1.0)
    wide = long.pivot_table(index=["region_id", "date"], columns="variable", values="value").reset_index()
    wide = wide.rename(columns={"region_id": "adm_id"})
    cal = pd.DataFrame({"region_id": ["A"], "crop": ["wheat"], "sos_doy": [91], "eos_doy": [190]})
    y = pd.DataFrame({"region_id": "A", "year": range(2015, 2021), "crop": "wheat", "yield_t_ha": 5.0,
                      "harvested_area_ha": 1.0, "production_t": 5.0})
    def weather(table: TableInput) -> pd.DataFrame:
        cfg = ForecastConfig(crop="wheat", yields=TableInput(frame=y), calendar=TableInput(frame=cal), weather=table)
        return load_inputs(cfg).weather.sort_values(["variable", "date"]).reset_index(drop=True)
    a = weather(TableInput(frame=long))
    b = weather(TableInput(frame=wide, columns={"region_id": "adm_id"}))
    pd.testing.assert_frame_equal(a, b[a.columns])
