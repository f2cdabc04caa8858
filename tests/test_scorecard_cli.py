"""`platbench scenario validate | score | table | render` end to end through the CLI: every problem
with file, line and field; ratings with the rule that fired; the comparison table with a row per
platform; Scenario.md regenerated, idempotent, and nothing written when an input is bad."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from platforms.cli import app
from platforms.errors import UserError
from platforms.scorecard import loader

REPO = Path(__file__).resolve().parents[1]

LOCAL = textwrap.dedent("""\
    platform: local
    title: Local, first run
    recorded_by: Ada
    recorded_on: 2026-11-20
    steps:
      - {scenario_step: 1, criterion: environment, action: Installed, how: pip install -e ., minutes: 5, outcome: done}
      - {scenario_step: 2, criterion: data_ingestion, action: Prepared data, how: "platbench data prepare digits | tee x",
         minutes: 12, outcome: workaround, notes: needed a flag}
      - {scenario_step: 5, criterion: remote_debugging, action: Read the log, how: tail -f log, minutes: 2, outcome: done,
         docs: [https://example.org/logs]}
    overrides:
      - {criterion: remote_debugging, rating: 2, reason: Logs are only on this machine.}
    """)
SAGEMAKER = textwrap.dedent("""\
    platform: sagemaker
    title: SageMaker (test fixture, not a real record)
    recorded_by: Test
    recorded_on: 2026-11-21
    steps:
      - {criterion: environment, action: Tried to get quota, how: Console > Service Quotas, minutes: 30, outcome: blocked}
    """)


@pytest.fixture
def root(tmp_path, monkeypatch):
    shutil.copy(REPO / "scoring.yaml", tmp_path / "scoring.yaml")
    shutil.copy(REPO / "Scenario.md", tmp_path / "Scenario.md")
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "local.yaml").write_text(LOCAL)
    monkeypatch.setattr(loader, "registered_platforms", lambda: ["local", "sagemaker", "vertex"])
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(*args):
    """Like `platbench …`: a UserError becomes `platbench: error: …` and exit code 2."""
    result = CliRunner().invoke(app, list(args))
    if isinstance(result.exception, UserError):
        return 2, result.stdout, (result.stderr + f"platbench: error: {result.exception}\n")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


# ------------------------------------------------------------------------------------------ validate
def test_validate_ok(root):
    code, out, err = cli("scenario", "validate")
    assert code == 0, err
    assert out.splitlines() == ["ok   scoring.yaml (6 criteria; developer_experience: 5 criteria)", "ok   Scenario.md (10 scenario steps)",
                                "ok   scenarios/local.yaml (3 steps)"]


def test_validate_lists_every_problem_with_file_line_and_field(root):
    (root / "scenarios" / "local.yaml").write_text(LOCAL.replace("minutes: 5", "minutes: -5")
                                                   .replace("rating: 2", "rating: 7"))
    (root / "scenarios" / "vertex.yaml").write_text("platform: vertex\ntitle: x\nrecorded_by: y\nrecorded_on: 2026-01-01\n"
                                                   "steps:\n  - {criterion: nope, action: a, how: h, minutes: 1, outcome: done}\n"
                                                   "overrides:\n  - {criterion: nope, rating: 1}\n")
    code, out, err = cli("scenario", "validate")
    assert code == 2
    assert err.splitlines() == [
        "scenarios/local.yaml:6: steps[0].minutes: Input should be greater than or equal to 0",
        "scenarios/local.yaml:12: overrides[0].rating: rating 7 is outside the scale 0–3",
        "scenarios/vertex.yaml:6: steps[0].criterion: unknown criterion 'nope'; scoring.yaml defines environment, "
        "data_ingestion, remote_debugging, sharing_engineers, sharing_non_engineers, sharing_data_env",
        "scenarios/vertex.yaml:8: overrides[0].criterion: unknown criterion 'nope'; scoring.yaml defines environment, "
        "data_ingestion, remote_debugging, sharing_engineers, sharing_non_engineers, sharing_data_env",
        "scenarios/vertex.yaml:8: overrides[0].reason: required field is missing",
        "platbench: error: 5 problems in 2 files",
    ]
    # only the named files
    code, out, err = cli("scenario", "validate", "scenarios/vertex.yaml")
    assert code == 2 and "local.yaml" not in err and err.endswith("platbench: error: 3 problems in 1 file\n")


def test_validate_with_a_broken_rubric_still_checks_record_shapes(root):
    (root / "scoring.yaml").write_text((REPO / "scoring.yaml").read_text().replace(
        "      - rating: 1\n        why: It ran in the end", '      - rating: 1\n        when: {minutes: "> 90"}\n        why: It ran in the end'))
    code, out, err = cli("scenario", "validate")
    assert code == 2
    assert "scoring.yaml:" in err and "leaves cases unrated: its last rule must be a catch-all" in err
    assert "ok   scenarios/local.yaml (3 steps) (shape only: scoring.yaml is invalid)" in out
    # every other command refuses to score with it
    for command in (["score"], ["table"], ["render"]):
        code, _, err = cli("scenario", *command)
        assert code == 2 and "leaves cases unrated" in err, command


def test_validate_reports_scenario_md_problems(root):
    md = root / "Scenario.md"
    md.write_text(md.read_text().replace("Criterion: `data_ingestion`", "Criterion: `data`"))
    code, _, err = cli("scenario", "validate")
    assert code == 2
    line = next(i for i, ln in enumerate(md.read_text().splitlines(), 1) if ln == "Criterion: `data`")
    assert f"Scenario.md:{line}: scenario step 2: unknown criterion 'data'" in err


def test_real_entry_point_exit_code_and_no_traceback(tmp_path):
    """Through `python -m platforms` (platforms.cli.main): one line per problem, exit 2, no traceback."""
    shutil.copy(REPO / "scoring.yaml", tmp_path)
    shutil.copy(REPO / "Scenario.md", tmp_path)
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "local.yaml").write_text(LOCAL.replace("outcome: done}", "outcome: finished}", 1))
    for command in (["validate"], ["score"], ["table"], ["render"]):
        proc = subprocess.run([sys.executable, "-m", "platforms", "scenario", *command, "--root", str(tmp_path)],
                              capture_output=True, text=True, cwd=tmp_path, timeout=120,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
        assert proc.returncode == 2, (command, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert "scenarios/local.yaml:6: steps[0].outcome: Input should be 'done', 'workaround' or 'blocked'" in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("platbench: error: ")


# --------------------------------------------------------------------------------------------- score
def test_score_names_the_rule_and_marks_overrides(root):
    code, out, err = cli("scenario", "score")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "local: Local, first run (scenarios/local.yaml)"
    env = next(ln for ln in lines if ln.strip().startswith("Setting up an environment"))
    assert env.split()[4:] == ["3", "rule", "1:", "minutes", "<=", "30,", "workarounds", "==", "0,", "steps", "<=", "8",
                               "[1", "step,", "5", "min]"]
    data = next(ln for ln in lines if ln.strip().startswith("Data ingestion"))
    assert "2" in data.split() and "rule 2: minutes <= 30, workarounds <= 1" in data and "1 workaround" in data
    assert "  OVERRIDE to 2: Logs are only on this machine." in out
    assert any("Sharing with engineers" in ln and "not rated" in ln and "no steps" in ln for ln in lines)
    totals = [ln.split() for ln in lines if ln.split()[:1] == ["Total"]]
    assert totals[0] == ["Total", "7/9", "(3", "not", "rated)"]
    # then the developer-experience rubric from the same steps: the fixture's steps predate its questions
    assert "  Developer experience (1–5):" in lines
    ml = next(ln for ln in lines if ln.strip().startswith("Level of ML expertise required"))
    assert "not rated" in ml and "unanswered" in ml
    upload = next(ln for ln in lines if ln.strip().startswith("Uploading and annotating data"))
    assert upload.split()[4:7] == ["3", "rule", "3:"]  # 12 min, one workaround
    assert totals[1] == ["Total", "7/10", "(3", "not", "rated)"]  # upload 3 + first model 4 (17 min, 1 workaround)

    code, out, _ = cli("scenario", "score", "--json")
    [card] = json.loads(out)
    crit = {c["criterion"]: c for c in card["criteria"]}
    assert card["file"] == "scenarios/local.yaml"
    assert (crit["environment"]["rating"], crit["environment"]["rule"]) == (3, 1)
    assert (crit["remote_debugging"]["rating"], crit["remote_debugging"]["computed"]) == (2, 3)
    assert crit["remote_debugging"]["override"] == {"rating": 2, "reason": "Logs are only on this machine."}
    assert crit["sharing_engineers"] | {"rating": None, "rated": False, "rule": None} == crit["sharing_engineers"]
    assert card["total"] == {"points": 7, "out_of": 9, "rated": 3, "complete": False, "overridden": ["remote_debugging"],
                             "not_rated": ["sharing_engineers", "sharing_non_engineers", "sharing_data_env"]}


def test_score_without_records(root):
    (root / "scenarios" / "local.yaml").unlink()
    code, _, err = cli("scenario", "score")
    assert code == 2 and "no records to score" in err


# --------------------------------------------------------------------------------------------- table
def test_table_has_a_row_per_platform_and_a_total(root):
    (root / "scenarios" / "sagemaker.yaml").write_text(SAGEMAKER)
    code, out, err = cli("scenario", "table", "--rubric", "usability")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == ("| Platform | Status | Source | Environment | Data | Debugging | Share (eng.) | Share (non-eng.) | "
                        "Share data & env. | Total |")
    assert lines[2] == ("| **local** | — | recorded: scenarios/local.yaml | 3 | 2 | 2 (override; rubric: 3) | not rated | "
                        "not rated | not rated | 7/9 (3 not rated) |")
    assert lines[3] == ("| **sagemaker** | — | recorded: scenarios/sagemaker.yaml | 0 | not rated | not rated | not rated | "
                        "not rated | not rated | 0/3 (5 not rated) |")
    assert lines[4] == ("| **vertex** | — | not recorded | not recorded | not recorded | not recorded | not recorded | "
                        "not recorded | not recorded | — |")
    assert "count neither as 0 nor at all" in out
    assert ("- **local, Remote debugging**: override to 2 (the rubric gives 3, rule 1: minutes <= 20, workarounds == 0). "
            "Reason: Logs are only on this machine.") in out

    code, out, err = cli("scenario", "table", "--format", "json", "--rubric", "usability")
    doc = json.loads(out)
    assert [p["platform"] for p in doc["platforms"]] == ["local", "sagemaker", "vertex"]
    local, sagemaker, vertex = doc["platforms"]
    assert vertex == {"platform": "vertex", "recorded": False, "record": None, "criteria": None, "total": None,
                      "status": None, "also_known_as": []}
    assert doc["published"] == []  # this project keeps no published studies file
    assert local["criteria"]["remote_debugging"]["override"]["reason"] == "Logs are only on this machine."
    assert local["total"] == {"points": 7, "out_of": 9, "rated": 3, "complete": False, "overridden": ["remote_debugging"],
                              "not_rated": ["sharing_engineers", "sharing_non_engineers", "sharing_data_env"]}
    assert sagemaker["criteria"]["environment"]["condition"] == "blocked"
    assert [c["id"] for c in doc["criteria"]] == ["environment", "data_ingestion", "remote_debugging",
                                                 "sharing_engineers", "sharing_non_engineers", "sharing_data_env"]


def test_table_output_file_is_written_only_when_inputs_are_good(root):
    code, out, _ = cli("scenario", "table", "--format", "json", "--output", "table.json")
    both = json.loads((root / "table.json").read_text())
    assert code == 0 and both["usability"]["platforms"][0]["recorded"]
    assert both["developer_experience"]["platforms"][0]["criteria"]["uploading_data"]["rating"] == 3
    (root / "scenarios" / "local.yaml").write_text(LOCAL + "surprise: 1\n")
    code, _, err = cli("scenario", "table", "--output", "table.md")
    assert code == 2 and "scenarios/local.yaml:13: surprise: unknown field" in err
    assert not (root / "table.md").exists()


def test_table_rubric_option_and_bad_values(root):
    code, out, _ = cli("scenario", "table", "--rubric", "developer_experience")
    assert code == 0 and out.splitlines()[0].startswith("| Platform | Status | Source | Upload data | ML expertise |")
    code, out, _ = cli("scenario", "table")  # both, each under its heading
    assert code == 0 and "## Usability (0–3)" in out and "## Developer experience (1–5)" in out
    code, _, err = cli("scenario", "table", "--rubric", "fun")
    assert code == 2 and "Invalid value for '--rubric'" in err
    (root / "scoring.yaml").write_text((REPO / "scoring.yaml").read_text().split("\ndeveloper_experience:")[0] + "\n")
    code, _, err = cli("scenario", "table", "--rubric", "developer_experience")
    assert code == 2 and err.endswith("platbench: error: scoring.yaml has no developer_experience rubric\n")
    code, out, _ = cli("scenario", "table")  # both: the one there is
    assert code == 0 and out.startswith("| Platform |")


def test_record_file_name_and_duplicates(root):
    (root / "scenarios" / "vertex.yaml").write_text(LOCAL)
    code, _, err = cli("scenario", "table")
    assert code == 2 and "scenarios/vertex.yaml:1: platform: platform 'local' does not match the file name" in err


# -------------------------------------------------------------------------------------------- render
def test_render_writes_the_generated_part_and_is_idempotent(root):
    md = root / "Scenario.md"
    head = md.read_text().split("<!-- platbench:generated:begin")[0]
    code, out, err = cli("scenario", "render", "--check")
    assert code == 1 and "out of date" in err
    code, out, _ = cli("scenario", "render")
    assert code == 0 and out == "updated Scenario.md\n"
    text = md.read_text()
    assert text.startswith(head)  # the hand-written part is untouched
    assert "<!-- platbench:record local (from scenarios/local.yaml) -->" in text
    assert "### local\n\n**Local, first run**" in text
    assert "| **local** | — | recorded: scenarios/local.yaml | 3 | 2 | 2 (override; rubric: 3) |" in text
    assert "### Developer experience (1–5)" in text
    assert "**Override:** Logs are only on this machine." in text
    assert "#### Step 2. Upload the dataset" in text
    assert "  - How: `platbench data prepare digits | tee x`" in text
    assert "#### Step 3. Upload the code / image\n\n_Not recorded._" in text
    assert "  - Docs: <https://example.org/logs>" in text
    assert "vertex" not in text.split("<!-- platbench:generated:begin")[1]  # only recorded platforms
    code, out, _ = cli("scenario", "render")
    assert code == 0 and out == "Scenario.md is up to date\n" and md.read_text() == text
    assert cli("scenario", "render", "--check")[0] == 0


def test_render_check_writes_nothing_and_bad_input_writes_nothing(root):
    md = root / "Scenario.md"
    before = md.read_bytes()
    assert cli("scenario", "render", "--check")[0] == 1
    assert md.read_bytes() == before
    (root / "scenarios" / "local.yaml").write_text(LOCAL.replace("criterion: environment", "criterion: env"))
    code, _, err = cli("scenario", "render")
    assert code == 2 and "scenarios/local.yaml:6: steps[0].criterion: unknown criterion 'env'" in err
    assert md.read_bytes() == before


def test_render_markers(root):
    md = root / "Scenario.md"
    hand = md.read_text().split("<!-- platbench:generated:begin")[0]
    md.write_text(hand)  # no markers yet: the generated part is appended
    assert cli("scenario", "render")[0] == 0
    assert md.read_text().startswith(hand) and md.read_text().rstrip().endswith("<!-- platbench:generated:end -->")
    md.write_text(hand + "<!-- platbench:generated:begin -->\nstale\n")
    code, _, err = cli("scenario", "render")
    n = hand.count("\n") + 1
    assert code == 2 and f"Scenario.md:{n}: generated section: begin marker without" in err
    md.write_text(hand + "<!-- platbench:generated:end -->\n<!-- platbench:generated:begin -->\n")
    code, _, err = cli("scenario", "render")
    assert code == 2 and f"Scenario.md:{n}: generated section: the end marker comes before the begin marker" in err


def test_render_keeps_odd_text_readable(root):
    text = LOCAL + "evidence:\n  - {link: https://example.org/shot.png, caption: the job page}\n"
    text = text.replace("steps:\n", "steps:\n  - criterion: environment\n    action: Built `it`\n    how: |\n"
                                   "      docker build -t x .\n      echo ```done```\n    minutes: 1\n    outcome: done\n", 1)
    (root / "scenarios" / "local.yaml").write_text(text)
    assert cli("scenario", "render")[0] == 0
    text = (root / "Scenario.md").read_text()
    assert "- **Built `it`** (environment; done; 1 min)\n  - How:\n\n    ````\n    docker build -t x .\n" \
           "    echo ```done```\n    ````" in text
    assert "#### Other steps" in text
    assert "#### Evidence\n\n- <https://example.org/shot.png>: the job page" in text
    assert cli("scenario", "render", "--check")[0] == 0
