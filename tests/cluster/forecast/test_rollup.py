"""Roll-up consistency on real statistics (US NASS states, Argentine departments), units, conditions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cluster.forecast import (ACRE_HA, ForecastConfig, TableInput, bu_per_acre_to_t_ha, condition_class,
                              load_inputs, national_yield, rollup, rollup_history)
from tests._data import shared_data


def test_bu_per_acre_to_t_ha__wheat_and_corn():
    assert bu_per_acre_to_t_ha("wheat") == pytest.approx(27.2155 / 1000 / 0.40468564224)
    assert bu_per_acre_to_t_ha("corn") == pytest.approx(25.4012 / 1000 / 0.40468564224)
    assert 100 * bu_per_acre_to_t_ha("corn") == pytest.approx(6.2768, abs=1e-4)  # 100 bu/acre of corn


def _as_forecast(y: pd.DataFrame, rel_halfwidth: float = 0.1) -> pd.DataFrame:
    reg = y.rename(columns={"country": "parent"}).assign(level="region", season_year=y["year"])
    reg["production_lo_t"] = reg["production_t"] * (1 - rel_halfwidth)
    reg["production_hi_t"] = reg["production_t"] * (1 + rel_halfwidth)
    return reg


def _nass(crop: str) -> pd.DataFrame:
    path = shared_data("us_state_crop_yields_nass", f"nass_{crop}_state_yield.csv")
    cal = pd.DataFrame({"region_id": ["Kansas"], "crop": [crop], "sos_doy": [270], "eos_doy": [180]})
    cfg = ForecastConfig(
        crop=crop,
        yields=TableInput(paths=(str(path),), columns={"region_id": "state", "yield_t_ha": "yield",
                                                       "harvested_area_ha": "acres"},
                          constants={"crop": crop, "country": "US"},
                          multipliers={"yield_t_ha": bu_per_acre_to_t_ha(crop), "harvested_area_ha": ACRE_HA}),
        calendar=TableInput(frame=cal))
    return load_inputs(cfg).yields


@pytest.mark.parametrize("crop", ["wheat", "corn"], ids=["nass-wheat", "nass-corn"])
def test_rollup__nass_states_sum_to_national(crop):
    y = _nass(crop)
    raw = pd.read_csv(shared_data("us_state_crop_yields_nass", f"nass_{crop}_state_yield.csv"))
    kansas = raw[(raw["state"] == "Kansas") & (raw["year"] == 2011)].iloc[0]
    ks = y[(y["region_id"] == "Kansas") & (y["year"] == 2011)].iloc[0]
    assert ks["yield_t_ha"] == pytest.approx(kansas["yield"] * bu_per_acre_to_t_ha(crop))
    assert ks["production_t"] == pytest.approx(kansas["yield"] * kansas["acres"] * bu_per_acre_to_t_ha(crop) * ACRE_HA)
    recent = y[y["year"].between(2007, 2011)]
    up = rollup(_as_forecast(recent.assign(crop=crop)))
    nat = up[up["level"] == "country"].set_index("season_year")
    # summed production / summed area == aggregated yield, and equals the bushel arithmetic
    for year, grp in raw[raw["year"].between(2007, 2011)].groupby("year"):
        bushels, acres = (grp["yield"] * grp["acres"]).sum(), grp["acres"].sum()
        assert nat.loc[year, "yield_t_ha"] == pytest.approx(bushels / acres * bu_per_acre_to_t_ha(crop), rel=1e-9)
        assert nat.loc[year, "production_t"] == pytest.approx(bushels * bu_per_acre_to_t_ha(crop) * ACRE_HA, rel=1e-9)
    np.testing.assert_allclose(nat["yield_lo_t_ha"], 0.9 * nat["yield_t_ha"])  # fully correlated: sum of bounds
    glob = up[up["level"] == "global"].set_index("season_year")
    np.testing.assert_allclose(glob["production_t"], nat["production_t"])


def test_rollup__argentine_departments_to_provinces_and_nation():
    path = shared_data("argentina_crop_yields", "maize_maiz_department_1923_2019.csv")
    cal = pd.DataFrame({"region_id": ["x"], "crop": ["maize"], "sos_doy": [270], "eos_doy": [120]})
    cfg = ForecastConfig(crop="maize", yields=TableInput(
        paths=(str(path),), encoding="latin-1",
        columns={"region_id": "departamento_id", "year": "anio", "crop": "cultivo_nombre",
                 "yield_t_ha": "rendimiento_kgxha", "harvested_area_ha": "superficie_cosechada_ha",
                 "production_t": "produccion_tm", "country": "provincia_id"},
        values={"crop": {"maíz": "maize"}}, multipliers={"yield_t_ha": 0.001}), calendar=TableInput(frame=cal))
    inputs = load_inputs(cfg)
    y = inputs.yields[inputs.yields["year"] == 2018].dropna(subset=["production_t", "harvested_area_ha"])
    y = y[y["harvested_area_ha"] > 0]
    up = rollup(_as_forecast(y))
    prov = up[up["level"] == "country"].set_index("region_id")
    direct = y.groupby("country")[["production_t", "harvested_area_ha"]].sum()
    np.testing.assert_allclose(prov.loc[direct.index, "yield_t_ha"],
                               direct["production_t"] / direct["harvested_area_ha"])
    nat = up[up["level"] == "global"].iloc[0]
    assert nat["production_t"] == pytest.approx(y["production_t"].sum())
    assert nat["yield_t_ha"] == pytest.approx(y["production_t"].sum() / y["harvested_area_ha"].sum())
    ny = national_yield(y, ["year"])
    assert ny["yield_t_ha"].iloc[0] == pytest.approx(nat["yield_t_ha"])
    assert "06" in prov.index  # Buenos Aires, leading zero kept


@pytest.mark.parametrize("name, crop, local", [("oats_avena_department_1923_2020.csv", "oats", "avena"),
                                               ("maize_maiz_department_1923_2019.csv", "maize", "maíz")],
                         ids=["oats", "maize"])
def test_rollup_history__argentine_totals_equal_the_tables_every_year(name, crop, local):
    """Rows without a department ("otros departamentos") roll into their province as its
    unallocated line: national yield = total production / total area of the table, every year."""
    path = shared_data("argentina_crop_yields", name)
    cal = pd.DataFrame({"region_id": ["x"], "crop": [crop], "sos_doy": [120], "eos_doy": [330]})
    cfg = ForecastConfig(crop=crop, yields=TableInput(
        paths=(str(path),), encoding="latin-1",
        columns={"region_id": "departamento_id", "year": "anio", "crop": "cultivo_nombre",
                 "yield_t_ha": "rendimiento_kgxha", "harvested_area_ha": "superficie_cosechada_ha",
                 "production_t": "produccion_tm", "country": "provincia_id"},
        values={"crop": {local: crop}}, multipliers={"yield_t_ha": 0.001}), calendar=TableInput(frame=cal))
    inputs = load_inputs(cfg)
    history = rollup_history(inputs.yields_all, inputs.regions.set_index("region_id")["parent"])
    nation = history[history["level"] == "global"].set_index("year")

    raw = pd.read_csv(path, encoding="latin-1", dtype={"provincia_id": str, "departamento_id": str})
    raw["production"] = raw["produccion_tm"].fillna(raw["rendimiento_kgxha"] / 1000 * raw["superficie_cosechada_ha"])
    raw["key"] = raw["departamento_id"].fillna(raw["provincia_id"] + ":unallocated")
    raw = raw.drop_duplicates(["key", "anio", "rendimiento_kgxha", "superficie_cosechada_ha", "produccion_tm"])
    counted = raw[raw["production"].notna() & raw["superficie_cosechada_ha"].gt(0)]
    want = counted.groupby("anio")[["production", "superficie_cosechada_ha"]].sum()
    assert list(nation.index) == list(want.index) and len(want) > 90
    np.testing.assert_allclose(nation["production_t"], want["production"], rtol=1e-12)
    np.testing.assert_allclose(nation["harvested_area_ha"], want["superficie_cosechada_ha"], rtol=1e-12)
    np.testing.assert_allclose(nation["yield_t_ha"], want["production"] / want["superficie_cosechada_ha"], rtol=1e-12)
    # the provinces add up to the nation, and the unallocated rows are in them (they matter)
    provinces = history[history["level"] == "country"].groupby("year")["production_t"].sum()
    np.testing.assert_allclose(provinces, nation["production_t"], rtol=1e-12)
    lumped = counted[counted["departamento_id"].isna()].groupby("anio")["production"].sum()
    assert (lumped / want["production"]).max() > 0.05


def test_rollup__anomaly_holds_current_areas_fixed():
    reg = pd.DataFrame({
        "level": "region", "region_id": ["a", "b"], "parent": "X", "crop": "c", "season_year": 2020,
        "harvested_area_ha": [100.0, 300.0], "yield_t_ha": [5.0, 2.0],
        "production_t": [500.0, 600.0], "production_lo_t": [400.0, 500.0], "production_hi_t": [600.0, 700.0],
        "yield_5yr_mean_t_ha": [4.0, 2.0], "yield_last_year_t_ha": [np.nan, 2.5],
    })
    up = rollup(reg).set_index("level")
    assert up.loc["country", "yield_t_ha"] == pytest.approx(1100 / 400)
    assert up.loc["country", "anomaly_5yr_pct"] == pytest.approx(100 * (1100 / (400 + 600) - 1))
    assert up.loc["country", "anomaly_last_year_pct"] == pytest.approx(100 * (600 / 750 - 1))  # region b only
    assert up.loc["country", "condition"] == condition_class(10.0) == "exceptional"


@pytest.mark.parametrize("anomaly, expected", [
    (10.0, "exceptional"), (9.99, "favourable"), (-5.0, "favourable"), (-5.01, "watch"),
    (-15.0, "watch"), (-15.01, "poor"), (float("nan"), "unknown"),
], ids=["exc-edge", "fav-top", "fav-edge", "watch-top", "watch-edge", "poor", "nan"])
def test_condition_class__edges(anomaly, expected):
    assert condition_class(anomaly) == expected
