"""Live progress of a tile job through the command line: JSON lines as tiles finish."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cluster.progress import TileProgress, resolve_mode
from cluster.records import TileResult
from jobs import ingest as ingest_job
from tests.jobs.test_bad_input import _ingest_cfg, _main, _scenes

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


def test_progress__json_lines_count_every_tile_then_the_summary(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _ingest_cfg(tmp_path, _scenes(tmp_path / "scenes"))
    assert _main(ingest_job.main, tmp_path, cfg, "--progress", "json") == 0
    out = capsys.readouterr()
    lines = [json.loads(line) for line in out.err.splitlines() if line.startswith("{")]
    total = int(re.search(r"of (\d+)", out.out).group(1))
    assert [x["done"] for x in lines] == list(range(1, total + 1))
    assert {x["job"] for x in lines} == {"ingest"} and lines[-1]["eta_s"] == 0 and lines[-1]["failed"] == 0
    assert all(x["total"] == total and x["mpx_per_s"] >= 0 for x in lines)
    assert "harvest ingest: OK" in out.out  # the summary still ends the run
    # a rerun has nothing to do: no progress lines, every tile counted as skipped
    assert _main(ingest_job.main, tmp_path, cfg, "--progress", "json") == 0
    again = capsys.readouterr()
    assert not [line for line in again.err.splitlines() if line.startswith("{")]
    assert f"{total} skipped (already done)" in again.out
    # none: silent
    assert _main(ingest_job.main, tmp_path, cfg, "--progress", "none") == 0
    assert capsys.readouterr().err == ""


def test_progress__bar_counts_failures_and_auto_is_quiet_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    import io

    stream = io.StringIO()
    bar = TileProgress("indices", 3, mode="bar", stream=stream)
    for status in ("done", "failed", "done"):
        bar(TileResult(tile_id="t", status=status, pixels=1_000_000))
    bar.close()
    assert bar.done == 3 and bar.failed == 1
    assert "1 failed" in stream.getvalue() and "harvest indices" in stream.getvalue()
    assert resolve_mode("auto", io.StringIO()) == "none"
