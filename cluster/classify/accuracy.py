"""Map accuracy: confusion counts, per-class metrics, and error-adjusted class areas.

One orientation everywhere in this module (the remote-sensing error matrix of Congalton and
of Olofsson et al. 2014): **rows = map (predicted) class, columns = reference (true) class**.
``counts[i, j]`` is the number of samples that the map puts in class ``i`` and the reference
data (field survey, photo interpretation) puts in class ``j``. This is the *transpose* of
:func:`sklearn.metrics.confusion_matrix` (rows = true class). The output of
:func:`confusion_matrix` therefore feeds :func:`error_adjusted_area` without transposing.

Two kinds of numbers come out:

* :func:`accuracy_report` -- sample metrics (overall and balanced accuracy, Cohen's kappa,
  per-class precision/recall/F1) as a JSON-ready dict. They describe the *sample*; they are
  map accuracies only if the sample is a simple random sample of the map.
* :func:`error_adjusted_area` -- the stratified estimator of Olofsson et al. (2014), "Good
  practices for estimating area and assessing accuracy of land change", Remote Sensing of
  Environment 148:42-57: class areas corrected for map errors, with standard errors and
  confidence intervals, and user's, producer's and overall accuracy weighted by the mapped
  area of each class.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any, Hashable, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from cluster.errors import DataError

__all__ = ["accuracy_report", "confusion_matrix", "error_adjusted_area"]

_ORIENTATION = "rows = map (predicted) class, columns = reference (true) class"


def confusion_matrix(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, labels: Sequence[Hashable]
) -> np.ndarray:
    """Count samples by (map class, reference class); rows = map/predicted, columns = reference/true.

    Args:
        y_true: Reference (true) class of each sample, 1-D, any hashable labels (crop codes or
            names).
        y_pred: Map (predicted) class of the same samples, same length as ``y_true``.
        labels: Every class, in the order of the matrix rows and columns. Each value of
            ``y_true`` and ``y_pred`` must be one of them: unknown labels raise rather than
            being dropped, since dropping samples silently changes every metric.

    Returns:
        ``int64`` array of shape ``(len(labels), len(labels))``; element ``[i, j]`` is the
        number of samples with ``y_pred == labels[i]`` and ``y_true == labels[j]``. This is
        the transpose of :func:`sklearn.metrics.confusion_matrix`, and the orientation that
        :func:`error_adjusted_area` expects.

    Raises:
        DataError: The arrays are not 1-D, differ in length, or hold labels not in ``labels``;
            or ``labels`` is empty or has duplicates.

    Example:
        >>> confusion_matrix(
        ...     y_true=["wheat", "wheat", "maize"],
        ...     y_pred=["wheat", "maize", "maize"],
        ...     labels=["wheat", "maize"],
        ... )
        array([[1, 0],
               [1, 1]])
    """
    true_idx, pred_idx, k = _encode(y_true, y_pred, labels)
    flat = np.bincount(pred_idx * k + true_idx, minlength=k * k)
    return flat.reshape(k, k).astype(np.int64)


def accuracy_report(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    labels: Sequence[Hashable],
    names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Sample accuracy metrics of a classification, as plain (JSON-serialisable) Python types.

    Definitions (``n`` samples; for class ``c``: ``tp`` = samples with map and reference both
    ``c``, ``fp`` = map ``c`` but reference another class, ``fn`` = reference ``c`` but map
    another class):

    * ``overall_accuracy``: share of samples whose map class equals the reference class.
    * ``balanced_accuracy``: mean recall over the classes present in ``y_true`` (classes with
      no reference sample are left out, as in :func:`sklearn.metrics.balanced_accuracy_score`).
    * ``kappa``: Cohen's kappa ``(p_o - p_e) / (1 - p_e)``, with ``p_e`` the agreement
      expected from the row and column totals; ``None`` when ``p_e == 1`` (map and reference
      both put every sample in one and the same class: kappa is 0/0).
    * ``per_class[name]``: ``precision = tp / (tp + fp)`` (the sample user's accuracy),
      ``recall = tp / (tp + fn)`` (the sample producer's accuracy),
      ``f1 = 2 tp / (2 tp + fp + fn)`` (the harmonic mean of the two where both are defined),
      and ``support = tp + fn`` (reference samples of the class, an ``int``). A ratio whose
      denominator is 0 is ``None`` (undefined), never 0: precision of a class the map never
      predicts, recall of a class absent from the reference, F1 of a class absent from both.
    * ``confusion``: ``{"labels": [names], "matrix": [[int]], "rows": "predicted",
      "columns": "reference"}``, the output of :func:`confusion_matrix` (rows = map class).
    * ``n_samples``: the number of samples (``int``).

    These describe the sample. They estimate map accuracy only for a simple random sample of
    the map; for a sample stratified by map class, or to correct class areas, use
    :func:`error_adjusted_area`.

    Args:
        y_true: Reference (true) class of each sample, 1-D.
        y_pred: Map (predicted) class of each sample, same length.
        labels: Every class, in report order (see :func:`confusion_matrix`).
        names: Display name of each label, same length and order; the keys of ``per_class``.
            Default: ``str(label)``. Names are converted with ``str`` and must be unique.

    Returns:
        A dict with exactly the keys ``overall_accuracy``, ``balanced_accuracy``, ``kappa``,
        ``per_class``, ``confusion`` and ``n_samples``. Floats are Python floats in [0, 1]
        (kappa in [-1, 1]); ``json.dumps`` accepts the dict as is.

    Raises:
        DataError: Inputs as in :func:`confusion_matrix`, no samples at all, or ``names``
            of the wrong length or with duplicates.

    Example:
        >>> report = accuracy_report([0, 0, 1, 1], [0, 1, 1, 1], labels=[0, 1], names=["wheat", "maize"])
        >>> report["overall_accuracy"], report["per_class"]["maize"]["precision"]
        (0.75, 0.6666666666666666)
    """
    counts = confusion_matrix(y_true, y_pred, labels)
    k = counts.shape[0]
    display = _parse_names(names, labels)
    n = int(counts.sum())
    if n == 0:
        raise DataError("accuracy_report got no samples (y_true and y_pred are empty); pass at least one sample")

    tp = np.diag(counts).astype(np.int64)
    predicted = counts.sum(axis=1)  # row totals: samples the map puts in each class
    support = counts.sum(axis=0)  # column totals: samples the reference puts in each class

    per_class: dict[str, dict[str, float | int | None]] = {}
    for c in range(k):
        fp = int(predicted[c] - tp[c])
        fn = int(support[c] - tp[c])
        per_class[display[c]] = {
            "precision": _ratio(int(tp[c]), int(predicted[c])),
            "recall": _ratio(int(tp[c]), int(support[c])),
            "f1": _ratio(2 * int(tp[c]), 2 * int(tp[c]) + fp + fn),
            "support": int(support[c]),
        }

    present = support > 0
    recalls = tp[present] / support[present]
    # Integer arithmetic for kappa's denominator so that "undefined" is an exact test:
    # kappa = (n * trace - sum_c row_c col_c) / (n^2 - sum_c row_c col_c).
    chance = sum(int(r) * int(c) for r, c in zip(predicted, support, strict=True))
    kappa_den = n * n - chance
    kappa = None if kappa_den == 0 else (n * int(tp.sum()) - chance) / kappa_den

    return {
        "overall_accuracy": int(tp.sum()) / n,
        "balanced_accuracy": float(np.mean(recalls)),
        "kappa": None if kappa is None else float(kappa),
        "per_class": per_class,
        "confusion": {
            "labels": list(display),
            "matrix": counts.tolist(),
            "rows": "predicted",
            "columns": "reference",
        },
        "n_samples": n,
    }


def error_adjusted_area(
    confusion_counts: npt.ArrayLike,
    mapped_area: npt.ArrayLike,
    class_names: Sequence[Hashable] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Error-adjusted class areas and accuracies: the stratified estimator of Olofsson et al. 2014.

    The map classes are the strata. With ``n_ij`` = ``confusion_counts[i, j]`` (samples in map
    class ``i`` with reference class ``j``), ``n_i`` = row total, ``A_i`` = mapped area of
    class ``i``, ``A`` = total mapped area and ``W_i = A_i / A``, the estimates are (equation
    numbers of the paper):

    * cell proportions ``p_ij = W_i n_ij / n_i`` (eq. 4 / 9);
    * area of reference class ``j``: ``A * p_.j = A * sum_i p_ij`` (eq. 11);
    * its standard error ``A * sqrt(sum_i W_i^2 (n_ij/n_i)(1 - n_ij/n_i) / (n_i - 1))``
      (eqs. 10, 12), and the interval ``estimate -/+ z * SE`` with ``z`` the normal quantile
      for ``confidence`` (1.959964 for 0.95; the paper rounds it to 1.96);
    * user's accuracy ``U_i = p_ii / p_i. = n_ii / n_i`` with variance
      ``U_i (1 - U_i) / (n_i - 1)`` (eqs. 2, 6);
    * producer's accuracy ``P_j = p_jj / p_.j`` with variance (eq. 7, areas replaced by the
      shares ``W``, which leaves it unchanged)
      ``[W_j^2 (1 - P_j)^2 U_j (1 - U_j) / (n_j - 1)
      + P_j^2 sum_{i != j} W_i^2 (n_ij/n_i)(1 - n_ij/n_i) / (n_i - 1)] / p_.j^2``;
    * overall accuracy ``O = sum_i p_ii`` with variance
      ``sum_i W_i^2 U_i (1 - U_i) / (n_i - 1)`` (eqs. 1, 5).

    The sample sizes per stratum need not be proportional to the mapped areas: the weights
    ``W_i`` come from the map, not from the sample.

    **Samples not drawn stratified by map class.** When the reference samples were collected
    otherwise -- e.g. cross-validated predictions on field samples -- build the counts with
    :func:`confusion_matrix` (rows = predicted class) and call this function unchanged: it is
    then a *post-stratified* estimator, with the map classes as post-strata. It assumes that,
    within each predicted class, the samples are representative of all pixels the map puts in
    that class (their reference labels are distributed as in a random sample of that
    stratum). Samples collected by convenience (along roads, only on cooperating farms,
    balanced per crop on purpose) can break that assumption, and no formula repairs it. The
    standard errors are then conditional on the realised stratum sizes ``n_i``. And
    cross-validated predictions measure the training procedure, which approximates, but is
    not, the accuracy of the final map.

    Args:
        confusion_counts: Sample counts, shape ``(k, k)``, **rows = map class, columns =
            reference class**, in the order of ``mapped_area``; non-negative whole numbers.
        mapped_area: Area the map assigns to each class, length ``k``, non-negative, in any
            unit (pixels, hectares, km^2). Every area column of the result is in this unit.
        class_names: Name of each class, length ``k``, unique; default ``0 .. k-1``.
        confidence: Two-sided confidence level of the interval, in (0, 1).

    Returns:
        One row per class, in input order, with columns:

        * ``class``: the class name;
        * ``mapped_area`` (input unit) and ``mapped_share`` (``W_i``, in [0, 1]);
        * ``n_samples``: reference samples in the map stratum (``n_i``);
        * ``estimated_area`` (input unit) and ``estimated_share`` (``p_.j``): error-adjusted
          area of the class as a *reference* class; the areas sum to the total mapped area;
        * ``se_area``: its standard error (input unit);
        * ``ci_low``, ``ci_high``: the symmetric interval ``estimate -/+ z * se_area``;
          ``ci_low`` can be negative for a rare class with a wide interval -- it is kept so
          that the interval stays what the formula says;
        * ``ci_low_clipped``: ``max(0, ci_low)``, for display, since an area is never negative;
        * ``users_accuracy``, ``se_users_accuracy``: ``U_i`` and its SE (NaN if ``n_i == 0``;
          SE NaN if ``n_i < 2``, which happens only for a class with zero mapped area);
        * ``producers_accuracy``, ``se_producers_accuracy``: ``P_j`` and its SE (NaN when
          the estimated area of the class is 0).

        ``df.attrs`` holds ``overall_accuracy``, ``se_overall_accuracy``, ``confidence``,
        ``z``, ``total_area`` (input unit), ``n_samples`` (all samples) and ``orientation``
        (a sentence), all plain Python values.

    Raises:
        DataError: ``confusion_counts`` is not square ``(k, k)`` matching ``mapped_area`` and
            ``class_names``; a count is negative, fractional or not finite; an area is
            negative or not finite; the total mapped area is 0; ``class_names`` has
            duplicates; ``confidence`` is outside (0, 1); or a map class with mapped area > 0
            has fewer than 2 reference samples (its variance divides by ``n_i - 1``). A class
            with zero mapped area has ``W_i = 0``, contributes nothing, and may have any
            number of samples, including none.

    Example:
        >>> df = error_adjusted_area([[8, 2], [1, 9]], mapped_area=[300.0, 700.0], class_names=["crop", "other"])
        >>> [round(a, 1) for a in df["estimated_area"]]
        [310.0, 690.0]
        >>> round(df.attrs["overall_accuracy"], 3)
        0.87
    """
    counts = _parse_counts(confusion_counts)
    k = counts.shape[0]
    names = _parse_class_names(class_names, k)
    area = _parse_area(mapped_area, k, names)
    z = _parse_confidence(confidence)
    _check_counts(counts, names)

    n_i = counts.sum(axis=1)
    total = float(area.sum())
    w = area / total
    stratified = w > 0

    thin = [(names[i], float(area[i]), int(n_i[i])) for i in range(k) if stratified[i] and n_i[i] < 2]
    if thin:
        listed = "; ".join(f"map class {name!r}: mapped area {a!r}, {n} sample(s)" for name, a, n in thin)
        raise DataError(
            f"too few reference samples in map strata with mapped area > 0 ({listed}); the "
            "variance of the stratified estimator divides by n_i - 1, so at least 2 reference "
            "samples per map stratum are needed: collect more samples in these map classes, "
            "or merge them into another class"
        )

    # Row shares n_ij / n_i; a zero-area stratum without samples gets zeros (W_i = 0 anyway).
    has_samples = n_i > 0
    f = np.zeros_like(counts)
    f[has_samples] = counts[has_samples] / n_i[has_samples, None]
    # Per-stratum divisor n_i - 1, used only where W_i > 0 (there n_i >= 2).
    dof = np.where(stratified, n_i - 1.0, 1.0)
    w2 = np.where(stratified, w**2, 0.0)

    p = w[:, None] * f
    p_col = p.sum(axis=0)
    cell_var = w2[:, None] * f * (1.0 - f) / dof[:, None]  # (k, k): stratum i's part of V(p_.j)
    se_share = np.sqrt(cell_var.sum(axis=0))
    estimated_area = total * p_col
    se_area = total * se_share
    ci_low = estimated_area - z * se_area
    ci_high = estimated_area + z * se_area

    diag_f = np.diag(f).copy()
    users = np.where(has_samples, diag_f, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        se_users = np.where(n_i >= 2, np.sqrt(diag_f * (1.0 - diag_f) / np.maximum(n_i - 1.0, 1.0)), np.nan)
        producers = np.where(p_col > 0, np.diag(p) / np.where(p_col > 0, p_col, 1.0), np.nan)
    u_term = np.where(stratified, w2 * diag_f * (1.0 - diag_f) / dof, 0.0)  # W_j^2 U_j (1 - U_j) / (n_j - 1)
    # Sum over strata i != j, summed directly: subtracting the diagonal from the column sum
    # would cancel catastrophically when the diagonal term dominates.
    off_diag = np.where(np.eye(k, dtype=bool), 0.0, cell_var).sum(axis=0)
    var_producers = np.full(k, np.nan)
    ok = p_col > 0
    var_producers[ok] = ((1.0 - producers[ok]) ** 2 * u_term[ok] + producers[ok] ** 2 * off_diag[ok]) / p_col[ok] ** 2
    se_producers = np.sqrt(var_producers)

    overall = float(np.trace(p))
    se_overall = float(np.sqrt(u_term.sum()))

    df = pd.DataFrame(
        {
            "class": pd.Series(list(names), dtype=object),
            "mapped_area": area,
            "mapped_share": w,
            "n_samples": n_i.astype(np.int64),
            "estimated_area": estimated_area,
            "estimated_share": p_col,
            "se_area": se_area,
            "ci_low": ci_low,
            "ci_high": ci_high,
            "ci_low_clipped": np.maximum(ci_low, 0.0),
            "users_accuracy": users,
            "se_users_accuracy": se_users,
            "producers_accuracy": producers,
            "se_producers_accuracy": se_producers,
        }
    )
    df.attrs.update(
        {
            "overall_accuracy": overall,
            "se_overall_accuracy": se_overall,
            "confidence": float(confidence),
            "z": z,
            "total_area": total,
            "n_samples": int(n_i.sum()),
            "orientation": _ORIENTATION,
        }
    )
    return df


# --- parsing at the boundary ---------------------------------------------------------------


def _encode(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, labels: Sequence[Hashable]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Map both label arrays to positions in ``labels``; raise on anything unusable."""
    index = pd.Index(list(labels))
    if len(index) == 0:
        raise DataError("labels is empty; pass every class, in the order of the matrix rows and columns")
    if not index.is_unique:
        dupes = sorted({repr(v) for v in index[index.duplicated()]})
        raise DataError(f"labels has duplicates ({', '.join(dupes)}); pass each class once")
    arrays = {"y_true": np.asarray(y_true), "y_pred": np.asarray(y_pred)}
    for arg, arr in arrays.items():
        if arr.ndim != 1:
            raise DataError(f"{arg} must be 1-D (one label per sample), got shape {arr.shape!r}; flatten it first")
    if arrays["y_true"].shape != arrays["y_pred"].shape:
        raise DataError(
            f"y_true and y_pred differ in length ({arrays['y_true'].shape[0]!r} vs "
            f"{arrays['y_pred'].shape[0]!r}); pass the reference and map class of the same samples"
        )
    encoded = []
    for arg, arr in arrays.items():
        idx = index.get_indexer(arr)
        if (idx < 0).any():
            unknown = list(pd.unique(arr[idx < 0]))
            shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise DataError(
                f"{arg} holds labels not in labels: {shown}{more}; add them to labels, "
                "or drop those samples before computing accuracy"
            )
        encoded.append(idx.astype(np.int64))
    return encoded[0], encoded[1], len(index)


def _parse_names(names: Sequence[str] | None, labels: Sequence[Hashable]) -> list[str]:
    display = [str(v) for v in (labels if names is None else names)]
    if len(display) != len(labels):
        raise DataError(f"names has {len(display)} entries but labels has {len(labels)}; pass one name per label")
    if len(set(display)) != len(display):
        dupes = sorted({n for n in display if display.count(n) > 1})
        raise DataError(f"class names are not unique after str(): {dupes!r}; pass distinct names")
    return display


def _parse_counts(confusion_counts: npt.ArrayLike) -> np.ndarray:
    try:
        counts = np.asarray(confusion_counts, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"confusion_counts must be a (k, k) array of sample counts: {e}") from None
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise DataError(
            f"confusion_counts must be square (k, k), rows = map class and columns = reference "
            f"class, got shape {counts.shape!r}"
        )
    return counts


def _check_counts(counts: np.ndarray, names: Sequence[Hashable]) -> None:
    bad = ~np.isfinite(counts) | (counts < 0) | (counts != np.round(counts))
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(
            f"confusion_counts[{i}, {j}] (map class {names[i]!r}, reference class {names[j]!r}) "
            f"is {counts[i, j]!r}; counts must be non-negative whole numbers of samples"
            f"{'' if bad.sum() == 1 else f' ({int(bad.sum())} such cells)'}"
        )


def _parse_class_names(class_names: Sequence[Hashable] | None, k: int) -> list[Hashable]:
    names: list[Hashable] = list(range(k)) if class_names is None else list(class_names)
    if len(names) != k:
        raise DataError(
            f"class_names has {len(names)} entries but confusion_counts is {k} x {k}; pass one name per class"
        )
    if len(set(names)) != k:
        dupes = sorted({repr(n) for n in names if names.count(n) > 1})
        raise DataError(f"class_names has duplicates ({', '.join(dupes)}); pass distinct names")
    return names


def _parse_area(mapped_area: npt.ArrayLike, k: int, names: Sequence[Hashable]) -> np.ndarray:
    try:
        area = np.asarray(mapped_area, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"mapped_area must be a 1-D array of areas: {e}") from None
    if area.shape != (k,):
        raise DataError(
            f"mapped_area has shape {area.shape!r} but confusion_counts is {k} x {k}; pass one "
            "mapped area per map class, in the order of the matrix rows"
        )
    bad = ~np.isfinite(area) | (area < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"mapped area of class {names[i]!r} is {float(area[i])!r}; areas must be finite and >= 0"
        )
    if float(area.sum()) <= 0:
        raise DataError(
            "total mapped area is 0 (every class has mapped area 0); pass the area (pixels or "
            "hectares) that the map assigns to each class"
        )
    return area


def _parse_confidence(confidence: float) -> float:
    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise DataError(f"confidence is {confidence!r}; expected a level in (0, 1), e.g. 0.95")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _ratio(num: int, den: int) -> float | None:
    """``num / den``, or None when ``den == 0`` (undefined, not zero)."""
    return None if den == 0 else num / den
