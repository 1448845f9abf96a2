"""Hypothesis: the fused CPU kernels agree with the plain-NumPy oracle on nasty inputs.

Every example computes all registered kernels in one fused call, so only three loops compile
(uint16 / int16 DN with nodata, float32 reflectance with NaN and a nodata marker) and examples
reuse them. Profiles (``ci`` derandomized) come from tests/conftest.py; max_examples is capped
here because each example checks 17 indices.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cluster.kernels import BANDS, BandInfo, OutputSpec, compute, get_kernel, list_kernels
from tests.cluster.kernels._helpers import assert_close_to_reference, assert_int16_packs

NAMES = list_kernels()
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

shapes = st.sampled_from([(1,), (17,), (3, 5), (2, 3, 4)])


def _dn_elements(dtype: np.dtype, nodata: int) -> st.SearchStrategy[int]:
    info = np.iinfo(dtype)
    special = [0, 1, nodata, info.max, info.min, 1000, 10000, 32767]
    return st.one_of(st.sampled_from([v for v in special if info.min <= v <= info.max]),
                     st.integers(int(info.min), int(info.max)))


@st.composite
def dn_inputs(draw: st.DrawFn, dtype: np.dtype, nodata: int):
    shape = draw(shapes)
    bands = {b: draw(hnp.arrays(dtype, shape, elements=_dn_elements(dtype, nodata)))
             for b in BANDS}
    # DN are always scaled (Sentinel-2, Landsat C2); saturated 65535 is then reflectance 6.55.
    # scale 1.0 would make reflectances of 65535 where MSAVI's sqrt((2N+1)^2 - ...) loses every
    # float32 digit to cancellation (spyndex's form, kept as is).
    scale = draw(st.sampled_from([1e-4, 2.75e-5]))
    offset = draw(st.sampled_from([0.0, -0.1, -0.2]))
    info = {b: BandInfo(scale=scale, offset=offset, nodata=nodata) for b in BANDS}
    return bands, info


@st.composite
def float_inputs(draw: st.DrawFn):
    shape = draw(shapes)
    elements = st.one_of(st.sampled_from([0.0, -0.0, np.nan, -9999.0, 1.0, 6.5535, 1e-7]),
                         st.floats(-0.5, 2.0, width=32))
    bands = {b: draw(hnp.arrays(np.float32, shape, elements=elements)) for b in BANDS}
    return bands, {b: BandInfo(nodata=-9999.0) for b in BANDS}


def _check_all(bands, info) -> None:
    ours = compute(NAMES, bands, info, device="cpu")
    for name in NAMES:
        assert ours[name].shape == bands["nir"].shape
        assert_close_to_reference(ours[name], get_kernel(name), bands, info)


@SETTINGS
@given(dn_inputs(np.dtype(np.uint16), nodata=0))
def test_fused_cpu__matches_reference_on_uint16(inputs):
    _check_all(*inputs)


@SETTINGS
@given(dn_inputs(np.dtype(np.int16), nodata=-9999))
def test_fused_cpu__matches_reference_on_int16(inputs):
    _check_all(*inputs)


@SETTINGS
@given(float_inputs())
def test_fused_cpu__matches_reference_on_float32_with_nan(inputs):
    _check_all(*inputs)


@SETTINGS
@given(dn_inputs(np.dtype(np.uint16), nodata=0))
def test_int16_output__is_float32_output_packed(inputs):
    bands, info = inputs
    # Same band set, dtypes and nodata as the conformance fixtures: these loops are compiled.
    f32 = compute(NAMES, bands, info, device="cpu")
    i16 = compute(NAMES, bands, info, output=OutputSpec.int16(), device="cpu")
    for name in NAMES:
        assert_int16_packs(i16[name], f32[name], OutputSpec.int16())
