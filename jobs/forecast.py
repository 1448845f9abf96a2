"""``harvest forecast``: backtest yield models and forecast a season's yield and production.

Reads: the yield history, per-region index series (e.g. from ``harvest aggregate``, or CY-Bench
files), the crop calendar and optionally a region list -- paths and column mappings in a YAML
config (see ``examples/cybench-wheat.yaml``; relative paths are resolved against the current
directory, so run from the repository root). Writes under ``out_dir``: ``forecast.parquet`` /
``forecast.csv`` (regions, countries, global), ``metrics.json`` (backtest metrics per country,
crop, lead time and model), ``backtest_predictions.parquet``, ``plots/*.png`` and
``report.json`` (config, version, inputs, issues, outputs).

Exit codes: 0 done (data issues are listed in the report), 1 data error (or strict with issues),
2 bad config or usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from jobs._cli import command
from cluster.forecast import ForecastConfig, ForecastResult, load_forecast_config, run_forecast

__all__ = ["ForecastReport", "plan", "run", "main"]


@dataclass(frozen=True)
class ForecastReport:
    """What ``harvest forecast`` did; written to ``<out_dir>/report.json``."""

    ok: bool
    seconds: float
    result: ForecastResult | None = None
    error: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        if self.result is None:
            return f"forecast failed: {self.error}"
        return self.result.summary(self.result.config.reference_nrmse) + f"\ntook {self.seconds:.1f} s"


def plan(config: ForecastConfig) -> dict[str, object]:
    """What will run (no data read): lead times, schemes, learners, the season forecast."""
    return {
        "crop": config.crop,
        "lead_times": list(config.lead_times),
        "schemes": ["loyo", "walk_forward"] if config.backtest else [],
        "learners": list(config.learners),
        "season_forecast": None if config.as_of is None else {"as_of": config.as_of.isoformat(),
                                                              "season_year": config.effective_season_year()},
        "out_dir": str(config.resolve(config.out_dir)),
    }


def run(config: ForecastConfig, progress: Callable[[str], None] | None = None) -> ForecastReport:
    t0 = time.perf_counter()
    result = run_forecast(config, progress=progress)
    report = ForecastReport(ok=True, seconds=time.perf_counter() - t0, result=result, outputs=dict(result.outputs))
    out = config.resolve(config.out_dir)
    doc = {
        "ok": True,
        "seconds": round(report.seconds, 2),
        "version": __import__("cluster").__version__,
        "config": json.loads(config.model_dump_json()),
        "inputs": {"yields": list(config.yields.paths), "calendar": list(config.calendar.paths),
                   "series": [list(s.paths) for s in config.series],
                   "regions": list(config.regions.paths) if config.regions else None},
        "plan": plan(config),
        "issues": [i.to_dict() for i in result.issues],
        "outputs": result.outputs,
    }
    (out / "report.json").write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
    report.outputs["report"] = str(out / "report.json")
    return report


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="harvest forecast", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="YAML config (e.g. examples/cybench-wheat.yaml)")
    p.add_argument("--out-dir", default=None, help="override out_dir")
    p.add_argument("--as-of", default=None, help="override as_of (YYYY-MM-DD)")
    p.add_argument("--strict", action="store_true", default=None, help="treat every data issue as an error")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p.parse_args(argv)


@command("forecast")
def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    overrides = {"out_dir": args.out_dir, "as_of": args.as_of, "strict": args.strict}
    if args.no_plots:
        overrides["plots"] = False
    config = load_forecast_config(args.config, **overrides)
    # a bad config or input (or strict and an issue) stops it here, nothing written
    report = run(config, progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
