"""Season windows follow CY-Bench; features see nothing after the cut-off."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cluster.forecast import parse_lead_time
from cluster.forecast.features import build_features, cutoff_days, season_windows


@pytest.mark.parametrize("sos, eos, season_start, length", [
    (305, 190, "2019-11-01", 250),   # winter crop: spans the new year
    (44, 214, "2020-02-13", 170),    # NL calendar: within the year
], ids=["winter-crop", "same-year"])
def test_season_windows__year_boundary(sos, eos, season_start, length):
    cal = pd.DataFrame({"region_id": ["A"], "crop": ["c"], "sos_doy": [sos], "eos_doy": [eos]})
    w = season_windows(cal, [2020])
    assert str(w["sos_date"][0].date()) == season_start
    assert int(w["season_length_d"][0]) == length


def test_cutoff_days__lead_times():
    lengths = np.array([250, 171])
    assert cutoff_days(parse_lead_time("middle-of-season"), lengths).tolist() == [125, 85]
    assert cutoff_days(parse_lead_time("6-weeks"), lengths).tolist() == [42, 42]
    assert cutoff_days(parse_lead_time("14-days"), lengths).tolist() == [14, 14]


def test_build_features__ignore_observations_after_cutoff():
    dates = pd.date_range("2019-08-01", "2020-08-30", freq="8D")
    rng = np.random.default_rng(1)
    s = pd.DataFrame({"region_id": "A", "index": "ndvi", "date": dates, "mean": rng.uniform(0.1, 0.9, len(dates))})
    cal = pd.DataFrame({"region_id": ["A"], "crop": ["c"], "sos_doy": [305], "eos_doy": [190]})
    w = season_windows(cal, [2020])
    w["cutoff_date"] = pd.Timestamp("2020-04-01")
    f1 = build_features(s, w, spinup_days=90, fractions=(0.25, 0.5, 0.75, 1.0))
    s2 = s.copy()
    late = s2["date"] > pd.Timestamp("2020-04-01")
    s2.loc[late, "mean"] = 5.0
    f2 = build_features(s2, w, spinup_days=90, fractions=(0.25, 0.5, 0.75, 1.0))
    pd.testing.assert_frame_equal(f1, f2, check_exact=True)
    early = s[(s["date"] >= pd.Timestamp("2019-08-03")) & (s["date"] <= pd.Timestamp("2020-04-01"))]
    assert f1["ndvi_peak"][0] == early["mean"].max()
    assert f1["ndvi_last"][0] == early["mean"].iloc[-1]
    assert f1["ndvi_f100"][0] == early["mean"].iloc[-1]  # past the cut-off: carried forward
    assert bool(f1["complete"][0])
