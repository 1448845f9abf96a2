"""Every fallback of the kernels says what it fell back from and why (issue #15).

No numba kernel is mocked: the cache folders are made unusable for real, and the CUDA probe
(the one function that asks numba.cuda) is replaced by one that fails the way a broken install
does.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from cluster.kernels import BandInfo, compute, gpu_available
from cluster.kernels import _codegen, _device
from cluster.kernels._codegen import FusedPlan, load_fused, source_for
from cluster.kernels._device import resolve_device
from cluster.kernels._registry import get_kernel

NDVI_IN = {"nir": np.array([[4000, 0, 3000]], np.uint16), "red": np.array([[1000, 500, 0]], np.uint16)}
NDVI_INFO = {b: BandInfo(scale=1e-4, nodata=0) for b in NDVI_IN}
EXPECTED = np.array([[0.6, np.nan, np.nan]], np.float32)


@pytest.fixture
def caplog_cluster(caplog: pytest.LogCaptureFixture,
                   monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    """caplog that sees the ``cluster`` loggers even after cluster.logs turned propagation off."""
    monkeypatch.setattr(logging.getLogger("cluster"), "propagate", True)
    caplog.set_level(logging.INFO, logger="cluster")
    return caplog


@pytest.fixture
def fresh_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget this process's loaded kernels and warnings, so the next compute() loads again."""
    monkeypatch.setattr(_codegen, "_LOADED", {})
    monkeypatch.setattr(_codegen, "_warned", set())


def _warnings(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == logger and r.levelno == logging.WARNING]


# -- the on-disk module cache ------------------------------------------------------------------

def test_cache_dir__no_writable_folder_logs_each_folder_and_error_then_compiles_in_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog_cluster: pytest.LogCaptureFixture,
        fresh_kernels: None) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(blocker / "numba"))  # a folder under a file
    monkeypatch.setattr(_codegen.tempfile, "gettempdir", lambda: str(blocker / "tmp"))

    got = compute("ndvi", NDVI_IN, NDVI_INFO, device="cpu")["ndvi"]

    np.testing.assert_array_equal(got, EXPECTED)
    (message,) = _warnings(caplog_cluster, "cluster.kernels._codegen")
    assert str(blocker / "numba" / "harvest_kernels") in message
    assert str(blocker / "tmp") in message
    assert "NotADirectoryError" in message or "FileExistsError" in message
    assert "compiling the fused kernels in memory" in message


def test_cache_dir__a_shared_writable_folder_is_refused_with_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog_cluster: pytest.LogCaptureFixture, fresh_kernels: None) -> None:
    shared = tmp_path / "numba" / "harvest_kernels"
    shared.mkdir(parents=True)
    shared.chmod(0o777)  # modules in it are imported: anyone could plant one
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    monkeypatch.setattr(_codegen.tempfile, "gettempdir", lambda: str(tmp_path / "private"))

    assert _codegen._cache_dir() == tmp_path / "private" / f"harvest-cluster-kernels-{os.getuid()}"

    (message,) = _warnings(caplog_cluster, "cluster.kernels._codegen")
    assert str(shared) in message and "mode 777" in message
    assert f"using '{tmp_path / 'private'}" in message


def test_load_fused__module_that_cannot_be_written_logs_folder_and_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog_cluster: pytest.LogCaptureFixture, fresh_kernels: None) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    plan = FusedPlan(kernels=(get_kernel("ndvi"),), bands=("red", "nir"),
                     dtypes=("uint16", "uint16"), has_nodata=(True, True), output="float32",
                     target="cpu")
    source = source_for(plan)
    folder = tmp_path / "harvest_kernels"
    name = f"_harvest_kernel_cpu_{hashlib.sha1(source.encode()).hexdigest()[:20]}"
    (folder / f"{name}.py").mkdir(parents=True)  # where the module goes, a folder is in the way
    folder.chmod(0o700)

    fused = load_fused(plan)

    assert callable(fused)
    (message,) = _warnings(caplog_cluster, "cluster.kernels._codegen")
    assert str(folder) in message and "IsADirectoryError" in message
    assert "compiling it in memory" in message
    np.testing.assert_array_equal(compute("ndvi", NDVI_IN, NDVI_INFO, device="cpu")["ndvi"],
                                  EXPECTED)


# -- a broken CUDA install ---------------------------------------------------------------------

@pytest.fixture
def reprobe() -> Iterator[None]:
    """Probe CUDA afresh in the test, and again (for real) in the tests after it."""
    gpu_available.cache_clear()
    yield
    gpu_available.cache_clear()


def test_gpu_available__broken_cuda_logs_warning_once_and_auto_runs_on_cpu(
        monkeypatch: pytest.MonkeyPatch, caplog_cluster: pytest.LogCaptureFixture,
        reprobe: None) -> None:
    calls = []

    def broken() -> tuple[bool, str | None]:
        calls.append(1)
        raise OSError("libcuda.so.1: undefined symbol: cuGetProcAddress_v2")

    monkeypatch.setattr(_device, "_probe_cuda", broken)

    assert gpu_available() is False
    assert resolve_device("auto") == "cpu"
    np.testing.assert_array_equal(compute("ndvi", NDVI_IN, NDVI_INFO, device="auto")["ndvi"],
                                  EXPECTED)

    (message,) = _warnings(caplog_cluster, "cluster.kernels._device")
    assert "OSError: libcuda.so.1: undefined symbol: cuGetProcAddress_v2" in message
    assert "CPU kernels" in message
    assert len(calls) == 1  # probed, and logged, once per process


@pytest.mark.parametrize(
    ("error", "level"),
    [
        ("Error at driver init: CUDA_ERROR_NO_DEVICE (100)", logging.WARNING),
        ("\nCUDA driver library cannot be found.\nIf you are sure that a CUDA driver is installed,"
         "\ntry setting environment variable NUMBA_CUDA_DRIVER\n", logging.INFO),
    ],
    ids=["driver-init-error-warns", "no-driver-is-a-cpu-machine"],
)
def test_gpu_available__driver_error_is_logged_with_its_text(
        monkeypatch: pytest.MonkeyPatch, caplog_cluster: pytest.LogCaptureFixture,
        reprobe: None, error: str, level: int) -> None:
    monkeypatch.setattr(_device, "_probe_cuda", lambda: (False, error))

    assert gpu_available() is False

    (record,) = [r for r in caplog_cluster.records if r.name == "cluster.kernels._device"]
    assert record.levelno == level
    assert " ".join(error.split())[:40] in record.getMessage()
