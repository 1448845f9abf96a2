"""Tests for cluster.classify.accuracy: sample metrics vs scikit-learn, Olofsson et al. 2014."""

from __future__ import annotations

import json
import math
import warnings
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import metrics as skm

from cluster.classify.accuracy import accuracy_report, confusion_matrix, error_adjusted_area
from cluster.errors import ClusterError, DataError

# --- Olofsson et al. 2014, Section 5 (change map, 30 m Landsat pixels of 0.09 ha) ----------

OLOFSSON_NAMES = ["deforestation", "forest gain", "stable forest", "stable non-forest"]
OLOFSSON_PIXELS = np.array([200_000, 150_000, 3_200_000, 6_450_000], dtype=float)
HA_PER_PIXEL = 0.09
# As the brief remembered it, labelled "rows = map class". Those row totals (69, 56, 175,
# 340) do not reproduce the published areas; the transpose (row totals 75, 75, 165, 325)
# reproduces every published number, so the remembered table had rows = reference class.
REMEMBERED_COUNTS = np.array([[66, 0, 1, 2], [0, 55, 0, 1], [5, 8, 153, 9], [4, 12, 11, 313]])
OLOFSSON_COUNTS = REMEMBERED_COUNTS.T  # rows = map class, columns = reference class


def _olofsson(unit_per_pixel: float = HA_PER_PIXEL) -> pd.DataFrame:
    return error_adjusted_area(OLOFSSON_COUNTS, OLOFSSON_PIXELS * unit_per_pixel, OLOFSSON_NAMES)


def test_error_adjusted_area__olofsson_example_areas_and_intervals() -> None:
    df = _olofsson().set_index("class")
    # Published: areas (ha) and 95 % half-widths (the paper uses z = 1.96).
    published = {
        "deforestation": (21_158, 6_158),
        "forest gain": (11_686, 3_756),
        "stable forest": (285_770, 15_510),
        "stable non-forest": (581_386, 16_282),
    }
    for name, (area_ha, half_width_ha) in published.items():
        assert round(df.loc[name, "estimated_area"]) == area_ha, name
        assert round(1.96 * df.loc[name, "se_area"]) == half_width_ha, name
    # The interval itself uses the exact normal quantile (1.95996...), one ha narrower for
    # stable non-forest (16,281.4) than the paper's rounded z gives.
    half = df["ci_high"] - df["estimated_area"]
    np.testing.assert_allclose(half, 1.959963984540054 * df["se_area"], rtol=1e-12)
    np.testing.assert_allclose(df["estimated_area"] - df["ci_low"], half, rtol=1e-12)
    assert df.attrs["total_area"] == pytest.approx(900_000.0)


def test_error_adjusted_area__olofsson_example_accuracies() -> None:
    df = _olofsson().set_index("class")
    assert round(df.loc["deforestation", "users_accuracy"], 2) == 0.88
    assert round(df.loc["deforestation", "producers_accuracy"], 2) == 0.75
    assert round(df.attrs["overall_accuracy"], 2) == 0.95
    # Golden values computed by this implementation (not the brief's remembered numbers):
    # 95 % half-widths of U, P and O, pinned against regressions.
    np.testing.assert_allclose(
        1.96 * df["se_users_accuracy"], [0.0743, 0.1007, 0.0398, 0.0205], atol=5e-4
    )
    np.testing.assert_allclose(
        1.96 * df["se_producers_accuracy"], [0.2133, 0.2543, 0.0342, 0.0184], atol=5e-4
    )
    assert 1.96 * df.attrs["se_overall_accuracy"] == pytest.approx(0.0185, abs=5e-4)


def test_error_adjusted_area__olofsson_remembered_orientation_does_not_reproduce() -> None:
    df = error_adjusted_area(REMEMBERED_COUNTS, OLOFSSON_PIXELS * HA_PER_PIXEL, OLOFSSON_NAMES)
    assert abs(df.loc[0, "estimated_area"] - 21_158) > 10_000  # 32,275 ha


def test_error_adjusted_area__areas_follow_the_input_unit() -> None:
    in_ha = _olofsson()
    in_pixels = _olofsson(unit_per_pixel=1.0)
    for col in ["mapped_area", "estimated_area", "se_area", "ci_low", "ci_high"]:
        np.testing.assert_allclose(in_pixels[col] * HA_PER_PIXEL, in_ha[col], rtol=1e-12)
    for col in ["mapped_share", "estimated_share", "users_accuracy", "producers_accuracy"]:
        np.testing.assert_allclose(in_pixels[col], in_ha[col], rtol=1e-12)


def test_error_adjusted_area__columns_and_attrs() -> None:
    df = _olofsson()
    assert list(df.columns) == [
        "class",
        "mapped_area",
        "mapped_share",
        "n_samples",
        "estimated_area",
        "estimated_share",
        "se_area",
        "ci_low",
        "ci_high",
        "ci_low_clipped",
        "users_accuracy",
        "se_users_accuracy",
        "producers_accuracy",
        "se_producers_accuracy",
    ]
    assert df["class"].tolist() == OLOFSSON_NAMES
    assert df["n_samples"].tolist() == [75, 75, 165, 325]
    json.dumps(df.attrs)  # plain Python values only
    assert set(df.attrs) == {
        "overall_accuracy",
        "se_overall_accuracy",
        "confidence",
        "z",
        "total_area",
        "n_samples",
        "orientation",
    }


def test_error_adjusted_area__negative_ci_low_is_kept_and_clipped_copy_is_zero() -> None:
    # A rare class (mapped area 1) that the big stratum confuses with it now and then.
    df = error_adjusted_area([[1, 1], [1, 9]], [1.0, 1000.0], ["rare", "common"])
    row = df.iloc[0]
    assert row["ci_low"] < 0
    assert row["ci_low_clipped"] == 0.0
    assert row["ci_high"] - row["estimated_area"] == pytest.approx(row["estimated_area"] - row["ci_low"])
    assert df.iloc[1]["ci_low_clipped"] == df.iloc[1]["ci_low"]


def test_error_adjusted_area__confidence_sets_z() -> None:
    df90 = error_adjusted_area([[8, 2], [1, 9]], [300.0, 700.0], confidence=0.90)
    assert df90.attrs["z"] == pytest.approx(1.6448536269514722)
    np.testing.assert_allclose(df90["ci_high"] - df90["estimated_area"], df90.attrs["z"] * df90["se_area"])


def test_error_adjusted_area__zero_area_class_without_samples_is_allowed() -> None:
    df = error_adjusted_area([[5, 1, 0], [0, 0, 0], [2, 0, 7]], [50.0, 0.0, 50.0], ["a", "b", "c"])
    b = df.iloc[1]
    assert b["mapped_share"] == 0.0 and b["n_samples"] == 0
    assert math.isnan(b["users_accuracy"]) and math.isnan(b["se_users_accuracy"])
    # Class b still exists as a reference class: stratum a put one sample there.
    assert b["estimated_area"] == pytest.approx(100.0 * 0.5 * 1 / 6)
    assert b["producers_accuracy"] == 0.0
    assert df["estimated_area"].sum() == pytest.approx(100.0)


def test_error_adjusted_area__class_absent_from_reference_has_nan_producers_accuracy() -> None:
    df = error_adjusted_area([[5, 0], [0, 0]], [10.0, 0.0])
    assert df.loc[1, "estimated_area"] == 0.0
    assert math.isnan(df.loc[1, "producers_accuracy"]) and math.isnan(df.loc[1, "se_producers_accuracy"])
    assert df["class"].tolist() == [0, 1]


# --- properties ---------------------------------------------------------------------------


@st.composite
def area_tables(draw: st.DrawFn, max_k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Valid (counts, mapped_area): every stratum with mapped area > 0 has >= 2 samples."""
    k = draw(st.integers(1, max_k))
    counts = draw(arrays(np.int64, (k, k), elements=st.integers(0, 30)))
    area = draw(arrays(np.float64, k, elements=st.one_of(st.just(0.0), st.floats(1.0, 1e7))))
    assume(area.sum() > 0)
    for i in range(k):
        if area[i] > 0 and counts[i].sum() < 2:
            counts[i, draw(st.integers(0, k - 1))] += 2
    return counts, area


@given(area_tables())
def test_error_adjusted_area__estimates_sum_to_total_area(table: tuple[np.ndarray, np.ndarray]) -> None:
    counts, area = table
    df = error_adjusted_area(counts, area)
    assert df["estimated_area"].sum() == pytest.approx(area.sum(), rel=1e-9)
    assert df["estimated_share"].sum() == pytest.approx(1.0, rel=1e-9)
    assert (df["se_area"] >= 0).all()
    assert (df["ci_low_clipped"] >= 0).all()
    assert 0.0 <= df.attrs["overall_accuracy"] <= 1.0 + 1e-12


@given(
    st.lists(st.one_of(st.just(0.0), st.floats(1.0, 1e7)), min_size=1, max_size=6).filter(lambda a: sum(a) > 0),
    st.data(),
)
def test_error_adjusted_area__perfect_map_returns_mapped_areas(area_list: list[float], data: st.DataObject) -> None:
    area = np.array(area_list)
    diag = [data.draw(st.integers(2 if a > 0 else 0, 40)) for a in area_list]
    df = error_adjusted_area(np.diag(diag), area)
    np.testing.assert_allclose(df["estimated_area"], area, rtol=1e-12, atol=1e-9)
    assert (df["se_area"] == 0).all()
    assert (df["ci_low"] == df["ci_high"]).all()
    assert df.attrs["overall_accuracy"] == pytest.approx(1.0)
    assert df.attrs["se_overall_accuracy"] == 0.0
    mapped = area > 0
    assert (df.loc[mapped, "users_accuracy"] == 1.0).all()
    assert (df.loc[mapped, "producers_accuracy"] == 1.0).all()
    assert (df.loc[mapped, "se_producers_accuracy"] == 0.0).all()


@given(area_tables(), st.data())
def test_error_adjusted_area__permuting_classes_permutes_rows(
    table: tuple[np.ndarray, np.ndarray], data: st.DataObject
) -> None:
    counts, area = table
    k = len(area)
    names = [f"class-{i}" for i in range(k)]
    perm = np.array(data.draw(st.permutations(range(k))), dtype=np.int64)
    base = error_adjusted_area(counts, area, names)
    permuted = error_adjusted_area(counts[perm][:, perm], area[perm], [names[i] for i in perm])
    expected = base.iloc[perm].reset_index(drop=True)
    pd.testing.assert_frame_equal(permuted, expected, check_exact=False, rtol=1e-9, atol=1e-6)
    assert permuted.attrs["overall_accuracy"] == pytest.approx(base.attrs["overall_accuracy"], rel=1e-9)
    assert permuted.attrs["se_overall_accuracy"] == pytest.approx(base.attrs["se_overall_accuracy"], rel=1e-9)


def _delta_method_se(fn: Callable[[np.ndarray], Any], f: np.ndarray, w: np.ndarray, n: np.ndarray) -> float:
    """SE of fn(row shares) by the delta method: an oracle independent of the paper's closed forms.

    The gradient comes from complex-step differentiation (exact to rounding for the rational
    functions used here); the covariance of stratum i's row shares is the multinomial
    ``(diag f_i - f_i f_i^T) / (n_i - 1)`` for each stratum with W_i > 0, the unbiased
    estimate the paper uses.
    """
    h = 1e-30
    grad = np.zeros(f.shape)
    for i, j in np.ndindex(f.shape):
        step = f.astype(complex)
        step[i, j] += 1j * h
        grad[i, j] = complex(fn(step)).imag / h
    var = 0.0
    for i in range(f.shape[0]):
        if w[i] > 0:
            cov = (np.diag(f[i]) - np.outer(f[i], f[i])) / (n[i] - 1)
            var += float(grad[i] @ cov @ grad[i])
    return math.sqrt(max(var, 0.0))


@given(area_tables(max_k=4))
def test_error_adjusted_area__standard_errors_match_delta_method(table: tuple[np.ndarray, np.ndarray]) -> None:
    counts, area = table
    df = error_adjusted_area(counts, area)
    n = counts.sum(axis=1)
    f = np.divide(counts, n[:, None], out=np.zeros(counts.shape), where=n[:, None] > 0)
    w = area / area.sum()
    total = area.sum()

    def overall(m: np.ndarray) -> Any:
        return np.sum(w * np.diag(m))

    assert df.attrs["se_overall_accuracy"] == pytest.approx(_delta_method_se(overall, f, w, n), rel=1e-9, abs=1e-15)
    for j in range(len(area)):

        def share(m: np.ndarray, j: int = j) -> Any:
            return np.sum(w * m[:, j])

        def producers(m: np.ndarray, j: int = j) -> Any:
            return w[j] * m[j, j] / np.sum(w * m[:, j])

        assert df.loc[j, "se_area"] == pytest.approx(total * _delta_method_se(share, f, w, n), rel=1e-9, abs=1e-9)
        if share(f) > 0:
            expected = _delta_method_se(producers, f, w, n)
            assert df.loc[j, "se_producers_accuracy"] == pytest.approx(expected, rel=1e-9, abs=1e-12)


# --- errors -------------------------------------------------------------------------------

_NAMES = ["wheat", "maize"]


@pytest.mark.parametrize(
    ("counts", "area", "names", "confidence", "fragments"),
    [
        pytest.param(
            [[1, 0], [0, 5]], [10.0, 10.0], _NAMES, 0.95,
            ["'wheat'", "1 sample", "at least 2 reference samples per map stratum"],
            id="one-sample-in-mapped-stratum",
        ),
        pytest.param(
            [[4, 0], [0, 0]], [10.0, 10.0], _NAMES, 0.95,
            ["'maize'", "0 sample", "at least 2 reference samples per map stratum"],
            id="no-sample-in-mapped-stratum",
        ),
        pytest.param(
            [[1, 0], [1, 0]], [10.0, 10.0], _NAMES, 0.95, ["'wheat'", "'maize'", "at least 2"],
            id="names-every-thin-stratum",
        ),
        pytest.param(
            [[4, -1], [0, 5]], [10.0, 10.0], _NAMES, 0.95,
            ["map class 'wheat'", "reference class 'maize'", "-1.0", "non-negative whole numbers"],
            id="negative-count",
        ),
        pytest.param(
            [[4, 0.5], [0, 5]], [10.0, 10.0], _NAMES, 0.95, ["'wheat'", "0.5", "whole numbers"],
            id="fractional-count",
        ),
        pytest.param(
            [[4, 0], [float("nan"), 5]], [10.0, 10.0], _NAMES, 0.95, ["map class 'maize'", "nan"],
            id="nan-count",
        ),
        pytest.param(
            [[4, 0, 1], [0, 5, 1]], [10.0, 10.0], _NAMES, 0.95, ["square", "(2, 3)"], id="non-square"
        ),
        pytest.param(
            [[4, 0], [0, 5]], [10.0, 10.0, 3.0], _NAMES, 0.95, ["mapped_area", "(3,)", "2 x 2"],
            id="area-length",
        ),
        pytest.param(
            [[4, 0], [0, 5]], [10.0, 10.0], ["wheat"], 0.95, ["class_names has 1", "2 x 2"],
            id="names-length",
        ),
        pytest.param(
            [[4, 0], [0, 5]], [10.0, 10.0], ["wheat", "wheat"], 0.95, ["duplicates", "'wheat'"],
            id="duplicate-names",
        ),
        pytest.param(
            [[4, 0], [0, 5]], [10.0, -2.0], _NAMES, 0.95, ["'maize'", "-2.0", ">= 0"], id="negative-area"
        ),
        pytest.param(
            [[4, 0], [0, 5]], [10.0, float("inf")], _NAMES, 0.95, ["'maize'", "inf"], id="infinite-area"
        ),
        pytest.param([[4, 0], [0, 5]], [0.0, 0.0], _NAMES, 0.95, ["total mapped area is 0"], id="zero-total"),
        pytest.param([[4, 0], [0, 5]], [10.0, 10.0], _NAMES, 1.0, ["confidence is 1.0", "(0, 1)"], id="confidence-1"),
        pytest.param([[4, 0], [0, 5]], [10.0, 10.0], _NAMES, float("nan"), ["confidence is nan"], id="confidence-nan"),
    ],
)
def test_error_adjusted_area__bad_input_raises(
    counts: Any, area: Any, names: list[str], confidence: float, fragments: list[str]
) -> None:
    with pytest.raises(DataError) as info:
        error_adjusted_area(counts, area, names, confidence=confidence)
    assert isinstance(info.value, ClusterError) and isinstance(info.value, ValueError)
    for fragment in fragments:
        assert fragment in str(info.value)


# --- sample metrics vs scikit-learn ---------------------------------------------------------

LABELS = [0, 1, 2, 3, 4]


@st.composite
def label_pairs(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    n = draw(st.integers(1, 60))
    # A narrow label range for some examples so that absent classes and kappa's 0/0 occur.
    top = draw(st.sampled_from([0, 1, 4]))
    labels = st.integers(0, top)
    y_true = draw(st.lists(labels, min_size=n, max_size=n))
    y_pred = draw(st.lists(st.one_of(labels, st.integers(0, 4)), min_size=n, max_size=n))
    return y_true, y_pred


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


@given(label_pairs())
def test_accuracy_report__matches_sklearn(pair: tuple[list[int], list[int]]) -> None:
    y_true, y_pred = pair
    report = accuracy_report(y_true, y_pred, LABELS)
    with warnings.catch_warnings():
        # sklearn warns (UserWarning, UndefinedMetricWarning) exactly in the cases whose
        # definitions are under test here (classes absent from y_true, kappa 0/0); the
        # comparison below checks what we return in those cases.
        warnings.simplefilter("ignore")
        overall = skm.accuracy_score(y_true, y_pred)
        balanced = skm.balanced_accuracy_score(y_true, y_pred)
        kappa = skm.cohen_kappa_score(y_true, y_pred, labels=LABELS)
        precision, recall, f1, support = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=LABELS, zero_division=np.nan
        )
        sk_confusion = skm.confusion_matrix(y_true, y_pred, labels=LABELS)

    assert report["n_samples"] == len(y_true)
    assert report["overall_accuracy"] == pytest.approx(overall)
    assert report["balanced_accuracy"] == pytest.approx(balanced)
    if math.isnan(kappa):
        assert report["kappa"] is None
    else:
        assert report["kappa"] == pytest.approx(kappa, abs=1e-12)
    for c, label in enumerate(LABELS):
        got = report["per_class"][str(label)]
        assert got["support"] == int(support[c])
        for key, sk in (("precision", precision[c]), ("recall", recall[c]), ("f1", f1[c])):
            expected = _nan_to_none(sk)
            if expected is None:
                assert got[key] is None, (key, label)
            else:
                assert got[key] == pytest.approx(expected, abs=1e-12), (key, label)
    # Our orientation is rows = predicted, the transpose of sklearn's.
    assert report["confusion"]["matrix"] == sk_confusion.T.tolist()
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, LABELS), sk_confusion.T)
    assert json.loads(json.dumps(report)) == report


def test_accuracy_report__keys_names_and_orientation() -> None:
    report = accuracy_report(
        y_true=["w", "w", "m", "m", "s"],
        y_pred=["w", "m", "m", "m", "w"],
        labels=["w", "m", "s"],
        names=["wheat", "maize", "soy"],
    )
    assert set(report) == {"overall_accuracy", "balanced_accuracy", "kappa", "per_class", "confusion", "n_samples"}
    assert report["confusion"] == {
        "labels": ["wheat", "maize", "soy"],
        "matrix": [[1, 0, 1], [1, 2, 0], [0, 0, 0]],
        "rows": "predicted",
        "columns": "reference",
    }
    assert report["per_class"]["soy"] == {"precision": None, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["per_class"]["wheat"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert report["overall_accuracy"] == pytest.approx(0.6)
    assert report["balanced_accuracy"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert all(type(v) is float for v in (report["overall_accuracy"], report["balanced_accuracy"], report["kappa"]))
    assert type(report["n_samples"]) is int


def test_accuracy_report__kappa_undefined_is_none() -> None:
    report = accuracy_report([1, 1, 1], [1, 1, 1], labels=[0, 1])
    assert report["kappa"] is None
    assert report["overall_accuracy"] == 1.0
    assert report["per_class"]["0"] == {"precision": None, "recall": None, "f1": None, "support": 0}


def test_confusion_matrix__feeds_error_adjusted_area() -> None:
    y_ref = ["w"] * 8 + ["m"] * 2 + ["w"] * 1 + ["m"] * 9
    y_map = ["w"] * 10 + ["m"] * 10
    counts = confusion_matrix(y_true=y_ref, y_pred=y_map, labels=["w", "m"])
    np.testing.assert_array_equal(counts, [[8, 2], [1, 9]])
    df = error_adjusted_area(counts, [300.0, 700.0], ["w", "m"])
    np.testing.assert_allclose(df["estimated_area"], [310.0, 690.0])


@pytest.mark.parametrize(
    ("y_true", "y_pred", "labels", "names", "fragments"),
    [
        pytest.param([0, 7], [0, 1], [0, 1], None, ["y_true", "not in labels", "7"], id="unknown-true"),
        pytest.param([0, 1], ["x", 1], [0, 1], None, ["y_pred", "'x'"], id="unknown-pred"),
        pytest.param([0, 1, 1], [0, 1], [0, 1], None, ["differ in length", "3", "2"], id="length"),
        pytest.param([[0, 1]], [[0, 1]], [0, 1], None, ["y_true must be 1-D", "(1, 2)"], id="2-d"),
        pytest.param([], [], [0, 1], None, ["no samples"], id="empty"),
        pytest.param([0], [0], [], None, ["labels is empty"], id="no-labels"),
        pytest.param([0], [0], [0, 0], None, ["duplicates", "0"], id="duplicate-labels"),
        pytest.param([0], [0], [0, 1], ["a"], ["names has 1", "labels has 2"], id="names-length"),
        pytest.param([0], [0], [0, 1], ["a", "a"], ["not unique", "'a'"], id="duplicate-names"),
    ],
)
def test_accuracy_report__bad_input_raises(
    y_true: Any, y_pred: Any, labels: list[Any], names: list[str] | None, fragments: list[str]
) -> None:
    with pytest.raises(DataError) as info:
        accuracy_report(y_true, y_pred, labels, names)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_crop_areas__a_class_the_validation_never_got_wrong_says_its_interval_is_not_informative() -> None:
    """Rye never confused in validation: its interval has zero width, and the table says why
    instead of presenting it as certainty; wheat and oats, confused with each other, do not."""
    from cluster.classify.areas import ZERO_WIDTH, crop_areas

    confusion = [[40, 6, 0], [5, 30, 0], [0, 0, 20]]  # rows = map class: wheat, oats, rye
    stats = pd.DataFrame({"region_id": "KZ-01", "crop": ["wheat", "oats", "rye"], "date": "2025-06-01",
                          "index": "ndvi", "area_ha": [1000.0, 250.0, 200.0]})
    areas = crop_areas(stats, {"flag_meanings": "wheat oats rye", "confusion_counts": confusion,
                               "season_dates": {"2025": ["2025-04-01", "2025-10-31"]}}).set_index("crop")
    assert areas.loc["rye", "se_area_ha"] == 0 and areas.loc["rye", "ci95_low_ha"] == areas.loc["rye", "ci95_high_ha"]
    assert areas.loc["rye", "note"] == ZERO_WIDTH
    assert (areas.loc[["wheat", "oats"], "se_area_ha"] > 0).all() and (areas.loc[["wheat", "oats"], "note"] == "").all()
