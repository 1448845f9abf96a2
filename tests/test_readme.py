"""The README's Quick start is the contract: two one-line commands, the second run by CI."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the Quick start section has no ```sh block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme__quick_start_has_two_one_line_commands() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2
    assert "harvest demo" in commands[0]
    assert "pytest" in commands[1]


def test_readme__ci_runs_the_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert quick_start_commands()[1] in ci


def test_readme__folder_map_names_what_exists() -> None:
    text = (ROOT / "README.md").read_text()
    for folder in ("cluster/", "jobs/", "infra/", "tests/", "benchmarks/", "examples/"):
        assert f"`{folder}`" in text
        assert (ROOT / folder).is_dir(), folder
