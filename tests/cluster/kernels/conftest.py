"""Fixtures for the kernel tests: one fused pass over all kernels per configuration.

Compiling a fused loop costs about a second, so the conformance suite computes every registered
kernel in one call per configuration and each kernel's tests read their own output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cluster.kernels import OutputSpec, compute, list_kernels
from tests.cluster.kernels._helpers import DN_INFO, FLOAT_INFO, make_dn_scene, make_float_scene

REPO = Path(__file__).resolve().parents[3]

# Runs in a child process: the CUDA simulator must be switched on before numba is imported.
GPU_SIM_SCRIPT = """
import sys
import numpy as np
from cluster.kernels import compute, list_kernels
from tests.cluster.kernels._helpers import DN_INFO, FLOAT_INFO, make_dn_scene, make_float_scene
names = list_kernels()
dn, fl = make_dn_scene(), make_float_scene()
results = {}
for key, res in (
    ("f32", compute(names, dn, DN_INFO, device="gpu")),
    ("i16", compute(names, dn, DN_INFO, output="int16", device="gpu")),
    ("nan", compute(names, fl, FLOAT_INFO, device="gpu")),
):
    for name, arr in res.items():
        assert isinstance(arr, np.ndarray), type(arr)
        results[f"{key}/{name}"] = arr
# Device arrays in -> device arrays out; host out= buffers are filled in place.
from numba import cuda
d_bands = {b: cuda.to_device(a) for b, a in dn.items()}
d_res = compute(["ndvi", "evi"], d_bands, DN_INFO, device="gpu")
assert all(hasattr(a, "copy_to_host") for a in d_res.values()), [type(a) for a in d_res.values()]
results["device/ndvi"] = d_res["ndvi"].copy_to_host()
host_out = {"ndvi": np.zeros(dn["nir"].shape, np.float32)}
h_res = compute("ndvi", dn, DN_INFO, device="gpu", out=host_out)
assert h_res["ndvi"] is host_out["ndvi"]
results["out/ndvi"] = host_out["ndvi"]
# A tiny launch (2 blocks x 8 threads) so the unrolled rounds and the tail both run here; every
# plan unrolled (the simulator compiles nothing). Settings travel as a GpuLaunch, not globals.
from cluster.kernels import GpuLaunch
from cluster.kernels import _gpu
tiny = GpuLaunch(max_blocks=2, threads_per_block=8, max_bodies=10 ** 6)
for key, res in (("small/f32", compute(names, dn, DN_INFO, device="gpu", gpu_launch=tiny)),
                 ("small/i16", compute(names, dn, DN_INFO, output="int16", device="gpu",
                                       gpu_launch=tiny))):
    for name, arr in res.items():
        results[f"{key}/{name}"] = arr
# 4 uint16 pixels per 8-byte load against 1: the same bits. 4 threads x 4 words a round, so
# rounds and a tail both run.
dn4 = {b: np.ascontiguousarray(a[:, :, :8]) for b, a in dn.items()}  # 112 px, a multiple of 4
for pack in (4, 1):
    launch = GpuLaunch(pack=pack, max_blocks=2, threads_per_block=2, max_bodies=10 ** 6)
    assert launch.pack_for(list(dn4.values())) == pack
    for out in ("float32", "int16"):  # outputs leave as whole uint64 words at pack 4
        for name, arr in compute(names, dn4, DN_INFO, output=out, device="gpu",
                                 gpu_launch=launch).items():
            results[f"pack{pack}/{out}/{name}"] = arr
np.savez(sys.argv[1], **results)
"""


@pytest.fixture(scope="session")
def dn_scene() -> dict[str, np.ndarray]:
    return make_dn_scene()


@pytest.fixture(scope="session")
def float_scene() -> dict[str, np.ndarray]:
    return make_float_scene()


@pytest.fixture(scope="session")
def cpu_dn(dn_scene: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return compute(list_kernels(), dn_scene, DN_INFO, device="cpu")


@pytest.fixture(scope="session")
def cpu_dn_int16(dn_scene: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return compute(list_kernels(), dn_scene, DN_INFO, output=OutputSpec.int16(), device="cpu")


@pytest.fixture(scope="session")
def cpu_float(float_scene: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return compute(list_kernels(), float_scene, FLOAT_INFO, device="cpu")


@pytest.fixture(scope="session")
def gpu_sim(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Every kernel computed by the generated numba.cuda code under numba's CUDA simulator."""
    path = tmp_path_factory.mktemp("gpu_sim") / "results.npz"
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", GPU_SIM_SCRIPT, str(path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"CUDA simulator run failed:\n{proc.stdout}\n{proc.stderr}"
    with np.load(path) as data:
        return {key: data[key] for key in data.files}
