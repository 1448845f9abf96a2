"""The store is never at risk: from the command line, as a user would meet it.

A folder that holds a user's files, another tool's Zarr group, a second job writing the same
store at once: each is refused with a message that says what and what to do, exit code 2,
and nothing of what was there is removed or changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
import zarr

from cluster import store as cstore
from jobs import ingest as ingest_job
from tests.jobs.test_ingest import cbers_config

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _config_file(tmp_path: Path, store: str, **extra: object) -> str:
    cfg = cbers_config(store, grid={"crs": "EPSG:6933", "pixel_size": 64, "tile_size_px": 32}, **extra)
    path = tmp_path / f"ingest-{abs(hash(store)) % 10**6}.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude={"storage"})))
    return str(path)


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_store_safety__a_users_folder_is_never_touched(tmp_path: Path, overwrite: bool,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "my-thesis"
    folder.mkdir()
    (folder / "chapter1.docx").write_bytes(b"years of work")
    (folder / "data").mkdir()
    (folder / "data" / "table.csv").write_text("a,b\n1,2\n")
    before = _tree(folder)
    args = ["--config", _config_file(tmp_path, str(folder)), "--set", f"overwrite={str(overwrite).lower()}"]
    assert ingest_job.main(args) == 2
    err = capsys.readouterr().err
    assert "already holds" in err and "never writes into or removes what it did not write" in err
    assert "Pick another store URL" in err
    assert _tree(folder) == before


def test_store_safety__another_tools_zarr_group_is_never_touched(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "theirs.zarr"
    g = zarr.open_group(str(other), mode="w", zarr_format=3)
    g.attrs["written_by"] = "another-tool"
    g.create_array("temperature", shape=(4, 4), dtype="f4")[:] = 1.5
    before = _tree(other)
    assert ingest_job.main(["--config", _config_file(tmp_path, str(other)), "--set", "overwrite=true"]) == 2
    assert "a Zarr node not written by harvest-cluster" in capsys.readouterr().err
    assert _tree(other) == before


def test_store_safety__overwrite_refuses_a_cube_holding_a_users_file(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "cube.zarr"
    assert ingest_job.main(["--config", _config_file(tmp_path, str(store))]) == 0
    (store / "red" / "my-notes.txt").write_text("do not lose")
    before = _tree(store)
    other = _config_file(tmp_path, str(store), select=["red"])
    assert ingest_job.main(["--config", other]) == 2  # another config: refused without overwrite
    assert "overwrite: true" in capsys.readouterr().err
    assert ingest_job.main(["--config", other, "--set", "overwrite=true"]) == 2
    assert "harvest-cluster did not write ('red/my-notes.txt')" in capsys.readouterr().err
    assert _tree(store) == before
    (store / "red" / "my-notes.txt").unlink()
    assert ingest_job.main(["--config", other, "--set", "overwrite=true"]) == 0  # ours and clean: replaced
    assert set(cstore.open_cube(str(store)).data_vars) == {"red"}


def test_store_safety__a_second_job_on_one_store_is_refused_naming_the_first(
        tmp_path: Path, ray_session: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "shared.zarr"
    first = _config_file(tmp_path, str(store))
    env = os.environ | {"RAY_ADDRESS": ray_session["gcs_address"]}
    log = tmp_path / "first.log"
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "jobs.ingest", "--config", first], env=env,
                                stdout=sink, stderr=subprocess.STDOUT)
    lease = Path(cstore.meta_url(str(store))) / "lease.json"
    deadline = time.monotonic() + 120
    while not lease.exists():
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = _config_file(tmp_path, str(store), select=["red"])
    code = ingest_job.main(["--config", second, "--set", "overwrite=true"])
    err = capsys.readouterr().err
    assert proc.wait(timeout=240) == 0, log.read_text()[-2000:]
    assert code == 2 and "is being written by another job 'ingest'" in err and f"pid {proc.pid}" in err
    assert "--break-lease" in err
    assert not lease.exists()  # released when the first job ended
    clean = tmp_path / "clean.zarr"
    assert ingest_job.main(["--config", _config_file(tmp_path, str(clean))]) == 0
    chunks = lambda root: {k: v for k, v in _tree(root).items() if "/c/" in k}  # noqa: E731
    assert chunks(store) == chunks(clean)  # the first job's cube, whole and alone
