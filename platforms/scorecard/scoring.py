"""Record + rubric → a rating per criterion, the rule that gave it, and a total.

The total is the sum of the rated criteria out of (top of the scale × number of rated criteria).
"Not rated" counts neither as 0 nor as anything else: it is left out of both numbers and named next
to the total ("12/15, 1 not rated"), so a platform is never punished or flattered for a criterion
nobody recorded. A human override replaces the computed rating (in the total too) and is always shown
as an override, with the computed rating and the written reason next to it.
"""
from __future__ import annotations

from dataclasses import dataclass

from typing import Sequence

from platforms.scorecard.models import Override, Record, Step
from platforms.scorecard.rubric import ANSWER_OF, NOT_RATED, Criterion, Evidence, Outcome, Rubric, evaluate


@dataclass(frozen=True)
class CriterionScore:
    criterion: str
    title: str
    evidence: Evidence
    computed: Outcome
    override: Override | None

    @property
    def rating(self) -> int | None:
        """The rating that counts: the override's when there is one, else the rubric's."""
        return self.override.rating if self.override is not None else self.computed.rating

    @property
    def rated(self) -> bool:
        return self.rating is not None

    def cell(self) -> str:
        """Short text for a table cell: `2`, `not rated`, `3 (override; rubric: 1)`."""
        if self.override is not None:
            computed = NOT_RATED if self.computed.rating is None else self.computed.rating
            return f"{self.override.rating} (override; rubric: {computed})"
        return NOT_RATED if self.computed.rating is None else str(self.computed.rating)

    def rule_text(self) -> str:
        c = self.computed
        if c.rule is None:
            return c.condition
        return f"rule {c.rule}: {c.condition}"

    def to_json(self) -> dict:
        return {
            "criterion": self.criterion,
            "title": self.title,
            "rating": self.rating,
            "rated": self.rated,
            "computed": self.computed.rating,
            "rule": self.computed.rule,
            "condition": self.computed.condition,
            "why": self.computed.why,
            "override": None if self.override is None else {"rating": self.override.rating, "reason": self.override.reason},
            "evidence": {
                "minutes": round(self.evidence.minutes, 2),
                "steps": self.evidence.steps,
                "done": self.evidence.done,
                "workarounds": self.evidence.workarounds,
                "blocked": self.evidence.blocked,
                "docs": self.evidence.docs,
            },
        }


@dataclass(frozen=True)
class Total:
    points: int
    out_of: int
    rated: int
    not_rated: list[str]
    overridden: list[str]

    def cell(self) -> str:
        if not self.rated:
            return NOT_RATED
        text = f"{self.points}/{self.out_of}"
        if self.not_rated:
            text += f" ({len(self.not_rated)} not rated)"
        return text

    def to_json(self) -> dict:
        return {"points": self.points, "out_of": self.out_of, "rated": self.rated,
                "not_rated": self.not_rated, "complete": not self.not_rated, "overridden": self.overridden}


@dataclass(frozen=True)
class Scorecard:
    platform: str
    title: str
    scores: list[CriterionScore]
    total: Total

    def to_json(self) -> dict:
        return {"platform": self.platform, "title": self.title,
                "criteria": [s.to_json() for s in self.scores], "total": self.total.to_json()}


def steps_of(record: Record, crit: Criterion) -> list[Step]:
    """A criterion's steps: those recorded under its id, or those its `from` selects."""
    if crit.select is None:
        return record.steps_for(crit.id)
    sel = crit.select
    return [s for s in record.steps if s.criterion in sel.criteria or s.scenario_step in sel.scenario_steps]


def evidence_from(steps: Sequence[Step]) -> Evidence:
    answers = sorted(set(ANSWER_OF.values()))
    return Evidence(
        minutes=sum(s.minutes for s in steps),
        steps=len(steps),
        done=sum(s.outcome == "done" for s in steps),
        workarounds=sum(s.outcome == "workaround" for s in steps),
        blocked=sum(s.outcome == "blocked" for s in steps),
        docs=len({d for s in steps for d in s.docs}),
        ml_some=sum(s.ml_knowledge == "some" for s in steps),
        ml_expert=sum(s.ml_knowledge == "expert" for s in steps),
        docs_partly=sum(s.docs_answered == "partly" for s in steps),
        docs_no=sum(s.docs_answered == "no" for s in steps),
        unanswered=tuple((a, n) for a in answers if (n := sum(getattr(s, a) is None for s in steps))),
    )


def evidence_of(record: Record, criterion: str) -> Evidence:
    return evidence_from(record.steps_for(criterion))


def score(rubric: Rubric, record: Record) -> Scorecard:
    """The record scored by `rubric`: the usability rubric (overrides apply) or the developer-experience
    one (scoring.yaml's `developer_experience`; overrides name usability criteria, so none apply)."""
    overrides = {o.criterion: o for o in record.overrides}
    scores = []
    for crit in rubric.criteria:
        ev = evidence_from(steps_of(record, crit))
        scores.append(CriterionScore(crit.id, crit.title, ev, evaluate(rubric, crit.id, ev),
                                     overrides.get(crit.id) if crit.select is None else None))
    rated = [s for s in scores if s.rated]
    total = Total(
        points=sum(s.rating for s in rated),
        out_of=rubric.scale.max * len(rated),
        rated=len(rated),
        not_rated=[s.criterion for s in scores if not s.rated],
        overridden=[s.criterion for s in scores if s.override is not None],
    )
    return Scorecard(record.platform, record.title, scores, total)
