"""Config builders for the CY-Bench sample data (the same mapping as examples/cybench-wheat.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cluster.forecast import ForecastConfig

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "cybench-wheat.yaml"


def example_dict(countries: tuple[str, ...] | None = None, data_dir: Path | None = None) -> dict[str, Any]:
    """The example config as a dict. With ``countries``, only their files; with ``data_dir``,
    paths made absolute there (else they stay relative to the repo root, as written)."""
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for table in [raw["yields"], raw["calendar"], *raw["series"]]:
        if countries is not None:
            table["paths"] = [p for p in table["paths"] if any(p.endswith(f"_{c}.csv") for c in countries)]
        if data_dir is not None:
            table["paths"] = [str(data_dir / Path(p).name) for p in table["paths"]]
    return raw


def cybench_config(data_dir: Path, countries: tuple[str, ...] = ("NL",), **overrides: Any) -> ForecastConfig:
    """The example config restricted to ``countries``, paths made absolute, with overrides."""
    return ForecastConfig(**{**example_dict(countries, data_dir), **overrides})
