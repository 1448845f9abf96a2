"""Labelled training samples from the tables big public training sets ship, normalised once.

Training sets come as tables of per-field (or per-pixel) time series. Two layouts exist:

* **long**: one row per (sample, date), one column per band (WorldCereal's extractions:
  ``sample_id, timestamp, S2-L2A-B04, S1-SIGMA0-VV, ..., ewoc_code``);
* **wide**: one row per sample, one column per (band, date), the date written in the
  column name, either as a date (``VH_20230101``) or as a step number counted from a
  start date (``OPTICAL-B04-ts3-10m``).

:func:`load_samples` reads either, as described by a :class:`SampleTableConfig` (nothing
about one dataset's column names is written in this module), and returns a
:class:`SampleSet` whose ``frame`` is ONE long layout that the rest of the classifier uses::

    sample_id | date | <band> ... | label | class | <group columns> ... | lon | lat

* ``sample_id`` (text) and ``date`` (``datetime64[ns]``), sorted by both; one row per
  (sample, date) that has at least one valid band value;
* one ``float32`` column per configured band in physical units (reflectance, dB, degrees,
  mm): raw values equal to a ``nodata`` value become NaN, then
  ``physical = transform(raw) * scale + offset``;
* ``label``: the source label as text (``1101060000``, ``Winter wheat``); ``class``: the
  project class it maps to (:class:`LabelMapping`);
* the group columns (tile, H3 cell, ...) and ``lon``/``lat`` when configured: constant per
  sample, kept for grouped validation.

A (sample, date) row without a valid value in any band carries no information and is left
out (counted in ``issues``); this is what makes the long and the wide layout of one table
give the identical frame (a wide table has a cell for every date of every sample).

Source labels (codes or free text) map to the project's classes by ordered rules
(:class:`LabelRule`), optionally through a legend file that names each code (WorldCereal's
``class_mappings.json``). Samples whose label no rule maps are counted per label and
reported, never silently dropped; ``unmapped="error"`` refuses them instead.

:func:`to_arrays` pivots the frame to ``(time, sample)`` arrays per band: the hand-off to
:func:`cluster.classify.features.season_features`, like a ``(time, y, x)`` cube tile
flattened to ``(time, pixel)``.

Paths are local files or object-storage URLs (globs allowed in both), the latter reached with
the job's ``storage`` settings; a Parquet file's columns are read without its rows.
"""

from __future__ import annotations

import datetime as dt
import difflib
import glob
import json
import math
import os
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from cluster.config import StrictModel
from cluster.errors import ConfigError, DataError
from cluster.location import is_remote, local_path

__all__ = [
    "DEFAULT_CLASSES",
    "BandColumn",
    "SampleTableConfig",
    "LabelRule",
    "LegendConfig",
    "LabelMapping",
    "SampleSet",
    "load_samples",
    "map_labels",
    "to_arrays",
]

DEFAULT_CLASSES = ("wheat", "barley", "oats", "rye", "maize", "other_crop", "grassland", "non_crop")
"""The project's crop classes: the cereals whose yields are forecast, maize, everything
else cropped, grassland, and land without a crop."""

RESERVED_COLUMNS = frozenset({"sample_id", "date", "label", "class", "lon", "lat"})
"""Column names of the normalised frame that bands and group columns may not take."""

MISSING_LABEL = "<missing>"
"""The ``unmapped`` key of samples whose label cell is empty."""

_PARQUET_SUFFIXES = (".parquet", ".geoparquet", ".pq")
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".txt")
_SHOWN = 5
"""How many offending values, columns or samples an error message lists."""


# --- config ------------------------------------------------------------------------------


class BandColumn(StrictModel):
    """Where one band is in the table, and how its stored numbers become physical values.

    Raw values equal to one of ``nodata`` are missing (NaN); the rest become
    ``transform(raw) * scale + offset``. The transform comes first because it undoes a
    storage encoding (it needs the stored number), while scale and offset convert units.
    """

    column: str | None = None
    """Long layout: the column holding this band, e.g. ``S2-L2A-B04``."""
    pattern: str | None = None
    """Wide layout: the column-name pattern with exactly one placeholder: either
    ``{date:<strftime format>}`` (``VH_{date:%Y%m%d}``) or ``{step}``
    (``OPTICAL-B04-ts{step}-10m``; any zero-padding of the step number matches)."""
    nodata: list[float] = Field(default_factory=list)
    """Raw values that mean "no observation", e.g. ``[65535]``; NaN is always missing."""
    scale: float = 1.0
    """Multiplies the (transformed) raw value, e.g. ``1e-4`` for reflectance x 10,000."""
    offset: float = 0.0
    """Added after ``scale``, e.g. ``-273.15`` for temperature stored in kelvin x 100
    (with ``scale`` 0.01) to get degrees Celsius."""
    transform: Literal["none", "db_from_uint16"] = "none"
    """``db_from_uint16``: WorldCereal's compressed backscatter, ``dB = 20 log10(DN) - 83``;
    DN 0 (and below) is missing."""

    @field_validator("scale")
    @classmethod
    def _nonzero_scale(cls, v: float) -> float:
        if v == 0 or not math.isfinite(v):
            raise ValueError(f"scale {v!r} would erase every value; give a finite, non-zero factor "
                             "(1.0 keeps the stored numbers)")
        return v


class SampleTableConfig(StrictModel):
    """A labelled sample table (one or more files of one layout) and where each field is in it."""

    paths: list[str] = Field(min_length=1)
    """Parquet/GeoParquet (``.parquet``, ``.geoparquet``, ``.pq``) or CSV files; globs
    allowed (``data/*.parquet``), local or on object storage (``s3://bucket/rdm/*.parquet``,
    reached with the job's ``storage``). Relative paths are relative to the current directory.
    GeoParquet is read as plain Parquet (the geometry column is not needed)."""
    layout: Literal["long", "wide"]
    """``long``: one row per (sample, date); ``wide``: one row per sample, dates in the
    column names."""
    id_column: str
    """The sample id (a field, or a pixel of a field): one time series per id."""
    label_column: str
    """The source label: a code or a name, constant per sample."""
    time_column: str | None = None
    """Long layout: the observation date (a timestamp, or ISO 8601 text)."""
    start: dt.date | None = None
    """Wide layout with ``{step}`` patterns: the date of step 0."""
    step_days: int | None = Field(default=None, ge=1)
    """Wide layout with ``{step}`` patterns: days between steps (date of step k =
    ``start + k * step_days``)."""
    bands: dict[str, BandColumn] = Field(min_length=1)
    """Project band name -> where it is, e.g.
    ``{"red": {"column": "S2-L2A-B04", "nodata": [65535], "scale": 1e-4}}``."""
    group_columns: list[str] = Field(default_factory=list)
    """Per-sample columns kept for grouped validation (tile, H3 cell, region)."""
    lon_column: str | None = None
    """The sample's x / longitude column (constant per sample), kept as ``lon``."""
    lat_column: str | None = None
    """The sample's y / latitude column, kept as ``lat``."""
    crs: str = "EPSG:4326"
    """The CRS of ``lon``/``lat``."""

    @field_validator("paths", mode="before")
    @classmethod
    def _one_path(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _consistent(self) -> SampleTableConfig:
        wrong: list[str] = []
        for name, band in self.bands.items():
            if band.column is not None and band.pattern is not None:
                wrong.append(f"band {name!r} sets both column={band.column!r} and pattern={band.pattern!r}; "
                             f"set only {'column' if self.layout == 'long' else 'pattern'} "
                             f"(layout {self.layout!r})")
            elif band.column is None and band.pattern is None:
                wrong.append(f"band {name!r} sets neither column nor pattern; set "
                             + ("column (the column holding it)" if self.layout == "long"
                                else "pattern (its column names, with a {date:...} or {step} placeholder)"))
            elif self.layout == "long" and band.pattern is not None:
                wrong.append(f"band {name!r} sets pattern={band.pattern!r}, but layout 'long' takes a column "
                             "per band; set column, or use layout 'wide'")
            elif self.layout == "wide" and band.column is not None:
                wrong.append(f"band {name!r} sets column={band.column!r}, but layout 'wide' takes a column-name "
                             "pattern per band (e.g. 'B04_{date:%Y%m%d}'); set pattern, or use layout 'long'")
            elif band.pattern is not None:
                try:
                    _parse_pattern(band.pattern)
                except ValueError as e:
                    wrong.append(f"band {name!r}: {e}")
        if wrong:
            raise ValueError("; ".join(wrong))

        steps = [n for n, b in self.bands.items() if b.pattern is not None and _parse_pattern(b.pattern).kind == "step"]
        if self.layout == "long":
            if self.time_column is None:
                raise ValueError("layout 'long' needs time_column: the column holding each row's date")
            if self.start is not None or self.step_days is not None:
                raise ValueError("start and step_days only date the {step} columns of layout 'wide'; "
                                 "remove them (a long table dates rows by time_column)")
        else:
            if self.time_column is not None:
                raise ValueError(f"time_column {self.time_column!r} is set, but layout 'wide' dates values by "
                                 "column name; remove time_column, or use layout 'long'")
            if steps and (self.start is None or self.step_days is None):
                raise ValueError(f"band(s) {steps!r} use a {{step}} pattern, which needs start (the date of "
                                 "step 0) and step_days (days between steps); set both")
            if not steps and (self.start is not None or self.step_days is not None):
                raise ValueError("start and step_days are set, but no band uses a {step} pattern; remove them")

        if (self.lon_column is None) != (self.lat_column is None):
            raise ValueError(f"set both lon_column and lat_column, or neither (got lon_column="
                             f"{self.lon_column!r}, lat_column={self.lat_column!r})")
        clash = sorted((set(self.bands) | set(self.group_columns)) & RESERVED_COLUMNS)
        if clash:
            raise ValueError(f"band or group column name(s) {clash!r} are reserved for the normalised table "
                             f"({sorted(RESERVED_COLUMNS)!r}); rename the band, or drop the group column")
        both = sorted(set(self.bands) & set(self.group_columns))
        if both:
            raise ValueError(f"{both!r} are both bands and group columns; a frame column has one meaning")
        return self


class LabelRule(StrictModel):
    """Source labels -> one project class. Set exactly one matcher; rules apply in order,
    the first that matches wins."""

    codes: list[int | str] | None = None
    """Labels equal to one of these (compared as text: ``1101060000`` == ``"1101060000"``)."""
    code_range: tuple[int, int] | None = None
    """Integer labels in ``[low, high]``, both ends included."""
    prefix: str | None = None
    """Labels whose text starts with this, e.g. ``"1101"`` (WorldCereal's hierarchical
    codes: every cereal)."""
    names: list[str] | None = None
    """Label names, matched case-insensitively after stripping: the legend name of the
    code when a legend is configured, else the label text itself (free-text labels)."""
    to: str
    """The project class."""

    @model_validator(mode="after")
    def _one_matcher(self) -> LabelRule:
        set_ = [k for k in ("codes", "code_range", "prefix", "names") if getattr(self, k) is not None]
        if len(set_) != 1:
            raise ValueError(f"a label rule sets exactly one of codes, code_range, prefix, names; this one "
                             f"(to={self.to!r}) sets {set_ or 'none'}")
        if self.code_range is not None and self.code_range[0] > self.code_range[1]:
            raise ValueError(f"code_range {list(self.code_range)!r} has low > high; give [low, high]")
        if self.prefix is not None and not self.prefix.strip():
            raise ValueError("prefix is empty and would match every label; give the code's leading digits")
        return self

    def describe(self) -> str:
        """The rule's matcher as ``key=value`` text, for messages.

        >>> LabelRule(prefix="1101", to="other_crop").describe()
        "prefix='1101'"
        """
        for key in ("codes", "code_range", "prefix", "names"):
            value = getattr(self, key)
            if value is not None:
                return f"{key}={list(value) if key == 'code_range' else value!r}"
        return ""  # unreachable: the validator requires one matcher

    def matches(self, text: str, name: str | None) -> bool:
        """Whether a label matches: ``text`` is the label as text, ``name`` its legend name.

        >>> LabelRule(code_range=(1100, 1199), to="other_crop").matches("1150", None)
        True
        >>> LabelRule(names=["Winter wheat"], to="wheat").matches("x", " winter WHEAT ")
        True
        """
        if self.codes is not None:
            return text in {_text(c) for c in self.codes}
        if self.code_range is not None:
            if not re.fullmatch(r"[+-]?\d+", text):
                return False
            return self.code_range[0] <= int(text) <= self.code_range[1]
        if self.prefix is not None:
            return text.startswith(self.prefix.strip())
        if self.names is not None and name is not None:
            return name.strip().casefold() in {n.strip().casefold() for n in self.names}
        return False


class LegendConfig(StrictModel):
    """A legend file naming each code, like WorldCereal's ``class_mappings.json``:
    ``{legend_name: {code_as_text: name}}``."""

    path: str
    """The JSON file, local or on object storage (reached with the job's ``storage``)."""
    name: str
    """Which legend of the file, e.g. ``CROPTYPE28``."""


class LabelMapping(StrictModel):
    """How source labels become project classes."""

    classes: list[str] = Field(default_factory=lambda: list(DEFAULT_CLASSES))
    """The project classes, in the order models and reports use."""
    legend: LegendConfig | None = None
    """With a legend, each code is first translated to its legend name and ``names`` rules
    apply to that name (codes, ranges and prefixes still apply to the raw code). A code the
    legend lacks or names ``ignore`` has no name: it is unmapped unless a code rule catches it."""
    rules: list[LabelRule] = Field(default_factory=list)
    """Ordered; the first matching rule wins. No rules at all: a label (or its legend name)
    that equals a class name, case-insensitively, maps to that class."""
    unmapped: Literal["drop", "error"] = "drop"
    """``drop``: samples no rule maps are left out, counted per label and reported;
    ``error``: refuse the table with a DataError listing them."""

    @model_validator(mode="after")
    def _rules_into_classes(self) -> LabelMapping:
        if not self.classes:
            raise ValueError("classes is empty; list the project classes")
        dup = sorted(c for c, n in Counter(self.classes).items() if n > 1)
        if dup:
            raise ValueError(f"classes lists {dup!r} more than once; list each class once")
        bad = [f"rules[{i}] ({r.describe()}) maps to {r.to!r}" for i, r in enumerate(self.rules)
               if r.to not in self.classes]
        if bad:
            raise ValueError(f"{'; '.join(bad)}, which is not a class; classes: {self.classes!r}; "
                             "fix the rule's 'to' or add the class to classes")
        return self


# --- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleSet:
    """Labelled samples in the one long layout (see the module docstring)."""

    frame: pd.DataFrame
    """``sample_id, date, <bands>, label, class, <group columns>, lon, lat``, sorted by
    (sample_id, date); only mapped samples."""
    bands: tuple[str, ...]
    """The band columns of ``frame``, in config order."""
    classes: tuple[str, ...]
    """The mapping's classes, in order (some may have no sample)."""
    counts: dict[str, int]
    """Samples per class, every class listed (0 when absent)."""
    unmapped: dict[str, int]
    """Raw label -> number of samples left out because no rule maps it."""
    issues: list[str] = field(default_factory=list)
    """Human-readable notes: missing-value share per band, unmapped labels, rows dropped."""

    @property
    def n_samples(self) -> int:
        """The number of samples in ``frame``."""
        return int(self.frame["sample_id"].nunique())

    def to_arrays(self, bands: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """:func:`to_arrays` of ``frame``, for ``bands`` (default: all)."""
        return to_arrays(self.frame, self.bands if bands is None else bands)


# --- public functions --------------------------------------------------------------------


def load_samples(table: SampleTableConfig, labels: LabelMapping,
                 storage_options: Mapping[str, Any] | None = None) -> SampleSet:
    """Read a labelled sample table and normalise it to the one long layout.

    Args:
        table: The files, their layout and where each field is.
        labels: How source labels map to project classes.
        storage_options: fsspec options (a job's ``storage``) for files on object storage.

    Returns:
        The samples; ``frame`` holds only mapped samples and rows with at least one valid
        band value. ``issues`` says what was left out and why.

    Raises:
        ConfigError: A file does not exist or cannot be read; a configured column or
            pattern matches nothing in a file (the message lists the closest columns); the
            legend file or legend name is wrong.
        DataError: Duplicate (sample_id, date) rows; a sample whose label, group columns or
            coordinates change between its rows; band values or dates that are not numbers
            or dates; unmapped labels with ``unmapped="error"``; no sample left.
    """
    so = dict(storage_options or {})
    files = _resolve_paths(table.paths, so)
    parts = [_read_long(path, table, so) if table.layout == "long" else _read_wide(path, table, so)
             for path in files]
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    where = repr(files[0]) if len(files) == 1 else f"{len(files)} files ({files[0]!r}, ...)"
    bands = tuple(table.bands)
    issues: list[str] = []

    # rows that cannot be placed: no id, no date
    no_id = frame["sample_id"].isna()
    if no_id.any():
        issues.append(f"{int(no_id.sum())} row(s) without a sample id (id_column {table.id_column!r}) were left out")
        frame = frame[~no_id]
    no_date = frame["date"].isna()
    if no_date.any():
        what = f"time_column {table.time_column!r}" if table.layout == "long" else "date"
        issues.append(f"{int(no_date.sum())} row(s) without a date ({what}) were left out")
        frame = frame[~no_date]

    _check_duplicates(frame, table, where)
    per_sample_cols = ["label", *table.group_columns, *(["lon", "lat"] if table.lon_column else [])]
    _check_constant(frame, per_sample_cols, table, where)

    # rows without any valid band value carry nothing; dropping them makes layouts agree
    empty = frame[list(bands)].isna().all(axis=1).to_numpy()
    if empty.any():
        before = set(frame["sample_id"].unique())
        frame = frame[~empty]
        gone = sorted(before - set(frame["sample_id"].unique()))
        note = f"{int(empty.sum())} (sample, date) row(s) with no valid value in any band were left out"
        if gone:
            note += f"; {len(gone)} sample(s) have no valid value at all and are gone, e.g. {gone[:_SHOWN]!r}"
        issues.append(note)
    if frame.empty:
        raise DataError(f"no row of {where} has a valid value in any band ({list(bands)!r}); check the "
                        "band columns, their nodata values, and that the file holds observations")

    # labels: one per sample, mapped once per distinct label
    per = frame.groupby("sample_id", sort=True)["label"].first()
    legend = _load_legend(labels.legend, so) if labels.legend is not None else None
    classes, unmapped = _map_labels(per, labels, legend)
    if unmapped:
        n = sum(unmapped.values())
        issues.append(f"{n} sample(s) with unmapped labels were left out: "
                      f"{_unmapped_text(unmapped, labels, legend)}")
    frame = frame.assign(**{"class": frame["sample_id"].map(classes)})
    frame = frame[frame["class"].notna()]
    if frame.empty:
        raise DataError(f"no sample of {where} has a label that the mapping maps to a class "
                        f"({_unmapped_text(unmapped, labels, legend)}); add label rules for these labels")

    cols = ["sample_id", "date", *bands, "label", "class", *table.group_columns]
    if table.lon_column:
        cols += ["lon", "lat"]
    frame = frame[cols].sort_values(["sample_id", "date"], kind="stable").reset_index(drop=True)
    for col in ("sample_id", "label", "class"):
        frame[col] = frame[col].astype(str)

    n_rows = len(frame)
    shares = ", ".join(f"{b} {100 * float(frame[b].isna().mean()):.1f} %" for b in bands)
    issues.insert(0, f"missing values per band (share of {n_rows} rows kept): {shares}")
    void = [b for b in bands if frame[b].isna().all()]
    if void:
        issues.insert(1, f"band(s) {void!r} have no valid value at all; check their column and nodata, "
                         "or drop them from the config")
    per_class = frame.groupby("sample_id", sort=False)["class"].first().value_counts()
    counts = {c: int(per_class.get(c, 0)) for c in labels.classes}
    return SampleSet(frame=frame, bands=bands, classes=tuple(labels.classes), counts=counts,
                     unmapped=unmapped, issues=issues)


def map_labels(labels: pd.Series | Sequence[Any], mapping: LabelMapping,
               storage_options: Mapping[str, Any] | None = None) -> tuple[pd.Series, dict[str, int]]:
    """Map source labels (one per sample) to project classes.

    Each distinct label is turned into text (integer-valued floats lose their ``.0``), then
    translated by the legend (when configured) and matched against the rules in order.

    Args:
        labels: One label per sample (codes or names, any dtype); a Series keeps its index.
        mapping: The classes, legend and rules.
        storage_options: fsspec options (a job's ``storage``) for a legend on object storage.

    Returns:
        ``(classes, unmapped)``: the class of each sample (same index; NaN where no rule
        maps the label), and raw label text -> number of samples left unmapped (an empty
        label counts as ``'<missing>'``).

    Raises:
        ConfigError: The legend file or the legend name is wrong.
        DataError: Some labels are unmapped and ``mapping.unmapped`` is ``"error"``.

    Example:
        >>> m = LabelMapping(rules=[LabelRule(prefix="1101", to="wheat")])
        >>> classes, unmapped = map_labels(pd.Series([1101010011, 1101010011.0, 2001020022]), m)
        >>> classes.tolist(), unmapped
        (['wheat', 'wheat', nan], {'2001020022': 1})
    """
    legend = _load_legend(mapping.legend, storage_options) if mapping.legend is not None else None
    return _map_labels(labels, mapping, legend)


def _map_labels(labels: pd.Series | Sequence[Any], mapping: LabelMapping,
                legend: Mapping[str, str | None] | None) -> tuple[pd.Series, dict[str, int]]:
    """:func:`map_labels` with the legend already read."""
    series = labels if isinstance(labels, pd.Series) else pd.Series(list(labels))
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    texts = [_text(u) for u in uniques]
    matched = [_match(t, legend, mapping) for t in texts]
    out = np.array([matched[c] if c >= 0 and matched[c] is not None else np.nan for c in codes], dtype=object)
    classes = pd.Series(out, index=series.index, dtype=object)

    unmapped: Counter[str] = Counter()
    for c in codes:
        if c < 0:
            unmapped[MISSING_LABEL] += 1
        elif matched[c] is None:
            unmapped[texts[c]] += 1
    result = dict(sorted(unmapped.items(), key=lambda kv: (-kv[1], kv[0])))
    if result and mapping.unmapped == "error":
        raise DataError(f"{sum(result.values())} sample(s) have labels that no rule maps to a class: "
                        f"{_unmapped_text(result, mapping, legend)}; add rules for them, or set "
                        "unmapped: drop to leave them out (they are counted and reported)")
    return classes, result


def to_arrays(frame: pd.DataFrame, bands: Sequence[str]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Pivot a long sample frame to per-band ``(time, sample)`` arrays.

    Args:
        frame: A long frame with ``sample_id``, ``date`` and the band columns (any row
            order; other columns are ignored).
        bands: The band columns to pivot.

    Returns:
        ``(sample_ids, dates, values)``: the N sorted sample ids (``str`` array), the T
        sorted dates that any row has (``datetime64[ns]``), and band -> ``(T, N)`` float32
        array; a (sample, date) without a row is NaN.

    Raises:
        DataError: A band or ``sample_id``/``date`` column is missing, or a (sample_id, date)
            pair has two rows.

    Example:
        >>> f = pd.DataFrame({"sample_id": ["b", "a", "a"],
        ...                   "date": pd.to_datetime(["2023-01-11", "2023-01-01", "2023-01-11"]),
        ...                   "red": [0.3, 0.1, 0.2]})
        >>> ids, dates, values = to_arrays(f, ["red"])
        >>> ids.tolist(), dates.astype("datetime64[D]").astype(str).tolist()
        (['a', 'b'], ['2023-01-01', '2023-01-11'])
        >>> values["red"]
        array([[0.1, nan],
               [0.2, 0.3]], dtype=float32)
    """
    missing = [c for c in ("sample_id", "date", *bands) if c not in frame.columns]
    if missing:
        raise DataError(f"the sample frame lacks column(s) {missing!r} (it has {list(frame.columns)!r}); "
                        "load it with load_samples, or name bands that it holds")
    ids = np.asarray(frame["sample_id"].astype(str).to_numpy(), dtype=str)
    when = pd.to_datetime(frame["date"]).to_numpy(dtype="datetime64[ns]")
    sample_ids, n_idx = np.unique(ids, return_inverse=True)
    dates, t_idx = np.unique(when, return_inverse=True)
    n, t = sample_ids.size, dates.size
    flat = t_idx.astype(np.int64) * n + n_idx
    if np.unique(flat).size != flat.size:
        _, first, counts = np.unique(flat, return_index=True, return_counts=True)
        dup = [(str(ids[i]), str(when[i].astype("datetime64[D]"))) for i in first[counts > 1][:_SHOWN]]
        raise DataError(f"the sample frame has {int((counts > 1).sum())} (sample_id, date) pair(s) with more "
                        f"than one row, e.g. {dup!r}; keep one row per sample and date")
    values: dict[str, np.ndarray] = {}
    for b in bands:
        arr = np.full((t, n), np.nan, dtype=np.float32)
        arr[t_idx, n_idx] = frame[b].to_numpy(dtype=np.float32, na_value=np.nan)
        values[b] = arr
    return sample_ids, dates, values


# --- reading -------------------------------------------------------------------------------


def _resolve_paths(paths: Sequence[str], storage_options: dict[str, Any]) -> list[str]:
    """Expand globs; every entry must name at least one existing file."""
    out: list[str] = []
    for i, p in enumerate(paths):
        if is_remote(p):
            out.extend(_resolve_remote(i, p, storage_options))
            continue
        local = os.path.expanduser(local_path(p))
        if glob.has_magic(local):
            found = sorted(glob.glob(local, recursive=True))
            if not found:
                raise ConfigError(f"paths[{i}] {p!r} matches no file (from {os.getcwd()!r}); check the "
                                  "directory and the pattern")
            out.extend(found)
        elif not Path(local).is_file():
            raise ConfigError(f"sample file {p!r} does not exist (from {os.getcwd()!r}); give the path of a "
                              "Parquet or CSV file")
        else:
            out.append(local)
    return out


def _resolve_remote(i: int, url: str, storage_options: dict[str, Any]) -> list[str]:
    """The URLs of the files ``url`` names on object storage (a glob expanded there)."""
    import fsspec

    from cluster._retry import retry_storage

    fs, fs_path = fsspec.core.url_to_fs(url, **storage_options)
    protocol = url.split("://", 1)[0]
    if glob.has_magic(fs_path):
        found = sorted(retry_storage(lambda: fs.glob(fs_path), f"cannot list paths[{i}] {url!r}"))
        if not found:
            raise ConfigError(f"paths[{i}] {url!r} matches no file; check the bucket, the prefix and the pattern")
        return [f"{protocol}://{f}" for f in found]
    if not retry_storage(lambda: fs.isfile(fs_path), f"cannot look for paths[{i}] {url!r}"):
        raise ConfigError(f"sample file {url!r} does not exist; give the URL of a Parquet or CSV file")
    return [url]


def _format(path: str) -> Literal["parquet", "csv"]:
    low = path.lower()
    if low.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if low.endswith(_CSV_SUFFIXES):
        return "csv"
    raise ConfigError(f"cannot tell the format of sample file {path!r} from its name; give a Parquet "
                      f"({', '.join(_PARQUET_SUFFIXES)}) or CSV ({', '.join(_CSV_SUFFIXES)}) file")


def _columns(path: str, storage_options: dict[str, Any]) -> list[str]:
    """The file's column names, read without reading its rows."""
    remote = storage_options if is_remote(path) else None
    try:
        if _format(path) == "parquet":
            import fsspec
            import pyarrow.parquet as pq

            if remote is None:
                names = pq.read_schema(path).names
            else:
                fs, fs_path = fsspec.core.url_to_fs(path, **remote)
                names = pq.read_schema(fs_path, filesystem=fs).names
            return [n for n in names if not n.startswith("__index_level_")]
        return [str(c) for c in pd.read_csv(path, nrows=0, storage_options=remote).columns]
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 — any reader failure (pyarrow, pandas, fsspec types): the file is at fault
        raise ConfigError(f"sample file {path!r} cannot be read ({type(e).__name__}: {e}); check that it is "
                          "a complete Parquet or CSV file") from None


def _read(path: str, columns: list[str], text_columns: Iterable[str],
          storage_options: dict[str, Any]) -> pd.DataFrame:
    """Read ``columns`` of the file; ``text_columns`` of a CSV stay text (ids with leading zeros)."""
    columns = list(dict.fromkeys(columns))
    remote = storage_options if is_remote(path) else None
    try:
        if _format(path) == "parquet":
            return pd.read_parquet(path, columns=columns, storage_options=remote)
        text = {c: str for c in text_columns if c in columns}
        return pd.read_csv(path, usecols=columns, dtype=text, storage_options=remote)
    except Exception as e:  # noqa: BLE001 — as in _columns: any reader failure means the file is at fault
        raise ConfigError(f"sample file {path!r} cannot be read ({type(e).__name__}: {e}); check that it is "
                          "a complete Parquet or CSV file") from None


def _close(query: str, names: Sequence[str]) -> str:
    """A few existing names, closest to ``query`` first, for "did you mean" messages."""
    close = difflib.get_close_matches(query, list(names), n=_SHOWN, cutoff=0.0)
    return f"closest columns: {close!r} ({len(names)} columns in all)"


def _require(path: str, available: Sequence[str], needed: Mapping[str, str | None]) -> None:
    """Every configured column exists in the file; else a ConfigError naming the role."""
    have = set(available)
    for role, col in needed.items():
        if col is not None and col not in have:
            raise ConfigError(f"{role} {col!r} is not a column of {path!r}; {_close(col, available)}; "
                              "fix the name in the sample table config")


def _per_sample_needed(table: SampleTableConfig) -> dict[str, str | None]:
    needed: dict[str, str | None] = {"id_column": table.id_column, "label_column": table.label_column}
    for i, g in enumerate(table.group_columns):
        needed[f"group_columns[{i}]"] = g
    needed["lon_column"] = table.lon_column
    needed["lat_column"] = table.lat_column
    return needed


def _base_frame(raw: pd.DataFrame, table: SampleTableConfig, path: str) -> dict[str, Any]:
    """The per-sample columns of the normalised frame, from the raw columns."""
    cols: dict[str, Any] = {"sample_id": _text_column(raw[table.id_column]),
                            "label": _text_column(raw[table.label_column])}
    for g in table.group_columns:
        col = raw[g]
        if isinstance(col.dtype, pd.CategoricalDtype):  # concat of differing categories would give object
            col = col.astype(col.cat.categories.dtype)
        cols[g] = col
    if table.lon_column is not None and table.lat_column is not None:
        cols["lon"] = _numbers(raw[table.lon_column], table.lon_column, "lon_column:", path)
        cols["lat"] = _numbers(raw[table.lat_column], table.lat_column, "lat_column:", path)
    return cols


def _read_long(path: str, table: SampleTableConfig, storage_options: dict[str, Any]) -> pd.DataFrame:
    available = _columns(path, storage_options)
    needed = _per_sample_needed(table)
    needed["time_column"] = table.time_column
    _require(path, available, needed)
    for name, band in table.bands.items():
        assert band.column is not None  # validated: long layout -> column
        if band.column not in set(available):
            raise ConfigError(f"band {name!r}: column {band.column!r} is not a column of {path!r}; "
                              f"{_close(band.column, available)}; fix bands.{name}.column")
    read_cols = [c for c in needed.values() if c is not None] + [b.column for b in table.bands.values() if b.column]
    raw = _read(path, read_cols, (table.id_column, table.label_column), storage_options)
    assert table.time_column is not None
    cols = _base_frame(raw, table, path)
    cols["date"] = _dates(raw[table.time_column], table.time_column, path)
    for name, band in table.bands.items():
        assert band.column is not None
        cols[name] = _physical(raw[band.column], band, name, path)
    return pd.DataFrame(cols).reset_index(drop=True)


@dataclass(frozen=True)
class _Pattern:
    kind: Literal["date", "step"]
    regex: re.Pattern[str]
    fmt: str
    literal: str
    """The pattern's text without the placeholder (for "closest column" hints)."""


def _parse_pattern(pattern: str) -> _Pattern:
    """Parse a wide column-name pattern; ValueError says what is wrong with it.

    >>> p = _parse_pattern("OPTICAL-B04-ts{step}-10m")
    >>> p.kind, bool(p.regex.fullmatch("OPTICAL-B04-ts07-10m"))
    ('step', True)
    """
    try:
        parts = list(string.Formatter().parse(pattern))
    except ValueError as e:
        raise ValueError(f"pattern {pattern!r} is not a valid format string ({e}); write literal braces "
                         "as '{{' and '}}'") from None
    fields = [(f, spec, conv) for _, f, spec, conv in parts if f is not None]
    if len(fields) != 1:
        raise ValueError(f"pattern {pattern!r} has {len(fields)} placeholders; it needs exactly one: "
                         "'{date:<strftime format>}' (e.g. 'VH_{date:%Y%m%d}') or '{step}'")
    name, spec, conv = fields[0]
    if conv is not None or name not in ("date", "step"):
        raise ValueError(f"pattern {pattern!r} has placeholder {{{name}{'!' + conv if conv else ''}}}; use "
                         "'{date:<strftime format>}' or '{step}'")
    if name == "date" and "%" not in (spec or ""):
        raise ValueError(f"pattern {pattern!r}: the date placeholder needs a strftime format, e.g. "
                         "'{date:%Y%m%d}'")
    if name == "step" and spec:
        raise ValueError(f"pattern {pattern!r}: write '{{step}}' without a format; step numbers match "
                         "with any zero-padding")
    regex = "".join(re.escape(lit) + ("" if f is None else ("(.+)" if f == "date" else r"(\d+)"))
                    for lit, f, _, _ in parts)
    literal = "".join(lit for lit, _, _, _ in parts)
    return _Pattern(kind="date" if name == "date" else "step", regex=re.compile(regex), fmt=spec or "",
                    literal=literal)


def _match_columns(pattern: _Pattern, columns: Sequence[str], table: SampleTableConfig
                   ) -> tuple[dict[str, np.datetime64], list[str]]:
    """Columns a pattern matches -> their dates; and columns that fit the text but not the date."""
    found: dict[str, np.datetime64] = {}
    misfit: list[str] = []
    for col in columns:
        m = pattern.regex.fullmatch(col)
        if m is None:
            continue
        v = m.group(1)
        if pattern.kind == "step":
            assert table.start is not None and table.step_days is not None  # validated
            day = table.start + dt.timedelta(days=int(v) * table.step_days)
        else:
            try:
                parsed = dt.datetime.strptime(v, pattern.fmt)
            except ValueError:
                misfit.append(col)
                continue
            if parsed.strftime(pattern.fmt) != v:  # e.g. '2023011' read by %Y%m%d
                misfit.append(col)
                continue
            day = parsed
        found[col] = np.datetime64(day, "ns")
    return found, misfit


def _read_wide(path: str, table: SampleTableConfig, storage_options: dict[str, Any]) -> pd.DataFrame:
    available = _columns(path, storage_options)
    needed = _per_sample_needed(table)
    _require(path, available, needed)
    per_band: dict[str, dict[str, np.datetime64]] = {}
    for name, band in table.bands.items():
        assert band.pattern is not None  # validated: wide layout -> pattern
        pat = _parse_pattern(band.pattern)
        found, misfit = _match_columns(pat, available, table)
        if not found:
            hint = (f"; {len(misfit)} column(s) fit the text around the placeholder but not its date format "
                    f"{pat.fmt!r}, e.g. {misfit[:_SHOWN]!r}" if misfit else "")
            raise ConfigError(f"band {name!r}: pattern {band.pattern!r} matches no column of {path!r}"
                              f"{hint}; {_close(pat.literal, available)}; fix bands.{name}.pattern")
        by_date: dict[np.datetime64, str] = {}
        for col, when in found.items():
            if when in by_date:
                raise DataError(f"band {name!r}: columns {by_date[when]!r} and {col!r} of {path!r} both hold "
                                f"{str(when.astype('datetime64[D]'))} (pattern {band.pattern!r}); keep one, "
                                "or make the pattern tell them apart")
            by_date[when] = col
        per_band[name] = found

    read_cols = [c for c in needed.values() if c is not None] + [c for f in per_band.values() for c in f]
    raw = _read(path, read_cols, (table.id_column, table.label_column), storage_options)
    dates = np.unique(np.concatenate([np.array(list(f.values()), dtype="datetime64[ns]") for f in per_band.values()]))
    n, t = len(raw), dates.size
    base = _base_frame(raw.reset_index(drop=True), table, path)
    cols: dict[str, Any] = {k: np.repeat(np.asarray(v.to_numpy() if isinstance(v, pd.Series) else v), t)
                            for k, v in base.items()}
    cols["date"] = np.tile(dates, n)
    for name, found in per_band.items():
        grid = np.full((n, t), np.nan, dtype=np.float32)
        for col, when in found.items():
            grid[:, int(np.searchsorted(dates, when))] = _physical(raw[col], table.bands[name], name, path)
        cols[name] = grid.reshape(-1)
    out = pd.DataFrame(cols)
    # np.repeat turned the per-sample columns into plain arrays: restore their dtypes
    for k, v in base.items():
        if isinstance(v, pd.Series):
            out[k] = out[k].astype(v.dtype)
    return out


# --- values --------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """A label or id as text: integer-valued floats lose their ``.0``, text is stripped.

    >>> _text(1101060000.0), _text(np.int64(7)), _text(" Winter wheat ")
    ('1101060000', '7', 'Winter wheat')
    """
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return str(int(f)) if f.is_integer() else repr(f)
    return str(value).strip()


def _text_column(col: pd.Series) -> pd.Series:
    """A column as text per distinct value (NaN stays missing)."""
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    texts = np.array([_text(u) for u in uniques] + [None], dtype=object)
    return pd.Series(texts[codes], index=col.index, dtype=object)


def _numbers(col: pd.Series, column: str, role: str, path: str) -> np.ndarray:
    """A column as float64; non-numeric cells are a DataError naming the column."""
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        values: np.ndarray = col.to_numpy(dtype=np.float64, na_value=np.nan)
        return values
    num = pd.to_numeric(col, errors="coerce")
    bad = col[num.isna() & col.notna()]
    if len(bad):
        where = f" of {path!r}" if path else ""
        raise DataError(f"{role} column {column!r}{where} holds {len(bad)} value(s) that are not numbers, e.g. "
                        f"{list(bad.unique()[:_SHOWN])!r}; leave missing cells empty")
    parsed_values: np.ndarray = num.to_numpy(dtype=np.float64, na_value=np.nan)
    return parsed_values


def _physical(col: pd.Series, band: BandColumn, name: str, path: str) -> np.ndarray:
    """Raw band values -> float32 physical values, NaN = missing."""
    raw = _numbers(col, str(col.name), f"band {name!r}:", path)
    missing = np.isnan(raw)
    if band.nodata:
        missing |= np.isin(raw, np.asarray(band.nodata, dtype=np.float64))
    values = _db_from_uint16(raw) if band.transform == "db_from_uint16" else raw
    values = values * band.scale + band.offset
    values[missing] = np.nan
    return values.astype(np.float32)


def _db_from_uint16(dn: np.ndarray) -> np.ndarray:
    """WorldCereal's compressed backscatter to dB: ``20 log10(DN) - 83``; DN <= 0 is NaN.

    >>> _db_from_uint16(np.array([0.0, 1.0, 10000.0]))
    array([ nan, -83.,  -3.])
    """
    out = np.full(dn.shape, np.nan, dtype=np.float64)
    ok = dn > 0
    out[ok] = 20.0 * np.log10(dn[ok]) - 83.0
    return out


def _dates(col: pd.Series, column: str, path: str) -> np.ndarray:
    """The time column as naive datetime64[ns] (time zones converted to UTC)."""
    days: np.ndarray
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        days = col.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        return days
    if pd.api.types.is_datetime64_dtype(col.dtype):
        days = col.to_numpy(dtype="datetime64[ns]")
        return days
    try:
        parsed = pd.to_datetime(col.astype(object).where(col.notna(), None), format="ISO8601", utc=True)
    except (ValueError, TypeError):
        bad = [v for v in col.dropna().unique()[:200] if not _is_iso(v)][:_SHOWN]
        raise DataError(f"time_column {column!r} of {path!r} holds values that are not ISO 8601 dates, e.g. "
                        f"{bad!r}; write dates as YYYY-MM-DD") from None
    days = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    return days


def _is_iso(value: Any) -> bool:
    try:
        pd.to_datetime(value, format="ISO8601")
    except (ValueError, TypeError):
        return False
    return True


# --- checks --------------------------------------------------------------------------------


def _check_duplicates(frame: pd.DataFrame, table: SampleTableConfig, where: str) -> None:
    dup = frame.duplicated(["sample_id", "date"], keep=False)
    if not dup.any():
        return
    pairs = frame.loc[dup, ["sample_id", "date"]].drop_duplicates()
    shown = [(s, str(pd.Timestamp(d).date())) for s, d in pairs.head(_SHOWN).itertuples(index=False)]
    per = "row" if table.layout == "long" else "row (a wide table has one row per sample)"
    raise DataError(f"{len(pairs)} (sample_id, date) pair(s) of {where} have more than one {per}, e.g. "
                    f"{shown!r}; keep one row per sample and date, or check that id_column "
                    f"{table.id_column!r} identifies one time series")


def _check_constant(frame: pd.DataFrame, columns: list[str], table: SampleTableConfig, where: str) -> None:
    """Label, group columns and coordinates are properties of the sample, not of the date."""
    for col in columns:
        n = frame.groupby("sample_id", sort=True)[col].nunique(dropna=False)
        varying = n[n > 1]
        if len(varying):
            examples = {s: sorted(map(_text, frame.loc[frame["sample_id"] == s, col].unique()))[:3]
                        for s in varying.index[:3]}
            source = {"label": f"label_column {table.label_column!r}", "lon": f"lon_column {table.lon_column!r}",
                      "lat": f"lat_column {table.lat_column!r}"}.get(col, f"group column {col!r}")
            raise DataError(f"{len(varying)} sample(s) of {where} change {source} between their rows, e.g. "
                            f"{examples!r}; a sample has one value: fix the table, or give each series its own "
                            "sample id")


# --- labels --------------------------------------------------------------------------------


def _load_legend(cfg: LegendConfig, storage_options: Mapping[str, Any] | None = None) -> dict[str, str | None]:
    """Code text -> legend name (None for ``ignore``); the file local or on object storage."""
    if is_remote(cfg.path):
        import fsspec

        from cluster._retry import retry_storage

        fs, fs_path = fsspec.core.url_to_fs(cfg.path, **dict(storage_options or {}))
        if not retry_storage(lambda: fs.isfile(fs_path), f"cannot look for legend file {cfg.path!r}"):
            raise ConfigError(f"legend file {cfg.path!r} does not exist; give the URL of a JSON legend like "
                              "WorldCereal's class_mappings.json")
        raw: bytes = retry_storage(lambda: fs.cat_file(fs_path), f"cannot read legend file {cfg.path!r}")
    else:
        path = Path(local_path(cfg.path)).expanduser()
        if not path.is_file():
            raise ConfigError(f"legend file {cfg.path!r} does not exist (from {os.getcwd()!r}); give the path of a "
                              "JSON legend like WorldCereal's class_mappings.json")
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise ConfigError(f"legend file {cfg.path!r} cannot be read ({e}); check its permissions") from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"legend file {cfg.path!r} cannot be read as JSON ({e}); give a JSON file "
                          "{legend_name: {code: name}}") from None
    if not isinstance(data, dict) or cfg.name not in data:
        names = sorted(data) if isinstance(data, dict) else []
        close = difflib.get_close_matches(cfg.name, names, n=_SHOWN, cutoff=0.0)
        raise ConfigError(f"legend {cfg.name!r} is not in {cfg.path!r}; it holds {names!r} (closest: {close!r}); "
                          "fix legend.name")
    entries = data[cfg.name]
    if not isinstance(entries, dict):
        raise ConfigError(f"legend {cfg.name!r} in {cfg.path!r} is a {type(entries).__name__}, not a mapping "
                          "{code: name}; point legend.name at a code -> name table")
    out: dict[str, str | None] = {}
    for code, name in entries.items():
        text = None if name is None else str(name).strip()
        out[_text(code)] = None if not text or text.casefold() == "ignore" else text
    return out


def _match(text: str, legend: Mapping[str, str | None] | None, mapping: LabelMapping) -> str | None:
    """The class of one label text, or None."""
    name = legend.get(text) if legend is not None else text
    if not mapping.rules:
        if name is None:
            return None
        by_fold = {c.casefold(): c for c in mapping.classes}
        return by_fold.get(name.strip().casefold())
    for rule in mapping.rules:
        if rule.matches(text, name):
            return rule.to
    return None


def _unmapped_text(unmapped: Mapping[str, int], mapping: LabelMapping,
                   legend: Mapping[str, str | None] | None) -> str:
    """``'1115000000' (29 samples, CROPTYPE28: no name), ...`` for messages, largest first."""
    items = sorted(unmapped.items(), key=lambda kv: (-kv[1], kv[0]))
    parts = []
    for text, n in items[:10]:
        note = f"{n} sample{'s' if n != 1 else ''}"
        if legend is not None and mapping.legend is not None and text != MISSING_LABEL:
            note += f", {mapping.legend.name}: {legend.get(text) or 'no name'}"
        parts.append(f"{text!r} ({note})")
    if len(items) > 10:
        parts.append(f"and {len(items) - 10} more label(s)")
    return ", ".join(parts)
