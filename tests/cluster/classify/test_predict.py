"""Planning a crop map: which seasons of a cube a model can map."""

from __future__ import annotations

import numpy as np

from cluster.classify.features import FeatureConfig, season_periods
from cluster.classify.model import CropModel
from cluster.classify.predict import _season_shortfall


def _model(share: list[float] | None = None) -> CropModel:
    features = FeatureConfig.model_validate({"season": {"start": "03-01", "end": "10-31", "period": "month"},
                                             "bands": ["red", "nir"], "indices": ["ndvi"]})
    return CropModel(None, ("wheat", "maize"), features, ("f",), {} if share is None else
                     {"period_observed_share": share})


def _every(first: str, last: str, days: int) -> np.ndarray:
    return np.arange(np.datetime64(first), np.datetime64(last) + 1, days).astype("datetime64[D]")


def test_season_shortfall__only_periods_past_the_cube_s_dates_that_the_model_saw():
    model = _model()
    assert len(season_periods(model.features.season, 2024)) == 8
    # the whole season every 10 days; a 40-day cloud gap inside it is interpolated, not short
    full = _every("2024-03-03", "2024-10-29", 10)
    assert _season_shortfall(model, 2024, full) is None
    assert _season_shortfall(model, 2024, full[(full < np.datetime64("2024-06-01"))
                                               | (full > np.datetime64("2024-07-10"))]) is None
    # a cube that stops in July lacks August to October
    why = _season_shortfall(model, 2024, _every("2024-03-03", "2024-07-10", 10))
    assert why is not None and "3 period(s) of the 2024 season" in why and "2024-08-01..2024-08-31" in why
    assert "run 2024-03-03 to 2024-07-01, 10 days apart at most" in why
    # ... or starts in May; a cube with 40-day revisits that stops 40 days short is not short
    assert "2 period(s)" in str(_season_shortfall(model, 2024, _every("2024-05-02", "2024-10-29", 10)))
    assert _season_shortfall(model, 2024, _every("2024-03-05", "2024-10-01", 40)) is None
    # periods the training samples rarely saw (a cloudy season's end) are not required
    rare_end = _model([1.0] * 5 + [0.2] * 3)
    assert _season_shortfall(rare_end, 2024, _every("2024-03-03", "2024-07-10", 10)) is None
    assert _season_shortfall(rare_end, 2024, _every("2024-03-03", "2024-06-10", 10)) is not None
