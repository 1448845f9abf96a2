"""Every index against spyndex on real reflectances, and NDVI against eo-learn's golden series.

Tolerance (float32 vs spyndex's float64): ``|ours - spyndex| <= 1e-6 + 1e-5 * |spyndex|``, i.e.
a few float32 ulps of the value (float32 has ~6e-8 relative resolution and each formula about
ten roundings). Real reflectances keep every denominator well away from zero, so no pixel is
exempted.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rasterio
import spyndex

from cluster.kernels import BANDS, compute, get_kernel, list_kernels
from tests._data import shared_data

ATOL, RTOL = 1e-6, 1e-5

# canonical band -> spyndex parameter name
SPYNDEX_BAND = {"blue": "B", "green": "G", "red": "R", "rededge1": "RE1", "rededge2": "RE2",
                "rededge3": "RE3", "nir": "N", "nir08": "N2", "swir16": "S1", "swir22": "S2"}
LANDSAT8 = {"blue": "SR_B2", "green": "SR_B3", "red": "SR_B4", "nir": "SR_B5",
            "swir16": "SR_B6", "swir22": "SR_B7"}
S2_ORDER = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11",
            "B12"]
S2_BAND = {"blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
           "rededge3": "B07", "nir": "B08", "nir08": "B8A", "swir16": "B11", "swir22": "B12"}


def spyndex_value(name: str, refl: dict[str, np.ndarray]) -> np.ndarray:
    kernel = get_kernel(name)
    params = {SPYNDEX_BAND[b]: refl[b].astype(np.float64) for b in kernel.bands}
    params.update({k: float(v) for k, v in kernel.constants.items()})
    if kernel.spyndex_name == "EVI" or kernel.spyndex_name == "EVI2":
        params["g"] = params.pop("G")
    if kernel.spyndex_name == "kNDVI":
        n, r = params.pop("N"), params.pop("R")
        params["kNN"] = 1.0  # k(N, N) = exp(0)
        params["kNR"] = spyndex.computeKernel("RBF", params={"a": n, "b": r, "sigma": 0.5 * (n + r)})
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(spyndex.computeIndex(kernel.spyndex_name, params=params), dtype=np.float64)


def assert_agrees(ours: np.ndarray, expected: np.ndarray, name: str) -> None:
    assert np.isfinite(expected).mean() > 0.99, f"{name}: spyndex gives non-finite values"
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(expected), err_msg=name)
    np.testing.assert_allclose(ours.astype(np.float64), expected, atol=ATOL, rtol=RTOL,
                               err_msg=name)


@pytest.fixture(scope="module")
def landsat8() -> dict[str, np.ndarray]:
    path = shared_data("landsat8_spectral_samples_spyndex", "landsat8_sr_samples_by_landcover.csv")
    table = pd.read_csv(path)
    return {band: table[column].to_numpy(np.float32) for band, column in LANDSAT8.items()}


@pytest.fixture(scope="module")
def sentinel2() -> dict[str, np.ndarray]:
    folder = shared_data("sentinel2_slovenia_eolearn", "s2_l1c_13band")
    stacks: dict[str, list[np.ndarray]] = {b: [] for b in S2_BAND}
    for path in sorted(folder.glob("S2_L1C_*.tif")):
        with rasterio.open(path) as src:
            assert list(src.descriptions) == S2_ORDER
            for band, s2 in S2_BAND.items():
                stacks[band].append(src.read(S2_ORDER.index(s2) + 1))
    assert len(stacks["red"]) == 5
    return {b: np.stack(v) for b, v in stacks.items()}  # (time, y, x) float32


def test_every_kernel__has_a_spyndex_counterpart():
    for name in list_kernels():
        kernel = get_kernel(name)
        entry = spyndex.indices[kernel.spyndex_name]
        spy_bands = {"N", "R"} if name == "kndvi" else set(entry.bands)  # kNN, kNR are kernels
        assert {SPYNDEX_BAND[b] for b in kernel.bands} <= spy_bands, name
        for const, value in kernel.constants.items():
            key = "g" if const == "G" else const
            if name != "savi":  # spyndex's L defaults to 1 (EVI); SAVI's is 0.5 (Huete 1988)
                assert spyndex.constants[key].default == value, (name, const)


def test_landsat8_samples__every_index_matches_spyndex(landsat8):
    names = [n for n in list_kernels() if set(get_kernel(n).bands) <= set(landsat8)]
    assert len(names) >= 14
    ours = compute(names, landsat8)
    for name in names:
        assert_agrees(ours[name], spyndex_value(name, landsat8), name)


def test_sentinel2_slovenia__every_index_matches_spyndex(sentinel2):
    assert set(sentinel2) == set(BANDS)
    ours = compute(list_kernels(), sentinel2)
    for name in list_kernels():
        assert ours[name].shape == (5, 101, 100)
        assert_agrees(ours[name], spyndex_value(name, sentinel2), name)


def test_sentinel2_slovenia__ndvi_equals_eolearn_golden_series(sentinel2):
    folder = shared_data("sentinel2_slovenia_eolearn")
    scene_dates = [p.name[len("S2_L1C_"):-len(".tif")]
                   for p in sorted((folder / "s2_l1c_13band").glob("S2_L1C_*.tif"))]
    timestamps = json.loads((folder / "timestamps.json").read_text())
    ndvi = compute("ndvi", {"nir": sentinel2["nir"], "red": sentinel2["red"]})["ndvi"]
    with rasterio.open(folder / "ndvi_68dates.tif") as src:
        for t, date in enumerate(scene_dates):
            band = [i for i, ts in enumerate(timestamps) if ts.startswith(date)]
            assert len(band) == 1, date
            golden = src.read(band[0] + 1)
            np.testing.assert_allclose(ndvi[t], golden, atol=1e-6, rtol=0, err_msg=date)
