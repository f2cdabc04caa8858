"""The README's first two commands are the contract with a newcomer; CI runs the second one."""
from __future__ import annotations

import re
import shlex

import pytest
from conftest import REPO, write_folder_dataset
from stand_in.cli import platbench_here


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


def platform_examples() -> list[str]:
    """The README's `platbench launch|endpoint|transfer PLATFORM …` examples for the cloud platforms, one
    command a line (continuations joined), the optional `[…]` parts and trailing comments left out."""
    text = (REPO / "README.md").read_text().replace("\\\n", " ")
    found = re.findall(r"^\.venv/bin/platbench ((?:launch|endpoint|transfer) (?!local |docker )[^#\n]*)", text, re.M)
    return [re.sub(r"\s*\[[^\]]*\]", "", c).strip() for c in found]


@pytest.mark.parametrize("command", platform_examples())
def test_each_readme_example_s_placeholders_pass_its_platform_s_checks(command, tmp_path):
    """A newcomer who fills in only credentials gets a plan, not a refusal of the example's own placeholders
    (issue 24: `--set bucket=B` was refused as too short, the azureml example lacked storage_account)."""
    data = write_folder_dataset(tmp_path / "ds", train_per_class=2, test_per_class=1)
    args = [str(data) if a == "DIR" else a for a in shlex.split(command)]
    r = platbench_here(*args, *([] if "--dry-run" in args else ["--dry-run"]), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    needs = [line for line in r.stdout.splitlines() if "still needs" in line]
    assert not any("--set" in line for line in needs), needs


def test_the_readme_serves_with_platbench_serve_and_load():
    """Issue 28: serving is a platbench command, and the README's serving block starts with it and `load`."""
    text = (REPO / "README.md").read_text()
    block = text.split("## Serving and inference", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    first, second = [line.split("#")[0].split() for line in block.splitlines()[:2]]
    assert first[:2] == [".venv/bin/platbench", "serve"] and second[:3] == [".venv/bin/platbench", "load", "127.0.0.1:8080"]
    assert "--port" in first and first[first.index("--port") + 1] == "8080"
