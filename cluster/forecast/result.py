"""What a forecast run produced: the tables, the backtest metrics, the data issues, the files
written; a plain-text summary for the terminal and an HTML one for Jupyter."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cluster.forecast.config import ForecastConfig
from cluster.forecast.evaluate import SELECTED
from cluster.forecast.issues import Issue
from cluster.forecast.models import BASELINES

__all__ = ["ForecastResult"]


@dataclass
class ForecastResult:
    """What one forecast run produced."""

    config: ForecastConfig
    forecast: pd.DataFrame
    """Region, country and global rows of the season forecast (empty without ``as_of``)."""
    metrics: list[dict[str, Any]]
    """Per country, crop, lead time and model: backtest metrics (see :func:`compute_metrics`)."""
    predictions: pd.DataFrame
    """Every backtest prediction (long form)."""
    issues: list[Issue]
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Observed totals per country and the globe, per crop and year (``history.csv``)."""
    outputs: dict[str, str] = field(default_factory=dict)
    """Name -> path of every file written."""

    def metric(self, country: str, lead_time: str, model: str) -> dict[str, Any]:
        for m in self.metrics:
            if m["country"] == country and m["lead_time"] == lead_time and m["model"] == model:
                return m
        raise KeyError(f"no metrics for country={country!r} lead_time={lead_time!r} model={model!r}")

    def summary(self, reference: dict[str, float] | None = None) -> str:
        """A plain-text table: selected model against the baselines, per country and lead time."""
        lines = []
        if self.metrics:
            lines.extend(_backtest_lines(self))
            if reference:
                lines.append("CY-Bench published (middle of season, best baseline): "
                             + ", ".join(f"{k} {v:.2f} %" for k, v in reference.items()))
        if not self.forecast.empty:
            top = self.forecast[self.forecast["level"].isin(["country", "global"])]
            lines.append(f"forecast as of {self.config.as_of} (season {self.config.effective_season_year()}):")
            for r in top.itertuples():
                lines.append(f"  {r.region_id:8} yield {r.yield_t_ha:6.2f} t/ha "
                             f"[{r.yield_lo_t_ha:.2f}, {r.yield_hi_t_ha:.2f}]"
                             f"  production {r.production_t / 1e3:10.1f} kt"
                             f"  anomaly vs 5y {r.anomaly_5yr_pct:+6.1f} %  {r.condition}")
        lines.append(f"{len(self.issues)} data issue(s)" + (":" if self.issues else ""))
        lines.extend(f"  [{i.code}] {i.message}" for i in self.issues)
        for name, path in self.outputs.items():
            lines.append(f"  wrote {name}: {path}")
        return "\n".join(lines)

    def metrics_table(self) -> pd.DataFrame:
        """The backtest: ours and the baselines per country and lead time (nRMSE %, interval)."""
        cols = ["country", "crop", "lead_time", "model", "nrmse_median_loyo", "nrmse_walk_forward",
                "interval_coverage_80", "interval_score"]
        m = pd.DataFrame(self.metrics)
        if m.empty:
            return pd.DataFrame(columns=cols)
        m = m[m["model"].isin([SELECTED, *BASELINES])]
        return m[[c for c in cols if c in m]].reset_index(drop=True)

    def _repr_html_(self) -> str:
        from cluster.report import html_card

        cfg = self.config
        facts = {"crop": cfg.crop, "as of": cfg.as_of or "no season forecast (backtest only)",
                 "season": cfg.effective_season_year() if cfg.as_of else "-",
                 "lead times": ", ".join(lead.name for lead in cfg.leads), **self.outputs}
        top = (self.forecast[self.forecast["level"].isin(["country", "global"])] if not self.forecast.empty
               else self.forecast)
        shown = ["level", "region_id", "yield_t_ha", "yield_lo_t_ha", "yield_hi_t_ha", "production_t",
                 "anomaly_5yr_pct", "anomaly_last_year_pct", "condition", "model"]
        tables = {"forecast (countries and global)": top[[c for c in shown if c in top]],
                  "forecast per region": self.forecast[self.forecast["level"] == "region"][
                      [c for c in shown if c in self.forecast]] if not self.forecast.empty else self.forecast,
                  "backtest": self.metrics_table()}
        status = f"OK, {len(self.issues)} data issue(s)" if self.issues else "OK"
        return html_card(f"forecast {html.escape(cfg.crop)}", status, "", facts,
                         {"data issues": [f"[{i.code}] {i.message}" for i in self.issues]},
                         {k: v for k, v in tables.items() if len(v)}, rows=20)


def _backtest_lines(result: "ForecastResult") -> list[str]:
    """The backtest table: ours against every baseline, then skill and when it starts."""
    def both(m: dict[str, Any]) -> str:
        return f"{m['nrmse_median_loyo']:5.2f}|" + (f"{m['nrmse_walk_forward']:5.2f}"
                                                   if m.get("nrmse_walk_forward") is not None else "  n/a")

    lines = ["backtest: normalized RMSE % (median over held-out years), LOYO|walk-forward; "
             f"{result.config.interval:.0%} intervals' walk-forward coverage and interval score "
             "(t/ha, lower is better)",
             f"{'country':8} {'lead time':17} {'ours':>11} " + " ".join(f"{b:>11}" for b in BASELINES)
             + f" {'cov':>5} {'IS ours':>7} {'IS best':>7}"]
    leads = [lead.name for lead in result.config.leads]
    keys = sorted({(m["country"], m["lead_time"]) for m in result.metrics},
                  key=lambda k: (k[0], leads.index(k[1]) if k[1] in leads else len(leads)))
    earliest: dict[str, str] = {}
    for country, lead in keys:
        try:
            ours = result.metric(country, lead, SELECTED)
            base = {b: result.metric(country, lead, b) for b in BASELINES}
        except KeyError:
            continue
        best = base[ours.get("best_baseline_walk_forward") or ours.get("best_baseline_loyo") or BASELINES[0]]
        lines.append(f"{country:8} {lead:17} {both(ours):>11} " + " ".join(f"{both(m):>11}" for m in base.values())
                     + f" {ours.get('interval_coverage_80', float('nan')):5.2f}"
                     f" {ours.get('interval_score', float('nan')):7.2f}"
                     f" {best.get('interval_score', float('nan')):7.2f}")
        skill = ours.get("skill", {})
        wins = all(v.get("walk_forward", -1) > 0 for v in skill.values()) and len(skill) == len(BASELINES)
        if wins and country not in earliest:
            earliest[country] = lead
    for country in sorted({k[0] for k in keys}):
        skills = [(lead, result.metric(country, lead, SELECTED).get("skill", {})) for c, lead in keys if c == country]
        lines.append(f"skill of ours, walk-forward (1 - RMSE ours / RMSE baseline), {country}: " + "; ".join(
            f"{lead} " + ", ".join(f"{b} {s['walk_forward']:+.2f}" for b, s in sk.items() if "walk_forward" in s)
            for lead, sk in skills))
        lines.append(f"  earliest lead time at which ours beats every baseline (walk-forward): "
                     f"{earliest.get(country, 'none of those run')}")
    return lines
