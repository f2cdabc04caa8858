"""The comparison table: one row per platform platbench knows, the criteria and a total as columns.

Platforms without a record get a row that says so; a record's ratings come from the rubric alone
(or a human override, which the cell says, with the reason listed under the table).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from platforms.scorecard.models import Record
from platforms.scorecard.rubric import NOT_RATED, Rubric
from platforms.scorecard.scoring import Scorecard, score

NOT_RECORDED = "not recorded"
TOTAL_RULE = ("Total: the sum of the rated criteria out of {top} × the number of rated criteria; "
              "\"not rated\" criteria (no steps recorded) count neither as 0 nor at all, and are named next to the total.")


def md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def build(rubric: Rubric, records: Sequence[tuple[Path, Record]], platforms: Sequence[str]) -> list[tuple[str, Path | None, Scorecard | None]]:
    """Rows in order: registered platforms (local first), each with its scorecard or None."""
    by_platform = {rec.platform: (path, rec) for path, rec in records}
    rows = []
    for name in list(platforms) + sorted(set(by_platform) - set(platforms)):
        if name in by_platform:
            path, rec = by_platform[name]
            rows.append((name, path, score(rubric, rec)))
        else:
            rows.append((name, None, None))
    return rows


def to_markdown(rubric: Rubric, rows, display=str) -> str:
    headers = ["Platform"] + [c.header for c in rubric.criteria] + ["Total"]
    out = ["| " + " | ".join(md_cell(h) for h in headers) + " |",
           "|" + "|".join(["---"] + [":-:"] * (len(headers) - 1)) + "|"]
    notes = []
    for name, path, card in rows:
        if card is None:
            cells = [NOT_RECORDED] * len(rubric.criteria) + ["—"]
        else:
            cells = [s.cell() for s in card.scores] + [card.total.cell()]
            for s in card.scores:
                if s.override is not None:
                    notes.append(f"- **{md_cell(name)}, {md_cell(s.title)}**: override to {s.override.rating} "
                                 f"(the rubric gives {NOT_RATED if s.computed.rating is None else s.computed.rating}, "
                                 f"{md_cell(s.rule_text())}). Reason: {md_cell(s.override.reason)}")
        out.append("| " + " | ".join([f"**{md_cell(name)}**"] + [md_cell(c) for c in cells]) + " |")
    out.append("")
    levels = "; ".join(f"{lv.rating} = {lv.name}" for lv in sorted(rubric.scale.levels, key=lambda lv: lv.rating))
    out.append(f"Scale: {levels}. \"{NOT_RATED}\" = no steps recorded for the criterion; "
               f"\"{NOT_RECORDED}\" = nobody has recorded this platform yet. "
               + TOTAL_RULE.format(top=rubric.scale.max))
    if notes:
        out += ["", "Overrides (a human's rating instead of the rubric's, with the written reason):", *notes]
    return "\n".join(out) + "\n"


def to_json(rubric: Rubric, rows, display=str) -> str:
    doc = {
        "scale": {"min": rubric.scale.min, "max": rubric.scale.max,
                  "levels": {str(lv.rating): lv.name for lv in rubric.scale.levels}},
        "criteria": [{"id": c.id, "title": c.title} for c in rubric.criteria],
        "total_rule": TOTAL_RULE.format(top=rubric.scale.max),
        "platforms": [],
    }
    for name, path, card in rows:
        if card is None:
            doc["platforms"].append({"platform": name, "recorded": False, "record": None, "criteria": None, "total": None})
        else:
            doc["platforms"].append({
                "platform": name, "recorded": True, "record": display(path), "title": card.title,
                "criteria": {s.criterion: s.to_json() for s in card.scores},
                "total": card.total.to_json(),
            })
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
