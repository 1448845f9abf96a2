"""Every notebook under notebooks/ runs top to bottom (nbclient), in a fresh kernel that joins
the test run's Ray; any cell's error fails the test. Outputs are checked for what a reader
would look for: the reports rendered as HTML, the plots as images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

pytestmark = [pytest.mark.ray]


def test_notebooks__exist() -> None:
    assert [p.name for p in NOTEBOOKS] == ["quickstart.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook__runs_without_error(path: Path, tmp_path: Path, ray_session: dict[str, str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # the kernel inherits the environment: it joins this run's Ray (one session per test run)
    monkeypatch.setenv("RAY_ADDRESS", ray_session["gcs_address"])
    monkeypatch.setenv("HARVEST_QUICKSTART_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert any("harvest ingest" in h and ">OK<" in h for h in html), "the ingest report did not render as OK"
    assert any("forecast wheat" in h for h in html), "the forecast result did not render"
    assert len(images) >= 4, f"expected the index map, crop map, index curve and forecast plots, got {len(images)}"
    assert (tmp_path / "out" / "cube.zarr" / "crop_type").is_dir()
