"""`platbench scenario record`, end to end through the CLI with scripted input: a full walk, the
stopwatch, the end of input and Ctrl-C part-way (nothing answered is lost, nothing half-written), and
a second call that resumes where the first stopped."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from platforms.cli import app
from platforms.errors import UserError
from platforms.scorecard import loader, recorder
from platforms.scorecard.loader import load_record, load_rubric

REPO = Path(__file__).resolve().parents[1]
RUBRIC = load_rubric(REPO / "scoring.yaml")


@pytest.fixture
def root(tmp_path, monkeypatch):
    shutil.copy(REPO / "scoring.yaml", tmp_path / "scoring.yaml")
    shutil.copy(REPO / "Scenario.md", tmp_path / "Scenario.md")
    monkeypatch.setattr(loader, "registered_platforms", lambda: ["local", "sagemaker"])
    return tmp_path


def invoke(args, input_lines):
    result = CliRunner().invoke(app, args, input="".join(line + "\n" for line in input_lines))
    if isinstance(result.exception, UserError):
        return 2, result.output, f"platbench: error: {result.exception}"
    return result.exit_code, result.stdout, result.stderr


HEADER = ["Local, scripted", "Tester", "2026-11-20", "platbench=0.1.0"]


def action(minutes="3", what="Did a thing", how="some command", criterion="", outcome="done", docs="", notes="",
           more="n", ml="", answered=""):
    # the answers in the order the recorder asks; ml / answered: the developer-experience questions
    return [minutes, what, how, criterion, outcome, ml, answered, docs, notes, more]


A = len(action())  # answers per action, the last one being "another action?"


# The whole walk: 10 scenario steps. Step 1 has two actions; step 3 is skipped.
STEPS = [
    ["record"] + action("4.5", "Installed platbench", "pip install -e .", docs="https://pip.pypa.io/", more="y")
    + action("1", "Checked the plan", "platbench launch local --dry-run --data data/d"),
    ["record"] + action("2", "Prepared the dataset", "platbench data prepare digits --out data/digits", outcome="workaround",
                        notes="had to read --help", ml="some", answered="partly"),
    ["skip"],
    ["record"] + action("6", "Trained", "platbench launch local --data data/digits --model small"),
    ["record"] + action("1", "Read the log", "less runs/x/train.log"),
    ["record"] + action("2", "Looked at the confusion matrix", "jq .confusion runs/x/results.json"),
    ["record"] + action("3", "Retrained with a class weight", "platbench launch local --hp class_weight=1:2 …"),
    ["record"] + action("5", "Sent the MLflow run", "mlflow ui; copied the run URL", outcome="blocked",
                        notes="the UI only listens on localhost"),
    ["record"] + action("4", "Exported the table", "platbench runs --json > table.json"),
    ["record"] + action("2", "Shared the dataset folder", "tar czf digits.tgz data/digits", criterion="sharing_data_env"),
]
ALL = HEADER + [a for step in STEPS for a in step]


def test_full_walk_records_every_step_and_scores(root):
    code, out, err = invoke(["scenario", "record", "local", "--root", str(root)], ALL)
    assert code == 0, err + out[-2000:]
    rec = load_record(root / "scenarios" / "local.yaml", RUBRIC, ["local"])
    assert (rec.title, rec.recorded_by, str(rec.recorded_on), rec.versions) == \
        ("Local, scripted", "Tester", "2026-11-20", {"platbench": "0.1.0"})
    assert rec.scenario_steps_done == list(range(1, 11))
    assert [s.scenario_step for s in rec.steps] == [1, 1, 2, 4, 5, 6, 7, 8, 9, 10]
    assert [s.criterion for s in rec.steps][:3] == ["environment", "environment", "data_ingestion"]
    assert rec.steps[0].docs == ["https://pip.pypa.io/"] and rec.steps[0].minutes == 4.5
    assert rec.steps[2].outcome == "workaround" and rec.steps[2].notes == "had to read --help"
    assert rec.steps[7].outcome == "blocked"
    assert "Recorded." in out and "Ratings so far" in out
    # the record validates and scores through the CLI too; the blocked criterion is 0
    assert invoke(["scenario", "validate", "--root", str(root)], [])[0] == 0
    code, out, _ = invoke(["scenario", "score", "--root", str(root), "--json"], [])
    import json
    card = json.loads(out)[0]
    assert card["criteria"][3]["rating"] == 0 and card["criteria"][3]["condition"] == "blocked"
    assert card["criteria"][0]["rating"] == 3  # 11.5 min, no workaround, 3 steps
    # the second rubric from the same steps: the answers the recorder asked for count
    dx = {c["criterion"]: c for c in card["developer_experience"]["criteria"]}
    assert rec.steps[2].ml_knowledge == "some" and rec.steps[2].docs_answered == "partly"
    assert rec.steps[0].ml_knowledge == "none" and rec.steps[0].docs_answered == "yes"
    assert (dx["ml_expertise"]["rating"], dx["ml_expertise"]["rule"]) == (5, 1)  # one step needed some
    assert dx["documentation"]["condition"] == "blocked" and dx["documentation"]["rating"] == 1  # the 1–5 floor
    assert (dx["uploading_data"]["rating"], dx["uploading_data"]["rule"]) == (3, 3)  # 2 min, but a workaround
    # run again: everything is done, nothing is asked and nothing changes
    before = (root / "scenarios" / "local.yaml").read_bytes()
    code, out, _ = invoke(["scenario", "record", "local", "--root", str(root)], [])
    assert code == 0 and "All 10 scenario steps are recorded" in out
    assert (root / "scenarios" / "local.yaml").read_bytes() == before
    # --step N adds to a finished step
    code, out, err = invoke(["scenario", "record", "local", "--root", str(root), "--step", "3"],
                            ["record"] + action("1", "Pushed nothing", "n/a"))
    assert code == 0, err
    rec = load_record(root / "scenarios" / "local.yaml", RUBRIC, ["local"])
    assert [s.action for s in rec.steps if s.scenario_step == 3] == ["Pushed nothing"]


def test_stopwatch_measures_the_step(root, monkeypatch):
    ticks = iter([1000.0, 1000.0 + 150.0])  # started, then stopped 2.5 minutes later
    monkeypatch.setattr(recorder, "_now", lambda: next(ticks))
    answers = HEADER + ["record", "", "", "", "Installed it", "pip install -e .", "", "", "", "", "", "", "n"]
    code, out, err = invoke(["scenario", "record", "local", "--root", str(root)], answers)
    assert code == 1 and "Input ended" in err  # the script stops after step 1
    assert "Stopwatch running" in out
    rec = load_record(root / "scenarios" / "local.yaml", RUBRIC, ["local"])
    assert [(s.action, s.minutes) for s in rec.steps] == [("Installed it", 2.5)]
    assert rec.scenario_steps_done == [1]


def test_bad_answers_are_asked_again(root):
    answers = HEADER[:2] + ["yesterday", "2026-11-20", "not pairs", "-",
                            "record", "-3", "3", "", "Did it", "cmd", "nonsense", "", "maybe", "done", "lots", "", "",
                            "", "", "n"]
    code, out, err = invoke(["scenario", "record", "local", "--root", str(root)], answers)
    assert code == 1, err
    assert "Write the date as YYYY-MM-DD" in out and "tool=version" in out
    assert "Type a number of minutes" in out and "An answer is needed" in out
    assert out.count("Please select one of the available options") == 3
    rec = load_record(root / "scenarios" / "local.yaml", RUBRIC, ["local"])
    assert rec.versions == {} and [(s.minutes, s.criterion, s.outcome) for s in rec.steps] == [(3, "environment", "done")]


@pytest.mark.parametrize("cut", [4, 5, 12, 13, 14, 23, 30, 41])
def test_end_of_input_loses_nothing_and_a_second_call_resumes(root, tmp_path_factory, cut):
    # the same answers, uninterrupted, in another project: the reference result
    ref = tmp_path_factory.mktemp("ref")
    shutil.copy(root / "scoring.yaml", ref)
    shutil.copy(root / "Scenario.md", ref)
    assert invoke(["scenario", "record", "local", "--root", str(ref)], ALL)[0] == 0
    expected = (ref / "scenarios" / "local.yaml").read_text()

    code, out, err = invoke(["scenario", "record", "local", "--root", str(root)], ALL[:cut])
    assert code == 1
    assert "Input ended. Every answered step is saved" in err and "Traceback" not in err + out
    path = root / "scenarios" / "local.yaml"
    saved = load_record(path, RUBRIC, ["local"])  # whatever is there is a whole, valid record
    assert len(saved.steps) == _complete_actions(cut)

    # resume: the header is not asked again; an action cut half-way is asked again from its start
    rest = _resume_answers(cut)
    code, out, err = invoke(["scenario", "record", "local", "--root", str(root)], rest)
    assert code == 0, err + out
    assert "Resuming" in out
    assert path.read_text() == expected


def _complete_actions(cut: int) -> int:
    """How many actions were fully answered within the first `cut` answers of ALL."""
    done, pos = 0, len(HEADER)
    for step in STEPS:
        pos += 1  # record / skip
        for i in range(len(step[1:]) // A):
            if pos + A - 1 <= cut:  # the answers of an action are in; the last is "another?"
                done += 1
            pos += A
    return done


def _resume_answers(cut: int) -> list[str]:
    """The answers a person gives on resuming after `cut` answers: the rest of the walk, starting with
    the step they were in (a step with actions saved asks "another?" instead of "record/skip")."""
    if cut < len(HEADER):  # the header is saved only once complete
        return ALL
    if cut == len(HEADER):
        return ALL[cut:]
    pos = len(HEADER)
    for k, step in enumerate(STEPS):
        end = pos + len(step)
        if cut < end:
            later = [a for s in STEPS[k + 1:] for a in s]
            actions = [step[1 + A * i: 1 + A * (i + 1)] for i in range(len(step[1:]) // A)]
            saved = [i for i in range(len(actions)) if pos + 1 + A * i + A - 1 <= cut]
            if not saved:
                return step + later
            if len(saved) == len(actions):
                return ["n"] + later
            return ["y"] + [a for a in actions[len(saved):] for a in a] + later
        pos = end
    return []


def test_ctrl_c_part_way_then_resume(root):
    """A real process, a real SIGINT while it waits for an answer."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "100"}
    cmd = [sys.executable, "-m", "platforms", "scenario", "record", "local", "--root", str(root)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=root)
    first = HEADER + STEPS[0][:1 + A]  # header, "record", the first action and "y" (another)
    proc.stdin.write("".join(a + "\n" for a in first + ["2"]))  # … and the stopwatch of the second action
    proc.stdin.flush()
    path = root / "scenarios" / "local.yaml"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists() and "Installed platbench" in path.read_text():
            break
        time.sleep(0.05)
    time.sleep(0.3)  # let it reach the next prompt
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Interrupted. Every answered step is saved" in err and "Traceback" not in err
    rec = load_record(path, RUBRIC, ["local"])
    assert [s.action for s in rec.steps] == ["Installed platbench"] and rec.scenario_steps_done == []

    # resume in a new process with the rest of the answers
    rest = ["y"] + STEPS[0][1 + A:] + [a for s in STEPS[1:] for a in s]
    done = subprocess.run(cmd, input="".join(a + "\n" for a in rest), capture_output=True, text=True, env=env,
                          cwd=root, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    rec = load_record(path, RUBRIC, ["local"])
    assert len(rec.steps) == 10 and rec.scenario_steps_done == list(range(1, 11))


def test_record_rejects_unknown_platform_and_bad_inputs(root):
    code, _, err = invoke(["scenario", "record", "azure", "--root", str(root)], [])
    assert code == 2 and err == "platbench: error: unknown platform 'azure'; platbench knows local, sagemaker"
    (root / "scenarios").mkdir()
    (root / "scenarios" / "local.yaml").write_text("platform: local\ntitle: [\n")
    code, _, err = invoke(["scenario", "record", "local", "--root", str(root)], [])
    assert code == 2 and err.startswith("platbench: error: ") and "scenarios/local.yaml:3: (syntax)" in err
    code, _, err = invoke(["scenario", "record", "sagemaker", "--root", str(root), "--step", "11"], HEADER)
    assert code == 2 and "--step 11: Scenario.md has steps 1–10" in err
    assert not (root / "scenarios" / "sagemaker.yaml").exists()  # checked before asking anything


def test_recording_replaces_a_not_recorded_placeholder(root):
    (root / "scenarios").mkdir()
    (root / "scenarios" / "local.yaml").write_text("platform: local\nstatus: not recorded\n")
    code, out, err = invoke(["scenario", "record", "local", "--root", str(root)], ALL)
    assert code == 0, err + out[-2000:]
    assert "Resuming" not in out
    rec = load_record(root / "scenarios" / "local.yaml", RUBRIC, ["local"])
    assert rec.scenario_steps_done == list(range(1, 11)) and len(rec.steps) == 10
