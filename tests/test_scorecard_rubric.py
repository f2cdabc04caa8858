"""The rubric: scoring.yaml's shape, the fixed gates (no steps → not rated, blocked → 0), first-match
rules, and the rejection of rubrics whose rules leave a case uncovered or can never fire."""
from __future__ import annotations

import copy
import os
import re
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platforms.errors import UserError
from platforms.scorecard.loader import load_rubric, parse_record
from platforms.scorecard.rubric import RULE_FIELDS, Evidence, check_rubric, evaluate
from platforms.scorecard.scoring import score
from platforms.scorecard.source import Invalid, parse_yaml

REPO = Path(__file__).resolve().parents[1]
RUBRIC_TEXT = (REPO / "scoring.yaml").read_text()
RUBRIC = load_rubric(REPO / "scoring.yaml")
RUBRIC_DOC = yaml.safe_load(RUBRIC_TEXT)
EXAMPLES = int(os.environ.get("SCORECARD_FUZZ_EXAMPLES", "300"))

SIX = ["environment", "data_ingestion", "remote_debugging", "sharing_engineers", "sharing_non_engineers",
       "sharing_data_env"]


def rubric_problems(text: str) -> list[str]:
    data, pos = parse_yaml(text, "scoring.yaml")
    with pytest.raises(Invalid) as info:
        check_rubric(data, pos)
    assert isinstance(info.value, UserError)
    return [str(p) for p in info.value.problems]


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    idx = -1
    for _ in range(occurrence):
        idx = text.index(needle, idx + 1)
    return text.count("\n", 0, idx) + 1


def test_repo_rubric_has_the_six_criteria_with_titles_and_rules():
    assert RUBRIC.ids == SIX
    assert (RUBRIC.scale.min, RUBRIC.scale.max) == (0, 3)
    assert sorted(lv.rating for lv in RUBRIC.scale.levels) == [0, 1, 2, 3]
    for crit in RUBRIC.criteria:
        assert crit.title and crit.covers
        assert all(rule.why for rule in crit.rules)
        assert not crit.rules[-1].when, f"{crit.id}: the last rule is the catch-all"


def test_gates_come_before_rules():
    for cid in SIX:
        assert evaluate(RUBRIC, cid, Evidence()).rating is None  # nothing recorded → not rated
        blocked = Evidence(minutes=1, steps=2, done=1, blocked=1)
        out = evaluate(RUBRIC, cid, blocked)
        assert (out.rating, out.rule, out.condition) == (0, None, "blocked")


def test_first_matching_rule_wins_and_is_named():
    out = evaluate(RUBRIC, "environment", Evidence(minutes=20, steps=4, done=4))
    assert (out.rating, out.rule, out.condition) == (3, 1, "minutes <= 30, workarounds == 0, steps <= 8")
    out = evaluate(RUBRIC, "environment", Evidence(minutes=20, steps=4, done=3, workarounds=1))
    assert (out.rating, out.rule) == (2, 2)
    out = evaluate(RUBRIC, "environment", Evidence(minutes=200, steps=4, done=4))
    assert (out.rating, out.rule, out.condition) == (1, 3, "otherwise")


def test_the_rubric_is_data_edit_it_and_scores_follow():
    record = parse_record(textwrap.dedent("""\
        platform: local
        title: t
        recorded_by: me
        recorded_on: 2026-01-01
        steps:
          - {criterion: data_ingestion, action: a, how: h, minutes: 20, outcome: done}
        """), RUBRIC, ["local"])
    assert score(RUBRIC, record).scores[1].rating == 2
    edited = RUBRIC_TEXT.replace('when: {minutes: "<= 10", workarounds: "== 0", steps: "<= 3"}',
                                 'when: {minutes: "<= 25", workarounds: "== 0", steps: "<= 3"}')
    assert edited != RUBRIC_TEXT
    rubric = check_rubric(*parse_yaml(edited, "scoring.yaml"))
    assert score(rubric, record).scores[1].rating == 3


def edit(old: str, new: str, count: int = 1) -> str:
    assert old in RUBRIC_TEXT, old
    return RUBRIC_TEXT.replace(old, new, count)


LAST_ENV_RULE = "      - rating: 1\n        why: It ran in the end"


@pytest.mark.parametrize("text,line,expected", [
    # a rule set that leaves cases uncovered: the last rule is not a catch-all
    (edit(LAST_ENV_RULE, '      - rating: 1\n        when: {minutes: "> 90"}\n        why: It ran in the end'),
     line_of(RUBRIC_TEXT, LAST_ENV_RULE),
     r"criteria\[0\]\.rules\[2\]: criterion 'environment' leaves cases unrated: its last rule must be a catch-all"),
    # a rule after the catch-all can never fire
    (edit(LAST_ENV_RULE, LAST_ENV_RULE.replace("It ran", "x\n      - rating: 0\n        why: It ran")),
     line_of(RUBRIC_TEXT, LAST_ENV_RULE) + 2,
     r"criteria\[0\]\.rules\[3\]: rule 4 can never fire: rule 3 above it matches every case it matches"),
    # a rule hidden behind an earlier, wider one
    (edit('when: {minutes: "<= 90", workarounds: "<= 1"}', 'when: {minutes: "<= 20", workarounds: "== 0", steps: "< 5"}'),
     line_of(RUBRIC_TEXT, 'when: {minutes: "<= 90", workarounds: "<= 1"}') - 1,
     r"criteria\[0\]\.rules\[1\]: rule 2 can never fire: rule 1 above it"),
    # a rule no evidence satisfies (steps are at least 1; done + workarounds == steps)
    (edit('workarounds: "== 0", steps: "<= 8"', 'workarounds: "== 0", steps: "< 1"'),
     line_of(RUBRIC_TEXT, 'workarounds: "== 0", steps: "<= 8"'),
     r"criteria\[0\]\.rules\[0\]\.when: rule 1 can never fire: no recorded steps satisfy"),
    (edit('when: {minutes: "<= 90", workarounds: "<= 1"}', 'when: {steps: "<= 1", workarounds: ">= 2"}'),
     line_of(RUBRIC_TEXT, 'when: {minutes: "<= 90", workarounds: "<= 1"}'),
     r"criteria\[0\]\.rules\[1\]\.when: rule 2 can never fire"),
    # a rating outside the scale
    (edit("      - rating: 2\n", "      - rating: 5\n"), line_of(RUBRIC_TEXT, "      - rating: 2\n"),
     r"criteria\[0\]\.rules\[1\]\.rating: rating 5 is outside the scale 0–3"),
    # evidence that does not exist, `blocked` (a fixed gate), a bare number, a bad comparison
    (edit('workarounds: "<= 1"}', 'workaround: "<= 1"}'), line_of(RUBRIC_TEXT, 'workarounds: "<= 1"}'),
     r"criteria\[0\]\.rules\[1\]\.when\.workaround: unknown evidence 'workaround'; rules can test minutes, steps"),
    (edit('workarounds: "<= 1"}', 'blocked: "== 0"}'), line_of(RUBRIC_TEXT, 'workarounds: "<= 1"}'),
     r"when\.blocked: rules cannot test `blocked`: a criterion with a blocked step is always rated 0"),
    (edit('minutes: "<= 90"', "minutes: 90"), line_of(RUBRIC_TEXT, 'minutes: "<= 90"'),
     r"when\.minutes: 90 is not a comparison; write e.g. '<= 30' in quotes"),
    (edit('minutes: "<= 90"', 'minutes: "at most 90"'), line_of(RUBRIC_TEXT, 'minutes: "<= 90"'),
     r"when\.minutes: 'at most 90' is not a comparison"),
    # every rule needs its why
    (edit("        why: It ran in the end, but took longer than 90 minutes or needed several workarounds.\n", ""),
     line_of(RUBRIC_TEXT, LAST_ENV_RULE), r"criteria\[0\]\.rules\[2\]\.why: required field is missing"),
    # criteria ids: unique, well-formed
    (edit("  - id: data_ingestion", "  - id: environment"), line_of(RUBRIC_TEXT, "  - id: data_ingestion"),
     r"criteria\[1\]\.id: criterion 'environment' is defined twice"),
    (edit("  - id: data_ingestion", "  - id: Data Ingestion"), line_of(RUBRIC_TEXT, "  - id: data_ingestion"),
     r"criteria\[1\]\.id: must be lowercase letters"),
    # the scale
    (edit("    - rating: 2\n      name: workable", "    - rating: 1\n      name: workable"),
     line_of(RUBRIC_TEXT, "    - rating: 2\n      name: workable"), r"scale\.levels\[2\]\.rating: rating 1 is described twice"),
    (edit("  max: 3", "  max: 4"), line_of(RUBRIC_TEXT, "  levels:"), r"scale\.levels: no level describes rating 4"),
    (edit("  min: 0", "  min: 1"), line_of(RUBRIC_TEXT, "scale:"), r"scale: the scale must start at 0"),
    # shape
    (edit("version: 1", "version: 2"), line_of(RUBRIC_TEXT, "version: 1"), r"version: Input should be less than or equal to 1"),
    (edit("criteria:", "criterions:"), line_of(RUBRIC_TEXT, "criteria:"), r"criterions: unknown field"),
])
def test_bad_rubrics_are_rejected_with_line_and_field(text, line, expected):
    found = rubric_problems(text)
    hits = [p for p in found if re.search(expected, p)]
    assert hits, found
    assert hits[0].startswith(f"scoring.yaml:{line}: "), (hits[0], line)


def test_malformed_rubric_yaml():
    with pytest.raises(UserError, match=r"^scoring.yaml:\d+: \(syntax\): malformed YAML"):
        parse_yaml(RUBRIC_TEXT.replace("why: Uploading", "why: [Uploading"), "scoring.yaml")


# --------------------------------------------------------------------------------- property tests
evidence = st.builds(
    lambda done, wa, minutes, docs: Evidence(minutes=minutes, steps=done + wa, done=done, workarounds=wa, docs=docs),
    st.integers(0, 12), st.integers(0, 6), st.floats(0, 500, allow_nan=False), st.integers(0, 8),
).filter(lambda e: e.steps >= 1)


@settings(max_examples=EXAMPLES, deadline=None)
@given(evidence, st.sampled_from(SIX))
def test_every_unblocked_record_gets_the_first_matching_rule(ev, cid):
    out = evaluate(RUBRIC, cid, ev)
    rules = RUBRIC.criterion(cid).rules
    assert out.rating in (1, 2, 3) and out.rule is not None
    assert rules[out.rule - 1].matches(ev)
    assert not any(r.matches(ev) for r in rules[: out.rule - 1])


BOUNDARIES = [0, 0.5, 1, 2, 3, 4, 5, 9.5, 10, 10.5, 20, 30, 31, 60, 90, 91, 200]
GRID = [Evidence(minutes=m, steps=d + w, done=d, workarounds=w, docs=k)
        for m in BOUNDARIES for d in range(0, 5) for w in range(0, 4) for k in (0, 1, 3) if d + w >= 1]

conditions = st.lists(
    st.tuples(st.sampled_from(list(RULE_FIELDS)), st.sampled_from(["<", "<=", "==", ">=", ">"]),
              st.sampled_from([0, 1, 2, 3, 4, 5, 10, 30, 90, 2.5])),
    max_size=3)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(-1, 4), conditions), min_size=1, max_size=5))
def test_random_rubrics_are_rejected_or_rate_everything(rules):
    """A rubric the loader accepts rates every case; a rule it calls dead never fires."""
    doc = copy.deepcopy(RUBRIC_DOC)
    doc.pop("developer_experience")  # its `from` names usability criteria this example drops
    doc["criteria"] = doc["criteria"][:1]  # one criterion keeps each example quick
    crit = doc["criteria"][0]
    crit["rules"] = []
    for rating, conds in rules:
        when: dict = {}
        for name, op, value in conds:
            when.setdefault(name, []).append(f"{op} {value}")
        rule = {"rating": rating, "why": "because"}
        if when:
            rule["when"] = when
        crit["rules"].append(rule)
    text = yaml.safe_dump(doc, sort_keys=False)
    data, pos = parse_yaml(text, "scoring.yaml")
    try:
        rubric = check_rubric(data, pos)
    except Invalid as exc:
        _assert_every_refusal_holds(crit["rules"], [str(p) for p in exc.problems])
        return
    for ev in GRID:
        out = evaluate(rubric, "environment", ev)
        assert out.rating in range(0, 4)


# beyond GRID: every field a rule may test at its least and at a large value, so a rule `when` that does not
# cover every case (its box is an interval per field) leaves one of these out
EXTREMES = [Evidence(**{name: 1000 for name in RULE_FIELDS}),
            Evidence(**{name: int(least) if integer else least for name, (integer, least) in RULE_FIELDS.items()})]


def _assert_every_refusal_holds(rules: list[dict], problems: list[str]) -> None:
    """A refused random rubric: each problem named is one the rules really have, and there is one at least."""
    assert problems, "refused without a reason"
    cases = GRID + EXTREMES
    for p in problems:
        if m := re.search(r"criteria\[0\]\.rules\[(\d+)\]\.rating: rating (-?\d+) is outside the scale 0–3$", p):
            assert rules[int(m[1])]["rating"] == int(m[2]) and int(m[2]) not in range(0, 4), p
        elif m := re.search(r"criteria\[0\]\.rules\[(\d+)\].*rule \d+ can never fire: no recorded steps satisfy", p):
            assert not any(_matches(rules[int(m[1])], ev) for ev in cases), p  # no case satisfies it at all
        elif m := re.search(r"criteria\[0\]\.rules\[(\d+)\]: rule \d+ can never fire: rule (\d+) above", p):
            k, earlier = int(m[1]), int(m[2]) - 1
            assert earlier < k and all(_matches(rules[earlier], ev) for ev in cases if _matches(rules[k], ev)), p
            for ev in cases:  # nothing reaches the dead rule as the first match
                assert next((i for i, r in enumerate(rules) if _matches(r, ev)), None) != k, (p, ev)
        elif re.search(r"criteria\[0\]\.rules\[\d+\]: criterion 'environment' leaves cases unrated", p):
            assert rules[-1].get("when") and not all(_matches(rules[-1], ev) for ev in cases), p
        else:
            pytest.fail(f"a refusal this test does not know: {p}")


def _matches(rule: dict, ev: Evidence) -> bool:
    ops = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, "==": lambda a, b: a == b,
           ">=": lambda a, b: a >= b, ">": lambda a, b: a > b}
    for name, conds in rule.get("when", {}).items():
        for cond in conds:
            op, value = cond.split()
            if not ops[op](getattr(ev, name), float(value)):
                return False
    return True


# ------------------------------------------------------------------ the second rubric: developer experience, 1–5
DX = RUBRIC.developer_experience
FIVE = ["uploading_data", "ml_expertise", "first_model", "first_invoke", "documentation"]
DX_RECORD = textwrap.dedent("""\
    platform: local
    title: t
    recorded_by: me
    recorded_on: 2026-01-01
    steps:
      - {scenario_step: 1, criterion: environment, action: a, how: h, minutes: 25, outcome: done,
         ml_knowledge: none, docs_answered: yes}
      - {scenario_step: 2, criterion: data_ingestion, action: a, how: h, minutes: 8, outcome: done,
         ml_knowledge: some, docs_answered: partly}
      - {scenario_step: 4, criterion: environment, action: a, how: h, minutes: 10, outcome: workaround,
         ml_knowledge: expert, docs_answered: no}
      - {scenario_step: 6, criterion: remote_debugging, action: a, how: h, minutes: 12, outcome: done,
         ml_knowledge: none}
    """)


def dx_scores(rubric, text=DX_RECORD) -> dict:
    record = parse_record(text, RUBRIC, ["local"])
    return {s.criterion: s for s in score(rubric.developer_experience, record).scores}


def test_repo_has_the_developer_experience_rubric_beside_the_first():
    assert DX.ids == FIVE and (DX.scale.min, DX.scale.max) == (1, 5)
    assert [c.title for c in DX.criteria] == ["Uploading and annotating data", "Level of ML expertise required",
                                              "Speed to creating first model", "Speed to first invoke",
                                              "Clarity and accessibility of API docs"]
    for crit in DX.criteria:
        assert crit.select is not None and crit.covers and not crit.rules[-1].when
    assert all(c.select is None for c in RUBRIC.criteria)  # the usability criteria take their own steps


def test_developer_experience_is_scored_from_the_recorded_steps():
    got = dx_scores(RUBRIC)
    # steps recorded under data_ingestion: 8 min, done, 1 step
    assert (got["uploading_data"].rating, got["uploading_data"].computed.rule) == (5, 1)
    # scenario steps 1–7: one "some", one "expert" → rule 3 (ml_expert <= 1)
    assert (got["ml_expertise"].rating, got["ml_expertise"].computed.rule) == (3, 3)
    assert (got["ml_expertise"].evidence.ml_some, got["ml_expertise"].evidence.ml_expert) == (1, 1)
    # scenario steps 1–4: 43 min, one workaround → rule 2 (<= 60 min, <= 1 workaround)
    assert (got["first_model"].rating, got["first_model"].computed.rule) == (4, 2)
    assert got["first_model"].evidence.minutes == 43
    # step 6: 12 min, done → rule 2 (<= 30 min)
    assert (got["first_invoke"].rating, got["first_invoke"].computed.rule) == (4, 2)
    # every step: the step-6 one does not say docs_answered, so documentation is not rated, not a number
    assert got["documentation"].rating is None and got["documentation"].computed.condition == "unanswered"
    assert "1 of its 4 steps do not say `docs_answered`" in got["documentation"].computed.why


def test_editing_the_second_rubric_changes_its_ratings():
    """A rule change in scoring.yaml's developer_experience changes the rating; the first rubric is untouched."""
    old = 'when: {minutes: "<= 60", workarounds: "<= 1"}\n          why: Within the hour, at most one detour.'
    assert old in RUBRIC_TEXT
    edited = RUBRIC_TEXT.replace(old, old.replace('"<= 60"', '"<= 40"'))
    rubric = check_rubric(*parse_yaml(edited, "scoring.yaml"))
    assert dx_scores(RUBRIC)["first_model"].rating == 4
    assert dx_scores(rubric)["first_model"].rating == 3  # 43 min no longer fits rule 2
    record = parse_record(DX_RECORD, RUBRIC, ["local"])
    assert [s.rating for s in score(rubric, record).scores] == [s.rating for s in score(RUBRIC, record).scores]


def test_second_rubric_gates_blocked_is_its_floor_and_missing_answers_are_not_rated():
    for cid in FIVE:
        assert evaluate(DX, cid, Evidence()).rating is None
        out = evaluate(DX, cid, Evidence(minutes=1, steps=2, done=1, blocked=1))
        assert (out.rating, out.condition) == (1, "blocked")  # the bottom of 1–5, not 0
    unanswered = Evidence(minutes=1, steps=2, done=2, unanswered=(("ml_knowledge", 2),))
    assert evaluate(DX, "ml_expertise", unanswered).condition == "unanswered"
    assert evaluate(DX, "first_model", unanswered).rating == 5  # its rules do not need that answer
    # an unanswered step outranks a blocked one: nobody can say what the missing answers would have been
    both = Evidence(minutes=1, steps=2, done=1, blocked=1, unanswered=(("docs_answered", 1),))
    assert evaluate(DX, "documentation", both).rating is None


DX_TEXT = RUBRIC_TEXT[RUBRIC_TEXT.index("\ndeveloper_experience:"):]


@pytest.mark.parametrize("old,new,needle,expected", [
    ("      from: {criteria: [data_ingestion]}\n", "", "    - id: uploading_data",
     r"developer_experience\.criteria\[0\]: criterion 'uploading_data' needs `from`"),
    ("from: {criteria: [data_ingestion]}", "from: {criteria: [data]}", "from: {criteria: [data_ingestion]}",
     r"developer_experience\.criteria\[0\]\.from\.criteria\[0\]: unknown criterion 'data'; the usability rubric defines"),
    ("from: {criteria: [data_ingestion]}", "from: {}", "from: {criteria: [data_ingestion]}",
     r"developer_experience\.criteria\[0\]\.from: selects no steps"),
    ("    min: 1\n    max: 5", "    min: 2\n    max: 5", "  scale:\n    min: 1",
     r"developer_experience\.scale: the scale must start at 0 or 1"),
    ('          when: {ml_expert: "== 0", ml_some: "<= 1"}', '          when: {ml_expert: "== 0", ml_some: ">= 9", steps: "<= 3"}',
     'when: {ml_expert: "== 0", ml_some: "<= 1"}',
     r"developer_experience\.criteria\[1\]\.rules\[0\]\.when: rule 1 can never fire"),  # 9 of at most 3 steps
    ("  title: Developer experience (1–5)\n", "  title: Developer experience (1–5)\n  version: 1\n",
     "+1  title: Developer experience (1–5)", r"developer_experience\.version: belongs at the top of scoring.yaml"),
])
def test_bad_second_rubrics_are_rejected_with_line_and_field(old, new, needle, expected):
    assert old in DX_TEXT, old
    text = RUBRIC_TEXT.replace(DX_TEXT, DX_TEXT.replace(old, new, 1))
    found = rubric_problems(text)
    hits = [p for p in found if re.search(expected, p)]
    assert hits, found
    below = needle.startswith("+1")  # the problem is on a line the edit added, just below the needle
    needle = needle[2:] if below else needle
    line = line_of(RUBRIC_TEXT, needle, 1 + RUBRIC_TEXT[:RUBRIC_TEXT.index(DX_TEXT)].count(needle)) + below
    assert hits[0].startswith(f"scoring.yaml:{line}: "), (hits[0], line)


def test_usability_criteria_cannot_take_from():
    text = RUBRIC_TEXT.replace("  - id: data_ingestion\n", "  - id: data_ingestion\n    from: {scenario_steps: [2]}\n", 1)
    found = rubric_problems(text)
    assert any(re.search(r"criteria\[1\]\.from: the usability criteria take the steps recorded under their own id", p)
               for p in found), found
