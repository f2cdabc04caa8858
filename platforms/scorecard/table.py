"""The comparison tables: a row per platform platbench has or is getting and per platform of the two
public studies, for one rubric (usability 0–3, or developer experience 1–5).

Each platform gets the row of platbench's own record ("not recorded" until someone records it, its
ratings from the rubric alone or a human override, which the cell says), then, for a study rated on
that rubric, the study's row: marked **published**, attributed (who, when, where), its cells the
study's numbers, never computed here. Every row carries the platform's status (live or retired since
when) with its sources listed under the table.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from platforms.scorecard.models import NOT_RECORDED, Record
from platforms.scorecard.rubric import NOT_RATED, Rubric
from platforms.scorecard.scoring import Scorecard, score

PUBLISHED = "published"
NOT_PUBLISHED = "no ratings published"
TOTAL_RULE = ("Total: the sum of the rated criteria out of {top} × the number of rated criteria; "
              "\"not rated\" criteria (no steps recorded) count neither as 0 nor at all, and are named next to the total.")


def md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


@dataclass
class Row:
    platform: str                    # platbench's name, or the study's where platbench has none
    kind: str                        # "recorded" | "not recorded" | "published" | "no ratings published" | "retired"
    status: object | None = None     # published.Status (None: platbench's own, e.g. local)
    study_names: tuple[str, ...] = ()
    successor_of: tuple[str, ...] = ()  # study platforms that retired and this platbench platform succeeds
    path: Path | None = None         # the record or placeholder
    card: Scorecard | None = None    # recorded rows
    study: str | None = None         # published rows: the study key
    ratings: object | None = None    # published rows: published.Ratings (None: the study left it blank)
    status_of: str | None = None     # the studies-file platform whose status this is

    @property
    def published(self) -> bool:
        return self.kind in (PUBLISHED, NOT_PUBLISHED)

    def label(self) -> str:
        aka = [n for n in self.study_names if n != self.platform and n not in self.successor_of]
        if self.published:
            return f"{self.study_names[0] if self.study_names else self.platform} ({PUBLISHED})"
        bits = ([", ".join(aka)] if aka else []) + [f"successor of {n}" for n in self.successor_of]
        return self.platform + (f" ({'; '.join(bits)})" if bits else "")


def _rubric_of(rubric: Rubric, which: str) -> Rubric:
    return rubric if which == "usability" else rubric.developer_experience


def listed_first() -> set[str]:
    """The in-process platform (its SPEC says so): every listing puts it first, the reference run the others
    are compared with."""
    from platforms.core import registry

    return {n for n in registry.names() if registry.spec(n).in_process}


def build(rubric: Rubric, records: Sequence[tuple[Path, Record]], platforms: Sequence[str],
          published=None, placeholders: Sequence[tuple[Path, object]] = (), which: str = "usability") -> list[Row]:
    """Rows in order: platbench's platforms (the in-process one first, then registered, then the ones it is getting),
    then the studies' platforms platbench has no package for; each followed by its published rows."""
    scored = _rubric_of(rubric, which)
    by_platform = {rec.platform: (path, rec) for path, rec in records}
    holders = {h.platform: path for path, h in placeholders}
    planned = published.platbench_names if published is not None else []
    names = list(dict.fromkeys([*platforms, *sorted(set(by_platform) - set(platforms)), *sorted(holders), *planned]))
    first = listed_first()
    names.sort(key=lambda n: n not in first)
    rows: list[Row] = []

    def study_rows(entry) -> list[Row]:
        out = []
        for key in entry.studies:
            study = published.studies[key]
            if study.rubric != which:
                continue
            r = published.ratings_of(entry.name, key)
            out.append(Row(entry.platbench or entry.name, PUBLISHED if r is not None else NOT_PUBLISHED, entry.status,
                           (entry.name,), study=key, ratings=r, status_of=entry.name))
        return out

    for name in names:
        entries = published.for_platbench(name) if published is not None else []
        # a study platform that retired and platbench covers through its successor (AI Platform → Vertex
        # AI) keeps its retired status on the study's row; platbench's own row is the live successor
        live = next((e for e in entries if e.status.state == "live"), None)
        status, status_of = (live.status, live.name) if live else (None, None)
        aka = tuple(e.name for e in entries)
        after = tuple(e.name for e in entries if e.status.state == "retired")
        gone = next((e for e in entries if e.status.state == "retired"), None)
        if live is None and gone is not None and _not_measurable(name):
            # no successor platbench can drive (`platbench platforms`: not measurable): the study's retired
            # status is this row's too, one status for the platform everywhere
            rows.append(Row(name, "retired", gone.status, aka, after, holders.get(name), status_of=gone.name))
        elif name in by_platform:
            path, rec = by_platform[name]
            rows.append(Row(name, "recorded", status, aka, after, path, score(scored, rec), status_of=status_of))
        else:
            rows.append(Row(name, NOT_RECORDED, status, aka, after, holders.get(name), status_of=status_of))
        for e in entries:
            rows += study_rows(e)
    for entry in (published.platforms if published is not None else []):
        if entry.platbench is None:
            rows.append(Row(entry.name, "retired" if entry.status.state == "retired" else NOT_RECORDED, entry.status,
                            (entry.name,), status_of=entry.name))
            rows += study_rows(entry)
    return rows


def _not_measurable(name: str) -> bool:
    from platforms.core import registry

    return name in registry.specs() and bool(registry.spec(name).not_measurable)


def status_cell(row: Row, notes: dict[str, int]) -> str:
    if row.status is None:
        return "—"
    from platforms.scorecard.published import status_text

    n = notes.setdefault(row.status_of, len(notes) + 1)
    return f"{status_text(row.status)} [s{n}]"


def cells(scored: Rubric, row: Row, published, show: Callable[[Path], str] = str, study_refs: dict | None = None) -> list[str]:
    """Source, one cell per criterion, total, for one row."""
    k = len(scored.criteria)
    if row.kind == "recorded":
        card = row.card
        return [f"recorded: {show(row.path)}", *[s.cell() for s in card.scores], card.total.cell()]
    if row.kind in (NOT_RECORDED, "retired"):
        where = f" ({show(row.path)})" if row.path else ""
        if row.kind == "retired":
            return ["retired: cannot be recorded", *(["—"] * k), "—"]
        return [f"{NOT_RECORDED}{where}", *([NOT_RECORDED] * k), "—"]
    study = published.studies[row.study]
    ref = f" [{study_refs.setdefault(row.study, len(study_refs) + 1)}]" if study_refs is not None else ""
    who = f"**{PUBLISHED}** by {study.by}{ref}"
    if row.ratings is None:
        return [f"{who}: listed, {NOT_PUBLISHED}", *(["—"] * k), "—"]
    values = [row.ratings.ratings[c.id] for c in scored.criteria]
    # only what the study published: its own total, or none (a sum made here would read as the study's)
    return [who, *map(str, values), str(row.ratings.total) if row.ratings.total is not None else "not published"]


def to_markdown(rubric: Rubric, rows: Sequence[Row], display=str, published=None, which: str = "usability") -> str:
    scored = _rubric_of(rubric, which)
    headers = ["Platform", "Status", "Source"] + [c.header for c in scored.criteria] + ["Total"]
    out = ["| " + " | ".join(md_cell(h) for h in headers) + " |",
           "|" + "|".join(["---", "---", "---"] + [":-:"] * (len(headers) - 3)) + "|"]
    notes, status_notes, study_refs = [], {}, {}
    for row in rows:
        status = status_cell(row, status_notes)
        source, *rest = cells(scored, row, published, display, study_refs)
        name = md_cell(row.label())
        out.append("| " + " | ".join([f"**{name}**" if not row.published else f"_{name}_", md_cell(status),
                                      md_cell(source)] + [md_cell(c) for c in rest]) + " |")
        if row.card is not None:
            for s in row.card.scores:
                if s.override is not None:
                    notes.append(f"- **{md_cell(row.platform)}, {md_cell(s.title)}**: override to {s.override.rating} "
                                 f"(the rubric gives {NOT_RATED if s.computed.rating is None else s.computed.rating}, "
                                 f"{md_cell(s.rule_text())}). Reason: {md_cell(s.override.reason)}")
    out.append("")
    levels = "; ".join(f"{lv.rating} = {lv.name}" for lv in sorted(scored.scale.levels, key=lambda lv: lv.rating))
    out.append(f"Scale: {levels}. \"{NOT_RATED}\" = no steps recorded for the criterion (or not the answers its rule "
               f"needs); \"{NOT_RECORDED}\" = nobody has recorded this platform yet. "
               + TOTAL_RULE.format(top=scored.scale.max)
               + (f" Rows in italics marked **{PUBLISHED}** are a study's own ratings, attributed below, not "
                  "platbench records." if study_refs else ""))
    if notes:
        out += ["", "Overrides (a human's rating instead of the rubric's, with the written reason):", *notes]
    if study_refs:
        from platforms.scorecard.published import date_text

        out += ["", "Published by:"]
        for key, n in study_refs.items():
            st = published.studies[key]
            out.append(f"- [{n}] {md_cell(st.title)}, {date_text(st)}; measured by {md_cell(st.measured_by)}; "
                       f"<{st.url}>.")
    if status_notes:
        from platforms.scorecard.published import one_line

        out += ["", "Statuses:"]
        for name, n in status_notes.items():
            st = published.platform(name).status
            line = f"- [s{n}] {md_cell(name)}: {md_cell(one_line(st.what).rstrip('.'))}; " + ", ".join(f"<{u}>" for u in st.sources)
            if st.unconfirmed:
                line += f". Not confirmed: {md_cell(one_line(st.unconfirmed))}"
            out.append(line + ".")
    return "\n".join(out) + "\n"


def to_data(rubric: Rubric, rows: Sequence[Row], display=str, published=None, which: str = "usability") -> dict:
    scored = _rubric_of(rubric, which)
    doc = {
        "rubric": which,
        "scale": {"min": scored.scale.min, "max": scored.scale.max,
                  "levels": {str(lv.rating): lv.name for lv in scored.scale.levels}},
        "criteria": [{"id": c.id, "title": c.title} for c in scored.criteria],
        "total_rule": TOTAL_RULE.format(top=scored.scale.max),
        "platforms": [],
        "published": [],
    }
    for row in rows:
        status = None if row.status is None else row.status.model_dump(mode="json", exclude_none=True)
        if row.published:
            st = published.studies[row.study]
            doc["published"].append({
                "platform": row.platform, "study_platform": row.study_names[0], "published": True, "study": row.study,
                "source": {"title": st.title, "url": st.url, "published_on": st.published_on and st.published_on.isoformat(),
                           "measured_by": st.measured_by, "section": row.ratings.section if row.ratings else None},
                "ratings": dict(row.ratings.ratings) if row.ratings else None,
                "total": row.ratings.total if row.ratings else None, "status": status})
        elif row.card is None:
            doc["platforms"].append({"platform": row.platform, "recorded": False,
                                     "record": display(row.path) if row.path else None, "criteria": None, "total": None,
                                     "status": status, "also_known_as": list(row.study_names)})
        else:
            doc["platforms"].append({
                "platform": row.platform, "recorded": True, "record": display(row.path), "title": row.card.title,
                "criteria": {s.criterion: s.to_json() for s in row.card.scores},
                "total": row.card.total.to_json(), "status": status, "also_known_as": list(row.study_names),
            })
    return doc


def to_json(rubric: Rubric, rows: Sequence[Row], display=str, published=None, which: str = "usability") -> str:
    return json.dumps(to_data(rubric, rows, display, published, which), indent=2, ensure_ascii=False) + "\n"
