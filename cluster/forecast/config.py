"""The forecast job's config: which tables, how their columns map, which dates and lead times.

Relative paths in a config are resolved against ``base_dir`` when it is set, else against the
current working directory (run jobs from the repository root, as ``harvest forecast --config
examples/cybench-wheat.yaml`` does; that is also what a Ray job's ``working_dir`` gives).
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cluster.errors import ConfigError

__all__ = ["TableInput", "BulletinConfig", "ForecastConfig", "LeadTime", "parse_lead_time", "load_forecast_config",
           "as_forecast_config", "parse_forecast_config"]

_LEAD_RE = re.compile(r"^(\d+)-(days?|weeks?)$")


class LeadTime(BaseModel):
    """A forecast lead time: how many days before the end of season the data is cut.

    ``middle-of-season`` (CY-Bench's default) cuts at ``eos - season_length // 2``; ``N-days`` and
    ``N-weeks`` cut at ``eos - N`` days (``N * 7``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    """The label used in outputs, e.g. ``middle-of-season``, ``42-days``."""
    days_before_eos: int | None = None
    """Fixed days before the end of season; None means half the season length."""


def parse_lead_time(text: str) -> LeadTime:
    """Parse a lead-time label.

    >>> parse_lead_time("6-weeks")
    LeadTime(name='6-weeks', days_before_eos=42)
    >>> parse_lead_time("middle-of-season").days_before_eos is None
    True
    """
    text = str(text).strip()
    if text == "middle-of-season":
        return LeadTime(name=text, days_before_eos=None)
    m = _LEAD_RE.match(text)
    if not m:
        raise ConfigError(
            f"lead time {text!r} is not understood; expected 'middle-of-season', 'N-days' or "
            "'N-weeks' (e.g. '14-days', '6-weeks')"
        )
    n = int(m.group(1))
    return LeadTime(name=text, days_before_eos=n * 7 if m.group(2).startswith("week") else n)


class TableInput(BaseModel):
    """One input table: files (CSV or Parquet) or an in-memory DataFrame, and how its columns map.

    The loader renames ``columns`` (standard name -> source column), adds ``constants``
    (standard name -> fixed value), maps values with ``values``, then applies
    ``value = raw * multipliers[col] + offsets[col]`` and drops ``nodata`` raw values
    (reported). Id columns are always read as strings (leading zeros survive).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    paths: tuple[str, ...] = ()
    """CSV or Parquet files, concatenated; relative to ``ForecastConfig.base_dir`` or the cwd."""
    frame: pd.DataFrame | None = Field(default=None, exclude=True)
    """An in-memory table instead of files (the notebook / ``harvest demo`` path)."""
    columns: dict[str, str] = {}
    """Standard column name -> source column name; unmapped standard names are taken as is."""
    constants: dict[str, str] = {}
    """Standard column -> fixed value for every row, e.g. ``{"index": "ndvi"}``."""
    values: dict[str, dict[str, str]] = {}
    """Standard column -> {source value: standard value}, e.g. ``{"crop": {"winter_wheat": "wheat"}}``."""
    multipliers: dict[str, float] = {}
    """Standard column -> factor applied to raw values (unit conversion, e.g. kg/ha -> t/ha 0.001)."""
    offsets: dict[str, float] = {}
    """Standard column -> offset added after the multiplier (e.g. NDVI stored as 50..250: -0.25)."""
    nodata: dict[str, float] = {}
    """Standard column -> raw value that means 'no observation' (those rows are dropped and reported)."""
    encoding: str = "utf-8"
    """Text encoding of CSV files (the Argentine tables are ``latin-1``)."""
    date_format: str | None = None
    """``strftime`` format of the date column, e.g. ``%Y%m%d``; None lets pandas infer ISO dates."""

    @field_validator("paths", mode="before")
    @classmethod
    def _one_path(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _has_source(self) -> "TableInput":
        if not self.paths and self.frame is None:
            raise ValueError("a table needs 'paths' (CSV/Parquet files) or 'frame' (a DataFrame); got neither")
        return self


class BulletinConfig(BaseModel):
    """The crop bulletin (``bulletin.html``): what it may draw beyond the forecast's tables."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    write: bool = True
    """Write ``bulletin.html`` beside the forecast table."""
    regions: str | None = None
    """Region outlines (GPKG, GeoJSON, GeoParquet, shapefile) for the map of regions coloured by
    anomaly; the id is ``region_id_column``. None: no region map (the bulletin says so)."""
    region_id_column: str = "region_id"
    world: str | None = None
    """Country outlines for the world map when the forecast covers several countries (e.g. the
    World Administrative Boundaries GeoParquet); countries match by ISO 3166 alpha-2 or alpha-3
    code or by name, in the columns ``world_columns``."""
    world_columns: tuple[str, ...] = ("iso3", "iso_3166_1_", "iso_a3", "iso_a2", "name")


class ForecastConfig(BaseModel):
    """Everything the forecast job needs; validated once, then passed down unchanged."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    crop: str
    """The crop forecast, as named in the standardized tables (after ``values`` mapping)."""
    yields: TableInput
    """Yield history: region_id, year, crop, yield_t_ha, harvested_area_ha, production_t (+ country)."""
    calendar: TableInput
    """Crop calendar: region_id, crop, sos_doy, eos_doy (day of year; sos > eos spans new year)."""
    series: tuple[TableInput, ...] = ()
    """Per-region index time series: region_id, crop, date, index, mean (one table per index is fine)."""
    weather: TableInput | None = None
    """Per-region weather: region_id, date, variable, value (daily or dekadal; variables tmin,
    tmax, tmean in deg C, prec in mm, any other gives its season mean); see
    :mod:`cluster.forecast.weather` for the features."""
    gdd_base_c: float | None = None
    """Base temperature of growing degree days; None: the crop's (maize 10, small grains 0 deg C)."""
    heat_threshold_c: float | None = None
    """Daily maximum that counts as a heat day; None: the crop's (maize 35, small grains 30 deg C)."""
    regions: TableInput | None = None
    """Region list: region_id, name, parent. None: from the yields' ``country`` column, else the id prefix."""
    country_prefix_len: int = 2
    """Without a region list or country column, the parent is the region id's first N characters (NUTS)."""
    as_of: date | None = None
    """Forecast date: only observations dated on or before it are used. None: no season forecast."""
    season_year: int | None = None
    """Harvest year of the season forecast; default: the year of ``as_of``."""
    lead_times: tuple[str, ...] = ("middle-of-season", "42-days", "14-days")
    """Backtest lead times (see :func:`parse_lead_time`)."""
    backtest: bool = True
    """Run leave-one-year-out and walk-forward backtests at every lead time."""
    learners: tuple[str, ...] = ("ridge", "hgb")
    """Learned models on trend-adjusted yields; the chosen one is picked by inner validation."""
    model: str = "auto"
    """``auto``: inner validation picks the model in every fold; or force one candidate:
    ``trend``, ``average``, ``local-trend`` (CY-Bench-style window trend), ``huber-average``
    (the region's level, robust to shock years), a learner (``ridge``, ``hgb``, ``ridge+hgb``),
    or one on the region mean (``ridge@avg``, ``hgb@avg``, ``ridge+hgb@avg``)."""
    trend_horizon_years: int = Field(default=5, ge=0)
    """No trend is extrapolated more than this many years past a region's last (or before its
    first) yield: there the models with a slope give way to the mean of its 5 latest years,
    and the season forecast reports it (``trend_beyond_horizon``)."""
    max_area_age_years: int = Field(default=5, ge=0)
    """A region's harvested area from more than this many seasons before the forecast season
    is stale: reported (``area_stale``) and, where the other regions of its parent reported in
    both years, scaled by how their total area changed since."""
    backtest_workers: int | None = Field(default=None, ge=1)
    """Processes the backtest's (lead time, country, scheme) tasks run on; None: every core."""
    min_train_years: int = 5
    """Fewest earlier years a walk-forward fold needs; also the fewest years for a per-region trend."""
    inner_folds: int = 4
    """Year-grouped folds of the inner validation (model choice and interval residuals)."""
    spinup_days: int = 90
    """Features look back this many days before the start of season (CY-Bench's spin-up)."""
    phenology_fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    """Index values taken at these fractions of the season (carried forward past the cut-off)."""
    interval: float = 0.8
    """Central coverage of the forecast intervals (0.8 = 10 % and 90 % quantiles)."""
    max_yield_t_ha: float = 20.0
    """Yields above this are absurd for any field crop (world-record wheat is ~17 t/ha): excluded."""
    outlier_factor: float = 4.0
    """Yields above this multiple of the region's median (over the 11 years around) are excluded as absurd."""
    reference_nrmse: dict[str, float] = {}
    """Published nRMSE (%) per country to print beside ours, e.g. CY-Bench's middle-of-season figures."""
    plots: bool = True
    """Write PNG plots."""
    bulletin: BulletinConfig = BulletinConfig()
    """The self-contained HTML bulletin of the run (see :mod:`cluster.forecast.bulletin`)."""
    out_dir: str = "out/forecast"
    """Where the forecast table, metrics.json, predictions and plots go."""
    base_dir: str | None = None
    """Directory that relative paths are resolved against; None = current working directory."""
    strict: bool = False
    """Turn every data issue into an error instead of excluding the rows and reporting them."""
    seed: int = 0
    """Random seed of the learners (results are deterministic for a given seed)."""

    @field_validator("lead_times")
    @classmethod
    def _leads(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for text in v:
            parse_lead_time(text)
        return v

    @field_validator("learners")
    @classmethod
    def _learners(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [x for x in v if x not in ("ridge", "hgb")]
        if bad:
            raise ValueError(f"unknown learner(s) {bad!r}; expected any of 'ridge', 'hgb'")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        from cluster.forecast.models import MODEL_NAMES  # imports scikit-learn: keep this module light

        known = {"auto", *MODEL_NAMES}
        if v not in known:
            raise ValueError(f"model {v!r} is unknown; expected one of {sorted(known)!r}")
        return v

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: float) -> float:
        if not 0 < v < 1:
            raise ValueError(f"interval {v!r} must be a coverage in (0, 1), e.g. 0.8")
        return v

    @property
    def leads(self) -> tuple[LeadTime, ...]:
        return tuple(parse_lead_time(t) for t in self.lead_times)

    def resolve(self, path: str) -> Path:
        """A config path made absolute against ``base_dir`` (or the cwd)."""
        p = Path(path).expanduser()
        if p.is_absolute():
            return p
        return (Path(self.base_dir) if self.base_dir else Path.cwd()) / p

    def effective_season_year(self) -> int | None:
        if self.season_year is not None:
            return self.season_year
        return self.as_of.year if self.as_of is not None else None


def load_forecast_config(path: str | Path, **overrides: Any) -> ForecastConfig:
    """Read a YAML config into a :class:`ForecastConfig`; errors name the key and the fix.

    Args:
        path: the YAML file.
        **overrides: top-level keys replacing the file's (e.g. ``out_dir``).

    Raises:
        ConfigError: the file is missing, not YAML, or fails validation.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"forecast config {str(p)!r} does not exist; pass an existing YAML file with --config")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"forecast config {str(p)!r} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"forecast config {str(p)!r} must be a mapping of keys, got {type(raw).__name__}")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return parse_forecast_config(raw, where=repr(str(p)))


def as_forecast_config(config: ForecastConfig | Mapping[str, Any] | str | Path) -> ForecastConfig:
    """What the notebook API accepts: the config, a dict as the YAML file holds, or its path."""
    if isinstance(config, ForecastConfig):
        return config
    if isinstance(config, (str, Path)):
        return load_forecast_config(config)
    if isinstance(config, Mapping):
        return parse_forecast_config(dict(config))
    raise ConfigError(f"a forecast config must be a ForecastConfig, a dict or a YAML file path, "
                      f"got {type(config).__name__}")


def parse_forecast_config(raw: Mapping[str, Any], where: str = "") -> ForecastConfig:
    """Validate; every bad key is named in one ConfigError."""
    try:
        return ForecastConfig(**raw)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or '<root>'}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"forecast config {where + ' ' if where else ''}is invalid: {problems}") from None
