"""The conformance suite every registered kernel must pass (one generated subclass per kernel).

A new kernel needs no new test code: registering it adds ``TestKernel_<name>`` below.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from cluster.kernels import (
    BANDS, Kernel, OutputSpec, compute, compute_reference, get_kernel, list_kernels,
)
from tests.cluster.kernels._helpers import (
    DN_INFO, FLOAT_INFO, SCENE_SHAPE, assert_close_to_reference, assert_int16_packs,
    condition_spread, own_missing, reflectance, requires_gpu,
)


class KernelTests:
    """Checks for one kernel; subclasses set ``kernel_name``."""

    kernel_name: str

    @pytest.fixture
    def kernel(self) -> Kernel:
        return get_kernel(self.kernel_name)

    def test_output__shape_and_dtype_preserved(self, kernel, cpu_dn, cpu_dn_int16):
        assert cpu_dn[kernel.name].shape == SCENE_SHAPE
        assert cpu_dn[kernel.name].dtype == np.float32
        assert cpu_dn_int16[kernel.name].shape == SCENE_SHAPE
        assert cpu_dn_int16[kernel.name].dtype == np.int16

    def test_values__match_numpy_reference(self, kernel, dn_scene, cpu_dn):
        compared = assert_close_to_reference(cpu_dn[kernel.name], kernel, dn_scene, DN_INFO)
        assert compared >= SCENE_SHAPE[0] * SCENE_SHAPE[1] * SCENE_SHAPE[2] // 2

    def test_values__match_compute_reference(self, kernel, dn_scene, cpu_dn):
        ref = compute_reference(kernel.name, dn_scene, DN_INFO)[kernel.name]
        assert ref.dtype == np.float32
        missing = own_missing(kernel, dn_scene, DN_INFO)
        assert np.isnan(ref[missing]).all()
        # Away from missing pixels and ill-conditioned ones (e.g. 0/0 in float64 but not
        # exactly 0 in float32), the packaged oracle and the fused kernel agree.
        spread = condition_spread(kernel, reflectance(dn_scene, DN_INFO, kernel.bands))
        keep = ~missing & (spread < 1e-4)
        assert keep.sum() > keep.size // 2
        np.testing.assert_allclose(cpu_dn[kernel.name][keep], ref[keep], rtol=1e-4, atol=1e-5)

    def test_nodata__missing_exactly_where_own_bands_are_nodata(self, kernel, dn_scene, cpu_dn):
        ours = cpu_dn[kernel.name]
        missing = own_missing(kernel, dn_scene, DN_INFO)
        assert missing.any() and (~missing).any()
        assert np.isnan(ours[missing]).all()
        # Other bands' nodata must not leak in: an index that ignores a band still has values
        # where only that band is nodata.
        others = [b for b in BANDS if b not in kernel.bands]
        other_missing = np.zeros(SCENE_SHAPE, bool)
        for b in others:
            other_missing |= dn_scene[b] == 0
        only_others = other_missing & ~missing
        assert only_others.any()
        assert np.isfinite(ours[only_others]).mean() > 0.8

    def test_nodata__int16_fill_where_float32_is_nan(self, kernel, cpu_dn, cpu_dn_int16):
        assert_int16_packs(cpu_dn_int16[kernel.name], cpu_dn[kernel.name], OutputSpec.int16())

    def test_nan_input__propagates_and_matches_reference(self, kernel, float_scene, cpu_float):
        ours = cpu_float[kernel.name]
        nan_in = np.zeros(SCENE_SHAPE, bool)
        for b in kernel.bands:
            nan_in |= np.isnan(float_scene[b]) | (float_scene[b] == -9999.0)
        assert nan_in.any()
        assert np.isnan(ours[nan_in]).all()
        assert assert_close_to_reference(ours, kernel, float_scene, FLOAT_INFO) > 0

    def test_zero_denominator__nan_not_inf(self, kernel, cpu_dn):
        # Pixel [0, 0, :3] has every band at reflectance 0.
        corner = cpu_dn[kernel.name][0, 0, :3]
        assert not np.isinf(corner).any()

    def test_pickle__round_trip_computes_the_same(self, kernel, dn_scene, cpu_dn):
        clone = pickle.loads(pickle.dumps(kernel))
        assert clone == kernel and clone.spec() == kernel.spec()
        others = [get_kernel(n) for n in list_kernels() if n != kernel.name]
        again = compute([clone, *others], dn_scene, DN_INFO, device="cpu")
        np.testing.assert_array_equal(again[kernel.name], cpu_dn[kernel.name])

    def test_spec__records_name_version_bands(self, kernel):
        spec = kernel.spec()
        assert spec["name"] == kernel.name and spec["version"] >= 1
        assert spec["bands"] == list(kernel.bands) and set(kernel.bands) <= set(BANDS)

    def test_gpu_simulator__matches_cpu(self, kernel, dn_scene, float_scene, gpu_sim,
                                        cpu_dn, cpu_dn_int16, cpu_float):
        sim = gpu_sim[f"f32/{kernel.name}"]
        assert sim.dtype == np.float32 and sim.shape == SCENE_SHAPE
        np.testing.assert_array_equal(np.isnan(sim), np.isnan(cpu_dn[kernel.name]))
        assert_close_to_reference(sim, kernel, dn_scene, DN_INFO)
        np.testing.assert_allclose(sim, cpu_dn[kernel.name], rtol=2e-6, atol=1e-6,
                                   equal_nan=True)
        sim16 = gpu_sim[f"i16/{kernel.name}"]
        assert sim16.dtype == np.int16
        assert np.abs(sim16.astype(int) - cpu_dn_int16[kernel.name]).max() <= 1
        assert_close_to_reference(gpu_sim[f"nan/{kernel.name}"], kernel, float_scene, FLOAT_INFO)

    def test_gpu_simulator__launch_shape_and_packing_change_no_bit(self, kernel, gpu_sim):
        # 2 x 8 threads take 4 pixels a round: unrolled rounds and the one-pixel tail both run
        np.testing.assert_array_equal(gpu_sim[f"small/f32/{kernel.name}"], gpu_sim[f"f32/{kernel.name}"])
        np.testing.assert_array_equal(gpu_sim[f"small/i16/{kernel.name}"], gpu_sim[f"i16/{kernel.name}"])
        # uint16 bands read 4 pixels per 8-byte word, results stored as whole uint64 words,
        # give the bits of one pixel per load and store, in float32 and in int16
        for out in ("float32", "int16"):
            np.testing.assert_array_equal(gpu_sim[f"pack4/{out}/{kernel.name}"],
                                          gpu_sim[f"pack1/{out}/{kernel.name}"])

    @pytest.mark.gpu
    @requires_gpu
    def test_gpu_device__matches_cpu(self, kernel, dn_scene, cpu_dn):
        ours = compute(kernel.name, dn_scene, DN_INFO, device="gpu")[kernel.name]
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(cpu_dn[kernel.name]))
        assert_close_to_reference(ours, kernel, dn_scene, DN_INFO)


for _name in list_kernels():
    _cls = type(f"TestKernel_{_name}", (KernelTests,), {"kernel_name": _name})
    globals()[_cls.__name__] = _cls
del _name, _cls


def test_conformance__every_registered_kernel_has_a_suite():
    suites = {obj.kernel_name for obj in globals().values()
              if isinstance(obj, type) and issubclass(obj, KernelTests) and obj is not KernelTests}
    assert suites == set(list_kernels())
