"""The registry: lookups, registration rules and expression validation."""

from __future__ import annotations

import numpy as np
import pytest

from cluster.errors import KernelError, UnknownKernelError
from cluster.kernels import Kernel, get_kernel, list_kernels, register_kernel
from cluster.kernels._reference import safe_divide

CATALOGUE = {"ndvi", "evi", "evi2", "savi", "msavi", "osavi", "ndwi", "ndmi", "gndvi", "nbr",
             "ndre", "kndvi", "sr", "cigreen", "cire", "mtvi2", "wdrvi"}


def _ref(nir: np.ndarray, red: np.ndarray) -> np.ndarray:
    return safe_divide(nir, red)


def test_list_kernels__whole_catalogue_sorted():
    assert set(list_kernels()) == CATALOGUE
    assert list_kernels() == sorted(list_kernels())


def test_get_kernel__case_insensitive():
    assert get_kernel("NDVI") is get_kernel("ndvi")


def test_get_kernel__unknown_lists_known_names():
    with pytest.raises(UnknownKernelError) as info:
        get_kernel("nvdi")
    message = str(info.value)
    assert "no kernel named 'nvdi'" in message
    assert all(name in message for name in CATALOGUE)


def test_register_kernel__duplicate_name_rejected():
    with pytest.raises(KernelError, match="'ndvi' is already registered"):
        register_kernel(get_kernel("ndvi"))


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"expression": "nir / red + foo"}, r"names \['foo'\] that are neither"),
        ({"expression": "nir"}, r"does not use its bands \['red'\]"),
        ({"expression": "nir ** 3 / red"}, r"only \*\* 2 and \*\* 0.5"),
        ({"expression": "log(nir) / red"}, r"only one-argument calls"),
        ({"expression": "nir[0] / red"}, r"uses Subscript"),
        ({"expression": "nir / (red"}, r"is not a Python expression"),
        ({"bands": ("nir", "rouge"), "expression": "nir / rouge"}, r"\['rouge'\] that are not canonical"),
        ({"name": "My-Index"}, r"must be a lower-case identifier"),
    ],
    ids=["unknown-name", "unused-band", "bad-power", "bad-call", "subscript", "syntax",
         "non-canonical-band", "bad-name"],
)
def test_kernel__invalid_definitions_fail_at_construction(fields, match):
    base = {"name": "test_sr", "bands": ("nir", "red"), "expression": "nir / red",
            "reference": _ref}
    with pytest.raises(KernelError, match=match):
        Kernel(**{**base, **fields})


def test_kernel__formula_substitutes_constants():
    assert get_kernel("evi").formula == "2.5 * (nir - red) / (nir + 6.0 * red - 7.5 * blue + 1.0)"
    assert get_kernel("ndvi").formula == "(nir - red) / (nir + red)"


def test_kernel__spec_is_json_ready():
    spec = get_kernel("evi").spec()
    assert spec == {"name": "evi", "version": 1, "bands": ["nir", "red", "blue"],
                    "expression": "G * (nir - red) / (nir + C1 * red - C2 * blue + L)",
                    "constants": {"G": 2.5, "C1": 6.0, "C2": 7.5, "L": 1.0},
                    "spyndex_name": "EVI"}
