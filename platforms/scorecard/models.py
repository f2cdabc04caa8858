"""The record format: scenarios/<platform>.yaml, one file per platform, written by a human (or by
`platbench scenario record`) and scored by the rubric.

    platform: local                       # a registered platform (platbench's entry points)
    title: Local GPU workstation, first run as a new user
    recorded_by: Jane Doe
    recorded_on: 2026-11-24
    versions: {platbench: "0.1.0", python: "3.11.7"}   # optional; quote version numbers
    notes: optional, about the recording as a whole (the machine, caveats)
    scenario_steps_done: [1, 2, 3]        # optional; the recorder's bookmark (Scenario.md steps finished)
    steps:
      - scenario_step: 1                  # optional; which Scenario.md step this was part of
        criterion: environment            # one of scoring.yaml's criteria
        action: Installed platbench
        how: pip install -e .             # the command, or the UI path (Console > Jobs > Create)
        minutes: 4.5
        outcome: done                     # done | workaround | blocked
        docs: [https://example.org/page]  # optional
        ml_knowledge: none                # optional; none | some | expert (ML knowledge the step needed)
        docs_answered: yes                # optional; yes | partly | no (did the platform's docs answer it)
        notes: optional free text
    overrides:                            # optional; a human's rating, with a written reason
      - {criterion: data_ingestion, rating: 2, reason: "..."}
    evidence:                             # optional; screenshots, links
      - {link: docs/img/console.png, caption: The job page}

A platform nobody has recorded yet has a placeholder instead, so the folder lists every platform
platbench has and none of them looks measured:

    platform: sagemaker
    status: not recorded                  # the only status a placeholder can have
    notes: optional
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from platforms.scorecard.source import Positions, Problem, field_name

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Link = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, pattern=r"^\S+$")]
OUTCOMES = ("done", "workaround", "blocked")
Outcome = Literal["done", "workaround", "blocked"]

# The order fields are written in, by the recorder and by `dump_record`.
RECORD_FIELDS = ("platform", "title", "recorded_by", "recorded_on", "versions", "notes", "scenario_steps_done",
                 "steps", "overrides", "evidence")
STEP_FIELDS = ("scenario_step", "criterion", "action", "how", "minutes", "outcome", "docs", "ml_knowledge",
               "docs_answered", "notes")
NOT_RECORDED = "not recorded"
ML_KNOWLEDGE = ("none", "some", "expert")
DOCS_ANSWERED = ("yes", "partly", "no")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _criterion_ids(info: ValidationInfo) -> list[str] | None:
    ctx = info.context or {}
    rubric = ctx.get("rubric")
    return rubric.ids if rubric is not None else None


def _check_criterion(value: str, info: ValidationInfo) -> str:
    ids = _criterion_ids(info)
    if ids is not None and value not in ids:
        raise ValueError(f"unknown criterion {value!r}; scoring.yaml defines {', '.join(ids)}")
    return value


def _check_rating(value: int, info: ValidationInfo) -> int:
    rubric = (info.context or {}).get("rubric")
    if rubric is not None and not rubric.scale.min <= value <= rubric.scale.max:
        raise ValueError(f"rating {value} is outside the scale {rubric.scale.min}–{rubric.scale.max}")
    return value


class Step(_Strict):
    scenario_step: int | None = Field(default=None, strict=True, ge=1)
    criterion: str = Field(strict=True)
    action: Text
    how: Text
    minutes: float = Field(strict=True, ge=0, allow_inf_nan=False)
    outcome: Outcome
    docs: list[Link] = Field(default_factory=list)
    # asked by the recorder for the developer-experience rubric; absent in records made before it asked
    ml_knowledge: Literal["none", "some", "expert"] | None = None
    docs_answered: Literal["yes", "partly", "no"] | None = None
    notes: Text | None = None

    _criterion = field_validator("criterion")(_check_criterion)

    @field_validator("docs_answered", mode="before")
    @classmethod
    def _yes_no(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare yes/no as true/false
        return {True: "yes", False: "no"}.get(value, value) if isinstance(value, bool) else value


class Override(_Strict):
    criterion: str = Field(strict=True)
    rating: int = Field(strict=True)
    reason: Text

    _criterion = field_validator("criterion")(_check_criterion)
    _rating = field_validator("rating")(_check_rating)


class EvidenceItem(_Strict):
    link: Link
    caption: Text | None = None


class Placeholder(_Strict):
    """scenarios/<platform>.yaml for a platform nobody has recorded: it says so, and nothing else."""
    platform: str = Field(strict=True)
    status: Literal["not recorded"]
    notes: Text | None = None

    @field_validator("platform")
    @classmethod
    def _platform(cls, value: str, info: ValidationInfo) -> str:
        known = (info.context or {}).get("platforms")
        if known is not None and value not in known:
            raise ValueError(f"unknown platform {value!r}; platbench knows {', '.join(known) or '(none)'}")
        return value


class Record(_Strict):
    platform: str = Field(strict=True)
    title: Text
    recorded_by: Text
    recorded_on: dt.date
    versions: dict[str, Text] = Field(default_factory=dict)
    notes: Text | None = None  # about the recording as a whole: the machine, caveats
    scenario_steps_done: list[Annotated[int, Field(strict=True, ge=1)]] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    overrides: list[Override] = Field(default_factory=list)
    evidence: list[EvidenceItem] = Field(default_factory=list)

    @field_validator("platform")
    @classmethod
    def _platform(cls, value: str, info: ValidationInfo) -> str:
        known = (info.context or {}).get("platforms")
        if known is not None and value not in known:
            raise ValueError(f"unknown platform {value!r}; platbench knows {', '.join(known) or '(none)'}")
        return value

    @field_validator("recorded_on", mode="before")
    @classmethod
    def _date(cls, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return value.date() if value.time() == dt.time() else value
        if not isinstance(value, (dt.date, str)):
            raise ValueError("write the date as YYYY-MM-DD")
        if isinstance(value, str):  # 2026-13-45 (the YAML reader passes a date it cannot build on as text)
            try:
                return dt.date.fromisoformat(value)
            except ValueError as exc:
                raise ValueError(f"bad timestamp value {value!r}: {exc}") from None
        return value

    @field_validator("recorded_on")
    @classmethod
    def _not_future(cls, value: dt.date) -> dt.date:
        if value > dt.date.today() + dt.timedelta(days=1):
            raise ValueError(f"{value.isoformat()} is in the future")
        return value

    @field_validator("versions", mode="before")
    @classmethod
    def _versions(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for tool, version in value.items():
                if isinstance(version, (int, float)) and not isinstance(version, bool):
                    raise ValueError(f"{tool}: quote version numbers (YAML reads {version!r} as a number); write {tool}: \"{version}\"")
        return value

    @field_validator("evidence", mode="before")
    @classmethod
    def _evidence(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"link": v} if isinstance(v, str) else v for v in value]
        return value

    def steps_for(self, criterion: str) -> list[Step]:
        return [s for s in self.steps if s.criterion == criterion]


_PREFIXES = ("Value error, ", "Assertion failed, ")


def problems_from_validation_error(exc: ValidationError, pos: Positions) -> list[Problem]:
    """Pydantic's errors, each placed on the line of the field it is about."""
    out: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        msg = err["msg"]
        for prefix in _PREFIXES:
            if msg.startswith(prefix):
                msg = msg[len(prefix):]
        kind = err["type"]
        if kind == "missing":
            msg = "required field is missing"
        elif kind == "extra_forbidden":
            msg = "unknown field (a typo?)"
        elif kind == "string_too_short":
            msg = "must not be empty"
        elif kind == "string_pattern_mismatch":
            if loc and loc[-1] == "id":
                msg = "must be lowercase letters, digits and _, starting with a letter (at most 40)"
            else:
                msg = "must be one URL or path, without spaces"
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            msg = f"must be a mapping of fields, not {_kind(err.get('input'))}"
        elif kind == "list_type":
            msg = f"must be a list, not {_kind(err.get('input'))}"
        line = pos.line(loc)
        out.append(Problem(pos.path, line, field_name(loc), msg))
    out.sort(key=lambda p: p.line)
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {str: "text", int: "a number", float: "a number", bool: "true/false", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)
