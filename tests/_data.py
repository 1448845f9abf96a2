"""Locate the real test data in ../shared/data: fail under CI when missing, skip elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """The path of ``../shared/data/<parts>``; fails under ``CI=true`` and skips elsewhere when missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        msg = f"real test data {path} is missing (it comes from ../shared/data beside the repo)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path
