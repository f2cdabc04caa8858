"""The README's first two commands are the contract with a newcomer; CI runs the second one."""
from __future__ import annotations

from conftest import REPO


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_starts_with_exactly_two_commands():
    head = (REPO / "README.md").read_text().splitlines()
    assert head[0].startswith("# ") and head[2] == "```bash"
    cmds = readme_commands()
    assert len(cmds) == 2
    run, test = cmds
    assert run.startswith("scripts/setup &&") and "launch local" in run and "data prepare digits" in run
    assert test.startswith("scripts/setup dev &&") and "pytest" in test


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci/run").read_text().splitlines()
    assert readme_commands()[1] in ci
