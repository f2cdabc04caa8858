"""What the two public studies published, and where every platform of them stands today:
scenarios/published/studies.yaml, loaded and checked against scoring.yaml.

Published ratings and figures are attributed records (the study, its date, who measured, the section
they are in), never platbench's own: the table and the report show them in rows and columns of their
own, marked "published", beside the runs and records platbench made. The figures live in the YAML
file alone; no number of a study is written in code.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from platforms.scorecard.rubric import Rubric
from platforms.scorecard.source import Invalid, Positions, Problem, load_yaml

PUBLISHED_FILE = "scenarios/published/studies.yaml"

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Link = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^https?://\S+$")]
Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
# A date as precise as the source allows: 2021, 2021-08 or 2021-08-09.
PartialDate = Annotated[str, StringConstraints(pattern=r"^\d{4}(-\d{2}(-\d{2})?)?$")]

# The study figures platbench can put beside its own measurements: name → label.
METRICS: dict[str, str] = {
    "latency_p50_ms": "median request latency, ms",
    "seconds_1000_requests_at_10": "seconds for 1,000 requests at 10 concurrent",
    "endpoint_usd_per_hour": "endpoint price, USD per hour",
}

# How the study measured each figure (its "Latency and Throughput" section): the load-test settings a
# platbench run must have for its figure to stand beside the study's. Latency: single invokes, one at a
# time; 1,000 requests: closed loop at 10 connections. Both without retries: the study counted connection
# resets as failed requests, where platbench's default retries would turn them into slow successes. A price
# does not depend on how the endpoint was loaded.
PROTOCOLS: dict[str, dict[str, object]] = {
    "latency_p50_ms": {"concurrency": 1, "rate": None, "retries": 0},
    "seconds_1000_requests_at_10": {"requests": 1000, "concurrency": 10, "rate": None, "retries": 0},
    "endpoint_usd_per_hour": {},
}
PROTOCOL_TEXT = {"latency_p50_ms": "single invokes, one at a time, no retries",
                 "seconds_1000_requests_at_10": "1,000 requests, closed loop at 10 connections, no retries"}


def protocol_differences(settings: dict, metric: str) -> list[str]:
    """How a load test's settings (its params, or the load report's settings) differ from the study's for
    this figure, one phrase each ("concurrency 4", "retries not recorded"); [] when they match."""
    out = []
    for key, want in PROTOCOLS[metric].items():
        got = settings.get(key)
        got = None if got in ("", "None") else got
        if want is None:
            if got is not None:
                out.append(f"{key} {got}" if key != "rate" else f"open loop at {got}/s")
            continue
        if got is None:
            out.append(f"{key} not recorded")
            continue
        try:
            same = float(got) == float(want)
        except (TypeError, ValueError):
            same = False
        if not same:
            out.append(f"{key} {got}")
    return out


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Study(_Strict):
    title: Text
    url: Link
    published_on: dt.date | None = None
    date_note: Text | None = None          # why there is no date, when there is none
    measured_by: Text
    by: Text                               # the attribution a table cell has room for
    reference: Text                        # the copy platbench keeps and where in it (for maintainers)
    rubric: Literal["usability", "developer_experience"]
    notes: Text | None = None


class Status(_Strict):
    state: Literal["live", "retired"]
    since: PartialDate | None = None       # retired: when, as precisely as a source says
    what: Text                             # what happened / what is live, in a sentence
    sources: list[Link] = Field(min_length=1)
    unconfirmed: Text | None = None        # what could not be confirmed from a source

    @field_validator("since", mode="before")
    @classmethod
    def _date(cls, value: Any) -> Any:
        # YAML reads 2025-01-31 as a date and 2025 as a number; both are fine here
        if isinstance(value, dt.date):
            return value.isoformat()
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Platform(_Strict):
    name: Text                             # as the studies name it
    platbench: Key | None = None           # the platbench platform for it (or its successor), if any
    studies: list[Key] = Field(min_length=1)
    status: Status


class Ratings(_Strict):
    study: Key
    platform: Text
    ratings: dict[Key, int]
    total: int | None = None               # as published; checked against the ratings
    section: Text


class Figure(_Strict):
    study: Key
    platform: Text
    metric: Literal["latency_p50_ms", "seconds_1000_requests_at_10", "endpoint_usd_per_hour"]
    value: float = Field(ge=0, allow_inf_nan=False)
    section: Text
    notes: Text | None = None


class Published(_Strict):
    version: int = Field(strict=True, ge=1, le=1)
    studies: dict[Key, Study]
    platforms: list[Platform]
    ratings: list[Ratings] = Field(default_factory=list)
    figures: list[Figure] = Field(default_factory=list)

    # ------------------------------------------------------------------ lookups
    def platform(self, name: str) -> Platform:
        return next(p for p in self.platforms if p.name == name)

    def ratings_of(self, platform: str, study: str) -> Ratings | None:
        return next((r for r in self.ratings if r.platform == platform and r.study == study), None)

    def for_platbench(self, name: str) -> list[Platform]:
        return [p for p in self.platforms if p.platbench == name]

    @property
    def platbench_names(self) -> list[str]:
        return list(dict.fromkeys(p.platbench for p in self.platforms if p.platbench))

    def figures_for(self, platbench: str) -> list[Figure]:
        names = {p.name for p in self.for_platbench(platbench)}
        return [f for f in self.figures if f.platform in names]


def _scale_of(rubric: Rubric, which: str) -> Rubric | None:
    return rubric if which == "usability" else rubric.developer_experience


def check_published(data: Any, pos: Positions, rubric: Rubric) -> Published:
    """Validate the parsed file against scoring.yaml; raise Invalid listing every problem."""
    from platforms.scorecard.models import problems_from_validation_error

    try:
        pub = Published.model_validate(data)
    except ValidationError as exc:
        raise Invalid(problems_from_validation_error(exc, pos)) from None
    problems: list[Problem] = []
    for key, study in pub.studies.items():
        if study.published_on is None and study.date_note is None:
            problems.append(pos.problem(("studies", key), "no published_on: say why in date_note (never guess a date)"))
    names: dict[str, int] = {}
    for i, p in enumerate(pub.platforms):
        if p.name in names:
            problems.append(pos.problem(("platforms", i, "name"), f"{p.name!r} is listed twice (also platforms[{names[p.name]}])"))
        names.setdefault(p.name, i)
        for k, s in enumerate(p.studies):
            if s not in pub.studies:
                problems.append(pos.problem(("platforms", i, "studies", k), f"unknown study {s!r}; the file defines {', '.join(pub.studies)}"))
        if p.status.state == "retired" and p.status.since is None:
            problems.append(pos.problem(("platforms", i, "status"), "a retired platform needs `since` (the year at least, "
                                                                      "from a source; say what is unconfirmed in `unconfirmed`)"))
    for i, r in enumerate(pub.ratings):
        loc = ("ratings", i)
        study = pub.studies.get(r.study)
        if study is None:
            problems.append(pos.problem(loc + ("study",), f"unknown study {r.study!r}"))
            continue
        if r.platform not in names or r.study not in pub.platforms[names[r.platform]].studies:
            problems.append(pos.problem(loc + ("platform",), f"{r.platform!r} is not a platform of study {r.study!r} in `platforms`"))
        scale = _scale_of(rubric, study.rubric)
        if scale is None:
            problems.append(pos.problem(loc, f"scoring.yaml has no {study.rubric} rubric to put these ratings beside"))
            continue
        missing = [c for c in scale.ids if c not in r.ratings]
        if missing:
            problems.append(pos.problem(loc + ("ratings",), f"no rating for {', '.join(missing)} (write every criterion of the "
                                                            f"{study.rubric} rubric the study rated)"))
        for cid, value in r.ratings.items():
            if cid not in scale.ids:
                problems.append(pos.problem(loc + ("ratings", cid), f"unknown criterion {cid!r}; the {study.rubric} rubric "
                                                                    f"defines {', '.join(scale.ids)}"))
            elif not scale.scale.min <= value <= scale.scale.max:
                problems.append(pos.problem(loc + ("ratings", cid), f"rating {value} is outside the scale "
                                                                    f"{scale.scale.min}–{scale.scale.max}"))
        if r.total is not None and r.total != sum(r.ratings.values()):
            problems.append(pos.problem(loc + ("total",), f"the published total {r.total} is not the sum of the ratings "
                                                          f"({sum(r.ratings.values())}): check the copy"))
    seen: dict[tuple, int] = {}
    for i, f in enumerate(pub.figures):
        if f.study not in pub.studies:
            problems.append(pos.problem(("figures", i, "study"), f"unknown study {f.study!r}"))
        if f.platform not in names or f.study not in pub.platforms[names[f.platform]].studies:
            problems.append(pos.problem(("figures", i, "platform"), f"{f.platform!r} is not a platform of study {f.study!r} in `platforms`"))
        key = (f.study, f.platform, f.metric)
        if key in seen:
            problems.append(pos.problem(("figures", i), f"a second {f.metric} for {f.platform} (first is figures[{seen[key]}])"))
        seen.setdefault(key, i)
    seen_r: dict[tuple, int] = {}
    for i, r in enumerate(pub.ratings):
        if (r.study, r.platform) in seen_r:
            problems.append(pos.problem(("ratings", i), f"a second set of ratings for {r.platform} from {r.study}"))
        seen_r.setdefault((r.study, r.platform), i)
    if problems:
        raise Invalid(sorted(problems, key=lambda p: p.line))
    return pub


def load_published(project, rubric: Rubric) -> Published | None:
    """The project's published records, or None where it keeps none (a bare checkout, a test root)."""
    path = project.root / PUBLISHED_FILE
    if not path.exists():
        return None
    data, pos = load_yaml(path, project.display(path))
    return check_published(data, pos, rubric)


def date_text(study: Study) -> str:
    return study.published_on.isoformat() if study.published_on else f"undated ({study.date_note})"


def status_text(status: Status) -> str:
    return status.state + (f" since {status.since}" if status.since else "")


_WS = re.compile(r"\s+")


def one_line(text: str) -> str:
    return _WS.sub(" ", text).strip()

