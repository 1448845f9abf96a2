"""``harvest forecast`` end to end: YAML in, files and a report out, exit codes."""

from __future__ import annotations

import json

import pytest
import yaml

from jobs.forecast import main, plan
from tests._data import shared_data
from tests.cluster.forecast._cybench import cybench_config, example_dict


def _nl_config_file(tmp_path, **overrides) -> str:
    raw = example_dict(("NL",), shared_data("cybench_wheat_es_nl"))
    raw.update(lead_times=["middle-of-season"], learners=["ridge"], inner_folds=3, plots=False,
               out_dir=str(tmp_path / "out"), **overrides)
    path = tmp_path / "nl.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return str(path)


def test_main__nl_config_runs_and_writes_report(tmp_path, capsys):
    assert main(["--config", _nl_config_file(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "NL       middle-of-season" in out and "forecast as of 2020-05-15" in out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["ok"] is True and report["config"]["crop"] == "wheat"
    assert {"forecast_parquet", "metrics"} <= set(report["outputs"])
    assert all(i["message"] for i in report["issues"])


def test_main__strict_fails_on_data_issues(tmp_path, capsys):
    assert main(["--config", _nl_config_file(tmp_path), "--strict"]) == 2
    err = capsys.readouterr().err
    assert "strict=True" in err and "[series_nodata]" in err


@pytest.mark.parametrize("content, message", [
    ("crop: wheat\n", "forecast config"),
    ("crop: wheat\nyields: {paths: [a.csv]}\ncalendar: {paths: [b.csv]}\nbogus: 1\n",
     "bogus: Extra inputs are not permitted"),
    ("crop: wheat\nyields: {paths: [a.csv]}\ncalendar: {paths: [b.csv]}\nlead_times: [soon]\n",
     "lead time 'soon' is not understood"),
    ("- just a list\n", "must be a mapping of keys"),
], ids=["missing-tables", "unknown-key", "bad-lead-time", "not-a-mapping"])
def test_main__bad_config_exit_2_with_message(tmp_path, capsys, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    assert main(["--config", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_main__missing_table_names_the_path(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("crop: wheat\nyields: {paths: [nowhere/y.csv]}\ncalendar: {paths: [nowhere/c.csv]}\n"
                    f"out_dir: {tmp_path / 'o'}\n", encoding="utf-8")
    assert main(["--config", str(path)]) == 2
    assert "nowhere/y.csv' does not exist" in capsys.readouterr().err


def test_plan__lists_the_work_without_reading_data():
    cfg = cybench_config(shared_data("cybench_wheat_es_nl"), ("NL",))
    p = plan(cfg)
    assert p["lead_times"] == ["middle-of-season", "42-days", "14-days"]
    assert p["schemes"] == ["loyo", "walk_forward"]
    assert p["season_forecast"] == {"as_of": "2020-05-15", "season_year": 2020}
