"""Harvest forecasts: yield and production per region, rolled up, with an honest backtest.

Public API::

    from cluster.forecast import ForecastConfig, run_forecast, forecast_season, load_inputs
    result = run_forecast(ForecastConfig(...))       # backtest + season forecast + files
    table = forecast_season(load_inputs(cfg), cfg)   # one season as of cfg.as_of

Module map: ``config`` (the validated config), ``tables`` (reading and checking inputs),
``features`` (season windows, no-look-ahead index features), ``weather`` (weather features),
``models`` (baselines and learners),
``evaluate`` (LOYO / walk-forward backtests, metrics), ``rollup`` (anomalies, condition,
country/global sums), ``plots`` (PNG), ``bulletin`` (the HTML bulletin), ``result`` (what a run
produced), ``run`` (the pipeline), ``from_cube`` (forecasts from a cube's statistics), ``issues``
(the issue log).
"""

from __future__ import annotations

from cluster.forecast.config import ForecastConfig, LeadTime, TableInput, load_forecast_config, parse_lead_time
from cluster.forecast.evaluate import backtest, compute_metrics, iter_folds, nrmse_by_year
from cluster.forecast.issues import Issue, IssueLog
from cluster.forecast.rollup import CONDITION_RULE, condition_class, national_yield, rollup, rollup_history
from cluster.forecast.result import ForecastResult
from cluster.forecast.run import forecast_season, run_backtest, run_forecast
from cluster.forecast.tables import ACRE_HA, BUSHEL_KG, ForecastInputs, bu_per_acre_to_t_ha, load_inputs, read_table

__all__ = [
    "ACRE_HA",
    "BUSHEL_KG",
    "CONDITION_RULE",
    "ForecastConfig",
    "ForecastInputs",
    "ForecastResult",
    "Issue",
    "IssueLog",
    "LeadTime",
    "TableInput",
    "backtest",
    "bu_per_acre_to_t_ha",
    "compute_metrics",
    "condition_class",
    "forecast_season",
    "iter_folds",
    "load_forecast_config",
    "load_inputs",
    "national_yield",
    "nrmse_by_year",
    "parse_lead_time",
    "read_table",
    "rollup",
    "rollup_history",
    "run_backtest",
    "run_forecast",
]
