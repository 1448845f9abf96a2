"""Tests for cluster.classify.samples on the real WorldCereal France table (LPIS 2023, dekads).

The table (``../shared/data/worldcereal_fra_2023_dekad``) is long: 24,684 rows, one per
(field, dekad), 500 fields, 51 dekads from 2022-09-01 to 2024-01-21; 65535 = no data in
every band column. Not every field has every dekad: 291 fields have 51 rows, the others
37-50 (the union of dates is 51).

Label mapping derived here (``ewoc_code`` -> CROPTYPE28 name -> project class), with the
number of fields of each code in this table. Rules apply in order, first match wins::

    rule                                        code         CROPTYPE28 name     n  class
    names [maize]                               1101060000   maize              83  maize
                                                1101060001   maize               5  maize
    names [wheat, spring_wheat]                 1101010011   wheat              55  wheat
                                                1101010040   wheat               2  wheat
                                                1101010021   wheat               1  wheat
                                                1101010012   spring_wheat        2  wheat
                                                1101010022   spring_wheat        1  wheat
    names [barley, spring_barley]               1101020011   barley             11  barley
                                                1101020012   spring_barley       5  barley
    names [oats, spring_oats]                   1101040011   oats                3  oats
                                                1101040012   spring_oats         2  oats
    names [rye, spring_rye]                     1101030011   rye                 3  rye
    names [grass_fodder_crops]                  1111040000   grass_fodder_crops 10  grassland
      (temporary grass and fodder leys;         1111020010   grass_fodder_crops  3  grassland
       LANDCOVER10: temporary_grasses)          1111020030   grass_fodder_crops  2  grassland
    prefix 2001 (LANDCOVER10: grasslands)       2001020022   no_temporary_crop 113  grassland
                                                2001020021   no_temporary_crop  26  grassland
    codes [2000000000, 2501000000]              2000000000   no_temporary_crop  18  grassland
      (LANDCOVER10: grasslands; not prefix "2": 2501000000   no_temporary_crop   1  grassland
       20xx/25xx also hold wetlands, shrubland)
    prefix 12 (permanent crops: vines,          1201000010   no_temporary_crop  13  non_crop
      orchards, nuts, nurseries)                1201000000   no_temporary_crop   9  non_crop
                                                1201040000   no_temporary_crop   4  non_crop
                                                1201010110   no_temporary_crop   2  non_crop
                                                1206000000   no_temporary_crop   1  non_crop
                                                1207000000   no_temporary_crop   1  non_crop
    prefix 1115 (not cultivated / fallow;       1115000000   (no name)          29  non_crop
      CROPTYPE24 calls it no_crop)
    names [sunflower, rapeseed_rape, ...]       1106000010   sunflower          21  other_crop
      (every other CROPTYPE28 crop name)        1106000031   rapeseed_rape      14  other_crop
                                                1106000032   rapeseed_rape       2  other_crop
                                                1106000020   soy_soybeans       13  other_crop
                                                1101050001   triticale           9  other_crop
                                                1101050002   spring_triticale    1  other_crop
                                                1105010032   dry_pulses_legumes  7  other_crop
                                                1105010022   dry_pulses_legumes  5  other_crop
                                                1105000030   dry_pulses_legumes  1  other_crop
                                                1101070000   sorghum             2  other_crop
                                                1106000071   other_oilseed       2  other_crop
                                                1106000072   other_oilseed       1  other_crop
                                                1106000110   other_oilseed       1  other_crop
                                                1103020040   vegetables_fruits   1  other_crop
                                                1103120010   vegetables_fruits   1  other_crop
                                                1110000000   flower_crops        1  other_crop
                                                1108020020   fibre_crops         1  other_crop
                                                1107000010   potatoes            1  other_crop
    prefix 11 (temporary crops the legend       1106000000   (no name)           6  other_crop
      does not name: oilseeds unspecified,      1114000000   (no name)           3  other_crop
      mixed arable, pseudocereals)              1102000020   (no name)           2  other_crop

    -> maize 88, wheat 61, barley 16, oats 5, rye 3, other_crop 95, grassland 173,
       non_crop 59; 0 unmapped (500 fields).

The data README's CROPTYPE28 counts (no_temporary_crop 188, maize 88, wheat 58 + 3 spring
wheat, sunflower 21, rapeseed 16, barley 11 + 5 spring, triticale 9, oats 3 + 2 spring,
rye 3) are checked with the legend's own names as classes; its "40 codes have no
CROPTYPE28 name" is 4 codes (1115000000, 1106000000, 1114000000, 1102000020) on 40 fields.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.classify.samples import (
    LabelMapping,
    SampleSet,
    SampleTableConfig,
    load_samples,
    map_labels,
    to_arrays,
)
from cluster.config import parse_config
from cluster.errors import ConfigError, DataError
from tests._data import shared_data

TABLE = "2023_FRA_LPIS_POLY_110.geoparquet"
LEGEND = "class_mappings.json"

S2 = {"blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
      "rededge3": "B07", "nir": "B08", "nir08": "B8A", "swir16": "B11", "swir22": "B12"}


def _s2(band: str) -> dict[str, Any]:
    return {"column": f"S2-L2A-{band}", "nodata": [65535], "scale": 1e-4}  # reflectance x 10,000


BANDS: dict[str, Any] = {
    **{name: _s2(b) for name, b in S2.items()},
    "vv": {"column": "S1-SIGMA0-VV", "nodata": [65535], "transform": "db_from_uint16"},
    "vh": {"column": "S1-SIGMA0-VH", "nodata": [65535], "transform": "db_from_uint16"},
    # kelvin x 100 -> degrees Celsius; mm x 100 -> mm
    "tmean": {"column": "AGERA5-TMEAN", "nodata": [65535], "scale": 0.01, "offset": -273.15},
    "precip": {"column": "AGERA5-PRECIP", "nodata": [65535], "scale": 0.01},
}

OTHER_CROP_NAMES = ["sunflower", "rapeseed_rape", "soy_soybeans", "triticale", "spring_triticale",
                    "dry_pulses_legumes", "sorghum", "millet", "rice", "potatoes", "sugarbeet",
                    "other_oilseed", "other_root_tuber", "vegetables_fruits", "fibre_crops",
                    "flower_crops", "herb_spice_medicinal_crops"]
NAME_RULES: list[dict[str, Any]] = [
    {"names": ["maize"], "to": "maize"},
    {"names": ["wheat", "spring_wheat"], "to": "wheat"},
    {"names": ["barley", "spring_barley"], "to": "barley"},
    {"names": ["oats", "spring_oats"], "to": "oats"},
    {"names": ["rye", "spring_rye"], "to": "rye"},
    {"names": ["grass_fodder_crops"], "to": "grassland"},
]
CODE_RULES: list[dict[str, Any]] = [
    {"prefix": "2001", "to": "grassland"},
    {"codes": [2000000000, 2501000000], "to": "grassland"},
    {"prefix": "12", "to": "non_crop"},
    {"prefix": "1115", "to": "non_crop"},
]
RULES = [*NAME_RULES, *CODE_RULES, {"names": OTHER_CROP_NAMES, "to": "other_crop"},
         {"prefix": "11", "to": "other_crop"}]
EXPECTED_COUNTS = {"wheat": 61, "barley": 16, "oats": 5, "rye": 3, "maize": 88, "other_crop": 95,
                   "grassland": 173, "non_crop": 59}


@pytest.fixture(scope="module")
def wc_dir() -> Path:
    return shared_data("worldcereal_fra_2023_dekad")


def _table(wc_dir: Path, bands: dict[str, Any] | None = None, **over: Any) -> SampleTableConfig:
    cfg: dict[str, Any] = {
        "paths": [str(wc_dir / TABLE)], "layout": "long", "id_column": "sample_id",
        "label_column": "ewoc_code", "time_column": "timestamp", "bands": BANDS if bands is None else bands,
        "group_columns": ["tile", "h3_l3_cell"], "lon_column": "lon", "lat_column": "lat",
    }
    cfg.update(over)
    return SampleTableConfig.model_validate(cfg)


def _mapping(wc_dir: Path, rules: list[dict[str, Any]] = RULES, **over: Any) -> LabelMapping:
    return LabelMapping.model_validate({"legend": {"path": str(wc_dir / LEGEND), "name": "CROPTYPE28"},
                                        "rules": rules, **over})


@pytest.fixture(scope="module")
def samples(wc_dir: Path) -> SampleSet:
    return load_samples(_table(wc_dir), _mapping(wc_dir))


@pytest.fixture(scope="module")
def raw(wc_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(wc_dir / TABLE)


# --- the long table -----------------------------------------------------------------------


def test_load_samples__worldcereal_long_table_shape_and_layout(samples: SampleSet) -> None:
    f = samples.frame
    assert list(f.columns) == ["sample_id", "date", *BANDS, "label", "class", "tile", "h3_l3_cell", "lon", "lat"]
    assert samples.bands == tuple(BANDS)
    assert len(f) == 24_684  # AgERA5 is never missing, so no row is all-missing
    assert samples.n_samples == 500
    assert f["date"].dtype == np.dtype("datetime64[ns]")
    assert all(f[b].dtype == np.float32 for b in BANDS)
    dates = np.sort(f["date"].unique())
    assert dates.size == 51
    assert (str(dates[0])[:10], str(dates[-1])[:10]) == ("2022-09-01", "2024-01-21")
    per = f.groupby("sample_id").size()
    # not "51 per sample": 291 fields have all 51 dekads, the others 37-50
    assert (per.max(), per.min(), int((per == 51).sum())) == (51, 37, 291)
    assert f.equals(f.sort_values(["sample_id", "date"]).reset_index(drop=True))
    assert set(f["tile"]) == {"30TYP", "30UYU", "30TYT", "30UYV"}
    assert f["h3_l3_cell"].nunique() == 3
    assert not f.duplicated(["sample_id", "date"]).any()


def test_load_samples__nodata_becomes_nan_and_values_are_physical(samples: SampleSet, raw: pd.DataFrame) -> None:
    f = samples.frame
    for name, spec in BANDS.items():
        # every 65535 became NaN, nothing else did (the rows are the same 24,684)
        assert int(f[name].isna().sum()) == int((raw[spec["column"]] == 65535).sum()), name
        assert not (f[name] == 65535).any()
    optical = f[list(S2)].to_numpy()
    present = optical[~np.isnan(optical)]
    assert present.size > 0 and present.min() >= 0.0 and present.max() <= 1.5
    assert f["nir08"].isna().all()  # B8A is 65535 in every row of this table
    vv = f["vv"].dropna()
    assert -30.0 <= vv.min() and vv.max() <= 5.5  # dB; one bright target reaches 5.1 dB
    assert -26.0 < vv.min() < -25.0  # DN 752: 20*log10(752) - 83
    assert f["vh"].dropna().median() == pytest.approx(-17.7, abs=0.1)
    assert f["tmean"].median() == pytest.approx(12.4, abs=0.1)  # degrees C
    assert 0.0 < f["precip"].min() and f["precip"].max() < 120.0  # mm per dekad
    assert any(i.startswith("missing values per band") and "nir08 100.0 %" in i for i in samples.issues)
    assert any("['nir08'] have no valid value at all" in i for i in samples.issues)


def test_load_samples__agera5_tmean_glitch_on_2023_01_11(samples: SampleSet) -> None:
    # A known fault of the shipped table, pinned so that nobody "discovers" it again: on the
    # dekad of 2023-01-11 every field's AgERA5 mean temperature is about -23 C (250 K), while
    # the dekads around it are about +8 C. Feature code should treat it as an outlier.
    by_date = samples.frame.groupby("date")["tmean"].median()
    assert by_date[pd.Timestamp("2023-01-11")] < -20.0
    assert by_date[pd.Timestamp("2023-01-01")] > 5.0 and by_date[pd.Timestamp("2023-01-21")] > 0.0


# --- labels -------------------------------------------------------------------------------


def test_load_samples__worldcereal_mapping_class_counts(samples: SampleSet) -> None:
    assert samples.classes == ("wheat", "barley", "oats", "rye", "maize", "other_crop", "grassland", "non_crop")
    assert samples.counts == EXPECTED_COUNTS
    assert samples.unmapped == {}
    per = samples.frame.groupby("sample_id").first()
    assert per.loc[per["label"] == "1101010012", "class"].unique().tolist() == ["wheat"]  # spring wheat
    assert per.loc[per["label"] == "1115000000", "class"].unique().tolist() == ["non_crop"]  # fallow


def test_map_labels__croptype28_names_agree_with_data_readme(samples: SampleSet, wc_dir: Path) -> None:
    per = samples.frame.groupby("sample_id")["label"].first()
    names = ["no_temporary_crop", "maize", "wheat", "spring_wheat", "sunflower", "rapeseed_rape", "barley",
             "spring_barley", "triticale", "oats", "spring_oats", "rye"]
    # no rules: a legend name equal to a class name maps to it
    mapping = LabelMapping.model_validate({"classes": names, "legend": {"path": str(wc_dir / LEGEND),
                                                                          "name": "CROPTYPE28"}})
    classes, unmapped = map_labels(per, mapping)
    counts = classes.value_counts().to_dict()
    assert counts == {"no_temporary_crop": 188, "maize": 88, "wheat": 58, "spring_wheat": 3, "sunflower": 21,
                      "rapeseed_rape": 16, "barley": 11, "spring_barley": 5, "triticale": 9, "oats": 3,
                      "spring_oats": 2, "rye": 3}
    nameless = {"1115000000": 29, "1106000000": 6, "1114000000": 3, "1102000020": 2}
    assert {k: unmapped[k] for k in nameless} == nameless  # the README's "40 codes": 4 codes, 40 fields
    assert sum(unmapped.values()) == 500 - sum(counts.values())


def test_map_labels__landcover10_names_agree_with_data_readme(samples: SampleSet, wc_dir: Path) -> None:
    per = samples.frame.groupby("sample_id")["label"].first()
    mapping = LabelMapping.model_validate({
        "classes": ["temporary_crops", "grasslands", "permanent_crops", "temporary_grasses"],
        "legend": {"path": str(wc_dir / LEGEND), "name": "LANDCOVER10"}})
    classes, unmapped = map_labels(per, mapping)
    assert classes.value_counts().to_dict() == {"temporary_crops": 266, "grasslands": 158,
                                                "permanent_crops": 28, "temporary_grasses": 15}
    # 'ignore' in LANDCOVER10 counts as unmapped: fallow, a flower crop, a vegetable, nurseries
    assert unmapped == {"1115000000": 29, "1103120010": 1, "1110000000": 1, "1206000000": 1, "1207000000": 1}


def test_load_samples__unmapped_labels_are_counted_and_reported(wc_dir: Path) -> None:
    # without the code rules: the codes whose CROPTYPE28 name is no_temporary_crop or absent
    rules = [*NAME_RULES, {"names": OTHER_CROP_NAMES, "to": "other_crop"}]
    got = load_samples(_table(wc_dir, bands={"red": _s2("B04")}), _mapping(wc_dir, rules))
    assert got.unmapped == {"2001020022": 113, "1115000000": 29, "2001020021": 26, "2000000000": 18,
                            "1201000010": 13, "1201000000": 9, "1106000000": 6, "1201040000": 4,
                            "1114000000": 3, "1102000020": 2, "1201010110": 2, "1206000000": 1,
                            "1207000000": 1, "2501000000": 1}
    # one field (dry pulses, 43 dekads) has no valid Sentinel-2 value at all: with red as the
    # only band it has no row left, and is reported as gone (it is neither counted nor unmapped)
    gone = "2023_FRA_LPIS_POLY_110_6394091"
    assert any(f"1 sample(s) have no valid value at all and are gone, e.g. ['{gone}']" in i for i in got.issues)
    assert sum(got.counts.values()) + sum(got.unmapped.values()) == 499
    assert got.n_samples == sum(got.counts.values())
    assert not got.frame["label"].isin(list(got.unmapped)).any()
    note = next(i for i in got.issues if "unmapped" in i)
    assert note.startswith("228 sample(s) with unmapped labels were left out: '2001020022' (113 samples, "
                           "CROPTYPE28: no_temporary_crop), '1115000000' (29 samples, CROPTYPE28: no name)")


def test_load_samples__unmapped_error_names_the_labels(wc_dir: Path) -> None:
    rules = [*NAME_RULES, *CODE_RULES, {"names": OTHER_CROP_NAMES, "to": "other_crop"}]  # no prefix 11
    with pytest.raises(DataError, match=re.escape(
            "11 sample(s) have labels that no rule maps to a class: '1106000000' (6 samples, CROPTYPE28: "
            "no name), '1114000000' (3 samples, CROPTYPE28: no name), '1102000020' (2 samples, CROPTYPE28: "
            "no name); add rules for them, or set unmapped: drop")):
        load_samples(_table(wc_dir, bands={"red": _s2("B04")}), _mapping(wc_dir, rules, unmapped="error"))


def test_map_labels__free_text_and_codes_without_legend() -> None:
    mapping = LabelMapping.model_validate({"rules": [
        {"names": ["Winter wheat", "blé tendre"], "to": "wheat"},
        {"code_range": [200, 299], "to": "grassland"},
        {"codes": [7, "MIS"], "to": "maize"},
    ]})
    labels = pd.Series([" winter WHEAT", "Blé tendre ", 250, 250.0, "7", 7.0, "MIS", "soy", None],
                       index=list("abcdefghi"))
    classes, unmapped = map_labels(labels, mapping)
    assert classes.tolist()[:7] == ["wheat", "wheat", "grassland", "grassland", "maize", "maize", "maize"]
    assert classes[["h", "i"]].isna().all()
    assert unmapped == {"<missing>": 1, "soy": 1}


# --- one normalisation for both layouts ----------------------------------------------------


def _per_sample(raw: pd.DataFrame) -> pd.DataFrame:
    return raw.groupby("sample_id")[["ewoc_code", "tile", "h3_l3_cell", "lon", "lat"]].first()


def _wide(raw: pd.DataFrame, column: str, name: Callable[[pd.Timestamp, int], str]) -> pd.DataFrame:
    w = raw.pivot(index="sample_id", columns="timestamp", values=column)  # absent rows -> NaN
    w.columns = [name(d, k) for k, d in enumerate(w.columns)]
    return w


def _two_bands(**where: str) -> dict[str, Any]:
    return {b: {**_s2(band), **({"pattern": where[b]} if b in where else {})}
            for b, band in (("red", "B04"), ("nir", "B08"))}


def test_load_samples__wide_by_date_equals_long(wc_dir: Path, raw: pd.DataFrame, tmp_path: Path) -> None:
    wide = _per_sample(raw).join([_wide(raw, "S2-L2A-B04", lambda d, k: f"B04_{d:%Y%m%d}"),
                                  _wide(raw, "S2-L2A-B08", lambda d, k: f"B08_{d:%Y%m%d}")]).reset_index()
    path = tmp_path / "wide.parquet"
    wide.to_parquet(path)

    long = load_samples(_table(wc_dir, bands=_two_bands()), _mapping(wc_dir))
    bands = {b: {k: v for k, v in spec.items() if k != "column"}
             for b, spec in _two_bands(red="B04_{date:%Y%m%d}", nir="B08_{date:%Y%m%d}").items()}
    got = load_samples(_table(wc_dir, bands=bands, paths=[str(path)], layout="wide", time_column=None),
                       _mapping(wc_dir))
    common = [c for c in long.frame.columns if c in got.frame.columns]
    assert common == list(long.frame.columns) == list(got.frame.columns)
    pd.testing.assert_frame_equal(got.frame[common], long.frame[common])
    assert got.counts == long.counts and got.unmapped == long.unmapped == {}
    # the wide table has a cell for all 51 x 500 (sample, date) pairs; the 816 absent from
    # the long table, and the rows where both bands are 65535, have no value and are left out
    assert len(got.frame) < 500 * 51
    assert any("no valid value in any band were left out" in i for i in got.issues)


def test_load_samples__wide_by_step_csv_equals_long(wc_dir: Path, raw: pd.DataFrame, tmp_path: Path) -> None:
    # Dekads are not a fixed number of days apart (the 21st to the 1st is 8-11 days), so a
    # {step} table with step_days=10 can only hold an evenly spaced run: the first six dekads,
    # 2022-09-01 .. 2022-10-21. One band's steps are zero-padded, the other's are not.
    first = raw[raw["timestamp"] <= "2022-10-21"]
    assert sorted(first["timestamp"].unique()) == list(pd.date_range("2022-09-01", periods=6, freq="10D"))
    wide = _per_sample(raw).join([_wide(first, "S2-L2A-B04", lambda d, k: f"OPTICAL-B04-ts{k}-10m"),
                                  _wide(first, "S2-L2A-B08", lambda d, k: f"OPTICAL-B08-ts{k:02d}-10m")])
    path = tmp_path / "wide_steps.csv"
    wide.reset_index().to_csv(path, index=False)

    long = load_samples(_table(wc_dir, bands=_two_bands()), _mapping(wc_dir))
    expected = long.frame[long.frame["date"] <= "2022-10-21"].reset_index(drop=True)
    bands = {b: {k: v for k, v in spec.items() if k != "column"}
             for b, spec in _two_bands(red="OPTICAL-B04-ts{step}-10m", nir="OPTICAL-B08-ts{step}-10m").items()}
    got = load_samples(_table(wc_dir, bands=bands, paths=[str(path)], layout="wide", time_column=None,
                              start="2022-09-01", step_days=10), _mapping(wc_dir))
    common = [c for c in expected.columns if c in got.frame.columns]
    assert common == list(got.frame.columns)
    pd.testing.assert_frame_equal(got.frame[common], expected[common])


# --- errors -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectFail:
    id: str
    run: Callable[[Path, Path], object]
    """(data dir, tmp dir) -> the call that must fail."""
    error: type[Exception]
    match: str
    """A regex searched in the message."""


def _dup_table(wc: Path, tmp: Path) -> SampleSet:
    raw = pd.read_parquet(wc / TABLE).head(120)
    path = tmp / "dups.parquet"
    pd.concat([raw, raw.iloc[[3, 7, 7]]], ignore_index=True).to_parquet(path)
    return load_samples(_table(wc, bands={"red": _s2("B04")}, paths=[str(path)]), _mapping(wc))


def _garbage(wc: Path, tmp: Path) -> SampleSet:
    path = tmp / "broken.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    return load_samples(_table(wc, paths=[str(path)]), _mapping(wc))


ERRORS = [
    ExpectFail("band-column-missing",
               lambda wc, tmp: load_samples(_table(wc, bands={"red": {**_s2("B04"), "column": "S2-L2A-B4"}}),
                                            _mapping(wc)),
               ConfigError,
               r"^band 'red': column 'S2-L2A-B4' is not a column of '.*2023_FRA_LPIS_POLY_110\.geoparquet'; "
               r"closest columns: \['S2-L2A-B04', 'S2-L2A-B8A', 'S2-L2A-B12', 'S2-L2A-B11', 'S2-L2A-B08'\] "
               r"\(34 columns in all\); fix bands\.red\.column$"),
    ExpectFail("pattern-matches-nothing",
               lambda wc, tmp: load_samples(
                   _table(wc, bands={"red": {"pattern": "B04_{date:%Y%m%d}"}}, layout="wide", time_column=None),
                   _mapping(wc)),
               ConfigError,
               r"^band 'red': pattern 'B04_\{date:%Y%m%d\}' matches no column of '.*\.geoparquet'; "
               r"closest columns: \['S2-L2A-B04', .*\] \(34 columns in all\); fix bands\.red\.pattern$"),
    ExpectFail("date-format-does-not-fit",
               lambda wc, tmp: load_samples(
                   _table(wc, bands={"red": {"pattern": "S2-L2A-B{date:%Y%m%d}"}}, layout="wide",
                          time_column=None),
                   _mapping(wc)),
               ConfigError,
               r"matches no column of .*; 10 column\(s\) fit the text around the placeholder but not its date "
               r"format '%Y%m%d', e\.g\. \['S2-L2A-B02', 'S2-L2A-B03', 'S2-L2A-B04', 'S2-L2A-B05', 'S2-L2A-B06'\]"),
    ExpectFail("group-column-missing",
               lambda wc, tmp: load_samples(_table(wc, group_columns=["tiles"]), _mapping(wc)),
               ConfigError,
               r"^group_columns\[0\] 'tiles' is not a column of '.*'; closest columns: \['tile', "),
    ExpectFail("rule-to-unknown-class",
               lambda wc, tmp: parse_config(LabelMapping, {"rules": [{"names": ["maize"], "to": "maize"},
                                                                     {"prefix": "1101", "to": "cereals"}]}),
               ConfigError,
               r"rules\[1\] \(prefix='1101'\) maps to 'cereals', which is not a class; classes: \['wheat', "
               r"'barley', 'oats', 'rye', 'maize', 'other_crop', 'grassland', 'non_crop'\]; fix the rule's "
               r"'to' or add the class to classes"),
    ExpectFail("rule-with-two-matchers",
               lambda wc, tmp: parse_config(LabelMapping, {"rules": [{"names": ["x"], "prefix": "1", "to": "rye"}]}),
               ConfigError,
               r"a label rule sets exactly one of codes, code_range, prefix, names; this one \(to='rye'\) sets "
               r"\['prefix', 'names'\]"),
    ExpectFail("missing-file",
               lambda wc, tmp: load_samples(_table(wc, paths=[str(tmp / "nope.parquet")]), _mapping(wc)),
               ConfigError,
               r"^sample file '.*nope\.parquet' does not exist \(from '.*'\); give the path of a Parquet or "
               r"CSV file$"),
    ExpectFail("glob-matches-nothing",
               lambda wc, tmp: load_samples(_table(wc, paths=[str(tmp / "*.parquet")]), _mapping(wc)),
               ConfigError, r"^paths\[0\] '.*\*\.parquet' matches no file"),
    ExpectFail("unreadable-file", _garbage, ConfigError,
               r"^sample file '.*broken\.parquet' cannot be read \(.*\); check that it is a complete Parquet or "
               r"CSV file$"),
    ExpectFail("column-and-pattern",
               lambda wc, tmp: parse_config(SampleTableConfig, {
                   "paths": ["x.parquet"], "layout": "long", "id_column": "id", "label_column": "code",
                   "time_column": "t", "bands": {"red": {"column": "B04", "pattern": "B04_{date:%Y%m%d}"}}}),
               ConfigError,
               r"band 'red' sets both column='B04' and pattern='B04_\{date:%Y%m%d\}'; set only column "
               r"\(layout 'long'\)"),
    ExpectFail("column-in-wide-layout",
               lambda wc, tmp: parse_config(SampleTableConfig, {
                   "paths": ["x.parquet"], "layout": "wide", "id_column": "id", "label_column": "code",
                   "bands": {"red": {"column": "B04"}}}),
               ConfigError, r"band 'red' sets column='B04', but layout 'wide' takes a column-name pattern"),
    ExpectFail("pattern-two-placeholders",
               lambda wc, tmp: parse_config(SampleTableConfig, {
                   "paths": ["x.parquet"], "layout": "wide", "id_column": "id", "label_column": "code",
                   "bands": {"red": {"pattern": "B04_{date:%Y}_{step}"}}}),
               ConfigError, r"band 'red': pattern 'B04_\{date:%Y\}_\{step\}' has 2 placeholders; it needs "
                            r"exactly one"),
    ExpectFail("step-without-start",
               lambda wc, tmp: parse_config(SampleTableConfig, {
                   "paths": ["x.parquet"], "layout": "wide", "id_column": "id", "label_column": "code",
                   "bands": {"red": {"pattern": "B04-ts{step}"}}}),
               ConfigError, r"band\(s\) \['red'\] use a \{step\} pattern, which needs start"),
    ExpectFail("long-without-time-column",
               lambda wc, tmp: parse_config(SampleTableConfig, {
                   "paths": ["x.parquet"], "layout": "long", "id_column": "id", "label_column": "code",
                   "bands": {"red": {"column": "B04"}}}),
               ConfigError, r"layout 'long' needs time_column"),
    ExpectFail("band-named-like-a-frame-column",
               lambda wc, tmp: parse_config(SampleTableConfig, {
                   "paths": ["x.parquet"], "layout": "long", "id_column": "id", "label_column": "code",
                   "time_column": "t", "bands": {"date": {"column": "B04"}}}),
               ConfigError, r"band or group column name\(s\) \['date'\] are reserved"),
    ExpectFail("legend-name-wrong",
               lambda wc, tmp: load_samples(
                   _table(wc, bands={"red": _s2("B04")}),
                   LabelMapping.model_validate({"legend": {"path": str(wc / LEGEND), "name": "CROPTYPE_28"},
                                                "rules": RULES})),
               ConfigError, r"^legend 'CROPTYPE_28' is not in '.*class_mappings\.json'; it holds \[.*\] "
                            r"\(closest: \['CROPTYPE28', "),
    ExpectFail("duplicate-sample-date-rows", _dup_table, DataError,
               r"^2 \(sample_id, date\) pair\(s\) of '.*dups\.parquet' have more than one row, e\.g\. "
               r"\[\('2023_FRA_LPIS_POLY_110_\d+', '2022-09-01'\), \('2023_FRA_LPIS_POLY_110_\d+', "
               r"'2022-09-01'\)\]; keep one row per sample and date, or check that id_column 'sample_id' "
               r"identifies one time series$"),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c.id for c in ERRORS])
def test_load_samples__errors(case: ExpectFail, wc_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(case.error, match=case.match):
        case.run(wc_dir, tmp_path)


def test_load_samples__label_changing_within_a_sample_is_refused(wc_dir: Path, tmp_path: Path) -> None:
    raw = pd.read_parquet(wc_dir / TABLE)
    raw = raw[raw["sample_id"].isin(raw["sample_id"].unique()[:3])].reset_index(drop=True)
    sid = raw["sample_id"].iloc[0]
    raw.loc[raw.index[raw["sample_id"] == sid][-1], "ewoc_code"] = 1101060000
    raw.loc[raw.index[raw["sample_id"] == sid][0], "ewoc_code"] = 1101010011
    path = tmp_path / "mixed.parquet"
    raw.to_parquet(path)
    with pytest.raises(DataError, match=rf"^1 sample\(s\) of '.*mixed\.parquet' change label_column 'ewoc_code' "
                                        rf"between their rows, e\.g\. \{{'{sid}': \['1101010011', '1101060000'\]\}}"):
        load_samples(_table(wc_dir, bands={"red": _s2("B04")}, paths=[str(path)]), _mapping(wc_dir))


# --- to_arrays ------------------------------------------------------------------------------


def test_to_arrays__round_trip_on_worldcereal(samples: SampleSet) -> None:
    f = samples.frame
    ids, dates, values = samples.to_arrays()
    assert ids.shape == (500,) and dates.shape == (51,) and dates.dtype == np.dtype("datetime64[ns]")
    assert list(ids) == sorted(f["sample_id"].unique())
    n = np.searchsorted(ids, f["sample_id"].to_numpy().astype(str))
    t = np.searchsorted(dates, f["date"].to_numpy())
    for b in BANDS:
        arr = values[b]
        assert arr.shape == (51, 500) and arr.dtype == np.float32
        np.testing.assert_array_equal(arr[t, n], f[b].to_numpy())  # NaN == NaN here
        # a cell without a row is NaN: the cells that hold values are exactly the frame's
        assert int((~np.isnan(arr)).sum()) == int(f[b].notna().sum())
    assert int(np.isnan(values["tmean"]).sum()) == 51 * 500 - len(f)  # the 816 absent rows


@given(st.data())
def test_to_arrays__matches_a_dense_oracle(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 6), label="samples")
    t = data.draw(st.integers(1, 5), label="dates")
    present = np.array(data.draw(st.lists(st.booleans(), min_size=n * t, max_size=n * t)), dtype=bool).reshape(t, n)
    values = np.arange(t * n, dtype=np.float32).reshape(t, n)
    ids = np.array([f"s{k}" for k in range(n)])
    days = np.array([np.datetime64(dt.date(2023, 1, 1) + dt.timedelta(days=10 * k), "ns") for k in range(t)])
    ti, ni = np.nonzero(present)
    frame = pd.DataFrame({"sample_id": ids[ni], "date": days[ti], "x": values[ti, ni]})
    frame = frame.sample(frac=1.0, random_state=data.draw(st.integers(0, 2**16), label="seed"))
    got_ids, got_dates, got = to_arrays(frame, ["x"])
    keep_n, keep_t = present.any(axis=0), present.any(axis=1)
    assert got_ids.tolist() == ids[keep_n].tolist()
    np.testing.assert_array_equal(got_dates, days[keep_t])
    oracle = np.where(present, values, np.nan)[np.ix_(keep_t, keep_n)]
    np.testing.assert_array_equal(got["x"], oracle)


def test_to_arrays__duplicate_rows_refused() -> None:
    f = pd.DataFrame({"sample_id": ["a", "a"], "date": pd.to_datetime(["2023-01-01"] * 2), "x": [1.0, 2.0]})
    with pytest.raises(DataError, match=re.escape("1 (sample_id, date) pair(s) with more than one row, e.g. "
                                                  "[('a', '2023-01-01')]")):
        to_arrays(f, ["x"])


def test_load_samples__long_csv_equals_long_parquet(wc_dir: Path, raw: pd.DataFrame, tmp_path: Path) -> None:
    # CSV: dates are ISO text, ids and labels are read as text, floats must round-trip
    some = raw[raw["sample_id"].isin(raw["sample_id"].unique()[:40])]
    pq_path, csv_path = tmp_path / "some.parquet", tmp_path / "some.csv"
    some.to_parquet(pq_path)
    some.drop(columns=["geometry"]).to_csv(csv_path, index=False)
    from_pq = load_samples(_table(wc_dir, paths=[str(pq_path)]), _mapping(wc_dir))
    from_csv = load_samples(_table(wc_dir, paths=[str(tmp_path / "some.*v")]), _mapping(wc_dir))  # a glob
    pd.testing.assert_frame_equal(from_csv.frame, from_pq.frame)
    assert from_csv.counts == from_pq.counts and from_pq.n_samples == 40


def test_load_samples__tables_on_object_storage_equal_local_ones(wc_dir: Path, raw: pd.DataFrame, tmp_path: Path,
                                                                 s3_bucket: str, s3_options: dict) -> None:
    """Public training sets live in buckets: Parquet and CSV files on S3 (the loopback server),
    named by a glob, read as the same files on disk are; a missing one says so."""
    import s3fs

    some = raw[raw["sample_id"].isin(raw["sample_id"].unique()[:40])]
    some.iloc[: len(some) // 2].to_parquet(tmp_path / "part-0.parquet")
    some.iloc[len(some) // 2:].to_parquet(tmp_path / "part-1.parquet")
    some.drop(columns=["geometry"]).to_csv(tmp_path / "all.csv", index=False)
    fs = s3fs.S3FileSystem(**s3_options)
    for name in ("part-0.parquet", "part-1.parquet", "all.csv"):
        fs.put_file(str(tmp_path / name), f"{s3_bucket}/rdm/{name}")
    local = load_samples(_table(wc_dir, paths=[str(tmp_path / "part-*.parquet")]), _mapping(wc_dir))
    assert local.n_samples == 40
    for remote in ([f"s3://{s3_bucket}/rdm/part-*.parquet"], [f"s3://{s3_bucket}/rdm/all.csv"]):
        got = load_samples(_table(wc_dir, paths=remote), _mapping(wc_dir), s3_options)
        pd.testing.assert_frame_equal(got.frame, local.frame)
        assert got.counts == local.counts
    # the legend may live beside the tables
    fs.put_file(str(wc_dir / LEGEND), f"{s3_bucket}/rdm/legend.json")
    both = load_samples(_table(wc_dir, paths=[f"s3://{s3_bucket}/rdm/part-*.parquet"]), _mapping(
        wc_dir, legend={"path": f"s3://{s3_bucket}/rdm/legend.json", "name": "CROPTYPE28"}), s3_options)
    pd.testing.assert_frame_equal(both.frame, local.frame)
    assert both.issues == local.issues
    with pytest.raises(ConfigError, match=r"legend file 's3://.*/rdm/gone.json' does not exist"):
        load_samples(_table(wc_dir, paths=[f"s3://{s3_bucket}/rdm/all.csv"]), _mapping(
            wc_dir, legend={"path": f"s3://{s3_bucket}/rdm/gone.json", "name": "CROPTYPE28"}), s3_options)
    with pytest.raises(ConfigError, match=r"paths\[0\] 's3://.*/rdm/none-\*.parquet' matches no file"):
        load_samples(_table(wc_dir, paths=[f"s3://{s3_bucket}/rdm/none-*.parquet"]), _mapping(wc_dir), s3_options)
    with pytest.raises(ConfigError, match=r"sample file 's3://.*/rdm/gone.csv' does not exist"):
        load_samples(_table(wc_dir, paths=[f"s3://{s3_bucket}/rdm/gone.csv"]), _mapping(wc_dir), s3_options)
