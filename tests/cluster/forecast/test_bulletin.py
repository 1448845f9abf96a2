"""The crop bulletin on CY-Bench's Spain and Netherlands wheat: the supply arithmetic against
the raw yield files, and the page rendered by a real headless Chromium (Debian's package)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cluster.forecast import run_forecast
from cluster.forecast.bulletin import supply_table
from tests._data import shared_data
from tests.cluster.forecast._cybench import cybench_config


@pytest.fixture(scope="module")
def bulletin_run(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    data = shared_data("cybench_wheat_es_nl")
    world = shared_data("world_admin_boundaries", "world-administrative-boundaries.geoparquet")
    out = tmp_path_factory.mktemp("bulletin")
    cfg = cybench_config(data, ("ES", "NL"), learners=["ridge"], lead_times=["middle-of-season"], inner_folds=3,
                         as_of="2020-05-15", season_year=2020, plots=False, out_dir=str(out),
                         bulletin={"world": str(world)})
    return run_forecast(cfg), out


def test_supply__against_the_raw_yield_files(bulletin_run) -> None:  # noqa: ANN001
    result, _ = bulletin_run
    t = supply_table(result).set_index("country")
    raw = pd.concat(pd.read_csv(p) for p in sorted(shared_data("cybench_wheat_es_nl").glob("yield_wheat_*.csv")))
    for country in ("ES", "NL"):
        per_year = raw[raw["country_code"] == country].groupby("harvest_year")["production"].sum(min_count=1)
        assert t.loc[country, "mean_5y_t"] == pytest.approx(per_year.loc[2015:2019].mean(), rel=1e-9)
        assert t.loc[country, "last_year_t"] == pytest.approx(per_year.loc[2019], rel=1e-9)
        fc = result.forecast.set_index("region_id")
        assert t.loc[country, "production_t"] == pytest.approx(fc.loc[country, "production_t"])
    assert t.loc["total", "production_t"] == pytest.approx(t.loc[["ES", "NL"], "production_t"].sum())
    assert t.loc[["ES", "NL"], "share_of_change_pct"].sum() == pytest.approx(100.0)
    np.testing.assert_allclose(t["change_vs_5y_pct"], 100 * (t["production_t"] / t["mean_5y_t"] - 1))


def _chromium() -> str:
    """Debian's Chromium, installed here when missing (as root); skipped only where it cannot be."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
                    ["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            if cmd[1] == "install" and done.returncode == 0:
                break
    found = shutil.which("chromium")
    if not found:
        pytest.skip("Debian's chromium is not installed and could not be (needs root and apt-get)")
    return found


# appended to a copy of the page: what a reader sees, measured by the browser after layout
_PROBE = """<script>
window.addEventListener('load', () => {
  const shown = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const imgs = [...document.images];
  const out = {images: imgs.length, images_drawn: imgs.filter(i => i.complete && i.naturalWidth > 0 && shown(i)).length,
               tables: document.querySelectorAll('table').length,
               tables_shown: [...document.querySelectorAll('table')].filter(shown).length,
               heading: document.querySelector('h1').textContent};
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def test_bulletin__renders_in_headless_chromium(bulletin_run, tmp_path: Path) -> None:  # noqa: ANN001
    import json

    result, out = bulletin_run
    page = Path(result.outputs["bulletin"])
    text = page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text  # self-contained: no network
    assert "Supply" in text and "share of the change" in text and "wheat: countries" in text
    assert "No region map: set bulletin.regions" in text  # CY-Bench ships no region outlines: said so
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    chromium = _chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,2400"]
    dom = subprocess.run([chromium, *flags, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom)
    assert found, dom[-2000:]
    seen = json.loads(found.group(1).replace("&quot;", '"'))
    # the headline, supply and backtest tables; the country map and one chart per country
    assert seen["tables"] >= 3 and seen["tables_shown"] == seen["tables"], seen
    assert seen["images"] >= 3 and seen["images_drawn"] == seen["images"], seen
    assert seen["heading"] == "Crop bulletin: wheat, season 2020"
    shot = out / "bulletin.png"  # for a person to look at (kept beside the page)
    subprocess.run([chromium, *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 50_000
