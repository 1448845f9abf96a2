"""Job reports as a notebook shows them: status, problems first-class, text escaped, tables kept
out of the JSON."""

from __future__ import annotations

import json

import pandas as pd

from cluster.report import JobReport
from cluster.records import TileResult


def _report() -> JobReport:
    r = JobReport(job="ingest", store="s3://bucket/cube.zarr", tiles_total=3, wall_s=2.0)
    r.add_results([TileResult(tile_id="0_0", status="done", pixels=1000),
                   TileResult(tile_id="0_1", status="failed", error="scene <b>x</b> unreadable")])
    r.warnings.append("band 'nir' has <script>alert(1)</script> in its name")
    return r


def test_report_html__partial_job_shows_its_failures_escaped() -> None:
    html = _report()._repr_html_()
    assert ">PARTIAL<" in html and "harvest ingest" in html
    assert "0_1: scene &lt;b&gt;x&lt;/b&gt; unreadable" in html  # the failed tile, named
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "1 done, 0 empty, 0 skipped (already done), 1 failed, of 3" in html


def test_report_tables__render_but_stay_out_of_the_json() -> None:
    r = _report()
    r.tables["statistics"] = pd.DataFrame({"region_id": ["R1", "R2"], "mean": [0.123456, 1234.5]})
    assert r.table is r.tables["statistics"]
    html = r._repr_html_()
    assert "statistics: 2 rows" in html and ">0.1235<" in html and ">1,234<" in html
    doc = r.to_dict()
    assert "tables" not in doc
    json.dumps(doc)  # plain JSON, as written beside the store


def test_report_tiles__show_an_outputs_summary_never_a_big_output() -> None:
    import numpy as np

    from cluster.indices import IndicesTileInfo
    from cluster.ingest import IngestFindings
    from cluster.zonal import accumulate_tile

    partial = accumulate_tile(np.zeros((4, 4), dtype=np.int32), {"ndvi": np.zeros((1, 4, 4), np.float32)},
                              region_ids=["R1"], row_area_m2=np.ones(4), dates=(0,), tile_id="0_2")
    r = JobReport(job="ingest", store="cube.zarr")
    r.add_results([TileResult("0_0", "done", output=IngestFindings(2, (0, 1), {(1, "red"): 5})),
                   TileResult("0_1", "done", output=IndicesTileInfo("cpu")),
                   TileResult("0_2", "done", output=partial)])
    tiles = json.loads(json.dumps(r.to_dict()))["tiles"]
    assert tiles[0]["output"] == {"scenes_used": 2, "scenes_with_data": 2, "invalid_values": 5,
                                  "identical_bands": []}
    assert tiles[1]["output"] == {"device": "cpu"}
    assert "output" not in tiles[2]  # a partial is merged by the driver, not written into the report


def test_report_warnings__repeats_are_counted_not_stored() -> None:
    """A warning on every one of many tiles keeps the driver's report small."""
    from cluster.report import MAX_TILE_WARNINGS

    report = JobReport(job="ingest", store="/tmp/x.zarr")
    for i in range(5000):
        report.add_result(TileResult(f"r0_c{i}", "done", warnings=["band 'red' is all fill",
                                                                   f"tile {i} is odd"]))
    assert len(report.warnings) == MAX_TILE_WARNINGS
    assert report.warnings[0] == "band 'red' is all fill" and report.warnings.count(report.warnings[0]) == 1
    assert report.warnings_dropped == 10000 - MAX_TILE_WARNINGS
    d = json.loads(json.dumps(report.to_dict()))
    assert d["warnings_dropped"] == report.warnings_dropped and "_seen_warnings" not in d
    assert f"and {len(report.warnings) - 5 + report.warnings_dropped} more warning(s)" in report.summary()
