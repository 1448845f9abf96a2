"""Reading and checking the forecast inputs: mappings, encodings, and every bad-input message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cluster.errors import ConfigError, DataError
from cluster.forecast import ForecastConfig, TableInput, load_inputs, read_table
from tests._data import shared_data
from tests.cluster.forecast._cybench import cybench_config


def _frames(yields: list[tuple], *, calendar_ids=("A1", "A2"), series_ids=("A1", "A2")) -> dict:
    y = pd.DataFrame(yields, columns=["region_id", "year", "yield_t_ha"])
    y["crop"] = "wheat"
    y["harvested_area_ha"] = 100.0
    y["production_t"] = y["yield_t_ha"] * 100.0
    cal = pd.DataFrame({"region_id": list(calendar_ids), "crop": "wheat", "sos_doy": 300, "eos_doy": 190})
    dates = pd.date_range("2009-09-01", "2013-08-01", freq="8D")
    s = pd.concat([pd.DataFrame({"region_id": r, "crop": "wheat", "date": dates, "index": "ndvi",
                                 "mean": 0.5 + 0.3 * np.sin(np.arange(len(dates)) / 6)}) for r in series_ids])
    return {"crop": "wheat", "yields": TableInput(frame=y), "calendar": TableInput(frame=cal),
            "series": (TableInput(frame=s),)}


GOOD = [("A1", yr, 5.0 + 0.1 * i) for i, yr in enumerate(range(2010, 2014))] + \
       [("A2", yr, 6.0 - 0.1 * i) for i, yr in enumerate(range(2010, 2014))]

CASES = [
    pytest.param(GOOD + [("A1", 2014, np.nan)], {}, "yield_missing",
                 "yields: 1 row(s) have no yield value ('A1/2014'); excluded from training and evaluation",
                 id="missing-yield"),
    pytest.param(GOOD + [("A2", 2014, 0.0)], {}, "yield_not_positive",
                 "yields: 1 row(s) have a zero or negative yield ('A2/2014'); treated as not reported "
                 "(a failed crop is reported with its area) and excluded", id="zero-yield"),
    pytest.param(GOOD + [("A1", 2014, 33.7)], {}, "yield_absurd",
                 "yields: 1 row(s) have an absurd yield (t/ha; above 20 or 4x the region's median over the 11 years "
                 "around it) "
                 "('A1/2014=33.7'); excluded", id="absurd-yield"),
    pytest.param(GOOD, {"calendar_ids": ("A1",)}, "region_not_in_calendar",
                 "calendar: 1 region(s) with yields but no crop calendar row ('A2'); they get no forecast "
                 "(no season window to cut the series)", id="region-missing-from-calendar"),
    pytest.param(GOOD, {"calendar_ids": ("A1", "A2", "B9")}, "region_without_yields",
                 "regions: 1 region(s) in the region list/calendar/series with no yield history ('B9'); "
                 "no model can be trained for them, so they get no forecast", id="region-without-yields"),
    pytest.param(GOOD, {"series_ids": ("A1",)}, "region_without_observations",
                 "series: 1 region(s) with yields and a calendar but no index observations (no pixels?) ('A2'); "
                 "they are forecast by their trend only", id="region-without-observations"),
]


@pytest.mark.parametrize("rows, kw, code, message", CASES)
def test_load_inputs__bad_input_is_reported(rows, kw, code, message):
    inputs = load_inputs(ForecastConfig(**_frames(rows, **kw)))
    found = [i for i in inputs.issues.issues if i.code == code]
    assert len(found) == 1, [i.code for i in inputs.issues.issues]
    assert found[0].message == message
    # the excluded rows are gone from the usable table, and nothing else is
    assert len(inputs.yields) == len(GOOD) if code.startswith("yield_") else True


@pytest.mark.parametrize("rows, kw, code, message", CASES[:3])
def test_load_inputs__strict_turns_issues_into_errors(rows, kw, code, message):
    with pytest.raises(DataError, match=r"strict=True") as e:
        load_inputs(ForecastConfig(strict=True, **_frames(rows, **kw)))
    assert message in str(e.value)


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(1, n + 1)]


def test_load_inputs__ids_that_lost_leading_zeros_are_repaired_and_reported():
    """INDEC-like department codes: the yield table was read as numbers ('6001' for '06001')."""
    good = _ids("06", 3) + _ids("14", 3)
    rows = [(rid.lstrip("0"), yr, 5.0) for rid in good for yr in range(2010, 2014)]
    inputs = load_inputs(ForecastConfig(**_frames(rows, calendar_ids=good, series_ids=good)))
    assert set(inputs.yields["region_id"]) == set(good)
    issue = next(i for i in inputs.issues.issues if i.code == "id_leading_zeros_repaired")
    assert issue.items == ("6001", "6002", "6003") and "'6001 -> 06001'" in issue.message
    assert "region_not_in_calendar" not in {i.code for i in inputs.issues.issues}
    # within one table: ids one digit shorter than the rest, no other table to match
    inputs = load_inputs(ForecastConfig(**_frames(rows, calendar_ids=("x",), series_ids=("x",))))
    assert set(inputs.yields_all["region_id"]) == set(good)
    # ... but ids that differ in length for a reason stay as they are
    rows = [(rid, yr, 5.0) for rid in ("7", "12", "13", "0") for yr in range(2010, 2014)]
    inputs = load_inputs(ForecastConfig(**_frames(rows, calendar_ids=("x",), series_ids=("x",))))
    assert set(inputs.yields_all["region_id"]) == {"7", "12", "13", "0"}


def test_load_inputs__rows_of_one_region_year_are_summed_or_dropped_and_reported():
    frames = _frames(GOOD)
    y = frames["yields"].frame
    part = y.iloc[[0]].assign(harvested_area_ha=50.0, yield_t_ha=2.0, production_t=100.0)  # A1/2010, 100 ha at 5.0
    copy = y.iloc[[1]]
    frames["yields"] = TableInput(frame=pd.concat([y, part, copy], ignore_index=True))
    inputs = load_inputs(ForecastConfig(**frames))
    codes = {i.code: i for i in inputs.issues.issues}
    assert codes["yield_rows_combined"].items == ("A1/2010",) and codes["yield_duplicate"].items == ("A1/2011",)
    a1 = inputs.yields_all.set_index(["region_id", "year"]).loc[("A1", 2010)]
    assert a1["harvested_area_ha"] == 150.0 and a1["production_t"] == 600.0 and a1["yield_t_ha"] == 4.0
    assert a1["source_rows"] == 2 and len(inputs.yields) == len(GOOD)


def test_load_inputs__yields_in_kg_per_ha_are_detected_and_named():
    rows = [(r, yr, v * 1000) for r, yr, v in GOOD]  # 5,000 kg/ha written where t/ha is expected
    with pytest.raises(DataError, match=r"median yield is 5,\d{3}, which looks like kg/ha, not t/ha.*"
                                        r"multipliers: \{yield_t_ha: 0.001\}"):
        load_inputs(ForecastConfig(**_frames(rows)))


def test_load_inputs__other_crops_of_shared_tables_are_taken_out_and_unknown_ones_reported():
    """One yield table, calendar and series for every crop (as the demo writes them): the
    other crops' rows are no data issue; a crop the yield history never names is (misnamed?)."""
    f = _frames(GOOD)
    y, cal, s = f["yields"].frame, f["calendar"].frame, f["series"][0].frame
    f["yields"] = TableInput(frame=pd.concat([y, y.assign(crop="oats", yield_t_ha=2.0)]))
    f["calendar"] = TableInput(frame=pd.concat([cal, cal.assign(crop="oats"), cal.assign(crop="Wheat")]))
    f["series"] = (TableInput(frame=pd.concat([s, s.assign(crop="oats", mean=0.1)])),)
    inputs = load_inputs(ForecastConfig(**f))
    found = {i.code: i for i in inputs.issues.issues}
    assert "series_other_crop" not in found
    assert found["calendar_other_crop"].message.startswith("calendar: 2 row(s) are for crop(s) ['Wheat'], not 'wheat'")
    assert set(inputs.yields["crop"]) == set(inputs.calendar["crop"]) == set(inputs.series["crop"]) == {"wheat"}
    assert inputs.series["mean"].min() > 0.1 and len(inputs.yields) == len(GOOD)


def test_load_inputs__crop_never_seen_in_training():
    cfg = ForecastConfig(**{**_frames(GOOD), "crop": "oats"})
    with pytest.raises(DataError, match=r"crop 'oats' never appears in the yield history \(crops there: \['wheat'\]\)"):
        load_inputs(cfg)


def test_read_table__missing_file_names_the_path(tmp_path):
    spec = TableInput(paths=(str(tmp_path / "nope.csv"),))
    with pytest.raises(ConfigError, match=r"yields table .*nope\.csv' does not exist"):
        read_table(spec, "yields")


def test_read_table__unmapped_column_is_named():
    spec = TableInput(frame=pd.DataFrame({"adm": ["A"]}), columns={"region_id": "adm_id"})
    with pytest.raises(DataError, match=r"no column\(s\) \['adm_id'\]"):
        read_table(spec, "calendar")


def test_read_table__argentine_maize_latin1_string_ids_and_bad_yields():
    path = shared_data("argentina_crop_yields", "maize_maiz_department_1923_2019.csv")
    cal = pd.DataFrame({"region_id": ["x"], "crop": ["maize"], "sos_doy": [270], "eos_doy": [120]})
    cfg = ForecastConfig(
        crop="maize",
        yields=TableInput(paths=(str(path),), encoding="latin-1",
                          columns={"region_id": "departamento_id", "year": "anio", "crop": "cultivo_nombre",
                                   "yield_t_ha": "rendimiento_kgxha", "harvested_area_ha": "superficie_cosechada_ha",
                                   "production_t": "produccion_tm", "country": "provincia_id"},
                          values={"crop": {"maíz": "maize"}}, multipliers={"yield_t_ha": 0.001}),
        calendar=TableInput(frame=cal))
    inputs = load_inputs(cfg)
    ids = inputs.yields_all["region_id"]
    assert ids.map(type).eq(str).all()
    assert "06007" in set(ids)  # leading zeros kept (Adolfo Alsina, Buenos Aires)
    codes = {i.code: i for i in inputs.issues.issues}
    assert {"yield_missing", "yield_not_positive", "yield_absurd", "yield_unallocated", "yield_rows_combined",
            "region_not_in_calendar"} <= set(codes)
    assert "id_leading_zeros_repaired" not in codes  # the province '0' is a code, not a lost zero
    assert len(codes["yield_missing"].items) == int(inputs.yields_all["yield_t_ha"].isna().sum()) > 500
    assert any(item.endswith("=33.333") for item in codes["yield_absurd"].items)  # the 33,333 kg/ha outlier
    # every input row is in a kept row (one region-year's rows are summed into one) or named in
    # an issue, and every kept row is usable or named: nothing silently dropped
    y = inputs.yields_all
    n_rows = len(pd.read_csv(path, encoding="latin-1", usecols=["anio"]))
    dropped = sum(len(codes[c].items) for c in ("yield_duplicate", "yield_missing_id") if c in codes)
    assert int(y["source_rows"].sum()) + dropped == n_rows
    assert int(y["source_rows"].gt(1).sum()) == len(codes["yield_rows_combined"].items)
    flagged = sum(len(codes[c].items) for c in ("yield_missing", "yield_not_positive", "yield_absurd"))
    assert flagged + int(y["usable"].sum()) == len(y)


def test_load_inputs__cybench_mapping_and_scaling():
    data = shared_data("cybench_wheat_es_nl")
    inputs = load_inputs(cybench_config(data, ("ES", "NL"), as_of=None))
    raw = pd.read_csv(data / "ndvi_wheat_NL.csv")
    ndvi = inputs.series[(inputs.series["index"] == "ndvi") & (inputs.series["region_id"] == "NL11")]
    raw = raw[(raw["adm_id"] == "NL11") & (raw["ndvi"] != 0)]
    np.testing.assert_allclose(np.sort(ndvi["mean"]), np.sort((raw["ndvi"] - 50) / 200))
    assert inputs.series["mean"].between(-1, 1).all()
    assert set(inputs.regions["parent"]) == {"ES", "NL"}
    codes = {i.code: i for i in inputs.issues.issues}
    assert codes["yield_absurd"].items == ("ES241/2004=33.696",)
    assert len(codes["region_without_yields"].items) == 12
    assert "series_nodata" in codes and "calendar_short_season" in codes
