"""Crop areas per region: pixel counts and the error-adjusted estimate with its interval.

Counting mapped pixels is biased whenever commission and omission errors differ (a class
that the map over-predicts looks bigger than it is). Area statisticians expect the
stratified estimator of Olofsson et al. (2014) instead: the map's classes are strata, the
validation confusion matrix says how each stratum splits into true classes, and the
region's mapped areas weigh them (:func:`cluster.classify.accuracy.error_adjusted_area`).

The confusion matrix comes with the crop map (``crop_type`` attributes, from the model's
out-of-fold validation). Using it for every region assumes the map's errors are alike
across regions; a region with its own reference sample would give a sharper estimate.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from cluster.classify.accuracy import error_adjusted_area
from cluster.errors import DataError

__all__ = ["crop_areas", "AREA_COLUMNS", "ZERO_WIDTH"]

AREA_COLUMNS = ["region_id", "season_year", "crop", "mapped_area_ha", "estimated_area_ha", "se_area_ha",
                "ci95_low_ha", "ci95_high_ha", "users_accuracy", "producers_accuracy", "note"]


ZERO_WIDTH = ("zero-width interval: the validation saw no error in the strata that hold this class, so "
              "the estimator has none to propagate; the true uncertainty is larger (more reference samples "
              "of it would show it)")
"""The note of a class whose interval has no width (Olofsson et al.'s variance is 0 when every
stratum's sample proportion of the class is 0 or 1)."""


def crop_areas(stats: pd.DataFrame, crop_attrs: Mapping[str, Any]) -> pd.DataFrame:
    """Per region, season and class: mapped and error-adjusted area (ha) with a 95 % interval.

    Args:
        stats: the aggregate table by crop class (``region_id, crop, date, index, area_ha``).
        crop_attrs: the ``crop_type`` array's attributes: ``flag_meanings``,
            ``confusion_counts`` (rows = map class, columns = reference class) and
            ``season_dates`` (harvest year -> first and last day).
    """
    classes = str(crop_attrs.get("flag_meanings", "")).split()
    seasons = crop_attrs.get("season_dates") or {}
    confusion = crop_attrs.get("confusion_counts")
    if not classes or not seasons or stats.empty:
        return pd.DataFrame(columns=AREA_COLUMNS)
    one = stats[stats["index"] == stats["index"].iloc[0]]
    dates = pd.to_datetime(one["date"])
    rows = []
    for year, (start, end) in sorted(seasons.items()):
        inside = one[(dates >= pd.Timestamp(start)) & (dates <= pd.Timestamp(end))]
        if inside.empty:
            continue
        day = inside[pd.to_datetime(inside["date"]) == pd.to_datetime(inside["date"]).min()]
        for rid, g in day.groupby("region_id", sort=True):
            mapped = np.array([float(g.loc[g["crop"] == c, "area_ha"].sum()) for c in classes])
            if mapped.sum() <= 0:
                continue
            est, note = None, ""
            if confusion is None:
                note = "no validation confusion with the map: mapped area only"
            else:
                try:
                    est = error_adjusted_area(np.asarray(confusion), mapped, classes)
                except DataError as e:
                    note = f"no error-adjusted estimate: {e}"
            for i, c in enumerate(classes):
                row = {"region_id": rid, "season_year": int(year), "crop": c, "mapped_area_ha": mapped[i],
                       "note": note}
                if est is not None:
                    r = est.iloc[i]
                    row.update(estimated_area_ha=float(r["estimated_area"]), se_area_ha=float(r["se_area"]),
                               ci95_low_ha=float(r["ci_low_clipped"]), ci95_high_ha=float(r["ci_high"]),
                               users_accuracy=float(r["users_accuracy"]),
                               producers_accuracy=float(r["producers_accuracy"]))
                    if row["se_area_ha"] == 0 and row["estimated_area_ha"] > 0:
                        row["note"] = ZERO_WIDTH
                rows.append(row)
    return pd.DataFrame(rows, columns=AREA_COLUMNS)
