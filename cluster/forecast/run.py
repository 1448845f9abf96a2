"""The forecast pipeline: inputs -> backtests at each lead time -> season forecast -> roll-up -> files.

:func:`run_forecast` is what ``harvest forecast`` runs; :func:`forecast_season` forecasts one
season as of one date (the latest season, with no yield known yet, in ``harvest demo``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from cluster.errors import DataError
from cluster.forecast.config import ForecastConfig, LeadTime
from cluster.forecast.evaluate import SELECTED, backtest, compute_metrics
from cluster.forecast.features import build_features, cutoff_days, feature_columns, season_windows
from cluster.forecast.issues import Issue, IssueLog, format_ids
from cluster.forecast.models import BASELINES, select_and_fit
from cluster.forecast.rollup import CONDITION_RULE, HISTORY_ONLY, condition_class, rollup
from cluster.forecast.tables import ForecastInputs, load_inputs

__all__ = ["ForecastResult", "run_forecast", "forecast_season", "run_backtest"]

FORECAST_COLUMNS = [
    "level", "region_id", "name", "parent", "crop", "season_year", "as_of", "days_before_eos", "model",
    "yield_t_ha", "yield_lo_t_ha", "yield_hi_t_ha", "harvested_area_ha", "area_source",
    "production_t", "production_lo_t", "production_hi_t",
    "yield_5yr_mean_t_ha", "yield_last_year_t_ha", "anomaly_5yr_pct", "anomaly_last_year_pct", "condition",
    "observed_yield_t_ha", "n_obs", "n_regions",
]


@dataclass
class ForecastResult:
    """What one forecast run produced."""

    config: ForecastConfig
    forecast: pd.DataFrame
    """Region, country and global rows of the season forecast (empty without ``as_of``)."""
    metrics: list[dict]
    """Per country, crop, lead time and model: backtest metrics (see :func:`compute_metrics`)."""
    predictions: pd.DataFrame
    """Every backtest prediction (long form)."""
    issues: list[Issue]
    outputs: dict[str, str] = field(default_factory=dict)
    """Name -> path of every file written."""

    def metric(self, country: str, lead_time: str, model: str) -> dict:
        for m in self.metrics:
            if m["country"] == country and m["lead_time"] == lead_time and m["model"] == model:
                return m
        raise KeyError(f"no metrics for country={country!r} lead_time={lead_time!r} model={model!r}")

    def summary(self, reference: dict[str, float] | None = None) -> str:
        """A plain-text table: selected model against the baselines, per country and lead time."""
        lines = []
        if self.metrics:
            lines.append("backtest: normalized RMSE % (median over held-out years), LOYO | walk-forward")
            head = f"{'country':8} {'lead time':17} {'ours (selected)':>17} {'average':>15} {'trend':>15} {'cov80 wf':>8}"
            lines.append(head)
            fmt = lambda m: f"{m['nrmse_median_loyo']:6.2f} | {m['nrmse_walk_forward']:6.2f}" if m.get("nrmse_walk_forward") is not None else f"{m['nrmse_median_loyo']:6.2f} |    n/a"
            keys = sorted({(m["country"], m["lead_time"]) for m in self.metrics})
            for country, lead in keys:
                try:
                    ours, avg, tr = (self.metric(country, lead, x) for x in (SELECTED, "average", "trend"))
                except KeyError:
                    continue
                lines.append(f"{country:8} {lead:17} {fmt(ours):>17} {fmt(avg):>15} {fmt(tr):>15} "
                             f"{ours.get('interval_coverage_80', float('nan')):8.2f}")
            if reference:
                lines.append("CY-Bench published (middle of season, best baseline): "
                             + ", ".join(f"{k} {v:.2f} %" for k, v in reference.items()))
        if not self.forecast.empty:
            top = self.forecast[self.forecast["level"] != "region"]
            lines.append(f"forecast as of {self.config.as_of} (season {self.config.effective_season_year()}):")
            for r in top.itertuples():
                lines.append(f"  {r.region_id:8} yield {r.yield_t_ha:6.2f} t/ha [{r.yield_lo_t_ha:.2f}, {r.yield_hi_t_ha:.2f}]"
                             f"  production {r.production_t / 1e3:10.1f} kt  anomaly vs 5y {r.anomaly_5yr_pct:+6.1f} %  {r.condition}")
        lines.append(f"{len(self.issues)} data issue(s)" + (":" if self.issues else ""))
        lines.extend(f"  [{i.code}] {i.message}" for i in self.issues)
        for name, path in self.outputs.items():
            lines.append(f"  wrote {name}: {path}")
        return "\n".join(lines)


def _with_cutoff(windows: pd.DataFrame, lead: LeadTime) -> pd.DataFrame:
    w = windows.copy()
    w["cutoff_date"] = w["eos_date"] - pd.to_timedelta(cutoff_days(lead, w["season_length_d"]), unit="D")
    return w


def _features(inputs: ForecastInputs, windows: pd.DataFrame, config: ForecastConfig,
              series: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[str]]:
    series = inputs.series if series is None else series
    indices = sorted(inputs.series["index"].unique())
    f = build_features(series, windows, spinup_days=config.spinup_days, fractions=config.phenology_fractions,
                       indices=indices)
    if not indices:
        f["complete"] = True
    return f, feature_columns(indices, config.phenology_fractions)


def run_backtest(inputs: ForecastInputs, config: ForecastConfig, log: IssueLog) -> pd.DataFrame:
    """LOYO and walk-forward backtests at every lead time, per country; the long prediction table."""
    parent = inputs.regions.set_index("region_id")["parent"]
    windows = season_windows(inputs.calendar, inputs.yields["year"].unique())
    out, incomplete = [], set()
    for lead in config.leads:
        feats, cols = _features(inputs, _with_cutoff(windows, lead), config)
        data = inputs.yields.rename(columns={"yield_t_ha": "y"})[["region_id", "year", "y"]].merge(
            feats, on=["region_id", "year"], how="inner")
        bad = data[~data["complete"]]
        incomplete |= {f"{r}/{y}" for r, y in zip(bad["region_id"], bad["year"])}
        data = data[data["complete"]].copy()
        data["country"] = data["region_id"].map(parent)
        for country, dc in data.groupby("country", sort=True):
            for scheme in ("loyo", "walk_forward"):
                p = backtest(dc.reset_index(drop=True), cols, config.learners, scheme=scheme,
                             min_train_years=config.min_train_years, inner_folds=config.inner_folds,
                             coverage=config.interval, seed=config.seed, model=config.model)
                if p.empty:
                    continue
                p["country"], p["crop"], p["lead_time"] = country, config.crop, lead.name
                out.append(p)
    if incomplete:
        items = sorted(incomplete)
        log.add("season_incomplete_observations", "series",
                f"series: {len(items)} region-season(s) with yields lack index observations covering the "
                f"season window at some lead time ({format_ids(items)}); they are left out of the backtest "
                "(for every model alike, as CY-Bench does)", items)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


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
        raise DataError(f"no region has both a crop calendar and usable yields before {season_year}; nothing to forecast")
    target_w = season_windows(cal, [season_year])
    lead_days = np.maximum((target_w["eos_date"] - as_of_ts).dt.days.to_numpy(), 0)
    lead_by_region = dict(zip(target_w["region_id"], lead_days))
    windows = season_windows(cal, sorted(set(hist["year"]) | {season_year}))
    windows["cutoff_date"] = windows["eos_date"] - pd.to_timedelta(windows["region_id"].map(lead_by_region), unit="D")
    windows.loc[windows["year"] == season_year, "cutoff_date"] = np.minimum(
        windows.loc[windows["year"] == season_year, "cutoff_date"], as_of_ts)
    feats, cols = _features(inputs, windows, config, series)
    train_all = hist.rename(columns={"yield_t_ha": "y"})[["region_id", "year", "y"]].merge(feats, on=["region_id", "year"])
    train_all = train_all.assign(parent=train_all["region_id"].map(regions["parent"]))
    train = train_all[train_all["complete"]]
    test = feats[feats["year"] == season_year].copy()
    test["y"] = np.nan
    test["parent"] = test["region_id"].map(regions["parent"])
    parts = []
    for country, tc in test.groupby("parent", sort=True):
        tr, use_cols = train[train["parent"] == country], cols
        if (tc["n_obs"] == 0).all():
            # Nothing observed this season yet: index features carry no information, so the model
            # is the yield-history part alone, trained on every season with a yield.
            tr, use_cols = train_all[train_all["parent"] == country], []
        if tr["year"].nunique() < 2:
            items = sorted(tc["region_id"])
            log.add("country_too_little_history", "yields",
                    f"yields: country {country!r} has {tr['year'].nunique()} usable training season(s) before "
                    f"{season_year}; at least 2 are needed; regions {format_ids(items)} get no forecast", items)
            continue
        preds, sel = select_and_fit(tr.reset_index(drop=True), tc.reset_index(drop=True), use_cols, config.learners,
                                    min_years=config.min_train_years, inner_folds=config.inner_folds,
                                    coverage=config.interval, seed=config.seed, model=config.model)
        q = sel.quantiles[sel.chosen]
        p = preds[sel.chosen]
        parts.append(pd.DataFrame({
            "region_id": tc["region_id"].to_numpy(), "parent": country, "model": sel.chosen,
            "yield_t_ha": p, "yield_lo_t_ha": p * (1 + q[0]), "yield_hi_t_ha": p * (1 + q[1]),
            "n_obs": tc["n_obs"].to_numpy(),
        }))
    if not parts:
        raise DataError(f"no region could be forecast for {season_year}; see the issues above")
    reg = pd.concat(parts, ignore_index=True)
    if reg[["yield_lo_t_ha", "yield_hi_t_ha"]].isna().any().any():
        items = sorted(reg.loc[reg["yield_lo_t_ha"].isna(), "region_id"])
        log.add("interval_unavailable", "yields",
                f"yields: too few training years for out-of-sample errors; no interval for {format_ids(items)}", items)
    reg = _add_context(reg, inputs, config, season_year, as_of_ts, lead_by_region, series, log)
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


def _add_context(reg: pd.DataFrame, inputs: ForecastInputs, config: ForecastConfig, season_year: int,
                 as_of: pd.Timestamp, lead_by_region: dict, series: pd.DataFrame, log: IssueLog) -> pd.DataFrame:
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
    for rid, row in stats.groupby("region_id").last().iterrows():
        if rid not in area:
            area[rid], source[rid] = float(row["harvested_area_ha"]), f"statistics {int(row['year'])}"
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


def run_forecast(config: ForecastConfig, *, write: bool = True) -> ForecastResult:
    """Load the inputs, backtest every lead time, forecast the season (if ``as_of``), write the files.

    Files under ``config.out_dir`` (when ``write``): ``forecast.parquet``, ``forecast.csv``,
    ``metrics.json``, ``backtest_predictions.parquet``, ``plots/*.png``.

    Raises:
        ConfigError: a path or mapping in the config is wrong.
        DataError: the inputs are unusable, or ``strict`` and any issue was found.
    """
    inputs = load_inputs(config)
    log = inputs.issues
    predictions = run_backtest(inputs, config, log) if config.backtest else pd.DataFrame()
    metrics = compute_metrics(predictions) if not predictions.empty else []
    forecast = (forecast_season(inputs, config, log=log) if config.as_of is not None
                else pd.DataFrame(columns=FORECAST_COLUMNS))
    log.raise_if_strict(config.strict)
    result = ForecastResult(config=config, forecast=forecast, metrics=metrics, predictions=predictions,
                            issues=list(log.issues))
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
    return paths
