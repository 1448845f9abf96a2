"""The forecast pipeline: inputs -> backtests at each lead time -> season forecast -> roll-up -> files.

:func:`run_forecast` is what ``harvest forecast`` runs; :func:`forecast_season` forecasts one
season as of one date (the latest season, with no yield known yet, in ``harvest demo``).
"""

from __future__ import annotations

import json
import os
import time
from datetime import date
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from cluster.errors import DataError
from cluster.forecast.config import ForecastConfig, LeadTime, as_forecast_config
from cluster.forecast.evaluate import backtest, compute_metrics
from cluster.forecast.features import build_features, cutoff_days, feature_columns, season_windows
from cluster.forecast.issues import IssueLog, format_ids
from cluster.forecast.models import BASELINES, LEVEL_MODELS, bounded, select_and_fit, trend_distance
from cluster.forecast.result import ForecastResult
from cluster.forecast.rollup import CONDITION_RULE, HISTORY_ONLY, condition_class, rollup, rollup_history
from cluster.forecast.tables import UNALLOCATED, ForecastInputs, load_inputs
from cluster.forecast.weather import weather_columns, weather_features

__all__ = ["run_forecast", "forecast_season", "run_backtest"]

FORECAST_COLUMNS = [
    "level", "region_id", "name", "parent", "crop", "season_year", "as_of", "days_before_eos", "model",
    "yield_t_ha", "yield_lo_t_ha", "yield_hi_t_ha", "harvested_area_ha", "area_source",
    "production_t", "production_lo_t", "production_hi_t",
    "yield_5yr_mean_t_ha", "yield_last_year_t_ha", "anomaly_5yr_pct", "anomaly_last_year_pct", "condition",
    "observed_yield_t_ha", "n_obs", "n_regions",
]


def _with_cutoff(windows: pd.DataFrame, lead: LeadTime) -> pd.DataFrame:
    w = windows.copy()
    w["cutoff_date"] = w["eos_date"] - pd.to_timedelta(cutoff_days(lead, w["season_length_d"]), unit="D")
    return w


def _features(inputs: ForecastInputs, windows: pd.DataFrame, config: ForecastConfig,
              as_of: pd.Timestamp | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Index and weather features of every window, from observations up to ``as_of`` (all
    when None)."""
    series, weather = inputs.series, inputs.weather
    if as_of is not None:
        series, weather = series[series["date"] <= as_of], weather[weather["date"] <= as_of]
    indices = sorted(inputs.series["index"].unique())
    f = build_features(series, windows, spinup_days=config.spinup_days, fractions=config.phenology_fractions,
                       indices=indices)
    if not indices:
        f["complete"] = True
    cols = feature_columns(indices, config.phenology_fractions)
    if len(inputs.weather):
        w = weather_features(weather, windows, config.crop, gdd_base_c=config.gdd_base_c,
                             heat_c=config.heat_threshold_c)
        f = f.merge(w, on=["region_id", "year"], how="left")
        cols += weather_columns(inputs.weather["variable"].unique())
    return f, cols


def run_backtest(inputs: ForecastInputs, config: ForecastConfig, log: IssueLog,
                 progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """LOYO and walk-forward backtests at every lead time, per country; the long prediction table.

    Each (lead time, country, scheme) is one task; tasks run on ``config.backtest_workers``
    processes (joblib's loky), and ``progress`` gets a line as each one finishes. Without index
    series or weather every lead time has the same features, so one lead's results serve them all.
    """
    parent = inputs.regions.set_index("region_id")["parent"]
    windows = season_windows(inputs.calendar, inputs.yields["year"].unique())
    tasks, incomplete = [], set()
    leads = config.leads if len(inputs.series) or len(inputs.weather) else config.leads[:1]
    for lead in leads:
        feats, cols = _features(inputs, _with_cutoff(windows, lead), config)
        data = inputs.yields.rename(columns={"yield_t_ha": "y"})[["region_id", "year", "y"]].merge(
            feats, on=["region_id", "year"], how="inner")
        bad = data[~data["complete"]]
        incomplete |= {f"{r}/{y}" for r, y in zip(bad["region_id"], bad["year"], strict=True)}
        data = data[data["complete"]].copy()
        data["country"] = data["region_id"].map(parent)
        for country, dc in data.groupby("country", sort=True):
            for scheme in ("loyo", "walk_forward"):
                tasks.append((lead.name, str(country), scheme, dc.reset_index(drop=True), cols))
    if incomplete:
        items = sorted(incomplete)
        log.add("season_incomplete_observations", "series",
                f"series: {len(items)} region-season(s) with yields lack index observations covering the "
                f"season window at some lead time ({format_ids(items)}); they are left out of the backtest "
                "(for every model alike, as CY-Bench does)", items)
    out = _run_tasks(tasks, config, progress)
    if len(leads) < len(config.leads) and out:  # no series: every lead is the first one
        out = [p.assign(lead_time=lead.name) for lead in config.leads for p in out]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def _backtest_task(task: tuple[Any, ...], config: ForecastConfig) -> pd.DataFrame:
    lead, country, scheme, data, cols = task
    p = backtest(data, cols, config.learners, scheme=scheme, min_train_years=config.min_train_years,
                 inner_folds=config.inner_folds, coverage=config.interval, seed=config.seed, model=config.model,
                 trend_horizon=config.trend_horizon_years)
    p["country"], p["crop"], p["lead_time"] = country, config.crop, lead
    return p


def _run_tasks(tasks: list[tuple[Any, ...]], config: ForecastConfig,
               progress: Callable[[str], None] | None) -> list[pd.DataFrame]:
    """Every backtest task, in parallel when there are workers for it; results in task order."""
    workers = min(config.backtest_workers or os.cpu_count() or 1, len(tasks))
    t0, done = time.perf_counter(), 0
    results: dict[int, pd.DataFrame] = {}

    def report(i: int) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            lead, country, scheme = tasks[i][:3]
            spent = time.perf_counter() - t0
            progress(f"backtest {done}/{len(tasks)}: {country} {lead} {scheme} done; {spent:.0f} s, about "
                     f"{spent / done * (len(tasks) - done):.0f} s left")

    if workers <= 1:
        for i, task in enumerate(tasks):
            results[i] = _backtest_task(task, config)
            report(i)
    else:
        from joblib import Parallel, delayed

        def numbered(i: int, task: tuple[Any, ...]) -> tuple[int, pd.DataFrame]:
            return i, _backtest_task(task, config)

        # the biggest tasks first: the pool ends together instead of waiting on one straggler
        order = sorted(range(len(tasks)), key=lambda i: -len(tasks[i][3]))
        pool = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered")
        for i, frame in pool(delayed(numbered)(i, tasks[i]) for i in order):
            results[i] = frame
            report(i)
    return [results[i] for i in range(len(tasks)) if not results[i].empty]


def forecast_season(inputs: ForecastInputs, config: ForecastConfig, *, as_of: date | None = None,
                    season_year: int | None = None, log: IssueLog | None = None) -> pd.DataFrame:
    """Forecast every region's yield and production for ``season_year`` as of ``as_of``, and roll up.

    Uses only index observations dated on or before ``as_of`` and yields of earlier harvest years.
    Each region's past seasons are cut at the same number of days before their end of season as
    the forecast season is cut by ``as_of``, so the model is trained at the lead time it is used at.

    Returns:
        Region, country and global rows (columns :data:`FORECAST_COLUMNS`).
    """
    log = log if log is not None else IssueLog()
    as_of = as_of or config.as_of
    if as_of is None:
        raise DataError("forecast_season needs an as-of date; set 'as_of' in the config (e.g. 2020-05-15)")
    season_year = season_year or config.season_year or as_of.year
    as_of_ts = pd.Timestamp(as_of)
    series = inputs.series[inputs.series["date"] <= as_of_ts]
    if len(inputs.series) and series.empty:
        first = inputs.series["date"].min().date()
        log.add("as_of_before_observations", "as_of",
                f"as_of: {as_of.isoformat()} is before the first index observation ({first}); every region is "
                "forecast from its yield history alone (trend and last years, no index features)",
                [as_of.isoformat()])
    hist = inputs.yields[inputs.yields["year"] < season_year]
    regions = inputs.regions.set_index("region_id")
    with_hist = set(hist["region_id"])
    cal = inputs.calendar[inputs.calendar["region_id"].isin(with_hist)]
    late = sorted(set(inputs.yields["region_id"]) - with_hist)
    if late:
        log.add("region_no_earlier_yields", "yields",
                f"yields: {len(late)} region(s) have no usable yield before {season_year} ({format_ids(late)}); "
                "no forecast for them", late)
    if cal.empty:
        raise DataError(f"no region has both a crop calendar and usable yields before {season_year}; "
                        "nothing to forecast")
    target_w = season_windows(cal, [season_year])
    lead_days = np.maximum((target_w["eos_date"] - as_of_ts).dt.days.to_numpy(), 0)
    lead_by_region = dict(zip(target_w["region_id"], lead_days, strict=True))
    windows = season_windows(cal, sorted(set(hist["year"]) | {season_year}))
    windows["cutoff_date"] = windows["eos_date"] - pd.to_timedelta(windows["region_id"].map(lead_by_region), unit="D")
    windows.loc[windows["year"] == season_year, "cutoff_date"] = np.minimum(
        windows.loc[windows["year"] == season_year, "cutoff_date"], as_of_ts)
    feats, cols = _features(inputs, windows, config, as_of_ts)
    train_all = (hist.rename(columns={"yield_t_ha": "y"})[["region_id", "year", "y"]]
                 .merge(feats, on=["region_id", "year"]))
    train_all = train_all.assign(parent=train_all["region_id"].map(regions["parent"]))
    train = train_all[train_all["complete"]]
    test = feats[feats["year"] == season_year].copy()
    test["y"] = np.nan
    test["parent"] = test["region_id"].map(regions["parent"])
    parts = []
    for country, tc in test.groupby("parent", sort=True):
        tr, use_cols = train[train["parent"] == country], cols
        if (tc["n_obs"] == 0).all():
            # No index observed this season yet: index features carry no information, so the
            # model is the yield history (and the weather, when given), trained on every season
            # with a yield.
            tr, use_cols = train_all[train_all["parent"] == country], [c for c in cols if c.startswith("w_")]
        if tr["year"].nunique() < 2:
            items = sorted(tc["region_id"])
            log.add("country_too_little_history", "yields",
                    f"yields: country {country!r} has {tr['year'].nunique()} usable training season(s) before "
                    f"{season_year}; at least 2 are needed; regions {format_ids(items)} get no forecast", items)
            continue
        preds, sel = select_and_fit(tr.reset_index(drop=True), tc.reset_index(drop=True), use_cols, config.learners,
                                    min_years=config.min_train_years, inner_folds=config.inner_folds,
                                    coverage=config.interval, seed=config.seed, model=config.model,
                                    trend_horizon=config.trend_horizon_years)
        raw = preds[sel.chosen]
        p, lo, hi = bounded(raw, sel.quantiles[sel.chosen])
        parts.append(pd.DataFrame({
            "region_id": tc["region_id"].to_numpy(), "parent": country, "model": sel.chosen,
            "yield_t_ha": p, "yield_lo_t_ha": lo, "yield_hi_t_ha": hi, "raw_yield_t_ha": raw,
            "years_since_last_yield": trend_distance(tr, tc), "n_obs": tc["n_obs"].to_numpy(),
        }))
    if not parts:
        raise DataError(f"no region could be forecast for {season_year}; see the issues above")
    reg = pd.concat(parts, ignore_index=True)
    reg = _made_possible(reg, config, season_year, log)
    if reg[["yield_lo_t_ha", "yield_hi_t_ha"]].isna().any().any():
        items = sorted(reg.loc[reg["yield_lo_t_ha"].isna(), "region_id"])
        log.add("interval_unavailable", "yields",
                f"yields: too few training years for out-of-sample errors; no interval for {format_ids(items)}", items)
    reg = _add_context(reg, inputs, config, season_year, as_of_ts, lead_by_region, series, log)
    reg = pd.concat([reg, _unallocated_lines(inputs, reg, config, season_year, log)], ignore_index=True)
    up = rollup(reg)
    table = pd.concat([reg, up], ignore_index=True)
    table["as_of"] = as_of.isoformat()
    table["crop"] = config.crop
    table["season_year"] = season_year
    for c in FORECAST_COLUMNS:
        if c not in table:
            table[c] = np.nan
    extra = [c for c in table.columns if c not in FORECAST_COLUMNS]
    return table[FORECAST_COLUMNS + extra]


def _unallocated_lines(inputs: ForecastInputs, reg: pd.DataFrame, config: ForecastConfig, season_year: int,
                       log: IssueLog) -> pd.DataFrame:
    """Each parent's unallocated line (the yield rows naming no region, see ``UNALLOCATED``):
    no calendar and no imagery, so its yield is the mean of its 5 latest yields, its area the
    latest reported, and its interval the parent's regions' relative interval (their summed
    bounds over their summed production, as the roll-up sums them). A line whose last area is
    older than ``max_area_age_years`` is left out, and said so: its rows are history (the
    departments it lumped together have been listed one by one since), and adding an old
    lump to this season would count their area twice."""
    hist = inputs.yields[inputs.yields["region_id"].str.endswith(UNALLOCATED) & (inputs.yields["year"] < season_year)]
    areas = inputs.yields_all[inputs.yields_all["region_id"].str.endswith(UNALLOCATED)
                              & (inputs.yields_all["year"] < season_year)
                              & (inputs.yields_all["harvested_area_ha"] > 0)]
    if hist.empty or areas.empty:
        return pd.DataFrame()
    parent = inputs.regions.set_index("region_id")["parent"]
    rows, old = [], []
    for rid, g in hist.sort_values("year").groupby("region_id"):
        last = areas[areas["region_id"] == rid].sort_values("year")
        if last.empty:
            continue
        if season_year - int(last["year"].iloc[-1]) > config.max_area_age_years:
            old.append(f"{rid} ({int(last['year'].iloc[-1])})")
            continue
        country = parent.get(rid)
        siblings = reg[(reg["parent"] == country) & reg["production_t"].gt(0)]
        siblings = siblings if len(siblings) else reg[reg["production_t"].gt(0)]
        total = siblings["production_t"].sum()
        lo, hi = ((siblings["production_lo_t"].sum() / total, siblings["production_hi_t"].sum() / total)
                  if total > 0 else (np.nan, np.nan))
        y = float(g["yield_t_ha"].tail(5).mean())
        a, year = float(last["harvested_area_ha"].iloc[-1]), int(last["year"].iloc[-1])
        rows.append({
            "level": "unallocated", "region_id": rid, "name": f"{country}: rows without a region", "parent": country,
            "model": "mean-5y", "yield_t_ha": y, "yield_lo_t_ha": y * lo, "yield_hi_t_ha": y * hi,
            "harvested_area_ha": a, "area_source": f"statistics {year}", "production_t": y * a,
            "production_lo_t": y * a * lo, "production_hi_t": y * a * hi, "n_obs": 0, "n_regions": 1,
            "condition": HISTORY_ONLY, "years_since_last_yield": season_year - int(g["year"].iloc[-1]),
            "crop": config.crop, "season_year": season_year,
        })
    if old:
        log.add("unallocated_stale", "yields",
                f"yields: {len(old)} parent(s)' unallocated line(s) last reported an area more than "
                f"max_area_age_years={config.max_area_age_years} seasons before {season_year} ({format_ids(old)}); "
                "left out of this season's totals (their rows stay in the history roll-up)",
                [o.split(" ")[0] for o in old])
    return pd.DataFrame(rows)


def _scale_by_parent(stats: pd.DataFrame, parent: pd.Series, rid: str, year: int) -> tuple[float, int] | None:
    """How the area of ``rid``'s sibling regions changed from ``year`` to their latest year:
    (their total area now / then, the latest year), over the siblings reporting in both
    years; None when no sibling reported after ``year``. ``stats`` carries a ``parent`` column."""
    siblings = stats[(stats["parent"] == parent.get(rid)) & (stats["region_id"] != rid)]
    later = siblings[siblings["year"] > year]
    if later.empty:
        return None
    latest = int(later["year"].max())
    then = siblings[siblings["year"] == year].set_index("region_id")["harvested_area_ha"]
    now = siblings[siblings["year"] == latest].set_index("region_id")["harvested_area_ha"]
    both = then.index.intersection(now.index)
    if both.empty or then[both].sum() <= 0:
        return None
    return float(now[both].sum() / then[both].sum()), latest


def _made_possible(reg: pd.DataFrame, config: ForecastConfig, season_year: int, log: IssueLog) -> pd.DataFrame:
    """Report the forecasts that had to be made possible (a trend given up beyond its horizon,
    a yield below zero set to zero; the model's value is in ``raw_yield_t_ha``), and name the
    model that really made each one."""
    beyond = (reg["years_since_last_yield"] > config.trend_horizon_years) & ~reg["model"].isin(LEVEL_MODELS)
    far = reg[beyond]
    if len(far):
        items = [f"{r} ({d:.0f} y)" for r, d in zip(far["region_id"], far["years_since_last_yield"], strict=True)]
        log.add("trend_beyond_horizon", "yields",
                f"yields: {len(far)} region(s) last reported a yield more than trend_horizon_years="
                f"{config.trend_horizon_years} before {season_year} ({format_ids(items)}); no trend is projected "
                "that far: they are forecast at the mean of their 5 latest yields. Check that they still grow "
                "the crop", list(far["region_id"]))
    neg = reg[reg["raw_yield_t_ha"] < 0]
    if len(neg):
        items = [f"{r} ({v:.2f} t/ha)" for r, v in zip(neg["region_id"], neg["raw_yield_t_ha"], strict=True)]
        log.add("yield_clipped_at_zero", "yields",
                f"yields: the model gave {len(neg)} region(s) a negative yield ({format_ids(items)}); set to 0, "
                "and their intervals start at 0. Check their yield history", list(neg["region_id"]))
    return reg.assign(model=reg["model"].where(~beyond, "mean-5y")).drop(columns="raw_yield_t_ha")


def _add_context(reg: pd.DataFrame, inputs: ForecastInputs, config: ForecastConfig, season_year: int,
                 as_of: pd.Timestamp, lead_by_region: dict[str, Any], series: pd.DataFrame,
                 log: IssueLog) -> pd.DataFrame:
    """Area and its source, production with interval, anomalies, condition, observed yield."""
    reg = reg.copy()
    reg["level"] = "region"
    reg["name"] = reg["region_id"].map(inputs.regions.set_index("region_id")["name"])
    reg["days_before_eos"] = reg["region_id"].map(lead_by_region).astype(int)
    reg["crop"], reg["season_year"] = config.crop, season_year
    # Area: the crop map's (series area_ha in this season, last value up to as_of), else statistics.
    area, source = {}, {}
    if "area_ha" in series and series["area_ha"].notna().any():
        start = as_of - pd.Timedelta(days=366)
        cm = series[(series["date"] > start) & series["area_ha"].notna()].sort_values("date")
        last = cm.groupby("region_id").last()
        for rid, v in last["area_ha"].items():
            # a series may say which crop-map area it carries (mapped, or error-adjusted)
            label = last.at[rid, "area_source"] if "area_source" in last else None
            area[rid], source[rid] = float(v), str(label) if isinstance(label, str) else "crop_map"
    stats = inputs.yields_all[(inputs.yields_all["year"] < season_year) & inputs.yields_all["harvested_area_ha"].notna()
                              & (inputs.yields_all["harvested_area_ha"] > 0)].sort_values("year")
    parent = inputs.regions.set_index("region_id")["parent"]
    stats = stats.assign(parent=stats["region_id"].map(parent))
    stale = []
    for rid, row in stats.groupby("region_id").last().iterrows():
        if rid in area:
            continue
        year = int(row["year"])
        area[rid], source[rid] = float(row["harvested_area_ha"]), f"statistics {year}"
        if season_year - year > config.max_area_age_years:
            scaled = _scale_by_parent(stats, parent, rid, year)
            if scaled is not None:
                area[rid] *= scaled[0]
                source[rid] = f"statistics {year} scaled to {scaled[1]} by its parent's other regions"
            stale.append(f"{rid} ({year}{', scaled' if scaled else ''})")
    if stale:
        log.add("area_stale", "yields",
                f"yields: {len(stale)} region(s) have no harvested area from the last max_area_age_years="
                f"{config.max_area_age_years} seasons ({format_ids(stale)}); 'scaled': multiplied by how the "
                "total area of the other regions of its parent changed since (those reporting in both years); "
                "the others keep their old area. Give a newer area (a crop map or statistics) if you have one",
                [s.split(" ")[0] for s in stale])
    reg["harvested_area_ha"] = reg["region_id"].map(area)
    reg["area_source"] = reg["region_id"].map(source).fillna("none")
    no_area = sorted(reg.loc[reg["harvested_area_ha"].isna(), "region_id"])
    if no_area:
        log.add("region_no_area", "yields",
                f"yields: {len(no_area)} region(s) have no harvested area (no crop map, no statistics) "
                f"({format_ids(no_area)}); no production, and left out of the roll-up", no_area)
    for s in ("", "_lo", "_hi"):
        reg[f"production{s}_t"] = reg[f"yield{s}_t_ha"] * reg["harvested_area_ha"]
    y = inputs.yields
    past5 = y[(y["year"] >= season_year - 5) & (y["year"] < season_year)].groupby("region_id")
    last = y[y["year"] == season_year - 1].set_index("region_id")
    reg["yield_5yr_mean_t_ha"] = reg["region_id"].map(past5["yield_t_ha"].mean())
    reg["production_5yr_mean_t"] = reg["region_id"].map(past5["production_t"].mean())
    reg["area_5yr_mean_ha"] = reg["region_id"].map(past5["harvested_area_ha"].mean())
    reg["yield_last_year_t_ha"] = reg["region_id"].map(last["yield_t_ha"])
    reg["production_last_year_t"] = reg["region_id"].map(last["production_t"])
    reg["area_last_year_ha"] = reg["region_id"].map(last["harvested_area_ha"])
    reg["anomaly_5yr_pct"] = 100 * (reg["yield_t_ha"] / reg["yield_5yr_mean_t_ha"] - 1)
    reg["anomaly_last_year_pct"] = 100 * (reg["yield_t_ha"] / reg["yield_last_year_t_ha"] - 1)
    reg["condition"] = [condition_class(a) for a in reg["anomaly_5yr_pct"]]
    # a condition class says what the imagery shows: without an observation in the region's
    # season window (its calendar's start of season up to as_of), a forecast is history
    # (trend, past yields) and gets none
    blind = reg["n_obs"] == 0
    if blind.any():
        reg.loc[blind, "condition"] = HISTORY_ONLY
        ids = sorted(reg.loc[blind, "region_id"])
        log.add("season_without_observations", "series",
                f"series: {len(ids)} region(s) have no index observation of the {season_year} season up to "
                f"{as_of.date()} ({format_ids(ids)}); their forecast is history only (trend and past yields) "
                "and gets no condition class", ids)
    obs = y[y["year"] == season_year].set_index("region_id")
    reg["observed_yield_t_ha"] = reg["region_id"].map(obs["yield_t_ha"])
    reg["observed_production_t"] = reg["region_id"].map(obs["production_t"])
    reg["observed_area_ha"] = reg["region_id"].map(obs["harvested_area_ha"])
    reg["n_regions"] = 1
    return reg[reg["harvested_area_ha"].notna()] if no_area else reg


def run_forecast(config: ForecastConfig | Mapping[str, Any] | str | Path, *, write: bool = True,
                 progress: Callable[[str], None] | None = None) -> ForecastResult:
    """Load the inputs, backtest every lead time, forecast the season (if ``as_of``), write the files.

    ``config``: a :class:`ForecastConfig`, a dict as the YAML file holds, or the file's path.

    Files under ``config.out_dir`` (when ``write``): ``forecast.parquet``, ``forecast.csv``,
    ``metrics.json``, ``backtest_predictions.parquet``, ``plots/*.png``.

    Raises:
        ConfigError: a path or mapping in the config is wrong.
        DataError: the inputs are unusable, or ``strict`` and any issue was found.
    """
    config = as_forecast_config(config)
    inputs = load_inputs(config)
    log = inputs.issues
    predictions = run_backtest(inputs, config, log, progress) if config.backtest else pd.DataFrame()
    metrics = compute_metrics(predictions, coverage=config.interval) if not predictions.empty else []
    forecast = (forecast_season(inputs, config, log=log) if config.as_of is not None
                else pd.DataFrame(columns=FORECAST_COLUMNS))
    log.raise_if_strict(config.strict)
    history = rollup_history(inputs.yields_all, inputs.regions.set_index("region_id")["parent"])
    result = ForecastResult(config=config, forecast=forecast, metrics=metrics, predictions=predictions,
                            issues=list(log.issues), history=history)
    if write:
        result.outputs = write_outputs(result, inputs)
    return result


def _json_default(o: object) -> object:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, (date, pd.Timestamp)):
        return o.isoformat()
    return str(o)


def _clean(o: object) -> object:
    if isinstance(o, float) and not np.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_clean(v) for v in o]
    return o


def write_outputs(result: ForecastResult, inputs: ForecastInputs) -> dict[str, str]:
    """Write the forecast table, metrics, predictions and plots; returns name -> path."""
    import cluster

    config = result.config
    out = config.resolve(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    if not result.forecast.empty:
        result.forecast.to_parquet(out / "forecast.parquet", index=False)
        result.forecast.to_csv(out / "forecast.csv", index=False)
        paths["forecast_parquet"], paths["forecast_csv"] = str(out / "forecast.parquet"), str(out / "forecast.csv")
    result.history.to_csv(out / "history.csv", index=False)
    paths["history"] = str(out / "history.csv")
    if not result.predictions.empty:
        result.predictions.to_parquet(out / "backtest_predictions.parquet", index=False)
        paths["backtest_predictions"] = str(out / "backtest_predictions.parquet")
    doc = {
        "version": cluster.__version__,
        "crop": config.crop,
        "protocol": {
            "nrmse": "per held-out year: 100 * RMSE / mean observed yield over that year's regions; median over years",
            "loyo": "each year held out in turn; every model (baselines too) fit on the other years",
            "walk_forward": f"train on the years before Y (at least {config.min_train_years}), forecast Y",
            "mape_r2_coverage": "pooled over held-out region-years of the walk-forward backtest "
                                "(the *_loyo / *_walk_forward keys give both schemes)",
            "interval": f"{config.interval:.0%} split-conformal interval from the inner-validation relative errors",
            "selected": "the model picked by inner year-grouped validation on the training years of each fold",
            "baselines": list(BASELINES),
            "condition_rule": CONDITION_RULE,
        },
        "metrics": result.metrics,
        "issues": [i.to_dict() for i in result.issues],
    }
    (out / "metrics.json").write_text(json.dumps(_clean(doc), indent=2, default=_json_default), encoding="utf-8")
    paths["metrics"] = str(out / "metrics.json")
    if config.plots and not result.forecast.empty:
        from cluster.forecast.plots import plot_all

        paths.update(plot_all(result, inputs, out / "plots"))
    if config.bulletin.write and not result.forecast.empty:
        from cluster.forecast.bulletin import write_bulletin

        paths["bulletin"] = str(write_bulletin([result], out / "bulletin.html"))
    return paths
