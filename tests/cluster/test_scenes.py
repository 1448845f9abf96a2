"""Scene discovery on real files: per-band patterns, multi-band files, STAC, dates."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from cluster.errors import ConfigError
from cluster.scenes import SENSORS, BandSpec, DateRule, discover_scenes, parse_date
from tests._data import shared_data


def test_scenes__per_band_files_group_into_scenes() -> None:
    root = shared_data("cbers4_awfi_cerrado_timeseries")
    bands = SENSORS["cbers4-awfi"].bands
    scenes, rejected = discover_scenes([str(root / "CBERS-4_AWFI_{band}_*.tif")], bands, DateRule())
    assert not rejected
    assert len(scenes) == 24
    assert [s.date for s in scenes] == sorted(s.date for s in scenes)
    first = scenes[0]
    assert first.date == dt.date(2017, 8, 29)
    assert first.assets["red"].url.endswith("CBERS-4_AWFI_B15_2017-08-29.tif")
    assert first.assets["cmask"].url.endswith("CBERS-4_AWFI_CMASK_2017-08-29.tif")
    assert first.nodata["red"] == -9999 and first.dtypes["red"] == "int16"


def test_scenes__multiband_file_by_description_and_metadata_date(tmp_path: Path) -> None:
    root = shared_data("sentinel2_slovenia_eolearn", "s2_l1c_13band")
    bands = {"red": BandSpec(description="B04"), "nir": BandSpec(description="B08"), "b8a": BandSpec(index=9)}
    scenes, rejected = discover_scenes([str(root / "*.tif")], bands, DateRule())
    assert len(scenes) == 5 and not rejected
    assert scenes[0].assets["red"].index == 4 and scenes[0].assets["nir"].index == 8
    bad = {"red": BandSpec(description="B4")}
    scenes, rejected = discover_scenes([str(root / "S2_L1C_2015-07-11.tif")], bad, DateRule())
    assert not scenes and "no band described 'B4'" in rejected[0].reason
    # no TIFFTAG_DATETIME in these files: said so, with the way out
    scenes, rejected = discover_scenes([str(root / "S2_L1C_2015-07-11.tif")], bands, DateRule(source="metadata"))
    assert not scenes and "no TIFFTAG_DATETIME tag" in rejected[0].reason


def test_scenes__stac_item_collection(tmp_path: Path) -> None:
    root = shared_data("cbers4_awfi_cerrado_timeseries")
    items = []
    for day in ("2017-08-29", "2017-09-14"):
        items.append({
            "type": "Feature", "stac_version": "1.0.0", "id": f"CBERS4-AWFI-{day}",
            "properties": {"datetime": f"{day}T13:20:00Z"},
            "assets": {b: {"href": str(root / f"CBERS-4_AWFI_{b}_{day}.tif")}
                       for b in ("B13", "B14", "B15", "B16", "CMASK")},
        })
    items[1]["assets"].pop("B16")
    path = tmp_path / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    scenes, rejected = discover_scenes([], SENSORS["cbers4-awfi"].bands, DateRule(source="stac"), stac=str(path))
    assert [s.id for s in scenes] == ["CBERS4-AWFI-2017-08-29"]
    assert "lacks asset(s) ['B16']" in rejected[0].reason
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        discover_scenes([], SENSORS["cbers4-awfi"].bands, DateRule(), stac=str(tmp_path / "broken.json"))


def test_scenes__no_match_is_reported(tmp_path: Path) -> None:
    scenes, rejected = discover_scenes([str(tmp_path / "*.tif")], {"red": BandSpec()}, DateRule())
    assert not scenes and rejected[0].reason == "no files match"


@pytest.mark.parametrize(("text", "fmt", "expected"), [
    ("2017-08-29", None, dt.date(2017, 8, 29)),
    ("20170829", None, dt.date(2017, 8, 29)),
    ("2015-07-11T10:00:08", None, dt.date(2015, 7, 11)),
    ("2017:08:29 06:30:00", "%Y:%m:%d %H:%M:%S", dt.date(2017, 8, 29)),
    ("29/08/2017", "%d/%m/%Y", dt.date(2017, 8, 29)),
], ids=["iso", "compact", "iso-time", "tiff-tag", "custom"])
def test_scenes__parse_date(text: str, fmt: str | None, expected: dt.date) -> None:
    assert parse_date(text, fmt) == expected


def test_scenes__band_files_in_dated_scene_folders(tmp_path: Path) -> None:
    """The COG layout of public Sentinel-2 buckets: one folder per scene, one file per band."""
    root = shared_data("cbers4_awfi_cerrado_timeseries")
    for folder, day in (("S2B_42UWB_20170829_0_L2A", "2017-08-29"), ("S2A_42UWB_20170914_0_L2A", "2017-09-14")):
        (tmp_path / folder).mkdir()
        for band, src in (("B04", "B15"), ("B08", "B16")):
            (tmp_path / folder / f"{band}.tif").write_bytes((root / f"CBERS-4_AWFI_{src}_{day}.tif").read_bytes())
    bands = {"red": BandSpec(file="B04"), "nir": BandSpec(file="B08")}
    scenes, rejected = discover_scenes([str(tmp_path / "*" / "{band}.tif")], bands, DateRule())
    assert not rejected
    assert [s.date for s in scenes] == [dt.date(2017, 8, 29), dt.date(2017, 9, 14)]
    assert scenes[0].assets["nir"].url.endswith("S2B_42UWB_20170829_0_L2A/B08.tif")
