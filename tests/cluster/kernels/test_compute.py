"""compute(): fusing, output buffers, output specs, devices and error messages."""

from __future__ import annotations

import numpy as np
import pytest

from cluster.errors import KernelError, MissingBandError, ResourceError, UnknownKernelError
from cluster.kernels import (
    BandInfo, GpuLaunch, OutputSpec, compute, compute_reference, gpu_available, list_kernels,
    set_default_device,
)
from tests.cluster.kernels._helpers import DN_INFO, SCENE_SHAPE, make_dn_scene, requires_gpu

NDVI_IN = {"nir": np.array([[4000, 0, 3000], [1000, 2000, 65535]], np.uint16),
           "red": np.array([[1000, 500, 0], [1000, 2000, 1]], np.uint16)}
NDVI_INFO = {b: BandInfo(scale=1e-4, nodata=0) for b in NDVI_IN}


def test_compute__ndvi_by_hand():
    got = compute("ndvi", NDVI_IN, NDVI_INFO)["ndvi"]
    expected = np.array([[0.6, np.nan, np.nan], [0.0, 0.0, 65534 / 65536]], np.float32)
    np.testing.assert_allclose(got, expected, rtol=1e-6, equal_nan=True)


def test_compute__several_indices_fused_equal_single_calls(dn_scene, cpu_dn):
    for name in ("ndvi", "evi"):
        single = compute(name, dn_scene, DN_INFO)[name]
        np.testing.assert_array_equal(single, cpu_dn[name])


def test_compute__order_and_duplicates_do_not_matter(dn_scene, cpu_dn):
    names = list_kernels()[::-1] + ["NDVI"]
    got = compute(names, dn_scene, DN_INFO)
    assert list(got) == list_kernels()[::-1]
    for name in got:
        np.testing.assert_array_equal(got[name], cpu_dn[name])


def test_compute__out_buffers_are_filled_in_place_and_reused(dn_scene, cpu_dn):
    out = {"ndvi": np.full(SCENE_SHAPE, 7.0, np.float32)}
    for seed in (0, 1):  # two "tiles" through the same buffer
        scene = make_dn_scene(seed)
        got = compute("ndvi", scene, DN_INFO, out=out)
        assert got["ndvi"] is out["ndvi"]
        np.testing.assert_array_equal(out["ndvi"], compute("ndvi", scene, DN_INFO)["ndvi"])


def test_compute__large_tile_runs_in_parallel_slices():
    rng = np.random.default_rng(3)
    shape = (3, 300, 400)  # 360 Ki px: several slices per thread
    bands = {"nir": rng.integers(0, 10000, shape, dtype=np.uint16),
             "red": rng.integers(0, 10000, shape, dtype=np.uint16)}
    info = {b: BandInfo(scale=1e-4, nodata=0) for b in bands}
    ours = compute("ndvi", bands, info)["ndvi"]
    ref = compute_reference("ndvi", bands, info)["ndvi"]
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_compute__non_contiguous_input_is_accepted():
    bands = {b: np.asfortranarray(a) for b, a in NDVI_IN.items()}
    np.testing.assert_array_equal(compute("ndvi", bands, NDVI_INFO)["ndvi"],
                                  compute("ndvi", NDVI_IN, NDVI_INFO)["ndvi"])


def test_compute__nodata_outside_dtype_range_never_matches():
    info = {b: BandInfo(scale=1e-4, nodata=-9999) for b in NDVI_IN}  # uint16 cannot hold it
    got = compute("ndvi", NDVI_IN, info)["ndvi"]
    assert np.isfinite(got[0, 1])  # DN 0 is valid here: nir 0 / red 0.05 -> -1
    assert got[0, 1] == pytest.approx(-1.0)


def test_compute__int16_output_packs_and_records_cf_attrs():
    spec = OutputSpec.int16()
    got = compute("ndvi", NDVI_IN, NDVI_INFO, output="int16")["ndvi"]
    assert got.dtype == np.int16
    assert got[0, 0] == 6000 and got[0, 1] == -32768 and got[1, 0] == 0
    assert spec.attrs() == {"scale_factor": 1e-4, "add_offset": 0.0, "_FillValue": -32768}
    np.testing.assert_allclose(spec.decode(got), compute("ndvi", NDVI_IN, NDVI_INFO)["ndvi"],
                               atol=5e-5, equal_nan=True)


def test_compute__int16_output_clips_out_of_range_values():
    bands = {"nir": np.array([60000, 1000], np.uint16), "red": np.array([1, 30000], np.uint16)}
    got = compute("sr", bands, output=OutputSpec.int16(scale_factor=1e-3))["sr"]
    assert got.tolist() == [32767, 33]  # 60000 clipped; 1/30 = 0.0333 -> 33


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"names": "ndvx"}, r"no kernel named 'ndvx'; known: cigreen, cire, evi, .*ndvi"),
        ({"names": ["ndvi", "evi"], "bands": {"nir": np.ones(3, np.uint16),
                                              "red": np.ones(3, np.uint16)}},
         r"'evi' needs \['blue'\].*the input has \['nir', 'red'\]"),
        ({"names": []}, r"names=\[\] asks for no index"),
        ({"bands": {"nir": np.ones(3, np.uint16), "red": np.ones(4, np.uint16)}},
         r"bands have different shapes"),
        ({"bands": {"nir": np.ones(3, bool), "red": np.ones(3, bool)}},
         r"band 'red' has dtype 'bool'; expected integer DN or float32/float64"),
        ({"output": "uint8"}, r"output='uint8' is not understood"),
        ({"device": "tpu"}, r"device='tpu' is not understood; expected one of"),
        ({"out": {"ndvi": np.empty((2, 3), np.float64)}},
         r"out\['ndvi'\] cannot take the result: dtype 'float64' != 'float32'"),
        ({"out": {"ndvi": np.empty((3, 2), np.float32)}},
         r"out\['ndvi'\] cannot take the result: shape \(3, 2\) != \(2, 3\)"),
    ],
    ids=["unknown-kernel", "missing-band", "no-names", "shape-mismatch", "bool-dtype",
         "bad-output", "bad-device", "out-dtype", "out-shape"],
)
def test_compute__errors_say_what_and_how_to_fix(kwargs, match):
    call = {"names": "ndvi", "bands": NDVI_IN, "band_info": NDVI_INFO, **kwargs}
    names, bands = call.pop("names"), call.pop("bands")
    with pytest.raises(KernelError, match=match):
        compute(names, bands, **call)


def test_compute__error_types_are_catchable_as_builtins():
    with pytest.raises(KeyError):
        compute("ndvx", NDVI_IN)
    with pytest.raises(UnknownKernelError):
        compute("ndvx", NDVI_IN)
    with pytest.raises(MissingBandError, match="'gndvi' needs \\['green'\\]"):
        compute(["ndvi", "gndvi"], NDVI_IN)


@pytest.mark.skipif(gpu_available(), reason="checks the no-GPU message; this machine has a GPU")
def test_compute__gpu_without_device_names_cpu_alternative():
    with pytest.raises(ResourceError, match=r"no CUDA GPU.*pass device='cpu'"):
        compute("ndvi", NDVI_IN, NDVI_INFO, device="gpu")


@pytest.mark.skipif(gpu_available(), reason="'auto' picks the GPU on this machine")
def test_compute__auto_and_default_device_fall_back_to_cpu():
    expected = compute("ndvi", NDVI_IN, NDVI_INFO, device="cpu")["ndvi"]
    np.testing.assert_array_equal(compute("ndvi", NDVI_IN, NDVI_INFO, device="auto")["ndvi"],
                                  expected)
    previous = set_default_device("auto")
    try:
        np.testing.assert_array_equal(compute("ndvi", NDVI_IN, NDVI_INFO)["ndvi"], expected)
    finally:
        set_default_device(previous)


def test_set_default_device__per_call_argument_wins():
    previous = set_default_device("gpu")
    try:
        got = compute("ndvi", NDVI_IN, NDVI_INFO, device="cpu")["ndvi"]
        assert got.dtype == np.float32
    finally:
        set_default_device(previous)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dtype": "float16"}, "output dtype 'float16' is not supported"),
        ({"dtype": "int16", "scale_factor": 0.0, "fill_value": -32768}, "must be a positive"),
        ({"dtype": "int16", "scale_factor": 1e-4, "fill_value": 0}, "fill_value=0 must be"),
        ({"dtype": "float32", "scale_factor": 2.0}, "float32 output takes no scale_factor"),
    ],
    ids=["float16", "zero-scale", "fill-inside-range", "scaled-float"],
)
def test_output_spec__rejects_bad_values(kwargs, match):
    with pytest.raises(KernelError, match=match):
        OutputSpec(**kwargs)


def test_band_info__rejects_non_finite_scale():
    with pytest.raises(KernelError, match="is not finite"):
        BandInfo(scale=float("nan"))


def test_compute_gpu_simulator__device_arrays_and_out_buffers(gpu_sim, cpu_dn):
    np.testing.assert_allclose(gpu_sim["device/ndvi"], cpu_dn["ndvi"], rtol=2e-6, atol=1e-6,
                               equal_nan=True)
    np.testing.assert_allclose(gpu_sim["out/ndvi"], cpu_dn["ndvi"], rtol=2e-6, atol=1e-6,
                               equal_nan=True)


class _DeviceView:
    """The parts of a device array that ``GpuLaunch.pack_for`` reads: dtype, size, address."""

    def __init__(self, dtype: str, size: int, address: int) -> None:
        self.dtype, self.size = np.dtype(dtype), size
        self.__cuda_array_interface__ = {"data": (address, False)}


@pytest.mark.parametrize("bands, outputs, expected", [
    ([("uint16", 112, 0x1000)] * 2, [("float32", 112, 0x2000)], 4),
    ([("uint16", 112, 0x1000)] * 2, [("float32", 112, 0x2004)], 1),  # output 4-byte aligned
    ([("uint16", 112, 0x1002), ("uint16", 112, 0x1000)], [], 1),     # a band 2-byte aligned
    ([("uint16", 110, 0x1000)] * 2, [], 1),                          # not a multiple of 4 px
    ([("int16", 112, 0x1000)] * 2, [], 1),                           # not uint16
])
def test_gpu_launch__packs_only_whole_aligned_uint16_words(bands, outputs, expected):
    # 8-byte words in and out: a band or output on the device off an 8-byte boundary, or a
    # pixel count that leaves a partial word, is read and written one pixel at a time instead
    got = GpuLaunch(pack=4).pack_for([_DeviceView(*b) for b in bands], [_DeviceView(*o) for o in outputs])
    assert got == expected
    assert GpuLaunch(pack=1).pack_for([_DeviceView(*b) for b in bands]) == 1


def test_gpu_launch__packing_that_alone_exceeds_the_compile_budget_is_dropped():
    # kernels x pixels per load = copies of the per-pixel code NVVM compiles: 5 x 4 fits the
    # default 20, all 17 kernels x 4 (68) took NVVM over 4 minutes on an H200
    bands = [_DeviceView("uint16", 112, 0x1000)] * 2
    assert GpuLaunch().pack_for(bands, n_kernels=5) == 4
    assert GpuLaunch().pack_for(bands, n_kernels=6) == 1
    assert GpuLaunch(max_bodies=68).pack_for(bands, n_kernels=17) == 4


# -- a real GPU (skipped without one; the simulator tests above cover the same paths on CPU) ----

@pytest.mark.gpu
@requires_gpu
def test_compute_gpu__all_kernels_fused_float32_and_int16_equal_cpu_bits(dn_scene, cpu_dn, cpu_dn_int16):
    names = list_kernels()
    # 126 px: one pixel per load, all 17 fused; 112 px: four uint16 pixels per 8-byte load, the
    # demo's five indices (20 copies of the pixel code: each compile takes NVVM a while, and
    # passes of five over all 17 kernels did not finish in 2 minutes on an H200)
    dn4 = {b: np.ascontiguousarray(a[:, :, :8]) for b, a in dn_scene.items()}
    five = ["ndvi", "evi", "savi", "ndmi", "nbr"]
    cases = [(dn_scene, names, cpu_dn, cpu_dn_int16, 1),
             (dn4, five, compute(five, dn4, DN_INFO, device="cpu"),
              compute(five, dn4, DN_INFO, output="int16", device="cpu"), 4)]
    for scene, group, cpu, cpu16, pack in cases:
        launch = GpuLaunch(pack=pack)
        assert launch.loop_shape(len(group), list(scene.values()), "gpu")["pack"] == pack
        got = compute(group, scene, DN_INFO, device="gpu", gpu_launch=launch)
        got16 = compute(group, scene, DN_INFO, output="int16", device="gpu", gpu_launch=launch)
        for name in group:  # same operations, same order, no fused multiply-add: the same bits
            np.testing.assert_array_equal(got[name], cpu[name], err_msg=name)
            np.testing.assert_array_equal(got16[name], cpu16[name], err_msg=name)


@pytest.mark.gpu
@requires_gpu
def test_compute_gpu__cupy_in_gives_cupy_out_and_fills_device_out_buffers():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
    rng = np.random.default_rng(11)
    shape = (3, 1024, 1500)  # 4.6 Mpx: several rounds of the unrolled grid-stride loop, and a tail
    # DN 0..10000 with offset -0.1: exact zero reflectances and zero denominators are common
    host = {b: rng.integers(0, 10000, shape, dtype=np.uint16) for b in ("nir", "red", "blue")}
    dev = {b: cupy.asarray(a) for b, a in host.items()}
    expected = compute(["ndvi", "evi"], host, DN_INFO, device="cpu")
    got = compute(["ndvi", "evi"], dev, DN_INFO, device="gpu")
    for name in ("ndvi", "evi"):
        assert isinstance(got[name], cupy.ndarray) and got[name].shape == shape
        np.testing.assert_array_equal(cupy.asnumpy(got[name]), expected[name], err_msg=name)
    out = {"ndvi": cupy.full(shape, 7.0, dtype=cupy.float32)}
    again = compute("ndvi", dev, DN_INFO, device="gpu", out=out)
    assert again["ndvi"] is out["ndvi"]
    np.testing.assert_array_equal(cupy.asnumpy(out["ndvi"]), cupy.asnumpy(got["ndvi"]))
