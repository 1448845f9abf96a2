"""The contracts tools check (issue #15): ruff finds nothing in the code, and mypy --strict
finds nothing in ``cluster/`` and ``jobs/``, with the settings and exceptions of ``[tool.ruff]``
and ``[tool.mypy]`` in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LINTED = ("cluster", "jobs", "tests", "benchmarks")
"""ruff and mypy are in the 'test' extra (pip install -e '.[test]'); without them these tests fail,
they do not skip."""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300, check=False)


def test_lint__ruff_finds_nothing() -> None:
    # --no-cache: nothing written into the working tree; the whole check takes about a second
    done = _run("ruff", "check", "--no-cache", "--output-format", "concise", *LINTED)
    assert done.returncode == 0, f"ruff check found problems (fix them, or justify a noqa):\n{done.stdout}{done.stderr}"


def test_lint__mypy_strict_finds_nothing() -> None:
    # packages and strictness come from [tool.mypy]; the cache (.mypy_cache, git-ignored) takes a
    # rerun from ~30 s to ~1 s
    done = _run("mypy", "--no-error-summary", "--cache-dir", str(REPO_ROOT / ".mypy_cache"))
    assert done.returncode == 0, f"mypy found problems:\n{done.stdout}{done.stderr}"
