"""``harvest presets``: every preset's band files, scaling and mask rule, as text and JSON."""

from __future__ import annotations

import json

import pytest

from cluster.scenes import SENSORS
from jobs import presets


def test_presets__text_names_every_preset_band_and_mask(capsys: pytest.CaptureFixture) -> None:
    assert presets.main([]) == 0
    out = capsys.readouterr().out
    for name, preset in SENSORS.items():
        assert f"{name}: {preset.note}" in out
        for band, spec in preset.bands.items():
            assert f"  {band:10s} file token {spec.file!r}" in out
    assert "  red        file token 'B04'                x0.0001-0.1, nodata 0, valid -0.2..1.6" in out
    assert "mask: band 'scl', clear values [4, 5, 6, 7, 11]" in out
    assert "mask: band 'qa_pixel', cloud bits [1, 2, 3, 4]" in out


def test_presets__json_and_unknown_name(capsys: pytest.CaptureFixture) -> None:
    assert presets.main(["landsat-c2-l2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["bands"]["nir"] == {"file": "SR_B5", "scale": 2.75e-5, "offset": -0.2, "nodata": 0.0,
                                   "valid_range": [-0.2, 1.6]}
    assert presets.main(["sentinel3"]) == 2
    assert "no preset 'sentinel3'; known: sentinel2-l2a" in capsys.readouterr().err
