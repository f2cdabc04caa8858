"""The record loader: every bad input is one UserError naming file, line and field; valid records
round-trip through the recorder's writer. Property-tested with random documents."""
from __future__ import annotations

import datetime as dt
import os
import re
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platforms.errors import UserError
from platforms.scorecard.loader import dump_record, load_record, load_rubric, parse_record
from platforms.scorecard.models import Record
from platforms.scorecard.source import Invalid, atomic_write_text, line_count

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("SCORECARD_FUZZ_EXAMPLES", "300"))  # raise it for a deeper fuzz
RUBRIC = load_rubric(REPO / "scoring.yaml")
PLATFORMS = ["local", "sagemaker", "vertex"]

GOOD = textwrap.dedent("""\
    platform: local
    title: Local, first run
    recorded_by: Ada
    recorded_on: 2026-11-20
    versions: {platbench: "0.1.0", python: "3.11.7"}
    steps:
      - scenario_step: 1
        criterion: environment
        action: Installed platbench
        how: pip install -e .
        minutes: 4.5
        outcome: done
        docs: [https://example.org/install]
      - scenario_step: 2
        criterion: data_ingestion
        action: Prepared the dataset
        how: platbench data prepare digits --out data/digits
        minutes: 1
        outcome: workaround
        notes: had to create data/ first
    overrides:
      - criterion: data_ingestion
        rating: 3
        reason: The workaround was a one-off mkdir.
    evidence:
      - runs/screenshot.png
      - {link: https://example.org/run/1, caption: the run page}
    """)


def parse(text: str, stem: str | None = "local") -> Record:
    return parse_record(text, RUBRIC, PLATFORMS, "scenarios/local.yaml", stem=stem)


def problems(text: str, stem: str | None = "local") -> list[str]:
    with pytest.raises(Invalid) as info:
        parse(text, stem)
    assert isinstance(info.value, UserError)
    return [str(p) for p in info.value.problems]


def test_good_record_loads():
    rec = parse(GOOD)
    assert rec.platform == "local"
    assert rec.recorded_on == dt.date(2026, 11, 20)
    assert [s.minutes for s in rec.steps] == [4.5, 1.0]
    assert rec.overrides[0].reason.startswith("The workaround")
    assert rec.evidence[0].link == "runs/screenshot.png" and rec.evidence[1].caption == "the run page"


@pytest.mark.parametrize("old,new,expected", [
    # malformed YAML
    ("title: Local, first run", "title: [Local, first run", r"^scenarios/local.yaml:\d+: \(syntax\): malformed YAML"),
    # unknown criterion
    ("criterion: data_ingestion\n    action", "criterion: data_ingest\n    action",
     r"^scenarios/local.yaml:15: steps\[1\]\.criterion: unknown criterion 'data_ingest'; scoring.yaml defines environment, "),
    # unknown platform
    ("platform: local", "platform: azure", r"^scenarios/local.yaml:1: platform: unknown platform 'azure'; platbench knows local, sagemaker, vertex$"),
    # negative minutes
    ("minutes: 4.5", "minutes: -4.5", r"^scenarios/local.yaml:11: steps\[0\]\.minutes: Input should be greater than or equal to 0$"),
    # minutes not a number / not finite / a boolean
    ("minutes: 4.5", "minutes: four", r"^scenarios/local.yaml:11: steps\[0\]\.minutes: Input should be a valid number"),
    ("minutes: 4.5", "minutes: .inf", r"^scenarios/local.yaml:11: steps\[0\]\.minutes: Input should be a finite number$"),
    ("minutes: 4.5", "minutes: yes", r"^scenarios/local.yaml:11: steps\[0\]\.minutes: Input should be a valid number"),
    # a rating outside the scale
    ("rating: 3", "rating: 4", r"^scenarios/local.yaml:23: overrides\[0\]\.rating: rating 4 is outside the scale 0–3$"),
    ("rating: 3", "rating: 2.5", r"^scenarios/local.yaml:23: overrides\[0\]\.rating: Input should be a valid integer"),
    # an override without a reason / with an empty one
    ("    reason: The workaround was a one-off mkdir.\n", "",
     r"^scenarios/local.yaml:22: overrides\[0\]\.reason: required field is missing$"),
    ("reason: The workaround was a one-off mkdir.", "reason: '  '",
     r"^scenarios/local.yaml:24: overrides\[0\]\.reason: must not be empty$"),
    # outcome
    ("outcome: done", "outcome: finished", r"^scenarios/local.yaml:12: steps\[0\]\.outcome: Input should be 'done', 'workaround' or 'blocked'$"),
    # a typo'd field, a duplicate key, a missing field
    ("how: pip install -e .", "how: pip install -e .\n    minuts: 3", r"^scenarios/local.yaml:11: steps\[0\]\.minuts: unknown field \(a typo\?\)$"),
    ("recorded_by: Ada", "recorded_by: Ada\nrecorded_by: Bob", r"^scenarios/local.yaml:4: recorded_by: duplicate key \(first written at line 3\)$"),
    ("recorded_by: Ada\n", "", r"^scenarios/local.yaml:1: recorded_by: required field is missing$"),
    # version numbers YAML would read as floats
    ('python: "3.11.7"', "python: 3.10", r"^scenarios/local.yaml:5: versions: python: quote version numbers"),
    # dates
    ("recorded_on: 2026-11-20", "recorded_on: 2026-13-45", r"^scenarios/local.yaml:4: recorded_on: bad timestamp value"),
    ("recorded_on: 2026-11-20", "recorded_on: 2999-01-01", r"^scenarios/local.yaml:4: recorded_on: 2999-01-01 is in the future$"),
    # docs must be URLs/paths
    ("docs: [https://example.org/install]", "docs: [the install page]", r"^scenarios/local.yaml:13: steps\[0\]\.docs\[0\]: must be one URL or path, without spaces$"),
    # an override for a criterion nothing was recorded for (it stays "not rated")
    ("- criterion: data_ingestion\n    rating", "- criterion: sharing_engineers\n    rating",
     r"^scenarios/local.yaml:22: overrides\[0\]\.criterion: no steps are recorded for 'sharing_engineers'"),
    # YAML oddities: non-text keys, tags
    ("title: Local, first run", "title: Local, first run\n1: x", r"^scenarios/local.yaml:3: 1: a key must be text, not int \(quote it\)$"),
    ("title: Local, first run", "title: !!binary aGVsbG8=", r"^scenarios/local.yaml:2: title: unsupported YAML tag tag:yaml.org,2002:binary$"),
    ("title: Local, first run", "title: !!python/object:os.system {}", r"^scenarios/local.yaml:2: title: unsupported YAML tag"),
])
def test_bad_input_names_file_line_and_field(old, new, expected):
    assert old in GOOD
    found = problems(GOOD.replace(old, new, 1))
    assert re.search(expected, found[0]), found


def test_every_problem_is_reported():
    text = GOOD.replace("minutes: 4.5", "minutes: -1").replace("outcome: workaround", "outcome: meh") \
               .replace("rating: 3", "rating: 9")
    found = problems(text)
    assert [p.split(":")[1] for p in found] == ["11", "19", "23"], found
    with pytest.raises(UserError, match=r"\(and 2 more problems; `platbench scenario validate` lists them all\)"):
        parse(text)


def test_file_name_must_match_platform():
    assert problems(GOOD, stem="vertex") == [
        "scenarios/local.yaml:1: platform: platform 'local' does not match the file name; records live in scenarios/<platform>.yaml"]


@pytest.mark.parametrize("text,expected", [
    ("", r":1: \(document\): the file is empty"),
    ("# only a comment\n", r":1: \(document\): the file is empty"),
    ("- a\n- b\n", r":1: \(document\): a record is a mapping of fields"),
    ("just text", r":1: \(document\): a record is a mapping of fields"),
    ("a: 1\n---\nb: 2\n", r":2: \(syntax\): malformed YAML: but found another document"),
    ("a: &x [*x]\n", r":1: a\[0\]: recursive alias"),
    ("a: b\n\tc: d\n", r":2: \(syntax\): malformed YAML"),
    ("a: b\n c\x00: d\n", r":2: \(syntax\): malformed YAML: character U\+0000 is not allowed"),
    ("a: " + "[" * 5000 + "]" * 5000, r":1: \(syntax\): document is nested too deeply"),
    ("a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
     "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
     r"\(document\): more than 200000 values"),
])
def test_yaml_oddities(text, expected):
    found = problems(text)
    assert re.search(expected, found[0]), found


def test_merge_keys_work_and_explicit_keys_win():
    text = GOOD.replace("overrides:", "  - {<<: {criterion: environment, outcome: done, minutes: 1}, action: Looked, how: ls, minutes: 2}\noverrides:")
    rec = parse(text)
    assert (rec.steps[-1].criterion, rec.steps[-1].minutes, rec.steps[-1].outcome) == ("environment", 2, "done")
    found = problems(GOOD.replace("overrides:", "  - {<<: 3, action: Looked}\noverrides:"))
    assert re.search(r":21: steps\[2\]: bad merge key", found[0]), found


def test_unreadable_files(tmp_path):
    with pytest.raises(UserError, match=r"nope.yaml:1: \(file\): no such file"):
        load_record(tmp_path / "nope.yaml", RUBRIC, PLATFORMS)
    with pytest.raises(UserError, match=r":1: \(file\): is a directory"):
        load_record(tmp_path, RUBRIC, PLATFORMS)
    bad = tmp_path / "local.yaml"
    bad.write_bytes(b"platform: local\ntitle: caf\xe9\n")
    with pytest.raises(UserError, match=r"local.yaml:2: \(file\): not UTF-8 text"):
        load_record(bad, RUBRIC, PLATFORMS)


def test_dump_round_trips_and_is_stable():
    rec = parse(GOOD)
    text = dump_record(rec)
    again = parse(text)
    assert again == rec
    assert dump_record(again) == text
    assert "scenario_steps_done" not in text  # empty optional fields are left out


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "local.yaml"
    target.write_text("old\n")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("platforms.scorecard.source.os.replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["local.yaml"]  # no temp file left behind


# --------------------------------------------------------------------------------- property tests
LINE_MSG = re.compile(r"^scenarios/local\.yaml:(\d+): \S.*: \S")


def _assert_valid_or_user_error(text: str) -> None:
    try:
        rec = parse(text)
    except UserError as exc:  # Invalid is a UserError
        msg = str(exc)
        m = LINE_MSG.match(msg)
        assert m, msg
        assert "\n" not in msg
        assert 1 <= int(m.group(1)) <= line_count(text), msg
        return
    assert isinstance(rec, Record)
    assert parse(dump_record(rec)) == rec


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True), st.text(max_size=20),
    st.sampled_from(["local", "environment", "done", "blocked", "workaround", "2026-01-02", "-3", "", " "]),
    st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2100, 1, 1)),
)
keys = st.one_of(st.sampled_from(["platform", "title", "recorded_by", "recorded_on", "versions", "steps",
                                  "overrides", "evidence", "scenario_steps_done", "criterion", "action", "how",
                                  "minutes", "outcome", "docs", "notes", "rating", "reason", "scenario_step",
                                  "link", "caption"]),
                 st.text(max_size=8))
documents = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(keys, inner, max_size=6)), max_leaves=25)

nonblank = st.text(min_size=1, max_size=30).filter(lambda s: s.strip())
good_step = st.fixed_dictionaries(
    {"criterion": st.sampled_from(RUBRIC.ids), "action": nonblank,
     "how": nonblank, "minutes": st.floats(0, 1e4, allow_nan=False),
     "outcome": st.sampled_from(["done", "workaround", "blocked"])},
    optional={"scenario_step": st.integers(1, 10), "docs": st.lists(st.from_regex(r"\A[a-z:/.]{1,20}\Z"), max_size=3),
              "notes": nonblank})
good_record = st.fixed_dictionaries(
    {"platform": st.just("local"), "title": nonblank, "recorded_by": nonblank,
     "recorded_on": st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2026, 1, 1)),
     "steps": st.lists(good_step, max_size=6)},
    optional={"versions": st.dictionaries(st.text(min_size=1, max_size=8), nonblank, max_size=3),
              "scenario_steps_done": st.lists(st.integers(1, 10), unique=True, max_size=10)})


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_random_text_is_a_record_or_a_user_error(text):
    _assert_valid_or_user_error(text)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_documents_are_a_record_or_a_user_error(doc):
    _assert_valid_or_user_error(yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(good_record, st.data())
def test_mutated_records_are_a_record_or_a_user_error(doc, data):
    """Start from a valid record and break one field at any depth."""
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    _assert_valid_or_user_error(text)
    target = doc
    path = []
    while isinstance(target, (dict, list)) and target and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(target) if isinstance(target, dict) else range(len(target))))
        path.append(key)
        if not isinstance(target[key], (dict, list)):
            break
        target = target[key]
    if path:
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        parent[path[-1]] = data.draw(documents)
    else:
        doc[data.draw(keys)] = data.draw(documents)
    _assert_valid_or_user_error(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(good_record)
def test_valid_records_load_and_round_trip(doc):
    rec = parse(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    assert len(rec.steps) == len(doc["steps"])
    assert parse(dump_record(rec)) == rec


def test_a_bad_date_hides_no_other_problem():
    """Issue 28: a record whose recorded_on is no date (2026-13-45) still has every other problem reported."""
    text = GOOD.replace("recorded_on: 2026-11-20", "recorded_on: 2026-13-45").replace("minutes: 4.5", "minutes: -1")
    found = problems(text)
    assert [p.split(":")[1] for p in found] == ["4", "11"], found
    assert "recorded_on: bad timestamp value '2026-13-45'" in found[0]


def test_step_numbers_are_checked_against_scenario_md():
    """Issue 28: a step Scenario.md does not have (scenario_step: 99 of 10) is a problem, beside the others."""
    from platforms.scorecard.loader import check_record
    from platforms.scorecard.source import parse_yaml

    text = GOOD.replace("scenario_step: 2", "scenario_step: 99").replace("minutes: 4.5", "minutes: -1")
    data, pos = parse_yaml(text, "scenarios/local.yaml")
    with pytest.raises(Invalid) as info:
        check_record(data, pos, RUBRIC, PLATFORMS, "local", scenario_steps=list(range(1, 11)))
    found = [str(p) for p in info.value.problems]
    assert any(":14: steps[1].scenario_step: no step 99: Scenario.md has steps 1–10" in p for p in found), found
    assert any("steps[0].minutes" in p for p in found), found
    assert check_record(*parse_yaml(GOOD, "scenarios/local.yaml"), RUBRIC, PLATFORMS, "local",
                        scenario_steps=list(range(1, 11))).platform == "local"
