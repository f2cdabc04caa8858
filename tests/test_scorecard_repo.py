"""The project's own scorecard files: scoring.yaml and scenarios/*.yaml are valid, and Scenario.md is
in sync with them (`platbench scenario render` would change nothing)."""
from __future__ import annotations

from pathlib import Path

from platforms.scorecard import loader
from platforms.scorecard.cli import rendered
from platforms.scorecard.loader import Project, load_project
from platforms.scorecard.scenario import load_steps

REPO = Path(__file__).resolve().parents[1]


def test_rubric_and_records_are_valid():
    rubric, records = load_project(Project(REPO))
    assert len(rubric.criteria) == 6 and len(rubric.developer_experience.criteria) == 5
    known = loader.registered_platforms()
    for path, record in records:
        assert record.platform in known
        assert path.name == f"{record.platform}.yaml"


def test_every_platform_platbench_has_or_is_getting_has_a_scenario_file():
    """A record, or a placeholder saying "not recorded": never nothing, never an invented record."""
    got = loader.load_all(Project(REPO))
    files = {p.stem for p in Project(REPO).record_paths()}
    wanted = set(loader.registered_platforms()) | set(got.published.platbench_names)
    missing = sorted(wanted - files)
    assert not missing, (f"scenarios/{missing[0]}.yaml is missing: add a placeholder (`platform: {missing[0]}` and "
                         "`status: not recorded`) until a person records the scenario on it")
    assert {"local", "sagemaker", "vertex", "azureml", "databricks", "apolo", "nyckel", "rekognition", "vertex_automl",
            "autotrain"} <= files
    # a record is a recording: who, when and the steps taken (placeholders carry none of that)
    assert "local" in {r.platform for _, r in got.records}
    for _, r in got.records:
        assert r.steps and r.recorded_by and r.scenario_steps_done, r.platform


def test_scenario_md_has_the_ten_steps():
    rubric, _ = load_project(Project(REPO))
    steps = load_steps(REPO / "Scenario.md", "Scenario.md", rubric.ids)
    assert [s.title for s in steps] == [
        "Register and set up the environment", "Upload the dataset", "Upload the code / image", "Train",
        "Watch logs and debug a running job remotely", "Look at predictions", "Retrain with one change",
        "Share the run with an engineer", "Share results with a non-engineer", "Share the dataset and the environment"]
    assert {s.criterion for s in steps} == set(rubric.ids)  # every criterion is exercised by some step


def test_scenario_md_is_in_sync_with_scenarios():
    current, regenerated = rendered(Project(REPO))
    assert current == regenerated, "Scenario.md is out of date: run `platbench scenario render`"


def test_scorecard_package_stays_light():
    """On the CLI's start path: registering the sub-app loads no scorecard internals, and the whole
    package needs only pydantic, PyYAML, typer and rich (no torch, no MLflow)."""
    import subprocess
    import sys

    code = ("import sys, platforms.scorecard.cli; assert 'platforms.scorecard.models' not in sys.modules; "
            "import platforms.scorecard.recorder, platforms.scorecard.render, platforms.scorecard.cli as c; "
            "c.rendered; bad = [m for m in ('torch', 'mlflow', 'lightning', 'numpy') if m in sys.modules]; "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
