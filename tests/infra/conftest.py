"""Fixtures for the offline infra checks: paths, parsed manifests, and checkov.

checkov lives in its own virtual environment (``.venv-checkov``, gitignored by
``.venv-*``): it depends on ``bc-python-hcl2``, which installs the same ``hcl2``
module as python-hcl2 (used by test_terraform.py) and would shadow it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
CHECKOV_VENV = REPO_ROOT / ".venv-checkov"
CHECKOV_SPEC = "checkov==3.*"


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def pinned_ray_version() -> str:
    """``2.60`` from pyproject's ``ray[default]==2.60.*``."""
    text = (REPO_ROOT / "pyproject.toml").read_text()
    match = re.search(r'"ray\[default\]==(\d+\.\d+)\.\*"', text)
    assert match, "pyproject.toml must pin ray[default]==X.Y.*"
    return match.group(1)


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="session")
def checkov() -> Path:
    """Path of a checkov 3 executable in .venv-checkov, created on first use.

    Skips (fails under CI=true) when it cannot be installed, e.g. offline.
    """
    exe = CHECKOV_VENV / "bin" / "checkov"
    if not exe.exists():
        try:
            if not (CHECKOV_VENV / "bin" / "python").exists():
                subprocess.run([sys.executable, "-m", "venv", str(CHECKOV_VENV)],
                               check=True, capture_output=True, timeout=120)
            subprocess.run([str(CHECKOV_VENV / "bin" / "python"), "-m", "pip", "install",
                            "--quiet", CHECKOV_SPEC], check=True, capture_output=True,
                           text=True, timeout=900)
        except (subprocess.SubprocessError, OSError) as e:
            detail = getattr(e, "stderr", "") or str(e)
            msg = f"cannot install {CHECKOV_SPEC} into {CHECKOV_VENV}: {str(detail)[-500:]}"
            if _under_ci():
                pytest.fail(msg)
            pytest.skip(msg)
    return exe


@pytest.fixture(scope="session")
def terraform() -> str:
    exe = shutil.which("terraform")
    if exe is None:
        msg = "terraform binary not on PATH (needed for `terraform fmt -check`)"
        if _under_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return exe
