"""Scenario.md's generated part: the score table and, per recorded platform, its steps and ratings.

The output depends only on scoring.yaml, scenarios/*.yaml, the scenario steps and the registered
platforms (no clock, no paths outside the project), so rendering twice gives the same bytes and a
test can check that Scenario.md is in sync.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from platforms.scorecard import table
from platforms.scorecard.models import Record
from platforms.scorecard.rubric import Rubric
from platforms.scorecard.scenario import GENERATED_BEGIN, GENERATED_END, ScenarioStep, split
from platforms.scorecard.scoring import score


def _code(text: str) -> str:
    """Inline code that survives backticks in the text."""
    text = " ".join(text.split())
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _inline(text: str) -> str:
    return " ".join(text.split())


def _minutes(m: float) -> str:
    return f"{m:g} min"


def _link(url: str) -> str:
    return f"<{url}>" if "://" in url else _code(url)


def platform_section(rubric: Rubric, record: Record, source: str, steps: Sequence[ScenarioStep]) -> str:
    card = score(rubric, record)
    out = [f"<!-- platbench:record {record.platform} (from {source}) -->",
           f"### {record.platform}", "", f"**{_inline(record.title)}**", ""]
    meta = f"Recorded by {_inline(record.recorded_by)} on {record.recorded_on.isoformat()}"
    if record.versions:
        meta += "; versions: " + ", ".join(f"{k} {v}" for k, v in record.versions.items())
    out += [meta + f". Source: `{source}`.", ""]
    if record.notes:
        out += [f"Notes: {_inline(record.notes)}", ""]

    out += ["| Criterion | Rating | Why (the rule that fired) | Evidence |", "|---|:-:|---|---|"]
    for s in card.scores:
        rating = s.cell()
        why = f"{s.rule_text()}: {s.computed.why}"
        if s.override is not None:
            why += f" **Override:** {s.override.reason}"
        out.append(f"| {table.md_cell(s.title)} | {table.md_cell(rating)} | {table.md_cell(why)} | "
                   f"{table.md_cell(s.evidence.describe() if s.evidence.steps else '—')} |")
    out.append(f"| **Total** | **{table.md_cell(card.total.cell())}** | | |")
    out.append("")
    dx = rubric.developer_experience
    if dx is not None:
        dcard = score(dx, record)
        out += [f"{dx.title or 'Developer experience'}, from the same steps (`developer_experience` in scoring.yaml):", "",
                "| Criterion | Rating | Why (the rule that fired) | Evidence |", "|---|:-:|---|---|"]
        for s in dcard.scores:
            out.append(f"| {table.md_cell(s.title)} | {table.md_cell(s.cell())} | "
                       f"{table.md_cell(f'{s.rule_text()}: {s.computed.why}')} | "
                       f"{table.md_cell(s.evidence.describe() if s.evidence.steps else '—')} |")
        out.append(f"| **Total** | **{table.md_cell(dcard.total.cell())}** | | |")
        out.append("")

    titles = {st.number: st.title for st in steps}
    numbers = sorted(set(titles) | {s.scenario_step for s in record.steps if s.scenario_step is not None})
    for n in numbers:
        actions = [(i, s) for i, s in enumerate(record.steps, start=1) if s.scenario_step == n]
        out.append(f"#### Step {n}. {titles.get(n, '(not in the scenario)')}")
        out.append("")
        if not actions:
            out.append("_Nothing to do on this platform (skipped by the recorder)._" if n in record.scenario_steps_done
                       else "_Not recorded._")
            out.append("")
            continue
        out += _actions(actions)
    loose = [(i, s) for i, s in enumerate(record.steps, start=1) if s.scenario_step is None]
    if loose:
        out += ["#### Other steps", ""] + _actions(loose)
    if record.evidence:
        out += ["#### Evidence", ""]
        for ev in record.evidence:
            out.append(f"- {_link(ev.link)}" + (f": {_inline(ev.caption)}" if ev.caption else ""))
        out.append("")
    out.append(f"<!-- platbench:record-end {record.platform} -->")
    return "\n".join(out) + "\n"


def _actions(actions) -> list[str]:
    out = []
    for _i, s in actions:
        out.append(f"- **{_inline(s.action)}** ({s.criterion}; {s.outcome}; {_minutes(s.minutes)})")
        if "\n" in s.how.strip():
            fence = "```"
            while fence in s.how:
                fence += "`"
            out += ["  - How:", "", "    " + fence] + ["    " + ln for ln in s.how.strip().splitlines()] + ["    " + fence]
        else:
            out.append(f"  - How: {_code(s.how)}")
        if s.docs:
            out.append("  - Docs: " + ", ".join(_link(d) for d in s.docs))
        if s.ml_knowledge is not None or s.docs_answered is not None:
            out.append(f"  - ML knowledge needed: {s.ml_knowledge or 'not recorded'}; "
                       f"docs answered it: {s.docs_answered or 'not recorded'}")
        if s.notes:
            out.append(f"  - Notes: {_inline(s.notes)}")
    out.append("")
    return out


def generated(rubric: Rubric, records: Sequence[tuple[Path, Record]], steps: Sequence[ScenarioStep],
              source: Callable[[Path], str]) -> str:
    """The generated part. Only recorded platforms appear, so registering a new platform does not
    change Scenario.md until someone records it (`platbench scenario table` lists every platform)."""
    first = table.listed_first()
    recorded = sorted(records, key=lambda pr: (pr[1].platform not in first, pr[1].platform))
    rows = table.build(rubric, recorded, [rec.platform for _, rec in recorded])
    out = ["", "## Recorded runs", "",
           "Scored by the rubric in `scoring.yaml` from the records in `scenarios/`; regenerate with "
           "`platbench scenario render`. Only recorded platforms are listed here; "
           "`platbench scenario table` shows every platform platbench knows.", ""]
    if not recorded:
        out += ["_No platform has been recorded yet._", ""]
        return "\n".join(out)
    out += ["### Scores", "", table.to_markdown(rubric, rows, source)]
    if rubric.developer_experience is not None:
        dx_rows = table.build(rubric, recorded, [rec.platform for _, rec in recorded], which="developer_experience")
        out += [f"### {rubric.developer_experience.title or 'Developer experience'}", "",
                table.to_markdown(rubric, dx_rows, source, which="developer_experience")]
    out += ["The studies' own published ratings, every platform of both studies and their statuses: "
            "`platbench scenario table` (rows marked published, attributed to the study).", ""]
    for path, rec in recorded:
        out.append(platform_section(rubric, rec, source(path), steps))
    return "\n".join(out)


def update(text: str, display: str, block: str) -> str:
    """Scenario.md with its generated part replaced by `block` (appended at the end when missing)."""
    doc = split(text, display)
    body = block if block.endswith("\n") else block + "\n"
    if not doc.has_markers:
        head = doc.head if doc.head.endswith("\n") or not doc.head else doc.head + "\n"
        return f"{head}\n{GENERATED_BEGIN}\n{body}{GENERATED_END}\n"
    return f"{doc.head}{GENERATED_BEGIN}\n{body}{GENERATED_END}\n{doc.tail}"
