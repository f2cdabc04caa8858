"""The rubric (scoring.yaml): a scale, the criteria, and per criterion ordered rules over evidence.

Evidence is computed from a criterion's recorded steps:
  minutes      total minutes over the criterion's steps
  steps        number of steps
  done         steps whose outcome is `done`
  workarounds  steps whose outcome is `workaround`
  docs         distinct documentation links consulted
  blocked      steps whose outcome is `blocked`
  ml_some      steps the recorder says needed some ML knowledge (`ml_knowledge: some`)
  ml_expert    steps that needed an ML expert's knowledge (`ml_knowledge: expert`)
  docs_partly  steps where the platform's documentation only partly answered what was needed (`docs_answered: partly`)
  docs_no      steps where it did not answer it (`docs_answered: no`)

A criterion's steps are those recorded under its id (`criterion: <id>`), or, for a criterion with a
`from` (the developer-experience rubric, whose criteria cut across the scenario), the steps its `from`
selects: by the usability criterion they were recorded under and/or by scenario step number.

Three outcomes are fixed and come before any rule (they are the spec, not a team's taste):
  * no steps recorded for a criterion  → "not rated" (never a number);
  * a rule tests an answer (ml_*, docs_*) that some of the steps lack (recorded before the recorder
    asked for it) → "not rated": a missing answer is not evidence of "none";
  * any step `blocked`                 → the bottom of the scale (0 on the 0–3 rubric, 1 on the 1–5 one).
Otherwise the first rule whose `when` holds gives the rating. A rule's `when` maps evidence names to
comparisons ("<= 30", or a list of them, all must hold); a rule without `when` always holds. The
rubric is rejected unless the last rule of every criterion is such a catch-all (so every case gets a
rating) and every rule can fire (none is empty or hidden behind an earlier rule).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from platforms.scorecard.source import Invalid, Positions, Problem

NOT_RATED = "not rated"

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
CriterionId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]

# Evidence a rule may test, with the values it can take (the domain the coverage check reasons over).
RULE_FIELDS: dict[str, tuple[bool, float]] = {
    # name: (integer?, smallest possible value once the fixed gates have passed)
    "minutes": (False, 0.0),
    "steps": (True, 1.0),
    "done": (True, 0.0),
    "workarounds": (True, 0.0),
    "docs": (True, 0.0),
    "ml_some": (True, 0.0),
    "ml_expert": (True, 0.0),
    "docs_partly": (True, 0.0),
    "docs_no": (True, 0.0),
}
# Evidence counted from an optional answer of the step: the field it comes from.
ANSWER_OF = {"ml_some": "ml_knowledge", "ml_expert": "ml_knowledge", "docs_partly": "docs_answered",
             "docs_no": "docs_answered"}
_OPS = ("<=", ">=", "==", "<", ">")
_COND = re.compile(r"^\s*(<=|>=|==|<|>)\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------- intervals
@dataclass(frozen=True)
class Interval:
    lo: float = -math.inf
    lo_incl: bool = False
    hi: float = math.inf
    hi_incl: bool = False

    def intersect(self, other: Interval) -> Interval:
        if self.lo > other.lo or (self.lo == other.lo and not self.lo_incl):
            lo, lo_incl = self.lo, self.lo_incl
        else:
            lo, lo_incl = other.lo, other.lo_incl
        if self.hi < other.hi or (self.hi == other.hi and not self.hi_incl):
            hi, hi_incl = self.hi, self.hi_incl
        else:
            hi, hi_incl = other.hi, other.hi_incl
        return Interval(lo, lo_incl, hi, hi_incl)

    def normalized(self, integer: bool) -> Interval:
        """For integer evidence, turn strict/fractional bounds into inclusive integer bounds."""
        if not integer:
            return self
        lo, hi = self.lo, self.hi
        if math.isfinite(lo):
            lo = math.floor(lo) + 1 if (not self.lo_incl and lo == math.floor(lo)) else math.ceil(lo)
        if math.isfinite(hi):
            hi = math.ceil(hi) - 1 if (not self.hi_incl and hi == math.ceil(hi)) else math.floor(hi)
        return Interval(lo, True, hi, True)

    @property
    def empty(self) -> bool:
        if self.lo > self.hi:
            return True
        return self.lo == self.hi and not (self.lo_incl and self.hi_incl)

    def contains(self, other: Interval) -> bool:
        """Does self ⊇ other (other non-empty)?"""
        lo_ok = self.lo < other.lo or (self.lo == other.lo and (self.lo_incl or not other.lo_incl))
        hi_ok = self.hi > other.hi or (self.hi == other.hi and (self.hi_incl or not other.hi_incl))
        return lo_ok and hi_ok

    def holds(self, x: float) -> bool:
        lo_ok = x > self.lo or (self.lo_incl and x == self.lo)
        hi_ok = x < self.hi or (self.hi_incl and x == self.hi)
        return lo_ok and hi_ok


def _domain(name: str) -> Interval:
    integer, lo = RULE_FIELDS[name]
    return Interval(lo, True, math.inf, False)


@lru_cache(maxsize=4096)
def _parse_condition(text: str) -> tuple[str, float]:
    m = _COND.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a comparison; write e.g. '<= 30' (one of {', '.join(_OPS)} and a number)")
    value = float(m.group(2))
    if not math.isfinite(value):
        raise ValueError(f"{text!r}: the number must be finite")
    return m.group(1), value


def _interval_of(op: str, value: float) -> Interval:
    return {
        "<": Interval(hi=value, hi_incl=False),
        "<=": Interval(hi=value, hi_incl=True),
        ">": Interval(lo=value, lo_incl=False),
        ">=": Interval(lo=value, lo_incl=True),
        "==": Interval(value, True, value, True),
    }[op]


def _fmt_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


# ------------------------------------------------------------------------------------------ models
class Level(_Strict):
    rating: int = Field(strict=True)
    name: Text
    meaning: Text


class Scale(_Strict):
    min: int = Field(strict=True)
    max: int = Field(strict=True)
    levels: list[Level]


class Rule(_Strict):
    rating: int = Field(strict=True)
    when: dict[str, list[Any]] = Field(default_factory=dict)
    why: Text

    @field_validator("when", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, dict):
            return {k: (v if isinstance(v, list) else [v]) for k, v in value.items()}
        return value

    def box(self) -> dict[str, Interval]:
        """The region of evidence this rule matches, per field, clipped to the possible values."""
        out = {}
        for name in RULE_FIELDS:
            iv = _domain(name)
            for cond in self.when.get(name, []):
                iv = iv.intersect(_interval_of(*_parse_condition(cond)))
            out[name] = iv.normalized(RULE_FIELDS[name][0])
        return out

    def describe(self) -> str:
        if not self.when:
            return "otherwise"
        parts = []
        for name, conds in self.when.items():
            for cond in conds:
                op, value = _parse_condition(cond)
                parts.append(f"{name} {op} {_fmt_num(value)}")
        return ", ".join(parts)

    def matches(self, evidence: Evidence) -> bool:
        for name, conds in self.when.items():
            x = getattr(evidence, name)
            for cond in conds:
                if not _interval_of(*_parse_condition(cond)).holds(x):
                    return False
        return True


class StepSelector(_Strict):
    """Which recorded steps a cross-cutting criterion draws on: those recorded under any of `criteria`
    (usability criterion ids) or in any of `scenario_steps` (Scenario.md step numbers)."""
    criteria: list[CriterionId] = Field(default_factory=list)
    scenario_steps: list[Annotated[int, Field(strict=True, ge=1)]] = Field(default_factory=list)

    def describe(self) -> str:
        bits = []
        if self.criteria:
            bits.append("steps recorded under " + ", ".join(self.criteria))
        if self.scenario_steps:
            bits.append("scenario steps " + ", ".join(map(str, self.scenario_steps)))
        return " or ".join(bits)


class Criterion(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: CriterionId
    title: Text
    short: Text | None = None
    covers: Text
    select: StepSelector | None = Field(default=None, alias="from")
    rules: list[Rule] = Field(min_length=1)

    def answers_needed(self) -> list[str]:
        """The optional step answers (ml_knowledge, docs_answered) some rule of this criterion tests."""
        return sorted({ANSWER_OF[name] for rule in self.rules for name in rule.when if name in ANSWER_OF})

    @property
    def header(self) -> str:
        return self.short or self.title


class Rubric(_Strict):
    """One rubric. scoring.yaml's top level is the 0–3 usability rubric; its `developer_experience`
    key holds the second (the AutoML study's five criteria, 1–5), whose criteria select steps `from`."""
    version: int | None = Field(default=None, strict=True, ge=1, le=1)
    title: Text | None = None
    scale: Scale
    criteria: list[Criterion] = Field(min_length=1)
    developer_experience: Rubric | None = None

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.criteria]

    def criterion(self, cid: str) -> Criterion:
        for c in self.criteria:
            if c.id == cid:
                return c
        raise KeyError(cid)

    def level(self, rating: int) -> Level:
        for lv in self.scale.levels:
            if lv.rating == rating:
                return lv
        raise KeyError(rating)


# ---------------------------------------------------------------------------------------- evidence
@dataclass(frozen=True)
class Evidence:
    minutes: float = 0.0
    steps: int = 0
    done: int = 0
    workarounds: int = 0
    blocked: int = 0
    docs: int = 0
    ml_some: int = 0
    ml_expert: int = 0
    docs_partly: int = 0
    docs_no: int = 0
    unanswered: tuple[tuple[str, int], ...] = ()  # (answer field, steps without it)

    def lacking(self, answer: str) -> int:
        return dict(self.unanswered).get(answer, 0)

    def describe(self) -> str:
        bits = [f"{self.steps} step{'s' if self.steps != 1 else ''}", f"{_fmt_num(round(self.minutes, 1))} min"]
        if self.workarounds:
            bits.append(f"{self.workarounds} workaround{'s' if self.workarounds != 1 else ''}")
        if self.blocked:
            bits.append(f"{self.blocked} blocked")
        return ", ".join(bits)


@dataclass(frozen=True)
class Outcome:
    """What the rubric says for one criterion's evidence, before any human override."""

    rating: int | None          # None ⇔ not rated
    rule: int | None            # 1-based index of the rule that fired; None for the fixed gates
    condition: str              # the rule's `when`, in words ("minutes <= 30, workarounds == 0")
    why: str


def evaluate(rubric: Rubric, cid: str, ev: Evidence) -> Outcome:
    crit = rubric.criterion(cid)
    if ev.steps == 0:
        return Outcome(None, None, "no steps", "Nothing was recorded for this criterion, so it is not rated.")
    missing = [(a, ev.lacking(a)) for a in crit.answers_needed() if ev.lacking(a)]
    if missing:
        said = "; ".join(f"{n} of its {ev.steps} steps do not say `{a}`" for a, n in missing)
        return Outcome(None, None, "unanswered",
                       f"Not rated: {said} (recorded before the recorder asked), and a missing answer is not evidence.")
    if ev.blocked:
        return Outcome(rubric.scale.min, None, "blocked",
                       "A step was blocked: a new user could not get this done, which is the bottom of the scale.")
    for i, rule in enumerate(crit.rules, start=1):
        if rule.matches(ev):
            return Outcome(rule.rating, i, rule.describe(), rule.why)
    raise AssertionError(f"rubric validated with a catch-all, yet no rule of {cid} matched {ev}")  # pragma: no cover


# --------------------------------------------------------------------------------------- validation
def _feasible(box: dict[str, Interval]) -> bool:
    """Is there real evidence in `box`? Besides each field's own range: done + workarounds == steps."""
    if any(iv.empty for iv in box.values()):
        return False
    s, d, w = box["steps"], box["done"], box["workarounds"]
    total = Interval(d.lo + w.lo, True, d.hi + w.hi, True)
    if total.intersect(s).empty:
        return False
    # the answer counts are parts of the steps: together at most `steps`
    return all(box[a].lo + box[b].lo <= s.hi for a, b in (("ml_some", "ml_expert"), ("docs_partly", "docs_no")))


def _box_contains(outer: dict[str, Interval], inner: dict[str, Interval]) -> bool:
    return all(outer[k].contains(inner[k]) for k in RULE_FIELDS)


def check_rubric(data: Any, pos: Positions) -> Rubric:
    """Validate parsed scoring.yaml (both rubrics); raise Invalid with every problem (file, line, field)."""
    from platforms.scorecard.models import problems_from_validation_error

    try:
        rubric = Rubric.model_validate(data)
    except ValidationError as exc:
        raise Invalid(problems_from_validation_error(exc, pos)) from None

    problems = _check_one(rubric, pos, (), True, rubric.ids)
    if rubric.developer_experience is not None:
        problems += _check_one(rubric.developer_experience, pos, ("developer_experience",), False, rubric.ids)
    if problems:
        raise Invalid(sorted(problems, key=lambda p: p.line))
    return rubric


def _check_one(rubric: Rubric, pos: Positions, prefix: tuple, top: bool, usability_ids: list[str]) -> list[Problem]:
    """The checks pydantic cannot make, for one rubric whose fields sit under `prefix`."""
    problems: list[Problem] = []

    def problem(loc: tuple, message: str) -> Problem:
        return pos.problem(prefix + tuple(loc), message)

    scale = rubric.scale
    if top and (scale.min != 0 or scale.max < 1):
        problems.append(problem(("scale",), f"the scale must start at 0 and go up to at least 1 (got {scale.min}–{scale.max})"))
    if not top and (scale.min not in (0, 1) or scale.max <= scale.min):
        problems.append(problem(("scale",), f"the scale must start at 0 or 1 and go up by at least 1 (got {scale.min}–{scale.max})"))
    if top and rubric.version is None:
        problems.append(problem(("version",), "required field is missing"))
    if not top and (rubric.version is not None or rubric.developer_experience is not None):
        problems.append(problem(("version" if rubric.version is not None else "developer_experience",),
                                "belongs at the top of scoring.yaml, not inside a second rubric"))
    wanted = list(range(scale.min, scale.max + 1))
    seen: dict[int, int] = {}
    for i, lv in enumerate(scale.levels):
        if lv.rating in seen:
            problems.append(problem(("scale", "levels", i, "rating"), f"rating {lv.rating} is described twice (also levels[{seen[lv.rating]}])"))
        seen.setdefault(lv.rating, i)
        if not scale.min <= lv.rating <= scale.max:
            problems.append(problem(("scale", "levels", i, "rating"), f"rating {lv.rating} is outside the scale {scale.min}–{scale.max}"))
    missing = [r for r in wanted if r not in seen]
    if missing:
        problems.append(problem(("scale", "levels"), f"no level describes rating{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))}"))

    ids: dict[str, int] = {}
    for ci, crit in enumerate(rubric.criteria):
        cloc = ("criteria", ci)
        if crit.id in ids:
            problems.append(problem(cloc + ("id",), f"criterion {crit.id!r} is defined twice (also criteria[{ids[crit.id]}])"))
        ids.setdefault(crit.id, ci)
        if top and crit.select is not None:
            problems.append(problem(cloc + ("from",), "the usability criteria take the steps recorded under their own id; "
                                                      "`from` belongs to the developer_experience criteria"))
        if not top:
            if crit.select is None:
                problems.append(problem(cloc, f"criterion {crit.id!r} needs `from`: the steps it draws on "
                                              "({criteria: [<usability ids>]} and/or {scenario_steps: [<numbers>]})"))
            elif not crit.select.criteria and not crit.select.scenario_steps:
                problems.append(problem(cloc + ("from",), "selects no steps; name `criteria` and/or `scenario_steps`"))
            else:
                for k, cid in enumerate(crit.select.criteria):
                    if cid not in usability_ids:
                        problems.append(problem(cloc + ("from", "criteria", k),
                                                f"unknown criterion {cid!r}; the usability rubric defines {', '.join(usability_ids)}"))
        boxes: list[dict[str, Interval] | None] = []
        for ri, rule in enumerate(crit.rules):
            rloc = cloc + ("rules", ri)
            if not scale.min <= rule.rating <= scale.max:
                problems.append(problem(rloc + ("rating",), f"rating {rule.rating} is outside the scale {scale.min}–{scale.max}"))
            bad = False
            for name, conds in rule.when.items():
                if name == "blocked":
                    problems.append(problem(rloc + ("when", name), f"rules cannot test `blocked`: a criterion with a blocked step is always rated {scale.min}, before any rule"))
                    bad = True
                    continue
                if name not in RULE_FIELDS:
                    problems.append(problem(rloc + ("when", name), f"unknown evidence {name!r}; rules can test {', '.join(RULE_FIELDS)}"))
                    bad = True
                    continue
                if not conds:
                    problems.append(problem(rloc + ("when", name), "no comparison given; write e.g. '<= 30'"))
                    bad = True
                for k, cond in enumerate(conds):
                    if not isinstance(cond, str):
                        problems.append(problem(rloc + ("when", name) + ((k,) if len(conds) > 1 else ()),
                                                    f"{cond!r} is not a comparison; write e.g. '<= 30' in quotes"))
                        bad = True
                        continue
                    try:
                        _parse_condition(cond)
                    except ValueError as exc:
                        problems.append(problem(rloc + ("when", name) + ((k,) if len(conds) > 1 else ()), str(exc)))
                        bad = True
            if bad:
                boxes.append(None)
                continue
            box = rule.box()
            boxes.append(box)
            if not _feasible(box):
                problems.append(problem(rloc + ("when",), f"rule {ri + 1} can never fire: no recorded steps satisfy {rule.describe()}"))
                continue
            for earlier in range(ri):
                if boxes[earlier] is not None and _box_contains(boxes[earlier], box):
                    problems.append(problem(rloc, f"rule {ri + 1} can never fire: rule {earlier + 1} above it matches every case it matches"))
                    break
        last = crit.rules[-1]
        if last.when and (boxes[-1] is None or not _box_contains(boxes[-1], Rule(rating=0, why="x").box())):
            problems.append(problem(cloc + ("rules", len(crit.rules) - 1),
                                        f"criterion {crit.id!r} leaves cases unrated: its last rule must be a catch-all (no `when`)"))
    return problems
