"""Config builders for the CY-Bench sample data (the same mapping as examples/cybench-wheat.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cluster.forecast import ForecastConfig

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "cybench-wheat.yaml"


def example_dict() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def cybench_config(data_dir: Path, countries: tuple[str, ...] = ("NL",), **overrides: Any) -> ForecastConfig:
    """The example config restricted to ``countries``, paths made absolute, with overrides."""
    raw = example_dict()

    def fix(paths: list[str]) -> list[str]:
        keep = [p for p in paths if any(p.endswith(f"_{c}.csv") for c in countries)]
        return [str(data_dir / Path(p).name) for p in keep]

    raw["yields"]["paths"] = fix(raw["yields"]["paths"])
    raw["calendar"]["paths"] = fix(raw["calendar"]["paths"])
    for s in raw["series"]:
        s["paths"] = fix(s["paths"])
    raw.update(overrides)
    return ForecastConfig(**raw)
