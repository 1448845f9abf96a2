"""Every name the package exports exists and is documented (zarr's 'documented API' check)."""

from __future__ import annotations

import inspect

import cluster


def test_public_api__every_export_exists_and_has_a_docstring() -> None:
    missing_doc = []
    for name in cluster.__all__:
        obj = getattr(cluster, name)
        if name.startswith("__"):
            continue
        if (inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj)) and not inspect.getdoc(obj):
            missing_doc.append(name)
    assert not missing_doc, f"exports without a docstring: {missing_doc}"
