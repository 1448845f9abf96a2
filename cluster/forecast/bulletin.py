"""The crop bulletin: one self-contained HTML page per forecast run, or per set of crops.

What GEOGLAM Crop Monitor and JRC MARS bulletins show a ministry, from the run's own tables:
per country the production forecast and its interval, the yield anomaly against the 5-year
mean and last year, the condition class; a map of the regions coloured by anomaly and, when
the forecast covers several countries, a map of the countries; the backtest error of the
method against the simple baselines; the data issues; and where every number came from.
Images are embedded PNGs: the page needs no network and can be mailed as it is.

The **supply view** answers the question that follows a harvest forecast: per crop, this
season's production against the 5-year mean and last year, per country and in total, and the
share each country contributes to the change. It is supply only: no price is invented.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from cluster.forecast.rollup import CONDITION_RULE
from cluster.plots import CONDITION_COLOURS, figure_ax, forecast_bars, rollup
from cluster.vector import read_vector

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from cluster.forecast.result import ForecastResult

__all__ = ["supply_table", "render_bulletin", "write_bulletin"]

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2a22;background:#f6f7f4}
header{background:#24523a;color:#fff;padding:18px 28px}header h1{margin:0;font-size:24px}
header p{margin:4px 0 0;opacity:.85}main{padding:8px 28px 40px;max-width:1180px}
section{background:#fff;border-radius:6px;padding:14px 20px;margin:16px 0;box-shadow:0 1px 3px #0002}
h2{font-size:19px;margin:4px 0 10px}h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{padding:4px 9px;border-bottom:1px solid #e3e6e0;text-align:right}th{background:#eef1ec}
td:first-child,th:first-child{text-align:left}.badge{padding:1px 7px;border-radius:9px;color:#fff;font-size:12px}
.note{color:#5b665f;font-size:12.5px}.lead{font-size:15px;margin:6px 0 10px}
img{max-width:100%;height:auto;border:1px solid #e3e6e0;border-radius:4px}
.figs{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
pre{background:#f3f4f1;padding:8px;font-size:11.5px;overflow:auto;max-height:320px}
"""


def supply_table(result: "ForecastResult") -> pd.DataFrame:
    """Per country and in total: production forecast [interval], the 5-year mean and last
    year's production (observed totals), the change against both, and each country's share
    of the change against the 5-year mean. Tonnes."""
    fc = result.forecast
    season = int(fc["season_year"].iloc[0])
    crop = result.config.crop
    now = fc[fc["level"] == "country"].set_index("region_id")
    hist = result.history
    hist = hist[(hist["level"] == "country") & (hist["crop"] == crop)] if not hist.empty else hist
    rows = []
    for country, r in now.iterrows():
        past = (hist[hist["region_id"] == country].set_index("year")["production_t"] if len(hist)
                else pd.Series(dtype=float))
        five = past[(past.index >= season - 5) & (past.index < season)]
        rows.append({"country": country, "production_t": r["production_t"], "production_lo_t": r["production_lo_t"],
                     "production_hi_t": r["production_hi_t"],
                     "mean_5y_t": five.mean() if len(five) else np.nan, "years_in_mean": len(five),
                     "last_year_t": past.get(season - 1, np.nan)})
    t = pd.DataFrame(rows)
    if t.empty:
        return t
    total = {"country": "total", **{c: t[c].sum(min_count=1) for c in
                                    ("production_t", "production_lo_t", "production_hi_t")},
             # a total against the past only where every country has that past
             "mean_5y_t": t["mean_5y_t"].sum() if t["mean_5y_t"].notna().all() else np.nan,
             "years_in_mean": int(t["years_in_mean"].min()),
             "last_year_t": t["last_year_t"].sum() if t["last_year_t"].notna().all() else np.nan}
    t = pd.concat([t, pd.DataFrame([total])], ignore_index=True)
    t["change_vs_5y_t"] = t["production_t"] - t["mean_5y_t"]
    t["change_vs_5y_pct"] = 100 * t["change_vs_5y_t"] / t["mean_5y_t"]
    t["change_vs_last_year_pct"] = 100 * (t["production_t"] / t["last_year_t"] - 1)
    change = float(t["change_vs_5y_t"].iloc[-1])
    t["share_of_change_pct"] = 100 * t["change_vs_5y_t"] / change if np.isfinite(change) and abs(change) > 0 else np.nan
    return t


def _png(ax: "Axes", dpi: int = 96) -> str:
    from matplotlib.figure import Figure

    fig = ax.figure
    assert isinstance(fig, Figure), "a SubFigure cannot be saved on its own"
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(src: str, alt: str) -> str:
    return f'<img src="{src}" alt="{html.escape(alt)}">'


def _num(v: Any, fmt: str = "{:,.0f}") -> str:
    return "&ndash;" if v is None or (isinstance(v, float) and not np.isfinite(v)) else fmt.format(v)


def _unit(tonnes: pd.Series) -> tuple[float, str, str]:
    """Divisor, unit and format that keep a table's production readable (a demo's few hundred
    tonnes, a country's kilotonnes, the world's megatonnes)."""
    top = float(np.nanmax(np.abs(tonnes.to_numpy(float)))) if len(tonnes) and np.isfinite(tonnes).any() else 0.0
    if top >= 1e7:
        return 1e6, "Mt", "{:,.2f}"
    if top >= 1e4:
        return 1e3, "kt", "{:,.1f}"
    return 1.0, "t", "{:,.0f}"


def _signed(v: Any) -> str:
    return _num(v, "{:+.1f} %")


def _badge(condition: Any) -> str:
    c = str(condition)
    return (f'<span class="badge" style="background:{CONDITION_COLOURS[c]}">{c}</span>' if c in CONDITION_COLOURS
            else f'<span class="note">{html.escape(c)}</span>')


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _anomaly_map(ax: "Axes", shapes: Any, values: pd.Series, title: str) -> "Axes":
    """Polygons coloured by anomaly (%), diverging around 0; grey where there is no value."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import TwoSlopeNorm

    norm = TwoSlopeNorm(vcenter=0.0, vmin=-30.0, vmax=30.0)
    has = values.reindex(shapes.index)
    if has.isna().any():
        shapes[has.isna()].plot(ax=ax, color="#d9d9d9", edgecolor="white", linewidth=0.5)
    if has.notna().any():
        shapes[has.notna()].plot(ax=ax, column=has[has.notna()].clip(-30, 30), cmap="RdYlGn", norm=norm,
                                 edgecolor="white", linewidth=0.6)
    ax.figure.colorbar(ScalarMappable(norm=norm, cmap="RdYlGn"), ax=ax, shrink=0.7,
                       label="yield anomaly vs 5-year mean (%)")
    ax.set_title(title, fontsize=10)
    ax.set_axis_off()
    return ax


def _region_map(result: "ForecastResult") -> tuple[str | None, str]:
    cfg = result.config.bulletin
    if cfg.regions is None:
        return None, "No region map: set bulletin.regions to a file of region outlines."
    shapes = read_vector(str(result.config.resolve(cfg.regions)))
    if cfg.region_id_column not in shapes:
        return None, (f"No region map: {cfg.regions!r} has no column {cfg.region_id_column!r} "
                      f"(it has {', '.join(map(str, shapes.columns))}); set bulletin.region_id_column.")
    shapes = shapes.set_index(shapes[cfg.region_id_column].astype(str))
    reg = result.forecast[result.forecast["level"] == "region"].set_index("region_id")
    ax = figure_ax((6.4, 4.2))
    _anomaly_map(ax, shapes, reg["anomaly_5yr_pct"], f"{result.config.crop}: regions")
    if len(shapes) <= 60:  # names stay legible
        for rid, point in shapes.representative_point().items():
            ax.annotate(str(rid), (point.x, point.y), ha="center", va="center", fontsize=7, color="#1d2a22")
    missing = sorted(set(reg.index) - set(shapes.index))
    note = f"Regions without an outline in {cfg.regions!r}: {', '.join(missing)}." if missing else ""
    return _png(ax), note


def _world_map(results: Sequence["ForecastResult"]) -> tuple[str | None, str]:
    first = results[0]
    countries = first.forecast[first.forecast["level"] == "country"].set_index("region_id")
    if len(countries) < 2:
        return None, ""
    cfg = first.config.bulletin
    if cfg.world is None:
        return None, "No country map: set bulletin.world to a file of country outlines."
    world = read_vector(str(first.config.resolve(cfg.world)))
    keys: dict[str, Any] = {}
    for col in (c for c in cfg.world_columns if c in world):
        for i, v in world[col].items():
            keys.setdefault(str(v).strip().upper(), i)
    matched = {c: keys[str(c).upper()] for c in countries.index if str(c).upper() in keys}
    if not matched:
        return None, (f"No country map: none of {', '.join(countries.index)} is a code or name in "
                      f"{cfg.world!r} (columns {', '.join(cfg.world_columns)}).")
    world = world.to_crs("EPSG:4326")
    values = pd.Series({matched[c]: countries.loc[c, "anomaly_5yr_pct"] for c in matched})
    ax = figure_ax((6.4, 4.2))
    world.plot(ax=ax, color="#eeeeee", edgecolor="#bbbbbb", linewidth=0.3)
    _anomaly_map(ax, world.loc[list(values.index)], values, f"{first.config.crop}: countries")
    x0, y0, x1, y1 = world.loc[list(values.index)].total_bounds
    pad = max(x1 - x0, y1 - y0) * 0.25 + 2
    ax.set_xlim(x0 - pad, x1 + pad)
    ax.set_ylim(y0 - pad, y1 + pad)
    missing = sorted(set(countries.index) - set(matched))
    return _png(ax), (f"Not on the map (no outline matched): {', '.join(missing)}." if missing else "")


def _headline(result: "ForecastResult") -> str:
    fc = result.forecast
    top = fc[fc["level"].isin(["country", "global"])]
    d, unit, f = _unit(top["production_t"])
    rows = [[html.escape(str(r.region_id)), _num(r.production_t / d, f),
             f"{_num(r.production_lo_t / d, f)} &ndash; {_num(r.production_hi_t / d, f)}",
             _num(r.yield_t_ha, "{:.2f}"), _num(r.harvested_area_ha, "{:,.0f}"),
             _signed(r.anomaly_5yr_pct), _signed(r.anomaly_last_year_pct), _badge(r.condition)]
            for r in top.itertuples()]
    return _table(["", f"production ({unit})", f"{result.config.interval:.0%} interval ({unit})", "yield (t/ha)",
                   "area (ha)", "yield vs 5-y mean", "vs last year", "condition"], rows)


def _supply(result: "ForecastResult") -> str:
    t = supply_table(result)
    if t.empty:
        return ""
    crop = result.config.crop
    d, unit, f = _unit(t["production_t"])
    rows = [[html.escape(str(r.country)) if r.country != "total" else "<b>total</b>",
             _num(r.production_t / d, f), _num(r.mean_5y_t / d, f),
             _num(r.last_year_t / d, f), _num(r.change_vs_5y_t / d, f.replace(",", "+,")),
             _signed(r.change_vs_5y_pct), _signed(r.change_vs_last_year_pct),
             _num(r.share_of_change_pct, "{:.0f} %")] for r in t.itertuples()]
    tot = t.iloc[-1]
    if np.isfinite(tot["change_vs_5y_t"]):
        lead_country = t.iloc[:-1].loc[t.iloc[:-1]["change_vs_5y_t"].abs().idxmax()]
        direction = "more" if tot["change_vs_5y_t"] > 0 else "less"
        text = (f"{crop.capitalize()} supply from these countries: {f.format(tot['production_t'] / d)} {unit} "
                f"forecast, {f.format(abs(tot['change_vs_5y_t']) / d)} {unit} {direction} than the 5-year mean "
                f"({tot['change_vs_5y_pct']:+.1f} %); {lead_country['country']} accounts for "
                f"{lead_country['share_of_change_pct']:.0f} % of that change.")
    else:
        text = f"{crop.capitalize()} supply: no 5-year mean for every country, so no total change is stated."
    return (f'<p class="lead">{html.escape(text)}</p>'
            + _table(["country", f"forecast ({unit})", f"5-y mean ({unit})", f"last year ({unit})",
                      f"change vs 5-y ({unit})",
                      "vs 5-y mean", "vs last year", "share of the change"], rows)
            + '<p class="note">Production = forecast yield &times; harvested area (the area source is in '
              "forecast.csv). 5-year mean and last year: the observed totals of the yield table (history.csv). "
              "Share of the change: each country's change against its 5-year mean over the total change. "
              "Supply only: no price is forecast.</p>")


def _backtest(result: "ForecastResult") -> str:
    m = result.metrics_table()
    if m.empty:
        cfg = result.config
        why = ("backtest: false in the config" if not cfg.backtest else
               f"too few seasons with both yields and index series for a fold (min_train_years: "
               f"{cfg.min_train_years}); see the data issues")
        return (f'<p class="note">No backtest error to show: {html.escape(why)}. '
                "Read this forecast with that in mind.</p>")
    rows = [[html.escape(str(r.country)), html.escape(str(r.lead_time)), html.escape(str(r.model)),
             _num(r.nrmse_median_loyo, "{:.2f}"), _num(getattr(r, "nrmse_walk_forward", None), "{:.2f}"),
             _num(getattr(r, "interval_coverage_80", None), "{:.2f}"),
             _num(getattr(r, "interval_score", None), "{:.2f}")]
            for r in m.itertuples()]
    return (_table(["country", "lead time", "model", "nRMSE % LOYO", "nRMSE % walk-forward", "coverage",
                    "interval score"], rows)
            + '<p class="note">nRMSE: per held-out year, RMSE over the regions / their mean yield, median over '
              "years. 'selected' is this run's method; the others are the baselines it must beat. Coverage: "
              f"share of held-out yields inside the {result.config.interval:.0%} interval (walk-forward).</p>")


def _crop_section(result: "ForecastResult", world: tuple[str | None, str]) -> str:
    cfg = result.config
    fc = result.forecast
    parts = [f'<section><h2>{html.escape(cfg.crop.capitalize())}</h2>', _headline(result)]
    figs = []
    region_png, region_note = _region_map(result)
    for png, alt in ((region_png, "regions coloured by anomaly"), (world[0], "countries coloured by anomaly")):
        if png:
            figs.append(_img(png, f"{cfg.crop}: {alt}"))
    for country, grp in fc[fc["level"] == "region"].groupby("parent", sort=True):
        ax = figure_ax((max(4.0, 0.35 * len(grp) + 2), 3.2))
        figs.append(_img(_png(forecast_bars(grp.sort_values("region_id"), ax=ax,
                                            title=f"{cfg.crop}: {country} regions")), f"{country} regions"))
    parts.append(f'<div class="figs">{"".join(figs)}</div>')
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in (region_note, world[1]) if n]
    parts.append(f"<h3>Supply</h3>{_supply(result)}")
    parts.append(f"<h3>How good is this forecast? The backtest</h3>{_backtest(result)}")
    if result.issues:
        items = "".join(f"<li><b>{html.escape(i.code)}</b>: {html.escape(i.message)}</li>" for i in result.issues)
        parts.append(f"<details><summary>{len(result.issues)} data issue(s)</summary><ul>{items}</ul></details>")
    parts.append("</section>")
    return "".join(parts)


def _provenance(results: Sequence["ForecastResult"]) -> str:
    import cluster

    items = []
    for r in results:
        cfg = r.config
        inputs = {"yields": list(cfg.yields.paths) or ["(a table in memory)"],
                  "calendar": list(cfg.calendar.paths) or ["(a table in memory)"],
                  "series": [p for s in cfg.series for p in (s.paths or ("(a table in memory)",))],
                  "weather": list(cfg.weather.paths) if cfg.weather else []}
        doc = json.loads(cfg.model_dump_json(exclude={"yields", "calendar", "series", "weather", "regions"}))
        items.append(f"<h3>{html.escape(cfg.crop)}</h3><p>inputs: "
                     + "; ".join(f"{k}: {html.escape(', '.join(v))}" for k, v in inputs.items() if v)
                     + "</p><details><summary>config</summary>"
                     + f"<pre>{html.escape(json.dumps(doc, indent=1))}</pre></details>")
    return (f"<section><h2>Provenance</h2><p>harvest-cluster {html.escape(cluster.__version__)}, generated "
            f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}. {html.escape(CONDITION_RULE)}.</p>"
            + "".join(items) + "</section>")


def render_bulletin(results: Sequence["ForecastResult"]) -> str:
    """The bulletin of one or more crops' forecast runs (of one season) as one HTML page."""
    results = [r for r in results if not r.forecast.empty]
    if not results:
        raise ValueError("no season forecast to report: run the forecast with as_of set")
    first = results[0]
    season = int(first.forecast["season_year"].iloc[0])
    crops = ", ".join(r.config.crop for r in results)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Crop bulletin {season}: "
             f"{html.escape(crops)}</title><style>{_CSS}</style></head><body>",
             f"<header><h1>Crop bulletin: {html.escape(crops)}, season {season}</h1>"
             f"<p>Forecast as of {first.config.as_of}; yields, production and the condition of every country "
             "against its 5-year mean and last year.</p></header><main>"]
    if len(results) > 1:
        ax = figure_ax((7.5, 3.4))
        png = _png(rollup([r.forecast for r in results], ax=ax))
        parts.append(f"<section><h2>All crops</h2>{_img(png, 'production per crop')}</section>")
    for r in results:
        parts.append(_crop_section(r, _world_map([r])))
    parts.append(_provenance(results))
    parts.append("</main></body></html>")
    return "".join(parts)


def write_bulletin(results: Sequence["ForecastResult"], path: Path) -> Path:
    """Write :func:`render_bulletin` to ``path`` (UTF-8); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_bulletin(results), encoding="utf-8")
    return path
