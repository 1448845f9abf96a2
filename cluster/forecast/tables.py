"""Read the forecast inputs into the tidy contracts, and check them.

Contracts (standard column names):

* series: ``region_id, crop, date, index, mean`` (+ optional ``count_px, area_ha, area_source,
  valid_fraction, std``; ``area_source`` names the area's kind, e.g. error-adjusted)
* yields: ``region_id, year, crop, yield_t_ha, harvested_area_ha, production_t`` (+ optional ``country``)
* calendar: ``region_id, crop, sos_doy, eos_doy``
* regions: ``region_id, name, parent``

Every row that is excluded is reported as an :class:`~cluster.forecast.issues.Issue`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cluster.errors import ConfigError, DataError
from cluster.forecast.config import ForecastConfig, TableInput
from cluster.forecast.issues import IssueLog, format_ids

__all__ = ["ForecastInputs", "read_table", "load_inputs", "ACRE_HA", "BUSHEL_KG", "UNALLOCATED", "bu_per_acre_to_t_ha"]

ACRE_HA = 0.40468564224
"""Hectares in one international acre."""
BUSHEL_KG = {"wheat": 27.2155, "soybean": 27.2155, "corn": 25.4012, "maize": 25.4012, "sorghum": 25.4012,
             "barley": 21.7724, "oats": 14.5150}
"""Kilograms in one US bushel, by crop (USDA standard weights)."""

ID_COLUMNS = ("region_id", "crop", "index", "country", "parent", "name", "variable")
REQUIRED = {
    "yields": ("region_id", "year", "crop", "yield_t_ha", "harvested_area_ha", "production_t"),
    "series": ("region_id", "crop", "date", "index", "mean"),
    "calendar": ("region_id", "crop", "sos_doy", "eos_doy"),
    "regions": ("region_id", "name", "parent"),
    "weather": ("region_id", "date", "variable", "value"),
}


def bu_per_acre_to_t_ha(crop: str) -> float:
    """The factor from bushels per acre to tonnes per hectare.

    >>> round(bu_per_acre_to_t_ha("wheat"), 5)
    0.06725
    """
    try:
        kg = BUSHEL_KG[crop]
    except KeyError:
        raise ConfigError(f"no bushel weight for crop {crop!r}; known: {', '.join(sorted(BUSHEL_KG))}") from None
    return kg / 1000.0 / ACRE_HA


@dataclass
class ForecastInputs:
    """The standardized, checked inputs of one forecast run."""

    yields: pd.DataFrame
    """Usable yield rows (bad ones excluded and reported)."""
    yields_all: pd.DataFrame
    """Every yield row as read, with a ``usable`` flag (areas of rows with bad yields stay usable)
    and ``source_rows``: how many input rows it stands for (rows of one region-year summed)."""
    series: pd.DataFrame
    calendar: pd.DataFrame
    regions: pd.DataFrame
    issues: IssueLog = field(default_factory=IssueLog)
    weather: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(REQUIRED["weather"])))
    """``region_id, date, variable, value``; empty without a weather table."""


def _read_files(spec: TableInput, config: ForecastConfig | None, kind: str) -> pd.DataFrame:
    if spec.frame is not None:
        return spec.frame.copy()
    id_sources = {spec.columns.get(c, c) for c in ID_COLUMNS}
    frames = []
    for raw_path in spec.paths:
        path = config.resolve(raw_path) if config is not None else Path(raw_path)
        if not path.is_file():
            raise ConfigError(
                f"{kind} table {str(path)!r} does not exist; fix the path in the config (relative paths are "
                "resolved against base_dir, else the current directory: run from the repository root)"
            )
        if path.suffix.lower() in (".parquet", ".pq"):
            frames.append(pd.read_parquet(path))
        else:
            head = pd.read_csv(path, nrows=0, encoding=spec.encoding)
            dtype = {c: str for c in head.columns if c in id_sources}
            try:
                frames.append(pd.read_csv(path, dtype=dtype, encoding=spec.encoding))
            except UnicodeDecodeError as e:
                raise ConfigError(
                    f"{kind} table {str(path)!r} is not {spec.encoding!r} text ({e.reason} at byte {e.start}); "
                    "set 'encoding' for this table (e.g. latin-1)"
                ) from None
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def read_table(spec: TableInput, kind: str, config: ForecastConfig | None = None,
               issues: IssueLog | None = None) -> pd.DataFrame:
    """Read one table and bring it to the standard columns of ``kind``.

    Args:
        spec: where the table is and how its columns map.
        kind: ``yields``, ``series``, ``calendar`` or ``regions``.
        config: resolves relative paths (None: relative to the cwd).
        issues: where ``nodata`` rows are reported.

    Raises:
        DataError: a required column is missing after mapping.
    """
    issues = issues if issues is not None else IssueLog()
    raw = _read_files(spec, config, kind)
    rename = {src: std for std, src in spec.columns.items()}
    missing_src = [src for src in spec.columns.values() if src not in raw.columns]
    if missing_src:
        raise DataError(
            f"{kind} table has no column(s) {missing_src!r} named in the config's column mapping; "
            f"its columns are {list(raw.columns)!r}; fix 'columns' for this table"
        )
    df = raw.rename(columns=rename)
    for col, value in spec.constants.items():
        df[col] = value
    if kind == "weather" and not {"variable", "value"} & set(df.columns):
        # a wide table (one column per variable, as CY-Bench's meteo files): to the long form
        keep = [c for c in ("region_id", "date", "crop") if c in df.columns]
        df = df.melt(id_vars=keep, var_name="variable", value_name="value")
    if kind == "yields":
        if "production_t" not in df.columns and {"yield_t_ha", "harvested_area_ha"} <= set(df.columns):
            df["production_t"] = np.nan  # derived below, after unit conversion
    missing = [c for c in REQUIRED[kind] if c not in df.columns]
    if kind == "regions":
        missing = [c for c in missing if c != "name"]
        if "name" not in df.columns:
            df["name"] = df.get("region_id")
    if missing:
        raise DataError(
            f"{kind} table lacks the column(s) {missing!r} (after mapping); it has {list(df.columns)!r}; "
            f"map them with 'columns' or set them with 'constants' in the config"
        )
    for col in ID_COLUMNS:
        if col in df.columns:
            df[col] = df[col].astype("string").str.strip().astype(object)
    for col, mapping in spec.values.items():
        if col in df.columns:
            df[col] = df[col].map(lambda v, m=mapping: m.get(v, v))
    numeric = {"yields": ("year", "yield_t_ha", "harvested_area_ha", "production_t"),
               "series": ("mean", "count_px", "area_ha", "valid_fraction", "std"),
               "calendar": ("sos_doy", "eos_doy"), "regions": (), "weather": ("value",)}[kind]
    for col in numeric:
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    if kind in ("series", "weather"):
        if spec.date_format:
            df["date"] = pd.to_datetime(df["date"].astype(str), format=spec.date_format)
        else:
            df["date"] = pd.to_datetime(df["date"])
        df["date"] = df["date"].astype("datetime64[ns]")
    for col, nd in spec.nodata.items():
        if col in df.columns:
            bad = df[col] == float(nd)
            if bad.any():
                items = _row_ids(df[bad], kind)
                issues.add(f"{kind}_nodata", kind,
                           f"{kind}: {int(bad.sum())} row(s) have the nodata value {nd!r} in {col!r} "
                           f"({format_ids(items)}); treated as missing observations and dropped", items)
                df = df[~bad]
    for col in set(spec.multipliers) | set(spec.offsets):
        if col in df.columns:
            df[col] = df[col] * spec.multipliers.get(col, 1.0) + spec.offsets.get(col, 0.0)
    if kind == "yields":
        derived = df["production_t"].isna() & df["yield_t_ha"].notna() & df["harvested_area_ha"].notna()
        df.loc[derived, "production_t"] = df.loc[derived, "yield_t_ha"] * df.loc[derived, "harvested_area_ha"]
        df["year"] = df["year"].astype("Int64")
    keep = list(REQUIRED[kind]) + [c for c in ("country", "count_px", "area_ha", "area_source", "valid_fraction", "std")
                                   if c in df.columns and c not in REQUIRED[kind]]
    return df[keep].reset_index(drop=True)


def _row_ids(df: pd.DataFrame, kind: str) -> list[str]:
    if kind == "yields":
        return [f"{r}/{y}" for r, y in zip(df["region_id"], df["year"], strict=True)]
    if kind in ("series", "weather"):
        return [f"{r}/{pd.Timestamp(d).date() if not isinstance(d, str) else d}"
                for r, d in zip(df["region_id"], df["date"], strict=True)]
    return [str(r) for r in df["region_id"]]


UNALLOCATED = ":unallocated"
"""Suffix of the id of a parent's unallocated line: ``<parent>:unallocated`` holds the rows
that name the parent but no region (e.g. "otros departamentos"), so that totals keep them."""


def _allocate(y: pd.DataFrame, log: IssueLog) -> pd.DataFrame:
    """Rows without a region id but with a parent become the parent's unallocated line, and a
    region id found under several parents is qualified by the parent (``<parent>:<id>``)."""
    if "country" not in y.columns:
        return y
    y = y.copy()
    lost = y["region_id"].isna() & y["country"].notna() & y["year"].notna()
    if lost.any():
        y.loc[lost, "region_id"] = y.loc[lost, "country"] + UNALLOCATED
        parents = sorted(set(y.loc[lost, "country"]))
        log.add("yield_unallocated", "yields",
                f"yields: {int(lost.sum())} row(s) name a parent but no region ({format_ids(parents)}); kept as "
                f"each parent's '<parent>{UNALLOCATED}' line, forecast from its own history, so that the "
                "parent's totals equal the table's", [f"{c}{UNALLOCATED}" for c in parents])
    counts = y.dropna(subset=["region_id", "country"]).groupby(["region_id", "country"]).size()
    shared = counts[counts.index.get_level_values(0).duplicated(keep=False)]
    if len(shared):
        # the parent with most rows keeps the id; the others' rows become '<parent>:<id>'
        home = shared.sort_values(ascending=False, kind="stable").reset_index().drop_duplicates("region_id")
        home_of = dict(zip(home["region_id"], home["country"], strict=True))
        rows = y["region_id"].isin(home_of) & (y["country"] != y["region_id"].map(home_of))
        moved = sorted(set(y.loc[rows, "country"] + ":" + y.loc[rows, "region_id"]))
        y.loc[rows, "region_id"] = y.loc[rows, "country"] + ":" + y.loc[rows, "region_id"]
        log.add("region_id_in_several_parents", "yields",
                f"yields: {len(home_of)} region id(s) appear under several parents ({format_ids(sorted(home_of))}); "
                f"each stays with the parent that has most of its rows, and {int(rows.sum())} row(s) under other "
                f"parents are kept as their own '<parent>:<id>' region ({format_ids(moved)}). Check the parent "
                "column of those rows", moved)
    return y


def _combine_rows(y: pd.DataFrame, log: IssueLog) -> pd.DataFrame:
    """One row per (region, crop, year): identical copies dropped; differing rows with areas or
    productions summed (parts of one region, as statistics list them), yield = production /
    area; differing yields without them: the first kept."""
    key = ["region_id", "crop", "year"]
    values = ["yield_t_ha", "harvested_area_ha", "production_t"]
    copies = y.duplicated(key + values, keep="first")
    if copies.any():
        items = _row_ids(y[copies], "yields")
        log.add("yield_duplicate", "yields",
                f"yields: {len(items)} row(s) repeat an earlier row exactly ({format_ids(items)}); dropped", items)
        y = y[~copies]
    y = y.assign(source_rows=1)
    multi = y.duplicated(key, keep=False)
    if not multi.any():
        return y
    parts = y[multi]
    summable = parts.groupby(key, sort=False)[["harvested_area_ha", "production_t"]].transform("count").min(axis=1) > 0
    merged = parts[summable].groupby(key, sort=False, as_index=False).agg(
        yield_t_ha=("yield_t_ha", "first"), harvested_area_ha=("harvested_area_ha", lambda s: s.sum(min_count=1)),
        production_t=("production_t", lambda s: s.sum(min_count=1)), source_rows=("source_rows", "sum"),
        **{c: (c, "first") for c in parts.columns if c not in [*key, *values, "source_rows"]})
    both = merged["harvested_area_ha"].gt(0) & merged["production_t"].notna()
    merged.loc[both, "yield_t_ha"] = merged.loc[both, "production_t"] / merged.loc[both, "harvested_area_ha"]
    if len(merged):
        n = int(summable.sum()) - len(merged)
        items = [f"{r}/{yr}" for r, yr in zip(merged["region_id"], merged["year"], strict=True)]
        log.add("yield_rows_combined", "yields",
                f"yields: {n + len(merged)} rows for {len(merged)} region-year(s) ({format_ids(items)}) were summed "
                "into one row each (areas and productions added, yield = production / area); if they are "
                "revisions of one figure instead, keep only one", items)
    firsts = parts[~summable]
    extra = firsts.duplicated(key, keep="first")
    if extra.any():
        items = _row_ids(firsts[extra], "yields")
        log.add("yield_duplicate", "yields",
                f"yields: {len(items)} row(s) give another yield for a (region, crop, year) without an area or "
                f"production to add up ({format_ids(items)}); the first row of each was kept", items)
    return pd.concat([y[~multi], merged, firsts[~extra]], ignore_index=True)


def _repair_leading_zeros(df: pd.DataFrame, col: str, table: str, log: IssueLog,
                          reference: set[str] | None = None) -> pd.DataFrame:
    """Digit ids that lost their leading zeros (read as numbers: ``6007`` for ``06007``) padded
    back: to the width of ``reference`` ids when the padded id is one of them, else, within the
    table, the ids one digit shorter than the rest when padding them clashes with nothing."""
    ids = df[col].dropna()
    digits = ids[ids.str.fullmatch(r"\d*[1-9]\d*")]  # all-zero ids are placeholders ("not defined")
    if digits.empty:
        return df
    width = None
    if reference:
        ref = {r for r in reference if isinstance(r, str) and r.isdigit()}
        widths = {len(r) for r in ref}
        if len(widths) == 1:
            width = widths.pop()
            short = sorted({i for i in digits if len(i) < width and i not in ref and i.zfill(width) in ref})
    if width is None:
        lengths = digits.str.len()
        width = int(lengths.max())
        short = sorted(set(digits[lengths == width - 1])) if set(lengths) == {width - 1, width} and width >= 2 else []
        if set(map(lambda i: i.zfill(width), short)) & set(digits):
            short = []
    if len(short) < 2:  # one odd id is more likely a special code than a lost zero
        return df
    df = df.copy()
    pad = set(short)
    df[col] = df[col].map(lambda v: v.zfill(width) if v in pad else v)
    log.add("id_leading_zeros_repaired", table,
            f"{table}: {len(short)} {col} value(s) look like ids that lost their leading zeros "
            f"({format_ids([f'{s} -> {s.zfill(width)}' for s in short])}); padded to {width} digits. Read ids "
            "as text (a CSV read as numbers drops them)", short)
    return df


def _check_yields(y: pd.DataFrame, config: ForecastConfig, log: IssueLog) -> pd.DataFrame:
    """Flag missing, zero/negative, absurd and duplicate yields; returns the table with ``usable``."""
    y = _allocate(y, log)
    no_id = y["region_id"].isna() | y["year"].isna()
    if no_id.any():
        rows = [f"row {i + 2}" for i in y.index[no_id]]  # +2: header line and 1-based numbering
        log.add("yield_missing_id", "yields",
                f"yields: {len(rows)} row(s) have no region id or no year ({format_ids(rows)}); they cannot be "
                "attributed to a region-season and were excluded", rows)
        y = y[~no_id].copy()
    y = _combine_rows(y, log)
    y["usable"] = True
    missing = y["yield_t_ha"].isna()
    if missing.any():
        items = _row_ids(y[missing], "yields")
        log.add("yield_missing", "yields",
                f"yields: {len(items)} row(s) have no yield value ({format_ids(items)}); "
                "excluded from training and evaluation", items)
    nonpos = ~missing & (y["yield_t_ha"] <= 0)
    if nonpos.any():
        items = _row_ids(y[nonpos], "yields")
        log.add("yield_not_positive", "yields",
                f"yields: {len(items)} row(s) have a zero or negative yield ({format_ids(items)}); "
                "treated as not reported (a failed crop is reported with its area) and excluded", items)
    ok = ~missing & ~nonpos
    typical = float(y.loc[ok, "yield_t_ha"].median()) if ok.any() else 0.0
    if typical > 100:
        # no crop yields 100 t/ha (silage maize tops out near 60); 1,000-10,000 is kg/ha
        raise DataError(
            f"yields: the median yield is {typical:,.0f}, which looks like kg/ha, not t/ha (grain yields "
            "are 0.5-15 t/ha). Convert the column: multipliers: {yield_t_ha: 0.001} in the yields table "
            "input (or 0.0628 for bu/acre of wheat, see bu_per_acre_to_t_ha)")
    # Local median (11 years centred on the row's year, the row included) so that a century of
    # trend (US wheat: 10 -> 45 bu/acre) does not make recent yields look absurd.
    good = y[ok].sort_values("year")
    median = (good.groupby(["region_id", "crop"])["yield_t_ha"]
              .transform(lambda s: s.rolling(11, center=True, min_periods=1).median()))
    ratio = y.loc[ok, "yield_t_ha"] / median.reindex(y.index[ok])
    absurd = pd.Series(False, index=y.index)
    absurd[ok] = (y.loc[ok, "yield_t_ha"] > config.max_yield_t_ha) | (ratio > config.outlier_factor)
    if absurd.any():
        rows = y[absurd]
        items = [f"{r}/{yr}={v:g}"
                 for r, yr, v in zip(rows["region_id"], rows["year"], rows["yield_t_ha"], strict=True)]
        log.add("yield_absurd", "yields",
                f"yields: {len(items)} row(s) have an absurd yield (t/ha; above {config.max_yield_t_ha:g} or "
                f"{config.outlier_factor:g}x the region's median over the 11 years around it) "
                f"({format_ids(items)}); excluded", items)
    y.loc[missing | nonpos | absurd, "usable"] = False
    return y.reset_index(drop=True)


def _check_calendar(cal: pd.DataFrame, log: IssueLog) -> pd.DataFrame:
    bad = (cal["sos_doy"].isna() | cal["eos_doy"].isna()
           | ~cal["sos_doy"].between(1, 366) | ~cal["eos_doy"].between(1, 366))
    # CY-Bench clips to [1, 366] after rounding down; 0 < doy < 1 is a rounding artefact, not an error.
    soft = ~bad.copy()
    cal = cal.copy()
    cal["sos_doy"] = cal["sos_doy"].clip(1, 366)
    cal["eos_doy"] = cal["eos_doy"].clip(1, 366)
    if bad.any():
        items = list(cal.loc[bad, "region_id"])
        log.add("calendar_invalid", "calendar",
                f"calendar: {len(items)} region(s) have a missing or out-of-range sos/eos day of year "
                f"({format_ids(items)}); expected 1..366; these regions get no forecast", items)
    cal = cal[soft].copy()
    cal["sos_doy"] = np.floor(cal["sos_doy"]).astype(int)
    cal["eos_doy"] = np.floor(cal["eos_doy"]).astype(int)
    length = (cal["eos_doy"] - cal["sos_doy"]) % 365
    short = length < 30
    if short.any():
        items = [f"{r} (sos {s}, eos {e})" for r, s, e in zip(cal.loc[short, "region_id"], cal.loc[short, "sos_doy"],
                                                               cal.loc[short, "eos_doy"], strict=True)]
        log.add("calendar_short_season", "calendar",
                f"calendar: {len(items)} region(s) have a season shorter than 30 days ({format_ids(items)}); "
                "kept as given (as CY-Bench does): their features come mostly from the spin-up window", items)
    dup = cal.duplicated(["region_id", "crop"])
    if dup.any():
        items = list(cal.loc[dup, "region_id"])
        log.add("calendar_duplicate", "calendar",
                f"calendar: duplicate (region, crop) rows ({format_ids(items)}); the first was kept", items)
        cal = cal[~dup]
    return cal.reset_index(drop=True)


def load_inputs(config: ForecastConfig) -> ForecastInputs:
    """Read, standardize and check every input table of ``config``.

    Raises:
        DataError: a table is unusable, or (with ``strict``) any issue was found.
    """
    log = IssueLog()
    y_all = read_table(config.yields, "yields", config, log)
    cal = read_table(config.calendar, "calendar", config, log)
    series_parts = [read_table(s, "series", config, log) for s in config.series]
    series = (pd.concat(series_parts, ignore_index=True) if series_parts
              else pd.DataFrame({c: pd.Series(dtype=object) for c in REQUIRED["series"]})
              .astype({"date": "datetime64[ns]", "mean": float}))
    listed = read_table(config.regions, "regions", config, log) if config.regions is not None else None
    weather = (read_table(config.weather, "weather", config, log) if config.weather is not None
               else pd.DataFrame(columns=list(REQUIRED["weather"])))
    bad = weather["value"].isna() if len(weather) else pd.Series(dtype=bool)
    if bad.any():
        items = _row_ids(weather[bad], "weather")
        log.add("weather_missing_value", "weather",
                f"weather: {len(items)} row(s) have no value ({format_ids(items)}); dropped", items)
        weather = weather[~bad].reset_index(drop=True)
    # ids are text: one that lost its leading zeros (a CSV read as numbers) is repaired here,
    # against the ids of the tables it must match
    y_all = _repair_leading_zeros(y_all, "region_id", "yields", log, set(cal["region_id"].dropna())
                                  | (set(listed["region_id"].dropna()) if listed is not None else set()))
    if "country" in y_all.columns:
        y_all = _repair_leading_zeros(y_all, "country", "yields", log,
                                      set(listed["parent"].dropna()) if listed is not None else None)
    cal = _repair_leading_zeros(cal, "region_id", "calendar", log, set(y_all["region_id"].dropna()))
    series = _repair_leading_zeros(series, "region_id", "series", log, set(y_all["region_id"].dropna()))

    crops_y = sorted(set(y_all["crop"].dropna()))
    if config.crop not in crops_y:
        raise DataError(
            f"crop {config.crop!r} never appears in the yield history (crops there: {crops_y!r}); no model can be "
            "trained for it. Fix 'crop', or map the table's crop names with yields.values.crop"
        )
    for name, df in (("series", series), ("calendar", cal)):
        # rows of crops the yield history has are another crop's rows of a shared table: taken
        # out quietly; a crop it never names may be this crop misnamed ("Wheat", "winter_wheat")
        other = sorted(set(df["crop"].dropna()) - set(crops_y))
        if other:
            n = int(df["crop"].isin(other).sum())
            log.add(f"{name}_other_crop", name,
                    f"{name}: {n} row(s) are for crop(s) {other!r}, not {config.crop!r} (and never seen in the "
                    f"yield history); ignored. Map them with {name}.values.crop if they are the same crop",
                    other)
    y_all = y_all[y_all["crop"] == config.crop].reset_index(drop=True)
    cal = cal[cal["crop"] == config.crop].reset_index(drop=True)
    series = series[series["crop"] == config.crop].reset_index(drop=True)
    nan_obs = series["mean"].isna()
    if nan_obs.any():
        items = _row_ids(series[nan_obs], "series")
        log.add("series_missing_value", "series",
                f"series: {len(items)} observation(s) have no value ({format_ids(items)}); dropped", items)
        series = series[~nan_obs].reset_index(drop=True)

    y_all = _check_yields(y_all, config, log)
    cal = _check_calendar(cal, log)

    if listed is not None:
        regions = listed
        if "country" in y_all.columns:  # the parents' unallocated lines
            lines = y_all.loc[y_all["region_id"].str.endswith(UNALLOCATED, na=False), ["region_id", "country"]]
            regions = pd.concat([regions, lines.drop_duplicates("region_id").rename(columns={"country": "parent"})
                                 .assign(name=lambda d: d["region_id"])])
    elif "country" in y_all.columns:
        regions = (y_all.dropna(subset=["country"]).drop_duplicates("region_id")
                   [["region_id", "country"]].rename(columns={"country": "parent"}))
        regions["name"] = regions["region_id"]
    else:
        ids = sorted(set(y_all["region_id"]) | set(cal["region_id"]))
        regions = pd.DataFrame({"region_id": ids, "name": ids, "parent": [i[: config.country_prefix_len] for i in ids]})
    extra_ids = sorted((set(cal["region_id"]) | set(series["region_id"])) - set(regions["region_id"]))
    if extra_ids and config.regions is None:
        regions = pd.concat([regions, pd.DataFrame({"region_id": extra_ids, "name": extra_ids,
                                                    "parent": [i[: config.country_prefix_len] for i in extra_ids]})])
    regions = regions[["region_id", "name", "parent"]].drop_duplicates("region_id").reset_index(drop=True)

    known = set(regions["region_id"])
    ids_y, ids_c, ids_s = set(y_all["region_id"]), set(cal["region_id"]), set(series["region_id"])
    _report_set(log, "yield_region_unknown", "yields", sorted(ids_y - known),
                "region(s) in the yield history but not in the region list ({ids}); excluded")
    _report_set(log, "region_without_yields", "regions", sorted((known & (ids_c | ids_s)) - ids_y),
                "region(s) in the region list/calendar/series with no yield history ({ids}); "
                "no model can be trained for them, so they get no forecast")
    lines = {i for i in ids_y if i.endswith(UNALLOCATED)}
    _report_set(log, "region_not_in_calendar", "calendar", sorted((ids_y & known) - ids_c - lines),
                "region(s) with yields but no crop calendar row ({ids}); they get no forecast "
                "(no season window to cut the series)")
    if config.series:
        _report_set(log, "region_without_observations", "series", sorted((ids_y & known & ids_c) - ids_s),
                    "region(s) with yields and a calendar but no index observations (no pixels?) ({ids}); "
                    "they are forecast by their trend only")
    y_all = y_all[y_all["region_id"].isin(known)].reset_index(drop=True)
    yields = y_all[y_all["usable"]].drop(columns=["usable", "source_rows"]).reset_index(drop=True)
    yields["year"] = yields["year"].astype(int)
    log.raise_if_strict(config.strict)
    if len(weather):
        _report_set(log, "region_without_weather", "weather",
                    sorted(set(yields["region_id"]) - set(weather["region_id"])),
                    "region(s) with yields have no weather rows ({ids}); their weather features read as the "
                    "regions' normal")
    return ForecastInputs(yields=yields, yields_all=y_all, series=series, calendar=cal, regions=regions, issues=log,
                          weather=weather)


def _report_set(log: IssueLog, code: str, table: str, ids: list[str], template: str) -> None:
    if ids:
        log.add(code, table, f"{table}: {len(ids)} " + template.format(ids=format_ids(ids)), ids)
